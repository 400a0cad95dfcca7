//! External tools the tests run (validators, promtool, Prometheus, schemathesis): every
//! one bounded in time and killed when the test ends, pass or fail. A missing tool is a
//! failure with a message that says how to install it, never a skip.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A child process killed (and reaped) when dropped, so a failing assertion or a panic
/// never leaves it running.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Run `cmd` to completion, killing it after `limit`; panics if it cannot start
/// (`install` says how to get it) or runs out of time. Output goes to files, so a chatty
/// tool never blocks on a full pipe.
pub fn run_bounded(mut cmd: Command, limit: Duration, install: &str) -> Output {
    let program = format!("{:?}", cmd.get_program());
    let dir = TempDir::new("bulkhead-tool");
    let (out_path, err_path) = (dir.path("stdout"), dir.path("stderr"));
    let file = |p: &PathBuf| std::fs::File::create(p).expect("create output file");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(file(&out_path)))
        .stderr(Stdio::from(file(&err_path)))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}. Install it: {install}"));
    let mut guard = KillOnDrop(child);
    let deadline = Instant::now() + limit;
    let status = loop {
        match guard.0.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Ok(None) => panic!(
                "{program} ran longer than {limit:?}; killed. Output so far:\n{}{}",
                std::fs::read_to_string(&out_path).unwrap_or_default(),
                std::fs::read_to_string(&err_path).unwrap_or_default()
            ),
            Err(e) => panic!("waiting for {program}: {e}"),
        }
    };
    Output {
        status,
        stdout: std::fs::read(&out_path).unwrap_or_default(),
        stderr: std::fs::read(&err_path).unwrap_or_default(),
    }
}

/// A fresh temporary directory, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The text of a finished tool's stdout and stderr, for failure messages.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
