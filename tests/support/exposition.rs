//! The one exposition parser: OpenMetrics/Prometheus text into [`Sample`]s, and one
//! matching rule ([`Sample::matches`]: the name, and a subset of the labels) behind every
//! lookup.

/// One sample line of an exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Sample name, suffix included (`redis_aof_rewrites_total`).
    pub name: String,
    /// Labels in the order written.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
    /// The line as served.
    pub line: String,
}

impl Sample {
    /// The value of label `name`, if present.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The one matching rule: this name, and every pair of `labels` among its labels.
    pub fn matches(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.name == name && labels.iter().all(|(k, v)| self.label(k) == Some(v))
    }
}

/// Parses every sample line of an OpenMetrics/Prometheus text body. Panics on a line it
/// cannot read: the body is the exporter's, and an unreadable line is a finding.
pub fn parse_samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| parse_line(line).unwrap_or_else(|| panic!("unreadable sample line: {line:?}")))
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_owned();
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(mut inner) = rest.strip_prefix('{') {
        loop {
            inner = inner.strip_prefix(',').unwrap_or(inner);
            if let Some(after) = inner.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after_key) = inner.split_once("=\"")?;
            let mut value = String::new();
            let mut chars = after_key.char_indices();
            let end = loop {
                let (i, c) = chars.next()?;
                match c {
                    '"' => break i + 1,
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    c => value.push(c),
                }
            };
            labels.push((key.to_owned(), value));
            inner = &after_key[end..];
        }
    }
    let value_text = rest.split_whitespace().next()?;
    let value = match value_text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().ok()?,
    };
    Some(Sample {
        name,
        labels,
        value,
        line: line.to_owned(),
    })
}

/// Every sample named `name` carrying (at least) `labels`.
pub fn samples(text: &str, name: &str, labels: &[(&str, &str)]) -> Vec<Sample> {
    parse_samples(text)
        .into_iter()
        .filter(|s| s.matches(name, labels))
        .collect()
}

/// The value of the one sample named `name` carrying (at least) `labels`; `None` if there is
/// none. Panics if several match, since the test then meant a more specific series.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found = samples(text, name, labels);
    assert!(
        found.len() <= 1,
        "{name} {labels:?} matches {} series: {found:?}",
        found.len()
    );
    found.first().map(|s| s.value)
}

/// The value of the first readable sample named `name` carrying (at least) `labels`, in any
/// text (an error message finds nothing).
pub fn find_sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter_map(parse_line)
        .find(|s| s.matches(name, labels))
        .map(|s| s.value)
}

/// The value of `name` for `target` (matched on the `target` label alone).
pub fn value(body: &str, name: &str, target: &str) -> Option<f64> {
    sample(body, name, &[("target", target)])
}

/// `redis_up` for `target`.
pub fn up(body: &str, target: &str) -> Option<f64> {
    value(body, "redis_up", target)
}

/// `redis_persistence_exporter_polls_total` for `target`; 0 before the first poll.
pub fn polls(body: &str, target: &str) -> f64 {
    value(body, "redis_persistence_exporter_polls_total", target).unwrap_or(0.0)
}

/// `redis_persistence_exporter_poll_failures_total` for `target` and `reason`; 0 if absent.
pub fn failures(body: &str, target: &str, reason: &str) -> f64 {
    sample(
        body,
        "redis_persistence_exporter_poll_failures_total",
        &[("target", target), ("reason", reason)],
    )
    .unwrap_or(0.0)
}

/// A parsed `/metrics` body.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// Every sample.
    pub samples: Vec<Sample>,
    /// The body as served.
    pub text: String,
}

impl Metrics {
    /// Parses OpenMetrics/Prometheus text with [`parse_samples`].
    pub fn parse(body: &str) -> Metrics {
        Metrics {
            samples: parse_samples(body),
            text: body.to_owned(),
        }
    }

    /// The first sample named `name` carrying (at least) `labels`.
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Option<&Sample> {
        self.samples.iter().find(|s| s.matches(name, labels))
    }

    /// The value of the first sample named `name` carrying (at least) `labels`.
    pub fn first(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.find(name, labels).map(|s| s.value)
    }

    /// The value of `name` for target `target` whose other labels include `labels`.
    pub fn get(&self, name: &str, target: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut all = vec![("target", target)];
        all.extend_from_slice(labels);
        self.find(name, &all).map(|s| s.value)
    }

    /// `get` without extra labels.
    pub fn value(&self, name: &str, target: &str) -> Option<f64> {
        self.get(name, target, &[])
    }

    /// Which card state is 1 for `target` (`ok`, `err`, `not_applicable`).
    pub fn card(&self, target: &str) -> Option<String> {
        self.samples
            .iter()
            .find(|s| s.matches("redis_aof_rewrite_state", &[("target", target)]) && s.value == 1.0)
            .and_then(|s| s.label("state").map(str::to_owned))
    }

    /// The `reason` of `redis_persistence_failure_reason{mechanism}` for `target`.
    pub fn reason(&self, target: &str, mechanism: &str) -> Option<String> {
        let labels = [("target", target), ("mechanism", mechanism)];
        self.samples
            .iter()
            .find(|s| s.matches("redis_persistence_failure_reason", &labels) && s.value == 1.0)
            .and_then(|s| s.label("reason").map(str::to_owned))
    }

    /// Every reason series for `target`, as `mechanism=reason` strings.
    pub fn reasons(&self, target: &str) -> Vec<String> {
        self.samples
            .iter()
            .filter(|s| s.matches("redis_persistence_failure_reason", &[("target", target)]))
            .map(|s| {
                format!(
                    "{}={}",
                    s.label("mechanism").unwrap_or_default(),
                    s.label("reason").unwrap_or_default()
                )
            })
            .collect()
    }

    /// `redis_up` of `target`.
    pub fn up(&self, target: &str) -> Option<f64> {
        self.value("redis_up", target)
    }

    /// The reason of the last failed poll of `target`, if its last poll failed.
    pub fn failure_reason(&self, target: &str) -> Option<String> {
        self.find(
            "redis_persistence_exporter_last_poll_failed",
            &[("target", target)],
        )
        .and_then(|s| s.label("reason").map(str::to_owned))
    }

    /// The persistence-related lines, for messages and the report.
    pub fn persistence_lines(&self) -> String {
        self.samples
            .iter()
            .filter(|s| {
                s.name.starts_with("redis_aof_")
                    || s.name.starts_with("redis_persistence_")
                    || s.name.starts_with("redis_config_")
                    || s.name == "redis_up"
                    || s.name.starts_with("redis_rdb_bgsave")
            })
            .map(|s| s.line.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The exporter's view of one target on one line, for the report.
    pub fn summary(&self, target: &str) -> String {
        let v = |name: &str| {
            self.value(name, target)
                .map(|v| format!("{v}"))
                .unwrap_or_else(|| "-".into())
        };
        format!(
            "card={} stuck={} failed_attempts_total={} transient_recoveries_total={} raw_rewrite_status={} write_status={} rewrites_total={} consecutive_failures={} growth_ratio={} overdue={} free_bytes={} config_available={} reasons={:?}",
            self.card(target).unwrap_or_else(|| "-".into()),
            v("redis_aof_rewrite_stuck"),
            v("redis_aof_rewrite_failed_attempts_total"),
            v("redis_aof_rewrite_transient_recoveries_total"),
            v("redis_aof_last_bgrewrite_status"),
            v("redis_aof_last_write_status"),
            v("redis_aof_rewrites_total"),
            v("redis_aof_rewrites_consecutive_failures"),
            v("redis_aof_growth_ratio"),
            v("redis_aof_rewrite_overdue"),
            v("redis_persistence_dir_free_bytes"),
            v("redis_config_available"),
            self.reasons(target),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_with_escapes() {
        let s = parse_line(r#"a_total{target="x\"y",le="+Inf"} 3"#).unwrap();
        assert_eq!(s.name, "a_total");
        assert_eq!(s.label("target"), Some("x\"y"));
        assert_eq!(s.label("le"), Some("+Inf"));
        assert_eq!(s.value, 3.0);
        assert_eq!(parse_line("b 1.5").unwrap().value, 1.5);
    }
}
