//! The one decision of a reload: what `next` changes over `running`, and whether the
//! reload is accepted. [`super::Reloader`] applies what [`plan`] accepts, and
//! `check-config --diff` prints what it decides, so the two never disagree.
//!
//! Rules, in order: every changed key must be live ([`super::is_live`]); the gateway can change
//! its routes live only if it runs (it starts with the process when routes exist, so the
//! first route, or the last one gone, takes a restart); a global rate-limit policy stays
//! GCRA (Redis decides it as GCRA). `Config::load` has already validated `next` whole.

use bulkhead_actors::Algorithm;

use super::diff::{diff, Change};
use crate::config::{Config, ConfigError};

/// Why a reload is not applied.
#[derive(Debug, thiserror::Error)]
pub enum Rejected {
    #[error("invalid configuration: {0}")]
    Invalid(#[from] ConfigError),
    #[error("`{key}` cannot change without a restart ({old} -> {new})")]
    NotLive {
        key: String,
        old: String,
        new: String,
    },
    #[error("`{key}` cannot change live: {reason}")]
    Refused { key: String, reason: String },
    #[error("{0}")]
    Apply(String),
}

impl Rejected {
    /// The key at fault, when one is.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Invalid(ConfigError::Invalid { key, .. }) => Some(key),
            Self::NotLive { key, .. } | Self::Refused { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// Every change of a reload from `running` to `next`, or why it is rejected.
pub fn plan(running: &Config, next: &Config) -> Result<Vec<Change>, Rejected> {
    let changes = diff(running, next);
    if let Some(c) = changes.iter().find(|c| !c.live) {
        return Err(Rejected::NotLive {
            key: c.key.clone(),
            old: c.old.clone(),
            new: c.new.clone(),
        });
    }
    let (was, will) = (
        running.gateway.routes.is_empty(),
        next.gateway.routes.is_empty(),
    );
    if was != will {
        return Err(Rejected::Refused {
            key: "gateway.routes".into(),
            reason: if was {
                "the gateway starts with the process; adding the first route takes a restart"
            } else {
                "the gateway stops with the process; removing the last route takes a restart"
            }
            .into(),
        });
    }
    if next.redis.url.is_some() {
        let r = &next.rate_limits;
        for (name, p) in [("user", &r.user), ("ip", &r.ip), ("login", &r.login)] {
            if p.algorithm != Algorithm::Gcra {
                return Err(Rejected::Refused {
                    key: format!("rate_limits.{name}.algorithm"),
                    reason: "a global policy (redis.url is set) stays \"gcra\"".into(),
                });
            }
        }
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "gateway-identity-secret-0123456789abcdef";

    fn config(text: &str) -> Config {
        Config::from_toml_str(text).unwrap()
    }

    fn route(name: &str, upstream: &str) -> String {
        format!(
            "[[gateway.routes]]\nname = \"{name}\"\nprefix = \"/api/v1/{name}\"\n\
             upstreams = [\"{upstream}\"]\n"
        )
    }

    #[test]
    fn gateway_routes_change_live_but_the_gateway_does_not_start_or_stop() {
        let gw = format!("[gateway]\nidentity_secret = \"{SECRET}\"\n");
        let one = config(&format!("{gw}{}", route("a", "http://127.0.0.1:1")));
        let two = config(&format!(
            "{gw}{}{}",
            route("a", "http://127.0.0.1:2"),
            route("b", "http://127.0.0.1:3")
        ));
        let changes = plan(&one, &two).unwrap();
        let keys: Vec<&str> = changes.iter().map(|c| c.key.as_str()).collect();
        assert!(keys.contains(&"gateway.routes[0].upstreams"), "{keys:?}");
        assert!(keys.contains(&"gateway.routes[1].name"), "{keys:?}");

        let none = config(&gw);
        for (from, to) in [(&none, &one), (&one, &none)] {
            let e = plan(from, to).unwrap_err();
            assert_eq!(e.key(), Some("gateway.routes"), "{e}");
        }
        let threads = config(&format!(
            "{gw}{}[gateway.upstream]\nclient_threads = 7\n",
            route("a", "http://127.0.0.1:1")
        ));
        let e = plan(&one, &threads).unwrap_err();
        assert_eq!(e.key(), Some("gateway.upstream.client_threads"), "{e}");
    }

    #[test]
    fn a_global_policy_stays_gcra() {
        let redis = "[redis]\nurl = \"redis://127.0.0.1:6379\"\n\
                     [auth]\njwt_secret = \"0123456789abcdef0123456789abcdef\"\n";
        let running = config(redis);
        let quota = config(&format!("{redis}[rate_limits.user]\nquota = 10\n"));
        assert_eq!(plan(&running, &quota).unwrap().len(), 1);
        // `Config::load` refuses this file; a config built in code is decided alike.
        let mut sliding = running.clone();
        sliding.rate_limits.ip.algorithm = Algorithm::SlidingWindow;
        let e = plan(&running, &sliding).unwrap_err();
        assert_eq!(e.key(), Some("rate_limits.ip.algorithm"), "{e}");
    }
}
