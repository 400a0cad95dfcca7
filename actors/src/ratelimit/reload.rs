//! Live reconfiguration of the limiter: the next policy generation and the carry-over
//! of every key into it (see the module documentation of [`super`]).
//!
//! Global (Redis-leased) keys follow the same generations. Their shared state is Redis's
//! GCRA TAT, which the next call to Redis reinterprets under the new emission interval
//! and tolerance (the script takes them per call), so a quota change gives them no fresh
//! burst either. Tokens already leased stay valid; the lease is sized from the new quota
//! at its next refill (`RedisLimiter::lease_size` is computed per decision from the
//! policy in force), so for one lease's worth of requests per instance the old sizing
//! can still apply. The fallback word (a local GCRA of `quota / fleet`) is kept as it is:
//! its TAT is a debt in time, which the new policy honours rather than forgets.

use std::sync::Arc;
use std::time::Duration;

use super::shard::{Reconfigure, Table};
use super::{global_gcra, Policy, PolicyConfig, PolicyName, RateLimiter};
use crate::supervise::ask;

impl RateLimiter {
    /// New policies from a reload: the same names in the same order, each validated.
    /// Swaps in the next generation at once (new decisions follow it), then has every
    /// shard carry its keys over; returns how many keys were carried. An `Err` after
    /// the swap means some shard could not be reached in time: its keys keep being
    /// decided under their previous policy, and the next reload carries them first.
    pub async fn reconfigure(
        &self,
        enabled: bool,
        policies: Vec<(PolicyName, PolicyConfig)>,
    ) -> Result<usize, String> {
        let inner = &*self.inner;
        let same_names = policies.len() == inner.meta.len()
            && policies
                .iter()
                .zip(&inner.meta)
                .all(|((n, _), m)| *n == m.name);
        if !same_names {
            return Err("rate_limits: policies cannot be added or removed live".into());
        }
        let mut compiled = Vec::with_capacity(policies.len());
        for (p, (name, pc)) in policies.into_iter().enumerate() {
            pc.validate()
                .map_err(|e| format!("rate_limits.{name}.{e}"))?;
            if inner.global_of(p).is_some() {
                global_gcra(&name, &pc)?;
            }
            compiled.push(Policy::new(pc, inner.idle_ttl));
        }
        let mut pending = inner.reload.lock().await;
        if *pending {
            self.carry_over().await?;
            *pending = false;
        }
        let current = inner.limits.table.load_full();
        inner.limits.table.store(Arc::new(Table {
            gen: current.gen.wrapping_add(1),
            enabled,
            policies: compiled,
            previous: current.policies.clone(),
        }));
        *pending = true;
        let moved = self.carry_over().await?;
        *pending = false;
        Ok(moved)
    }

    /// Asks every shard to carry its keys over to the current generation.
    async fn carry_over(&self) -> Result<usize, String> {
        let inner = &*self.inner;
        // A sweep of a full shard takes milliseconds; allow for a busy mailbox too.
        let deadline = inner.send_timeout.max(Duration::from_secs(2));
        let mut moved = 0;
        for shard in &inner.shards {
            moved += ask(&shard.addr, &inner.meter, deadline, |reply| Reconfigure {
                reply,
            })
            .await
            .map_err(|e| format!("rate limiter shard did not take the new policies: {e}"))?;
        }
        Ok(moved)
    }
}
