//! Table-driven cases for the allow-list: pattern, target, what the name resolves to, verdict.

use super::*;

const V: Option<&[&str]> = None;

/// Patterns, target, what the name resolves to, allowed.
type Case<'a> = (&'a [&'a str], &'a str, Option<&'a [&'a str]>, bool);

/// `resolved`: `None` for an IP literal (nothing to resolve); for a name, what it resolves to
/// (an empty list: it does not resolve).
fn verdict(patterns: &[&str], target: &str, resolved: Option<&[&str]>) -> bool {
    let patterns: Vec<String> = patterns.iter().map(|p| (*p).to_owned()).collect();
    let (list, errors) = AllowList::parse(&patterns);
    assert!(errors.is_empty(), "{errors:?}");
    let url = crate::target::parse_url(target).unwrap();
    let crate::target::Address::Tcp { host, port, tls } = url.address else {
        panic!("not tcp")
    };
    let scheme = if tls { "rediss" } else { "redis" };
    match list.check(scheme, &host, port, None) {
        Verdict::Allowed(_) => true,
        Verdict::Refused => false,
        Verdict::NeedAddresses => {
            let addresses: Vec<IpAddr> = resolved
                .unwrap_or_else(|| panic!("{target}: a name needs its addresses in the table"))
                .iter()
                .map(|a| a.parse().unwrap())
                .collect();
            matches!(
                list.check(scheme, &host, port, Some(&addresses)),
                Verdict::Allowed(_)
            )
        }
    }
}

#[test]
fn ip_patterns_match_addresses_never_names() {
    let readme = ["redis://10.1.*:6379"];
    let cases: &[Case] = &[
        (&readme, "redis://10.1.2.3:6379", V, true),
        (&readme, "redis://10.2.2.3:6379", V, false),
        (&readme, "redis://10.1.2.3:6380", V, false),
        (&readme, "rediss://10.1.2.3:6379", V, false),
        // The escape: a name whose text fits the pattern, resolving elsewhere.
        (
            &readme,
            "redis://10.1.attacker.example:6379",
            Some(&["203.0.113.9"]),
            false,
        ),
        (
            &readme,
            "redis://10.1.attacker.example:6379",
            Some(&[]),
            false,
        ),
        // A name resolving inside the block is allowed by its address...
        (
            &readme,
            "redis://db.internal:6379",
            Some(&["10.1.0.7"]),
            true,
        ),
        // ...only if every address it resolves to is.
        (
            &readme,
            "redis://db.internal:6379",
            Some(&["10.1.0.7", "10.9.0.7"]),
            false,
        ),
        (
            &["redis://10.1.*.*:6379"],
            "redis://10.1.200.1:6379",
            V,
            true,
        ),
        (&["redis://10.*.3.*:6379"], "redis://10.9.3.1:6379", V, true),
        (
            &["redis://10.*.3.*:6379"],
            "redis://10.9.4.1:6379",
            V,
            false,
        ),
        (
            &["redis://10.1.0.0/16:6379"],
            "redis://10.1.255.255:6379",
            V,
            true,
        ),
        (
            &["redis://10.1.0.0/16:6379"],
            "redis://10.0.255.255:6379",
            V,
            false,
        ),
        (
            &["redis://10.1.128.0/17:6379"],
            "redis://10.1.200.1:6379",
            V,
            true,
        ),
        (
            &["redis://10.1.128.0/17:6379"],
            "redis://10.1.100.1:6379",
            V,
            false,
        ),
        (
            &["redis://127.0.0.1:6379"],
            "redis://localhost:6379",
            Some(&["127.0.0.1"]),
            true,
        ),
        (
            &["redis://[fd00::]/8:6379"],
            "redis://[fd12::1]:6379",
            V,
            true,
        ),
        (
            &["redis://[fd00::]/8:6379"],
            "redis://[fe80::1]:6379",
            V,
            false,
        ),
        (&["redis://[::1]:6379"], "redis://[::1]:6379", V, true),
        (
            &["redis://10.1.*:6379"],
            "redis://[::ffff:10.1.2.3]:6379",
            V,
            true,
        ),
        (
            &["redis://*:6379"],
            "redis://anything.example:6379",
            Some(&["192.0.2.1"]),
            true,
        ),
        (&["redis://*:6379"], "redis://192.0.2.1:6380", V, false),
        (&["*"], "rediss://192.0.2.1:1", V, true),
        (&["redis://10.1.*:*"], "redis://10.1.0.1:7000", V, true),
    ];
    for (patterns, target, resolved, allowed) in cases {
        assert_eq!(
            verdict(patterns, target, *resolved),
            *allowed,
            "{patterns:?} {target} resolving to {resolved:?}"
        );
    }
}

#[test]
fn name_patterns_match_one_label_per_star() {
    let cache = ["rediss://*.cache.internal:6380"];
    let cases: &[Case] = &[
        (
            &cache,
            "rediss://a.cache.internal:6380",
            Some(&["192.0.2.1"]),
            true,
        ),
        (
            &cache,
            "rediss://A.Cache.Internal:6380",
            Some(&["192.0.2.1"]),
            true,
        ),
        (
            &cache,
            "rediss://a.b.cache.internal:6380",
            Some(&["192.0.2.1"]),
            false,
        ),
        (
            &cache,
            "rediss://cache.internal:6380",
            Some(&["192.0.2.1"]),
            false,
        ),
        (
            &cache,
            "rediss://a.cache.internal.evil.com:6380",
            Some(&["192.0.2.1"]),
            false,
        ),
        (
            &cache,
            "rediss://a.cache.internal:6379",
            Some(&["192.0.2.1"]),
            false,
        ),
        (
            &cache,
            "redis://a.cache.internal:6380",
            Some(&["192.0.2.1"]),
            false,
        ),
        // All-digit-or-star labels make an IP pattern.
        (&["redis://*.*.*.*:6379"], "redis://10.1.2.3:6379", V, true),
        (
            &["redis://db-*.internal:6379"],
            "redis://db-7.internal:6379",
            Some(&[]),
            true,
        ),
        (
            &["redis://db-*.internal:6379"],
            "redis://db-7.x.internal:6379",
            Some(&[]),
            false,
        ),
        (
            &["redis://db-*.internal:6379"],
            "redis://10.1.2.3:6379",
            V,
            false,
        ),
        (
            &["redis://localhost:6379"],
            "redis://localhost:6379",
            Some(&["127.0.0.1"]),
            true,
        ),
    ];
    for (patterns, target, resolved, allowed) in cases {
        assert_eq!(
            verdict(patterns, target, *resolved),
            *allowed,
            "{patterns:?} {target} resolving to {resolved:?}"
        );
    }
}

#[test]
fn no_lookup_when_nothing_could_allow_the_name() {
    let patterns = vec![
        "rediss://*.cache.internal:6380".to_owned(),
        "redis://10.1.*:6379".to_owned(),
    ];
    let (list, _) = AllowList::parse(&patterns);
    assert_eq!(
        list.check("redis", "evil.example", 80, None),
        Verdict::Refused
    );
    assert_eq!(
        list.check("rediss", "x.evil.example", 6380, None),
        Verdict::Refused
    );
    assert_eq!(
        list.check("redis", "evil.example", 6379, None),
        Verdict::NeedAddresses
    );
    // The address checked is the address to connect to.
    let resolved: Vec<IpAddr> = vec!["10.1.0.7".parse().unwrap()];
    assert_eq!(
        list.check("redis", "db.internal", 6379, Some(&resolved)),
        Verdict::Allowed(Some(resolved[0]))
    );
}

#[test]
fn unusable_patterns_are_named_and_allow_nothing() {
    for bad in [
        "10.1.*:6379",
        "http://10.1.*:6379",
        "redis://10.1.*",
        "redis://10.1.2:6379",
        "redis://10.1.2.300:6379",
        "redis://10.1.0.0/33:6379",
        "redis://[fd00::/8:6379",
        "redis://evil.com?.cache.internal:6379",
        "redis://a..b:6379",
    ] {
        let (list, errors) = AllowList::parse(&[bad.to_owned()]);
        assert_eq!(errors.len(), 1, "{bad} was accepted");
        assert!(errors[0].to_string().contains(bad), "{}", errors[0]);
        assert_eq!(
            list.check("redis", "10.1.0.1", 6379, None),
            Verdict::Refused
        );
    }
}
