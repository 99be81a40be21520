use super::*;
use crate::target::Address;
use std::io::Write;

fn load_text(text: &str) -> Result<Settings, ConfigError> {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    load_with_env(Some(file.path()), Vec::new())
}

#[test]
fn shipped_example_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml");
    let settings = load_with_env(Some(&path), Vec::new()).unwrap();
    assert!(!settings.targets.is_empty());
}

#[test]
fn no_file_means_local_redis() {
    let settings = load_with_env(None, Vec::new()).unwrap();
    assert_eq!(settings.poll_interval, Duration::from_secs(5));
    assert_eq!(settings.poll_timeout, Duration::from_secs(2));
    assert_eq!(settings.targets.len(), 1);
    assert_eq!(settings.targets[0].name, "redis://127.0.0.1:6379");
}

#[test]
fn environment_overrides_the_file() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        file,
        "poll_interval = \"5s\"\n[[targets]]\nurl = \"redis://a\""
    )
    .unwrap();
    let env = vec![(
        "REDIS_PERSISTENCE_EXPORTER_POLL_INTERVAL".to_owned(),
        "30s".to_owned(),
    )];
    let settings = load_with_env(Some(file.path()), env).unwrap();
    assert_eq!(settings.poll_interval, Duration::from_secs(30));
}

#[test]
fn connections_are_kept_unless_turned_off_in_the_file_or_environment() {
    let file = "[[targets]]\nurl = \"redis://a\"\n";
    assert!(load_text(file).unwrap().keep_connections);
    let off = load_text(&format!("keep_connections = false\n{file}")).unwrap();
    assert!(!off.keep_connections);
    let mut path = tempfile::NamedTempFile::new().unwrap();
    path.write_all(file.as_bytes()).unwrap();
    let env = vec![(
        "REDIS_PERSISTENCE_EXPORTER_KEEP_CONNECTIONS".to_owned(),
        "false".to_owned(),
    )];
    assert!(
        !load_with_env(Some(path.path()), env)
            .unwrap()
            .keep_connections
    );
    let error = load_text(&format!("keep_connections = \"sometimes\"\n{file}"))
        .unwrap_err()
        .to_string();
    assert!(error.contains("keep_connections"), "{error}");
}

#[test]
fn file_sd_refresh_interval_must_not_be_zero() {
    let error = load_text("[[file_sd]]\nfiles = [\"t.json\"]\nrefresh_interval = \"0s\"\n")
        .unwrap_err()
        .to_string();
    assert!(error.contains("file_sd[0].refresh_interval"), "{error}");
}

#[test]
fn kubernetes_service_variables_are_ignored() {
    let env = vec![
        (
            "REDIS_PERSISTENCE_EXPORTER_PORT".to_owned(),
            "tcp://10.0.0.1:9645".to_owned(),
        ),
        (
            "REDIS_PERSISTENCE_EXPORTER_SERVICE_HOST".to_owned(),
            "10.0.0.1".to_owned(),
        ),
        (
            "REDIS_PERSISTENCE_EXPORTER_POLL_TIMEOUT".to_owned(),
            "1s".to_owned(),
        ),
    ];
    let settings = load_with_env(None, env).unwrap();
    assert_eq!(settings.poll_timeout, Duration::from_secs(1));
}

#[test]
fn unknown_key_is_named() {
    let err = load_text("pol_interval = \"5s\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("pol_interval"), "{err}");
    assert!(err.contains("config file"), "{err}");
}

#[test]
fn unknown_target_key_is_named() {
    let err = load_text("[[targets]]\nurl = \"redis://a\"\nhost = \"b\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("host"), "{err}");
}

#[test]
fn bad_duration_is_named() {
    let err = load_text("poll_interval = \"often\"\n[[targets]]\nurl = \"redis://a\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("poll_interval"), "{err}");
}

#[test]
fn bad_url_is_named_without_echoing_it() {
    let err = load_text("[[targets]]\nurl = \"http://user:s3cr3t@host\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("targets[0].url"), "{err}");
    assert!(!err.contains("s3cr3t"), "{err}");
}

#[test]
fn missing_password_file_is_named() {
    let err =
        load_text("[[targets]]\nurl = \"redis://a\"\npassword_file = \"/nonexistent/secret\"\n")
            .unwrap_err()
            .to_string();
    assert!(err.contains("targets[0].password_file"), "{err}");
}

#[test]
fn url_credentials_are_used_but_not_in_the_name() {
    let settings =
        load_text("[[targets]]\nurl = \"redis://bob:p%40ss@db.example:6380\"\n").unwrap();
    let target = &settings.targets[0];
    assert_eq!(target.name, "redis://db.example:6380");
    assert_eq!(target.username.as_deref(), Some("bob"));
    assert_eq!(target.current_password().unwrap().unwrap().expose(), "p@ss");
    assert!(!format!("{settings:?}").contains("p@ss"));
}

#[test]
fn unix_socket_url() {
    let settings = load_text("[[targets]]\nurl = \"unix:///tmp/redis.sock\"\n").unwrap();
    assert_eq!(
        settings.targets[0].address,
        Address::Unix {
            path: "/tmp/redis.sock".into()
        }
    );
}

#[test]
fn duplicate_names_and_reserved_labels_are_rejected() {
    let err = load_text("[[targets]]\nurl = \"redis://a\"\n[[targets]]\nurl = \"redis://a\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("targets[1].name"), "{err}");
    let err = load_text("[[targets]]\nurl = \"redis://a\"\nlabels = { target = \"x\" }\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("labels.target"), "{err}");
}

#[test]
fn timeout_longer_than_interval_is_rejected() {
    let err = load_text(
        "poll_interval = \"1s\"\npoll_timeout = \"2s\"\n[[targets]]\nurl = \"redis://a\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("poll_timeout"), "{err}");
}

#[test]
fn toml_syntax_errors_do_not_quote_the_source_line() {
    let err = load_text("[[targets]]\nurl = \"redis://a\"\npassword = \"hunter2-secret\n")
        .unwrap_err()
        .to_string();
    assert!(!err.contains("hunter2-secret"), "{err}");
    assert!(err.contains("line 3"), "{err}");
}

#[test]
fn unknown_field_lists_the_expected_keys() {
    let err = load_text("[[targets]]\nurl = \"redis://a\"\nhost = \"b\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("expected one of `url`"), "{err}");
    assert!(err.contains("targets[0]"), "{err}");
}
