//! `bulkhead-floor`: the performance floor every load figure is a ratio of.
//!
//! A bare actix-web server answering `GET /api/v1/users/me` with a fixed user JSON body
//! (`application/json`, strong `ETag`), with the worker count Bulkhead runs with and no
//! other work: no middleware, no authentication, no cache, no logging. Whatever Bulkhead
//! costs above this is the price of its own layers.
//!
//! ```text
//! bulkhead-floor [--bind ADDR] [--workers N] [--body-file FILE] [--path PATH] [--delay-us N]
//! ```
//! `--body-file` lets the load runner serve byte-for-byte the size of a real `/users/me`
//! answer of the same run; without it a representative user body is served.
//! `--delay-us N` answers each request after an (async, timer) wait of N microseconds:
//! an upstream that does some work, for the gateway scenario.

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
    delay: std::time::Duration,
}

fn usage() -> ! {
    eprintln!(
        "usage: bulkhead-floor [--bind ADDR (127.0.0.1:8081)] [--workers N (0 = cores)] \
         [--body-file FILE] [--path PATH (/api/v1/users/me)] [--delay-us N (0)]"
    );
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut args = Args {
        bind: "127.0.0.1:8081".into(),
        workers: 0,
        body_file: None,
        path: "/api/v1/users/me".into(),
        delay: std::time::Duration::ZERO,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--bind" => args.bind = value(),
            "--workers" => args.workers = value().parse().unwrap_or_else(|_| usage()),
            "--body-file" => args.body_file = Some(value()),
            "--path" => args.path = value(),
            "--delay-us" => {
                let us = value().parse().unwrap_or_else(|_| usage());
                args.delay = std::time::Duration::from_micros(us);
            }
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
        "bulkhead-floor: {} on {} with {workers} workers, {} byte body, {:?} delay",
        args.path,
        args.bind,
        body.len(),
        args.delay
    );
    let path = args.path.clone();
    let delay = args.delay;
    actix_web::rt::System::new().block_on(
        HttpServer::new(move || {
            let body = body.clone();
            App::new().route(
                &path,
                web::get().to(move || {
                    let body = body.clone();
                    async move {
                        if !delay.is_zero() {
                            actix_web::rt::time::sleep(delay).await;
                        }
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
