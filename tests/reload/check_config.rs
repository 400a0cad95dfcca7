//! `check-config --diff FILE` predicts what a SIGHUP with FILE then does: both decide with
//! `reload::plan`, so the verdict and the reload's outcome agree, file after file.

use super::redis_server::RedisServer;
use super::*;

impl Server {
    /// `bulkhead check-config --config <running> --diff <next>` (each text written to a
    /// file of its own; the served file may hold a rejected reload): the exit code and
    /// what it printed.
    fn check_config(&self, running: &str, next: &str) -> (Option<i32>, String) {
        let (running_file, next_file) = (
            self.config.with_extension("running.toml"),
            self.config.with_extension("next.toml"),
        );
        std::fs::write(&running_file, self.with_server_section(running)).unwrap();
        std::fs::write(&next_file, self.with_server_section(next)).unwrap();
        let out = bulkhead()
            .args(["check-config", "--config"])
            .arg(&running_file)
            .arg("--diff")
            .arg(&next_file)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8(out.stdout).unwrap())
    }
}

/// Global policies (Redis set): a quota change is accepted by both, a sliding window or a
/// changed Redis URL refused by both, and the running policy stays.
#[test]
fn check_config_predicts_the_reload_of_a_global_policy() {
    let redis = RedisServer::start();
    let base = |redis_url: &str, ip: &str| {
        format!(
            "{LOGGING}[auth]\njwt_secret = \"0123456789abcdef0123456789abcdef\"\n\
             [redis]\nurl = \"{redis_url}\"\n[rate_limits.ip]\n{ip}"
        )
    };
    let mut running = base(&redis.url(), "quota = 1000\nwindow_secs = 60\n");
    let server = Server::start("predict", &running);
    assert!(server.policy().contains("q=1000"), "{}", server.policy());

    let cases = [
        (
            "a global quota",
            base(&redis.url(), "quota = 500\nwindow_secs = 60\n"),
            true,
        ),
        (
            "a global policy to a sliding window",
            base(
                &redis.url(),
                "quota = 500\nwindow_secs = 60\nalgorithm = \"sliding_window\"\n",
            ),
            false,
        ),
        (
            "another Redis",
            base("redis://127.0.0.1:1", "quota = 500\nwindow_secs = 60\n"),
            false,
        ),
    ];
    let (mut applied, mut rejected) = (0.0, 0.0);
    for (what, text, accepted) in cases {
        let (code, verdict) = server.check_config(&running, &text);
        assert_eq!(
            code == Some(0),
            accepted,
            "check-config on {what}: {code:?} {verdict}"
        );
        server.reload(&text);
        if accepted {
            applied += 1.0;
            running = text;
            assert!(
                verdict.ends_with("accepted: 1 change(s) apply live\n"),
                "{verdict}"
            );
        } else {
            rejected += 1.0;
            assert!(verdict.contains("rejected: "), "{verdict}");
        }
        server.await_metric(
            "bulkhead_config_reloads_total{outcome=\"applied\"}",
            applied,
        );
        server.await_metric(
            "bulkhead_config_reloads_total{outcome=\"rejected\"}",
            rejected,
        );
    }
    assert!(
        server.policy().contains("q=500"),
        "the accepted quota: {}",
        server.policy()
    );
}
