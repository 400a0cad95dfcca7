//! The route's bulkhead queues fairly between callers (API.md, Live reconfiguration):
//! one caller with many requests waiting cannot put another caller behind all of them.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;

use crate::upstream::{Mode, Upstream};
use crate::{metric, route, spawn_gateway};

#[actix_web::test]
async fn a_light_caller_is_not_queued_behind_a_heavy_one() {
    let slow = Upstream::start(Mode::Slow(Duration::from_millis(100))).await;
    // A deadline far past the 700 ms the seven calls take, so only the order can fail.
    let mut slow_route = route("slow", "/api/v1/slow", &[&slow]);
    slow_route.timeout_ms = 30_000;
    let app = spawn_gateway(vec![slow_route], |c| {
        let u = &mut c.gateway.upstream;
        u.max_concurrent = 1;
        u.queue_capacity = 16;
        u.queue_timeout_ms = 30_000;
    })
    .await;
    let heavy = app.new_user().await;
    let light = app.new_user().await;
    let served: Arc<Mutex<Vec<&'static str>>> = Arc::default();

    let send = |who: &'static str, token: &str| {
        let req = app.authed(Method::GET, "/api/v1/slow/x", token).send();
        let served = served.clone();
        async move {
            let res = req.await.unwrap();
            assert_eq!(res.status(), 200, "{who}");
            res.bytes().await.unwrap();
            served.lock().unwrap().push(who);
        }
    };
    // Six heavy requests first: one runs, five wait in the route's queue.
    let heavy_calls: Vec<_> = (0..6)
        .map(|_| tokio::spawn(send("heavy", &heavy.token)))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&app, "bulkhead_bulkhead_queued{bulkhead=\"slow\"}").await < 5.0 {
        assert!(Instant::now() < deadline, "the heavy requests never queued");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Then the light caller's one request.
    send("light", &light.token).await;
    for call in heavy_calls {
        call.await.unwrap();
    }
    let served = served.lock().unwrap().clone();
    let position = served.iter().position(|w| *w == "light").unwrap() + 1;
    assert_eq!(served.len(), 7);
    assert!(
        position <= 3,
        "the light caller was served {position}th of 7: {served:?}"
    );
}
