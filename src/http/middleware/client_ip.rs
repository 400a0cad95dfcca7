//! The client IP: the peer address, unless the peer is a trusted proxy; then the
//! rightmost `X-Forwarded-For` entry that is not itself a trusted proxy (API.md, Limits).

use std::net::IpAddr;

use ipnet::IpNet;

pub fn resolve(
    peer: Option<IpAddr>,
    forwarded_for: Option<&str>,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let peer = peer?;
    if trusted.is_empty() || !is_trusted(peer, trusted) {
        return Some(peer);
    }
    let Some(header) = forwarded_for else {
        return Some(peer);
    };
    let mut last_trusted = None;
    for entry in header.rsplit(',') {
        let Ok(ip) = entry.trim().parse::<IpAddr>() else {
            // A garbled entry ends the chain we can vouch for.
            break;
        };
        if !is_trusted(ip, trusted) {
            return Some(ip);
        }
        last_trusted = Some(ip);
    }
    Some(last_trusted.unwrap_or(peer))
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
        assert_eq!(resolve(peer, Some("1.2.3.4"), &[]), peer);
        assert_eq!(resolve(peer, Some("1.2.3.4"), &nets(&["10.0.0.0/8"])), peer);
    }

    #[test]
    fn trusted_peer_yields_rightmost_untrusted_entry() {
        let trusted = nets(&["10.0.0.0/8"]);
        let peer = "10.1.1.1".parse().ok();
        assert_eq!(
            resolve(peer, Some("6.6.6.6, 1.2.3.4, 10.0.0.7"), &trusted),
            "1.2.3.4".parse().ok()
        );
        assert_eq!(resolve(peer, None, &trusted), peer);
        assert_eq!(
            resolve(peer, Some("10.0.0.2"), &trusted),
            "10.0.0.2".parse().ok()
        );
        assert_eq!(resolve(peer, Some("junk"), &trusted), peer);
    }
}
