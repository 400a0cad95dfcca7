use super::*;

const EXAMPLE: &str = include_str!("../../config/bulkhead.example.toml");

#[test]
fn example_file_documents_exactly_the_defaults() {
    let documented: toml::Value = toml::from_str(EXAMPLE).expect("example parses as TOML");
    let defaults = toml::Value::try_from(Config::default()).expect("defaults serialize");
    assert_eq!(
        documented, defaults,
        "config/bulkhead.example.toml and Config::default() have drifted apart; \
         every key must be documented with its default"
    );
    Config::from_toml_str(EXAMPLE).expect("example is a valid config");
}

#[test]
fn unknown_key_is_named() {
    let err = Config::from_toml_str("[server]\nbindd = \"127.0.0.1:1\"\n").unwrap_err();
    assert!(err.to_string().contains("server.bindd"), "{err}");
    let err = Config::from_toml_str("[nosuchsection]\nx = 1\n").unwrap_err();
    assert!(err.to_string().contains("nosuchsection"), "{err}");
    let err = Config::from_toml_str("[circuits.postgres]\nopen_wait = 1\n").unwrap_err();
    assert!(
        err.to_string().contains("circuits.postgres.open_wait"),
        "{err}"
    );
}

#[test]
fn ill_typed_key_is_named() {
    let err = Config::from_toml_str("[server]\nshutdown_timeout_secs = \"soon\"\n").unwrap_err();
    assert!(
        err.to_string().contains("server.shutdown_timeout_secs"),
        "{err}"
    );
    let err = Config::from_toml_str("[server]\nbind = \"not an address\"\n").unwrap_err();
    assert!(err.to_string().contains("server.bind"), "{err}");
    let err = Config::from_toml_str("[server]\ntrusted_proxies = [\"10.0.0.0/99\"]\n").unwrap_err();
    assert!(err.to_string().contains("server.trusted_proxies"), "{err}");
}

#[test]
fn invalid_values_are_named() {
    let err = Config::from_toml_str("[auth]\njwt_secret = \"short\"\n").unwrap_err();
    assert!(err.to_string().contains("auth.jwt_secret"), "{err}");
    let err = Config::from_toml_str("[database]\nurl = \"mysql://nope\"\n").unwrap_err();
    assert!(err.to_string().contains("database.url"), "{err}");
    let err = Config::from_toml_str("[auth]\nbootstrap_admin_email = \"a@b.c\"\n").unwrap_err();
    assert!(
        err.to_string().contains("auth.bootstrap_admin_email"),
        "{err}"
    );
    let err = Config::from_toml_str("[metrics]\nlatency_buckets_secs = [0.5, 0.1]\n").unwrap_err();
    assert!(
        err.to_string().contains("metrics.latency_buckets_secs"),
        "{err}"
    );
    let err = Config::from_toml_str("[rate_limits.user]\nquota = 0\n").unwrap_err();
    assert!(err.to_string().contains("rate_limits.user.quota"), "{err}");
    for threads in [0, 65] {
        let err = Config::from_toml_str(&format!("[database]\nclient_threads = {threads}\n"))
            .unwrap_err();
        assert!(err.to_string().contains("database.client_threads"), "{err}");
    }
    assert!(Config::from_toml_str("[database]\nclient_threads = 2\n").is_ok());
}

#[test]
fn environment_overrides_file() {
    let dir = std::env::temp_dir().join(format!("bulkhead-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("c.toml");
    std::fs::write(
        &file,
        "[server]\nshutdown_timeout_secs = 7\nbind = \"127.0.0.1:9\"\n",
    )
    .unwrap();
    // A prefix of its own so parallel tests never see these variables.
    std::env::set_var("BHTEST_ENV_OVR__SERVER__SHUTDOWN_TIMEOUT_SECS", "11");
    std::env::set_var("BHTEST_ENV_OVR__RATE_LIMITS__USER__QUOTA", "42");
    std::env::set_var(
        "BHTEST_ENV_OVR__SERVER__TRUSTED_PROXIES",
        "[\"10.0.0.0/8\", \"::1/128\"]",
    );
    let cfg = Config::load_from(Some(&file), Env::prefixed("BHTEST_ENV_OVR__")).unwrap();
    assert_eq!(cfg.server.shutdown_timeout_secs, 11);
    assert_eq!(cfg.server.bind.port(), 9);
    assert_eq!(cfg.rate_limits.user.quota, 42);
    assert_eq!(cfg.server.trusted_proxies.len(), 2);

    std::env::set_var("BHTEST_ENV_BAD__SERVER__WORKERS", "many");
    let err = Config::load_from(None, Env::prefixed("BHTEST_ENV_BAD__")).unwrap_err();
    assert!(err.to_string().contains("server.workers"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Setting one key of a section keeps the service's defaults for the others (not those
/// of the section's type): `db_read` keeps its 25 ms deadline and 256-deep queue, the
/// user policy its window.
#[test]
fn a_partial_section_keeps_the_other_defaults() {
    let d = Config::default();
    std::env::set_var("BHTEST_ENV_PART__BULKHEADS__DB_READ__MAX_CONCURRENT", "4");
    std::env::set_var("BHTEST_ENV_PART__RATE_LIMITS__USER__QUOTA", "42");
    let cfg = Config::load_from(None, Env::prefixed("BHTEST_ENV_PART__")).unwrap();
    assert_eq!(cfg.bulkheads.db_read.max_concurrent, 4);
    assert_eq!(
        cfg.bulkheads.db_read.queue_timeout_ms,
        d.bulkheads.db_read.queue_timeout_ms
    );
    assert_eq!(
        cfg.bulkheads.db_read.queue_capacity,
        d.bulkheads.db_read.queue_capacity
    );
    assert_eq!(cfg.bulkheads.db_read.adaptive, d.bulkheads.db_read.adaptive);
    assert_eq!(cfg.rate_limits.user.quota, 42);
    assert_eq!(
        cfg.rate_limits.user,
        PolicyConfig {
            quota: 42,
            ..d.rate_limits.user.clone()
        }
    );

    let cfg = Config::from_toml_str("[bulkheads.db_write]\nmax_concurrent = 3\n").unwrap();
    assert_eq!(cfg.bulkheads.db_write.max_concurrent, 3);
    assert_eq!(
        cfg.bulkheads.db_write.queue_timeout_ms,
        d.bulkheads.db_write.queue_timeout_ms
    );
    assert_ne!(
        d.bulkheads.db_write.queue_timeout_ms,
        BulkheadConfig::default().queue_timeout_ms,
        "the test needs a section whose defaults differ from its type's"
    );
}

#[test]
fn missing_file_is_an_error() {
    let err = Config::load(Some(Path::new("/nonexistent/bulkhead.toml"))).unwrap_err();
    assert!(matches!(err, ConfigError::MissingFile(_)));
}

#[test]
fn redacted_output_hides_secrets() {
    let cfg = Config::from_toml_str(
        "[auth]\njwt_secret = \"0123456789abcdef0123456789abcdef\"\n\
         [database]\nurl = \"postgres://u:pw@localhost/db\"\n",
    )
    .unwrap();
    let text = cfg.to_redacted_toml();
    assert!(!text.contains("0123456789abcdef"), "{text}");
    assert!(!text.contains(":pw@"), "{text}");
    assert!(text.contains("<redacted>"), "{text}");
}

#[test]
fn the_hashing_pool_cannot_adapt_and_min_concurrent_is_bounded() {
    let err = Config::from_toml_str("[bulkheads.hashing]\nadaptive = true\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("bulkheads.hashing.adaptive"), "{err}");
    let err = Config::from_toml_str("[bulkheads.db_read]\nmin_concurrent = 17\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bulkheads.db_read") && err.contains("min_concurrent"),
        "{err}"
    );
}

#[test]
fn invalidation_keys_are_validated_and_named() {
    let err = Config::from_toml_str("[cache.users]\ndegraded_ttl_ms = 0\n").unwrap_err();
    assert!(
        err.to_string().contains("cache.users.degraded_ttl_ms"),
        "{err}"
    );
    let err =
        Config::from_toml_str("[cache.users]\nttl_secs = 1\ndegraded_ttl_ms = 1001\n").unwrap_err();
    assert!(
        err.to_string().contains("cache.users.degraded_ttl_ms"),
        "{err}"
    );
    let err = Config::from_toml_str("[invalidation]\nreconnect_min_ms = 0\n").unwrap_err();
    assert!(
        err.to_string().contains("invalidation.reconnect_min_ms"),
        "{err}"
    );
    let err = Config::from_toml_str("[invalidation]\nreconnect_max_ms = 50\n").unwrap_err();
    assert!(
        err.to_string().contains("invalidation.reconnect_max_ms"),
        "{err}"
    );
    let err = Config::from_toml_str("[cache.tokens]\ndegraded_ttl_ms = 10\n").unwrap_err();
    assert!(
        err.to_string().contains("cache.tokens.degraded_ttl_ms"),
        "{err}"
    );
    let c = Config::from_toml_str("[cache.users]\ndegraded_ttl_ms = 250\n").unwrap();
    assert_eq!(c.cache.users.degraded_ttl_ms, 250);
    assert!(c.invalidation.enabled);
}

#[test]
fn redis_url_requires_a_shared_jwt_secret_and_gcra() {
    let err = Config::from_toml_str("[redis]\nurl = \"redis://127.0.0.1:6379\"\n").unwrap_err();
    assert!(err.to_string().contains("auth.jwt_secret"), "{err}");
    let secret = "[auth]\njwt_secret = \"0123456789abcdef0123456789abcdef\"\n";
    let ok = format!("{secret}[redis]\nurl = \"redis://:pw@127.0.0.1:6379\"\n");
    let config = Config::from_toml_str(&ok).expect("valid");
    assert!(!config.to_redacted_toml().contains(":pw@"));
    let sliding = format!("{ok}[rate_limits.ip]\nalgorithm = \"sliding_window\"\n");
    let err = Config::from_toml_str(&sliding).unwrap_err();
    assert!(
        err.to_string().contains("rate_limits.ip.algorithm"),
        "{err}"
    );
    let err = Config::from_toml_str("[rate_limits]\nmax_overshoot = 1.5\n").unwrap_err();
    assert!(
        err.to_string().contains("rate_limits.max_overshoot"),
        "{err}"
    );
    let err = Config::from_toml_str("[redis]\nheartbeat_ttl_ms = 10\n").unwrap_err();
    assert!(err.to_string().contains("redis.heartbeat_ttl_ms"), "{err}");
    let err = Config::from_toml_str("[redis.circuit]\nminimum_calls = 0\n").unwrap_err();
    assert!(
        err.to_string().contains("redis.circuit.minimum_calls"),
        "{err}"
    );
}

#[test]
fn the_product_cache_age_is_bounded_by_the_contract() {
    for bad in [0, 101, 1_000] {
        let err =
            Config::from_toml_str(&format!("[cache.products]\nmax_age_ms = {bad}\n")).unwrap_err();
        assert!(
            err.to_string().contains("cache.products.max_age_ms"),
            "{bad}: {err}"
        );
    }
    let err = Config::from_toml_str("[cache.products]\nlist_capacity = 0\n").unwrap_err();
    assert!(
        err.to_string().contains("cache.products.list_capacity"),
        "{err}"
    );
    let c = Config::from_toml_str("[cache.products]\nmax_age_ms = 100\n").unwrap();
    assert_eq!(c.cache.products.max_age_ms, 100);
    assert!(c.cache.products.enabled);
    assert_eq!(Config::default().cache.products.max_age_ms, 50);
}
