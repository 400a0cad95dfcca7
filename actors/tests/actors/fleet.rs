//! Global limits against a real `redis-server` of the test's own: two limiters in one
//! process stand for two instances (the service-level tests run real processes). Redis
//! keeps its own clock, so these run on the real one, with margins that do not depend on
//! the machine's speed.

use std::time::{Duration, Instant};

use bulkhead_actors::{
    Algorithm, CircuitConfig, PolicyConfig, PolicyId, RateLimiter, RateLimiterConfig, RedisLimiter,
    RedisSettings, WindowKind,
};

use crate::redis_server::RedisServer;
use crate::settle;

const WINDOW_SECS: u64 = 60;

fn settings(url: &str, prefix: &str, fleet_size: u32, timeout: Duration) -> RedisSettings {
    RedisSettings {
        url: url.to_owned(),
        instance_id: format!("{prefix}-{:?}", Instant::now()),
        key_prefix: prefix.to_owned(),
        timeout,
        connect_timeout: Duration::from_millis(500),
        heartbeat_interval: Duration::from_millis(200),
        heartbeat_ttl: Duration::from_millis(1_000),
        max_in_flight: 64,
        mailbox_capacity: 256,
        fleet_size,
        max_overshoot: 0.05,
        max_lease: 1_000,
        circuit: CircuitConfig {
            window: WindowKind::Count,
            window_size: 10,
            minimum_calls: 3,
            open_wait_ms: 300,
            half_open_trial_calls: 1,
            half_open_timeout_ms: 2_000,
            ..CircuitConfig::default()
        },
    }
}

fn gcra(quota: u32) -> PolicyConfig {
    PolicyConfig {
        quota,
        window_secs: WINDOW_SECS,
        burst: None,
        algorithm: Algorithm::Gcra,
        shadow: false,
    }
}

fn instance(quota: u32, redis: Option<RedisSettings>) -> (RateLimiter, PolicyId) {
    let policy = gcra(quota);
    let cfg = RateLimiterConfig {
        shards: 2,
        ..Default::default()
    };
    let global = redis.map(|s| {
        (
            RedisLimiter::start(s).expect("valid settings"),
            &["user"][..],
        )
    });
    let rl = RateLimiter::start_global(&cfg, true, vec![("user".into(), policy)], global)
        .expect("valid config");
    let id = rl.policy("user").expect("configured");
    (rl, id)
}

/// Sends `n` requests of one key, alternating over the instances; returns how many were
/// admitted and the slowest decision.
async fn spread(fleet: &[(RateLimiter, PolicyId)], key: u64, n: usize) -> (u32, Duration) {
    let mut allowed = 0;
    let mut slowest = Duration::ZERO;
    for i in 0..n {
        let (rl, policy) = &fleet[i % fleet.len()];
        let t = Instant::now();
        let d = rl
            .check_named(*policy, key, || format!("user-{key}"))
            .await
            .expect("a decision, never an error");
        slowest = slowest.max(t.elapsed());
        allowed += u32::from(d.allowed);
    }
    (allowed, slowest)
}

/// What one GCRA of `quota` per minute admits in `elapsed` from fresh: the burst plus
/// the refill.
fn gcra_admits(quota: u32, elapsed: Duration) -> f64 {
    f64::from(quota) + elapsed.as_secs_f64() * f64::from(quota) / WINDOW_SECS as f64
}

#[actix_rt::test]
async fn two_instances_admit_the_quota_once_and_local_ones_twice() {
    let redis = RedisServer::start();
    let quota = 400;
    let fleet: Vec<_> = (0..2)
        .map(|_| {
            instance(
                quota,
                Some(settings(&redis.url(), "acc", 2, Duration::from_millis(500))),
            )
        })
        .collect();
    settle().await;
    let start = Instant::now();
    let (allowed, _) = spread(&fleet, 7, 2_000).await;
    let expected = gcra_admits(quota, start.elapsed());
    eprintln!("global: admitted {allowed} of 2000 over 2 instances; one GCRA admits {expected:.1}");
    // Leases: floor(0.05 * 400 / 2) = 10 tokens per instance, so the fleet is within
    // 20 (5 %) of one GCRA either way (over: leases spent early; under: leases unspent).
    assert!(
        (f64::from(allowed) - expected).abs() <= 0.05 * f64::from(quota) + 1.0,
        "admitted {allowed}, one GCRA admits {expected:.1}"
    );
    assert!(fleet.iter().all(|(rl, _)| rl.is_global()));

    // The control: the same traffic on local limits admits the quota on each instance.
    let local: Vec<_> = (0..2).map(|_| instance(quota, None)).collect();
    settle().await;
    let start = Instant::now();
    let (allowed, _) = spread(&local, 7, 2_000).await;
    let expected = 2.0 * gcra_admits(quota, start.elapsed());
    eprintln!("local: admitted {allowed} of 2000 over 2 instances ({expected:.1} expected)");
    assert!(
        (f64::from(allowed) - expected).abs() <= 2.0,
        "local: admitted {allowed}, expected {expected:.1}"
    );
}

#[actix_rt::test]
async fn redis_down_falls_back_to_a_share_of_the_quota_and_comes_back() {
    let mut redis = RedisServer::start();
    let quota = 100;
    let timeout = Duration::from_millis(50);
    let fleet: Vec<_> = (0..2)
        .map(|_| instance(quota, Some(settings(&redis.url(), "fb", 2, timeout))))
        .collect();
    settle().await;
    let (allowed, _) = spread(&fleet, 1, 20).await;
    assert_eq!(allowed, 20);
    assert!(fleet.iter().all(|(rl, _)| rl.is_global()));

    redis.kill();
    // Each instance now admits quota / 2 of a key (burst 50), never more, never an
    // error, and no decision waits for Redis past its timeout (generous margin for a
    // loaded machine: the point is that nothing waits for a reconnect).
    let (allowed, slowest) = spread(&fleet, 2, 400).await;
    eprintln!("fallback: admitted {allowed} of 400 over 2 instances, slowest {slowest:?}");
    assert!(
        (2 * 45..=2 * 52).contains(&allowed),
        "fallback admitted {allowed} of key 2 over 2 instances"
    );
    assert!(
        slowest < timeout + Duration::from_millis(500),
        "slowest {slowest:?}"
    );
    assert!(fleet.iter().all(|(rl, _)| !rl.is_global()));

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !fleet.iter().all(|(rl, _)| rl.is_global()) {
        assert!(
            Instant::now() < deadline,
            "still not global after Redis came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Global again: a fresh key gets the quota once over both instances.
    let start = Instant::now();
    let (allowed, _) = spread(&fleet, 3, 600).await;
    let expected = gcra_admits(quota, start.elapsed());
    eprintln!("after restart: admitted {allowed} of 600; one GCRA admits {expected:.1}");
    assert!(
        (f64::from(allowed) - expected).abs() <= 0.05 * f64::from(quota) + 1.0,
        "after restart: admitted {allowed}, one GCRA admits {expected:.1}"
    );
}

#[actix_rt::test]
async fn heartbeats_count_the_instances() {
    let redis = RedisServer::start();
    let timeout = Duration::from_millis(500);
    let a = RedisLimiter::start(settings(&redis.url(), "hb", 0, timeout)).unwrap();
    let b = RedisLimiter::start(settings(&redis.url(), "hb", 0, timeout)).unwrap();
    a.heartbeat_now().await.unwrap();
    assert_eq!(b.heartbeat_now().await.unwrap(), 2);
    assert_eq!(a.heartbeat_now().await.unwrap(), 2);
    assert_eq!((a.fleet_size(), b.fleet_size()), (2, 2));
    // floor(0.05 * 6000 / 2)
    assert_eq!(a.lease_size(6_000), 150);
    // Pinned wins over the heartbeats.
    let c = RedisLimiter::start(settings(&redis.url(), "hb", 5, timeout)).unwrap();
    c.heartbeat_now().await.unwrap();
    assert_eq!(c.fleet_size(), 5);
}

/// A reload reaches global keys: a lowered quota is in force on the next decisions
/// (Redis's TAT kept, so no fresh burst; leases resized at their next refill), shadow
/// refuses nothing on a spent global key, enforcing again refuses it, and a global
/// policy cannot be reloaded into a sliding window.
#[actix_rt::test]
async fn a_reload_reaches_global_keys() {
    let redis = RedisServer::start();
    let (rl, user) = instance(
        100,
        Some(settings(&redis.url(), "rl", 1, Duration::from_millis(500))),
    );
    let fleet = [(rl.clone(), user)];
    settle().await;
    let (allowed, _) = spread(&fleet, 9, 60).await;
    assert_eq!(allowed, 60, "within the burst of 100");

    rl.reconfigure(true, vec![("user".into(), gcra(50))])
        .await
        .expect("a quota change of a global policy applies");
    // 60 of 100 used is 36 s of debt; under 50 a minute (1.2 s a token, 60 s of
    // tolerance) about 20 more fit, plus at most one lease (floor(0.05 * 100) = 5)
    // held from before: far below the fresh burst of 50.
    let (allowed, _) = spread(&fleet, 9, 100).await;
    assert!(
        (1..=30).contains(&allowed),
        "admitted {allowed} after lowering the quota to 50"
    );

    rl.reconfigure(
        true,
        vec![(
            "user".into(),
            PolicyConfig {
                shadow: true,
                ..gcra(50)
            },
        )],
    )
    .await
    .unwrap();
    for i in 0..20 {
        let d = rl.check_named(user, 9, || "user-9".into()).await.unwrap();
        assert!(d.allowed, "request {i} refused in shadow mode");
        assert_eq!(d.retry_after, None);
    }
    rl.reconfigure(true, vec![("user".into(), gcra(50))])
        .await
        .unwrap();
    let d = rl.check_named(user, 9, || "user-9".into()).await.unwrap();
    assert!(!d.allowed, "the spent global key is refused once enforced");
    assert!(rl.is_global());

    let sliding = PolicyConfig {
        algorithm: Algorithm::SlidingWindow,
        ..gcra(50)
    };
    let err = rl
        .reconfigure(true, vec![("user".into(), sliding)])
        .await
        .unwrap_err();
    assert!(err.contains("rate_limits.user.algorithm"), "{err}");
}
