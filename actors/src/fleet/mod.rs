//! `RedisLimiter`: the Redis side of global (fleet-wide) rate limits.
//!
//! ```text
//! let redis = RedisLimiter::start(settings)?;            // once, inside the actix System
//! let limiter = RateLimiter::start_global(&cfg, true, policies, Some((redis, &["user"])))?;
//! ```
//! The supervised actor owns the Redis client: a `redis` `ConnectionManager` (reconnects
//! by itself) built once on a dedicated tokio runtime (one thread, `bulkhead-redis`) that
//! the actor owns and that outlives its restarts; actix workers never poll Redis
//! futures. In front of it a [`Circuit`] (`circuits` metrics under the name `redis`).
//! Request paths reach it with `try_send` into a bounded mailbox; the handler spawns the
//! call onto the runtime (at most `max_in_flight` at once, each under `timeout`), and the
//! caller waits at most `timeout` for the answer. While the circuit is open nothing is
//! sent: callers fall back at once (see [`crate::ratelimit::lease`]).
//!
//! Heartbeats: every `heartbeat_interval` the instance scores its id in a sorted set
//! (`<prefix>:fleet`) on Redis's clock and reads back how many instances beat within
//! `heartbeat_ttl`: the fleet size, unless `fleet_size` pins it. Heartbeats go through
//! the circuit too, so they are the trial calls that close it again without traffic.
//!
//! Metrics: `bulkhead_ratelimit_global` (1 while decisions are global, 0 in the fallback:
//! set 0 by any failed or refused Redis call, 1 by a success on a closed circuit) and
//! `bulkhead_ratelimit_fleet_size` (the fleet size in force).

mod scripts;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use metrics::Gauge;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;

use crate::circuit::{Circuit, CircuitState, Outcome};
use crate::config::CircuitConfig;
use crate::ratelimit::lease::lease_size;
pub use crate::ratelimit::lease::Grant;
use crate::supervise::{contain, tell, Meter};
use crate::ActorError;

/// Settings of the Redis limiter (the service maps its `redis` config section here).
#[derive(Debug, Clone)]
pub struct RedisSettings {
    pub url: String,
    /// This instance's id in the heartbeat set (unique per process).
    pub instance_id: String,
    /// Prefix of every key this service writes.
    pub key_prefix: String,
    /// The longest a request waits for Redis (and the deadline of every call).
    pub timeout: Duration,
    /// Deadline of one connection attempt.
    pub connect_timeout: Duration,
    pub heartbeat_interval: Duration,
    /// An instance not heard from this long is no longer counted.
    pub heartbeat_ttl: Duration,
    /// Redis calls in flight at once; beyond, callers fall back.
    pub max_in_flight: usize,
    pub mailbox_capacity: usize,
    /// Pinned fleet size; 0 = the heartbeat count.
    pub fleet_size: u32,
    /// Largest fleet-wide overshoot, as a fraction of the quota (sizes the leases).
    pub max_overshoot: f64,
    /// Upper bound on one key's lease.
    pub max_lease: u32,
    pub circuit: CircuitConfig,
}

/// Checks that `url` is a Redis URL the client accepts (config validation).
pub fn check_url(url: &str) -> Result<(), String> {
    redis::Client::open(url)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Handle to the Redis limiter. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct RedisLimiter {
    core: Arc<Core>,
    addr: Addr<RedisActor>,
}

/// Shared by the actor and its handles; holds the runtime the client lives on.
struct Core {
    settings: RedisSettings,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    handle: tokio::runtime::Handle,
    conn: ConnectionManager,
    lease: Script,
    heartbeat: Script,
    fleet_key: String,
    circuit: Circuit,
    /// Instances counted at the last heartbeat; 0 = none seen yet.
    seen: AtomicU32,
    in_flight: AtomicUsize,
    global: AtomicBool,
    gauge: Gauge,
    fleet_gauge: Gauge,
    meter: Meter,
}

impl Drop for Core {
    fn drop(&mut self) {
        // Never block (this may run inside an async context): let its thread wind down.
        if let Some(rt) = self.runtime.lock().ok().and_then(|mut r| r.take()) {
            rt.shutdown_background();
        }
    }
}

impl RedisLimiter {
    /// Builds the client on its own runtime and starts the supervised actor on the
    /// current arbiter. Does not wait for Redis: until it answers, decisions fall back.
    pub fn start(settings: RedisSettings) -> Result<Self, String> {
        if settings.max_in_flight == 0 || settings.mailbox_capacity == 0 {
            return Err("redis: max_in_flight and mailbox_capacity must be at least 1".into());
        }
        let circuit = Circuit::start("redis", settings.circuit.clone())?;
        let client =
            redis::Client::open(settings.url.as_str()).map_err(|e| format!("redis.url: {e}"))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("bulkhead-redis")
            .enable_all()
            .build()
            .map_err(|e| format!("redis: cannot start its runtime: {e}"))?;
        let handle = runtime.handle().clone();
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(Some(settings.timeout))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let conn = {
            let _in_runtime = runtime.enter();
            ConnectionManager::new_lazy_with_config(client, config)
                .map_err(|e| format!("redis: {e}"))?
        };
        let gauge = metrics::gauge!("bulkhead_ratelimit_global");
        gauge.set(0.0);
        let fleet_gauge = metrics::gauge!("bulkhead_ratelimit_fleet_size");
        fleet_gauge.set(f64::from(settings.fleet_size.max(1)));
        let core = Arc::new(Core {
            fleet_key: format!("{}:fleet", settings.key_prefix),
            settings,
            runtime: Mutex::new(Some(runtime)),
            handle,
            conn,
            lease: Script::new(scripts::LEASE),
            heartbeat: Script::new(scripts::HEARTBEAT),
            circuit,
            seen: AtomicU32::new(0),
            in_flight: AtomicUsize::new(0),
            global: AtomicBool::new(false),
            gauge,
            fleet_gauge,
            meter: Meter::new("redis_limiter"),
        });
        let actor = RedisActor { core: core.clone() };
        let addr = Supervisor::start(move |_| actor);
        Ok(Self { core, addr })
    }

    /// The fleet size in force: pinned, else the last heartbeat count (1 before any).
    pub fn fleet_size(&self) -> u32 {
        match self.core.settings.fleet_size {
            0 => self.core.seen.load(Ordering::Acquire).max(1),
            n => n,
        }
    }

    /// The lease size for a policy of `quota`. No lease (0) until the fleet was seen
    /// once, unless pinned: a fresh instance does not know how many share the quota.
    #[inline]
    pub fn lease_size(&self, quota: u32) -> u32 {
        let s = &self.core.settings;
        if s.fleet_size == 0 && self.core.seen.load(Ordering::Relaxed) == 0 {
            return 0;
        }
        lease_size(quota, s.max_overshoot, self.fleet_size(), s.max_lease)
    }

    /// True while decisions are global (the gauge's value).
    pub fn is_global(&self) -> bool {
        self.core.global.load(Ordering::Acquire)
    }

    /// True while the circuit is open: callers do not wait for Redis at all.
    #[inline]
    pub fn is_open(&self) -> bool {
        self.core.circuit.state() == CircuitState::Open
    }

    pub fn circuit_state(&self) -> CircuitState {
        self.core.circuit.state()
    }

    pub fn timeout(&self) -> Duration {
        self.core.settings.timeout
    }

    /// Actor restarts since start.
    pub fn restarts(&self) -> u64 {
        self.core.meter.restarts()
    }

    /// Takes up to `want` tokens of `key` (GCRA with interval `t_ns`, tolerance
    /// `tau_ns`), waiting at most the configured timeout.
    pub async fn take(
        &self,
        key: &str,
        t_ns: u64,
        tau_ns: u64,
        want: u32,
    ) -> Result<Grant, ActorError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.take_then(key, t_ns, tau_ns, want, move |r| {
            let _ = tx.send(r);
        })?;
        match tokio::time::timeout(self.core.settings.timeout, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_dropped)) => Err(ActorError::Unavailable),
            Err(_elapsed) => Err(ActorError::Timeout),
        }
    }

    /// Like [`take`](Self::take) without waiting: `done` runs on the Redis runtime with
    /// the answer (or here, at once, when the call cannot be sent).
    pub fn take_then(
        &self,
        key: &str,
        t_ns: u64,
        tau_ns: u64,
        want: u32,
        done: impl FnOnce(Result<Grant, ActorError>) + Send + 'static,
    ) -> Result<(), ActorError> {
        let msg = Take {
            key: key.to_owned(),
            t_us: (t_ns / 1_000).max(1),
            tau_us: (tau_ns / 1_000).max(1),
            want: want.max(1),
            done: Box::new(done),
        };
        tell(&self.addr, &self.core.meter, msg).inspect_err(|_| self.core.set_global(false))
    }

    /// Beats now (tests; the actor beats every `heartbeat_interval`).
    pub async fn heartbeat_now(&self) -> Result<u32, ActorError> {
        let core = self.core.clone();
        let beat = self.core.handle.spawn(async move { core.beat().await });
        match tokio::time::timeout(self.core.settings.timeout * 10, beat).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(ActorError::Unavailable),
            Err(_) => Err(ActorError::Timeout),
        }
    }
}

impl Core {
    fn set_global(&self, ok: bool) {
        let global = ok && self.circuit.state() == CircuitState::Closed;
        if self.global.swap(global, Ordering::AcqRel) != global {
            tracing::info!(
                global,
                "rate limits: {}",
                if global {
                    "global (Redis)"
                } else {
                    "local fallback"
                }
            );
        }
        self.gauge.set(if global { 1.0 } else { 0.0 });
    }

    /// One call under the circuit, the in-flight bound and the timeout.
    async fn call<T: redis::FromRedisValue>(
        &self,
        invoke: redis::ScriptInvocation<'_>,
    ) -> Result<T, ActorError> {
        let permit = match self.circuit.try_acquire() {
            Ok(p) => p,
            Err(e) => {
                self.set_global(false);
                return Err(e);
            }
        };
        let mut conn = self.conn.clone();
        let result =
            tokio::time::timeout(self.settings.timeout, invoke.invoke_async(&mut conn)).await;
        match result {
            Ok(Ok(v)) => {
                permit.record(Outcome::Success);
                self.set_global(true);
                Ok(v)
            }
            Ok(Err(e)) => {
                permit.record(Outcome::Failure);
                self.set_global(false);
                tracing::debug!(error = %e, "redis call failed");
                Err(ActorError::Unavailable)
            }
            Err(_elapsed) => {
                permit.record(Outcome::Failure);
                self.set_global(false);
                Err(ActorError::Timeout)
            }
        }
    }

    async fn take(
        &self,
        key: &str,
        t_us: u64,
        tau_us: u64,
        want: u32,
    ) -> Result<Grant, ActorError> {
        let mut invoke = self.lease.prepare_invoke();
        invoke.key(key).arg(t_us).arg(tau_us).arg(want);
        let reply: Vec<i64> = self.call(invoke).await?;
        scripts::grant(&reply).ok_or(ActorError::Unavailable)
    }

    async fn beat(&self) -> Result<u32, ActorError> {
        let mut invoke = self.heartbeat.prepare_invoke();
        let ttl_ms = u64::try_from(self.settings.heartbeat_ttl.as_millis()).unwrap_or(u64::MAX);
        invoke
            .key(&self.fleet_key)
            .arg(&self.settings.instance_id)
            .arg(ttl_ms.max(1));
        let n: u32 = self.call(invoke).await?;
        let before = self.seen.swap(n.max(1), Ordering::AcqRel);
        if self.settings.fleet_size == 0 {
            self.fleet_gauge.set(f64::from(n.max(1)));
        }
        if before != n {
            tracing::info!(instances = n, "rate limits: fleet size seen through Redis");
        }
        Ok(n.max(1))
    }
}

/// Owns the client's runtime (through [`Core`]) and the heartbeat timer.
struct RedisActor {
    core: Arc<Core>,
}

impl Actor for RedisActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.core.settings.mailbox_capacity);
        let beat = |core: &Arc<Core>| {
            let core = core.clone();
            core.handle.clone().spawn(async move {
                let _ = core.beat().await;
            });
        };
        beat(&self.core);
        ctx.run_interval(self.core.settings.heartbeat_interval, move |act, _| {
            beat(&act.core)
        });
    }
}

impl Supervised for RedisActor {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.core.meter.restarted();
    }
}

/// Take tokens; `done` gets the answer on the Redis runtime.
#[derive(Message)]
#[rtype(result = "()")]
struct Take {
    key: String,
    t_us: u64,
    tau_us: u64,
    want: u32,
    done: Box<dyn FnOnce(Result<Grant, ActorError>) + Send>,
}

impl Handler<Take> for RedisActor {
    type Result = ();

    fn handle(&mut self, msg: Take, ctx: &mut Self::Context) {
        let core = self.core.clone();
        let Take {
            key,
            t_us,
            tau_us,
            want,
            done,
        } = msg;
        let mut done = Some(done);
        contain::<Self, ()>(ctx, &self.core.meter, None, || {
            let limit = core.settings.max_in_flight;
            let admitted = core
                .in_flight
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < limit).then_some(n + 1)
                })
                .is_ok();
            let Some(reply) = done.take() else {
                return Ok(());
            };
            if !admitted {
                reply(Err(ActorError::Overloaded {
                    retry_after: Duration::from_secs(1),
                }));
                return Ok(());
            }
            let task_core = core.clone();
            core.handle.spawn(async move {
                let answer = task_core.take(&key, t_us, tau_us, want).await;
                task_core.in_flight.fetch_sub(1, Ordering::AcqRel);
                reply(answer);
            });
            Ok(())
        });
        // A panic before the reply was taken: answer the caller rather than leave it to
        // its deadline.
        if let Some(reply) = done {
            reply(Err(ActorError::Panicked {
                actor: "redis_limiter",
            }));
        }
    }
}
