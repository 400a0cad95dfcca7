//! Versioned entries, version-aware invalidation, `clear` and the degraded max age.

use std::sync::Arc;
use std::time::Duration;

use bulkhead_actors::{ActorError, CacheConfig, ShardedCache};
use tokio::sync::Notify;

use crate::settle;

/// `(version, name)`: the version is what the cache compares.
type Cache = ShardedCache<u8, Arc<(i64, String)>>;

fn cache() -> Cache {
    let cfg = CacheConfig {
        shards: 2,
        capacity: 1_000,
        ..Default::default()
    };
    ShardedCache::start_versioned("versions", &cfg, |v: &Arc<(i64, String)>| v.0).unwrap()
}

fn val(version: i64, name: &str) -> Arc<(i64, String)> {
    Arc::new((version, name.to_owned()))
}

fn version(c: &Cache, key: u8) -> Option<i64> {
    c.get(&key).map(|v| v.0)
}

#[actix_rt::test]
async fn invalidate_older_keeps_an_entry_at_or_past_the_version() {
    let c = cache();
    c.insert(1, val(5, "five")).await.unwrap();
    assert!(!c.invalidate_older(&1, 4));
    assert!(!c.invalidate_older(&1, 5));
    assert_eq!(version(&c, 1), Some(5));
    assert!(c.invalidate_older(&1, 6));
    assert_eq!(version(&c, 1), None);
}

#[actix_rt::test]
async fn an_older_version_never_replaces_a_newer_one() {
    let c = cache();
    c.insert(2, val(7, "new")).await.unwrap();
    c.insert(2, val(6, "old")).await.unwrap();
    assert_eq!(version(&c, 2), Some(7));
    c.insert(2, val(8, "newer")).await.unwrap();
    assert_eq!(version(&c, 2), Some(8));
}

#[actix_rt::test]
async fn a_load_racing_invalidate_older_is_served_but_not_installed() {
    let c = cache();
    let gate = Arc::new(Notify::new());
    let loader = {
        let (c, gate) = (c.clone(), gate.clone());
        actix_rt::spawn(async move {
            c.get_or_load(3, || async move {
                gate.notified().await;
                Ok::<_, ActorError>(Some(val(1, "read before the change")))
            })
            .await
        })
    };
    settle().await;
    // Version 2 committed elsewhere while the load was reading version 1.
    assert!(!c.invalidate_older(&3, 2));
    gate.notify_one();
    let served = loader.await.unwrap().unwrap().unwrap();
    assert_eq!(served.0, 1);
    settle().await;
    assert_eq!(version(&c, 3), None, "the stale load was installed");
}

#[actix_rt::test]
async fn clear_drops_every_entry_and_every_load_in_flight() {
    let c = cache();
    for k in 10..20 {
        c.insert(k, val(1, "x")).await.unwrap();
    }
    let gate = Arc::new(Notify::new());
    let loader = {
        let (c, gate) = (c.clone(), gate.clone());
        actix_rt::spawn(async move {
            c.get_or_load(30, || async move {
                gate.notified().await;
                Ok::<_, ActorError>(Some(val(1, "loading")))
            })
            .await
        })
    };
    settle().await;
    assert_eq!(c.clear(), 10);
    assert!(c.is_empty());
    gate.notify_one();
    loader.await.unwrap().unwrap();
    settle().await;
    assert!(c.is_empty(), "a load begun before the clear was installed");
}

#[actix_rt::test]
async fn entries_older_than_the_max_age_are_misses_while_it_is_set() {
    tokio::time::pause();
    let c = cache();
    c.insert(4, val(1, "old")).await.unwrap();
    tokio::time::advance(Duration::from_millis(600)).await;
    c.insert(5, val(1, "young")).await.unwrap();
    c.set_max_age(Some(Duration::from_millis(500)));
    assert_eq!(version(&c, 4), None, "600 ms old, max age 500 ms");
    assert_eq!(version(&c, 5), Some(1));
    tokio::time::advance(Duration::from_millis(500)).await;
    assert_eq!(version(&c, 5), None);
    // A reload is good for the max age again.
    let v = c
        .get_or_load(5, || async {
            Ok::<_, ActorError>(Some(val(2, "reloaded")))
        })
        .await
        .unwrap();
    assert_eq!(v.map(|v| v.0), Some(2));
    settle().await;
    assert_eq!(version(&c, 5), Some(2));
    c.set_max_age(None);
    assert_eq!(version(&c, 4), Some(1), "only the TTL counts again");
}
