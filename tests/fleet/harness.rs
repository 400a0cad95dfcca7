//! The harness itself: instances are separate processes on one database, with one secret.

use reqwest::Method;

use crate::instance::{Fleet, InstanceSpec};

#[tokio::test]
async fn instances_share_one_database_and_one_secret() {
    let fleet = Fleet::start_with(2, |i| {
        InstanceSpec::default().env("BULKHEAD__CACHE__USERS__TTL_SECS", 300 + i)
    })
    .await;
    let (a, b) = (fleet.get(0), fleet.get(1));
    assert_ne!(a.port, b.port);
    assert_ne!(a.pid(), b.pid());

    // Registered through A, logged in through B, read through A with B's token.
    let user = a.new_user().await;
    let (token_b, _) = b.tokens(&user.email, &user.password).await;
    let res = a
        .authed(Method::GET, "/api/v1/users/me", &token_b)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let me: serde_json::Value = res.json().await.unwrap();
    assert_eq!(me["id"], user.id.to_string());

    // Each runs with the fleet's common settings (pools sized for several instances).
    for instance in [a, b] {
        let size = instance
            .metric("bulkhead_db_pool_max_size{pool=\"write\"}")
            .await;
        assert_eq!(size, Some(3.0), "instance {}", instance.index);
    }

    // The fleet's database is reachable behind the service's back.
    let sql = fleet.sql().await;
    let row = sql
        .query_one(
            "SELECT count(*) FROM users WHERE email = $1",
            &[&user.email],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1);
}

#[tokio::test]
async fn a_killed_instance_leaves_the_others_serving() {
    let mut fleet = Fleet::start(2).await;
    let user = fleet.get(0).new_user().await;
    fleet.instances[0].kill();
    assert!(fleet
        .get(0)
        .client
        .get(fleet.get(0).url("/health"))
        .send()
        .await
        .is_err());
    assert_eq!(fleet.get(1).me_status(&user.token).await, 200);
    let c = fleet.add(Default::default()).await;
    assert_eq!(c.me_status(&user.token).await, 200);
}
