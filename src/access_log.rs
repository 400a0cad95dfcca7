//! The access log: one line per request, rendered straight into bytes, held with the
//! other lines of its worker thread for at most 25 ms ([`Pending`]) and queued on the log
//! writer thread (the same bounded, lossy queue as every other log line, so lines never
//! interleave and a full queue drops lines instead of stalling requests).
//!
//! It does not go through `tracing`'s formatter: an event there visits each field,
//! looks up spans and formats the time through a generic writer, which measured at
//! 15-18 % of scenario 1's throughput. Every field here is known to need no escaping (a
//! route template, a method token, a status, a number, an IP address, a UUID, and a
//! request id limited to `A-Za-z0-9._-`), and the time's seconds are formatted once per
//! second per thread.
//!
//! JSON (`log.format = "json"`), one object a line:
//! `{"timestamp":"2026-12-03T16:29:57.059111Z","level":"INFO","message":"access",
//! "method":"GET","route":"/api/v1/users/me","status":200,"duration_ms":0.512,
//! "client_ip":"127.0.0.1","user_id":"…","request_id":"…","target":"access"}`
//! (`client_ip` and `user_id` only when known). Text: `2026-12-03T16:29:57.059111Z  INFO
//! access: method=GET route=/api/v1/users/me status=200 duration_ms=0.512
//! client_ip=127.0.0.1 user_id=… request_id=…`.
//!
//! On or off by `log.access_log`, at start and on every reload ([`set_enabled`]).

use std::cell::RefCell;
use std::io::Write;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing_appender::non_blocking::NonBlocking;
use uuid::Uuid;

/// Where lines go and how they look; set once, by `telemetry::init`.
struct Sink {
    writer: NonBlocking,
    json: bool,
}

static SINK: OnceLock<Sink> = OnceLock::new();
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Installs the writer (the log writer thread's queue); later calls are ignored.
pub(crate) fn install(writer: NonBlocking, json: bool, enabled: bool) {
    if SINK.set(Sink { writer, json }).is_ok() {
        set_enabled(enabled);
    }
}

/// `log.access_log` (at start and on a reload).
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether a line would be written (the access log is on and a writer is installed).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed) && SINK.get().is_some()
}

/// One request, as the access line tells it.
pub struct Entry<'a> {
    pub method: &'a str,
    pub route: &'a str,
    pub status: u16,
    pub elapsed: Duration,
    pub client_ip: Option<IpAddr>,
    pub user_id: Option<Uuid>,
    /// Validated or generated: `A-Za-z0-9._-` only.
    pub request_id: &'a str,
}

/// A worker thread's lines are handed to the log writer thread together, once they add
/// up to this many bytes, or by the thread's timer every [`FLUSH_EVERY`].
const FLUSH_BYTES: usize = 16 * 1024;
/// How often a worker's timer hands over what its thread holds: the longest a line waits.
const FLUSH_EVERY: Duration = Duration::from_millis(25);

/// Lines rendered on this thread, not yet handed to the writer thread. Handing each line
/// over on its own woke the writer thread for a few lines at a time (17,600 wake-ups a
/// second at 93k lines a second): a futex wake and a context switch that cost more than
/// rendering the line. Held at most [`FLUSH_EVERY`], as nginx's `access_log ... buffer=
/// flush=` does; a thread's exit hands over what is left.
struct Pending {
    buf: Vec<u8>,
    /// Whether this thread's flush timer runs.
    timer: bool,
}

impl Pending {
    fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        if let Some(sink) = SINK.get() {
            // One channel message (a clone of the sender, as `tracing`'s writer makes
            // per event); the queue is lossy, so this never blocks.
            let _ = sink.writer.clone().write_all(&self.buf);
        }
        self.buf.clear();
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.flush();
    }
}

thread_local! {
    static PENDING: RefCell<Pending> = const {
        RefCell::new(Pending { buf: Vec::new(), timer: false })
    };
}

/// Writes `entry`'s line if the access log is on: held on this thread and handed to the
/// log writer thread with the lines after it ([`Pending`]).
pub fn write(entry: &Entry<'_>) {
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    let Some(sink) = SINK.get() else { return };
    let start_timer = PENDING.with(|cell| {
        let mut p = cell.borrow_mut();
        if p.buf.capacity() == 0 {
            p.buf.reserve(FLUSH_BYTES + 512);
        }
        render(&mut p.buf, entry, SystemTime::now(), sink.json);
        if p.buf.len() >= FLUSH_BYTES {
            p.flush();
        }
        !std::mem::replace(&mut p.timer, true)
    });
    if start_timer {
        start_flush_timer();
    }
}

/// Hands over this thread's lines at least every [`FLUSH_EVERY`], however quiet the
/// thread: a task on the thread's local task set (an actix worker's), for as long as the
/// thread runs one. Without one (a thread outside a runtime) every line goes at once.
fn start_flush_timer() {
    if tokio::runtime::Handle::try_current().is_err() {
        PENDING.with(|cell| {
            let mut p = cell.borrow_mut();
            p.flush();
            p.timer = false;
        });
        return;
    }
    // The lines of a request are written on its worker's thread, inside its local set.
    tokio::task::spawn_local(async {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            PENDING.with(|cell| cell.borrow_mut().flush());
        }
    });
}

/// The line of `entry` at `now`, newline included.
fn render(out: &mut Vec<u8>, e: &Entry<'_>, now: SystemTime, json: bool) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let micros = u64::try_from(e.elapsed.as_micros()).unwrap_or(u64::MAX);
    let mut n = itoa::Buffer::new();
    if json {
        out.extend_from_slice(b"{\"timestamp\":\"");
        timestamp(out, since);
        out.extend_from_slice(b"\",\"level\":\"INFO\",\"message\":\"access\",\"method\":\"");
        out.extend_from_slice(e.method.as_bytes());
        out.extend_from_slice(b"\",\"route\":\"");
        out.extend_from_slice(e.route.as_bytes());
        out.extend_from_slice(b"\",\"status\":");
        out.extend_from_slice(n.format(e.status).as_bytes());
        out.extend_from_slice(b",\"duration_ms\":");
        millis(out, micros);
        if let Some(ip) = e.client_ip {
            let _ = write!(out, ",\"client_ip\":\"{ip}\"");
        }
        if let Some(user) = e.user_id {
            out.extend_from_slice(b",\"user_id\":\"");
            out.extend_from_slice(
                user.hyphenated()
                    .encode_lower(&mut Uuid::encode_buffer())
                    .as_bytes(),
            );
            out.push(b'"');
        }
        out.extend_from_slice(b",\"request_id\":\"");
        out.extend_from_slice(e.request_id.as_bytes());
        out.extend_from_slice(b"\",\"target\":\"access\"}\n");
    } else {
        timestamp(out, since);
        out.extend_from_slice(b"  INFO access: method=");
        out.extend_from_slice(e.method.as_bytes());
        out.extend_from_slice(b" route=");
        out.extend_from_slice(e.route.as_bytes());
        out.extend_from_slice(b" status=");
        out.extend_from_slice(n.format(e.status).as_bytes());
        out.extend_from_slice(b" duration_ms=");
        millis(out, micros);
        if let Some(ip) = e.client_ip {
            let _ = write!(out, " client_ip={ip}");
        }
        if let Some(user) = e.user_id {
            out.extend_from_slice(b" user_id=");
            out.extend_from_slice(
                user.hyphenated()
                    .encode_lower(&mut Uuid::encode_buffer())
                    .as_bytes(),
            );
        }
        out.extend_from_slice(b" request_id=");
        out.extend_from_slice(e.request_id.as_bytes());
        out.push(b'\n');
    }
}

/// `micros` as milliseconds with three decimals.
fn millis(out: &mut Vec<u8>, micros: u64) {
    let mut n = itoa::Buffer::new();
    out.extend_from_slice(n.format(micros / 1000).as_bytes());
    let frac = micros % 1000;
    out.extend_from_slice(&[
        b'.',
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ]);
}

thread_local! {
    /// The last second formatted on this thread and its `YYYY-MM-DDTHH:MM:SS`.
    static SECOND: RefCell<(u64, [u8; 19])> = const { RefCell::new((u64::MAX, [0; 19])) };
}

/// RFC 3339 in UTC with microseconds, as `tracing`'s formatter writes it.
fn timestamp(out: &mut Vec<u8>, since_epoch: Duration) {
    let secs = since_epoch.as_secs();
    SECOND.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs {
            let t = chrono::DateTime::from_timestamp(i64::try_from(secs).unwrap_or(0), 0)
                .unwrap_or_default();
            let mut text = [0u8; 19];
            let s = t.format("%Y-%m-%dT%H:%M:%S").to_string();
            if s.len() == 19 {
                text.copy_from_slice(s.as_bytes());
            }
            *cached = (secs, text);
        }
        out.extend_from_slice(&cached.1);
    });
    let micros = since_epoch.subsec_micros();
    out.push(b'.');
    let digits = [100_000, 10_000, 1_000, 100, 10, 1];
    for d in digits {
        out.push(b'0' + (micros / d % 10) as u8);
    }
    out.push(b'Z');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(json: bool, client_ip: Option<IpAddr>, user_id: Option<Uuid>) -> String {
        let mut out = Vec::new();
        let entry = Entry {
            method: "GET",
            route: "/api/v1/users/me",
            status: 200,
            elapsed: Duration::from_micros(1_512),
            client_ip,
            user_id,
            request_id: "req-1.a_b",
        };
        // 2026-12-03T16:29:57.059111Z
        let now = UNIX_EPOCH + Duration::from_micros(1_796_315_397_059_111);
        render(&mut out, &entry, now, json);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_line_is_one_object_with_every_field() {
        let user = Uuid::parse_str("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b").unwrap();
        let text = line(true, Some("10.0.0.7".parse().unwrap()), Some(user));
        assert!(text.ends_with('\n') && text.matches('\n').count() == 1);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["timestamp"], "2026-12-03T16:29:57.059111Z");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["message"], "access");
        assert_eq!(v["method"], "GET");
        assert_eq!(v["route"], "/api/v1/users/me");
        assert_eq!(v["status"], 200);
        assert_eq!(v["duration_ms"], 1.512);
        assert_eq!(v["client_ip"], "10.0.0.7");
        assert_eq!(v["user_id"], "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
        assert_eq!(v["request_id"], "req-1.a_b");
        assert_eq!(v["target"], "access");
    }

    #[test]
    fn json_line_leaves_out_what_is_unknown() {
        let text = line(true, Some("::1".parse().unwrap()), None);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["client_ip"], "::1");
        assert!(v.get("user_id").is_none());
        let v: serde_json::Value = serde_json::from_str(&line(true, None, None)).unwrap();
        assert!(v.get("client_ip").is_none());
    }

    #[test]
    fn text_line_reads_as_key_value_pairs() {
        assert_eq!(
            line(false, Some("127.0.0.1".parse().unwrap()), None),
            "2026-12-03T16:29:57.059111Z  INFO access: method=GET route=/api/v1/users/me \
             status=200 duration_ms=1.512 client_ip=127.0.0.1 request_id=req-1.a_b\n"
        );
    }

    #[test]
    fn durations_keep_microseconds() {
        for (us, want) in [
            (0, "0.000"),
            (7, "0.007"),
            (1_000, "1.000"),
            (12_345_678, "12345.678"),
        ] {
            let mut out = Vec::new();
            millis(&mut out, us);
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
    }
}
