//! Compression only for requests that ask for it.
//!
//! actix-web's `Compress` answers a request without `Accept-Encoding` with the identity
//! encoding: same headers, same bytes. It still parses the response's content type and
//! wraps the body on every such request, which is most of them (load generators, service
//! clients). [`CompressIfAsked`] sends those requests straight to the inner service and
//! the others through `Compress`, so what a client sees does not change.

use std::rc::Rc;

use actix_http::encoding::Encoder;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::ACCEPT_ENCODING;
use actix_web::middleware::Compress;
use actix_web::Error;
use futures_util::future::{Either, LocalBoxFuture, MapOk, TryFutureExt};

/// `Compress`, for the requests that send `Accept-Encoding`.
pub struct CompressIfAsked;

impl<S, B> Transform<S, ServiceRequest> for CompressIfAsked
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<Compressed<B>, B>>;
    type Error = Error;
    type Transform = CompressIfAskedService<S, B>;
    type InitError = ();
    type Future = LocalBoxFuture<'static, Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        // Once per worker: both paths share the one inner service.
        let service = Rc::new(service);
        let compress = Compress::default().new_transform(Shared(Rc::clone(&service)));
        Box::pin(async move {
            Ok(CompressIfAskedService {
                compress: compress.await?,
                service,
            })
        })
    }
}

/// The body `Compress` answers with.
pub type Compressed<B> = EitherBody<Encoder<B>>;

pub struct CompressIfAskedService<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    compress: <Compress as Transform<Shared<S>, ServiceRequest>>::Transform,
    service: Rc<S>,
}

type CompressFuture<S> =
    <<Compress as Transform<Shared<S>, ServiceRequest>>::Transform as Service<ServiceRequest>>::Future;

type ToLeft<B> =
    fn(ServiceResponse<Compressed<B>>) -> ServiceResponse<EitherBody<Compressed<B>, B>>;
type ToRight<B> = fn(ServiceResponse<B>) -> ServiceResponse<EitherBody<Compressed<B>, B>>;

impl<S, B> Service<ServiceRequest> for CompressIfAskedService<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<Compressed<B>, B>>;
    type Error = Error;
    type Future = Either<MapOk<CompressFuture<S>, ToLeft<B>>, MapOk<S::Future, ToRight<B>>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        if req.headers().contains_key(ACCEPT_ENCODING) {
            let to_left: ToLeft<B> = ServiceResponse::map_into_left_body;
            Either::Left(self.compress.call(req).map_ok(to_left))
        } else {
            let to_right: ToRight<B> = ServiceResponse::map_into_right_body;
            Either::Right(self.service.call(req).map_ok(to_right))
        }
    }
}

/// The inner service, shared by the compressing and the direct path.
pub struct Shared<S>(Rc<S>);

impl<S, B> Service<ServiceRequest> for Shared<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = S::Future;

    fn poll_ready(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&self, req: ServiceRequest) -> Self::Future {
        self.0.call(req)
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderMap, CONTENT_ENCODING, VARY};
    use actix_web::{test, web, App, HttpResponse};

    use super::*;

    fn body() -> String {
        "{\"hello\":\"world\"}".repeat(100)
    }

    fn sorted(headers: &HeaderMap) -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<_> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
        v.sort();
        v
    }

    /// The same answer, headers and bytes, as `Compress` for each `Accept-Encoding`.
    #[actix_web::test]
    async fn answers_exactly_what_compress_answers() {
        let handler = || async {
            HttpResponse::Ok()
                .content_type("application/json")
                .body(body())
        };
        let plain = test::init_service(
            App::new()
                .wrap(Compress::default())
                .route("/", web::get().to(handler)),
        )
        .await;
        let ours = test::init_service(
            App::new()
                .wrap(CompressIfAsked)
                .route("/", web::get().to(handler)),
        )
        .await;
        for accept in [None, Some("gzip"), Some("deflate"), Some("br"), Some("")] {
            let req = || {
                let r = test::TestRequest::get().uri("/");
                match accept {
                    Some(a) => r.insert_header((ACCEPT_ENCODING, a)).to_request(),
                    None => r.to_request(),
                }
            };
            let a = test::call_service(&plain, req()).await;
            let b = test::call_service(&ours, req()).await;
            assert_eq!(a.status(), b.status(), "{accept:?}");
            assert_eq!(sorted(a.headers()), sorted(b.headers()), "{accept:?}");
            let compressed = a.headers().contains_key(CONTENT_ENCODING);
            assert_eq!(
                compressed,
                accept == Some("gzip") || accept == Some("deflate")
            );
            assert_eq!(a.headers().contains_key(VARY), compressed);
            let (a, b) = (test::read_body(a).await, test::read_body(b).await);
            assert_eq!(a, b, "{accept:?}");
            if accept.is_none() {
                assert_eq!(a, body().as_bytes());
            }
        }
    }
}
