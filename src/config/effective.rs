//! The effective configuration as `--check-config` prints it: every default filled in, the
//! targets after file discovery and sharding, and no secret (`<redacted>` in their place).
//! TOML-shaped, so it reads like the file the operator wrote.

use std::fmt::Write as _;

use super::Settings;
use crate::target::{Address, PasswordSource, Target};

/// Renders `settings` (whose `targets` are the effective list) as TOML-shaped text.
pub fn render(settings: &Settings) -> String {
    let duration = |d| humantime::format_duration(d).to_string();
    let mut out = String::new();
    let top = [
        ("poll_interval", quoted(&duration(settings.poll_interval))),
        ("poll_timeout", quoted(&duration(settings.poll_timeout))),
        (
            "listen_address",
            quoted(&settings.listen_address.to_string()),
        ),
        (
            "rdb_max_age",
            quoted(&duration(settings.defaults.rdb_max_age)),
        ),
        (
            "config_refresh_interval",
            quoted(&duration(settings.config_refresh_interval)),
        ),
        (
            "siblings_refresh_interval",
            quoted(&duration(settings.siblings_refresh_interval)),
        ),
        ("keep_connections", settings.keep_connections.to_string()),
        (
            "per_target_poll_duration_histogram",
            settings.per_target_poll_duration_histogram.to_string(),
        ),
        ("config_command", quoted(&settings.defaults.config_command)),
    ];
    for (key, value) in top {
        let _ = writeln!(out, "{key} = {value}");
    }
    if let Some(shard) = settings.shard {
        let _ = writeln!(out, "shard = \"{shard}\"");
    }
    if let Some(path) = &settings.state_file {
        let _ = writeln!(out, "state_file = {}", quoted(&path.display().to_string()));
    }
    for source in &settings.file_sd {
        let _ = writeln!(
            out,
            "\n[[file_sd]]\nfiles = [{}]\nrefresh_interval = \"{}\"",
            list(&source.files),
            duration(source.refresh_interval)
        );
    }
    for cluster in &settings.cluster {
        let _ = writeln!(
            out,
            "\n[[cluster]]  # nodes are discovered from the seeds at run time; `check` lists them\nname = {}\nseeds = [{}]\nrefresh_interval = \"{}\"",
            quoted(&cluster.name),
            list(&cluster.seeds),
            duration(cluster.refresh_interval)
        );
    }
    for sentinel in &settings.sentinel {
        let _ = writeln!(
            out,
            "\n[[sentinel]]  # nodes are discovered from the Sentinels at run time; `check` lists them\nname = {}\nsentinels = [{}]\nmasters = [{}]\nrefresh_interval = \"{}\"",
            quoted(&sentinel.name),
            list(&sentinel.sentinels),
            list(&sentinel.masters),
            duration(sentinel.refresh_interval)
        );
    }
    if let Some(probe) = &settings.probe {
        let _ = writeln!(
            out,
            "\n[probe]\nenabled = true\nallowed_targets = [{}]",
            list(&probe.allowed_targets)
        );
    }
    for target in &settings.targets {
        if settings.shard.is_some_and(|s| !s.owns(&target.name)) {
            continue;
        }
        out.push('\n');
        render_target(&mut out, target);
    }
    out
}

fn render_target(out: &mut String, target: &Target) {
    let url = match &target.address {
        Address::Tcp { host, port, tls } => {
            let scheme = if *tls { "rediss" } else { "redis" };
            if host.contains(':') {
                format!("{scheme}://[{host}]:{port}")
            } else {
                format!("{scheme}://{host}:{port}")
            }
        }
        Address::Unix { path } => format!("unix://{}", path.display()),
    };
    let _ = writeln!(
        out,
        "[[targets]]\nname = {}\nurl = {}",
        quoted(&target.name),
        quoted(&url)
    );
    if !target.labels.is_empty() {
        let labels: Vec<String> = target
            .labels
            .iter()
            .map(|(k, v)| format!("{k} = {}", quoted(v)))
            .collect();
        let _ = writeln!(out, "labels = {{ {} }}", labels.join(", "));
    }
    if let Some(username) = &target.username {
        let _ = writeln!(out, "username = {}", quoted(username));
    }
    // The source is named, never its value: a path or a variable name can be the secret
    // itself when someone pasted the password in the wrong key.
    let password = match &target.password {
        None => None,
        Some(PasswordSource::Inline(_)) => Some("password = <redacted>"),
        Some(PasswordSource::File(_)) => Some("password_file = <redacted>"),
        Some(PasswordSource::Env(_)) => Some("password_env = <redacted>"),
    };
    if let Some(line) = password {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(
        out,
        "rdb_max_age = \"{}\"",
        humantime::format_duration(target.rdb_max_age)
    );
    let _ = writeln!(
        out,
        "config_command = {}",
        quoted(target.config_command.as_deref().unwrap_or(""))
    );
    for (key, path) in [
        ("log_file", &target.log_file),
        ("data_dir", &target.data_dir),
    ] {
        if let Some(path) = path {
            let _ = writeln!(out, "{key} = {}", quoted(&path.display().to_string()));
        }
    }
    if let Some(tls) = &target.tls {
        if let Some(ca) = &tls.ca_file {
            let _ = writeln!(out, "tls_ca_file = {}", quoted(&ca.display().to_string()));
        }
        if let Some((cert, key)) = &tls.client_cert {
            let _ = writeln!(
                out,
                "tls_cert_file = {}\ntls_key_file = {}",
                quoted(&cert.display().to_string()),
                quoted(&key.display().to_string())
            );
        }
        if let Some(name) = &tls.server_name {
            let _ = writeln!(out, "tls_server_name = {}", quoted(name));
        }
        let _ = writeln!(
            out,
            "tls_insecure_skip_verify = {}",
            tls.insecure_skip_verify
        );
    }
}

/// A TOML basic string.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn list(items: &[String]) -> String {
    items
        .iter()
        .map(|i| quoted(i))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_filled_in_and_secrets_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "poll_interval = \"1s\"\n[[targets]]\nurl = \"redis://user:hunter2-secret@10.0.0.1:6380\"\nname = \"a\"\nlabels = { env = \"prod\" }\n",
        )
        .unwrap();
        let settings = super::super::load_with_env(Some(&path), Vec::new()).unwrap();
        let text = render(&settings);
        assert!(text.contains("poll_interval = \"1s\""), "{text}");
        assert!(
            text.contains("poll_timeout = \"1s\""),
            "the default follows the interval: {text}"
        );
        assert!(text.contains("keep_connections = true"), "{text}");
        assert!(text.contains("url = \"redis://10.0.0.1:6380\""), "{text}");
        assert!(text.contains("password = <redacted>"), "{text}");
        assert!(text.contains("labels = { env = \"prod\" }"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        // It parses back as TOML once the redacted values are quoted.
        let reparsed = text.replace("<redacted>", "\"x\"");
        config::Config::builder()
            .add_source(config::File::from_str(&reparsed, config::FileFormat::Toml))
            .build()
            .expect("TOML-shaped");
    }
}
