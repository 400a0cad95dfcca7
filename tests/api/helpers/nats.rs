//! Test fixtures for events: a real `nats-server -js` on a free port with a store
//! directory of its own (stopped and restarted on the same port and directory, killed on
//! drop), and a reader of the events JetStream holds.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const STREAM: &str = "BULKHEAD";

pub struct Nats {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Nats {
    pub fn start() -> Self {
        let dir =
            std::env::temp_dir().join(format!("bulkhead-nats-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut nats = Nats {
            port: free_port(),
            dir,
            child: None,
        };
        nats.run();
        nats
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn run(&mut self) {
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-sd")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server must be installed (Debian: apt-get install nats-server; .ci/run does it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kill the server (its store directory stays).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start it again on the same port and store directory.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    /// Every message of the stream, in stream order, once it holds at least `at_least`
    /// (panics after `within`).
    pub async fn events(&self, at_least: usize, within: Duration) -> Vec<StreamEvent> {
        let deadline = Instant::now() + within;
        let mut seen = 0;
        loop {
            if let Ok(events) = self.read_all().await {
                seen = events.len();
                if seen >= at_least {
                    return events;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the stream holds {seen} events, expected at least {at_least} within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn read_all(&self) -> Result<Vec<StreamEvent>, async_nats::Error> {
        let client = async_nats::connect(self.url()).await?;
        let js = async_nats::jetstream::new(client);
        let mut stream = js.get_stream(STREAM).await?;
        let state = stream.info().await?.state.clone();
        let mut out = Vec::new();
        if state.messages == 0 {
            return Ok(out);
        }
        for seq in state.first_sequence..=state.last_sequence {
            let m = stream.get_raw_message(seq).await?;
            out.push(StreamEvent {
                subject: m.subject.to_string(),
                msg_id: m
                    .headers
                    .get(async_nats::header::NATS_MESSAGE_ID)
                    .map(|v| v.as_str().to_string())
                    .unwrap_or_default(),
                headers: format!("{:?}", m.headers),
                body: serde_json::from_slice(&m.payload)?,
            });
        }
        Ok(out)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[derive(Debug, Clone)]
pub struct StreamEvent {
    pub subject: String,
    pub msg_id: String,
    pub headers: String,
    pub body: Value,
}

impl StreamEvent {
    pub fn kind(&self) -> &str {
        self.body["type"].as_str().unwrap_or("")
    }

    pub fn resource(&self) -> &str {
        self.body["subject"].as_str().unwrap_or("")
    }
}

/// The events about resource `id`, in stream order, as their short type names.
pub fn kinds_of<'a>(events: &'a [StreamEvent], id: &str) -> Vec<&'a str> {
    events
        .iter()
        .filter(|e| e.resource() == id)
        .map(|e| e.kind().trim_start_matches("com.bulkhead."))
        .collect()
}

/// The value of an unlabelled series (gauges are per process: tests that read them run
/// the binary as a process of its own, `events_process.rs`) in a Prometheus exposition.
pub fn metric(exposition: &str, name: &str) -> Option<f64> {
    exposition
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}
