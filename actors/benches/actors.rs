//! Hot-path costs of the actor crate, with `governor` as the baseline for one limiter
//! decision. Async paths run inside one actix `System::block_on` per sample
//! (`iter_custom`), so the figures exclude executor entry costs.

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bulkhead_actors::ratelimit::{raw_decide, Policy};
use bulkhead_actors::{
    Algorithm, CacheConfig, Circuit, CircuitConfig, Outcome, PolicyConfig, RateLimiter,
    RateLimiterConfig, ShardedCache,
};
use criterion::{criterion_group, criterion_main, Criterion};
use governor::{Quota, RateLimiter as Governor};

// Never limited: every variant measures the same "allowed" path.
const QUOTA: u32 = 1_000_000_000;

fn policy(algorithm: Algorithm) -> PolicyConfig {
    PolicyConfig {
        quota: QUOTA,
        window_secs: 1,
        burst: None,
        algorithm,
        shadow: false,
    }
}

fn ratelimit(c: &mut Criterion) {
    let mut g = c.benchmark_group("ratelimit_decision");
    for algorithm in [Algorithm::Gcra, Algorithm::SlidingWindow] {
        // The sliding window counts in 20 bits: stay under its largest quota (1 per µs).
        let cfg = PolicyConfig {
            quota: 1_048_575,
            ..policy(algorithm)
        };
        let p = Policy::new(cfg, Duration::ZERO);
        let word = AtomicU64::new(0);
        let mut now = 0u64;
        g.bench_function(format!("raw_{algorithm:?}"), |b| {
            b.iter(|| {
                now += 1_000;
                black_box(raw_decide(&p, &word, black_box(now)))
            })
        });
    }

    let gov = Governor::keyed(Quota::per_second(NonZeroU32::new(QUOTA).unwrap()));
    let key = "user-42".to_string();
    g.bench_function("governor_keyed", |b| {
        b.iter(|| black_box(gov.check_key(black_box(&key)).is_ok()))
    });

    let sys = actix_rt::System::new();
    {
        let algorithm = Algorithm::Gcra;
        let rl = sys.block_on(async {
            let cfg = RateLimiterConfig::default();
            let rl = RateLimiter::start(&cfg, vec![("user".into(), policy(algorithm))]).unwrap();
            let user = rl.policy("user").unwrap();
            rl.check(user, "user-42").await.unwrap();
            rl
        });
        let user = rl.policy("user").unwrap();
        g.bench_function(format!("handle_check_{algorithm:?}"), |b| {
            b.iter_custom(|iters| {
                sys.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(rl.check(user, black_box("user-42")).await.unwrap());
                    }
                    start.elapsed()
                })
            })
        });
        {
            // What every check would cost if it went through the shard actor's mailbox.
            g.bench_function("actor_round_trip_check", |b| {
                b.iter_custom(|iters| {
                    sys.block_on(async {
                        let start = Instant::now();
                        for _ in 0..iters {
                            black_box(rl.check_via_actor(user, 42).await.unwrap());
                        }
                        start.elapsed()
                    })
                })
            });
        }
    }
    g.finish();
    // Dropping an actix System with live actors outside its runtime panics in actix: leak it.
    std::mem::forget(sys);
}

fn cache(c: &mut Criterion) {
    let sys = actix_rt::System::new();
    let cache: ShardedCache<[u8; 16], Arc<Vec<u8>>> = sys.block_on(async {
        let cfg = CacheConfig {
            capacity: 100_000,
            ..Default::default()
        };
        let cache = ShardedCache::start("user_cache", &cfg).unwrap();
        for i in 0..1_000u32 {
            let mut k = [0u8; 16];
            k[..4].copy_from_slice(&i.to_le_bytes());
            cache.insert(k, Arc::new(vec![0u8; 512])).await.unwrap();
        }
        cache
    });
    let mut k = [0u8; 16];
    k[..4].copy_from_slice(&7u32.to_le_bytes());
    c.bench_function("cache_hit_get_or_load", |b| {
        b.iter_custom(|iters| {
            sys.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let v: Result<_, bulkhead_actors::ActorError> = cache
                        .get_or_load(black_box(k), || async { unreachable!("hit") })
                        .await;
                    black_box(v.unwrap());
                }
                start.elapsed()
            })
        })
    });
    std::mem::forget((cache, sys));
}

fn circuit(c: &mut Criterion) {
    let sys = actix_rt::System::new();
    let circuit =
        sys.block_on(async { Circuit::start("postgres", CircuitConfig::default()).unwrap() });
    c.bench_function("circuit_acquire_record_closed", |b| {
        b.iter(|| {
            circuit
                .try_acquire()
                .unwrap()
                .record(black_box(Outcome::Success))
        })
    });
}

criterion_group!(benches, ratelimit, cache, circuit);
criterion_main!(benches);
