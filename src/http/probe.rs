//! `/probe?target=…`: poll a target Prometheus names, for users who keep the target list in
//! Prometheus (the blackbox-exporter pattern).
//!
//! It is off unless enabled, and then only accepts targets matching the configured allow-list:
//! an open probe endpoint would let anyone who can reach the exporter make it connect anywhere,
//! carrying the configured credentials. A probed URL may not carry credentials of its own.

use std::sync::Arc;

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

/// Matches `text` against a pattern where `*` stands for any run of characters.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Checks a requested target against the allow-list and builds it with the probe's settings.
pub fn prepare(settings: &Settings, raw: &str) -> Result<Target, ProbeError> {
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
    if !matches!(url.address, Address::Tcp { .. }) {
        return Err(ProbeError::BadTarget(
            "expected a redis:// or rediss:// target".into(),
        ));
    }
    // The allow-list matches the normalized form: scheme, host and port always present.
    if !probe
        .allowed_targets
        .iter()
        .any(|p| wildcard_match(p, &url.display))
    {
        return Err(ProbeError::NotAllowed);
    }
    probe
        .defaults
        .build(
            url.display,
            None,
            Default::default(),
            "probe",
            settings.origin("probe"),
        )
        .map_err(|e| ProbeError::BadTarget(e.to_string()))
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

    #[test]
    fn wildcards() {
        assert!(wildcard_match(
            "redis://10.1.*:6379",
            "redis://10.1.2.3:6379"
        ));
        assert!(!wildcard_match(
            "redis://10.1.*:6379",
            "redis://10.2.2.3:6379"
        ));
        assert!(!wildcard_match(
            "redis://10.1.*:6379",
            "redis://10.1.2.3:6380"
        ));
        assert!(wildcard_match("*", "anything"));
        assert!(!wildcard_match("redis://a", "redis://ab"));
    }

    #[test]
    fn allow_list_is_enforced_and_credentials_refused() {
        let settings = settings("");
        assert!(prepare(&settings, "10.1.0.5:6379").is_ok());
        assert!(prepare(&settings, "rediss://db.cache.internal:6380").is_ok());
        assert_eq!(
            prepare(&settings, "10.9.0.5:6379"),
            Err(ProbeError::NotAllowed)
        );
        assert_eq!(
            prepare(&settings, "169.254.169.254:80"),
            Err(ProbeError::NotAllowed)
        );
        assert!(matches!(
            prepare(&settings, "redis://u:p@10.1.0.5:6379"),
            Err(ProbeError::BadTarget(_))
        ));
        assert!(matches!(
            prepare(&settings, "http://10.1.0.5:6379"),
            Err(ProbeError::BadTarget(_))
        ));
        assert!(matches!(
            prepare(&settings, ""),
            Err(ProbeError::BadTarget(_))
        ));
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
