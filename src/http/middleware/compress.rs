//! Compression only for requests that ask for it, and only of bodies worth it.
//!
//! actix-web's `Compress` answers a request without `Accept-Encoding` with the identity
//! encoding: same headers, same bytes. It still parses the response's content type and
//! wraps the body on every such request, which is most of them (load generators, service
//! clients). [`CompressIfAsked`] sends those requests straight to the inner service and
//! the others through `Compress`, so what a client sees does not change.
//!
//! Of the requests that do ask (Go's and Python's HTTP clients, browsers, oha send
//! `Accept-Encoding: gzip` unasked), `Compress` would gzip every body, a 110-byte
//! `/users/me` or a 400-byte order included: each one pays a new deflate state (hundreds
//! of kilobytes allocated and zeroed) to send a body no smaller, often larger (gzip's
//! header and trailer are 18 bytes). A body of a known size under `server.compress_min_bytes`
//! (default 1400: what fits one TCP segment on an Ethernet path, the threshold of Go's
//! gziphandler) is sent as it is: `Compress` is told so by a `Content-Encoding: identity`
//! on the way in (it leaves a response that names its encoding alone), and that header
//! is taken off again on the way out. Negotiation stays `Compress`'s own (a request that
//! refuses every encoding it offers still gets its 406), and a compressed answer carries
//! `Vary: Accept-Encoding` as before; an uncompressed one does not, as for any response
//! `Compress` leaves alone. Bodies `Compress` would gzip and that are in memory, up to
//! 64 KiB, are gzipped on the worker into the same bytes ([`Precompress`]) instead of on
//! `Compress`'s blocking pool.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_http::encoding::Encoder;
use actix_web::body::{BodySize, EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{
    AcceptEncoding, Encoding, HeaderMap, HeaderValue, ACCEPT_ENCODING, CONTENT_ENCODING,
    CONTENT_TYPE, VARY,
};
use actix_web::http::StatusCode;
use actix_web::middleware::Compress;
use actix_web::mime;
use actix_web::{Error, HttpMessage};
use bytes::Bytes;
use futures_util::future::{Either, LocalBoxFuture, MapOk, TryFutureExt};

/// `Compress`, for the requests that send `Accept-Encoding` and the bodies of at least
/// `min_bytes` (or of a size not known in advance: a stream).
pub struct CompressIfAsked {
    min_bytes: u64,
}

impl CompressIfAsked {
    /// `server.compress_min_bytes`.
    pub fn new(min_bytes: usize) -> Self {
        Self {
            min_bytes: u64::try_from(min_bytes).unwrap_or(u64::MAX),
        }
    }
}

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
        let compress = Compress::default().new_transform(Precompress {
            service: Rc::clone(&service),
            min_bytes: self.min_bytes,
        });
        Box::pin(async move {
            Ok(CompressIfAskedService {
                compress: compress.await?,
                service,
            })
        })
    }
}

/// The body `Compress` answers with, around [`Precompress`]'s.
pub type Compressed<B> = EitherBody<Encoder<EitherBody<B, Bytes>>>;

pub struct CompressIfAskedService<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    compress: <Compress as Transform<Precompress<S>, ServiceRequest>>::Transform,
    service: Rc<S>,
}

type CompressFuture<S> =
    <<Compress as Transform<Precompress<S>, ServiceRequest>>::Transform as Service<
        ServiceRequest,
    >>::Future;

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
            let to_left: ToLeft<B> = unmark;
            Either::Left(self.compress.call(req).map_ok(to_left))
        } else {
            let to_right: ToRight<B> = ServiceResponse::map_into_right_body;
            Either::Right(self.service.call(req).map_ok(to_right))
        }
    }
}

/// The encodings `Compress` chooses from in this build (actix-web's `compress-gzip`
/// feature only), in its order.
static SUPPORTED: [Encoding; 3] = [Encoding::identity(), Encoding::gzip(), Encoding::deflate()];

/// Whether `Compress` would gzip a large body for `req`: its negotiation, over the same
/// encodings. A handler that holds a body gzipped beforehand (a cached product page)
/// answers with it when this says so, and `Compress` passes it on untouched.
pub fn negotiates_gzip(req: &impl HttpMessage) -> bool {
    req.headers().contains_key(ACCEPT_ENCODING)
        && req
            .get_header::<AcceptEncoding>()
            .and_then(|accept| accept.negotiate(SUPPORTED.iter()))
            == Some(Encoding::gzip())
}

/// Names a gzipped body as `Compress` does (`Content-Encoding: gzip`, `Vary:
/// accept-encoding`); `Compress` then passes the response on untouched.
pub fn mark_gzipped(headers: &mut HeaderMap) {
    headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    headers.append(VARY, HeaderValue::from_static("accept-encoding"));
}

/// What tells `Compress` to leave a body alone ([`Precompress`]); never sent.
const IDENTITY: &str = "identity";

/// Takes [`Precompress`]'s mark off an answer that went through `Compress`. (`identity` in
/// `Content-Encoding` says nothing a client needs: it is the absence of an encoding.)
fn unmark<B>(
    mut res: ServiceResponse<Compressed<B>>,
) -> ServiceResponse<EitherBody<Compressed<B>, B>> {
    let headers = res.headers_mut();
    if headers
        .get(CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes() == IDENTITY.as_bytes())
    {
        headers.remove(CONTENT_ENCODING);
    }
    res.map_into_left_body()
}

/// The largest body gzipped on the worker (about 0.1 ms at level 1 on this project's
/// machines); a larger one is left to `Compress`, which gzips it on its blocking pool.
const INLINE_MAX_BYTES: u64 = 64 * 1024;

/// The inner service as `Compress` calls it. A response whose body has a known size and
/// no encoding of its own is
/// - under `min_bytes`: marked `Content-Encoding: identity`, which `Compress` leaves as
///   it is (the mark is taken off by [`unmark`]);
/// - up to [`INLINE_MAX_BYTES`], for a request that negotiates gzip: gzipped here, on
///   the worker, into the bytes `Compress` would make (`crate::gzip`), with its
///   `Content-Encoding` and `Vary`, which `Compress` passes on. `Compress` would gzip
///   every body of 1 KiB or more on its blocking pool: a thread hop per answer that cost
///   the uncached product list a fifth of its throughput for gzip clients (load/README).
///
/// Anything else (a stream, a larger body, deflate) is `Compress`'s.
pub struct Precompress<S> {
    service: Rc<S>,
    min_bytes: u64,
}

impl<S, B> Service<ServiceRequest> for Precompress<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<EitherBody<B, Bytes>>;
    type Error = Error;
    type Future = Precompressing<S::Future>;

    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.service.poll_ready(cx)
    }

    fn call(&self, req: ServiceRequest) -> Self::Future {
        Precompressing {
            fut: self.service.call(req),
            min_bytes: self.min_bytes,
        }
    }
}

/// Whether `Compress` would encode this response's body at all: not for the statuses it
/// leaves alone, nor for the content types its default predicate refuses (images but
/// SVG, video).
fn encodable<B>(res: &ServiceResponse<B>) -> bool {
    if matches!(
        res.status(),
        StatusCode::SWITCHING_PROTOCOLS | StatusCode::NO_CONTENT | StatusCode::PARTIAL_CONTENT
    ) {
        return false;
    }
    match res.headers().get(CONTENT_TYPE).map(|v| v.to_str()) {
        None => true,
        Some(Ok(ct)) => match ct.parse::<mime::Mime>() {
            Ok(m) if m.type_() == mime::IMAGE => m.subtype() == mime::SVG,
            Ok(m) => m.type_() != mime::VIDEO,
            Err(_) => true,
        },
        Some(Err(_)) => true,
    }
}

pin_project_lite::pin_project! {
    /// [`Precompress`]'s future: the inner one, then the mark or the gzip.
    pub struct Precompressing<F> {
        #[pin]
        fut: F,
        min_bytes: u64,
    }
}

impl<F, B> Future for Precompressing<F>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
    B: MessageBody,
{
    type Output = Result<ServiceResponse<EitherBody<B, Bytes>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = std::task::ready!(this.fut.poll(cx))?;
        let size = match res.response().body().size() {
            BodySize::Sized(n) if !res.headers().contains_key(CONTENT_ENCODING) => n,
            _ => return Poll::Ready(Ok(res.map_into_left_body())),
        };
        if size < *this.min_bytes {
            res.headers_mut()
                .insert(CONTENT_ENCODING, HeaderValue::from_static(IDENTITY));
            return Poll::Ready(Ok(res.map_into_left_body()));
        }
        if size > INLINE_MAX_BYTES || !encodable(&res) || !negotiates_gzip(res.request()) {
            return Poll::Ready(Ok(res.map_into_left_body()));
        }
        let (req, res) = res.into_parts();
        let (mut head, body) = res.into_parts();
        let res = match body.try_into_bytes() {
            Ok(bytes) => match crate::gzip::gzip(&bytes) {
                Some(gz) => {
                    mark_gzipped(head.headers_mut());
                    head.set_body(gz).map_into_right_body()
                }
                None => head.set_body(bytes).map_into_right_body(),
            },
            // A body that is not in memory: `Compress`'s.
            Err(body) => head.set_body(body).map_into_left_body(),
        };
        Poll::Ready(Ok(ServiceResponse::new(req, res)))
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderMap, CONTENT_ENCODING, VARY};
    use actix_web::{test, web, App, HttpResponse};

    use super::*;

    /// 1,700 bytes of JSON.
    fn body() -> String {
        "{\"hello\":\"world\"}".repeat(100)
    }

    /// A handler answering [`body`].
    async fn json() -> HttpResponse {
        HttpResponse::Ok()
            .content_type("application/json")
            .body(body())
    }

    fn sorted(headers: &HeaderMap) -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<_> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
        v.sort();
        v
    }

    fn get(accept: Option<&str>) -> actix_http::Request {
        get_at("/", accept)
    }

    fn get_at(uri: &str, accept: Option<&str>) -> actix_http::Request {
        let r = test::TestRequest::get().uri(uri);
        match accept {
            Some(a) => r.insert_header((ACCEPT_ENCODING, a)).to_request(),
            None => r.to_request(),
        }
    }

    const ACCEPTS: [Option<&str>; 5] = [None, Some("gzip"), Some("deflate"), Some("br"), Some("")];

    /// Responses of every kind `Compress` treats apart: JSON in memory (gzipped on the
    /// worker), one past [`INLINE_MAX_BYTES`] and a stream (both left to `Compress`),
    /// content types it does not compress, a 206, no content type.
    async fn varied(kind: web::Path<String>) -> HttpResponse {
        let typed = |ct: &'static str| HttpResponse::Ok().content_type(ct).body(body());
        match kind.as_str() {
            "big" => HttpResponse::Ok()
                .content_type("application/json")
                .body(body().repeat(40)),
            "stream" => HttpResponse::Ok()
                .content_type("application/json")
                .streaming(futures_util::stream::iter([Ok::<_, Error>(Bytes::from(
                    body(),
                ))])),
            "png" => typed("image/png"),
            "svg" => typed("image/svg+xml"),
            "mp4" => typed("video/mp4"),
            "partial" => HttpResponse::PartialContent().body(body()),
            "untyped" => HttpResponse::Ok().body(body()),
            _ => typed("application/json"),
        }
    }

    const KINDS: [&str; 8] = [
        "json", "big", "stream", "png", "svg", "mp4", "partial", "untyped",
    ];

    /// The same answer, headers and bytes, as `Compress` for each `Accept-Encoding` and
    /// each kind of response, when the body is at least `min_bytes` (whether gzipped by
    /// `Compress` or on the worker).
    #[actix_web::test]
    async fn answers_exactly_what_compress_answers_from_the_threshold_on() {
        let plain = test::init_service(
            App::new()
                .wrap(Compress::default())
                .route("/{kind}", web::get().to(varied)),
        )
        .await;
        for min in [0, body().len()] {
            let ours = test::init_service(
                App::new()
                    .wrap(CompressIfAsked::new(min))
                    .route("/{kind}", web::get().to(varied)),
            )
            .await;
            for (kind, accept) in KINDS.iter().flat_map(|k| ACCEPTS.map(|a| (k, a))) {
                let req = || get_at(&format!("/{kind}"), accept);
                let a = test::call_service(&plain, req()).await;
                let b = test::call_service(&ours, req()).await;
                let case = format!("{kind} {accept:?} min {min}");
                assert_eq!(a.status(), b.status(), "{case}");
                assert_eq!(sorted(a.headers()), sorted(b.headers()), "{case}");
                let compressed = a.headers().contains_key(CONTENT_ENCODING);
                let encodable = !matches!(*kind, "png" | "mp4" | "partial");
                assert_eq!(
                    compressed,
                    encodable && (accept == Some("gzip") || accept == Some("deflate")),
                    "{case}"
                );
                assert_eq!(a.headers().contains_key(VARY), compressed, "{case}");
                let (a, b) = (test::read_body(a).await, test::read_body(b).await);
                assert_eq!(a, b, "{case}");
            }
        }
    }

    /// A body under the threshold goes out as it is whatever the client accepts: no
    /// `Content-Encoding` (the mark is gone), no `Vary`, the same bytes.
    #[actix_web::test]
    async fn a_body_under_the_threshold_is_sent_as_it_is() {
        let ours = test::init_service(
            App::new()
                .wrap(CompressIfAsked::new(body().len() + 1))
                .route("/", web::get().to(json)),
        )
        .await;
        for accept in ACCEPTS {
            let res = test::call_service(&ours, get(accept)).await;
            assert_eq!(res.status(), 200, "{accept:?}");
            assert!(!res.headers().contains_key(CONTENT_ENCODING), "{accept:?}");
            assert!(!res.headers().contains_key(VARY), "{accept:?}");
            assert_eq!(test::read_body(res).await, body().as_bytes(), "{accept:?}");
        }
    }

    /// `negotiates_gzip` says gzip exactly when `Compress` gzips, and a body gzipped
    /// beforehand (a cached page's, `CachedPage::gzip`'s way) is the bytes `Compress`
    /// sends.
    #[actix_web::test]
    async fn negotiates_gzip_agrees_with_compress() {
        let plain = test::init_service(
            App::new()
                .wrap(Compress::default())
                .route("/", web::get().to(json)),
        )
        .await;
        let accepts = [
            "gzip",
            "deflate",
            "gzip, deflate",
            "deflate, gzip",
            "deflate;q=1, gzip;q=0.5",
            "gzip;q=0",
            "gzip;q=0, deflate",
            "br",
            "br, gzip;q=0.1",
            "*",
            "identity",
            "identity;q=0, *;q=0",
            "",
            "not a header, ;;q=x",
        ];
        for accept in accepts {
            let ours = negotiates_gzip(
                &test::TestRequest::default()
                    .insert_header((ACCEPT_ENCODING, accept))
                    .to_http_request(),
            );
            let res = test::call_service(&plain, get(Some(accept))).await;
            let gzipped = res
                .headers()
                .get(CONTENT_ENCODING)
                .is_some_and(|v| v == "gzip");
            assert_eq!(ours, gzipped, "{accept:?}");
            if gzipped {
                let sent = test::read_body(res).await;
                let ahead = crate::gzip::gzip(body().as_bytes()).unwrap();
                assert_eq!(sent, ahead, "{accept:?}");
            }
        }
        assert!(!negotiates_gzip(
            &test::TestRequest::default().to_http_request()
        ));
    }

    /// What the handler says of its own body stays, and a request that refuses every
    /// encoding still gets `Compress`'s 406.
    #[actix_web::test]
    async fn negotiation_and_a_handler_s_own_encoding_are_untouched() {
        let ours = test::init_service(
            App::new()
                .wrap(CompressIfAsked::new(1400))
                .route(
                    "/pre",
                    web::get().to(|| async {
                        HttpResponse::Ok()
                            .insert_header((CONTENT_ENCODING, "gzip"))
                            .body(&b"\x1f\x8b already gzip"[..])
                    }),
                )
                .route(
                    "/",
                    web::get().to(|| async { HttpResponse::Ok().body("small") }),
                ),
        )
        .await;
        let pre = test::TestRequest::get()
            .uri("/pre")
            .insert_header((ACCEPT_ENCODING, "gzip"))
            .to_request();
        let res = test::call_service(&ours, pre).await;
        assert_eq!(res.headers().get(CONTENT_ENCODING).unwrap(), "gzip");
        assert_eq!(test::read_body(res).await, &b"\x1f\x8b already gzip"[..]);

        let res = test::call_service(&ours, get(Some("identity;q=0, *;q=0"))).await;
        assert_eq!(res.status(), 406);
    }
}
