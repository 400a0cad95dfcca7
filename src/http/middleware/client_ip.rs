//! The client IP: the peer address, unless the peer is a trusted proxy; then the
//! rightmost `X-Forwarded-For` entry that is not itself a trusted proxy (API.md, Limits).
//!
//! The header may come in several lines (a proxy may append a line of its own rather
//! than extend the last one): they are one list, in order, as RFC 9110 5.3 says. Reading
//! only the first would let the client choose its own key: the entries a trusted proxy
//! appended in a later line would never be seen.

use std::net::IpAddr;

use ipnet::IpNet;

pub fn resolve(peer: Option<IpAddr>, forwarded_for: &[&str], trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = peer?;
    if trusted.is_empty() || !is_trusted(peer, trusted) {
        return Some(peer);
    }
    let mut last_trusted = None;
    // Rightmost first: the last line's last entry is the one our proxy wrote.
    for entry in forwarded_for.iter().rev().flat_map(|line| line.rsplit(',')) {
        let Ok(ip) = entry.trim().parse::<IpAddr>() else {
            // A garbled entry (or a line that is not text) ends the chain we can vouch for.
            break;
        };
        if !is_trusted(ip, trusted) {
            return Some(ip);
        }
        last_trusted = Some(ip);
    }
    Some(last_trusted.unwrap_or(peer))
}

/// The scheme the client used: the connection's own (`own`), unless the peer is a
/// trusted proxy whose `X-Forwarded-Proto` (every line, in order) ends in `http` or
/// `https`; then that last value. Anything else a proxy sent (or any value from an
/// untrusted peer) leaves the connection's own scheme.
pub fn forwarded_proto(
    peer: Option<IpAddr>,
    forwarded_proto: &[&str],
    trusted: &[IpNet],
    own: &'static str,
) -> &'static str {
    if !peer.is_some_and(|p| is_trusted(p, trusted)) {
        return own;
    }
    let last = forwarded_proto
        .iter()
        .flat_map(|line| line.split(','))
        .map(str::trim)
        .rfind(|v| !v.is_empty());
    match last {
        Some(v) if v.eq_ignore_ascii_case("https") => "https",
        Some(v) if v.eq_ignore_ascii_case("http") => "http",
        _ => own,
    }
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    trusted.iter().any(|net| net.contains(&ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn untrusted_peer_is_the_client() {
        let peer = "203.0.113.9".parse().ok();
        assert_eq!(resolve(peer, &["1.2.3.4"], &[]), peer);
        assert_eq!(resolve(peer, &["1.2.3.4"], &nets(&["10.0.0.0/8"])), peer);
    }

    #[test]
    fn trusted_peer_yields_rightmost_untrusted_entry() {
        let trusted = nets(&["10.0.0.0/8"]);
        let peer = "10.1.1.1".parse().ok();
        assert_eq!(
            resolve(peer, &["6.6.6.6, 1.2.3.4, 10.0.0.7"], &trusted),
            "1.2.3.4".parse().ok()
        );
        assert_eq!(resolve(peer, &[], &trusted), peer);
        assert_eq!(
            resolve(peer, &["10.0.0.2"], &trusted),
            "10.0.0.2".parse().ok()
        );
        assert_eq!(resolve(peer, &["junk"], &trusted), peer);
    }

    #[test]
    fn forwarded_proto_only_from_a_trusted_peer() {
        let trusted = nets(&["10.0.0.0/8"]);
        let proxy = "10.1.1.1".parse().ok();
        let client = "203.0.113.9".parse().ok();
        assert_eq!(
            forwarded_proto(client, &["https"], &trusted, "http"),
            "http"
        );
        assert_eq!(forwarded_proto(proxy, &["https"], &[], "http"), "http");
        assert_eq!(
            forwarded_proto(proxy, &["https"], &trusted, "http"),
            "https"
        );
        assert_eq!(
            forwarded_proto(proxy, &["HTTPS"], &trusted, "http"),
            "https"
        );
        assert_eq!(
            forwarded_proto(proxy, &["https", "http"], &trusted, "http"),
            "http"
        );
        assert_eq!(
            forwarded_proto(proxy, &["http, https"], &trusted, "http"),
            "https"
        );
        assert_eq!(
            forwarded_proto(proxy, &["https", "gopher"], &trusted, "http"),
            "http"
        );
        assert_eq!(forwarded_proto(proxy, &[], &trusted, "https"), "https");
        assert_eq!(forwarded_proto(None, &["https"], &trusted, "http"), "http");
    }

    #[test]
    fn several_lines_are_one_list_in_order() {
        let trusted = nets(&["10.0.0.0/8"]);
        let peer = "10.1.1.1".parse().ok();
        // The client's own line first, the proxy's appended line last.
        assert_eq!(
            resolve(peer, &["6.6.6.6", "1.2.3.4"], &trusted),
            "1.2.3.4".parse().ok()
        );
        assert_eq!(
            resolve(peer, &["6.6.6.6, 1.2.3.4", "10.0.0.7"], &trusted),
            "1.2.3.4".parse().ok()
        );
        assert_eq!(resolve(peer, &["6.6.6.6", ""], &trusted), peer);
    }
}
