//! Global rate limits (API.md "Fleet"): instances of the real binary on one database and
//! one `redis-server` of the test's own, which the test kills and restarts.

use std::time::{Duration, Instant};

use reqwest::Method;

use crate::instance::{eventually, Fleet, Instance, InstanceSpec};
use crate::redis_server::RedisServer;

const QUOTA: u32 = 300;
const WINDOW_SECS: f64 = 60.0;
/// Requests in flight at once over the fleet (under the per-user concurrency limit).
const CONCURRENCY: usize = 6;

fn spec(redis: Option<&RedisServer>, timeout_ms: u64) -> InstanceSpec {
    let spec = InstanceSpec::default()
        .env("BULKHEAD__RATE_LIMITS__USER__QUOTA", QUOTA)
        .env(
            "BULKHEAD__RATE_LIMITS__USER__WINDOW_SECS",
            WINDOW_SECS as u64,
        );
    match redis {
        None => spec,
        Some(redis) => spec
            .env("BULKHEAD__REDIS__URL", redis.url())
            .env("BULKHEAD__REDIS__TIMEOUT_MS", timeout_ms)
            .env("BULKHEAD__REDIS__HEARTBEAT_INTERVAL_MS", 200)
            .env("BULKHEAD__REDIS__HEARTBEAT_TTL_MS", 1_000)
            .env("BULKHEAD__REDIS__CIRCUIT__OPEN_WAIT_MS", 300),
    }
}

/// Waits until every instance's gauge says `global` and counts the whole fleet.
async fn wait_global(fleet: &Fleet, global: bool) {
    let want = if global { 1.0 } else { 0.0 };
    for instance in &fleet.instances {
        eventually(
            "bulkhead_ratelimit_global",
            Duration::from_secs(15),
            || async {
                (instance.metric("bulkhead_ratelimit_global").await == Some(want)).then_some(())
            },
        )
        .await;
        if global {
            let n = fleet.instances.len() as f64;
            eventually("fleet size", Duration::from_secs(15), || async {
                (instance.metric("bulkhead_ratelimit_fleet_size").await == Some(n)).then_some(())
            })
            .await;
        }
    }
}

struct Run {
    /// Admitted (200) per instance.
    admitted: Vec<u32>,
    limited: u32,
    elapsed: Duration,
    slowest: Duration,
}

impl Run {
    fn total(&self) -> u32 {
        self.admitted.iter().sum()
    }
}

/// `n` requests of one user, round-robin over the instances, `CONCURRENCY` at a time.
/// Every answer must be 200 or 429.
async fn hammer(instances: &[Instance], token: &str, n: usize) -> Run {
    let start = Instant::now();
    let mut admitted = vec![0u32; instances.len()];
    let mut limited = 0;
    let mut slowest = Duration::ZERO;
    let mut sent = 0;
    while sent < n {
        let batch = (sent..n.min(sent + CONCURRENCY)).map(|i| {
            let instance = &instances[i % instances.len()];
            async move {
                let t = Instant::now();
                let res = instance
                    .authed(Method::GET, "/api/v1/users/me", token)
                    .send()
                    .await
                    .expect("an answer");
                (i % instances.len(), res.status().as_u16(), t.elapsed())
            }
        });
        for (i, status, took) in futures_util::future::join_all(batch).await {
            match status {
                200 => admitted[i] += 1,
                429 => limited += 1,
                other => panic!("instance {i} answered {other}"),
            }
            slowest = slowest.max(took);
        }
        sent = n.min(sent + CONCURRENCY);
    }
    Run {
        admitted,
        limited,
        elapsed: start.elapsed(),
        slowest,
    }
}

/// What one GCRA of the quota admits from fresh in `elapsed`: the burst plus the refill.
fn one_gcra(elapsed: Duration) -> f64 {
    f64::from(QUOTA) * (1.0 + elapsed.as_secs_f64() / WINDOW_SECS)
}

#[tokio::test]
async fn three_instances_admit_one_quota_and_local_ones_three() {
    let redis = RedisServer::start();
    // A generous Redis timeout: a loaded CI machine must not turn decisions into
    // fallbacks here (the fallback has its own test).
    let fleet = Fleet::start_with(3, |_| spec(Some(&redis), 200)).await;
    let user = fleet.get(0).new_user().await;
    wait_global(&fleet, true).await;
    let run = hammer(&fleet.instances, &user.token, 5 * QUOTA as usize).await;
    let expected = one_gcra(run.elapsed);
    eprintln!(
        "global: admitted {} ({:?} per instance), limited {}, in {:?}; one GCRA admits {expected:.1}",
        run.total(),
        run.admitted,
        run.limited,
        run.elapsed
    );
    let error = (f64::from(run.total()) - expected).abs() / f64::from(QUOTA);
    assert!(
        error <= 0.05,
        "admitted {} against {expected:.1}",
        run.total()
    );
    // Spread: every instance served part of the quota, none all of it.
    assert!(run.admitted.iter().all(|&a| a > 0 && a < QUOTA));
    drop(fleet);

    // The control: the same on local limits admits the quota on every instance.
    let fleet = Fleet::start_with(3, |_| spec(None, 0)).await;
    let user = fleet.get(0).new_user().await;
    let run = hammer(&fleet.instances, &user.token, 5 * QUOTA as usize).await;
    let expected = 3.0 * one_gcra(run.elapsed);
    eprintln!(
        "local: admitted {} ({:?} per instance) in {:?}; expected {expected:.1}",
        run.total(),
        run.admitted,
        run.elapsed
    );
    assert!((f64::from(run.total()) - expected).abs() <= 0.02 * expected);
}

#[tokio::test]
async fn redis_killed_falls_back_to_a_share_and_restarted_is_global_again() {
    let mut redis = RedisServer::start();
    let fleet = Fleet::start_with(3, |_| spec(Some(&redis), 20)).await;
    let (before, after) = (fleet.get(0).new_user().await, fleet.get(1).new_user().await);
    let last = fleet.get(2).new_user().await;
    wait_global(&fleet, true).await;

    redis.kill();
    let run = hammer(&fleet.instances, &before.token, 3 * QUOTA as usize).await;
    eprintln!(
        "Redis down: admitted {} ({:?} per instance), slowest answer {:?}",
        run.total(),
        run.admitted,
        run.slowest
    );
    // Each instance enforces quota / 3 (burst 100): about the quota over the fleet,
    // never unlimited. The first answers after the kill may still come from Redis
    // errors' timeouts, never from a hang.
    let share = one_gcra(run.elapsed) / 3.0;
    for &a in &run.admitted {
        assert!(
            f64::from(a) <= share + 2.0 && f64::from(a) >= 0.9 * share,
            "{a} admitted, share {share:.1}"
        );
    }
    assert!(
        run.slowest < Duration::from_secs(1),
        "slowest {:?}",
        run.slowest
    );
    for instance in &fleet.instances {
        assert_eq!(instance.get("/ready").await.status(), 200);
    }
    wait_global(&fleet, false).await;

    redis.restart();
    wait_global(&fleet, true).await;
    let run = hammer(&fleet.instances, &after.token, 5 * QUOTA as usize).await;
    let expected = one_gcra(run.elapsed);
    eprintln!(
        "Redis back: admitted {} ({:?} per instance); one GCRA admits {expected:.1}",
        run.total(),
        run.admitted
    );
    let error = (f64::from(run.total()) - expected).abs() / f64::from(QUOTA);
    assert!(
        error <= 0.05,
        "admitted {} against {expected:.1}",
        run.total()
    );
    // A user never limited before is untouched by the others' traffic.
    assert_eq!(fleet.get(2).me_status(&last.token).await, 200);
}
