//! The retry budget (Envoy's retry budget, Finagle's `RetryBudget`): a retry is allowed
//! while the retries of the last second stay under
//! `max(min_per_sec, percent x requests of the last second)`.
//!
//! A fixed retry count multiplies load by `1 + retries` when an upstream fails; a budget
//! bounds the extra load to a share of the traffic (plus a floor, so a quiet route can
//! still retry), whatever the per-request retry count.
//!
//! The last second is ten 100 ms buckets; a bucket older than the window is reset as
//! time reaches it again. One uncontended mutex per call: a route's request and retry
//! counts are two adds.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

const BUCKETS: usize = 10;
const BUCKET: Duration = Duration::from_millis(100);

#[derive(Clone, Copy, Default)]
struct Bucket {
    /// Which 100 ms tick since `origin` this bucket counts; stale when older.
    tick: u64,
    requests: u32,
    retries: u32,
}

pub struct RetryBudget {
    percent: f64,
    min_per_sec: u32,
    origin: Instant,
    buckets: Mutex<[Bucket; BUCKETS]>,
}

impl RetryBudget {
    pub fn new(percent: f64, min_per_sec: u32) -> Self {
        Self {
            percent,
            min_per_sec,
            origin: Instant::now(),
            buckets: Mutex::new([Bucket::default(); BUCKETS]),
        }
    }

    fn tick(&self, now: Instant) -> u64 {
        let ns = now.saturating_duration_since(self.origin).as_nanos();
        u64::try_from(ns / BUCKET.as_nanos()).unwrap_or(u64::MAX)
    }

    /// The bucket of `tick`, reset when it last counted an older tick.
    fn bucket(buckets: &mut [Bucket; BUCKETS], tick: u64) -> &mut Bucket {
        let b = &mut buckets[(tick % BUCKETS as u64) as usize];
        if b.tick != tick {
            *b = Bucket {
                tick,
                ..Bucket::default()
            };
        }
        b
    }

    /// Counts a request (its first attempt).
    pub fn record_request(&self) {
        let tick = self.tick(Instant::now());
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        Self::bucket(&mut buckets, tick).requests += 1;
    }

    /// Takes a retry from the budget, or refuses it.
    pub fn try_retry(&self) -> bool {
        let tick = self.tick(Instant::now());
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let (requests, retries) = buckets
            .iter()
            .filter(|b| b.tick + BUCKETS as u64 > tick && b.tick <= tick)
            .fold((0u64, 0u64), |(q, r), b| {
                (q + u64::from(b.requests), r + u64::from(b.retries))
            });
        let allowed = (self.percent / 100.0 * requests as f64)
            .floor()
            .max(f64::from(self.min_per_sec));
        if (retries as f64) < allowed {
            Self::bucket(&mut buckets, tick).retries += 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take_all(b: &RetryBudget) -> u32 {
        let mut n = 0;
        while b.try_retry() {
            n += 1;
            assert!(n < 10_000);
        }
        n
    }

    #[tokio::test(start_paused = true)]
    async fn the_floor_applies_to_a_quiet_route() {
        let b = RetryBudget::new(20.0, 3);
        b.record_request();
        assert_eq!(take_all(&b), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_are_a_share_of_the_last_seconds_requests() {
        let b = RetryBudget::new(20.0, 3);
        for _ in 0..100 {
            b.record_request();
        }
        assert_eq!(take_all(&b), 20);
        // Still inside the window: nothing new.
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(take_all(&b), 0);
        // A second later the old requests and retries have left the window.
        tokio::time::advance(Duration::from_millis(600)).await;
        assert_eq!(take_all(&b), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_slides_bucket_by_bucket() {
        let b = RetryBudget::new(50.0, 0);
        for _ in 0..10 {
            b.record_request();
        }
        tokio::time::advance(Duration::from_millis(500)).await;
        for _ in 0..10 {
            b.record_request();
        }
        assert_eq!(take_all(&b), 10);
        // The first 10 requests leave the window; their share of retries goes with the
        // retries taken at 500 ms still counting.
        tokio::time::advance(Duration::from_millis(550)).await;
        assert_eq!(take_all(&b), 0);
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(take_all(&b), 0, "no requests in the window, floor 0");
    }
}
