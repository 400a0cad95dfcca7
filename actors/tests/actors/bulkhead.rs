use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bulkhead_actors::{
    guarded, ActorError, BlockingPool, Bulkhead, BulkheadConfig, Circuit, CircuitConfig, Outcome,
};
use tokio::time::Instant;

use crate::bulkhead_queue::assert_exact_permits;
use crate::{poll_once, settle};

fn bulkhead(max_concurrent: usize, queue_capacity: usize, queue_timeout_ms: u64) -> Bulkhead {
    let cfg = BulkheadConfig {
        max_concurrent,
        queue_capacity,
        max_queued_per_caller: queue_capacity.max(1),
        queue_timeout_ms,
        ..Default::default()
    };
    Bulkhead::new("db_read", &cfg).unwrap()
}

#[tokio::test(start_paused = true)]
async fn full_bulkhead_rejects_at_once() {
    let b = bulkhead(1, 1, 60_000);
    let _running = b.acquire().await.unwrap();
    let mut queued = Box::pin(b.acquire());
    assert!(poll_once(queued.as_mut()).is_pending());
    assert_eq!(b.queued(), 1);
    let before = Instant::now();
    let mut rejected = Box::pin(b.acquire());
    match poll_once(rejected.as_mut()) {
        Poll::Ready(Err(ActorError::Overloaded { retry_after })) => {
            assert!(retry_after >= Duration::from_secs(1))
        }
        other => panic!(
            "expected an immediate Overloaded, got {:?}",
            other.map(|r| r.err())
        ),
    }
    assert_eq!(Instant::now(), before);
}

#[tokio::test(start_paused = true)]
async fn queue_deadline_rejects() {
    let b = bulkhead(1, 4, 100);
    let _running = b.acquire().await.unwrap();
    let start = Instant::now();
    let r = b.run(async {}).await;
    assert!(matches!(r, Err(ActorError::Overloaded { .. })));
    assert_eq!(start.elapsed(), Duration::from_millis(100));
    assert_eq!(b.queued(), 0);
}

/// Calls holding a slot 40 ms on average, 2 slots, a 100 ms deadline: the caller with
/// `q` callers ahead expects to wait (q + 1) * 40 / 2 ms, so five may queue and the
/// sixth is answered at once instead of after 100 ms. Without the option it queues.
#[tokio::test(start_paused = true)]
async fn callers_expected_to_time_out_are_rejected_at_once() {
    for reject in [true, false] {
        let b = Bulkhead::new(
            "db_read",
            &BulkheadConfig {
                max_concurrent: 2,
                queue_capacity: 100,
                queue_timeout_ms: 100,
                reject_expected_timeouts: reject,
                ..Default::default()
            },
        )
        .unwrap();
        for _ in 0..4 {
            b.run(tokio::time::sleep(Duration::from_millis(40)))
                .await
                .unwrap();
        }
        let _a = b.acquire().await.unwrap();
        let _b = b.acquire().await.unwrap();
        let mut queued: Vec<_> = (0..5).map(|_| Box::pin(b.acquire())).collect();
        for q in &mut queued {
            assert!(poll_once(q.as_mut()).is_pending());
        }
        assert_eq!(b.queued(), 5);
        let before = Instant::now();
        let mut sixth = Box::pin(b.acquire());
        let polled = poll_once(sixth.as_mut());
        if reject {
            assert!(
                matches!(polled, Poll::Ready(Err(ActorError::Overloaded { .. }))),
                "expected an immediate rejection"
            );
            assert_eq!(Instant::now(), before);
            assert_eq!(b.queued(), 5);
        } else {
            assert!(polled.is_pending(), "without the option the caller queues");
            assert_eq!(b.queued(), 6);
        }
    }
}

/// A slow dependency (slots held long) shortens the queue on its own: with the mean
/// hold above deadline * max_concurrent, not even one caller may queue; when the slots
/// are free again, callers go straight in and fast calls bring the mean back down.
#[tokio::test(start_paused = true)]
async fn the_expected_wait_follows_the_hold_time() {
    let b = bulkhead(1, 100, 100);
    b.run(tokio::time::sleep(Duration::from_millis(500)))
        .await
        .unwrap();
    let held = b.acquire().await.unwrap();
    assert!(matches!(
        b.acquire().await,
        Err(ActorError::Overloaded { .. })
    ));
    drop(held);
    for _ in 0..100 {
        b.run(tokio::time::sleep(Duration::from_millis(1)))
            .await
            .unwrap();
    }
    let _held = b.acquire().await.unwrap();
    let mut queued = Box::pin(b.acquire());
    assert!(
        poll_once(queued.as_mut()).is_pending(),
        "fast calls: queueing again"
    );
}

#[tokio::test(start_paused = true)]
async fn cancelled_queued_caller_frees_its_place() {
    let b = bulkhead(1, 1, 60_000);
    let running = b.acquire().await.unwrap();
    let mut queued = Box::pin(b.acquire());
    assert!(poll_once(queued.as_mut()).is_pending());
    assert_eq!(b.queued(), 1);
    drop(queued);
    assert_eq!(b.queued(), 0);
    let mut next = Box::pin(b.acquire());
    assert!(
        poll_once(next.as_mut()).is_pending(),
        "the freed place is usable"
    );
    drop(running);
    assert!(next.await.is_ok());
    assert_eq!(b.in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrency_never_exceeds_the_limit_under_load() {
    let b = bulkhead(4, 1_000, 60_000);
    let (now, max) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let (b, now, max) = (b.clone(), now.clone(), max.clone());
            tokio::spawn(async move {
                b.run(async {
                    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                    max.fetch_max(n, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_micros(200)).await;
                    now.fetch_sub(1, Ordering::SeqCst);
                })
                .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().expect("queue is large enough");
    }
    assert!(max.load(Ordering::SeqCst) <= 4);
    assert_eq!(max.load(Ordering::SeqCst), 4, "the limit is actually used");
}

#[actix_rt::test]
async fn blocking_pool_runs_on_its_threads_and_survives_panics() {
    let cfg = BulkheadConfig {
        max_concurrent: 2,
        queue_capacity: 8,
        queue_timeout_ms: 5_000,
        ..Default::default()
    };
    let pool = BlockingPool::start("hashing", &cfg).unwrap();
    let caller = std::thread::current().id();
    let worker = pool
        .run_blocking(|| std::thread::current().id())
        .await
        .unwrap();
    assert_ne!(worker, caller);
    let r = pool.run_blocking(|| -> u32 { panic!("hash bug") }).await;
    assert_eq!(r, Err(ActorError::Panicked { actor: "bulkhead" }));
    for _ in 0..3 {
        assert_eq!(pool.run_blocking(|| 6 * 7).await, Ok(42));
    }
    for _ in 0..200 {
        if pool.restarts() >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(pool.restarts(), 1);
}

/// A job frees its slot before its caller hears back: with one slot and no queue, the
/// caller's next call always finds the slot free (before, the slot went with the job
/// message and could still be held for a moment after the answer).
#[actix_rt::test]
async fn blocking_pool_frees_the_slot_before_answering() {
    let cfg = BulkheadConfig {
        max_concurrent: 1,
        queue_capacity: 0,
        queue_timeout_ms: 1_000,
        ..Default::default()
    };
    let pool = BlockingPool::start("hashing", &cfg).unwrap();
    for i in 0..300 {
        pool.run_blocking(move || i).await.unwrap();
        let slot = pool.admission().acquire().await;
        assert!(
            slot.is_ok(),
            "call {i}: the slot was still held after the answer"
        );
    }
}

#[actix_rt::test]
async fn blocking_pool_rejects_when_full() {
    let cfg = BulkheadConfig {
        max_concurrent: 1,
        queue_capacity: 1,
        queue_timeout_ms: 5_000,
        ..Default::default()
    };
    let pool = BlockingPool::start("hashing", &cfg).unwrap();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let p = pool.clone();
    let busy =
        actix_rt::spawn(async move { p.run_blocking(move || release_rx.recv().is_ok()).await });
    settle().await;
    let mut queued = Box::pin(pool.run_blocking(|| true));
    assert!(poll_once(queued.as_mut()).is_pending());
    let mut rejected = Box::pin(pool.run_blocking(|| true));
    assert!(matches!(
        poll_once(rejected.as_mut()),
        Poll::Ready(Err(ActorError::Overloaded { .. }))
    ));
    release_tx.send(()).unwrap();
    assert_eq!(busy.await.unwrap(), Ok(true));
    assert_eq!(queued.await, Ok(true));
}

#[actix_rt::test]
async fn guarded_combines_bulkhead_and_circuit() {
    tokio::time::pause();
    let b = bulkhead(2, 2, 1_000);
    let c = Circuit::start(
        "postgres",
        CircuitConfig {
            minimum_calls: 3,
            ..Default::default()
        },
    )
    .unwrap();
    let classify = |r: &Result<(), ()>| {
        if r.is_ok() {
            Outcome::Success
        } else {
            Outcome::Failure
        }
    };
    assert_eq!(
        guarded(&b, &c, async { Ok(()) }, classify).await,
        Ok(Ok(()))
    );
    for _ in 0..2 {
        assert_eq!(
            guarded(&b, &c, async { Err(()) }, classify).await,
            Ok(Err(()))
        );
    }
    let open = guarded(&b, &c, async { Ok(()) }, classify).await;
    assert!(matches!(open, Err(ActorError::CircuitOpen { .. })));
    assert_eq!(b.in_flight(), 0);
}

/// A dependency that runs `parallel` calls at once, each for 1 ms, and queues the rest
/// inside itself (a database with that many cores); 48 callers in a closed loop through
/// an adaptive bulkhead of up to 16. Returns the bulkhead and the most calls seen inside
/// the dependency during the second half of the run.
async fn drive_adaptive(parallel: usize) -> (Bulkhead, usize) {
    let b = Bulkhead::new(
        "db_read",
        &BulkheadConfig {
            max_concurrent: 16,
            queue_capacity: 1_000,
            queue_timeout_ms: 60_000,
            reject_expected_timeouts: false,
            fair: true,
            max_queued_per_caller: 1_000,
            adaptive: true,
            min_concurrent: 1,
            probe_interval_ms: 1_000,
        },
    )
    .unwrap();
    let cores = Arc::new(tokio::sync::Semaphore::new(parallel));
    let (inside, late_max, done) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let calls = 400;
    let tasks: Vec<_> = (0..48)
        .map(|_| {
            let (b, cores) = (b.clone(), cores.clone());
            let (inside, late_max, done) = (inside.clone(), late_max.clone(), done.clone());
            tokio::spawn(async move {
                for _ in 0..calls {
                    b.run(async {
                        let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        if done.load(Ordering::SeqCst) > 48 * calls / 2 {
                            late_max.fetch_max(n, Ordering::SeqCst);
                        }
                        let _core = cores.acquire().await.unwrap();
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        inside.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
                    .expect("the queue is large and the deadline long");
                    done.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(b.in_flight(), 0);
    (b, late_max.load(Ordering::SeqCst))
}

/// One core: 16 calls at once would each take 16 ms for the throughput of one. The
/// limit falls to a few, and the dependency never sees more than the limit.
#[tokio::test(start_paused = true)]
async fn adaptive_limit_falls_to_what_a_one_core_dependency_serves() {
    let (b, late_max) = drive_adaptive(1).await;
    let noload = b.noload_hold().expect("measured");
    assert!(
        noload >= Duration::from_millis(1) && noload < Duration::from_millis(2),
        "no-load hold {noload:?}"
    );
    assert!((2..=6).contains(&b.limit()), "limit {}", b.limit());
    assert!(
        late_max <= 6,
        "{late_max} calls inside the dependency at once"
    );
    assert_exact_permits(&b).await;
}

/// Eight cores: the limit settles a few above eight; 64 cores: it keeps all 16.
#[tokio::test(start_paused = true)]
async fn adaptive_limit_follows_the_dependency_parallelism() {
    let (b, late_max) = drive_adaptive(8).await;
    assert!((9..=13).contains(&b.limit()), "limit {}", b.limit());
    assert!(late_max <= 13);
    assert_exact_permits(&b).await;
    let (b, late_max) = drive_adaptive(64).await;
    assert_eq!(b.limit(), 16);
    assert_eq!(late_max, 16, "the whole limit is used");
    assert_exact_permits(&b).await;
}
