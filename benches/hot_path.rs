//! The hot path's pieces, and a whole request, against baselines measured in the same run.
//!
//! `cargo bench --bench hot_path` (add `-- --quick` for a fast look). Each group pairs a
//! piece of Bulkhead with what it competes against:
//! - `jwt`: verifying an HS256 access token (jsonwebtoken), per request.
//! - `limiter`: one rate-limit decision through the `RateLimiter` handle (actor-owned
//!   shards) vs `governor`'s keyed limiter, the inline design's choice.
//! - `cache`: a user-cache hit vs a `DashMap` read of the same value.
//! - `body`: serializing a user body (what a cache hit saves), and one timestamp as
//!   chrono serializes it against `domain::time::rfc3339` (what every body writes).
//! - `request`: `GET /api/v1/users/me` through the whole in-process app (middleware, JWT,
//!   rate limit, cache) vs a bare actix-web app answering the same bytes: the floor; and
//!   two requests whose routing passes `{id}` resources (an anonymous cached product
//!   list, an unmatched path's 404).
//!
//! Report ratios, not absolute times: the machine is shared and small.

use std::num::NonZeroU32;
use std::sync::Arc;

use actix_web::{test, web, App, HttpResponse};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use uuid::Uuid;

use bulkhead::config::{Config, Secret};
use bulkhead::domain::user::{now, Email, NewUser, Role, UserName};
use bulkhead::http::{self, AppState, Lifecycle};
use bulkhead::service::{CachedUser, Services};
use bulkhead::store::memory::MemoryStore;
use bulkhead::store::Store;

fn config() -> Config {
    let mut c = Config::default();
    c.auth.jwt_secret = Some(Secret::new("bench-secret-bench-secret-bench-secret"));
    c.auth.argon2_memory_kib = 64;
    c.auth.argon2_iterations = 1;
    c.log.access_log = false;
    c.rate_limits.user.quota = u32::MAX / 2;
    c.rate_limits.ip.quota = u32::MAX / 2;
    c
}

struct Fixture {
    state: web::Data<AppState>,
    /// The store the services run on, for reading a record as it is stored.
    store: Arc<dyn Store>,
    user: Uuid,
    token: String,
}

async fn fixture() -> Fixture {
    let config = Arc::new(config());
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let svc = Services::start(config.clone(), store.clone()).expect("services start");
    let user = store
        .create_user(NewUser {
            email: Email::parse("bench@example.com").expect("an email"),
            name: UserName::parse("Bench User").expect("a name"),
            password_hash: "x".into(),
            role: Role::User,
        })
        .await
        .expect("user");
    let token = svc.jwt.issue(user.id, Role::User, 0).expect("token");
    // Warm the cache.
    svc.user(user.id).await.expect("load").expect("exists");
    // The load is installed by the shard actor: wait (bounded) until it is a hit, or a
    // slow run (say, under valgrind) would read the cache before the actor did.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while svc.users.get(&user.id).is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the user was never cached"
        );
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    Fixture {
        store,
        state: web::Data::new(AppState {
            config,
            svc,
            lifecycle: Arc::new(Lifecycle::default()),
            metrics: None,
            gateway: None,
        }),
        user: user.id,
        token,
    }
}

fn benches(c: &mut Criterion) {
    let sys = actix_rt::System::new();
    let f = sys.block_on(fixture());
    let svc = &f.state.svc;

    let mut g = c.benchmark_group("jwt");
    g.bench_function("verify_hs256", |b| {
        b.iter(|| svc.jwt.verify(black_box(&f.token)).expect("valid"))
    });
    g.finish();

    let mut g = c.benchmark_group("limiter");
    let (limiter, policies) = svc.limiter.clone().expect("limiter on");
    let key = 0x9e37_79b9_7f4a_7c15_u64;
    g.bench_function("bulkhead_check_hashed", |b| {
        b.iter(|| {
            sys.block_on(limiter.check_hashed(policies.user, black_box(key)))
                .expect("decision")
        })
    });
    let governor = governor::RateLimiter::keyed(governor::Quota::per_minute(
        NonZeroU32::new(u32::MAX / 2).expect("non-zero"),
    ));
    let gkey = f.user;
    g.bench_function("governor_check_key", |b| {
        b.iter(|| governor.check_key(black_box(&gkey)).is_ok())
    });
    // The same block_on wrapper with no work, to read the limiter figure net of it.
    g.bench_function("block_on_overhead", |b| {
        b.iter(|| sys.block_on(async { black_box(1) }))
    });
    g.finish();

    let mut g = c.benchmark_group("cache");
    g.bench_function("user_cache_hit", |b| {
        b.iter(|| svc.users.get(black_box(&f.user)).expect("hit"))
    });
    let map = dashmap::DashMap::new();
    let value = svc.users.get(&f.user).expect("hit");
    map.insert(f.user, value);
    g.bench_function("dashmap_get_clone", |b| {
        b.iter(|| map.get(black_box(&f.user)).map(|v| v.clone()).expect("hit"))
    });
    g.finish();

    let mut g = c.benchmark_group("body");
    let user = sys
        .block_on(f.store.get_user(f.user))
        .expect("read")
        .expect("exists");
    g.bench_function("serialize_user", |b| {
        b.iter(|| CachedUser::from_user(black_box(&user)))
    });
    // One timestamp as chrono serializes it, and as every API body does (the same bytes).
    #[derive(serde::Serialize)]
    struct Stamp(
        #[serde(serialize_with = "bulkhead::domain::time::rfc3339")] chrono::DateTime<chrono::Utc>,
    );
    let t = user.created_at;
    g.bench_function("timestamp_chrono", |b| {
        b.iter(|| serde_json::to_vec(black_box(&t)).expect("json"))
    });
    g.bench_function("timestamp_rfc3339", |b| {
        b.iter(|| serde_json::to_vec(black_box(&Stamp(t))).expect("json"))
    });
    let _ = now();
    g.finish();

    let mut g = c.benchmark_group("request");
    let cached = svc.users.get(&f.user).expect("hit");
    let body = cached.body.clone();
    let etag = cached.etag.as_str().to_owned();
    let app = sys.block_on(test::init_service(http::app(f.state.clone())));
    let auth = format!("Bearer {}", f.token);
    // The same request bytes for both: the floor ignores the token.
    let me = || {
        test::TestRequest::get()
            .uri("/api/v1/users/me")
            .insert_header(("authorization", auth.as_str()))
            .to_request()
    };
    g.bench_function("bulkhead_users_me", |b| {
        b.iter(|| {
            sys.block_on(async {
                let res = test::call_service(&app, me()).await;
                assert!(res.status().is_success());
                res
            })
        })
    });
    // Routes after the first `{id}` resource: actix tries resources in registration
    // order and matches a dynamic one with a regex capture, so these pay for routing
    // what `/users/me` (registered before any) does not. An anonymous cached product
    // list, and a path no route has (every resource tried, then the 404).
    let anonymous = |uri: &'static str| test::TestRequest::get().uri(uri).to_request();
    g.bench_function("bulkhead_products_list", |b| {
        b.iter(|| {
            sys.block_on(async {
                let res = test::call_service(&app, anonymous("/api/v1/products")).await;
                assert!(res.status().is_success());
                res
            })
        })
    });
    g.bench_function("bulkhead_unmatched_404", |b| {
        b.iter(|| {
            sys.block_on(async {
                let res = test::call_service(&app, anonymous("/api/v1/nowhere/at/all")).await;
                assert_eq!(res.status(), 404);
                res
            })
        })
    });
    let floor = sys.block_on(test::init_service(App::new().route(
        "/api/v1/users/me",
        web::get().to(move || {
            let body = body.clone();
            let etag = etag.clone();
            async move {
                HttpResponse::Ok()
                    .insert_header(("etag", etag))
                    .content_type("application/json")
                    .body(body)
            }
        }),
    )));
    g.bench_function("floor_fixed_body", |b| {
        b.iter(|| sys.block_on(async { test::call_service(&floor, me()).await }))
    });
    g.finish();
}

criterion_group!(hot_path, benches);
criterion_main!(hot_path);
