//! Balancing over a route's upstream URLs: round robin, with outlier ejection (Envoy's
//! `consecutive_5xx`).
//!
//! An upstream failing `consecutive_failures` times in a row (connection error, reset,
//! timeout, 5xx) is ejected for `base x n`, at most `max`, where `n` counts its ejections
//! and drops by one for every `base` it then stays in (so a flapping upstream is kept out
//! longer each time, and a recovered one is forgiven). Never more than all but one URL is
//! ejected: the last one stays to be tried (with one upstream, ejection never happens),
//! and the circuit, not the balancer, stops traffic to a route that fails as a whole.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// One upstream base URL and its health.
pub struct Endpoint {
    pub scheme: http::uri::Scheme,
    pub authority: http::uri::Authority,
    /// The URL's path without its trailing `/` ("" for none).
    pub base_path: String,
    failures: AtomicU32,
    ejection: Mutex<Ejection>,
}

#[derive(Default)]
struct Ejection {
    until: Option<Instant>,
    /// The multiplier of the next ejection's length, before decay.
    count: u32,
    /// When the last ejection ended (for the decay).
    returned: Option<Instant>,
}

pub struct Balancer {
    endpoints: Vec<Endpoint>,
    next: AtomicUsize,
    consecutive_failures: u32,
    base: Duration,
    max: Duration,
}

impl Balancer {
    pub fn new(
        urls: &[http::Uri],
        consecutive_failures: u32,
        base: Duration,
        max: Duration,
    ) -> Self {
        let endpoints = urls
            .iter()
            .map(|u| Endpoint {
                scheme: u.scheme().cloned().unwrap_or(http::uri::Scheme::HTTP),
                authority: u
                    .authority()
                    .cloned()
                    .unwrap_or_else(|| http::uri::Authority::from_static("localhost")),
                base_path: u.path().trim_end_matches('/').to_string(),
                failures: AtomicU32::new(0),
                ejection: Mutex::new(Ejection::default()),
            })
            .collect();
        Self {
            endpoints,
            next: AtomicUsize::new(0),
            consecutive_failures,
            base,
            max,
        }
    }

    pub fn endpoint(&self, i: usize) -> &Endpoint {
        &self.endpoints[i]
    }

    fn is_ejected(&self, i: usize, now: Instant) -> bool {
        let mut e = self.endpoints[i]
            .ejection
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match e.until {
            Some(until) if until > now => true,
            Some(until) => {
                e.until = None;
                e.returned = Some(until);
                self.endpoints[i].failures.store(0, Ordering::Relaxed);
                false
            }
            None => false,
        }
    }

    /// The next URL to try: round robin over those not ejected, preferring ones this
    /// request has not tried (`tried`: a bit per index, for the first 64).
    pub fn pick(&self, tried: u64) -> usize {
        let n = self.endpoints.len();
        if n == 1 {
            return 0;
        }
        let now = Instant::now();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut fallback = None;
        for k in 0..n {
            let i = (start + k) % n;
            if self.is_ejected(i, now) {
                continue;
            }
            if i >= 64 || tried & (1 << i) == 0 {
                return i;
            }
            fallback.get_or_insert(i);
        }
        fallback.unwrap_or(start % n)
    }

    /// Records an attempt's outcome; true when this failure ejected the URL.
    pub fn record(&self, i: usize, ok: bool) -> bool {
        let e = &self.endpoints[i];
        if ok {
            e.failures.store(0, Ordering::Relaxed);
            return false;
        }
        let failures = e.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures < self.consecutive_failures || self.endpoints.len() == 1 {
            return false;
        }
        let now = Instant::now();
        if self.is_ejected(i, now) {
            return false; // a call that started before the ejection
        }
        let ejected_now = (0..self.endpoints.len())
            .filter(|&j| j != i && self.is_ejected(j, now))
            .count();
        if ejected_now + 1 >= self.endpoints.len() {
            return false; // the last one in stays in
        }
        let mut ej = e.ejection.lock().unwrap_or_else(|p| p.into_inner());
        if ej.until.is_some_and(|u| u > now) {
            return false;
        }
        let forgiven = match (ej.returned, self.base.as_nanos()) {
            (Some(back), base) if base > 0 => {
                let healthy = now.saturating_duration_since(back).as_nanos() / base;
                u32::try_from(healthy).unwrap_or(u32::MAX)
            }
            _ => 0,
        };
        ej.count = ej.count.saturating_sub(forgiven).saturating_add(1);
        let length = self.base.saturating_mul(ej.count).min(self.max);
        ej.until = Some(now + length);
        e.failures.store(0, Ordering::Relaxed);
        true
    }

    /// How long URL `i` is still ejected for (zero when in).
    pub fn ejected_for(&self, i: usize) -> Duration {
        let e = self.endpoints[i]
            .ejection
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        e.until.map_or(Duration::ZERO, |u| {
            u.saturating_duration_since(Instant::now())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_secs(30);

    fn balancer(n: usize) -> Balancer {
        let urls: Vec<http::Uri> = (0..n)
            .map(|i| format!("http://127.0.0.1:{}", 9000 + i).parse().unwrap())
            .collect();
        Balancer::new(&urls, 5, BASE, Duration::from_secs(300))
    }

    fn fail(b: &Balancer, i: usize, times: u32) -> bool {
        // Every failure is recorded (no short circuit); true if any of them ejected.
        (0..times).fold(false, |ejected, _| b.record(i, false) | ejected)
    }

    #[tokio::test(start_paused = true)]
    async fn round_robin_skips_ejected_and_tried() {
        let b = balancer(3);
        let picks: Vec<usize> = (0..6).map(|_| b.pick(0)).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        assert!(!fail(&b, 1, 4), "four failures do not eject");
        assert!(b.record(1, false), "the fifth does");
        for _ in 0..6 {
            assert_ne!(b.pick(0), 1);
        }
        // A request that tried 0 goes to 2, the only other one in.
        for _ in 0..6 {
            assert_eq!(b.pick(0b001), 2);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_streak() {
        let b = balancer(2);
        assert!(!fail(&b, 0, 4));
        b.record(0, true);
        assert!(!fail(&b, 0, 4));
        assert_eq!(b.ejected_for(0), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn ejections_grow_and_decay() {
        let b = balancer(3);
        assert!(fail(&b, 0, 5));
        assert_eq!(b.ejected_for(0), BASE);
        tokio::time::advance(BASE).await;
        b.pick(0); // notices the ejection is over
        assert!(fail(&b, 0, 5));
        assert_eq!(b.ejected_for(0), BASE * 2, "the second ejection is longer");
        tokio::time::advance(BASE * 2).await;
        b.pick(0);
        // Healthy for three base periods: the multiplier decays to zero, then one.
        tokio::time::advance(BASE * 3).await;
        assert!(fail(&b, 0, 5));
        assert_eq!(b.ejected_for(0), BASE);
    }

    #[tokio::test(start_paused = true)]
    async fn never_ejects_them_all() {
        let b = balancer(3);
        assert!(fail(&b, 0, 5));
        assert!(fail(&b, 1, 5));
        assert!(!fail(&b, 2, 50), "the last one in stays in");
        assert_eq!(b.pick(0), 2);
        let one = balancer(1);
        assert!(!fail(&one, 0, 50));
        assert_eq!(one.pick(0), 0);
    }
}
