//! Targets discovered from Redis itself: every node of a Redis Cluster (`CLUSTER NODES`) and
//! every primary and replica behind a group of Sentinels (`SENTINEL MASTERS`,
//! `SENTINEL REPLICAS <name>`).
//!
//! Each `[[cluster]]` and `[[sentinel]]` source runs in its own task, so a slow or unreachable
//! seed never holds up the main loop; [`RedisSd::changed`] hands over a new list only when it
//! differs. A refresh that fails keeps the previous list (a network blip must not empty a
//! fleet, and the nodes themselves then show `redis_up 0`), and is logged once per streak.
//!
//! The reply parsers are pure functions, unit-tested on text captured from real servers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::{
    Address, ClusterSdConfig, ConfigError, SentinelSdConfig, Settings, Target, TargetDefaults,
    TargetOrigin, TargetTemplate,
};
use crate::redis_client::{ClientError, Connection};

/// Which side of replication a discovered node is on: the value of its `role` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// A cluster master (with or without slots) or a Sentinel-monitored master.
    Primary,
    /// A replica.
    Replica,
}

impl Role {
    /// The `role` label value.
    pub fn label(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Replica => "replica",
        }
    }
}

/// One node of a `CLUSTER NODES` reply that can be polled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    /// The node ID.
    pub id: String,
    /// The IP (or hostname) clients reach it at.
    pub host: String,
    /// The client port.
    pub port: u16,
    /// Master or replica.
    pub role: Role,
    /// Whether it serves any slot.
    pub has_slots: bool,
    /// Whether this is the node that answered.
    pub myself: bool,
    /// Whether the cluster marked it `fail` (it stays a target and shows `redis_up 0`).
    pub failed: bool,
}

/// A master as listed by `SENTINEL MASTERS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelMaster {
    /// The master name (`mymaster`).
    pub name: String,
    /// Its current address.
    pub host: String,
    /// Its current port.
    pub port: u16,
}

/// A reply that is not what the command returns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A `CLUSTER NODES` line does not have the documented fields.
    #[error("CLUSTER NODES line {line}: {problem}")]
    ClusterLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A `SENTINEL MASTERS`/`REPLICAS` row lacks a field or has a bad one.
    #[error("SENTINEL reply row {row}: missing or invalid `{field}`")]
    SentinelRow {
        /// 0-based row index.
        row: usize,
        /// The field.
        field: &'static str,
    },
}

/// Parses a `CLUSTER NODES` reply into the nodes that can be polled.
///
/// Nodes flagged `noaddr` or `handshake` are skipped (there is nothing to connect to yet);
/// `fail` nodes are kept. A node that has not learnt its own IP yet reports an empty one for
/// itself; `myself_host`, the host the reply came from, stands in for it.
pub fn parse_cluster_nodes(
    text: &str,
    myself_host: Option<&str>,
) -> Result<Vec<ClusterNode>, ParseError> {
    let mut nodes = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let bad = |problem| ParseError::ClusterLine {
            line: index + 1,
            problem,
        };
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        // <id> <ip:port@cport[,hostname]> <flags> <master> <ping-sent> <pong-recv>
        // <config-epoch> <link-state> <slot> <slot> ... <slot>
        if fields.len() < 8 {
            return Err(bad("fewer than 8 fields"));
        }
        let flags: Vec<&str> = fields[2].split(',').collect();
        if flags.iter().any(|f| *f == "noaddr" || *f == "handshake") {
            continue;
        }
        let role = if flags.contains(&"master") {
            Role::Primary
        } else if flags.contains(&"slave") {
            Role::Replica
        } else {
            return Err(bad("flags name neither master nor slave"));
        };
        let address = fields[1].split(',').next().unwrap_or_default();
        let address = address.split('@').next().unwrap_or_default();
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| bad("address is not ip:port@cport"))?;
        let port: u16 = port.parse().map_err(|_| bad("address has no valid port"))?;
        let myself = flags.contains(&"myself");
        let host = match (host, myself) {
            ("", true) => match myself_host {
                Some(host) => host,
                None => continue,
            },
            ("", false) => continue,
            (host, _) => host.trim_start_matches('[').trim_end_matches(']'),
        };
        if port == 0 {
            continue;
        }
        nodes.push(ClusterNode {
            id: fields[0].to_owned(),
            host: host.to_owned(),
            port,
            role,
            has_slots: fields.len() > 8,
            myself,
            failed: flags.contains(&"fail"),
        });
    }
    Ok(nodes)
}

/// Whether a `CLUSTER NODES` view speaks for a cluster: more than one node, or a lone node
/// serving slots. A lone node without slots is a node that was reset or never joined, whose
/// view is only used when no other node answers.
pub fn is_settled(nodes: &[ClusterNode]) -> bool {
    nodes.len() > 1 || nodes.iter().any(|n| n.has_slots)
}

fn field<'a>(row: &'a [(String, String)], name: &str) -> Option<&'a str> {
    row.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn host_port(index: usize, row: &[(String, String)]) -> Result<(String, u16), ParseError> {
    let host = field(row, "ip")
        .filter(|h| !h.is_empty() && *h != "?")
        .ok_or(ParseError::SentinelRow {
            row: index,
            field: "ip",
        })?;
    let port = field(row, "port")
        .and_then(|p| p.parse::<u16>().ok())
        .filter(|p| *p != 0)
        .ok_or(ParseError::SentinelRow {
            row: index,
            field: "port",
        })?;
    Ok((host.to_owned(), port))
}

/// Parses a `SENTINEL MASTERS` reply.
pub fn parse_sentinel_masters(
    rows: &[Vec<(String, String)>],
) -> Result<Vec<SentinelMaster>, ParseError> {
    rows.iter()
        .enumerate()
        .map(|(index, row)| {
            let name =
                field(row, "name")
                    .filter(|n| !n.is_empty())
                    .ok_or(ParseError::SentinelRow {
                        row: index,
                        field: "name",
                    })?;
            let (host, port) = host_port(index, row)?;
            Ok(SentinelMaster {
                name: name.to_owned(),
                host,
                port,
            })
        })
        .collect()
}

/// Parses a `SENTINEL REPLICAS <name>` reply into addresses. Replicas flagged `s_down` or
/// `disconnected` are kept: they are targets that show `redis_up 0`.
pub fn parse_sentinel_replicas(
    rows: &[Vec<(String, String)>],
) -> Result<Vec<(String, u16)>, ParseError> {
    rows.iter()
        .enumerate()
        .map(|(index, row)| host_port(index, row))
        .collect()
}

/// A node to poll: where it is, what it is, and which cluster or master it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Member {
    /// The `cluster` label: the `[[cluster]]` name or the Sentinel master name.
    pub group: String,
    /// Host or IP.
    pub host: String,
    /// Port.
    pub port: u16,
    /// The `role` label.
    pub role: Role,
}

impl Member {
    /// `ip:port`, with brackets around an IPv6 address.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The target name, `<group>/<ip:port>`.
    pub fn target_name(&self) -> String {
        format!("{}/{}", self.group, self.address())
    }
}

/// The members of a cluster from its `CLUSTER NODES` view.
pub fn cluster_members(cluster: &str, nodes: &[ClusterNode]) -> Vec<Member> {
    let mut members: Vec<Member> = nodes
        .iter()
        .map(|n| Member {
            group: cluster.to_owned(),
            host: n.host.clone(),
            port: n.port,
            role: n.role,
        })
        .collect();
    members.sort();
    members
}

/// What a source, its settings and the top level need to turn members into targets.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Context {
    /// "cluster c1" or "sentinel s1", for logs and errors.
    source_name: String,
    base_dir: Option<PathBuf>,
    defaults: TargetDefaults,
    /// Bound on connecting plus one command.
    timeout: Duration,
}

impl Context {
    fn new(source_name: String, settings: &Settings) -> Self {
        Context {
            source_name,
            base_dir: settings.base_dir.clone(),
            defaults: settings.defaults.clone(),
            timeout: settings.poll_timeout,
        }
    }

    fn origin(&self) -> TargetOrigin<'_> {
        TargetOrigin {
            source_name: &self.source_name,
            base_dir: self.base_dir.as_deref(),
            defaults: &self.defaults,
        }
    }

    /// The target used to talk to a seed or a Sentinel.
    fn contact(&self, template: &TargetTemplate, entry: &str, key: &str) -> Option<Target> {
        match template.build(
            template.url_for(entry),
            None,
            BTreeMap::new(),
            key,
            self.origin(),
        ) {
            Ok(target) => Some(target),
            Err(error) => {
                tracing::warn!(%error, "skipping a discovery contact point");
                None
            }
        }
    }

    /// One target per member, with the `cluster` and `role` labels. A member that fails
    /// validation fails the refresh: the members share one template, so that is a credential
    /// or TLS file missing for a moment (a rotation), and the previous nodes must be kept
    /// rather than dropped with their history.
    fn targets(
        &self,
        template: &TargetTemplate,
        scheme: &str,
        members: &[Member],
    ) -> Result<Vec<Target>, RefreshError> {
        let mut names = BTreeSet::new();
        let mut targets = Vec::with_capacity(members.len());
        for member in members {
            let name = member.target_name();
            if !names.insert(name.clone()) {
                continue;
            }
            let labels = BTreeMap::from([
                ("cluster".to_owned(), member.group.clone()),
                ("role".to_owned(), member.role.label().to_owned()),
            ]);
            let url = format!("{scheme}://{}", member.address());
            let target = template
                .build(url, Some(name.clone()), labels, &name, self.origin())
                .map_err(|error| RefreshError {
                    attempts: vec![format!("{name}: {error}")],
                })?;
            targets.push(target);
        }
        Ok(targets)
    }
}

/// The scheme of discovered nodes: the template's, else that of the first entry given as a
/// URL (a cluster reached over TLS serves TLS on every node), else `redis`.
fn node_scheme(template: &TargetTemplate, entries: &[String]) -> String {
    if let Some(scheme) = &template.scheme {
        return scheme.clone();
    }
    match entries.first().and_then(|e| e.split_once("://")) {
        Some(("rediss", _)) => "rediss".to_owned(),
        _ => "redis".to_owned(),
    }
}

/// Checks the `[[cluster]]` and `[[sentinel]]` sections at load time, so a bad seed URL or an
/// unreadable password file is a config error rather than a runtime warning.
pub fn validate_sources(
    clusters: &[ClusterSdConfig],
    sentinels: &[SentinelSdConfig],
    origin: TargetOrigin<'_>,
) -> Result<(), ConfigError> {
    let invalid = |key: String, expected: &str| ConfigError::Invalid {
        source_name: origin.source_name.to_owned(),
        key,
        expected: expected.to_owned(),
    };
    let check_name = |key: String, name: &str, seen: &mut BTreeSet<String>| {
        if name.is_empty() || name.chars().any(|c| c.is_control() || c == '/') {
            return Err(invalid(key, "a non-empty printable name without `/`"));
        }
        if !seen.insert(name.to_owned()) {
            return Err(invalid(key, "a name unique among sources of this kind"));
        }
        Ok(())
    };
    let check_contacts = |key: &str, entries: &[String], template: &TargetTemplate| {
        if entries.is_empty() {
            return Err(invalid(
                key.to_owned(),
                "at least one `host:port` or redis:// URL",
            ));
        }
        for (index, entry) in entries.iter().enumerate() {
            template.build(
                template.url_for(entry),
                None,
                BTreeMap::new(),
                &format!("{key}[{index}]"),
                origin,
            )?;
        }
        Ok(())
    };
    let mut names = BTreeSet::new();
    for (index, cluster) in clusters.iter().enumerate() {
        let prefix = format!("cluster[{index}]");
        check_name(format!("{prefix}.name"), &cluster.name, &mut names)?;
        check_contacts(
            &format!("{prefix}.seeds"),
            &cluster.seeds,
            &cluster.defaults,
        )?;
        if cluster.refresh_interval.is_zero() {
            return Err(invalid(
                format!("{prefix}.refresh_interval"),
                "a duration greater than zero, like \"30s\"",
            ));
        }
    }
    let mut names = BTreeSet::new();
    for (index, sentinel) in sentinels.iter().enumerate() {
        let prefix = format!("sentinel[{index}]");
        check_name(format!("{prefix}.name"), &sentinel.name, &mut names)?;
        check_contacts(
            &format!("{prefix}.sentinels"),
            &sentinel.sentinels,
            &sentinel.sentinel_auth,
        )?;
        if sentinel
            .masters
            .iter()
            .any(|m| m.is_empty() || m.contains('/'))
        {
            return Err(invalid(
                format!("{prefix}.masters"),
                "master names as given to `sentinel monitor`, non-empty and without `/`",
            ));
        }
        if sentinel.refresh_interval.is_zero() {
            return Err(invalid(
                format!("{prefix}.refresh_interval"),
                "a duration greater than zero, like \"30s\"",
            ));
        }
    }
    Ok(())
}

/// A source's config, for telling whether a reload changed it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Cluster(Box<ClusterSdConfig>),
    Sentinel(Box<SentinelSdConfig>),
}

struct Update {
    source: usize,
    targets: Vec<Target>,
}

/// The running Redis Cluster and Sentinel discovery of one config.
pub struct RedisSd {
    sources: Vec<(Source, Context)>,
    lists: Vec<Vec<Target>>,
    updates: mpsc::Receiver<Update>,
    tasks: Vec<JoinHandle<()>>,
}

impl RedisSd {
    /// Starts one task per `[[cluster]]` and `[[sentinel]]` source of `settings`. Must be
    /// called inside a Tokio runtime. With no such source nothing runs and
    /// [`RedisSd::changed`] never resolves.
    pub fn start(settings: &Settings) -> Self {
        Self::start_from(settings, Vec::new())
    }

    /// Follows a reloaded config. A source whose settings did not change keeps the targets
    /// it had until its first refresh, so a reload does not drop and re-add its pollers.
    pub fn restart(self, settings: &Settings) -> Self {
        let previous = self
            .sources
            .iter()
            .cloned()
            .zip(self.lists.iter().cloned())
            .collect();
        Self::start_from(settings, previous)
    }

    fn start_from(settings: &Settings, previous: Vec<((Source, Context), Vec<Target>)>) -> Self {
        let sources: Vec<(Source, Context)> = settings
            .cluster
            .iter()
            .map(|c| {
                let context = Context::new(format!("cluster {}", c.name), settings);
                (Source::Cluster(Box::new(c.clone())), context)
            })
            .chain(settings.sentinel.iter().map(|s| {
                let context = Context::new(format!("sentinel {}", s.name), settings);
                (Source::Sentinel(Box::new(s.clone())), context)
            }))
            .collect();
        let (tx, updates) = mpsc::channel(sources.len().max(1));
        let mut lists = Vec::with_capacity(sources.len());
        let mut tasks = Vec::with_capacity(sources.len());
        for (index, source) in sources.iter().enumerate() {
            let carried = previous
                .iter()
                .find(|(p, _)| p == source)
                .map(|(_, list)| list.clone())
                .unwrap_or_default();
            lists.push(carried.clone());
            let (config, context) = source.clone();
            let tx = tx.clone();
            tasks.push(tokio::spawn(follow(index, config, context, carried, tx)));
        }
        RedisSd {
            sources,
            lists,
            updates,
            tasks,
        }
    }

    /// Every discovered target, first occurrence of a name wins.
    pub fn targets(&self) -> Vec<Target> {
        let mut names = BTreeSet::new();
        self.lists
            .iter()
            .flatten()
            .filter(|t| names.insert(t.name.clone()))
            .cloned()
            .collect()
    }

    /// Resolves when the discovered list changed; read it with [`RedisSd::targets`].
    /// Cancel-safe, for use in `select!`.
    pub async fn changed(&mut self) {
        loop {
            match self.updates.recv().await {
                Some(Update { source, targets }) => {
                    if self.lists.get(source).is_some_and(|l| *l != targets) {
                        self.lists[source] = targets;
                        return;
                    }
                }
                None => std::future::pending::<()>().await,
            }
        }
    }
}

impl Drop for RedisSd {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Refreshes one source every `refresh_interval` until aborted, sending each new list.
async fn follow(
    index: usize,
    source: Source,
    context: Context,
    mut current: Vec<Target>,
    tx: mpsc::Sender<Update>,
) {
    let every = match &source {
        Source::Cluster(c) => c.refresh_interval,
        Source::Sentinel(s) => s.refresh_interval,
    };
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        ticks.tick().await;
        // One refresh may try many nodes; it ends by the next one's start at the latest.
        let deadline = Instant::now() + every.max(context.timeout);
        let result = match &source {
            Source::Cluster(cluster) => {
                refresh_cluster(cluster, &context, &current, deadline).await
            }
            Source::Sentinel(sentinel) => refresh_sentinel(sentinel, &context, deadline).await,
        };
        match result {
            Ok(targets) => {
                if failing {
                    tracing::info!(source = %context.source_name, nodes = targets.len(), "discovery answers again");
                    failing = false;
                }
                if targets != current {
                    tracing::info!(source = %context.source_name, nodes = targets.len(), "discovered nodes changed");
                    current = targets;
                    if tx
                        .send(Update {
                            source: index,
                            targets: current.clone(),
                        })
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
            Err(error) if !failing => {
                tracing::warn!(source = %context.source_name, %error, kept = current.len(), "discovery failed; keeping the previous nodes until it answers again");
                failing = true;
            }
            Err(error) => {
                tracing::debug!(source = %context.source_name, %error, "discovery still failing")
            }
        }
    }
}

/// Why no contact point gave a usable answer.
#[derive(Debug, thiserror::Error)]
#[error("no node answered: {}", .attempts.join("; "))]
struct RefreshError {
    /// One "name: error" per contact point tried.
    attempts: Vec<String>,
}

/// An error from one contact point.
#[derive(Debug, thiserror::Error)]
enum AskError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("{0}")]
    Other(String),
}

async fn bounded<T>(
    deadline: Instant,
    timeout: Duration,
    work: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    let until = deadline.min(Instant::now() + timeout);
    tokio::time::timeout_at(until, work)
        .await
        .unwrap_or(Err(ClientError::Timeout))
}

fn tcp_host(target: &Target) -> Option<&str> {
    match &target.address {
        Address::Tcp { host, .. } => Some(host),
        Address::Unix { .. } => None,
    }
}

async fn refresh_cluster(
    cluster: &ClusterSdConfig,
    context: &Context,
    known: &[Target],
    deadline: Instant,
) -> Result<Vec<Target>, RefreshError> {
    // Seeds in order, then every node found before: after a full turnover of the seeds the
    // cluster is still reachable through the nodes it had.
    let mut candidates: Vec<Target> = cluster
        .seeds
        .iter()
        .enumerate()
        .filter_map(|(i, seed)| {
            context.contact(&cluster.defaults, seed, &format!("cluster.seeds[{i}]"))
        })
        .collect();
    for target in known {
        if !candidates.iter().any(|c| c.address == target.address) {
            candidates.push(target.clone());
        }
    }
    let mut attempts = Vec::new();
    let mut lone = None;
    for target in &candidates {
        if Instant::now() >= deadline {
            attempts.push("refresh deadline reached".to_owned());
            break;
        }
        let answer = async {
            let connection = bounded(
                deadline,
                context.timeout,
                Connection::open(target, context.timeout),
            )
            .await?;
            let text = bounded(
                deadline,
                context.timeout,
                connection.text_command("CLUSTER", &["NODES"]),
            )
            .await?;
            Ok::<_, AskError>(parse_cluster_nodes(&text, tcp_host(target))?)
        }
        .await;
        match answer {
            Ok(nodes) if is_settled(&nodes) => {
                let members = cluster_members(&cluster.name, &nodes);
                let scheme = node_scheme(&cluster.defaults, &cluster.seeds);
                return context.targets(&cluster.defaults, &scheme, &members);
            }
            Ok(nodes) => {
                attempts.push(format!("{}: knows only itself", target.name));
                lone.get_or_insert(nodes);
            }
            Err(error) => attempts.push(format!("{}: {error}", target.name)),
        }
    }
    match lone {
        Some(nodes) => {
            let members = cluster_members(&cluster.name, &nodes);
            let scheme = node_scheme(&cluster.defaults, &cluster.seeds);
            context.targets(&cluster.defaults, &scheme, &members)
        }
        None => Err(RefreshError { attempts }),
    }
}

async fn refresh_sentinel(
    sentinel: &SentinelSdConfig,
    context: &Context,
    deadline: Instant,
) -> Result<Vec<Target>, RefreshError> {
    let mut attempts = Vec::new();
    for (i, entry) in sentinel.sentinels.iter().enumerate() {
        if Instant::now() >= deadline {
            attempts.push("refresh deadline reached".to_owned());
            break;
        }
        let Some(target) = context.contact(
            &sentinel.sentinel_auth,
            entry,
            &format!("sentinel.sentinels[{i}]"),
        ) else {
            continue;
        };
        match ask_sentinel(sentinel, context, &target, deadline).await {
            Ok(members) => {
                let scheme = node_scheme(&sentinel.defaults, &sentinel.sentinels);
                return context.targets(&sentinel.defaults, &scheme, &members);
            }
            Err(error) => attempts.push(format!("{}: {error}", target.name)),
        }
    }
    Err(RefreshError { attempts })
}

/// Asks one Sentinel for the primary and replicas of each followed master.
async fn ask_sentinel(
    sentinel: &SentinelSdConfig,
    context: &Context,
    target: &Target,
    deadline: Instant,
) -> Result<Vec<Member>, AskError> {
    let connection = bounded(
        deadline,
        context.timeout,
        Connection::open(target, context.timeout),
    )
    .await?;
    let rows = bounded(
        deadline,
        context.timeout,
        connection.table_command("SENTINEL", &["MASTERS"]),
    )
    .await?;
    let mut masters = parse_sentinel_masters(&rows)?;
    if !sentinel.masters.is_empty() {
        // A Sentinel that does not monitor a configured master is not the one to believe.
        if let Some(missing) = sentinel
            .masters
            .iter()
            .find(|name| !masters.iter().any(|m| &m.name == *name))
        {
            return Err(AskError::Other(format!(
                "does not monitor master {missing:?}"
            )));
        }
        masters.retain(|m| sentinel.masters.contains(&m.name));
    }
    let mut members = Vec::new();
    for master in masters {
        let rows = match bounded(
            deadline,
            context.timeout,
            connection.table_command("SENTINEL", &["REPLICAS", &master.name]),
        )
        .await
        {
            // Before Redis 5 the command was SENTINEL SLAVES.
            Err(ClientError::Server(_)) => {
                bounded(
                    deadline,
                    context.timeout,
                    connection.table_command("SENTINEL", &["SLAVES", &master.name]),
                )
                .await?
            }
            other => other?,
        };
        members.extend(sentinel_members(&master, &parse_sentinel_replicas(&rows)?));
    }
    members.sort();
    Ok(members)
}

/// The primary and replicas of one Sentinel master as members.
pub fn sentinel_members(master: &SentinelMaster, replicas: &[(String, u16)]) -> Vec<Member> {
    let primary = Member {
        group: master.name.clone(),
        host: master.host.clone(),
        port: master.port,
        role: Role::Primary,
    };
    let mut members = vec![primary.clone()];
    for (host, port) in replicas {
        // Right after a failover a Sentinel may still list the new primary among the
        // replicas; the primary entry wins.
        if *host == primary.host && *port == primary.port {
            continue;
        }
        members.push(Member {
            group: master.name.clone(),
            host: host.clone(),
            port: *port,
            role: Role::Replica,
        });
    }
    members.sort();
    members
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `CLUSTER NODES` from 127.0.0.1:17000 of a 3+3 cluster made by
    /// `redis-cli --cluster create … --cluster-replicas 1` (Redis 7.0.15).
    const HEALTHY: &str = "\
80eab89d5d61eb76423bac9008437c48c49a6a66 127.0.0.1:17001@27001 master - 0 1795558970000 2 connected 5461-10922
51ee37ba1edea6be08e99e5b7ed1391464f2b8d9 127.0.0.1:17003@27003 slave 80eab89d5d61eb76423bac9008437c48c49a6a66 0 1795558970268 2 connected
75250843c5bc5feb2f7f89ea1eaea6ba67538baa 127.0.0.1:17005@27005 slave a16cb17ea1f4d12cd86b298a23791629f55889ef 0 1795558969565 1 connected
a16cb17ea1f4d12cd86b298a23791629f55889ef 127.0.0.1:17000@27000 myself,master - 0 1795558969000 1 connected 0-5460
9cce144db2697e6693cd72e15530cba7964c466f 127.0.0.1:17002@27002 master - 0 1795558970000 3 connected 10923-16383
f304b39186f8be4d3ea2a9412bb5592536e55e9c 127.0.0.1:17004@27004 slave 9cce144db2697e6693cd72e15530cba7964c466f 0 1795558969565 3 connected
";

    /// The same cluster from a replica that was then failed over to (`CLUSTER FAILOVER` on
    /// 17003), after 17005 was shut down and a slotless 17006 added with `--cluster add-node`.
    const AFTER_FAILOVER: &str = "\
51ee37ba1edea6be08e99e5b7ed1391464f2b8d9 127.0.0.1:17003@27003 myself,master - 0 1795558992000 7 connected 5461-10922
722b7ffa2935c3975b1cf324ea9a22aae108915c 127.0.0.1:17006@27006 master - 0 1795558992067 0 connected
f304b39186f8be4d3ea2a9412bb5592536e55e9c 127.0.0.1:17004@27004 slave 9cce144db2697e6693cd72e15530cba7964c466f 0 1795558992067 3 connected
a16cb17ea1f4d12cd86b298a23791629f55889ef 127.0.0.1:17000@27000 master - 0 1795558992469 1 connected 0-5460
9cce144db2697e6693cd72e15530cba7964c466f 127.0.0.1:17002@27002 master - 0 1795558992000 3 connected 10923-16383
75250843c5bc5feb2f7f89ea1eaea6ba67538baa 127.0.0.1:17005@27005 slave,fail a16cb17ea1f4d12cd86b298a23791629f55889ef 1795558972337 1795558971334 1 disconnected
80eab89d5d61eb76423bac9008437c48c49a6a66 127.0.0.1:17001@27001 slave 51ee37ba1edea6be08e99e5b7ed1391464f2b8d9 0 1795558992168 7 connected
";

    /// Right after `CLUSTER MEET 127.0.0.1 17999` (nothing listens there).
    const HANDSHAKE: &str = "\
13e6638a9d57bb0ba7e9c78aec610e36c878a447 127.0.0.1:17999@27999 handshake - 0 0 0 disconnected
a16cb17ea1f4d12cd86b298a23791629f55889ef 127.0.0.1:17000@27000 myself,master - 0 1795558969000 1 connected 0-5460
";

    /// A fresh cluster-enabled node that has met nobody: it does not know its own IP.
    const FRESH: &str =
        "722b7ffa2935c3975b1cf324ea9a22aae108915c :17006@27006 myself,master - 0 0 0 connected\n";

    fn summary(nodes: &[ClusterNode]) -> Vec<(u16, Role, bool)> {
        let mut out: Vec<_> = nodes.iter().map(|n| (n.port, n.role, n.failed)).collect();
        out.sort();
        out
    }

    #[test]
    fn cluster_nodes_of_a_healthy_cluster() {
        let nodes = parse_cluster_nodes(HEALTHY, Some("127.0.0.1")).unwrap();
        use Role::*;
        assert_eq!(
            summary(&nodes),
            [
                (17000, Primary, false),
                (17001, Primary, false),
                (17002, Primary, false),
                (17003, Replica, false),
                (17004, Replica, false),
                (17005, Replica, false),
            ]
        );
        assert!(nodes.iter().all(|n| n.host == "127.0.0.1"));
        let me: Vec<_> = nodes.iter().filter(|n| n.myself).collect();
        assert_eq!(me.len(), 1);
        assert_eq!(me[0].id, "a16cb17ea1f4d12cd86b298a23791629f55889ef");
        assert!(is_settled(&nodes));
    }

    #[test]
    fn cluster_nodes_follow_failover_additions_and_failures() {
        let nodes = parse_cluster_nodes(AFTER_FAILOVER, None).unwrap();
        use Role::*;
        assert_eq!(
            summary(&nodes),
            [
                (17000, Primary, false),
                (17001, Replica, false),
                (17002, Primary, false),
                (17003, Primary, false),
                (17004, Replica, false),
                (17005, Replica, true),
                (17006, Primary, false),
            ]
        );
        let slotless = nodes.iter().find(|n| n.port == 17006).unwrap();
        assert!(!slotless.has_slots);
        let members = cluster_members("c1", &nodes);
        assert_eq!(members.len(), 7);
        assert_eq!(members[0].target_name(), "c1/127.0.0.1:17000");
    }

    #[test]
    fn handshake_and_noaddr_nodes_are_skipped() {
        let nodes = parse_cluster_nodes(HANDSHAKE, None).unwrap();
        assert_eq!(summary(&nodes), [(17000, Role::Primary, false)]);
        let noaddr = "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca :0@0 master,fail,noaddr - 1 2 3 disconnected\n";
        assert_eq!(parse_cluster_nodes(noaddr, Some("h")).unwrap(), []);
    }

    #[test]
    fn a_fresh_node_takes_the_host_it_was_reached_at() {
        let nodes = parse_cluster_nodes(FRESH, Some("10.1.2.3")).unwrap();
        assert_eq!(nodes.len(), 1);
        assert_eq!((nodes[0].host.as_str(), nodes[0].port), ("10.1.2.3", 17006));
        assert!(
            !is_settled(&nodes),
            "a lone node without slots is not a cluster's view"
        );
        assert_eq!(parse_cluster_nodes(FRESH, None).unwrap(), []);
    }

    #[test]
    fn hostnames_and_ipv6_addresses() {
        let text = "\
a 10.0.0.1:6379@16379,redis-0.example master - 0 0 1 connected 0-16383
b ::1:6380@16380 slave a 0 0 1 connected
";
        let nodes = parse_cluster_nodes(text, None).unwrap();
        assert_eq!(nodes[0].host, "10.0.0.1");
        assert_eq!((nodes[1].host.as_str(), nodes[1].port), ("::1", 6380));
        let members = cluster_members("c", &nodes);
        assert_eq!(members[0].target_name(), "c/10.0.0.1:6379");
        assert_eq!(members[1].target_name(), "c/[::1]:6380");
    }

    #[test]
    fn malformed_cluster_nodes_are_errors_not_empty_clusters() {
        assert_eq!(
            parse_cluster_nodes("ERR something\n", None),
            Err(ParseError::ClusterLine {
                line: 1,
                problem: "fewer than 8 fields"
            })
        );
        let bad_port = "a 127.0.0.1:port@1 master - 0 0 1 connected\n";
        assert!(parse_cluster_nodes(bad_port, None).is_err());
        assert_eq!(parse_cluster_nodes("", None).unwrap(), []);
    }

    /// Pairs up `redis-cli` output of a table reply, one value per line, rows starting at
    /// `name`: how the captures below were taken.
    fn rows(text: &str) -> Vec<Vec<(String, String)>> {
        let lines: Vec<&str> = text.lines().collect();
        let mut rows: Vec<Vec<(String, String)>> = Vec::new();
        for pair in lines.chunks_exact(2) {
            if pair[0] == "name" {
                rows.push(Vec::new());
            }
            rows.last_mut()
                .unwrap()
                .push((pair[0].to_owned(), pair[1].to_owned()));
        }
        rows
    }

    /// `SENTINEL MASTERS` from a Sentinel monitoring 127.0.0.1:17100 (Redis 7.0.15).
    const MASTERS: &str = "name\nmymaster\nip\n127.0.0.1\nport\n17100\nrunid\na24f5c71b50e6de17970643018e37d8984c3e041\nflags\nmaster\nlink-pending-commands\n0\nlink-refcount\n1\nlast-ping-sent\n0\nlast-ok-ping-reply\n920\nlast-ping-reply\n920\ndown-after-milliseconds\n1000\ninfo-refresh\n2982\nrole-reported\nmaster\nrole-reported-time\n3013\nconfig-epoch\n0\nnum-slaves\n1\nnum-other-sentinels\n0\nquorum\n1\nfailover-timeout\n5000\nparallel-syncs\n1";

    /// `SENTINEL REPLICAS mymaster` at the same time.
    const REPLICAS: &str = "name\n127.0.0.1:17101\nip\n127.0.0.1\nport\n17101\nrunid\nfa5574c482c32189b15db627ac7ca4f8cd559677\nflags\nslave\nlink-pending-commands\n0\nlink-refcount\n1\nlast-ping-sent\n0\nlast-ok-ping-reply\n849\nlast-ping-reply\n849\ndown-after-milliseconds\n1000\ninfo-refresh\n849\nrole-reported\nslave\nrole-reported-time\n3005\nmaster-link-down-time\n-1000\nmaster-link-status\nerr\nmaster-host\n127.0.0.1\nmaster-port\n17100\nslave-priority\n100\nslave-repl-offset\n1\nreplica-announced\n1";

    /// After `SENTINEL FAILOVER mymaster` and shutting the old primary down (fields trimmed).
    const REPLICAS_AFTER_FAILOVER: &str =
        "name\n127.0.0.1:17100\nip\n127.0.0.1\nport\n17100\nflags\ns_down,slave,disconnected";

    #[test]
    fn sentinel_masters_and_replicas() {
        let masters = parse_sentinel_masters(&rows(MASTERS)).unwrap();
        assert_eq!(
            masters,
            [SentinelMaster {
                name: "mymaster".into(),
                host: "127.0.0.1".into(),
                port: 17100
            }]
        );
        let replicas = parse_sentinel_replicas(&rows(REPLICAS)).unwrap();
        assert_eq!(replicas, [("127.0.0.1".to_owned(), 17101)]);
        let members = sentinel_members(&masters[0], &replicas);
        let named: Vec<_> = members
            .iter()
            .map(|m| (m.target_name(), m.role.label()))
            .collect();
        assert_eq!(
            named,
            [
                ("mymaster/127.0.0.1:17100".to_owned(), "primary"),
                ("mymaster/127.0.0.1:17101".to_owned(), "replica")
            ]
        );
    }

    #[test]
    fn a_down_replica_is_kept_and_the_primary_is_never_a_replica() {
        let replicas = parse_sentinel_replicas(&rows(REPLICAS_AFTER_FAILOVER)).unwrap();
        assert_eq!(replicas, [("127.0.0.1".to_owned(), 17100)]);
        let master = SentinelMaster {
            name: "mymaster".into(),
            host: "127.0.0.1".into(),
            port: 17101,
        };
        let roles: Vec<_> = sentinel_members(&master, &replicas)
            .iter()
            .map(|m| (m.port, m.role))
            .collect();
        assert_eq!(roles, [(17100, Role::Replica), (17101, Role::Primary)]);
        let confused = [("127.0.0.1".to_owned(), 17101)];
        assert_eq!(sentinel_members(&master, &confused).len(), 1);
    }

    #[test]
    fn sentinel_rows_without_an_address_are_errors() {
        let row = vec![vec![("name".to_owned(), "m".to_owned())]];
        assert_eq!(
            parse_sentinel_masters(&row),
            Err(ParseError::SentinelRow {
                row: 0,
                field: "ip"
            })
        );
        let row = vec![vec![
            ("ip".to_owned(), "10.0.0.1".to_owned()),
            ("port".to_owned(), "x".to_owned()),
        ]];
        assert_eq!(
            parse_sentinel_replicas(&row),
            Err(ParseError::SentinelRow {
                row: 0,
                field: "port"
            })
        );
    }

    fn load(text: &str) -> Result<Settings, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        crate::config::load_with_env(Some(&path), Vec::new())
    }

    #[test]
    fn config_sections_parse_and_are_checked() {
        let settings = load(
            "[[cluster]]\nname = \"c1\"\nseeds = [\"127.0.0.1:7000\"]\nrefresh_interval = \"1s\"\n\
             [cluster.defaults]\nusername = \"exporter\"\npassword = \"pw\"\n\
             [[sentinel]]\nname = \"s1\"\nsentinels = [\"redis://127.0.0.1:26379\"]\nmasters = [\"mymaster\"]\n\
             [sentinel.sentinel_auth]\npassword = \"spw\"\n",
        )
        .unwrap();
        assert_eq!(settings.cluster[0].refresh_interval, Duration::from_secs(1));
        assert_eq!(
            settings.sentinel[0].refresh_interval,
            Duration::from_secs(30)
        );
        assert_eq!(settings.sentinel[0].masters, ["mymaster"]);
        assert!(settings.targets.is_empty(), "a discovery source is enough");

        let err = load("[[cluster]]\nname = \"c1\"\nseeds = []\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("cluster[0].seeds"), "{err}");
        let err = load("[[cluster]]\nname = \"c1\"\nseeds = [\"http://x\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("cluster[0].seeds[0].url"), "{err}");
        let err = load(
            "[[sentinel]]\nname = \"s\"\nsentinels = [\"a:1\"]\n[[sentinel]]\nname = \"s\"\nsentinels = [\"b:1\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("sentinel[1].name"), "{err}");
        let err = load("[[sentinel]]\nname = \"s\"\nsentinels = [\"a:1\"]\nmaster = [\"m\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("master"), "{err}");
    }

    #[test]
    fn a_password_file_missing_for_a_moment_fails_the_refresh_instead_of_emptying_it() {
        let dir = tempfile::tempdir().unwrap();
        let password = dir.path().join("password");
        std::fs::write(&password, "pw").unwrap();
        let settings = load(&format!(
            "[[cluster]]\nname = \"c1\"\nseeds = [\"127.0.0.1:7000\"]\n\
             [cluster.defaults]\npassword_file = \"{}\"\n",
            password.display()
        ))
        .unwrap();
        let cluster = &settings.cluster[0];
        let context = Context::new("cluster c1".into(), &settings);
        let members = cluster_members("c1", &parse_cluster_nodes(HEALTHY, None).unwrap());
        let scheme = node_scheme(&cluster.defaults, &cluster.seeds);
        assert_eq!(
            context
                .targets(&cluster.defaults, &scheme, &members)
                .unwrap()
                .len(),
            6
        );
        std::fs::remove_file(&password).unwrap();
        let error = context
            .targets(&cluster.defaults, &scheme, &members)
            .unwrap_err();
        assert!(error.to_string().contains("c1/"), "{error}");
    }

    #[test]
    fn discovered_targets_carry_labels_credentials_and_scheme() {
        let settings = load(
            "[[cluster]]\nname = \"c1\"\nseeds = [\"127.0.0.1:7000\"]\n\
             [cluster.defaults]\npassword = \"pw\"\nlabels = { env = \"prod\", role = \"ignored\" }\n",
        )
        .unwrap();
        let cluster = &settings.cluster[0];
        let context = Context::new("cluster c1".into(), &settings);
        let nodes = parse_cluster_nodes(HEALTHY, None).unwrap();
        let scheme = node_scheme(&cluster.defaults, &cluster.seeds);
        let targets = context
            .targets(&cluster.defaults, &scheme, &cluster_members("c1", &nodes))
            .unwrap();
        assert_eq!(targets.len(), 6);
        let first = &targets[0];
        assert_eq!(first.name, "c1/127.0.0.1:17000");
        assert_eq!(
            first.labels,
            [
                ("cluster".to_owned(), "c1".to_owned()),
                ("env".to_owned(), "prod".to_owned()),
                ("role".to_owned(), "primary".to_owned()),
            ]
        );
        assert_eq!(first.current_password().unwrap().unwrap().expose(), "pw");
        assert_eq!(
            first.address,
            Address::Tcp {
                host: "127.0.0.1".into(),
                port: 17000,
                tls: false
            }
        );
        let tls_seed = ["rediss://10.0.0.1:6380".to_owned()];
        assert_eq!(node_scheme(&TargetTemplate::default(), &tls_seed), "rediss");
        assert_eq!(
            node_scheme(&TargetTemplate::default(), &cluster.seeds),
            "redis"
        );
    }
}
