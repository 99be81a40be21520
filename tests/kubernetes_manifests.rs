//! Checks of the kustomize base in `deploy/kubernetes`.
//!
//! - `prometheusrule.yaml` is what `scripts/gen-prometheusrule.sh` makes of
//!   `deploy/prometheus/rules.yml` (byte for byte), its groups are the rule file's groups (as
//!   data), and `promtool check rules` accepts them.
//! - Every YAML file parses, and the manifests hold the invariants a working deployment needs
//!   (shard count = replicas, port 9645 named `metrics`, probes, hardening, the password Secret
//!   mounted where the config looks, the ServiceMonitor finding the Service and producing the
//!   `job` the rules expect). The invariants are checked on the source files, and again on the
//!   output of `kustomize build` (or `kubectl kustomize`) when one of them is on PATH: that is
//!   the only way to see the generated ConfigMap/Secret names and the shard-count replacement
//!   at work. Neither tool is a Debian package, so without them those two tests say they
//!   skipped (set `REQUIRE_KUSTOMIZE=1` to make that a failure).
//! - The real exporter binary, started with the container's args and env expanded the way the
//!   kubelet does, the ConfigMap's config and the Secret's keys as files, accepts every pod's
//!   shard, refuses an ordinal past the shard count, and answers the probe paths.
//!
//! No cluster is involved: whether a cluster admits the objects is not tested here.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use redis_persistence_exporter::FileConfig;
use serde::Deserialize;
use serde_yaml_ng::Value;
use support::Proc;

const BASE: &str = "deploy/kubernetes";
const RULES: &str = "deploy/prometheus/rules.yml";
const PROMETHEUS_RULE: &str = "deploy/kubernetes/prometheusrule.yaml";
const GENERATOR: &str = "scripts/gen-prometheusrule.sh";
const EXPORTER: &str = env!("CARGO_BIN_EXE_redis-persistence-exporter");

const CONTAINER: &str = "exporter";
const PORT: u64 = 9645;
const PORT_NAME: &str = "metrics";
const SECRET_MOUNT: &str = "/run/secrets/redis";
const POD_INDEX_LABEL: &str = "metadata.labels['apps.kubernetes.io/pod-index']";
const SHARD_ARG: &str = "--shard=$(POD_INDEX)/$(SHARD_COUNT)";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn run(program: &str, args: &[&str]) -> Output {
    match Command::new(program)
        .args(args)
        .current_dir(repo())
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!("`{program}` was not found on PATH"),
        Err(e) => panic!("could not run `{program}`: {e}"),
    }
}

fn assert_success(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every document of a YAML stream, empty ones dropped.
fn parse_docs(text: &str, origin: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|doc| {
            Value::deserialize(doc).unwrap_or_else(|e| panic!("{origin}: invalid YAML: {e}"))
        })
        .filter(|doc| !doc.is_null())
        .collect()
}

/// `value` at a path of mapping keys; `None` where any step is missing.
fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(*key))
}

fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(value, path).and_then(Value::as_str)
}

fn seq_at<'a>(value: &'a Value, path: &[&str]) -> &'a [Value] {
    at(value, path)
        .and_then(Value::as_sequence)
        .map_or(&[], Vec::as_slice)
}

fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_mapping)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        other => serde_yaml_ng::to_string(other).unwrap().trim().to_owned(),
                    };
                    (k.as_str().unwrap_or_default().to_owned(), v)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn is_subset(small: &BTreeMap<String, String>, big: &BTreeMap<String, String>) -> bool {
    small.iter().all(|(k, v)| big.get(k) == Some(v))
}

// --- the PrometheusRule -----------------------------------------------------------------------

#[test]
fn prometheusrule_is_exactly_what_the_generator_makes_of_rules_yml() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("prometheusrule.yaml");
    let out = run("bash", &[GENERATOR, fresh.to_str().unwrap()]);
    assert_success(GENERATOR, &out);
    let committed = read(&repo().join(PROMETHEUS_RULE));
    assert!(
        read(&fresh) == committed,
        "{PROMETHEUS_RULE} is out of date with {RULES}; run: bash {GENERATOR}"
    );
    assert!(
        committed.starts_with("# Generated, do not edit"),
        "the generated file must say so on its first line"
    );
}

#[test]
fn prometheusrule_groups_are_the_rule_files_groups_and_pass_promtool() {
    let rule = parse_docs(&read(&repo().join(PROMETHEUS_RULE)), PROMETHEUS_RULE);
    assert_eq!(rule.len(), 1, "{PROMETHEUS_RULE} holds one document");
    let rule = &rule[0];
    assert_eq!(
        str_at(rule, &["apiVersion"]),
        Some("monitoring.coreos.com/v1")
    );
    assert_eq!(str_at(rule, &["kind"]), Some("PrometheusRule"));

    let groups = at(rule, &["spec", "groups"]).expect("spec.groups");
    let rules_yml = parse_docs(&read(&repo().join(RULES)), RULES);
    assert_eq!(
        Some(groups),
        at(&rules_yml[0], &["groups"]),
        "the PrometheusRule's groups differ from {RULES} as data"
    );
    let alerts = groups
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| seq_at(g, &["rules"]))
        .filter(|r| r.get("alert").is_some())
        .count();
    assert!(alerts >= 9, "expected the shipped alerts, found {alerts}");

    // What the operator hands Prometheus: a rule file of exactly these groups.
    let dir = tempfile::tempdir().unwrap();
    let extracted = dir.path().join("rules.yml");
    let mut file = serde_yaml_ng::Mapping::new();
    file.insert("groups".into(), groups.clone());
    fs::write(&extracted, serde_yaml_ng::to_string(&file).unwrap()).unwrap();
    let out = run("promtool", &["check", "rules", extracted.to_str().unwrap()]);
    assert_success(
        "promtool check rules (groups from the PrometheusRule)",
        &out,
    );
}

#[test]
fn the_generator_refuses_a_rule_file_it_would_mangle() {
    // The script reads rules.yml from the repository, so exercise its guard on a copy of the
    // script placed in a scratch tree with a rule file that has an extra top-level key.
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("scripts")).unwrap();
    fs::create_dir_all(dir.path().join("deploy/prometheus")).unwrap();
    fs::copy(repo().join(GENERATOR), dir.path().join(GENERATOR)).unwrap();
    let script = dir.path().join(GENERATOR);
    let out_file = dir.path().join("out.yaml");
    let rules = dir.path().join(RULES);

    fs::write(&rules, "groups:\n  - name: g\n    rules: []\n").unwrap();
    let ok = run(
        "bash",
        &[script.to_str().unwrap(), out_file.to_str().unwrap()],
    );
    assert_success("generator on a minimal rule file", &ok);
    assert!(read(&out_file).contains("spec:\n  groups:\n    - name: g\n"));

    fs::write(&rules, "groups:\n  - name: g\n    rules: []\nextra: 1\n").unwrap();
    let bad = run(
        "bash",
        &[script.to_str().unwrap(), out_file.to_str().unwrap()],
    );
    assert!(!bad.status.success(), "an unknown top-level key must fail");
    assert!(
        read(&out_file).contains("spec:\n  groups:\n    - name: g\n"),
        "a failed run must leave the previous output untouched"
    );
}

// --- the manifests ----------------------------------------------------------------------------

/// The objects to check plus what the generators make, either read from the source files or
/// taken from a kustomize build.
struct Bundle {
    origin: String,
    docs: Vec<Value>,
    config_toml: String,
    configmap_name: String,
    secret_name: String,
    secret_keys: BTreeSet<String>,
}

fn kustomization() -> Value {
    let path = repo().join(BASE).join("kustomization.yaml");
    parse_docs(&read(&path), "kustomization.yaml").remove(0)
}

/// `key=path` or `path` entries of a generator's `files`, as key → path.
fn generator_files(generator: &Value) -> BTreeMap<String, String> {
    seq_at(generator, &["files"])
        .iter()
        .map(|f| {
            let f = f.as_str().expect("generator file entry");
            match f.split_once('=') {
                Some((key, path)) => (key.to_owned(), path.to_owned()),
                None => (f.rsplit('/').next().unwrap().to_owned(), f.to_owned()),
            }
        })
        .collect()
}

fn source_bundle() -> Bundle {
    let base = repo().join(BASE);
    let k = kustomization();
    let mut docs = Vec::new();
    for resource in seq_at(&k, &["resources"]) {
        let name = resource.as_str().unwrap();
        docs.extend(parse_docs(&read(&base.join(name)), name));
    }
    let config_maps = seq_at(&k, &["configMapGenerator"]);
    let secrets = seq_at(&k, &["secretGenerator"]);
    assert_eq!(config_maps.len(), 1, "one configMapGenerator");
    assert_eq!(secrets.len(), 1, "one secretGenerator");
    let config_files = generator_files(&config_maps[0]);
    let config_path = config_files
        .get("config.toml")
        .expect("config.toml in the ConfigMap");
    Bundle {
        origin: "source files".into(),
        docs,
        config_toml: read(&base.join(config_path)),
        configmap_name: str_at(&config_maps[0], &["name"]).unwrap().to_owned(),
        secret_name: str_at(&secrets[0], &["name"]).unwrap().to_owned(),
        secret_keys: generator_files(&secrets[0]).into_keys().collect(),
    }
}

/// `kustomize build DIR` or `kubectl kustomize DIR`; `None` when neither tool exists.
fn kustomize_build(dir: &Path) -> Option<String> {
    let dir = dir.to_str().unwrap();
    let attempts: [(&str, &[&str]); 2] = [
        ("kustomize", &["build", dir]),
        ("kubectl", &["kustomize", dir]),
    ];
    for (program, args) in attempts {
        match Command::new(program).args(args).output() {
            Ok(out) => {
                assert_success(&format!("{program} {}", args.join(" ")), &out);
                return Some(String::from_utf8(out.stdout).unwrap());
            }
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => panic!("could not run {program}: {e}"),
        }
    }
    assert!(
        std::env::var_os("REQUIRE_KUSTOMIZE").is_none(),
        "REQUIRE_KUSTOMIZE is set but neither kustomize nor kubectl is on PATH"
    );
    eprintln!(
        "SKIPPED: neither kustomize nor kubectl is on PATH; the kustomize output is not checked"
    );
    None
}

fn rendered_bundle(dir: &Path, origin: &str) -> Option<Bundle> {
    let text = kustomize_build(dir)?;
    let docs = parse_docs(&text, origin);
    let config_map = one(&docs, "ConfigMap", origin);
    let secret = one(&docs, "Secret", origin);
    let mut secret_keys: BTreeSet<String> = string_map(at(secret, &["data"])).into_keys().collect();
    secret_keys.extend(string_map(at(secret, &["stringData"])).into_keys());
    Some(Bundle {
        origin: origin.into(),
        config_toml: str_at(config_map, &["data", "config.toml"])
            .expect("config.toml in the ConfigMap")
            .to_owned(),
        configmap_name: str_at(config_map, &["metadata", "name"])
            .unwrap()
            .to_owned(),
        secret_name: str_at(secret, &["metadata", "name"]).unwrap().to_owned(),
        secret_keys,
        docs,
    })
}

fn one<'a>(docs: &'a [Value], kind: &str, origin: &str) -> &'a Value {
    let found: Vec<_> = docs
        .iter()
        .filter(|d| str_at(d, &["kind"]) == Some(kind))
        .collect();
    assert_eq!(found.len(), 1, "{origin}: expected exactly one {kind}");
    found[0]
}

fn file_config(text: &str, origin: &str) -> FileConfig {
    config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .build()
        .and_then(|c| c.try_deserialize())
        .unwrap_or_else(|e| panic!("{origin}: config.toml: {e}"))
}

impl Bundle {
    fn get(&self, kind: &str) -> &Value {
        one(&self.docs, kind, &self.origin)
    }

    fn statefulset(&self) -> &Value {
        self.get("StatefulSet")
    }

    fn pod_spec(&self) -> &Value {
        at(self.statefulset(), &["spec", "template", "spec"]).expect("pod spec")
    }

    fn container(&self) -> &Value {
        seq_at(self.pod_spec(), &["containers"])
            .iter()
            .find(|c| str_at(c, &["name"]) == Some(CONTAINER))
            .unwrap_or_else(|| panic!("{}: no container {CONTAINER}", self.origin))
    }

    fn replicas(&self) -> u64 {
        at(self.statefulset(), &["spec", "replicas"])
            .and_then(Value::as_u64)
            .expect("spec.replicas")
    }

    fn args(&self) -> Vec<String> {
        seq_at(self.container(), &["args"])
            .iter()
            .map(|a| a.as_str().expect("args are strings").to_owned())
            .collect()
    }

    fn env(&self) -> BTreeMap<String, &Value> {
        seq_at(self.container(), &["env"])
            .iter()
            .map(|e| (str_at(e, &["name"]).unwrap().to_owned(), e))
            .collect()
    }

    fn literal_env(&self, name: &str) -> String {
        let env = self.env();
        let var = env
            .get(name)
            .unwrap_or_else(|| panic!("{}: no env {name}", self.origin));
        str_at(var, &["value"])
            .unwrap_or_else(|| panic!("{}: env {name} must be a quoted string", self.origin))
            .to_owned()
    }

    fn pod_labels(&self) -> BTreeMap<String, String> {
        string_map(at(
            self.statefulset(),
            &["spec", "template", "metadata", "labels"],
        ))
    }

    /// The mount path of the volume that `predicate` picks.
    fn mount_of(&self, predicate: impl Fn(&Value) -> bool) -> &Value {
        let volume = seq_at(self.pod_spec(), &["volumes"])
            .iter()
            .find(|v| predicate(v))
            .unwrap_or_else(|| panic!("{}: volume not found", self.origin));
        let name = str_at(volume, &["name"]).unwrap();
        let mounts: Vec<_> = seq_at(self.container(), &["volumeMounts"])
            .iter()
            .filter(|m| str_at(m, &["name"]) == Some(name))
            .collect();
        assert_eq!(
            mounts.len(),
            1,
            "{}: volume {name} mounted once",
            self.origin
        );
        mounts[0]
    }

    fn config_mount(&self) -> String {
        let mount =
            self.mount_of(|v| str_at(v, &["configMap", "name"]) == Some(&self.configmap_name));
        str_at(mount, &["mountPath"]).unwrap().to_owned()
    }

    fn secret_mount(&self) -> &Value {
        self.mount_of(|v| str_at(v, &["secret", "secretName"]) == Some(&self.secret_name))
    }

    fn check(&self) {
        let origin = &self.origin;
        let sts = self.statefulset();
        let pod = self.pod_spec();
        let container = self.container();
        let args = self.args();

        // Shards: pod k of n from the ordinal label, n = replicas.
        assert_eq!(str_at(sts, &["apiVersion"]), Some("apps/v1"));
        assert!(
            args.iter().any(|a| a == SHARD_ARG),
            "{origin}: args lack {SHARD_ARG}"
        );
        let pod_index = self.env().get("POD_INDEX").copied().expect("env POD_INDEX");
        assert_eq!(
            str_at(pod_index, &["valueFrom", "fieldRef", "fieldPath"]),
            Some(POD_INDEX_LABEL),
            "{origin}: POD_INDEX must come from the pod-index label"
        );
        assert_eq!(
            self.literal_env("SHARD_COUNT"),
            self.replicas().to_string(),
            "{origin}: SHARD_COUNT must equal the StatefulSet's replicas"
        );

        // Port and probes.
        let ports = seq_at(container, &["ports"]);
        assert!(
            ports.iter().any(
                |p| at(p, &["containerPort"]).and_then(Value::as_u64) == Some(PORT)
                    && str_at(p, &["name"]) == Some(PORT_NAME)
            ),
            "{origin}: container port {PORT} named {PORT_NAME}"
        );
        for (probe, path) in [
            ("livenessProbe", "/-/healthy"),
            ("readinessProbe", "/-/ready"),
        ] {
            assert_eq!(
                str_at(container, &[probe, "httpGet", "path"]),
                Some(path),
                "{origin}: {probe}"
            );
            let port = at(container, &[probe, "httpGet", "port"]).expect("probe port");
            assert!(
                port.as_str() == Some(PORT_NAME) || port.as_u64() == Some(PORT),
                "{origin}: {probe} must use the metrics port"
            );
            assert_ne!(
                str_at(container, &[probe, "httpGet", "scheme"]),
                Some("HTTPS"),
                "{origin}: the base serves plain HTTP"
            );
        }

        // Hardening. The container's settings win over the pod's, so check the effective one.
        let effective = |key: &str| {
            at(container, &["securityContext", key]).or_else(|| at(pod, &["securityContext", key]))
        };
        assert_eq!(
            effective("runAsNonRoot").and_then(Value::as_bool),
            Some(true),
            "{origin}: runAsNonRoot"
        );
        if let Some(uid) = effective("runAsUser") {
            assert_ne!(uid.as_u64(), Some(0), "{origin}: runAsUser 0");
        }
        assert_eq!(
            effective("seccompProfile").and_then(|s| str_at(s, &["type"])),
            Some("RuntimeDefault"),
            "{origin}: seccomp"
        );
        let csc = |key: &str| at(container, &["securityContext", key]);
        assert_eq!(
            csc("readOnlyRootFilesystem").and_then(Value::as_bool),
            Some(true),
            "{origin}: read-only root"
        );
        assert_eq!(
            csc("allowPrivilegeEscalation").and_then(Value::as_bool),
            Some(false),
            "{origin}: privilege escalation"
        );
        assert_eq!(
            seq_at(container, &["securityContext", "capabilities", "drop"]),
            [Value::from("ALL")],
            "{origin}: drop ALL capabilities"
        );
        assert!(
            seq_at(container, &["securityContext", "capabilities", "add"]).is_empty(),
            "{origin}: no added capabilities"
        );
        assert_eq!(
            at(pod, &["enableServiceLinks"]).and_then(Value::as_bool),
            Some(false),
            "{origin}: service-link env vars (REDIS_PERSISTENCE_EXPORTER_PORT=...) would be read as config keys"
        );
        for kind in ["requests", "limits"] {
            for resource in ["cpu", "memory"] {
                assert!(
                    at(container, &["resources", kind, resource]).is_some(),
                    "{origin}: resources.{kind}.{resource}"
                );
            }
        }

        // The image's entrypoint runs the exporter; the args are its flags.
        assert!(
            at(container, &["command"]).is_none(),
            "{origin}: keep the image's ENTRYPOINT"
        );
        let dockerfile = read(&repo().join("Dockerfile"));
        assert!(dockerfile.contains(r#"ENTRYPOINT ["/usr/local/bin/redis-persistence-exporter"]"#));
        if let Some(uid) = effective("runAsUser").and_then(Value::as_u64) {
            assert!(
                dockerfile.contains(&format!("USER {uid}:")),
                "{origin}: runAsUser {uid} is not the image's USER"
            );
        }

        // Config from the ConfigMap, at the path --config names.
        let config_mount = self.config_mount();
        let config_arg = format!("--config={config_mount}/config.toml");
        assert!(
            args.contains(&config_arg),
            "{origin}: args lack {config_arg}"
        );
        let config = file_config(&self.config_toml, origin);
        assert!(
            config.listen_address.ends_with(&format!(":{PORT}")),
            "{origin}: listen_address {} is not the container port",
            config.listen_address
        );
        assert!(
            !config.targets.is_empty(),
            "{origin}: the config has no targets"
        );

        // Passwords: the Secret, read-only at SECRET_MOUNT; every password_file is one of its keys.
        let secret_mount = self.secret_mount();
        assert_eq!(
            str_at(secret_mount, &["mountPath"]),
            Some(SECRET_MOUNT),
            "{origin}: secret mount path"
        );
        assert_eq!(
            at(secret_mount, &["readOnly"]).and_then(Value::as_bool),
            Some(true),
            "{origin}: secret mount read-only"
        );
        let mut used = 0;
        for target in &config.targets {
            assert!(
                target.password.is_none(),
                "{origin}: inline password in config.toml"
            );
            let Some(file) = &target.password_file else {
                continue;
            };
            used += 1;
            let key = file
                .strip_prefix(SECRET_MOUNT)
                .ok()
                .and_then(|rest| rest.to_str())
                .unwrap_or_else(|| {
                    panic!(
                        "{origin}: password_file {} is outside {SECRET_MOUNT}",
                        file.display()
                    )
                });
            assert!(
                self.secret_keys.contains(key),
                "{origin}: password_file {} names no key of the Secret ({:?})",
                file.display(),
                self.secret_keys
            );
        }
        assert!(used > 0, "{origin}: no target uses password_file");

        // Service: headless governing Service, port `metrics`, selects the pods.
        let service = self.get("Service");
        let service_name = str_at(service, &["metadata", "name"]).unwrap();
        assert_eq!(
            str_at(sts, &["spec", "serviceName"]),
            Some(service_name),
            "{origin}: serviceName"
        );
        assert_eq!(
            str_at(service, &["spec", "clusterIP"]),
            Some("None"),
            "{origin}: headless Service"
        );
        let pod_labels = self.pod_labels();
        let selector = string_map(at(service, &["spec", "selector"]));
        assert!(
            !selector.is_empty() && is_subset(&selector, &pod_labels),
            "{origin}: Service selector"
        );
        let sts_selector = string_map(at(sts, &["spec", "selector", "matchLabels"]));
        assert!(
            is_subset(&sts_selector, &pod_labels),
            "{origin}: StatefulSet selector"
        );
        let service_port = seq_at(service, &["spec", "ports"])
            .iter()
            .find(|p| str_at(p, &["name"]) == Some(PORT_NAME))
            .unwrap_or_else(|| panic!("{origin}: Service port {PORT_NAME}"));
        let target_port = at(service_port, &["targetPort"])
            .or_else(|| at(service_port, &["port"]))
            .unwrap();
        assert!(target_port.as_str() == Some(PORT_NAME) || target_port.as_u64() == Some(PORT));

        // ServiceMonitor: selects the Service, scrapes port `metrics`, and yields the job name
        // that the rules' `redis_persistence_exporter:up` record matches.
        let monitor = self.get("ServiceMonitor");
        assert_eq!(
            str_at(monitor, &["apiVersion"]),
            Some("monitoring.coreos.com/v1")
        );
        let service_labels = string_map(at(service, &["metadata", "labels"]));
        let monitor_selector = string_map(at(monitor, &["spec", "selector", "matchLabels"]));
        assert!(
            !monitor_selector.is_empty() && is_subset(&monitor_selector, &service_labels),
            "{origin}: ServiceMonitor selector {monitor_selector:?} does not match the Service labels {service_labels:?}"
        );
        assert!(at(monitor, &["spec", "selector", "matchExpressions"]).is_none());
        let endpoints = seq_at(monitor, &["spec", "endpoints"]);
        assert!(!endpoints.is_empty());
        for endpoint in endpoints {
            assert_eq!(
                str_at(endpoint, &["port"]),
                Some(PORT_NAME),
                "{origin}: endpoint port"
            );
            assert!(matches!(
                str_at(endpoint, &["path"]),
                None | Some("/metrics")
            ));
        }
        let job = match str_at(monitor, &["spec", "jobLabel"]) {
            Some(label) => service_labels
                .get(label)
                .cloned()
                .expect("the jobLabel label on the Service"),
            None => service_name.to_owned(),
        };
        let expected = rules_job();
        assert_eq!(
            job, expected,
            "{origin}: the scrape job must be the one the rules select"
        );

        // PodDisruptionBudget on the same pods.
        let pdb = self.get("PodDisruptionBudget");
        assert_eq!(str_at(pdb, &["apiVersion"]), Some("policy/v1"));
        let pdb_selector = string_map(at(pdb, &["spec", "selector", "matchLabels"]));
        assert!(
            !pdb_selector.is_empty() && is_subset(&pdb_selector, &pod_labels),
            "{origin}: PDB selector"
        );
        assert!(at(pdb, &["spec", "maxUnavailable"])
            .or_else(|| at(pdb, &["spec", "minAvailable"]))
            .is_some());

        let rule = self.get("PrometheusRule");
        assert!(
            !seq_at(rule, &["spec", "groups"]).is_empty(),
            "{origin}: PrometheusRule groups"
        );
    }
}

/// The `job` in the rules' `redis_persistence_exporter:up` recording rule.
fn rules_job() -> String {
    let rules = parse_docs(&read(&repo().join(RULES)), RULES).remove(0);
    let expr = seq_at(&rules, &["groups"])
        .iter()
        .flat_map(|g| seq_at(g, &["rules"]))
        .find(|r| str_at(r, &["record"]) == Some("redis_persistence_exporter:up"))
        .and_then(|r| str_at(r, &["expr"]))
        .expect("the redis_persistence_exporter:up record")
        .to_owned();
    let start = expr.find("job=\"").expect("job matcher") + 5;
    expr[start..].split('"').next().unwrap().to_owned()
}

#[test]
fn every_yaml_file_parses_and_each_manifest_is_used() {
    let base = repo().join(BASE);
    let mut yaml_files = Vec::new();
    let mut stack = vec![base.clone()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            ) {
                yaml_files.push(path);
            }
        }
    }
    assert!(yaml_files.len() >= 6, "found only {yaml_files:?}");
    for path in &yaml_files {
        let docs = parse_docs(&read(path), &path.display().to_string());
        assert!(!docs.is_empty(), "{}: empty", path.display());
    }

    // A manifest that kustomization.yaml does not list would silently never be applied.
    let k = kustomization();
    let mut used: BTreeSet<PathBuf> = [base.join("kustomization.yaml")].into();
    for list in ["resources", "replacements"] {
        for item in seq_at(&k, &[list]) {
            let name = item.as_str().or_else(|| str_at(item, &["path"]));
            if let Some(name) = name {
                assert!(
                    base.join(name).is_file(),
                    "kustomization.yaml names missing {name}"
                );
                used.insert(base.join(name));
            }
        }
    }
    for path in &yaml_files {
        assert!(
            used.contains(path),
            "{} is not used by kustomization.yaml",
            path.display()
        );
    }
}

#[test]
fn source_manifests_hold_the_invariants() {
    source_bundle().check();
}

#[test]
fn kustomize_output_holds_the_invariants() {
    let Some(bundle) = rendered_bundle(&repo().join(BASE), "kustomize build") else {
        return;
    };
    bundle.check();
    // The generators' hash suffixes reached the references.
    assert_ne!(bundle.configmap_name, source_bundle().configmap_name);
    assert_ne!(bundle.secret_name, source_bundle().secret_name);
    assert!(
        !str_at(bundle.container(), &["image"])
            .unwrap()
            .starts_with("redis-persistence-exporter"),
        "the images: entry must rewrite the image"
    );
}

#[test]
fn an_overlay_that_changes_replicas_keeps_the_shard_count_in_sync_as_documented() {
    // The documented overlay: `replicas:` plus its own copy of the replacement. Built with a
    // namePrefix too, which must not break the replacement or the job label.
    let base = repo().join(BASE);
    let replacement = "shard-count-replacement.yaml";
    let build = |with_replacement: bool| {
        // kustomize takes a base only by relative path.
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        fs::copy(base.join(replacement), dir.path().join(replacement)).unwrap();
        let mut text = format!(
            "resources:\n  - {}\nnamePrefix: team-\nreplicas:\n  - name: redis-persistence-exporter\n    count: 5\n",
            relative_path(dir.path(), &base).display()
        );
        if with_replacement {
            text.push_str(&format!("replacements:\n  - path: {replacement}\n"));
        }
        fs::write(dir.path().join("kustomization.yaml"), text).unwrap();
        rendered_bundle(dir.path(), "overlay")
    };
    let Some(synced) = build(true) else { return };
    assert_eq!(synced.replicas(), 5);
    assert_eq!(synced.literal_env("SHARD_COUNT"), "5");
    synced.check();

    // Without the copy the count stays the base's: why the README says to copy it.
    let unsynced = build(false).unwrap();
    assert_eq!(unsynced.replicas(), 5);
    assert_ne!(unsynced.literal_env("SHARD_COUNT"), "5");
}

/// `to` relative to the directory `from` (both absolute).
fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let (from, to) = (from.canonicalize().unwrap(), to.canonicalize().unwrap());
    let (from, to): (Vec<_>, Vec<_>) = (from.components().collect(), to.components().collect());
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut path: PathBuf = from[common..].iter().map(|_| "..").collect();
    path.extend(&to[common..]);
    path
}

// --- the real exporter, set up like the pod ---------------------------------------------------

/// The container's args with `$(VAR)` expanded as the kubelet does, the ConfigMap and Secret
/// mounts redirected into `root`.
fn pod_args(bundle: &Bundle, ordinal: u64, root: &Path) -> Vec<String> {
    let config_dir = root.join("config");
    let secret_dir = root.join("secrets");
    fs::create_dir_all(&config_dir).unwrap();
    fs::create_dir_all(&secret_dir).unwrap();
    for key in &bundle.secret_keys {
        fs::write(secret_dir.join(key), "placeholder\n").unwrap();
    }
    let secret_dir = secret_dir.to_str().unwrap();
    let config = bundle.config_toml.replace(SECRET_MOUNT, secret_dir);
    fs::write(config_dir.join("config.toml"), config).unwrap();

    let mut vars = BTreeMap::new();
    vars.insert("POD_INDEX".to_owned(), ordinal.to_string());
    for (name, var) in bundle.env() {
        if let Some(value) = str_at(var, &["value"]) {
            vars.insert(name, value.to_owned());
        }
    }
    let config_mount = bundle.config_mount();
    bundle
        .args()
        .iter()
        .map(|arg| {
            let mut arg = arg.replace(&config_mount, config_dir.to_str().unwrap());
            for (name, value) in &vars {
                arg = arg.replace(&format!("$({name})"), value);
            }
            assert!(!arg.contains("$("), "unexpanded variable in {arg}");
            arg
        })
        .collect()
}

#[test]
fn the_exporter_accepts_each_pods_args_and_answers_the_probes() {
    let bundle = source_bundle();
    let replicas = bundle.replicas();
    let dir = tempfile::tempdir().unwrap();

    for ordinal in 0..=replicas {
        let mut args = pod_args(&bundle, ordinal, dir.path());
        args.push("--check-config".into());
        let out = Command::new(EXPORTER)
            .args(&args)
            .env_clear()
            .output()
            .unwrap();
        if ordinal < replicas {
            assert_success(&format!("pod {ordinal}: {args:?}"), &out);
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                stdout.contains(&format!("shard {ordinal}/{replicas}")),
                "{stdout}"
            );
        } else {
            // A pod past the shard count must fail loudly (exit 2), never poll a wrong share.
            assert_eq!(
                out.status.code(),
                Some(2),
                "pod {ordinal} of {replicas} must be refused"
            );
        }
    }

    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut args = pod_args(&bundle, 0, dir.path());
    args.push(format!("--web.listen-address=127.0.0.1:{port}"));
    let mut command = Command::new(EXPORTER);
    command.args(&args).env_clear();
    let mut child = Proc::spawn(
        "redis-persistence-exporter",
        command,
        dir.path().join("exporter.log"),
    );
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let get = |path: &str| client.get(format!("http://127.0.0.1:{port}{path}")).send();
    let deadline = Instant::now() + Duration::from_secs(20);
    while get("/-/healthy").is_err() {
        assert!(
            child.is_running(),
            "the exporter exited with the pod's args:\n{}",
            child.log_tail(20)
        );
        assert!(
            Instant::now() < deadline,
            "the exporter did not start listening"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let container = bundle.container();
    for probe in ["livenessProbe", "readinessProbe", ""] {
        let path = if probe.is_empty() {
            "/metrics"
        } else {
            str_at(container, &[probe, "httpGet", "path"]).unwrap()
        };
        let response = get(path).unwrap();
        assert_eq!(response.status().as_u16(), 200, "GET {path}");
        if path == "/metrics" {
            let text = response.text().unwrap();
            assert!(
                text.contains("redis_persistence_exporter_build_info"),
                "/metrics: {text}"
            );
        }
    }
    assert_eq!(
        get("/-/no-such-path").unwrap().status().as_u16(),
        404,
        "a wrong probe path would fail"
    );
}
