//! Targets discovered from Redis itself: every node of a Redis Cluster (`CLUSTER NODES`) and
//! every primary and replica behind a group of Sentinels (`SENTINEL MASTERS`,
//! `SENTINEL REPLICAS <name>`).
//!
//! Each `[[cluster]]` and `[[sentinel]]` source runs in its own task, so a slow or unreachable
//! seed never holds up the main loop; [`RedisSd::changed`] hands over a new list only when it
//! differs. A refresh that fails keeps the previous list (a network blip must not empty a
//! fleet, and the nodes themselves then show `redis_up 0`), and is logged once per streak.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::replies::{
    cluster_members, is_settled, parse_cluster_nodes, parse_sentinel_masters,
    parse_sentinel_replicas, sentinel_members, Member, ParseError,
};
use crate::config::{
    ClusterSdConfig, SentinelSdConfig, Settings, TargetDefaults, TargetOrigin, TargetTemplate,
};
use crate::redis::{ClientError, Connection};
use crate::target::{Address, Target};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigError;
    use crate::discovery::replies::tests::HEALTHY;

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
