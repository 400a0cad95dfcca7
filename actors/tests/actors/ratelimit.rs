use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bulkhead_actors::{ActorError, Algorithm, PolicyConfig, RateLimiter, RateLimiterConfig};

use crate::{poll_once, settle};

fn policy(quota: u32, window_secs: u64, algorithm: Algorithm) -> PolicyConfig {
    PolicyConfig {
        quota,
        window_secs,
        burst: None,
        algorithm,
        shadow: false,
    }
}

fn limiter(cfg: RateLimiterConfig, p: PolicyConfig) -> RateLimiter {
    RateLimiter::start(&cfg, vec![("user".into(), p)]).expect("valid config")
}

fn small() -> RateLimiterConfig {
    RateLimiterConfig {
        shards: 2,
        ..Default::default()
    }
}

/// 64 tasks x 100 checks on one key, on 8 OS threads: exactly `quota` are allowed.
#[actix_rt::test]
async fn concurrent_checks_on_one_key_never_exceed_quota() {
    for algorithm in [Algorithm::Gcra, Algorithm::SlidingWindow] {
        // A long window: no refill can happen while the test runs on the real clock.
        let rl = limiter(small(), policy(100, 3600, algorithm));
        settle().await;
        let user = rl.policy("user").unwrap();
        let allowed = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (rl, allowed) = (rl.clone(), allowed.clone());
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    rt.block_on(async move {
                        let tasks: Vec<_> = (0..8)
                            .map(|_| {
                                let (rl, allowed) = (rl.clone(), allowed.clone());
                                tokio::spawn(async move {
                                    for _ in 0..100 {
                                        if rl.check(user, "alice").await.unwrap().allowed {
                                            allowed.fetch_add(1, Ordering::Relaxed);
                                        }
                                        tokio::task::yield_now().await;
                                    }
                                })
                            })
                            .collect();
                        for t in tasks {
                            t.await.unwrap();
                        }
                    })
                })
            })
            .collect();
        // The first check of the key goes to the shard actor on this thread: keep it running.
        let joined = tokio::task::spawn_blocking(move || {
            threads.into_iter().for_each(|t| t.join().unwrap())
        });
        joined.await.unwrap();
        assert_eq!(allowed.load(Ordering::Relaxed), 100, "{algorithm:?}");
    }
}

#[actix_rt::test]
async fn gcra_refills_one_per_emission_interval() {
    tokio::time::pause();
    let rl = limiter(small(), policy(10, 10, Algorithm::Gcra));
    let user = rl.policy("user").unwrap();
    for i in 0..10 {
        let d = rl.check(user, "bob").await.unwrap();
        assert!(d.allowed);
        assert_eq!(d.remaining, 9 - i);
        assert_eq!((d.limit, d.quota, d.window_secs), (10, 10, 10));
    }
    let denied = rl.check(user, "bob").await.unwrap();
    assert!(!denied.allowed);
    assert_eq!(denied.retry_after, Some(Duration::from_secs(1)));
    assert_eq!(denied.reset, Duration::from_secs(10));
    tokio::time::advance(Duration::from_millis(999)).await;
    assert!(!rl.check(user, "bob").await.unwrap().allowed);
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(rl.check(user, "bob").await.unwrap().allowed);
    assert!(!rl.check(user, "bob").await.unwrap().allowed);
    // Other keys are independent.
    assert!(rl.check(user, "carol").await.unwrap().allowed);
}

#[actix_rt::test]
async fn gcra_burst_differs_from_quota() {
    tokio::time::pause();
    let p = PolicyConfig {
        burst: Some(3),
        ..policy(60, 60, Algorithm::Gcra)
    };
    let rl = limiter(small(), p);
    let user = rl.policy("user").unwrap();
    for _ in 0..3 {
        assert!(rl.check(user, "k").await.unwrap().allowed);
    }
    let d = rl.check(user, "k").await.unwrap();
    assert!(!d.allowed);
    assert_eq!((d.limit, d.quota), (3, 60));
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(rl.check(user, "k").await.unwrap().allowed);
}

#[actix_rt::test]
async fn sliding_window_weights_the_previous_window() {
    tokio::time::pause();
    let rl = limiter(small(), policy(10, 10, Algorithm::SlidingWindow));
    let user = rl.policy("user").unwrap();
    for _ in 0..10 {
        assert!(rl.check(user, "dan").await.unwrap().allowed);
    }
    let denied = rl.check(user, "dan").await.unwrap();
    assert!(!denied.allowed);
    assert!(denied.retry_after.unwrap() > Duration::ZERO);
    // Halfway into the next window the previous 10 count as 5.
    tokio::time::advance(Duration::from_secs(15)).await;
    for _ in 0..5 {
        assert!(rl.check(user, "dan").await.unwrap().allowed);
    }
    assert!(!rl.check(user, "dan").await.unwrap().allowed);
    // Two windows on, nothing remains.
    tokio::time::advance(Duration::from_secs(20)).await;
    let d = rl.check(user, "dan").await.unwrap();
    assert!(d.allowed);
    assert_eq!(d.remaining, 9);
}

#[actix_rt::test]
async fn sweep_removes_only_idle_fresh_keys() {
    tokio::time::pause();
    let cfg = RateLimiterConfig {
        idle_ttl_secs: 5,
        sweep_interval_secs: 3600,
        ..small()
    };
    let rl = limiter(cfg, policy(10, 10, Algorithm::Gcra));
    let user = rl.policy("user").unwrap();
    for i in 0..100 {
        rl.check(user, &format!("ip-{i}")).await.unwrap();
    }
    assert_eq!(rl.keys(), 100);
    assert_eq!(rl.sweep_now().await.unwrap(), 0, "buckets not yet refilled");
    tokio::time::advance(Duration::from_secs(1)).await; // refilled, but idle < ttl
    assert_eq!(rl.sweep_now().await.unwrap(), 0);
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(rl.sweep_now().await.unwrap(), 100);
    assert_eq!(rl.keys(), 0);
}

#[actix_rt::test]
async fn interval_sweep_runs_on_its_own() {
    tokio::time::pause();
    let cfg = RateLimiterConfig {
        idle_ttl_secs: 1,
        sweep_interval_secs: 10,
        ..small()
    };
    let rl = limiter(cfg, policy(10, 10, Algorithm::SlidingWindow));
    let user = rl.policy("user").unwrap();
    for i in 0..10 {
        rl.check(user, &format!("k{i}")).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(45)).await;
    settle().await;
    assert_eq!(rl.keys(), 0);
}

#[actix_rt::test]
async fn full_shard_refuses_new_keys_instead_of_failing_open() {
    tokio::time::pause();
    let cfg = RateLimiterConfig {
        shards: 1,
        max_keys_per_shard: 5,
        ..Default::default()
    };
    let rl = limiter(cfg, policy(10, 10, Algorithm::Gcra));
    let user = rl.policy("user").unwrap();
    for i in 0..5 {
        assert!(rl.check(user, &format!("k{i}")).await.unwrap().allowed);
    }
    let refused = rl.check(user, "k5").await;
    assert!(
        matches!(refused, Err(ActorError::Overloaded { .. })),
        "{refused:?}"
    );
    // Known keys keep working; once the old buckets are fresh again they make room.
    assert!(rl.check(user, "k0").await.unwrap().allowed);
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(rl.check(user, "k5").await.unwrap().allowed);
    assert!(rl.keys() <= 5);
}

#[actix_rt::test]
async fn full_mailbox_rejects_at_once() {
    let cfg = RateLimiterConfig {
        shards: 1,
        mailbox_capacity: 1,
        ..Default::default()
    };
    let rl = limiter(cfg, policy(10, 10, Algorithm::Gcra));
    settle().await; // let started() set the capacity
    let user = rl.policy("user").unwrap();
    let mut results = Vec::new();
    let mut pending = Vec::new();
    for i in 0..8 {
        let mut fut = Box::pin(rl.check_via_actor(user, i));
        match poll_once(fut.as_mut()) {
            Poll::Ready(r) => results.push(r),
            Poll::Pending => pending.push(fut),
        }
    }
    assert!(
        results
            .iter()
            .any(|r| matches!(r, Err(ActorError::Overloaded { .. }))),
        "a full mailbox must answer on the first poll: {results:?}"
    );
    // The accepted ones complete.
    for fut in pending {
        fut.await.unwrap();
    }
}

#[actix_rt::test]
async fn panicking_handler_answers_and_restarts() {
    let rl = limiter(small(), policy(10, 10, Algorithm::Gcra));
    let user = rl.policy("user").unwrap();
    let answer = rl.inject_panic().await;
    assert_eq!(
        answer,
        Err(ActorError::Panicked {
            actor: "rate_limiter"
        })
    );
    for _ in 0..100 {
        if rl.restarts() == 1 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(rl.restarts(), 1);
    // New keys need the restarted actor: it answers.
    for i in 0..20 {
        assert!(rl.check(user, &format!("after-{i}")).await.unwrap().allowed);
    }
}

#[actix_rt::test]
async fn concurrency_permit_is_released_on_drop_and_abort() {
    let cfg = RateLimiterConfig {
        concurrency_per_key: 2,
        ..small()
    };
    let rl = limiter(cfg, policy(10, 10, Algorithm::Gcra));
    let a = rl.acquire_concurrency("eve").await.unwrap();
    let b = rl.acquire_concurrency("eve").await.unwrap();
    assert_eq!(b.in_flight(), 2);
    assert_eq!(
        rl.acquire_concurrency("eve").await.unwrap_err(),
        ActorError::ConcurrencyLimited
    );
    assert!(
        rl.acquire_concurrency("frank").await.is_ok(),
        "other keys are independent"
    );
    drop(a);
    let c = rl.acquire_concurrency("eve").await.unwrap();
    // A task holding a permit is aborted mid-request: its permit is released.
    let holder = {
        let rl = rl.clone();
        drop(b);
        actix_rt::spawn(async move {
            let _p = rl.acquire_concurrency("eve").await.unwrap();
            std::future::pending::<()>().await;
        })
    };
    settle().await;
    assert_eq!(
        rl.acquire_concurrency("eve").await.unwrap_err(),
        ActorError::ConcurrencyLimited
    );
    holder.abort();
    let _ = holder.await;
    let d = rl.acquire_concurrency("eve").await.unwrap();
    assert_eq!(d.in_flight(), 2);
    drop((c, d));
    // A panicking holder releases too.
    let rl2 = rl.clone();
    let panicked = actix_rt::spawn(async move {
        let _p = rl2.acquire_concurrency("eve").await.unwrap();
        panic!("request handler bug");
    });
    assert!(panicked.await.is_err());
    let (x, y) = (
        rl.acquire_concurrency("eve").await,
        rl.acquire_concurrency("eve").await,
    );
    assert!(x.is_ok() && y.is_ok());
}

#[actix_rt::test]
async fn invalid_config_names_the_field() {
    let err = RateLimiter::start(
        &small(),
        vec![("login".into(), policy(0, 60, Algorithm::Gcra))],
    )
    .err()
    .unwrap();
    assert!(err.contains("rate_limits.login.quota"), "{err}");
}

#[actix_rt::test]
async fn pinned_future_helper_works() {
    // Sanity check of the poll_once helper used above.
    let fut = pin!(async { 7 });
    assert_eq!(poll_once(fut), Poll::Ready(7));
}

/// A reload keeps what each key has used: 6 of 10 used, the quota raised to 100 leaves
/// 94 (not a fresh 100), lowered to 4 leaves none.
#[actix_rt::test]
async fn a_quota_change_gives_no_fresh_burst() {
    tokio::time::pause();
    let rl = limiter(small(), policy(10, 60, Algorithm::Gcra));
    settle().await;
    let user = rl.policy("user").unwrap();
    for _ in 0..6 {
        assert!(rl.check(user, "k").await.unwrap().allowed);
    }
    let moved = rl
        .reconfigure(
            true,
            vec![("user".into(), policy(100, 60, Algorithm::Gcra))],
        )
        .await
        .unwrap();
    assert_eq!(moved, 1);
    let d = rl.check(user, "k").await.unwrap();
    assert!(d.allowed);
    assert_eq!((d.quota, d.remaining), (100, 93));
    assert_eq!(rl.check(user, "fresh").await.unwrap().remaining, 99);
    rl.reconfigure(true, vec![("user".into(), policy(4, 60, Algorithm::Gcra))])
        .await
        .unwrap();
    let d = rl.check(user, "k").await.unwrap();
    assert!(!d.allowed, "7 used of a quota of 4");
    assert_eq!(d.retry_after, Some(Duration::from_secs(15)));
    let renamed = rl
        .reconfigure(true, vec![("other".into(), policy(4, 60, Algorithm::Gcra))])
        .await;
    assert!(renamed.is_err(), "policies are fixed at start");
}

/// 8 threads hammer one key while reloads switch its policy back and forth between
/// GCRA and the sliding window with the same quota: the carried-over counts and the
/// decisions racing the reloads together admit exactly the quota. A decision that read
/// the policies just before a reload and the key just after its carry-over must follow
/// the key's generation: deciding a sliding-window word as GCRA (or the reverse) reads
/// it as a fresh key or as one spent for hours.
#[actix_rt::test]
async fn decisions_racing_reloads_admit_exactly_the_quota() {
    // Every attempt must admit exactly the quota; an attempt only counts as a race when
    // reloads landed while the quota had room (a loaded machine may starve this thread
    // until the threads have spent it), so a few attempts are allowed for that.
    for _ in 0..5 {
        let (allowed, raced) = race_reloads_against_decisions().await;
        assert!(
            (999..=1_000).contains(&allowed),
            "{allowed} allowed of 1000 across {raced} reloads with room"
        );
        if raced >= 2 {
            return;
        }
    }
    panic!("no attempt had two reloads land while the quota had room");
}

/// Admitted requests, and reloads that completed while fewer than the quota were.
async fn race_reloads_against_decisions() -> (usize, usize) {
    let rl = limiter(small(), policy(1_000, 3600, Algorithm::Gcra));
    settle().await;
    let user = rl.policy("user").unwrap();
    let allowed = Arc::new(AtomicUsize::new(0));
    let running = Arc::new(AtomicUsize::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (rl, allowed, running) = (rl.clone(), allowed.clone(), running.clone());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    // 4,000 checks, the first 1,000 admitted while the reloads run.
                    for i in 0..500 {
                        if rl.check(user, "hot").await.unwrap().allowed {
                            allowed.fetch_add(1, Ordering::SeqCst);
                        }
                        if i % 4 == 0 {
                            std::thread::sleep(Duration::from_micros(20));
                        }
                    }
                });
                running.fetch_sub(1, Ordering::SeqCst);
            })
        })
        .collect();
    let (mut reloads, mut raced) = (0, 0);
    while running.load(Ordering::SeqCst) > 0 {
        let algorithm = [Algorithm::SlidingWindow, Algorithm::Gcra][reloads % 2];
        rl.reconfigure(true, vec![("user".into(), policy(1_000, 3600, algorithm))])
            .await
            .unwrap();
        reloads += 1;
        if allowed.load(Ordering::SeqCst) < 1_000 {
            raced += 1;
        }
    }
    for t in threads {
        t.join().unwrap();
    }
    (allowed.load(Ordering::SeqCst), raced)
}

/// Shadow: decided and counted, refused by nobody; the state is what enforcing leaves.
#[actix_rt::test]
async fn a_shadow_policy_refuses_nothing() {
    tokio::time::pause();
    let shadow = PolicyConfig {
        shadow: true,
        ..policy(5, 60, Algorithm::Gcra)
    };
    let rl = limiter(small(), shadow);
    settle().await;
    let user = rl.policy("user").unwrap();
    for i in 0..8 {
        let d = rl.check(user, "k").await.unwrap();
        assert!(d.allowed, "request {i} refused in shadow mode");
        assert_eq!(d.retry_after, None);
    }
    // Enforced again: the key is where enforcing would have left it (5 used).
    rl.reconfigure(true, vec![("user".into(), policy(5, 60, Algorithm::Gcra))])
        .await
        .unwrap();
    assert!(!rl.check(user, "k").await.unwrap().allowed);
    assert!(rl.enabled());
    rl.reconfigure(false, vec![("user".into(), policy(5, 60, Algorithm::Gcra))])
        .await
        .unwrap();
    assert!(!rl.enabled());
}
