//! Config errors, worded so that an operator can fix them and never quoting a secret.

/// A config problem, said so that an operator can fix it at 3 a.m.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or its TOML/values did not fit the expected shape.
    #[error("{source_name}: {message}")]
    Load {
        /// The file (or "environment") the problem is in.
        source_name: String,
        /// What went wrong, with the key when known.
        message: String,
    },
    /// A key had a value of the right type but the wrong meaning.
    #[error("{source_name}: key `{key}`: expected {expected}")]
    Invalid {
        /// The file the problem is in.
        source_name: String,
        /// The key, for example `targets[1].url`.
        key: String,
        /// What was expected, never echoing a secret.
        expected: String,
    },
}

/// Rewords the config crate's messages, which can quote whole values (possibly secrets).
pub(super) fn describe_config_error(error: &config::ConfigError) -> String {
    // A TOML syntax error quotes the offending source line (`5 | password = "…`), which may
    // hold a secret: keep the position and the diagnosis, drop the quoted source.
    let full = error.to_string();
    let message: Vec<&str> = full
        .lines()
        .filter(|line| {
            let trimmed = line.trim_start();
            let quoted_source = trimmed.starts_with('|')
                || trimmed.split_once('|').is_some_and(|(number, _)| {
                    !number.trim().is_empty() && number.trim().bytes().all(|b| b.is_ascii_digit())
                });
            !quoted_source && !trimmed.is_empty()
        })
        .collect();
    let message = fix_key_paths(&message.join("; "));
    // serde quotes offending string values. Under a credential key, or under a table key given
    // a string instead (`targets = "redis://user:pass@host"`), that is a secret: quote values
    // only for keys known never to hold one.
    let key = message
        .rsplit_once(" for key `")
        .map(|(_, key)| key.trim_end_matches('`'))
        .unwrap_or("");
    let last = key.rsplit(['.', ']']).next().unwrap_or("");
    if QUOTABLE_KEYS.contains(&last) {
        message
    } else {
        redact_quoted(&message)
    }
}

/// Keys whose values may be quoted in an error: durations, addresses, switches and names.
const QUOTABLE_KEYS: &[&str] = &[
    "poll_interval",
    "poll_timeout",
    "listen_address",
    "rdb_max_age",
    "siblings_refresh_interval",
    "config_refresh_interval",
    "refresh_interval",
    "keep_connections",
    "config_command",
    "shard",
    "scheme",
    "enabled",
    "tls_insecure_skip_verify",
];

/// Replaces every double-quoted span (serde's rendering of a string value) with `"…"`.
fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            out.push(c);
            continue;
        }
        out.push_str("\"…\"");
        while let Some(inner) = chars.next() {
            match inner {
                '\\' => {
                    chars.next();
                }
                '"' => break,
                _ => {}
            }
        }
    }
    out
}

/// The config crate writes nested keys as `targets[0]password`; make it `targets[0].password`.
fn fix_key_paths(message: &str) -> String {
    let mut out = String::with_capacity(message.len() + 8);
    let mut previous = ' ';
    for c in message.chars() {
        if previous == ']' && (c.is_ascii_alphabetic() || c == '_') {
            out.push('.');
        }
        out.push(c);
        previous = c;
    }
    out
}
