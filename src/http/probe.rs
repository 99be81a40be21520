//! `/probe?target=…`: poll a target Prometheus names, for users who keep the target list in
//! Prometheus (the blackbox-exporter pattern).
//!
//! It is off unless enabled, and then only accepts targets matching the configured allow-list:
//! an open probe endpoint would let anyone who can reach the exporter make it connect anywhere,
//! carrying the configured credentials. A probed URL may not carry credentials of its own.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::allow_list::{AllowList, Verdict};
use crate::config::{ProbeConfig, Settings};
use crate::poller::{Poller, Schedule};
use crate::state::Store;
use crate::target::{parse_url, Address, Target};

/// Why a probe request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// `[probe] enabled` is false.
    #[error("the probe endpoint is disabled (set [probe] enabled = true and allowed_targets)")]
    Disabled,
    /// The `target` parameter is missing, too long or not a Redis address.
    #[error("bad target: {0}")]
    BadTarget(String),
    /// The target does not match `allowed_targets`.
    #[error("target is not in probe.allowed_targets")]
    NotAllowed,
}

/// How long resolving a probed name may take; a name that does not resolve in time is
/// treated as not resolving.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);

/// Checks a requested target against the allow-list and builds it with the probe's settings.
///
/// A name is resolved once here; the target connects to the address that was checked (a
/// second lookup by the client could answer differently), and `rediss://` still verifies the
/// certificate against the name.
pub async fn prepare(settings: &Settings, raw: &str) -> Result<Target, ProbeError> {
    prepare_with(settings, raw, resolve).await
}

async fn prepare_with<F, R>(
    settings: &Settings,
    raw: &str,
    resolver: R,
) -> Result<Target, ProbeError>
where
    R: FnOnce(String, u16) -> F,
    F: std::future::Future<Output = Vec<IpAddr>>,
{
    let probe: &ProbeConfig = settings.probe.as_ref().ok_or(ProbeError::Disabled)?;
    if raw.is_empty() || raw.len() > 256 || raw.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(ProbeError::BadTarget(
            "expected host:port or a redis:// URL of at most 256 characters".into(),
        ));
    }
    let url = parse_url(&probe.defaults.url_for(raw)).map_err(ProbeError::BadTarget)?;
    if url.username.is_some() || url.password.is_some() {
        return Err(ProbeError::BadTarget(
            "credentials in a probed URL are not accepted; configure them in [probe.defaults]"
                .into(),
        ));
    }
    let Address::Tcp { host, port, tls } = &url.address else {
        return Err(ProbeError::BadTarget(
            "expected a redis:// or rediss:// target".into(),
        ));
    };
    let (host, port, tls) = (host.clone(), *port, *tls);
    let scheme = if tls { "rediss" } else { "redis" };
    let (list, errors) = AllowList::parse(&probe.allowed_targets);
    for error in &errors {
        tracing::warn!(%error, "ignoring an unusable probe pattern");
    }
    let connect_to = match list.check(scheme, &host, port, None) {
        Verdict::Allowed(ip) => ip,
        Verdict::Refused => return Err(ProbeError::NotAllowed),
        Verdict::NeedAddresses => {
            let resolved = resolver(host.clone(), port).await;
            match list.check(scheme, &host, port, Some(&resolved)) {
                Verdict::Allowed(ip) => ip,
                _ => return Err(ProbeError::NotAllowed),
            }
        }
    };
    let mut target = probe
        .defaults
        .build(
            url.display,
            None,
            Default::default(),
            "probe",
            settings.origin("probe"),
        )
        .map_err(|e| ProbeError::BadTarget(e.to_string()))?;
    if let Some(ip) = connect_to {
        target.address = Address::Tcp {
            host: ip.to_string(),
            port,
            tls,
        };
        if let Some(client) = target.tls.as_mut() {
            client.server_name.get_or_insert(host);
        }
    }
    Ok(target)
}

/// The addresses `host` resolves to, deduplicated in the resolver's order; none on failure.
async fn resolve(host: String, port: u16) -> Vec<IpAddr> {
    let lookup = tokio::net::lookup_host((host.as_str(), port));
    let Ok(Ok(found)) = tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await else {
        return Vec::new();
    };
    let mut addresses: Vec<IpAddr> = Vec::new();
    for address in found {
        let ip = address.ip().to_canonical();
        if !addresses.contains(&ip) {
            addresses.push(ip);
        }
    }
    addresses
}

/// Polls `target` once and renders its series.
pub async fn run(settings: &Settings, target: Target) -> String {
    let store = Arc::new(Store::new());
    let target = Arc::new(target);
    let cell = store.insert(target.clone());
    Poller::new(target, cell, Schedule::from(settings))
        .poll()
        .await;
    tokio::task::spawn_blocking(move || crate::metrics::render(&store))
        .await
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(extra: &str) -> Settings {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, format!("[probe]\nenabled = true\nallowed_targets = [\"redis://10.1.*:6379\", \"rediss://*.cache.internal:6380\"]\n{extra}")).unwrap();
        crate::config::load_with_env(Some(&path), Vec::new()).unwrap()
    }

    /// `prepare` with names resolving as in `table` (anything else does not resolve); also
    /// says whether a lookup happened.
    fn prepare_resolving(
        settings: &Settings,
        raw: &str,
        table: &[(&str, &str)],
    ) -> (Result<Target, ProbeError>, bool) {
        let looked_up = std::cell::Cell::new(false);
        let resolver = |host: String, _port: u16| {
            looked_up.set(true);
            let found: Vec<IpAddr> = table
                .iter()
                .filter(|(name, _)| *name == host)
                .map(|(_, ip)| ip.parse().unwrap())
                .collect();
            std::future::ready(found)
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let result = runtime.block_on(prepare_with(settings, raw, resolver));
        (result, looked_up.get())
    }

    #[test]
    fn allow_list_is_enforced_and_credentials_refused() {
        let settings = settings("");
        let prepare = |raw: &str| prepare_resolving(&settings, raw, &[]).0;
        assert!(prepare("10.1.0.5:6379").is_ok());
        assert_eq!(prepare("10.9.0.5:6379"), Err(ProbeError::NotAllowed));
        assert_eq!(prepare("169.254.169.254:80"), Err(ProbeError::NotAllowed));
        assert!(matches!(
            prepare("redis://u:p@10.1.0.5:6379"),
            Err(ProbeError::BadTarget(_))
        ));
        assert!(matches!(
            prepare("http://10.1.0.5:6379"),
            Err(ProbeError::BadTarget(_))
        ));
        assert!(matches!(prepare(""), Err(ProbeError::BadTarget(_))));
    }

    #[test]
    fn a_name_connects_to_the_address_that_was_checked() {
        let settings = settings("");
        let table = [
            ("db.internal", "10.1.0.7"),
            ("10.1.attacker.example", "203.0.113.9"),
            ("db.cache.internal", "192.0.2.10"),
        ];
        let (target, _) = prepare_resolving(&settings, "db.internal:6379", &table);
        let target = target.unwrap();
        assert_eq!(target.name, "redis://db.internal:6379");
        assert_eq!(
            target.address,
            Address::Tcp {
                host: "10.1.0.7".into(),
                port: 6379,
                tls: false
            }
        );
        let (refused, _) = prepare_resolving(&settings, "10.1.attacker.example:6379", &table);
        assert_eq!(refused, Err(ProbeError::NotAllowed));
        let (refused, _) = prepare_resolving(&settings, "10.1.unresolvable.example:6379", &table);
        assert_eq!(refused, Err(ProbeError::NotAllowed));

        // rediss: pinned to the address, certificate checked against the name.
        let (target, _) = prepare_resolving(&settings, "rediss://db.cache.internal:6380", &table);
        let target = target.unwrap();
        assert_eq!(
            target.address,
            Address::Tcp {
                host: "192.0.2.10".into(),
                port: 6380,
                tls: true
            }
        );
        assert_eq!(
            target.tls.unwrap().server_name.as_deref(),
            Some("db.cache.internal")
        );

        // Nothing could allow it: refused without a lookup.
        let (refused, looked_up) = prepare_resolving(&settings, "evil.example:80", &table);
        assert_eq!(refused, Err(ProbeError::NotAllowed));
        assert!(!looked_up);
    }

    #[test]
    fn enabled_without_allow_list_is_a_config_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[probe]\nenabled = true\n").unwrap();
        let err = crate::config::load_with_env(Some(&path), Vec::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("probe.allowed_targets"), "{err}");
    }
}
