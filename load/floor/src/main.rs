//! `bulkhead-floor`: the performance floor every load figure is a ratio of.
//!
//! A bare actix-web server answering `GET /api/v1/users/me` with a fixed user JSON body
//! (`application/json`, strong `ETag`), with the worker count Bulkhead runs with and no
//! other work: no middleware, no authentication, no cache, no logging. Whatever Bulkhead
//! costs above this is the price of its own layers.
//!
//! ```text
//! bulkhead-floor [--bind ADDR] [--workers N] [--body-file FILE] [--path PATH]
//! ```
//! `--body-file` lets the load runner serve byte-for-byte the size of a real `/users/me`
//! answer of the same run; without it a representative user body is served.

use actix_web::http::header;
use actix_web::{web, App, HttpResponse, HttpServer};

/// A user as `GET /api/v1/users/me` renders it (same shape and a typical size).
const DEFAULT_BODY: &str = concat!(
    r#"{"id":"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","email":"load-user-00001@load.bulkhead.test","#,
    r#""name":"Load User 00001","role":"user","status":"active","#,
    r#""created_at":"2025-01-01T00:00:00.000000Z","updated_at":"2025-01-01T00:00:00.000000Z"}"#
);

struct Args {
    bind: String,
    workers: usize,
    body_file: Option<String>,
    path: String,
}

fn usage() -> ! {
    eprintln!(
        "usage: bulkhead-floor [--bind ADDR (127.0.0.1:8081)] [--workers N (0 = cores)] \
         [--body-file FILE] [--path PATH (/api/v1/users/me)]"
    );
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut args = Args {
        bind: "127.0.0.1:8081".into(),
        workers: 0,
        body_file: None,
        path: "/api/v1/users/me".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--bind" => args.bind = value(),
            "--workers" => args.workers = value().parse().unwrap_or_else(|_| usage()),
            "--body-file" => args.body_file = Some(value()),
            "--path" => args.path = value(),
            _ => usage(),
        }
    }
    args
}

fn main() -> std::io::Result<()> {
    let args = parse_args();
    let body = match &args.body_file {
        Some(file) => std::fs::read(file)?,
        None => DEFAULT_BODY.as_bytes().to_vec(),
    };
    // Served as ready bytes: cloning `Bytes` is a reference-count increment.
    let body = web::Bytes::from(body);
    let workers = if args.workers == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        args.workers
    };
    eprintln!(
        "bulkhead-floor: {} on {} with {workers} workers, {} byte body",
        args.path,
        args.bind,
        body.len()
    );
    let path = args.path.clone();
    actix_web::rt::System::new().block_on(
        HttpServer::new(move || {
            let body = body.clone();
            App::new().route(
                &path,
                web::get().to(move || {
                    let body = body.clone();
                    async move {
                        HttpResponse::Ok()
                            .content_type("application/json")
                            .insert_header((header::ETAG, "\"v1\""))
                            .body(body)
                    }
                }),
            )
        })
        .workers(workers)
        .bind(&args.bind)?
        .run(),
    )
}
