//! Connection limits: how many connections one client IP may hold, and how many the
//! process can hold at all.
//!
//! [`PerIpConnections::on_connect`] runs as each connection is accepted (actix-web's
//! `on_connect`). It counts the peer's open connections; one past
//! `server.max_connections_per_ip` is shut down at once (both directions: the client
//! reads EOF and the worker drops it on its first read), so one client cannot take
//! every file descriptor with idle keep-alive connections. The count is a guard in the
//! connection's extensions, released when actix-web drops the connection. Peers in
//! `server.trusted_proxies` are exempt: a proxy carries many clients.
//!
//! [`clamp_to_fd_limit`] runs at start: `max_connections_per_worker` x workers must fit
//! in the process's `RLIMIT_NOFILE`, or the limit bounds nothing and the process runs
//! out of descriptors first (accept fails, Postgres cannot connect). The soft limit is
//! raised toward the hard one when that is enough; otherwise the per-worker limit is
//! lowered to what fits, with a warning.

use std::any::Any;
use std::net::IpAddr;
use std::sync::Arc;

use actix_web::dev::Extensions;
use dashmap::DashMap;
use ipnet::IpNet;

/// Open connections per client IP, shared by every worker. It holds an entry only
/// while that IP has a connection open, so it is bounded by the connection limit.
#[derive(Clone)]
pub struct PerIpConnections {
    open: Arc<DashMap<IpAddr, usize>>,
    max: usize,
    trusted: Arc<[IpNet]>,
}

/// Held in a connection's extensions: gives its slot back when the connection is dropped.
struct ConnectionSlot {
    open: Arc<DashMap<IpAddr, usize>>,
    ip: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.open.remove_if_mut(&self.ip, |_, n| {
            *n -= 1;
            *n == 0
        });
    }
}

impl PerIpConnections {
    pub fn new(max: usize, trusted: &[IpNet]) -> Self {
        Self {
            open: Arc::new(DashMap::new()),
            max,
            trusted: trusted.into(),
        }
    }

    /// Open connections of `ip` now.
    pub fn open(&self, ip: IpAddr) -> usize {
        self.open.get(&ip).map_or(0, |n| *n)
    }

    /// Take a slot for `ip`, or `None` when it already holds the maximum.
    fn take(&self, ip: IpAddr) -> Option<ConnectionSlot> {
        let mut n = self.open.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(ConnectionSlot {
            open: self.open.clone(),
            ip,
        })
    }

    /// actix-web's `on_connect` hook.
    pub fn on_connect(&self, conn: &dyn Any, ext: &mut Extensions) {
        let Some(stream) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() else {
            return;
        };
        let Ok(peer) = stream.peer_addr() else {
            return;
        };
        let ip = canonical(peer.ip());
        if self.trusted.iter().any(|net| net.contains(&ip)) {
            return;
        }
        match self.take(ip) {
            Some(slot) => {
                ext.insert(slot);
            }
            None => {
                // Not an fd more than the cap for longer than this: the worker sees EOF
                // on its first read and drops the connection.
                shutdown(stream);
                metrics::counter!("bulkhead_connections_refused_total", "reason" => "per_ip")
                    .increment(1);
            }
        }
    }
}

#[cfg(unix)]
fn shutdown(stream: &actix_web::rt::net::TcpStream) {
    use std::os::fd::AsRawFd;
    // SAFETY: shutdown(2) on a socket this stream owns and keeps open; it closes nothing,
    // it only ends both directions, which the stream's owner then sees as EOF.
    unsafe {
        libc::shutdown(stream.as_raw_fd(), libc::SHUT_RDWR);
    }
}

#[cfg(not(unix))]
fn shutdown(_: &actix_web::rt::net::TcpStream) {}

/// An IPv4 client seen through a v4-mapped IPv6 address is that IPv4 client.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Descriptors kept free of client connections: pools, listeners, logs, the runtime.
pub const FD_RESERVE: u64 = 256;

/// The per-worker connection limit the process's open-file limit can hold, raising the
/// soft limit toward the hard one when that helps. `reserve` descriptors are kept for
/// everything else (database pools, listener, logs).
pub fn clamp_to_fd_limit(per_worker: usize, workers: usize, reserve: u64) -> usize {
    let workers = workers.max(1) as u64;
    let wanted = (per_worker as u64)
        .saturating_mul(workers)
        .saturating_add(reserve);
    let Some((soft, hard)) = nofile_limit() else {
        return per_worker;
    };
    if wanted <= soft {
        return per_worker;
    }
    let target = wanted.min(hard);
    let soft = if raise_nofile_limit(target, hard) {
        target
    } else {
        soft
    };
    if wanted <= soft {
        tracing::info!(soft, "raised the open-file limit for the connection limit");
        return per_worker;
    }
    let fits = (soft.saturating_sub(reserve) / workers).max(1) as usize;
    tracing::warn!(
        requested = per_worker,
        lowered_to = fits,
        nofile = soft,
        workers,
        "server.max_connections_per_worker does not fit the open-file limit (RLIMIT_NOFILE); lowered"
    );
    fits
}

#[cfg(unix)]
fn nofile_limit() -> Option<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and reads nothing else.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    // rlim_t is u64 on Linux but not on every unix.
    #[allow(clippy::unnecessary_cast)]
    (rc == 0).then_some((lim.rlim_cur as u64, lim.rlim_max as u64))
}

#[cfg(unix)]
fn raise_nofile_limit(soft: u64, hard: u64) -> bool {
    let lim = libc::rlimit {
        rlim_cur: soft as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: setrlimit reads the struct we pass; raising the soft limit up to the hard
    // one needs no privilege and affects only this process.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 }
}

#[cfg(not(unix))]
fn nofile_limit() -> Option<(u64, u64)> {
    None
}

#[cfg(not(unix))]
fn raise_nofile_limit(_: u64, _: u64) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_per_ip_and_given_back() {
        let conns = PerIpConnections::new(2, &[]);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let s1 = conns.take(a).unwrap();
        let _s2 = conns.take(a).unwrap();
        assert!(conns.take(a).is_none());
        assert!(conns.take(b).is_some());
        drop(s1);
        assert_eq!(conns.open(a), 1);
        assert!(conns.take(a).is_some());
        assert_eq!(conns.open(b), 0, "a closed IP leaves no entry");
        assert!(!conns.open.contains_key(&b));
    }

    #[test]
    fn limits_that_fit_are_kept() {
        let (soft, _) = nofile_limit().unwrap();
        assert_eq!(clamp_to_fd_limit(1, 1, 0), 1);
        // Far past any hard limit: lowered to what the (possibly raised) soft limit holds.
        let lowered = clamp_to_fd_limit(usize::MAX / 4, 2, 16);
        let (soft_now, hard) = nofile_limit().unwrap();
        assert!(soft_now >= soft && soft_now <= hard);
        assert_eq!(lowered as u64, (soft_now - 16) / 2);
    }
}
