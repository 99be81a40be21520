//! Redis Cluster nodes and Sentinels for the discovery tests: each a `redis-server` in a temp
//! dir of its own (one per start attempt), started through [`start_on_free_port`] and killed
//! on drop.

use std::fs;
use std::path::Path;
use std::process::Command;

use tempfile::TempDir;

use super::{run_cli, start_on_free_port, Proc, Server};

/// A `redis-server` (data node or Sentinel) in its own temp dir; dropping it kills it.
pub struct TopologyNode {
    /// Holds the servers' folders until the server is gone.
    _dir: TempDir,
    pub port: u16,
    password: Option<String>,
    proc: Proc,
}

impl TopologyNode {
    /// Starts `redis-server` with the arguments `args(dir, port)` gives, on a free loopback
    /// port (retrying on a fresh one if another process takes it first), and waits for PING.
    /// Each attempt gets a folder of its own, so a failed one leaves nothing for the next.
    pub fn start(password: Option<&str>, args: impl Fn(&Path, u16) -> Vec<String>) -> TopologyNode {
        let dir = tempfile::Builder::new()
            .prefix("rpe-sd-")
            .tempdir()
            .expect("temp dir");
        let (proc, port) = start_on_free_port(
            "redis-server",
            &dir.path().join("server.out"),
            |port| {
                let attempt = dir.path().join(port.to_string());
                fs::create_dir_all(&attempt).expect("attempt dir");
                let mut command = Command::new(Server::Redis70.binary_path());
                command.args(args(&attempt, port)).current_dir(&attempt);
                command
            },
            |port, _| node_cli(port, password, &["PING"]) == "PONG",
        );
        TopologyNode {
            _dir: dir,
            port,
            password: password.map(str::to_owned),
            proc,
        }
    }

    /// A cluster-enabled data node.
    pub fn cluster_node(password: &str) -> TopologyNode {
        TopologyNode::start(Some(password), |dir, port| {
            let mut args = base_args(dir, port);
            args.extend(strings(&[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                &dir.join("nodes.conf").display().to_string(),
                "--cluster-node-timeout",
                "2000",
                // Redis 7.0 here judges an idle replica's data too old to take over from a
                // dead primary ("Disconnected from master for longer than allowed").
                "--cluster-replica-validity-factor",
                "0",
                "--requirepass",
                password,
                "--masterauth",
                password,
            ]));
            args
        })
    }

    /// A plain data node, optionally replicating `primary`.
    pub fn data_node(password: &str, primary: Option<u16>) -> TopologyNode {
        TopologyNode::start(Some(password), move |dir, port| {
            let mut args = base_args(dir, port);
            args.extend(strings(&[
                "--requirepass",
                password,
                "--masterauth",
                password,
            ]));
            if let Some(primary) = primary {
                args.extend(strings(&["--replicaof", "127.0.0.1", &primary.to_string()]));
            }
            args
        })
    }

    /// A Sentinel monitoring `mymaster` at `primary`, with its own password.
    pub fn sentinel(primary: u16, node_password: &str, sentinel_password: &str) -> TopologyNode {
        TopologyNode::start(Some(sentinel_password), |dir, port| {
            let config = dir.join("sentinel.conf");
            let text = format!(
                "port {port}\nbind 127.0.0.1\ndir {}\nlogfile {}\nrequirepass {sentinel_password}\n\
                 sentinel monitor mymaster 127.0.0.1 {primary} 1\n\
                 sentinel auth-pass mymaster {node_password}\n\
                 sentinel down-after-milliseconds mymaster 1000\n\
                 sentinel failover-timeout mymaster 5000\n",
                dir.display(),
                dir.join("redis.log").display()
            );
            fs::write(&config, text).expect("write sentinel.conf");
            vec![config.display().to_string(), "--sentinel".to_owned()]
        })
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn cli(&self, args: &[&str]) -> String {
        node_cli(self.port, self.password.as_deref(), args)
    }

    pub fn kill(&mut self) {
        self.proc.kill();
    }
}

impl Drop for TopologyNode {
    fn drop(&mut self) {
        // Before the temp dir (the first field) goes.
        self.kill();
    }
}

pub fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

pub fn base_args(dir: &Path, port: u16) -> Vec<String> {
    strings(&[
        "--bind",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--dir",
        &dir.display().to_string(),
        "--logfile",
        &dir.join("redis.log").display().to_string(),
        "--daemonize",
        "no",
        "--save",
        "",
        "--appendonly",
        "no",
    ])
}

pub fn node_cli(port: u16, password: Option<&str>, args: &[&str]) -> String {
    let mut all = strings(&["-h", "127.0.0.1", "-p", &port.to_string()]);
    if let Some(password) = password {
        all.extend(strings(&["--no-auth-warning", "-a", password]));
    }
    all.extend(strings(args));
    run_cli(&all)
}
