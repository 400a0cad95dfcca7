use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bulkhead_actors::{ActorError, CacheConfig, ShardedCache};
use tokio::sync::Notify;

use crate::settle;

type Cache = ShardedCache<[u8; 16], Arc<String>>;

fn cache(cfg: CacheConfig) -> Cache {
    ShardedCache::start("user_cache", &cfg).unwrap()
}

fn cfg() -> CacheConfig {
    CacheConfig {
        shards: 2,
        capacity: 1_000,
        ..Default::default()
    }
}

fn key(n: u8) -> [u8; 16] {
    [n; 16]
}

async fn load_ok(value: &str) -> Result<Option<Arc<String>>, ActorError> {
    Ok(Some(Arc::new(value.to_owned())))
}

#[actix_rt::test]
async fn concurrent_misses_run_exactly_one_load() {
    let c = cache(cfg());
    let loads = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Notify::new());
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (c, loads, gate) = (c.clone(), loads.clone(), gate.clone());
            actix_rt::spawn(async move {
                c.get_or_load(key(1), || async move {
                    loads.fetch_add(1, Ordering::SeqCst);
                    gate.notified().await;
                    load_ok("alice").await
                })
                .await
            })
        })
        .collect();
    settle().await; // every task is now either loading or waiting
    gate.notify_one();
    for t in tasks {
        assert_eq!(
            t.await.unwrap().unwrap().as_deref().map(String::as_str),
            Some("alice")
        );
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    settle().await;
    // Installed: the next call is a hit and does not load.
    let v: Result<_, ActorError> = c.get_or_load(key(1), || async { panic!("must hit") }).await;
    assert_eq!(v.unwrap().as_deref().map(String::as_str), Some("alice"));
}

#[actix_rt::test]
async fn invalidate_during_a_load_prevents_installing_stale_data() {
    let c = cache(cfg());
    let gate = Arc::new(Notify::new());
    let loader = {
        let (c, gate) = (c.clone(), gate.clone());
        actix_rt::spawn(async move {
            c.get_or_load(key(2), || async move {
                gate.notified().await;
                load_ok("old").await
            })
            .await
        })
    };
    settle().await;
    c.invalidate(&key(2)); // a write committed while the load was reading
    gate.notify_one();
    assert_eq!(
        loader
            .await
            .unwrap()
            .unwrap()
            .as_deref()
            .map(String::as_str),
        Some("old")
    );
    settle().await;
    assert!(
        c.get(&key(2)).is_none(),
        "stale value must not be installed"
    );
    let fresh = c.get_or_load(key(2), || load_ok("new")).await.unwrap();
    assert_eq!(fresh.as_deref().map(String::as_str), Some("new"));
    settle().await;
    assert_eq!(c.get(&key(2)).as_deref().map(String::as_str), Some("new"));
    c.invalidate(&key(2));
    assert!(c.get(&key(2)).is_none());
}

#[actix_rt::test]
async fn entries_expire_after_ttl() {
    tokio::time::pause();
    let c = cache(CacheConfig {
        ttl_secs: 10,
        ..cfg()
    });
    c.insert(key(3), Arc::new("x".into())).await.unwrap();
    assert!(c.get(&key(3)).is_some());
    tokio::time::advance(Duration::from_secs(9)).await;
    assert!(c.get(&key(3)).is_some());
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(c.get(&key(3)).is_none());
    let loads = AtomicUsize::new(0);
    let v = c
        .get_or_load(key(3), || async {
            loads.fetch_add(1, Ordering::SeqCst);
            load_ok("y").await
        })
        .await
        .unwrap();
    assert_eq!(v.as_deref().map(String::as_str), Some("y"));
    assert_eq!(loads.load(Ordering::SeqCst), 1);
}

#[actix_rt::test]
async fn capacity_is_a_hard_bound() {
    let c = cache(CacheConfig {
        shards: 2,
        capacity: 100,
        ..Default::default()
    });
    for i in 0..1_000u32 {
        let mut k = [0u8; 16];
        k[..4].copy_from_slice(&i.to_le_bytes());
        c.insert(k, Arc::new(i.to_string())).await.unwrap();
        assert!(c.len() <= 100, "len {} after {} inserts", c.len(), i + 1);
    }
    assert!(c.len() >= 50, "eviction removes an eighth, not everything");
}

#[actix_rt::test]
async fn recently_hit_entries_survive_eviction() {
    tokio::time::pause();
    let c = cache(CacheConfig {
        shards: 1,
        capacity: 16,
        ..Default::default()
    });
    c.insert(key(0), Arc::new("hot".into())).await.unwrap();
    for i in 1..200u8 {
        tokio::time::advance(Duration::from_millis(5)).await;
        assert!(c.get(&key(0)).is_some(), "hot key evicted at insert {i}");
        c.insert(key(i), Arc::new(i.to_string())).await.unwrap();
    }
}

#[actix_rt::test]
async fn failed_load_is_not_cached_and_waiters_do_not_hang() {
    tokio::time::pause();
    let c = cache(cfg());
    let gate = Arc::new(Notify::new());
    let loader = {
        let (c, gate) = (c.clone(), gate.clone());
        actix_rt::spawn(async move {
            c.get_or_load(key(4), || async move {
                gate.notified().await;
                Err::<Option<Arc<String>>, _>(ActorError::Unavailable)
            })
            .await
        })
    };
    settle().await;
    let waiter = {
        let c = c.clone();
        actix_rt::spawn(async move {
            c.get_or_load(key(4), || async { panic!("single flight") })
                .await as Result<_, ActorError>
        })
    };
    settle().await;
    gate.notify_one();
    assert_eq!(loader.await.unwrap(), Err(ActorError::Unavailable));
    assert_eq!(waiter.await.unwrap(), Err(ActorError::Unavailable));
    assert!(c.get(&key(4)).is_none());
}

#[actix_rt::test]
async fn slow_load_times_out() {
    tokio::time::pause();
    let c = cache(CacheConfig {
        load_timeout_ms: 50,
        ..cfg()
    });
    let r = c
        .get_or_load(key(5), || async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            load_ok("late").await
        })
        .await;
    assert_eq!(r, Err(ActorError::Timeout));
    // The flight ended: the next caller loads afresh.
    assert!(c
        .get_or_load(key(5), || load_ok("ok"))
        .await
        .unwrap()
        .is_some());
}

#[actix_rt::test]
async fn not_found_is_shared_but_not_cached() {
    let c = cache(cfg());
    let loads = AtomicUsize::new(0);
    for _ in 0..3 {
        let r = c
            .get_or_load(key(6), || async {
                loads.fetch_add(1, Ordering::SeqCst);
                Ok::<_, ActorError>(None)
            })
            .await;
        assert_eq!(r, Ok(None));
    }
    assert_eq!(loads.load(Ordering::SeqCst), 3);
}

/// A reload's capacity and TTL: entries beyond the new capacity are evicted at once, and
/// none outlives the new TTL from the reload.
#[actix_rt::test]
async fn reconfigured_capacity_and_ttl_apply_to_existing_entries() {
    tokio::time::pause();
    let c = cache(cfg());
    settle().await;
    for n in 0..100 {
        c.insert(key(n), Arc::new(format!("v{n}"))).await.unwrap();
    }
    assert_eq!(c.len(), 100);
    c.reconfigure(&CacheConfig {
        capacity: 40,
        ttl_secs: 5,
        ..cfg()
    })
    .await
    .unwrap();
    assert!(c.len() <= 40, "{} entries over a capacity of 40", c.len());
    let kept = (0..100)
        .find(|n| c.get(&key(*n)).is_some())
        .expect("some kept");
    tokio::time::advance(Duration::from_secs(5)).await;
    assert!(
        c.get(&key(kept)).is_none(),
        "the new 5 s TTL counts from the reload"
    );
    let shards = c.reconfigure(&CacheConfig { shards: 3, ..cfg() }).await;
    assert!(shards.unwrap_err().contains("cache.shards"));
}
