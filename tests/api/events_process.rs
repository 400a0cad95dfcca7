//! Events across process deaths and processes: the real binary, spawned as a child
//! process on a database of its own, killed with SIGKILL during writes (no committed
//! event is lost), and two instances whose relays hand over without reordering one
//! order's events.

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::nats::{free_port, metric, Nats, StreamEvent};
use crate::helpers::{TestDatabase, ADMIN_EMAIL, ADMIN_PASSWORD};

const WITHIN: Duration = Duration::from_secs(30);

struct Instance {
    base: String,
    child: Child,
}

impl Instance {
    async fn start(db: &TestDatabase, nats: &Nats) -> Self {
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bulkhead"));
        for (k, _) in std::env::vars() {
            if k.starts_with("BULKHEAD") || k == "DATABASE_URL" || k == "RUST_LOG" {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .arg("serve")
            .env("DATABASE_URL", &db.url)
            .env("BULKHEAD__SERVER__BIND", format!("127.0.0.1:{port}"))
            .env("BULKHEAD__SERVER__WORKERS", "2")
            .env("BULKHEAD__LOG__LEVEL", "error")
            .env(
                "BULKHEAD__AUTH__JWT_SECRET",
                "process-test-secret-0123456789-abcdef",
            )
            .env("BULKHEAD__AUTH__BOOTSTRAP_ADMIN_EMAIL", ADMIN_EMAIL)
            .env("BULKHEAD__AUTH__BOOTSTRAP_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("BULKHEAD__AUTH__ARGON2_MEMORY_KIB", "256")
            .env("BULKHEAD__AUTH__ARGON2_ITERATIONS", "1")
            .env("BULKHEAD__RATE_LIMITS__ENABLED", "false")
            .env("BULKHEAD__DATABASE__READ_POOL_SIZE", "4")
            .env("BULKHEAD__DATABASE__WRITE_POOL_SIZE", "4")
            .env("BULKHEAD__EVENTS__NATS_URL", nats.url())
            .env("BULKHEAD__EVENTS__POLL_INTERVAL_MS", "200")
            .env("BULKHEAD__EVENTS__BACKOFF_INITIAL_MS", "50")
            .env("BULKHEAD__EVENTS__BACKOFF_MAX_MS", "300")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let deadline = Instant::now() + WITHIN;
        loop {
            if let Ok(r) = client.get(format!("{base}/ready")).send().await {
                if r.status() == 200 {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "bulkhead did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Instance { base, child }
    }

    fn kill(&mut self) {
        // Child::kill is SIGKILL: no drain, no goodbye.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    async fn relay_active(&self) -> bool {
        let Ok(res) = reqwest::get(format!("{}/metrics", self.base)).await else {
            return false;
        };
        let text = res.text().await.unwrap_or_default();
        metric(&text, "bulkhead_outbox_relay_active") == Some(1.0)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The admin's token and a product with plenty of stock.
async fn setup(base: &str) -> (String, Value) {
    let client = reqwest::Client::new();
    let tokens: Value = client
        .post(format!("{base}/api/v1/auth/token"))
        .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tokens["access_token"].as_str().unwrap().to_string();
    let res = client
        .post(format!("{base}/api/v1/products"))
        .bearer_auth(&token)
        .json(&json!({"sku": "L", "name": "Lamp", "price_cents": 100, "currency": "EUR", "stock": 1_000_000}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    (token, res.json().await.unwrap())
}

/// Wait until the stream holds every event `expected` names (resource id -> kinds).
async fn wait_for(nats: &Nats, expected: &HashMap<String, Vec<&'static str>>) -> Vec<StreamEvent> {
    let deadline = Instant::now() + WITHIN;
    let want: usize = expected.values().map(Vec::len).sum();
    loop {
        let events = nats.events(want, WITHIN).await;
        let have: HashSet<(&str, &str)> = events
            .iter()
            .map(|e| (e.resource(), e.kind().trim_start_matches("com.bulkhead.")))
            .collect();
        let missing: Vec<_> = expected
            .iter()
            .flat_map(|(id, kinds)| kinds.iter().map(move |k| (id.as_str(), *k)))
            .filter(|p| !have.contains(p))
            .collect();
        if missing.is_empty() {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "{} committed events never arrived, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Writers that place orders (and, with `cancel_on`, cancel each one on that instance)
/// until stopped; every 2xx is recorded. A request that fails in flight (the process was
/// killed) is not recorded: its outcome is unknown to the client.
fn writers(
    n: usize,
    bases: Vec<String>,
    token: String,
    product: Value,
    cancel: bool,
    stop: Arc<AtomicBool>,
    record: Arc<Mutex<HashMap<String, Vec<&'static str>>>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..n)
        .map(|w| {
            let (bases, token, stop, record) =
                (bases.clone(), token.clone(), stop.clone(), record.clone());
            let body = json!({"items": [{"product_id": product["id"], "quantity": 1}]});
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .build()
                    .unwrap();
                let mut i = w;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let place = &bases[i % bases.len()];
                    let Ok(res) = client
                        .post(format!("{place}/api/v1/orders"))
                        .bearer_auth(&token)
                        .header("idempotency-key", uuid::Uuid::new_v4().to_string())
                        .json(&body)
                        .send()
                        .await
                    else {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    };
                    if res.status() != 201 {
                        continue;
                    }
                    let Ok(order) = res.json::<Value>().await else {
                        continue;
                    };
                    let id = order["id"].as_str().unwrap().to_string();
                    record
                        .lock()
                        .unwrap()
                        .insert(id.clone(), vec!["order.placed"]);
                    if !cancel {
                        continue;
                    }
                    // Cancel on the other instance: the two events of one order are
                    // written by different processes.
                    let other = &bases[(i + 1) % bases.len()];
                    if let Ok(res) = client
                        .post(format!("{other}/api/v1/orders/{id}/cancel"))
                        .bearer_auth(&token)
                        .send()
                        .await
                    {
                        if res.status() == 200 {
                            record
                                .lock()
                                .unwrap()
                                .insert(id, vec!["order.placed", "order.cancelled"]);
                        }
                    }
                }
            })
        })
        .collect()
}

/// Per order: placed first, cancelled (if any) after it, each once; every recorded
/// (2xx) event present.
fn assert_order_events(events: &[StreamEvent], record: &HashMap<String, Vec<&'static str>>) {
    let mut by_order: HashMap<&str, Vec<&str>> = HashMap::new();
    for e in events {
        by_order
            .entry(e.resource())
            .or_default()
            .push(e.kind().trim_start_matches("com.bulkhead."));
    }
    for (id, kinds) in record {
        let got = by_order.get(id.as_str()).cloned().unwrap_or_default();
        assert!(
            got == *kinds || (kinds.len() == 1 && got == ["order.placed", "order.cancelled"]),
            "order {id}: answered {kinds:?}, stream has {got:?}"
        );
    }
}

#[actix_web::test]
async fn sigkill_during_writes_loses_no_committed_event() {
    let db = TestDatabase::create().await;
    let nats = Nats::start();
    let mut instance = Instance::start(&db, &nats).await;
    let (token, product) = setup(&instance.base).await;
    let stop = Arc::new(AtomicBool::new(false));
    let record = Arc::new(Mutex::new(HashMap::new()));
    let tasks = writers(
        6,
        vec![instance.base.clone()],
        token.clone(),
        product,
        false,
        stop.clone(),
        record.clone(),
    );
    let deadline = Instant::now() + WITHIN;
    while record.lock().unwrap().len() < 150 {
        assert!(Instant::now() < deadline, "writes did not get going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    instance.kill();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let record = record.lock().unwrap().clone();
    // Whatever the killed relay had not published waits in the outbox for the next one.
    let _restarted = Instance::start(&db, &nats).await;
    let events = wait_for(&nats, &record).await;
    assert_order_events(&events, &record);
}

#[actix_web::test]
async fn two_instances_keep_each_orders_events_in_order_across_a_relay_handover() {
    let db = TestDatabase::create().await;
    let nats = Nats::start();
    let mut a = Instance::start(&db, &nats).await;
    let mut b = Instance::start(&db, &nats).await;
    let (token, product) = setup(&a.base).await;
    let stop = Arc::new(AtomicBool::new(false));
    let record = Arc::new(Mutex::new(HashMap::new()));
    let bases = vec![a.base.clone(), b.base.clone()];
    let tasks = writers(6, bases, token, product, true, stop.clone(), record.clone());
    let deadline = Instant::now() + WITHIN;
    while record.lock().unwrap().len() < 100 {
        assert!(Instant::now() < deadline, "writes did not get going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Exactly one relay publishes; kill it mid-writes and the other takes over.
    let (a_active, b_active) = (a.relay_active().await, b.relay_active().await);
    assert!(
        a_active != b_active,
        "one relay active: a {a_active}, b {b_active}"
    );
    let survivor = if a_active {
        a.kill();
        &b
    } else {
        b.kill();
        &a
    };
    let before = record.lock().unwrap().len();
    while record.lock().unwrap().len() < before + 100 {
        assert!(Instant::now() < deadline, "writes did not go on");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let record = record.lock().unwrap().clone();
    let events = wait_for(&nats, &record).await;
    assert_order_events(&events, &record);
    assert!(
        survivor.relay_active().await,
        "the survivor's relay took over"
    );
}

impl Instance {
    async fn metric(&self, name: &str) -> Option<f64> {
        let res = reqwest::get(format!("{}/metrics", self.base)).await.ok()?;
        metric(&res.text().await.ok()?, name)
    }

    async fn wait_for_metric(&self, name: &str, ok: impl Fn(f64) -> bool) {
        let deadline = Instant::now() + WITHIN;
        loop {
            let v = self.metric(name).await;
            if v.is_some_and(&ok) {
                return;
            }
            assert!(Instant::now() < deadline, "{name} stayed at {v:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// NATS down: writes go on (201s, not slowed by the outage), the outbox grows and the
/// gauges say so, and every event goes out once NATS is back.
#[actix_web::test]
async fn orders_placed_while_nats_is_down_all_arrive_after_it_returns() {
    let db = TestDatabase::create().await;
    let mut nats = Nats::start();
    let instance = Instance::start(&db, &nats).await;
    let (token, product) = setup(&instance.base).await;
    // The stream exists before the outage (the first events created it).
    nats.events(1, WITHIN).await;
    instance
        .wait_for_metric("bulkhead_outbox_pending", |v| v == 0.0)
        .await;
    nats.stop();

    let body = json!({"items": [{"product_id": product["id"], "quantity": 1}]});
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (base, token, body) = (instance.base.clone(), token.clone(), body.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut ids = Vec::new();
                for _ in 0..25 {
                    let res = client
                        .post(format!("{base}/api/v1/orders"))
                        .bearer_auth(&token)
                        .header("idempotency-key", uuid::Uuid::new_v4().to_string())
                        .json(&body)
                        .timeout(Duration::from_secs(10))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(res.status(), 201, "writes do not wait for NATS");
                    let v: Value = res.json().await.unwrap();
                    ids.push(v["id"].as_str().unwrap().to_string());
                }
                ids
            })
        })
        .collect();
    let mut placed = HashSet::new();
    for t in tasks {
        placed.extend(t.await.unwrap());
    }
    assert_eq!(placed.len(), 200);
    instance
        .wait_for_metric("bulkhead_outbox_pending", |v| v >= 200.0)
        .await;
    instance
        .wait_for_metric("bulkhead_outbox_oldest_pending_seconds", |v| v > 0.0)
        .await;
    let published = instance.metric("bulkhead_outbox_published_total").await;

    nats.restart();
    let expected: HashMap<String, Vec<&'static str>> = placed
        .iter()
        .map(|id| (id.clone(), vec!["order.placed"]))
        .collect();
    let events = wait_for(&nats, &expected).await;
    assert_order_events(&events, &expected);
    instance
        .wait_for_metric("bulkhead_outbox_pending", |v| v == 0.0)
        .await;
    instance
        .wait_for_metric("bulkhead_outbox_oldest_pending_seconds", |v| v == 0.0)
        .await;
    let after = instance.metric("bulkhead_outbox_published_total").await;
    assert!(
        after.unwrap_or(0.0) >= published.unwrap_or(0.0) + 200.0,
        "published_total {published:?} -> {after:?}"
    );
}
