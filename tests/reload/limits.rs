//! Rate limits and bulkheads retuned live: a quota cut under load, a rejected reload,
//! shadow limits.

use super::*;

/// One client's view of a response.
struct Seen {
    sent: Instant,
    received: Instant,
    status: u16,
    /// The `RateLimit-Policy` header.
    policy: String,
}

/// Clients hammer an anonymous read while the quota is cut by a reload: not one request
/// fails (no connection error, no 5xx), and the new quota is in force within 1 s.
#[test]
fn sighup_under_load_applies_a_new_quota_with_no_failed_request() {
    let generous = "[rate_limits.ip]\nquota = 1000000\nwindow_secs = 60\n";
    let server = Server::start("load", &format!("{LOGGING}{generous}"));
    let url = server.url("/api/v1/products");
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::<Seen>::new()));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let clients: Vec<_> = (0..6)
        .map(|_| {
            let (url, stop, seen, failures) =
                (url.clone(), stop.clone(), seen.clone(), failures.clone());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let client = reqwest::Client::new();
                    while !stop.load(Ordering::Relaxed) {
                        let sent = Instant::now();
                        match client.get(&url).send().await {
                            Ok(res) => {
                                let status = res.status().as_u16();
                                let policy = res
                                    .headers()
                                    .get("ratelimit-policy")
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or("")
                                    .to_owned();
                                if res.bytes().await.is_err() {
                                    failures.lock().unwrap().push("body cut".into());
                                }
                                if status >= 500 {
                                    failures.lock().unwrap().push(format!("status {status}"));
                                }
                                seen.lock().unwrap().push(Seen {
                                    sent,
                                    received: Instant::now(),
                                    status,
                                    policy,
                                });
                            }
                            Err(e) => failures.lock().unwrap().push(format!("{e:?}")),
                        }
                    }
                })
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let strict = "[rate_limits.ip]\nquota = 5\nwindow_secs = 60\n";
    let hup = server.reload(&format!("{LOGGING}{strict}"));
    std::thread::sleep(Duration::from_millis(1_500));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }

    let failures = failures.lock().unwrap();
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    let seen = seen.lock().unwrap();
    let before = seen.iter().filter(|s| s.received < hup).count();
    assert!(before > 50, "the load ran before the reload ({before})");
    let new_policy = "\"ip\";q=5;w=60";
    let first_new = seen
        .iter()
        .filter(|s| s.policy == new_policy)
        .map(|s| s.received)
        .min()
        .expect("the new quota was seen");
    let latency = first_new.saturating_duration_since(hup);
    eprintln!(
        "reload latency under load: SIGHUP to the first answer under the new quota: {latency:?}"
    );
    assert!(latency < Duration::from_secs(1), "{latency:?}");
    // Every request sent a second after the SIGHUP is decided under the new quota.
    let late: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.sent > hup + Duration::from_secs(1))
        .collect();
    assert!(!late.is_empty());
    assert!(late.iter().all(|s| s.policy == new_policy));
    // The key's use carried over (GCRA: its debt; these clients stayed far below the old
    // rate, so little): under the new quota at most its burst of 5 is admitted, and once
    // it refuses, nothing more is (the next token is 12 s away). Whenever the carry-over
    // happens, on a loaded machine too.
    let under_new: Vec<&Seen> = seen.iter().filter(|s| s.policy == new_policy).collect();
    let admitted = under_new.iter().filter(|s| s.status == 200).count();
    assert!(
        admitted <= 5,
        "no more than the new burst: {admitted} admitted"
    );
    let first_refusal = under_new
        .iter()
        .filter(|s| s.status == 429)
        .map(|s| s.received)
        .min()
        .expect("the new quota refuses");
    let after: Vec<&Seen> = seen.iter().filter(|s| s.sent > first_refusal).collect();
    assert!(!after.is_empty());
    let admitted_after = after.iter().filter(|s| s.status == 200).count();
    assert_eq!(admitted_after, 0, "no fresh burst after the quota change");
    server.await_metric("bulkhead_config_reloads_total{outcome=\"applied\"}", 1.0);
    server.await_metric("bulkhead_config_last_reload_successful", 1.0);
}

/// An invalid value, then a key that cannot change live: each reload is rejected whole,
/// counted, logged naming the key, and the running configuration (here: the quota of a
/// live section changed in the same file) stays.
#[test]
fn a_rejected_reload_leaves_the_running_config_and_counts() {
    let quota = |q: u32| format!("[rate_limits.ip]\nquota = {q}\nwindow_secs = 3600\n");
    let server = Server::start("rejected", &format!("{LOGGING}{}", quota(1000)));
    assert_eq!(server.policy(), "\"ip\";q=1000;w=3600");

    server.reload(&format!(
        "{LOGGING}{}[bulkheads.db_read]\nmax_concurrent = 0\n",
        quota(7)
    ));
    server.await_metric("bulkhead_config_reloads_total{outcome=\"rejected\"}", 1.0);
    assert_eq!(server.metric("bulkhead_config_last_reload_successful"), 0.0);
    assert_eq!(
        server.policy(),
        "\"ip\";q=1000;w=3600",
        "nothing of it applied"
    );

    server.reload(&format!("{LOGGING}{}[cache.users]\nshards = 3\n", quota(7)));
    server.await_metric("bulkhead_config_reloads_total{outcome=\"rejected\"}", 2.0);
    assert_eq!(server.policy(), "\"ip\";q=1000;w=3600");

    server.reload(&format!("{LOGGING}{}", quota(7)));
    server.await_metric("bulkhead_config_reloads_total{outcome=\"applied\"}", 1.0);
    assert_eq!(server.metric("bulkhead_config_last_reload_successful"), 1.0);
    assert_eq!(server.policy(), "\"ip\";q=7;w=3600");

    // A live key of the users cache: the cache and the absent-users cache sized from it
    // (a tenth) both take the new capacity.
    server.reload(&format!(
        "{LOGGING}{}[cache.users]\ncapacity = 5000\n",
        quota(7)
    ));
    server.await_metric("bulkhead_config_reloads_total{outcome=\"applied\"}", 2.0);
    assert_eq!(server.metric("bulkhead_config_last_reload_successful"), 1.0);

    let log = server.log_text();
    assert!(
        log.contains("bulkheads.db_read.max_concurrent"),
        "the invalid key is named: {log}"
    );
    assert!(
        log.contains("cache.users.shards"),
        "the non-live key is named: {log}"
    );
}

/// Shadow first, then enforce: in shadow, N requests over the quota are N
/// `shadow_limited` decisions and 0 refusals; enforced, the key stands where the shadow
/// decisions left it.
#[test]
fn shadow_limits_count_exactly_and_refuse_nothing() {
    let policy = |shadow: bool| {
        format!("[rate_limits.ip]\nquota = 3\nwindow_secs = 3600\nshadow = {shadow}\n")
    };
    let server = Server::start("shadow", &format!("{LOGGING}{}", policy(true)));
    let statuses = |n: usize| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let client = reqwest::Client::new();
            let mut statuses = Vec::new();
            for _ in 0..n {
                let res = client
                    .get(server.url("/api/v1/products"))
                    .send()
                    .await
                    .unwrap();
                statuses.push(res.status().as_u16());
            }
            statuses
        })
    };
    assert_eq!(statuses(10), vec![200; 10], "shadow refuses nothing");
    let series = |outcome: &str| {
        format!("bulkhead_ratelimit_decisions_total{{policy=\"ip\",outcome=\"{outcome}\"}}")
    };
    assert_eq!(server.metric(&series("shadow_limited")), 7.0);
    assert_eq!(server.metric(&series("allowed")), 3.0);
    assert_eq!(server.metric(&series("limited")), 0.0);

    server.reload(&format!("{LOGGING}{}", policy(false)));
    server.await_metric("bulkhead_config_reloads_total{outcome=\"applied\"}", 1.0);
    assert_eq!(
        statuses(2),
        vec![429, 429],
        "enforced where shadow left the key"
    );
    assert_eq!(server.metric(&series("limited")), 2.0);
}
