//! Attacks, one test per class, named after what the attacker tries (issue 17). Each
//! one once succeeded against Bulkhead; keep them green.

mod account_takeover;
mod bad_tokens;
mod forwarded_for_lines;
mod framework_errors;
mod idempotency_outage;
mod login_race;
mod odd_input;
mod path_spelling;
mod slow_clients;

use std::time::{Duration, Instant};

/// Poll `f` until it is true or `deadline` passes.
pub async fn eventually(deadline: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
