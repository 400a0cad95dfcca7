//! Cross-instance invalidation (LISTEN/NOTIFY): a change made through one instance is in
//! force on the others within 100 ms (a password or email change included: the old access
//! token is 401 there); a listener whose backend is terminated reconnects
//! and resynchronises, and meanwhile serves no user state older than the degraded TTL.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::instance::{eventually, listening, Fleet, Instance, InstanceSpec, TestUser};

/// The contract's bound for a change to reach every instance.
const FLEET_BOUND: Duration = Duration::from_millis(100);

/// How long a test waits for something that should take far less (a listener connecting).
const PATIENCE: Duration = Duration::from_secs(15);

async fn gauge(instance: &Instance, sample: &str) -> f64 {
    instance.metric(sample).await.unwrap_or(0.0)
}

async fn reconnects(instance: &Instance) -> f64 {
    gauge(instance, "bulkhead_invalidation_reconnects_total").await
}

async fn user_lag_count(instance: &Instance) -> f64 {
    gauge(
        instance,
        "bulkhead_cache_invalidation_lag_seconds_count{kind=\"user\"}",
    )
    .await
}

/// Poll `instance` with `token` until `GET /users/me` answers `status`; the time from
/// `since` to the sending of the first request that saw it. Panics after `PATIENCE`.
async fn time_until_status(
    instance: &Instance,
    token: &str,
    status: u16,
    since: Instant,
) -> Duration {
    loop {
        let sent = Instant::now();
        if instance.me_status(token).await == status {
            return sent.saturating_duration_since(since);
        }
        assert!(
            since.elapsed() < PATIENCE,
            "instance {} never answered {status}",
            instance.index
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn set_status(a: &Instance, admin: &TestUser, user: &TestUser, status: &str) {
    let res = a
        .authed(
            Method::POST,
            &format!("/api/v1/users/{}/status", user.id),
            &admin.token,
        )
        .json(&json!({ "status": status }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{status} through instance {}", a.index);
}

async fn delete_user(a: &Instance, admin: &TestUser, user: &TestUser) {
    let res = a
        .authed(
            Method::DELETE,
            &format!("/api/v1/users/{}", user.id),
            &admin.token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204, "deletion through instance {}", a.index);
}

/// ETag of `GET /users/me` (with its status).
async fn me(instance: &Instance, token: &str) -> (u16, Option<String>) {
    let res = instance
        .authed(Method::GET, "/api/v1/users/me", token)
        .send()
        .await
        .unwrap();
    let etag = res
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_string());
    (res.status().as_u16(), etag)
}

#[tokio::test]
async fn suspension_deletion_password_and_email_changes_reach_the_other_instance_within_100ms() {
    let fleet = Fleet::start(2).await;
    let (a, b) = (fleet.get(0), fleet.get(1));
    listening(a).await;
    listening(b).await;
    let admin = a.admin().await;
    let (suspended, deleted, repassworded) =
        (a.new_user().await, a.new_user().await, a.new_user().await);
    // B has each user cached (a TTL of 300 s: only an invalidation can change its answer).
    for u in [&suspended, &deleted, &repassworded] {
        assert_eq!(b.me_status(&u.token).await, 200);
    }
    let lag_before = user_lag_count(b).await;

    // Suspension through A: B refuses the user's token (403 account_inactive).
    set_status(a, &admin, &suspended, "suspended").await;
    let acked = Instant::now();
    let took = time_until_status(b, &suspended.token, 403, acked).await;
    eprintln!("suspension through A in force on B after {took:?}");
    assert!(took <= FLEET_BOUND, "suspension reached B after {took:?}");

    // Deletion through A: B answers 401 to the deleted user's token.
    delete_user(a, &admin, &deleted).await;
    let acked = Instant::now();
    let took = time_until_status(b, &deleted.token, 401, acked).await;
    eprintln!("deletion through A in force on B after {took:?}");
    assert!(took <= FLEET_BOUND, "deletion reached B after {took:?}");

    // Password change through A (by an admin: no current password needed): the user's
    // version, hence its ETag, moved, and B refuses the old access token (401) and the
    // old password.
    let (_, old_etag) = me(b, &repassworded.token).await;
    let res = a
        .authed(
            Method::PATCH,
            &format!("/api/v1/users/{}", repassworded.id),
            &admin.token,
        )
        .header("content-type", "application/merge-patch+json")
        .body(json!({ "password": "a-new-password-1" }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let acked = Instant::now();
    let new_etag = res
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_string());
    assert_ne!(new_etag, old_etag);
    // The old access token is refused on B (its token epoch is below the user's).
    let took = time_until_status(b, &repassworded.token, 401, acked).await;
    eprintln!("password change through A in force on B after {took:?}");
    assert!(
        took <= FLEET_BOUND,
        "password change reached B after {took:?}"
    );
    let res = b.login(&repassworded.email, &repassworded.password).await;
    assert_eq!(res.status(), 401);

    // An email change: B refuses the old access token (401) within the bound.
    let renamed = a.new_user().await;
    let (_, old_etag) = me(b, &renamed.token).await;
    let res = a
        .authed(
            Method::PATCH,
            &format!("/api/v1/users/{}", renamed.id),
            &admin.token,
        )
        .header("content-type", "application/merge-patch+json")
        .body(json!({ "email": format!("renamed-{}", renamed.email) }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let acked = Instant::now();
    let new_etag = res
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_string());
    assert_ne!(new_etag, old_etag);
    let took = time_until_status(b, &renamed.token, 401, acked).await;
    eprintln!("email change through A in force on B after {took:?}");
    assert!(took <= FLEET_BOUND, "email change reached B after {took:?}");

    // Each change was measured on B, commit to eviction.
    assert!(user_lag_count(b).await >= lag_before + 4.0);
    let text = b.metrics().await;
    assert!(
        text.contains("bulkhead_cache_invalidation_lag_seconds_bucket{kind=\"user\",le=\"0.1\"}"),
        "{text}"
    );
}

#[tokio::test]
async fn a_terminated_listener_reconnects_resyncs_and_serves_nothing_staler_than_the_degraded_ttl()
{
    const DEGRADED_TTL_MS: u64 = 300;
    // A writes. B is down 3-6 s after losing its listener (reconnects back off with
    // jitter) and trusts cached users for 300 ms meanwhile. C is down 1-2 s and trusts
    // them for a minute: only the resync can correct it.
    let fleet = Fleet::start_with(3, |i| match i {
        1 => InstanceSpec::default()
            .env("BULKHEAD__CACHE__USERS__DEGRADED_TTL_MS", DEGRADED_TTL_MS)
            .env("BULKHEAD__INVALIDATION__RECONNECT_MIN_MS", 6_000)
            .env("BULKHEAD__INVALIDATION__RECONNECT_MAX_MS", 6_000),
        2 => InstanceSpec::default()
            .env("BULKHEAD__CACHE__USERS__DEGRADED_TTL_MS", 60_000)
            .env("BULKHEAD__INVALIDATION__RECONNECT_MIN_MS", 2_000)
            .env("BULKHEAD__INVALIDATION__RECONNECT_MAX_MS", 2_000),
        _ => InstanceSpec::default(),
    })
    .await;
    let (a, b, c) = (fleet.get(0), fleet.get(1), fleet.get(2));
    for i in [a, b, c] {
        listening(i).await;
    }
    let admin = a.admin().await;
    let user = a.new_user().await;
    assert_eq!(c.me_status(&user.token).await, 200, "cached on C");

    // Every listener's backend, found by its application_name, is terminated.
    let sql = fleet.sql().await;
    let rows = sql
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE application_name = 'bulkhead-listener' AND datname = current_database()",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 3, "one listener per instance");
    for i in [b, c] {
        eventually("the listener notices", PATIENCE, || async {
            (gauge(i, "bulkhead_invalidation_listener_connected").await == 0.0).then_some(())
        })
        .await;
    }

    // B loads the user while degraded; then A suspends the user, which no listener hears.
    assert_eq!(b.me_status(&user.token).await, 200);
    let loaded = Instant::now();
    set_status(a, &admin, &user, "suspended").await;
    assert_eq!(
        reconnects(b).await,
        0.0,
        "B reconnected too soon for the test"
    );
    assert_eq!(
        reconnects(c).await,
        0.0,
        "C reconnected too soon for the test"
    );
    assert_eq!(
        c.me_status(&user.token).await,
        200,
        "C, disconnected with a long degraded TTL, still serves its cached user"
    );

    // B serves the stale user for at most the degraded TTL after loading it: no request
    // sent after that (plus a margin for the entry's install, which may trail the answer
    // on a loaded machine) is answered from the stale entry.
    let bound = Duration::from_millis(DEGRADED_TTL_MS + 100);
    let took = loop {
        let sent = Instant::now();
        let status = b.me_status(&user.token).await;
        let age = sent.saturating_duration_since(loaded);
        if status == 403 {
            break age;
        }
        assert_eq!(status, 200);
        assert!(
            age <= bound,
            "B served the stale user {age:?} after loading it (degraded TTL {DEGRADED_TTL_MS} ms)"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    eprintln!("listener down: B stopped serving the stale user {took:?} after loading it");
    assert_eq!(
        reconnects(b).await,
        0.0,
        "B's answer came from the degraded TTL"
    );

    // C reconnects and resynchronises: the stale entry is gone the moment it is back.
    eventually("C reconnects", PATIENCE, || async {
        (reconnects(c).await == 1.0).then_some(())
    })
    .await;
    assert_eq!(c.me_status(&user.token).await, 403, "C resynchronised");

    // B back too; a change after the reconnection reaches it within the fleet bound.
    eventually("B reconnects", PATIENCE, || async {
        (reconnects(b).await == 1.0).then_some(())
    })
    .await;
    listening(b).await;
    let other = a.new_user().await;
    assert_eq!(b.me_status(&other.token).await, 200);
    set_status(a, &admin, &other, "deactivated").await;
    let acked = Instant::now();
    let took = time_until_status(b, &other.token, 403, acked).await;
    assert!(
        took <= FLEET_BOUND,
        "after reconnecting, a change reached B after {took:?}"
    );
    let body: Value = a.get("/ready").await.json().await.unwrap();
    assert_eq!(body["status"], "ok", "{body}");
}

/// The sum of every sample of `family` whose labels start with `labels` (say, every
/// outcome of one circuit).
async fn sum_of(instance: &Instance, family: &str, labels: &str) -> f64 {
    let prefix = format!("{family}{{{labels}");
    instance
        .metrics()
        .await
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn a_deleted_users_token_costs_no_store_call_on_the_other_instance() {
    let fleet = Fleet::start(2).await;
    let (a, b) = (fleet.get(0), fleet.get(1));
    listening(a).await;
    listening(b).await;
    let admin = a.admin().await;
    let deleted = a.new_user().await;
    assert_eq!(b.me_status(&deleted.token).await, 200, "cached on B");
    delete_user(a, &admin, &deleted).await;
    // B hears of the deletion, finds the user gone (one store read) and remembers that.
    time_until_status(b, &deleted.token, 401, Instant::now()).await;

    let calls = || sum_of(b, "bulkhead_circuit_calls_total", "circuit=\"postgres\"");
    let hits = || sum_of(b, "bulkhead_cache_hits_total", "cache=\"absent_users\"");
    let (calls_before, hits_before) = (calls().await, hits().await);
    for _ in 0..10 {
        assert_eq!(b.me_status(&deleted.token).await, 401);
    }
    assert_eq!(
        calls().await,
        calls_before,
        "no store call for an absent user"
    );
    assert_eq!(hits().await, hits_before + 10.0);
}
