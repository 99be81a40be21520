//! Targets discovered from files in Prometheus's `file_sd` format, so target lists can come
//! from whatever already generates such files.
//!
//! A file is re-read only when its modification time or size changes. A file that cannot be
//! read or parsed keeps the targets it had before (a half-written file must not empty a
//! fleet); an entry that fails validation is skipped with a warning naming it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Deserialize;

use crate::config::{FileSdConfig, Settings};
use crate::target::{escape_untrusted, Target};

/// The largest discovery file read: 4 MiB holds some 100,000 targets, far beyond a real
/// list; a bigger file is a mistake or an attack, and is rejected before parsing.
pub const MAX_FILE_BYTES: u64 = 4 << 20;

/// The most targets and labels one file may hold once YAML aliases are expanded. Counted while
/// deserializing, so an alias bomb (one anchor referenced 20,000 times expanded a 297 KB file
/// past 2.8 GB) stops at the budget instead of after the expansion.
pub const MAX_ENTRIES: usize = 100_000;

/// The most labels the targets of one file carry in all: every target gets a copy of its
/// group's labels, so 1,000 targets with 1,000 labels each would be a million copies.
pub const MAX_LABEL_COPIES: usize = 1_000_000;

/// One group of a `file_sd` file.
#[derive(Debug, Deserialize)]
struct Group {
    #[serde(default)]
    targets: Vec<Counted>,
    #[serde(default)]
    labels: BTreeMap<String, Counted>,
}

thread_local! {
    /// Entries left in the budget of the file being parsed on this thread. A thread local
    /// because serde's derive cannot pass state down; [`parse_groups`] sets it before parsing.
    static ENTRIES_LEFT: std::cell::Cell<usize> = const { std::cell::Cell::new(MAX_ENTRIES) };
}

/// A string of a discovery file that counts against [`MAX_ENTRIES`] as it is read.
#[derive(Debug, Clone)]
struct Counted(String);

impl<'de> Deserialize<'de> for Counted {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let left = ENTRIES_LEFT.with(|left| {
            let now = left.get().saturating_sub(1);
            left.set(now);
            now
        });
        if left == 0 {
            return Err(serde::de::Error::custom(format!(
                "more than {MAX_ENTRIES} targets and labels (YAML aliases expanded)"
            )));
        }
        String::deserialize(deserializer).map(Counted)
    }
}

/// Parses a file's groups within the budgets.
fn parse_groups(path: &Path, text: &str) -> Result<Vec<Group>, String> {
    ENTRIES_LEFT.with(|left| left.set(MAX_ENTRIES + 1));
    let groups: Vec<Group> = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(text).map_err(|e| e.to_string())?
    } else {
        serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?
    };
    let copies = groups
        .iter()
        .map(|g| g.targets.len().saturating_mul(g.labels.len()))
        .fold(0usize, usize::saturating_add);
    if copies > MAX_LABEL_COPIES {
        return Err(format!(
            "its targets would carry {copies} labels in all, more than {MAX_LABEL_COPIES}"
        ));
    }
    Ok(groups)
}

/// Reads a discovery file of at most [`MAX_FILE_BYTES`].
fn read_bounded(path: &Path) -> Result<String, DiscoveryError> {
    use std::io::Read;
    let file = path.display().to_string();
    let read_error = |error| DiscoveryError::Read {
        file: file.clone(),
        error,
    };
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(read_error)?
        .take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(read_error)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(DiscoveryError::TooLarge { file });
    }
    Ok(text)
}

/// Why a file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The file could not be read.
    #[error("{file}: cannot read: {error}")]
    Read {
        /// The file.
        file: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The file is not a list of target groups, or is over a budget.
    #[error("{file}: expected a list of {{targets: [...], labels: {{...}}}} groups ({message})")]
    Parse {
        /// The file.
        file: String,
        /// The parser's message.
        message: String,
    },
    /// The file is over [`MAX_FILE_BYTES`].
    #[error("{file}: larger than {MAX_FILE_BYTES} bytes")]
    TooLarge {
        /// The file.
        file: String,
    },
}

/// Parses one file's text into target entries, validated against `settings`.
pub fn parse_file(
    path: &Path,
    text: &str,
    source: &FileSdConfig,
    settings: &Settings,
) -> Result<Vec<Target>, DiscoveryError> {
    let file = path.display().to_string();
    let groups = parse_groups(path, text).map_err(|message| DiscoveryError::Parse {
        file: file.clone(),
        message,
    })?;
    let mut targets = Vec::new();
    for (g, group) in groups.into_iter().enumerate() {
        let mut labels: BTreeMap<String, String> = group
            .labels
            .into_iter()
            .filter(|(k, _)| !k.starts_with("__"))
            .map(|(k, v)| (k, v.0))
            .collect();
        let name = labels.remove("name");
        for (t, entry) in group.targets.iter().enumerate() {
            let prefix = format!("{file} [{g}].targets[{t}]");
            // A `name` label names a single-target group only; with several targets each
            // gets its default name so names stay unique.
            let name = name.clone().filter(|_| group.targets.len() == 1);
            match source.defaults.build(
                source.defaults.url_for(&entry.0),
                name,
                labels.clone(),
                &prefix,
                settings.origin("file_sd"),
            ) {
                Ok(target) => targets.push(target),
                Err(error) => {
                    // Label names and paths in the message come from the file's writer.
                    let error = escape_untrusted(&error.to_string()).into_owned();
                    tracing::warn!(%error, "skipping a discovered target")
                }
            }
        }
    }
    Ok(targets)
}

/// Watches the `file_sd` sources of one config.
#[derive(Default)]
pub struct FileSd {
    /// Per file: the fingerprint it was read at and the targets it gave.
    files: BTreeMap<PathBuf, ((SystemTime, u64), Vec<Target>)>,
}

impl FileSd {
    /// An empty watcher.
    pub fn new() -> Self {
        FileSd::default()
    }

    /// Re-reads changed files. Returns the full discovered list when anything changed.
    pub fn refresh(&mut self, settings: &Settings) -> Option<Vec<Target>> {
        let mut changed = false;
        let mut seen = BTreeSet::new();
        for source in &settings.file_sd {
            for path in expand(&source.files) {
                seen.insert(path.clone());
                let Ok(meta) = std::fs::metadata(&path) else {
                    continue;
                };
                let fingerprint = (
                    meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    meta.len(),
                );
                if self
                    .files
                    .get(&path)
                    .is_some_and(|(f, _)| *f == fingerprint)
                {
                    continue;
                }
                let parsed =
                    read_bounded(&path).and_then(|text| parse_file(&path, &text, source, settings));
                match parsed {
                    Ok(targets) => {
                        tracing::info!(file = %path.display(), targets = targets.len(), "file_sd targets loaded");
                        self.files.insert(path, (fingerprint, targets));
                        changed = true;
                    }
                    Err(error) => {
                        // Keep what the file gave before; remember the fingerprint so the
                        // warning is not repeated until the file changes again.
                        // The parser quotes the file's text, chosen by whoever writes it.
                        let error = escape_untrusted(&error.to_string()).into_owned();
                        tracing::warn!(%error, "file_sd file unusable; keeping its previous targets");
                        let previous = self.files.remove(&path).map(|(_, t)| t).unwrap_or_default();
                        self.files.insert(path, (fingerprint, previous));
                    }
                }
            }
        }
        let before = self.files.len();
        self.files.retain(|path, _| seen.contains(path));
        changed |= self.files.len() != before;
        changed.then(|| self.targets())
    }

    /// Every discovered target, first occurrence of a name wins.
    pub fn targets(&self) -> Vec<Target> {
        let mut names = BTreeSet::new();
        self.files
            .values()
            .flat_map(|(_, targets)| targets.iter())
            .filter(|t| names.insert(t.name.clone()))
            .cloned()
            .collect()
    }
}

/// Expands glob patterns; a pattern that is not a valid glob is taken as a plain path.
fn expand(patterns: &[String]) -> Vec<PathBuf> {
    let mut paths = BTreeSet::new();
    for pattern in patterns {
        match glob::glob(pattern) {
            Ok(matches) => paths.extend(matches.flatten()),
            Err(_) => {
                paths.insert(PathBuf::from(pattern));
            }
        }
    }
    paths.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn settings_with(dir: &Path, extra: &str) -> Settings {
        let path = dir.join("config.toml");
        let mut file = std::fs::File::create(&path).unwrap();
        writeln!(
            file,
            "[[file_sd]]\nfiles = [\"sd/*.json\", \"sd/*.yml\"]\n{extra}"
        )
        .unwrap();
        crate::config::load_with_env(Some(&path), Vec::new()).unwrap()
    }

    #[test]
    fn reads_json_and_yaml_and_follows_changes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sd")).unwrap();
        let settings = settings_with(
            dir.path(),
            "[file_sd.defaults]\nlabels = { team = \"cache\" }\n",
        );
        std::fs::write(
            dir.path().join("sd/a.json"),
            r#"[{"targets": ["10.0.0.1:6379", "10.0.0.2:6379"], "labels": {"env": "prod", "__meta_x": "y"}}]"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("sd/b.yml"),
            "- targets: [\"rediss://10.0.0.3:6380\"]\n  labels: {name: queue-3}\n",
        )
        .unwrap();
        let mut sd = FileSd::new();
        let targets = sd.refresh(&settings).unwrap();
        let names: Vec<_> = targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            ["redis://10.0.0.1:6379", "redis://10.0.0.2:6379", "queue-3"]
        );
        assert!(targets[0].labels.contains(&("env".into(), "prod".into())));
        assert!(targets[0].labels.contains(&("team".into(), "cache".into())));
        assert!(!targets[0].labels.iter().any(|(k, _)| k.starts_with("__")));
        assert!(
            sd.refresh(&settings).is_none(),
            "unchanged files are not re-read"
        );

        // A broken rewrite keeps the previous targets.
        std::fs::write(dir.path().join("sd/a.json"), "[{\"targets\": [").unwrap();
        assert!(sd.refresh(&settings).is_none());
        assert_eq!(sd.targets().len(), 3);

        // Removing a file removes its targets.
        std::fs::remove_file(dir.path().join("sd/a.json")).unwrap();
        assert_eq!(sd.refresh(&settings).unwrap().len(), 1);
    }

    #[test]
    fn invalid_entries_are_skipped_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sd")).unwrap();
        let settings = settings_with(dir.path(), "");
        std::fs::write(
            dir.path().join("sd/a.json"),
            r#"[{"targets": ["http://nope", "10.0.0.9:6379"], "labels": {"target": "reserved"}}, {"targets": ["10.0.0.8:6379"]}]"#,
        )
        .unwrap();
        let targets = FileSd::new().refresh(&settings).unwrap();
        let names: Vec<_> = targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["redis://10.0.0.8:6379"]);
    }
}
