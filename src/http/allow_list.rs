//! The `/probe` allow-list: which `scheme://host:port` a probe may connect to, carrying the
//! probe credentials.
//!
//! A pattern's host is an IP pattern or a host-name pattern, never both, so a name can never
//! pass for an address by its spelling:
//! - IP: an IPv4 address with `*` for whole octets (`10.1.*.*`; a last `*` also stands for
//!   the octets after it, so `10.1.*` is `10.1.*.*`), a CIDR block (`10.1.0.0/16`,
//!   `[fd00::]/8`), an IPv6 address in brackets, or `*` alone for any address. It matches IP
//!   literals and the addresses a name resolves to (every one of them), never a name's text.
//! - Host name: dot-separated labels where `*` matches characters within its one label:
//!   `*.cache.internal` matches `a.cache.internal`, not `a.b.cache.internal`. Case-insensitive.
//!
//! The scheme (`redis`, `rediss`) and the port must match exactly; either may be `*`.
//! This module only decides; resolving a name is the caller's.

use std::net::IpAddr;

/// Why a pattern is unusable. Such a pattern allows nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("probe.allowed_targets pattern {pattern:?}: {reason}")]
pub struct PatternError {
    pattern: String,
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// Per IPv4 octet, `None` for `*`.
    Octets([Option<u8>; 4]),
    /// An address block.
    Cidr(IpAddr, u8),
    /// Labels of a host name; `*` in a label matches within that label only.
    Name(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    /// `None` for `*`.
    scheme: Option<String>,
    host: HostPattern,
    /// `None` for `*`.
    port: Option<u16>,
}

/// What the allow-list says about a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed; connect to this address (`None`: a name allowed by its text that did not
    /// resolve, so there is no address to pin).
    Allowed(Option<IpAddr>),
    /// Not allowed.
    Refused,
    /// Only the addresses the name resolves to can decide: call again with them.
    NeedAddresses,
}

/// Parsed `allowed_targets`.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    patterns: Vec<Pattern>,
}

impl AllowList {
    /// Parses every pattern; the unusable ones are returned with why, and allow nothing.
    pub fn parse(patterns: &[String]) -> (AllowList, Vec<PatternError>) {
        let mut list = AllowList::default();
        let mut errors = Vec::new();
        for raw in patterns {
            match parse_pattern(raw) {
                Ok(pattern) => list.patterns.push(pattern),
                Err(reason) => errors.push(PatternError {
                    pattern: raw.clone(),
                    reason,
                }),
            }
        }
        (list, errors)
    }

    /// Decides on `scheme://host:port`. `host` is an IP literal or a name; for a name,
    /// `resolved` is what it resolved to (`None` before resolving, empty if it did not).
    pub fn check(
        &self,
        scheme: &str,
        host: &str,
        port: u16,
        resolved: Option<&[IpAddr]>,
    ) -> Verdict {
        let candidates: Vec<&Pattern> = self
            .patterns
            .iter()
            .filter(|p| p.scheme.as_deref().is_none_or(|s| s == scheme))
            .filter(|p| p.port.is_none_or(|p| p == port))
            .collect();
        let ip_allowed = |ip: IpAddr| {
            candidates
                .iter()
                .any(|p| ip_matches(&p.host, ip.to_canonical()))
        };
        if let Ok(ip) = host.parse::<IpAddr>() {
            return if ip_allowed(ip) {
                Verdict::Allowed(Some(ip))
            } else {
                Verdict::Refused
            };
        }
        let name = host.to_ascii_lowercase();
        let by_name = candidates.iter().any(|p| match &p.host {
            HostPattern::Name(labels) => name_matches(labels, &name),
            _ => false,
        });
        let Some(addresses) = resolved else {
            let by_address_possible = candidates
                .iter()
                .any(|p| !matches!(p.host, HostPattern::Name(_)));
            return if by_name || by_address_possible {
                Verdict::NeedAddresses
            } else {
                Verdict::Refused
            };
        };
        if by_name {
            Verdict::Allowed(addresses.first().copied())
        } else if !addresses.is_empty() && addresses.iter().all(|ip| ip_allowed(*ip)) {
            Verdict::Allowed(Some(addresses[0]))
        } else {
            Verdict::Refused
        }
    }
}

fn parse_pattern(raw: &str) -> Result<Pattern, &'static str> {
    if raw == "*" {
        return Ok(Pattern {
            scheme: None,
            host: HostPattern::Octets([None; 4]),
            port: None,
        });
    }
    let (scheme, rest) = raw
        .split_once("://")
        .ok_or("expected scheme://host:port, e.g. redis://10.1.*:6379")?;
    let scheme = match scheme {
        "*" => None,
        "redis" | "rediss" => Some(scheme.to_owned()),
        _ => return Err("the scheme must be redis, rediss or *"),
    };
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or("expected a port after the host (a number or *)")?;
    let port = match port {
        "*" => None,
        digits => Some(
            digits
                .parse::<u16>()
                .map_err(|_| "the port must be a number or *")?,
        ),
    };
    Ok(Pattern {
        scheme,
        host: parse_host(host)?,
        port,
    })
}

fn parse_host(host: &str) -> Result<HostPattern, &'static str> {
    const BAD_CIDR: &str = "expected an address block like 10.1.0.0/16 or [fd00::]/8";
    if let Some(inner) = host.strip_prefix('[') {
        // [v6], [v6]/len or [v6/len]
        let (address, len) = match inner.split_once(']') {
            Some((address, "")) => match address.split_once('/') {
                Some((address, len)) => (address, Some(len)),
                None => (address, None),
            },
            Some((address, len)) => (address, Some(len.strip_prefix('/').ok_or(BAD_CIDR)?)),
            None => return Err("an IPv6 address needs its closing ]"),
        };
        let ip: std::net::Ipv6Addr = address.parse().map_err(|_| "not an IPv6 address")?;
        let len = match len {
            Some(len) => len.parse().ok().filter(|l| *l <= 128).ok_or(BAD_CIDR)?,
            None => 128,
        };
        return Ok(HostPattern::Cidr(IpAddr::V6(ip).to_canonical(), len));
    }
    if let Some((address, len)) = host.split_once('/') {
        let ip: std::net::Ipv4Addr = address.parse().map_err(|_| BAD_CIDR)?;
        let len = len.parse().ok().filter(|l| *l <= 32).ok_or(BAD_CIDR)?;
        return Ok(HostPattern::Cidr(IpAddr::V4(ip), len));
    }
    let parts: Vec<&str> = host.split('.').collect();
    if parts
        .iter()
        .all(|p| *p == "*" || (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())))
    {
        const BAD_OCTETS: &str =
            "an IP pattern has four octets, each 0-255 or *; a last * covers the rest (10.1.*)";
        if parts.len() > 4 || (parts.len() < 4 && parts.last() != Some(&"*")) {
            return Err(BAD_OCTETS);
        }
        let mut octets = [None; 4];
        for (slot, part) in octets.iter_mut().zip(&parts) {
            if *part != "*" {
                *slot = Some(part.parse::<u8>().map_err(|_| BAD_OCTETS)?);
            }
        }
        return Ok(HostPattern::Octets(octets));
    }
    let labels: Vec<String> = host.split('.').map(str::to_ascii_lowercase).collect();
    let label_ok = |l: &String| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'*'))
    };
    if !labels.iter().all(label_ok) {
        return Err(
            "a host-name pattern is labels of letters, digits, - and _, with * inside one label",
        );
    }
    Ok(HostPattern::Name(labels))
}

fn ip_matches(pattern: &HostPattern, ip: IpAddr) -> bool {
    match (pattern, ip) {
        (HostPattern::Octets(octets), IpAddr::V4(v4)) => octets
            .iter()
            .zip(v4.octets())
            .all(|(want, got)| want.is_none_or(|w| w == got)),
        (HostPattern::Cidr(IpAddr::V4(net), len), IpAddr::V4(v4)) => {
            prefix_eq(&net.octets(), &v4.octets(), *len)
        }
        (HostPattern::Cidr(IpAddr::V6(net), len), IpAddr::V6(v6)) => {
            prefix_eq(&net.octets(), &v6.octets(), *len)
        }
        _ => false,
    }
}

fn prefix_eq(a: &[u8], b: &[u8], len: u8) -> bool {
    let (whole, bits) = (usize::from(len / 8), len % 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    bits == 0 || (a[whole] ^ b[whole]) >> (8 - bits) == 0
}

fn name_matches(labels: &[String], name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    let got: Vec<&str> = name.split('.').collect();
    got.len() == labels.len()
        && got.iter().zip(labels).all(|(label, pattern)| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
                && label_matches(pattern, label)
        })
}

/// `*` matches any run of characters, within one label.
fn label_matches(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            let Some(rest) = text.strip_prefix(head) else {
                return false;
            };
            (0..=rest.len()).any(|i| rest.is_char_boundary(i) && label_matches(tail, &rest[i..]))
        }
    }
}

#[cfg(test)]
mod tests;
