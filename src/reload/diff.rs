//! What a reload would change, key by key, and whether each key can change live.
//!
//! Both configurations are flattened to dotted keys (`bulkheads.db_read.max_concurrent`)
//! through their redacting `Serialize`, so printed values never hold a secret; the
//! secrets themselves are compared through `expose()` and shown as `<redacted>`.

use std::collections::BTreeMap;
use std::fmt;

use crate::config::Config;

/// One changed key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub key: String,
    /// Rendered as TOML; `unset` when absent; secrets redacted.
    pub old: String,
    pub new: String,
    pub live: bool,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let note = if self.live {
            ""
        } else {
            "  (cannot change live: restart)"
        };
        write!(f, "{}: {} -> {}{note}", self.key, self.old, self.new)
    }
}

/// Every key that differs between `running` and `next`, in key order.
pub fn diff(running: &Config, next: &Config) -> Vec<Change> {
    let (old, new) = (flatten(running), flatten(next));
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut changes: Vec<Change> = keys
        .into_iter()
        .filter(|k| old.get(*k) != new.get(*k))
        .map(|k| change(k, old.get(k), new.get(k)))
        .collect();
    // Secrets serialize as `<redacted>` on both sides: compare what they hold.
    let secrets = [
        (
            "auth.jwt_secret",
            running.auth.jwt_secret.as_ref().map(|s| s.expose()),
            next.auth.jwt_secret.as_ref().map(|s| s.expose()),
        ),
        (
            "auth.bootstrap_admin_password",
            running
                .auth
                .bootstrap_admin_password
                .as_ref()
                .map(|s| s.expose()),
            next.auth
                .bootstrap_admin_password
                .as_ref()
                .map(|s| s.expose()),
        ),
        (
            "database.url",
            running.database.url.as_ref().map(|u| u.expose()),
            next.database.url.as_ref().map(|u| u.expose()),
        ),
        (
            "redis.url",
            running.redis.url.as_ref().map(|u| u.expose()),
            next.redis.url.as_ref().map(|u| u.expose()),
        ),
        (
            "gateway.identity_secret",
            running.gateway.identity_secret.as_ref().map(|s| s.expose()),
            next.gateway.identity_secret.as_ref().map(|s| s.expose()),
        ),
    ];
    for (key, a, b) in secrets {
        if a != b && !changes.iter().any(|c| c.key == key) {
            let shown = |v: Option<&str>| v.map_or("unset", |_| "\"<redacted>\"").to_owned();
            changes.push(Change {
                key: key.into(),
                old: shown(a),
                new: shown(b),
                live: is_live(key),
            });
        }
    }
    changes.sort_by(|a, b| a.key.cmp(&b.key));
    changes
}

fn change(key: &str, old: Option<&String>, new: Option<&String>) -> Change {
    let shown = |v: Option<&String>| v.cloned().unwrap_or_else(|| "unset".into());
    Change {
        key: key.to_owned(),
        old: shown(old),
        new: shown(new),
        live: is_live(key),
    }
}

/// Whether `key` can change without a restart: what the actors, the pools and the log
/// filter take as new settings. Anything else (the listener, workers, shard counts,
/// mailbox sizes, secrets, URLs, token lifetimes, ...) is fixed for the process's life.
pub fn is_live(key: &str) -> bool {
    let mut parts = key.split('.');
    let (section, name, field) = (parts.next(), parts.next(), parts.next());
    match (section, name, field) {
        (Some("rate_limits"), Some("enabled"), None) => true,
        (Some("rate_limits"), Some("user" | "ip" | "login"), Some(_)) => true,
        (Some("circuits"), Some(_), Some(_)) => true,
        (Some("bulkheads"), Some("hashing"), Some("max_concurrent" | "adaptive")) => false,
        (Some("bulkheads"), Some(_), Some(_)) => true,
        (Some("cache"), Some(_), Some("capacity" | "ttl_secs")) => true,
        (Some("cache"), Some("products"), Some("list_capacity" | "max_age_ms")) => true,
        (Some("database"), Some("read_pool_size" | "write_pool_size"), None) => true,
        (Some("log"), Some("level" | "access_log"), None) => true,
        // The route table is rebuilt and swapped whole (`Gateway::replace_routes`); the
        // one client and its runtime are built once.
        (Some("gateway"), Some(n), _) if is_route_list(n, "routes") => true,
        (Some("gateway"), Some(n), _) if is_route_list(n, "overview_parts") => true,
        (
            Some("gateway"),
            Some("upstream"),
            Some(
                "client_threads"
                | "connect_timeout_ms"
                | "pool_max_idle_per_host"
                | "pool_idle_timeout_ms",
            ),
        ) => false,
        (Some("gateway"), Some("upstream"), Some(_)) => true,
        _ => false,
    }
}

/// `name` is the list `list` or one of its entries (`routes`, `routes[2]`).
fn is_route_list(name: &str, list: &str) -> bool {
    name.strip_prefix(list)
        .is_some_and(|rest| rest.is_empty() || (rest.starts_with('[') && rest.ends_with(']')))
}

/// The configuration as dotted keys and TOML-rendered values (secrets redacted).
fn flatten(config: &Config) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    match toml::Value::try_from(config) {
        Ok(value) => walk("", &value, &mut out),
        Err(e) => {
            out.insert("(config)".into(), format!("could not render: {e}"));
        }
    }
    out
}

fn walk(prefix: &str, value: &toml::Value, out: &mut BTreeMap<String, String>) {
    match value {
        toml::Value::Table(table) => {
            for (k, v) in table {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                walk(&key, v, out);
            }
        }
        // An array of tables (`[[gateway.routes]]`): one key per entry and field, as the
        // validation names them (`gateway.routes[0].prefix`).
        toml::Value::Array(items) if !items.is_empty() && items.iter().all(|v| v.is_table()) => {
            for (i, v) in items.iter().enumerate() {
                walk(&format!("{prefix}[{i}]"), v, out);
            }
        }
        other => {
            out.insert(prefix.to_owned(), other.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_changed_keys_and_which_are_live() {
        let running = Config::default();
        let next = Config::from_toml_str(
            "[rate_limits.user]\nquota = 10\n[server]\nworkers = 3\n\
             [auth]\njwt_secret = \"0123456789abcdef0123456789abcdef\"\n",
        )
        .unwrap();
        let changes = diff(&running, &next);
        let shown: Vec<String> = changes.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "auth.jwt_secret: unset -> \"<redacted>\"  (cannot change live: restart)",
                "rate_limits.user.quota: 6000 -> 10",
                "server.workers: 0 -> 3  (cannot change live: restart)",
            ]
        );
        assert!(diff(&next, &next).is_empty());
    }

    #[test]
    fn a_changed_secret_is_found_and_never_shown() {
        let a = Config::from_toml_str("[auth]\njwt_secret = \"a123456789abcdef0123456789abcdef\"")
            .unwrap();
        let b = Config::from_toml_str("[auth]\njwt_secret = \"b123456789abcdef0123456789abcdef\"")
            .unwrap();
        let changes = diff(&a, &b);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].old, "\"<redacted>\"");
        assert!(!changes[0].live);
    }

    #[test]
    fn live_keys() {
        for key in [
            "rate_limits.enabled",
            "rate_limits.ip.shadow",
            "circuits.postgres.minimum_calls",
            "bulkheads.db_read.max_concurrent",
            "bulkheads.hashing.queue_timeout_ms",
            "cache.users.ttl_secs",
            "cache.products.capacity",
            "cache.products.list_capacity",
            "cache.products.max_age_ms",
            "database.write_pool_size",
            "log.access_log",
            "gateway.routes[0].upstreams",
            "gateway.routes[12].name",
            "gateway.overview_parts[1].timeout_ms",
            "gateway.upstream.max_concurrent",
            "gateway.upstream.circuit.minimum_calls",
        ] {
            assert!(is_live(key), "{key}");
        }
        for key in [
            "server.bind",
            "server.workers",
            "rate_limits.limiter.shards",
            "cache.users.shards",
            "bulkheads.hashing.max_concurrent",
            "auth.jwt_secret",
            "database.url",
            "redis.url",
            "redis.timeout_ms",
            "rate_limits.fleet_size",
            "rate_limits.max_overshoot",
            "cache.users.degraded_ttl_ms",
            "cache.products.enabled",
            "invalidation.enabled",
            "log.format",
            "metrics.latency_buckets_secs",
            "gateway.identity_secret",
            "gateway.upstream.client_threads",
            "gateway.upstream.pool_idle_timeout_ms",
            "gateway.routesx",
        ] {
            assert!(!is_live(key), "{key}");
        }
    }
}
