//! Last Successful Backup against real sources: a directory of files whose mtimes the test
//! sets, and a real local S3 server (moto_server) started through the harness. Each shows the
//! healthy state, the fault and the recovery through the real exporter's `/metrics`.

mod support;

use std::fs::{File, FileTimes};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::exporter::{toml_string, Exporter};
use support::exposition::Metrics;
use support::process::start_on_free_port;

const WAIT: Duration = Duration::from_secs(20);

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn write_backup(dir: &Path, name: &str, bytes: usize, age: Duration) {
    let path = dir.join(name);
    std::fs::write(&path, vec![7u8; bytes]).unwrap();
    File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_times(FileTimes::new().set_modified(SystemTime::now() - age))
        .unwrap();
}

/// `target`'s backup checks have failed with `reason` at least once, and its backup is down.
fn backup_failed(m: &Metrics, target: &str, reason: &str) -> bool {
    m.get(
        "redis_backup_check_failures_total",
        target,
        &[("reason", reason)],
    )
    .is_some_and(|n| n >= 1.0)
        && m.value("redis_backup_up", target) == Some(0.0)
}

/// A config whose one target is never reachable: the backup is read apart from Redis.
fn config(backup: &str) -> String {
    format!(
        "poll_interval = \"1s\"\npoll_timeout = \"500ms\"\n{backup}\n[[targets]]\nurl = \"redis://127.0.0.1:1\"\nname = \"orders\"\n"
    )
}

#[test]
fn file_source_fresh_then_stale_then_fresh_again() {
    let dir = tempfile::tempdir().unwrap();
    write_backup(
        dir.path(),
        "orders-1.rdb",
        100,
        Duration::from_secs(3 * 3600),
    );
    write_backup(dir.path(), "orders-2.rdb", 250, Duration::from_secs(600));
    write_backup(dir.path(), "cache-9.rdb", 999, Duration::from_secs(1));
    let url = format!("file://{}/{{target}}-*.rdb", dir.path().display());
    let exporter = Exporter::start(&config(&format!(
        "[backup]\nurl = {}\nmax_age = \"1h\"\nrefresh_interval = \"1s\"\ntimeout = \"1s\"",
        toml_string(&url)
    )));

    // Healthy: the newest of this target's files, by mtime, 10 minutes old.
    let m = exporter.wait_metrics(WAIT, "the backup is read", |m| {
        m.value("redis_backup_up", "orders") == Some(1.0)
    });
    assert_eq!(m.value("redis_backup_size_bytes", "orders"), Some(250.0));
    assert_eq!(
        m.value("redis_backup_max_age_seconds", "orders"),
        Some(3600.0)
    );
    let age = now_unix()
        - m.value("redis_backup_last_success_timestamp_seconds", "orders")
            .unwrap();
    assert!((590.0..700.0).contains(&age), "age {age}");

    // Fault: the newest backup is now two hours old, past max_age (what RedisBackupStale
    // compares); the RDB of the unreachable target has no say in it.
    write_backup(
        dir.path(),
        "orders-2.rdb",
        250,
        Duration::from_secs(2 * 3600),
    );
    let m = exporter.wait_metrics(WAIT, "the backup reads stale", |m| {
        m.value("redis_backup_last_success_timestamp_seconds", "orders")
            .is_some_and(|at| now_unix() - at > 3600.0)
    });
    assert_eq!(m.value("redis_backup_up", "orders"), Some(1.0));
    let page = exporter.get("/");
    assert!(page.contains("STALE"), "{page}");

    // Recovery: a new backup appears.
    write_backup(dir.path(), "orders-3.rdb", 300, Duration::ZERO);
    let m = exporter.wait_metrics(WAIT, "the new backup is seen", |m| {
        m.value("redis_backup_size_bytes", "orders") == Some(300.0)
    });
    let age = now_unix()
        - m.value("redis_backup_last_success_timestamp_seconds", "orders")
            .unwrap();
    assert!(age < 60.0, "age {age}");

    // Fault again: the directory goes away. The last known time stays (never fresher), the
    // check is marked failed with reason not_found.
    let kept = m.value("redis_backup_last_success_timestamp_seconds", "orders");
    std::fs::remove_dir_all(dir.path()).unwrap();
    let m = exporter.wait_metrics(WAIT, "the missing directory is counted", |m| {
        backup_failed(m, "orders", "not_found")
    });
    assert_eq!(
        m.value("redis_backup_last_success_timestamp_seconds", "orders"),
        kept
    );
}

#[test]
fn without_a_backup_source_nothing_pretends_one_exists() {
    let exporter = Exporter::start(&config(""));
    exporter.wait_metrics(WAIT, "the target is listed", |m| {
        m.value("redis_up", "orders").is_some()
    });
    let body = exporter.scrape();
    assert!(!body.contains("redis_backup_"), "{body}");
    let page = exporter.get("/");
    assert!(
        page.contains("no backup source configured: the exporter cannot tell whether an offsite backup exists"),
        "{page}"
    );
}

/// A real S3 server on loopback: moto_server (pip install 'moto[server]').
struct S3 {
    _proc: support::process::Proc,
    endpoint: String,
}

fn start_s3(log_dir: &Path) -> S3 {
    start_s3_checking_keys_after(log_dir, None)
}

/// moto_server; with `Some(n)`, it checks credentials and IAM policies from its `n + 1`th
/// request on, as S3 does (`INITIAL_NO_AUTH_ACTION_COUNT`): the first `n` set the server up.
fn start_s3_checking_keys_after(log_dir: &Path, setup_requests: Option<u32>) -> S3 {
    let (proc, port) = start_on_free_port(
        "moto_server",
        &log_dir.join("moto.log"),
        |port| {
            let mut command = Command::new("moto_server");
            command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
            if let Some(n) = setup_requests {
                command.env("INITIAL_NO_AUTH_ACTION_COUNT", n.to_string());
            }
            command
        },
        |port, _| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
    );
    S3 {
        _proc: proc,
        endpoint: format!("http://127.0.0.1:{port}"),
    }
}

/// Creates `bucket` with `objects` (key, size) through boto3, which comes with moto.
fn put_objects(endpoint: &str, bucket: &str, objects: &[(&str, usize)]) {
    let puts: Vec<String> = objects
        .iter()
        .map(|(key, size)| {
            format!("s3.put_object(Bucket={bucket:?}, Key={key:?}, Body=b'x' * {size})")
        })
        .collect();
    let script = format!(
        "import boto3\ns3 = boto3.client('s3', endpoint_url={endpoint:?}, region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test')\ntry:\n    s3.create_bucket(Bucket={bucket:?})\nexcept s3.exceptions.BucketAlreadyOwnedByYou:\n    pass\n{}\n",
        puts.join("\n")
    );
    python(&script, &[]);
}

/// Runs a Python `script` with `args`; returns its stdout, or fails with its stderr.
fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn s3_source_reads_the_newest_object_and_names_a_missing_bucket() {
    let logs = tempfile::tempdir().unwrap();
    let s3 = start_s3(logs.path());
    put_objects(
        &s3.endpoint,
        "redis-backups",
        &[("orders/a.rdb", 10), ("other/z.rdb", 5)],
    );
    std::thread::sleep(Duration::from_millis(1100));
    put_objects(&s3.endpoint, "redis-backups", &[("orders/b.rdb", 42)]);
    let key = logs.path().join("s3-secret");
    std::fs::write(&key, "test-secret-value\n").unwrap();
    let backup = format!(
        "[backup]\nurl = \"s3://redis-backups/{{target}}/\"\nendpoint = {}\nallow_http = true\nregion = \"us-east-1\"\naccess_key_id = \"test\"\nsecret_access_key_file = {}\nrefresh_interval = \"1s\"\ntimeout = \"1s\"\n",
        toml_string(&s3.endpoint),
        toml_string(&key.display().to_string())
    );
    let text = config(&backup).replace(
        "name = \"orders\"\n",
        "name = \"orders\"\n[[targets]]\nurl = \"redis://127.0.0.1:2\"\nname = \"gone\"\nbackup = { url = \"s3://no-such-bucket/{target}/\" }\n",
    );
    let exporter = Exporter::start(&text);
    let m = exporter.wait_metrics(WAIT, "the newest object is read", |m| {
        m.value("redis_backup_up", "orders") == Some(1.0)
    });
    assert_eq!(m.value("redis_backup_size_bytes", "orders"), Some(42.0));
    let age = now_unix()
        - m.value("redis_backup_last_success_timestamp_seconds", "orders")
            .unwrap();
    assert!((0.0..120.0).contains(&age), "age {age}");

    let m = exporter.wait_metrics(WAIT, "the missing bucket is not_found", |m| {
        backup_failed(m, "gone", "not_found")
    });
    assert_eq!(
        m.value("redis_backup_last_success_timestamp_seconds", "gone"),
        None
    );

    // Recovery: a new object under the prefix.
    put_objects(&s3.endpoint, "redis-backups", &[("orders/c.rdb", 77)]);
    exporter.wait_metrics(WAIT, "the new object is seen", |m| {
        m.value("redis_backup_size_bytes", "orders") == Some(77.0)
    });
    let log = exporter.log();
    assert!(!log.contains("test-secret-value"), "{log}");
    assert!(!exporter.scrape().contains("test-secret-value"));
}

/// Writes `text` to `path` by renaming a new file over it, as a secret rotation does, so the
/// exporter never reads a half-written secret.
fn replace_file(path: &Path, text: &str) {
    let new = path.with_extension("new");
    std::fs::write(&new, text).unwrap();
    std::fs::rename(&new, path).unwrap();
}

/// On a server that checks keys, as S3 does (five unchecked requests set it up): an IAM user
/// allowed to read the bucket, its key, and one backup. Prints the key id and secret.
const IAM_SETUP: &str = r#"
import boto3, json, sys
kw = dict(endpoint_url=sys.argv[1], region_name='us-east-1',
          aws_access_key_id='setup', aws_secret_access_key='setup')
iam = boto3.client('iam', **kw)
iam.create_user(UserName='backup-reader')
key = iam.create_access_key(UserName='backup-reader')['AccessKey']
iam.put_user_policy(UserName='backup-reader', PolicyName='read', PolicyDocument=json.dumps(
    {'Version': '2012-10-17',
     'Statement': [{'Effect': 'Allow', 'Action': 's3:*', 'Resource': '*'}]}))
s3 = boto3.client('s3', **kw)
s3.create_bucket(Bucket='redis-backups')
s3.put_object(Bucket='redis-backups', Key='orders-a.rdb', Body=b'x' * 10)
print(key['AccessKeyId'], key['SecretAccessKey'])
"#;

#[test]
fn s3_refused_credentials_are_reason_auth_and_a_fixed_secret_recovers() {
    let logs = tempfile::tempdir().unwrap();
    let s3 = start_s3_checking_keys_after(logs.path(), Some(5));
    let stdout = python(IAM_SETUP, &[&s3.endpoint]);
    let (key_id, secret) = stdout.trim().split_once(' ').expect("key id and secret");
    let secret_file = logs.path().join("s3-secret");
    std::fs::write(&secret_file, secret).unwrap();
    // A prefix without a `/`: moto 5.2.1 checks the signature of a list request whose
    // `prefix` holds an encoded `/` against the decoded form and refuses even the right key
    // (boto3 sees the same). Listing the bucket's top level avoids it.
    let backup = format!(
        "[backup]\nurl = \"s3://redis-backups/{{target}}-\"\nendpoint = {}\nallow_http = true\nregion = \"us-east-1\"\naccess_key_id = {}\nsecret_access_key_file = {}\nrefresh_interval = \"1s\"\ntimeout = \"1s\"\n",
        toml_string(&s3.endpoint),
        toml_string(key_id),
        toml_string(&secret_file.display().to_string())
    );
    let exporter = Exporter::start(&config(&backup));

    // Healthy: the user's own key reads the backup.
    let m = exporter.wait_metrics(WAIT, "the backup is read with the right key", |m| {
        m.value("redis_backup_up", "orders") == Some(1.0)
    });
    assert_eq!(m.value("redis_backup_size_bytes", "orders"), Some(10.0));

    // Fault: the secret file now holds a wrong secret. S3 refuses the signature: `auth`,
    // and the backup last read is still shown with its own time, never as a new one.
    let wrong_secret = "wrong-secret-value-0123456789";
    replace_file(&secret_file, wrong_secret);
    let m = exporter.wait_metrics(WAIT, "the refused key is reason auth", |m| {
        backup_failed(m, "orders", "auth")
    });
    let other = m
        .get(
            "redis_backup_check_failures_total",
            "orders",
            &[("reason", "other")],
        )
        .unwrap_or(0.0);
    assert_eq!(other, 0.0, "a refused key must not read as another failure");

    // Recovery: the right secret again.
    replace_file(&secret_file, secret);
    exporter.wait_metrics(WAIT, "the right key reads the backup again", |m| {
        m.value("redis_backup_up", "orders") == Some(1.0)
    });
    let log = exporter.log();
    for secret_text in [secret, wrong_secret] {
        assert!(!log.contains(secret_text), "a secret in the log:\n{log}");
        assert!(!exporter.scrape().contains(secret_text));
    }
}
