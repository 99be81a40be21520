//! The `INFO` reply parser: text in, typed data out, no I/O.
//!
//! Redis versions (5.0, 6.x, 7.x, Valkey) differ in which fields they send, so nothing here
//! assumes a fixed list: a field that is missing is `None`, never zero, and a field whose value
//! does not parse is recorded in [`Info::field_errors`] and is `None` too, without costing the
//! other fields. Lines may end in CRLF (what Redis sends) or LF.

/// Why a reply could not be read as `INFO` at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The reply holds no `field:value` line, so it is not an `INFO` reply.
    #[error("reply has no `field:value` lines; it is not an INFO reply")]
    NoFields,
}

/// A field that was present but whose value could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The INFO field name, for example `aof_current_size`.
    pub field: String,
    /// What was expected, for example "an unsigned integer".
    pub expected: &'static str,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The value itself is left out on purpose: it came from a server we do not control and
        // could be arbitrarily long or contain terminal escapes.
        write!(f, "field `{}`: expected {}", self.field, self.expected)
    }
}

/// Outcome of the last background operation, as Redis reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpStatus {
    /// `ok`
    Ok,
    /// `err`
    Err,
}

/// The server software, from `server_name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// Redis (no `server_name`, or any other name).
    Redis,
    /// Valkey (`server_name:valkey`).
    Valkey,
}

impl Server {
    /// The `server` label value.
    pub fn label(self) -> &'static str {
        match self {
            Server::Redis => "redis",
            Server::Valkey => "valkey",
        }
    }
}

/// One connected replica, from a `slaveN:` line of the replication section.
#[derive(Debug, Clone, PartialEq)]
pub struct Replica {
    /// `ip:port` as the primary sees it.
    pub address: String,
    /// Link state, for example `online` or `wait_bgsave`.
    pub state: String,
    /// Seconds since the last ack from the replica (absent before Redis 3.0).
    pub lag_seconds: Option<u64>,
    /// Replication offset the replica acknowledged (`offset=`).
    pub offset: Option<u64>,
}

/// The parsed reply, with every field typed and optional.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Info {
    // Server
    /// `redis_version`. Valkey sends the Redis version it is compatible with (7.2.4 on
    /// Valkey 8 and 9); its own is [`Info::valkey_version`].
    pub redis_version: Option<String>,
    /// `server_name`: `valkey` on Valkey 8+, absent on Redis.
    pub server_name: Option<String>,
    /// `valkey_version` (Valkey 8+): the server's real version.
    pub valkey_version: Option<String>,
    /// `run_id`: changes when the server restarts, which resets derived history.
    pub run_id: Option<String>,
    /// `uptime_in_seconds`
    pub uptime_seconds: Option<u64>,

    // Memory
    /// `used_memory`
    pub used_memory_bytes: Option<u64>,
    /// `maxmemory`; 0 means no limit and is kept as 0.
    pub maxmemory_bytes: Option<u64>,
    /// `used_memory_rss`: what the process holds in RAM, the least a fork duplicates.
    pub used_memory_rss_bytes: Option<u64>,
    /// `used_memory_dataset` (Redis 4.0 and later): used_memory less the server's overhead.
    pub used_memory_dataset_bytes: Option<u64>,
    /// `mem_fragmentation_ratio`
    pub mem_fragmentation_ratio: Option<f64>,

    // Persistence
    /// `loading`
    pub loading: Option<bool>,
    /// `loading_start_time`: Unix seconds the running load began (only while loading).
    pub loading_start_timestamp_seconds: Option<u64>,
    /// `aof_enabled`
    pub aof_enabled: Option<bool>,
    /// `aof_rewrite_in_progress`
    pub aof_rewrite_in_progress: Option<bool>,
    /// `aof_rewrite_scheduled`
    pub aof_rewrite_scheduled: Option<bool>,
    /// `aof_last_bgrewrite_status`: kept by Redis after AOF is turned off (stale).
    pub aof_last_bgrewrite_status: Option<OpStatus>,
    /// `aof_last_write_status`
    pub aof_last_write_status: Option<OpStatus>,
    /// `aof_current_size`, absent while AOF is off.
    pub aof_current_size_bytes: Option<u64>,
    /// `aof_base_size`, absent while AOF is off.
    pub aof_base_size_bytes: Option<u64>,
    /// `aof_last_cow_size`
    pub aof_last_cow_size_bytes: Option<u64>,
    /// `aof_rewrites` (Redis 7.0 and later)
    pub aof_rewrites: Option<u64>,
    /// `aof_rewrites_consecutive_failures` (Redis 7.0 and later)
    pub aof_rewrites_consecutive_failures: Option<u64>,
    /// `aof_last_rewrite_time_sec`; Redis's `-1` ("never") is `None`.
    pub aof_last_rewrite_duration_seconds: Option<u64>,
    /// `aof_current_rewrite_time_sec`: how long the running rewrite has run; `-1` (none runs)
    /// is `None`.
    pub aof_current_rewrite_duration_seconds: Option<u64>,
    /// `aof_delayed_fsync`: fsyncs of `appendfsync everysec` that waited for a slow one still
    /// running; absent while AOF is off.
    pub aof_delayed_fsync: Option<u64>,
    /// `aof_pending_bio_fsync`: fsync jobs queued in the background I/O thread; absent while
    /// AOF is off.
    pub aof_pending_bio_fsync: Option<u64>,
    /// `rdb_last_bgsave_status`
    pub rdb_last_bgsave_status: Option<OpStatus>,
    /// `rdb_last_save_time` (Unix seconds)
    pub rdb_last_save_timestamp_seconds: Option<u64>,
    /// `rdb_changes_since_last_save`
    pub rdb_changes_since_last_save: Option<u64>,
    /// `rdb_bgsave_in_progress`
    pub rdb_bgsave_in_progress: Option<bool>,
    /// `rdb_last_bgsave_time_sec`; `-1` is `None`.
    pub rdb_last_bgsave_duration_seconds: Option<u64>,
    /// `rdb_current_bgsave_time_sec`: how long the running save has run; `-1` is `None`.
    pub rdb_current_bgsave_duration_seconds: Option<u64>,
    /// `rdb_last_cow_size`
    pub rdb_last_cow_size_bytes: Option<u64>,
    /// `rdb_saves` (Redis 7.0 and later). Counts attempts, not saves: it goes up on a refused
    /// fork, a killed child and a foreground `SAVE` too.
    pub rdb_saves: Option<u64>,

    // A running fork child (AOF rewrite, RDB save or module fork); 0 when none runs.
    /// `current_cow_size`: copy-on-write memory of the running child so far.
    pub current_cow_size_bytes: Option<u64>,
    /// `current_cow_peak` (Redis 7.0 and later): the running child's peak copy-on-write.
    pub current_cow_peak_bytes: Option<u64>,
    /// `current_fork_perc`: progress of the running child, 0 to 100.
    pub current_fork_perc: Option<f64>,
    /// `current_save_keys_processed`: keys the running child has written.
    pub current_save_keys_processed: Option<u64>,
    /// `current_save_keys_total`: keys the running child will write.
    pub current_save_keys_total: Option<u64>,

    // Stats
    /// `total_forks`
    pub total_forks: Option<u64>,
    /// `latest_fork_usec`
    pub latest_fork_usec: Option<u64>,

    // Replication
    /// `role`: `master` or `slave`.
    pub role: Option<String>,
    /// `connected_slaves`
    pub connected_replicas: Option<u64>,
    /// One entry per `slaveN:` line.
    pub replicas: Vec<Replica>,
    /// `master_repl_offset`: this server's replication offset.
    pub master_repl_offset: Option<u64>,

    /// Fields that were present but unreadable; each cost only itself.
    pub field_errors: Vec<FieldError>,
}

impl Info {
    /// `aof_current_size / aof_base_size`, when both are known and the base is not zero.
    pub fn aof_growth_ratio(&self) -> Option<f64> {
        match (self.aof_current_size_bytes, self.aof_base_size_bytes) {
            (Some(current), Some(base)) if base > 0 => Some(current as f64 / base as f64),
            _ => None,
        }
    }

    /// Which server this is: `valkey` when it says so in `server_name`, else `redis`.
    pub fn server(&self) -> Server {
        match self.server_name.as_deref() {
            Some(name) if name.eq_ignore_ascii_case("valkey") => Server::Valkey,
            _ if self.valkey_version.is_some() => Server::Valkey,
            _ => Server::Redis,
        }
    }

    /// The server's own version: `valkey_version` on Valkey (whose `redis_version` is the
    /// Redis version it is compatible with), else `redis_version`.
    pub fn server_version(&self) -> Option<&str> {
        match self.server() {
            Server::Valkey => self
                .valkey_version
                .as_deref()
                .or(self.redis_version.as_deref()),
            Server::Redis => self.redis_version.as_deref(),
        }
    }

    /// `used_memory / maxmemory`, when maxmemory is set.
    pub fn memory_used_ratio(&self) -> Option<f64> {
        match (self.used_memory_bytes, self.maxmemory_bytes) {
            (Some(used), Some(max)) if max > 0 => Some(used as f64 / max as f64),
            _ => None,
        }
    }

    /// Takes the sibling-section fields (server, memory, stats, replication) from an earlier
    /// full reply, for a reply that carried the persistence section only. Fields this reply
    /// has are kept.
    pub fn inherit_siblings(&mut self, from: &mut Info) {
        // `from` is about to be replaced, so its values are moved, not cloned: a
        // persistence-only poll allocates nothing for the siblings.
        fn fill<T>(field: &mut Option<T>, from: &mut Option<T>) {
            if field.is_none() {
                *field = from.take();
            }
        }
        fill(&mut self.redis_version, &mut from.redis_version);
        fill(&mut self.server_name, &mut from.server_name);
        fill(&mut self.valkey_version, &mut from.valkey_version);
        fill(&mut self.run_id, &mut from.run_id);
        fill(&mut self.uptime_seconds, &mut from.uptime_seconds);
        fill(&mut self.used_memory_bytes, &mut from.used_memory_bytes);
        fill(&mut self.maxmemory_bytes, &mut from.maxmemory_bytes);
        fill(
            &mut self.used_memory_rss_bytes,
            &mut from.used_memory_rss_bytes,
        );
        fill(
            &mut self.used_memory_dataset_bytes,
            &mut from.used_memory_dataset_bytes,
        );
        fill(
            &mut self.mem_fragmentation_ratio,
            &mut from.mem_fragmentation_ratio,
        );
        fill(&mut self.total_forks, &mut from.total_forks);
        fill(&mut self.latest_fork_usec, &mut from.latest_fork_usec);
        fill(&mut self.role, &mut from.role);
        fill(&mut self.connected_replicas, &mut from.connected_replicas);
        fill(&mut self.master_repl_offset, &mut from.master_repl_offset);
        if self.replicas.is_empty() {
            self.replicas = std::mem::take(&mut from.replicas);
        }
    }
}

/// Generates [`Field`]: one variant per INFO field this parser reads, with its name both ways.
macro_rules! fields {
    ($($variant:ident => $name:literal,)*) => {
        /// The INFO fields this parser reads.
        #[derive(Debug, Clone, Copy)]
        enum Field {
            $($variant,)*
        }

        impl Field {
            const COUNT: usize = [$($name,)*].len();

            fn name(self) -> &'static str {
                match self {
                    $(Field::$variant => $name,)*
                }
            }

            fn from_name(name: &str) -> Option<Field> {
                match name {
                    $($name => Some(Field::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

fields! {
    RedisVersion => "redis_version",
    ServerName => "server_name",
    ValkeyVersion => "valkey_version",
    RunId => "run_id",
    UptimeInSeconds => "uptime_in_seconds",
    UsedMemory => "used_memory",
    Maxmemory => "maxmemory",
    UsedMemoryRss => "used_memory_rss",
    UsedMemoryDataset => "used_memory_dataset",
    MemFragmentationRatio => "mem_fragmentation_ratio",
    Loading => "loading",
    LoadingStartTime => "loading_start_time",
    AofEnabled => "aof_enabled",
    AofRewriteInProgress => "aof_rewrite_in_progress",
    AofRewriteScheduled => "aof_rewrite_scheduled",
    AofLastBgrewriteStatus => "aof_last_bgrewrite_status",
    AofLastWriteStatus => "aof_last_write_status",
    AofCurrentSize => "aof_current_size",
    AofBaseSize => "aof_base_size",
    AofLastCowSize => "aof_last_cow_size",
    AofRewrites => "aof_rewrites",
    AofRewritesConsecutiveFailures => "aof_rewrites_consecutive_failures",
    AofLastRewriteTimeSec => "aof_last_rewrite_time_sec",
    AofCurrentRewriteTimeSec => "aof_current_rewrite_time_sec",
    AofDelayedFsync => "aof_delayed_fsync",
    AofPendingBioFsync => "aof_pending_bio_fsync",
    RdbLastBgsaveStatus => "rdb_last_bgsave_status",
    RdbLastSaveTime => "rdb_last_save_time",
    RdbChangesSinceLastSave => "rdb_changes_since_last_save",
    RdbBgsaveInProgress => "rdb_bgsave_in_progress",
    RdbLastBgsaveTimeSec => "rdb_last_bgsave_time_sec",
    RdbLastCowSize => "rdb_last_cow_size",
    RdbSaves => "rdb_saves",
    RdbCurrentBgsaveTimeSec => "rdb_current_bgsave_time_sec",
    CurrentCowSize => "current_cow_size",
    CurrentCowPeak => "current_cow_peak",
    CurrentForkPerc => "current_fork_perc",
    CurrentSaveKeysProcessed => "current_save_keys_processed",
    CurrentSaveKeysTotal => "current_save_keys_total",
    TotalForks => "total_forks",
    LatestForkUsec => "latest_fork_usec",
    Role => "role",
    ConnectedSlaves => "connected_slaves",
    MasterReplOffset => "master_repl_offset",
}

/// At most this many `slaveN:` lines are read; a server cannot make a reply cost more.
const MAX_REPLICAS: usize = 64;

/// Parses an `INFO` reply. Never panics, whatever the input.
pub fn parse(text: &str) -> Result<Info, ParseError> {
    let fields = split_fields(text).ok_or(ParseError::NoFields)?;
    let mut reader = Reader {
        fields: &fields,
        errors: Vec::new(),
    };
    let mut info = Info {
        redis_version: reader.text(Field::RedisVersion),
        server_name: reader.text(Field::ServerName),
        valkey_version: reader.text(Field::ValkeyVersion),
        run_id: reader.text(Field::RunId),
        uptime_seconds: reader.get(Field::UptimeInSeconds),
        used_memory_bytes: reader.get(Field::UsedMemory),
        maxmemory_bytes: reader.get(Field::Maxmemory),
        used_memory_rss_bytes: reader.get(Field::UsedMemoryRss),
        used_memory_dataset_bytes: reader.get(Field::UsedMemoryDataset),
        mem_fragmentation_ratio: reader.get(Field::MemFragmentationRatio),
        loading: reader.get(Field::Loading),
        loading_start_timestamp_seconds: reader.get(Field::LoadingStartTime),
        aof_enabled: reader.get(Field::AofEnabled),
        aof_rewrite_in_progress: reader.get(Field::AofRewriteInProgress),
        aof_rewrite_scheduled: reader.get(Field::AofRewriteScheduled),
        aof_last_bgrewrite_status: reader.get(Field::AofLastBgrewriteStatus),
        aof_last_write_status: reader.get(Field::AofLastWriteStatus),
        aof_current_size_bytes: reader.get(Field::AofCurrentSize),
        aof_base_size_bytes: reader.get(Field::AofBaseSize),
        aof_last_cow_size_bytes: reader.get(Field::AofLastCowSize),
        aof_rewrites: reader.get(Field::AofRewrites),
        aof_rewrites_consecutive_failures: reader.get(Field::AofRewritesConsecutiveFailures),
        aof_last_rewrite_duration_seconds: reader.duration(Field::AofLastRewriteTimeSec),
        aof_current_rewrite_duration_seconds: reader.duration(Field::AofCurrentRewriteTimeSec),
        aof_delayed_fsync: reader.get(Field::AofDelayedFsync),
        aof_pending_bio_fsync: reader.get(Field::AofPendingBioFsync),
        rdb_last_bgsave_status: reader.get(Field::RdbLastBgsaveStatus),
        rdb_last_save_timestamp_seconds: reader.get(Field::RdbLastSaveTime),
        rdb_changes_since_last_save: reader.get(Field::RdbChangesSinceLastSave),
        rdb_bgsave_in_progress: reader.get(Field::RdbBgsaveInProgress),
        rdb_last_bgsave_duration_seconds: reader.duration(Field::RdbLastBgsaveTimeSec),
        rdb_last_cow_size_bytes: reader.get(Field::RdbLastCowSize),
        rdb_saves: reader.get(Field::RdbSaves),
        rdb_current_bgsave_duration_seconds: reader.duration(Field::RdbCurrentBgsaveTimeSec),
        current_cow_size_bytes: reader.get(Field::CurrentCowSize),
        current_cow_peak_bytes: reader.get(Field::CurrentCowPeak),
        current_fork_perc: reader.get(Field::CurrentForkPerc),
        current_save_keys_processed: reader.get(Field::CurrentSaveKeysProcessed),
        current_save_keys_total: reader.get(Field::CurrentSaveKeysTotal),
        total_forks: reader.get(Field::TotalForks),
        latest_fork_usec: reader.get(Field::LatestForkUsec),
        role: reader.text(Field::Role),
        connected_replicas: reader.get(Field::ConnectedSlaves),
        master_repl_offset: reader.get(Field::MasterReplOffset),
        replicas: Vec::new(),
        field_errors: Vec::new(),
    };
    info.replicas = reader.replicas();
    info.field_errors = reader.errors;
    Ok(info)
}

/// The raw values of one reply: the fields read, by [`Field`], and the `slaveN:` lines.
struct Fields<'a> {
    values: [Option<&'a str>; Field::COUNT],
    /// `(N, line name, value)`, in reply order, at most [`MAX_REPLICAS`].
    replicas: Vec<(u64, &'a str, &'a str)>,
}

/// Splits the reply into the fields read, skipping section headers, blank lines, lines
/// without a colon and fields nobody reads. The first occurrence of a field wins. `None` when
/// the reply has no `field:value` line at all.
fn split_fields(text: &str) -> Option<Fields<'_>> {
    let mut fields = Fields {
        values: [None; Field::COUNT],
        replicas: Vec::new(),
    };
    let mut any = false;
    for line in text.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with('#') {
            continue;
        }
        // A byte loop: lines are short, and a colon is ASCII, so the split is on a boundary.
        let Some(colon) = line.bytes().position(|b| b == b':') else {
            continue;
        };
        let (key, value) = (&line[..colon], &line[colon + 1..]);
        if key.is_empty() {
            continue;
        }
        any = true;
        if let Some(field) = Field::from_name(key) {
            fields.values[field as usize].get_or_insert(value);
        } else if let Some(index) = key.strip_prefix("slave") {
            let is_index = !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit());
            if is_index
                && fields.replicas.len() < MAX_REPLICAS
                && !fields.replicas.iter().any(|(_, seen, _)| *seen == key)
            {
                let n = index.parse::<u64>().unwrap_or(u64::MAX);
                fields.replicas.push((n, key, value));
            }
        }
    }
    any.then_some(fields)
}

/// A value type an INFO field can hold.
trait FieldValue: Sized {
    const EXPECTED: &'static str;
    fn read(raw: &str) -> Option<Self>;
}

impl FieldValue for u64 {
    const EXPECTED: &'static str = "an unsigned integer";
    fn read(raw: &str) -> Option<Self> {
        raw.parse().ok()
    }
}

impl FieldValue for f64 {
    const EXPECTED: &'static str = "a finite number";
    fn read(raw: &str) -> Option<Self> {
        raw.parse::<f64>().ok().filter(|v| v.is_finite())
    }
}

impl FieldValue for bool {
    const EXPECTED: &'static str = "0 or 1";
    fn read(raw: &str) -> Option<Self> {
        match raw {
            "0" => Some(false),
            "1" => Some(true),
            _ => None,
        }
    }
}

impl FieldValue for OpStatus {
    const EXPECTED: &'static str = "`ok` or `err`";
    fn read(raw: &str) -> Option<Self> {
        match raw {
            "ok" => Some(OpStatus::Ok),
            "err" => Some(OpStatus::Err),
            _ => None,
        }
    }
}

struct Reader<'a> {
    fields: &'a Fields<'a>,
    errors: Vec<FieldError>,
}

impl Reader<'_> {
    fn raw(&self, field: Field) -> Option<&str> {
        self.fields.values[field as usize].map(str::trim)
    }

    fn get<T: FieldValue>(&mut self, field: Field) -> Option<T> {
        let value = T::read(self.raw(field)?);
        if value.is_none() {
            self.errors.push(FieldError {
                field: field.name().to_owned(),
                expected: T::EXPECTED,
            });
        }
        value
    }

    /// Free text, bounded so that a hostile server cannot make us keep megabytes per target.
    fn text(&mut self, field: Field) -> Option<String> {
        const MAX_TEXT: usize = 128;
        let raw = self.raw(field)?;
        if raw.is_empty() || raw.len() > MAX_TEXT || raw.chars().any(char::is_control) {
            self.errors.push(FieldError {
                field: field.name().to_owned(),
                expected: "short printable text",
            });
            return None;
        }
        Some(raw.to_owned())
    }

    /// Redis writes `-1` for "no such operation yet": that is absence, not a duration.
    fn duration(&mut self, field: Field) -> Option<u64> {
        if self.raw(field) == Some("-1") {
            return None;
        }
        self.get(field)
    }

    /// `slaveN:ip=…,port=…,state=…,offset=…,lag=…` lines, in N order.
    fn replicas(&mut self) -> Vec<Replica> {
        let mut replicas = Vec::with_capacity(self.fields.replicas.len());
        for &(index, key, value) in &self.fields.replicas {
            match parse_replica(value) {
                Some(replica) => replicas.push((index, replica)),
                None => self.errors.push(FieldError {
                    field: key.to_owned(),
                    expected: "ip=…,port=…,state=… replica attributes",
                }),
            }
        }
        replicas.sort_by_key(|(index, _)| *index);
        // The address is the series' `replica` label: a second line with the same address
        // would be a duplicate series, which Prometheus drops. The lowest index is kept (the
        // longest-connected link); an index label would renumber as replicas come and go.
        let mut seen = std::collections::BTreeSet::new();
        replicas
            .into_iter()
            .map(|(_, replica)| replica)
            .filter(|replica| seen.insert(replica.address.clone()))
            .collect()
    }
}

fn parse_replica(value: &str) -> Option<Replica> {
    let mut ip = None;
    let mut port = None;
    let mut state = None;
    let mut lag = None;
    let mut offset = None;
    for pair in value.split(',') {
        match pair.split_once('=') {
            Some(("ip", v)) => ip = Some(v),
            Some(("port", v)) => port = v.parse::<u16>().ok(),
            Some(("state", v)) => state = Some(v),
            Some(("lag", v)) => lag = v.parse::<u64>().ok(),
            Some(("offset", v)) => offset = v.parse::<u64>().ok(),
            _ => {}
        }
    }
    let (ip, port, state) = (ip?, port?, state?);
    if ip.len() > 64 || state.len() > 32 {
        return None;
    }
    Some(Replica {
        address: format!("{ip}:{port}"),
        state: state.to_owned(),
        lag_seconds: lag,
        offset,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reference(name: &str) -> String {
        let path = format!(
            "{}/tests/data/info/reference/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
    }

    /// The captured servers, as directories under `tests/data/info/`.
    pub(crate) const SERVERS: [&str; 4] = ["redis-6.2", "redis-7.0", "valkey-8.1", "valkey-9.1"];

    /// A reply captured by `scripts/measure-servers.py`, raw (CRLF kept).
    pub(crate) fn captured(server: &str, name: &str) -> String {
        let path = format!(
            "{}/tests/data/info/{server}/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
    }

    #[test]
    fn every_captured_reply_parses_without_field_errors() {
        for server in SERVERS {
            let dir = format!("{}/tests/data/info/{server}", env!("CARGO_MANIFEST_DIR"));
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let text = std::fs::read_to_string(&path).unwrap();
                assert!(text.contains("\r\n"), "{path:?} keeps CRLF");
                let info = parse(&text).unwrap();
                assert!(
                    info.field_errors.is_empty(),
                    "{path:?}: {:?}",
                    info.field_errors
                );
                assert_eq!(info, parse(&text.replace("\r\n", "\n")).unwrap());
            }
        }
    }

    #[test]
    fn server_and_real_version_on_each_server() {
        let cases = [
            ("redis-6.2", Server::Redis, "6.2.14", "6.2.14"),
            ("redis-7.0", Server::Redis, "7.0.15", "7.0.15"),
            ("valkey-8.1", Server::Valkey, "8.1.8", "7.2.4"),
            ("valkey-9.1", Server::Valkey, "9.1.2", "7.2.4"),
        ];
        for (dir, server, version, redis_version) in cases {
            let info = parse(&captured(dir, "healthy_aof_info_everything.txt")).unwrap();
            assert_eq!(info.server(), server, "{dir}");
            assert_eq!(info.server_version(), Some(version), "{dir}");
            assert_eq!(info.redis_version.as_deref(), Some(redis_version), "{dir}");
        }
    }

    #[test]
    fn persistence_only_reply_takes_the_server_from_a_full_one() {
        let mut full = parse(&captured("valkey-9.1", "healthy_aof_info_everything.txt")).unwrap();
        let mut partial = parse(&captured("valkey-9.1", "healthy_aof.txt")).unwrap();
        assert_eq!(
            partial.server(),
            Server::Redis,
            "no server section, nothing known"
        );
        partial.inherit_siblings(&mut full);
        assert_eq!(partial.server(), Server::Valkey);
        assert_eq!(partial.server_version(), Some("9.1.2"));
    }

    #[test]
    fn running_child_fields_on_each_server() {
        for server in SERVERS {
            let info = parse(&captured(server, "aof_rewrite_in_progress.txt")).unwrap();
            assert_eq!(info.aof_rewrite_in_progress, Some(true), "{server}");
            assert_eq!(
                info.aof_current_rewrite_duration_seconds,
                Some(0),
                "{server}"
            );
            assert_eq!(
                info.rdb_current_bgsave_duration_seconds, None,
                "{server}: -1"
            );
            assert_eq!(info.current_save_keys_total, Some(20000), "{server}");
            assert!(info.current_save_keys_processed.is_some(), "{server}");
            assert!(info.current_fork_perc.is_some(), "{server}");
            assert!(info.current_cow_size_bytes.is_some(), "{server}");
            // current_cow_peak came with Redis 7.0.
            assert_eq!(info.current_cow_peak_bytes.is_some(), server != "redis-6.2");
            let idle = parse(&captured(server, "healthy_aof.txt")).unwrap();
            assert_eq!(idle.aof_current_rewrite_duration_seconds, None, "{server}");
            assert_eq!(idle.aof_delayed_fsync, Some(0), "{server}");
            assert_eq!(idle.aof_pending_bio_fsync, Some(0), "{server}");
        }
    }

    #[test]
    fn healthy_aof_reply_reads_every_persistence_field() {
        let info = parse(&reference("aof_ok_before.txt")).unwrap();
        assert_eq!(info.aof_enabled, Some(true));
        assert_eq!(info.aof_last_bgrewrite_status, Some(OpStatus::Ok));
        assert_eq!(info.aof_last_write_status, Some(OpStatus::Ok));
        assert_eq!(info.aof_rewrite_in_progress, Some(false));
        assert!(info.aof_current_size_bytes.is_some());
        assert!(info.aof_base_size_bytes.is_some());
        assert_eq!(info.rdb_last_bgsave_status, Some(OpStatus::Ok));
        assert!(info.field_errors.is_empty(), "{:?}", info.field_errors);
    }

    #[test]
    fn killed_rewrite_reads_err() {
        let info = parse(&reference("aof_rewrite_killed_err.txt")).unwrap();
        assert_eq!(info.aof_last_bgrewrite_status, Some(OpStatus::Err));
        assert_eq!(info.aof_last_write_status, Some(OpStatus::Ok));
        let info = parse(&reference("aof_rewrite_killed_x3_err.txt")).unwrap();
        assert_eq!(info.aof_rewrites_consecutive_failures, Some(3));
        assert_eq!(info.aof_rewrites, Some(3));
    }

    #[test]
    fn in_progress_and_scheduled_are_read() {
        let info = parse(&reference("aof_rewrite_in_progress.txt")).unwrap();
        assert_eq!(info.aof_rewrite_in_progress, Some(true));
        let info = parse(&reference("aof_rewrite_scheduled.txt")).unwrap();
        assert_eq!(info.aof_rewrite_scheduled, Some(true));
    }

    #[test]
    fn disabled_aof_keeps_stale_status_and_drops_sizes() {
        let info = parse(&reference("aof_disabled_stale_err.txt")).unwrap();
        assert_eq!(info.aof_enabled, Some(false));
        assert_eq!(info.aof_last_bgrewrite_status, Some(OpStatus::Err));
        assert_eq!(info.aof_current_size_bytes, None);
        assert_eq!(info.aof_base_size_bytes, None);
    }

    #[test]
    fn disk_full_reads_write_err() {
        let info = parse(&reference("aof_diskfull_write_err.txt")).unwrap();
        assert_eq!(info.aof_last_write_status, Some(OpStatus::Err));
    }

    #[test]
    fn rdb_only_instance() {
        let info = parse(&reference("rdb_before_ok.txt")).unwrap();
        assert_eq!(info.aof_enabled, Some(false));
        assert_eq!(info.rdb_last_bgsave_status, Some(OpStatus::Ok));
        let info = parse(&reference("rdb_bgsave_killed_err.txt")).unwrap();
        assert_eq!(info.rdb_last_bgsave_status, Some(OpStatus::Err));
        assert_eq!(info.rdb_last_bgsave_duration_seconds, Some(0));
    }

    #[test]
    fn everything_reply_reads_sibling_sections() {
        let info = parse(&reference("healthy_aof_info_everything.txt")).unwrap();
        assert_eq!(info.redis_version.as_deref(), Some("7.0.15"));
        assert_eq!(info.role.as_deref(), Some("master"));
        assert_eq!(info.connected_replicas, Some(0));
        assert_eq!(info.maxmemory_bytes, Some(0));
        assert!(info.used_memory_bytes.is_some());
        assert!(info.mem_fragmentation_ratio.is_some());
        assert!(info.total_forks.is_some());
        assert!(info.uptime_seconds.is_some());
        assert!(info.field_errors.is_empty(), "{:?}", info.field_errors);
        parse(&reference("healthy_rdb_info_everything.txt")).unwrap();
    }

    #[test]
    fn every_reference_reply_parses_with_lf_too() {
        let dir = format!("{}/tests/data/info/reference", env!("CARGO_MANIFEST_DIR"));
        for entry in std::fs::read_dir(dir).unwrap() {
            let crlf = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            let lf = crlf.replace("\r\n", "\n");
            assert_eq!(parse(&crlf).unwrap(), parse(&lf).unwrap());
        }
    }

    #[test]
    fn persistence_only_reply_inherits_siblings() {
        let mut full = parse(&reference("healthy_aof_info_everything.txt")).unwrap();
        let used_memory = full.used_memory_bytes;
        let mut partial = parse(&reference("aof_rewrite_killed_err.txt")).unwrap();
        assert_eq!(partial.role, None);
        partial.inherit_siblings(&mut full);
        assert_eq!(partial.role.as_deref(), Some("master"));
        assert_eq!(partial.used_memory_bytes, used_memory);
        assert_eq!(
            partial.aof_last_bgrewrite_status,
            Some(OpStatus::Err),
            "own fields kept"
        );
    }

    #[test]
    fn missing_field_is_absent_not_zero() {
        let info = parse("# Persistence\r\naof_enabled:1\r\n").unwrap();
        assert_eq!(info.aof_enabled, Some(true));
        assert_eq!(info.aof_rewrites, None);
        assert_eq!(info.aof_current_size_bytes, None);
    }

    #[test]
    fn malformed_value_costs_only_its_field() {
        let info = parse("aof_enabled:1\naof_current_size:lots\naof_base_size:10\n").unwrap();
        assert_eq!(info.aof_current_size_bytes, None);
        assert_eq!(info.aof_base_size_bytes, Some(10));
        assert_eq!(info.aof_enabled, Some(true));
        assert_eq!(
            info.field_errors,
            vec![FieldError {
                field: "aof_current_size".into(),
                expected: "an unsigned integer"
            }]
        );
    }

    #[test]
    fn never_rewritten_duration_is_absent() {
        let info = parse("aof_last_rewrite_time_sec:-1\nrdb_last_bgsave_time_sec:-1\n").unwrap();
        assert_eq!(info.aof_last_rewrite_duration_seconds, None);
        assert_eq!(info.rdb_last_bgsave_duration_seconds, None);
        assert!(info.field_errors.is_empty());
    }

    #[test]
    fn a_replica_address_is_listed_once() {
        let text = "role:master\r\nconnected_slaves:3\r\n\
            slave1:ip=10.0.0.1,port=6379,state=wait_bgsave,offset=0,lag=7\r\n\
            slave0:ip=10.0.0.1,port=6379,state=online,offset=100,lag=0\r\n\
            slave2:ip=10.0.0.2,port=6379,state=online,offset=100,lag=0\r\n";
        let info = parse(text).unwrap();
        let addresses: Vec<_> = info.replicas.iter().map(|r| r.address.as_str()).collect();
        assert_eq!(addresses, ["10.0.0.1:6379", "10.0.0.2:6379"]);
        assert_eq!(info.replicas[0].state, "online");
    }

    #[test]
    fn replicas_are_read_in_order() {
        let text = "role:master\r\nconnected_slaves:2\r\n\
            slave1:ip=10.0.0.2,port=6380,state=wait_bgsave,offset=0,lag=7\r\n\
            slave0:ip=10.0.0.1,port=6379,state=online,offset=100,lag=0\r\n";
        let info = parse(text).unwrap();
        assert_eq!(info.replicas.len(), 2);
        assert_eq!(info.replicas[0].address, "10.0.0.1:6379");
        assert_eq!(info.replicas[0].state, "online");
        assert_eq!(info.replicas[1].lag_seconds, Some(7));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert_eq!(parse(""), Err(ParseError::NoFields));
        assert_eq!(parse("-ERR unknown command\r\n"), Err(ParseError::NoFields));
        assert_eq!(parse("\u{0}\u{1}\u{2}"), Err(ParseError::NoFields));
    }

    proptest! {
        #[test]
        fn never_panics_on_any_text(text in any::<String>()) {
            let _ = parse(&text);
        }

        #[test]
        fn never_panics_on_field_shaped_lines(
            lines in proptest::collection::vec(("[a-z_]{1,30}", "[ -~]{0,40}"), 0..40),
            crlf in any::<bool>(),
        ) {
            let eol = if crlf { "\r\n" } else { "\n" };
            let text: String = lines.iter().map(|(k, v)| format!("{k}:{v}{eol}")).collect();
            let _ = parse(&text);
        }

        #[test]
        fn any_unsigned_size_round_trips(size in any::<u64>()) {
            let info = parse(&format!("aof_current_size:{size}\r\n")).unwrap();
            prop_assert_eq!(info.aof_current_size_bytes, Some(size));
        }

        #[test]
        fn unknown_fields_do_not_disturb_known_ones(
            extra in proptest::collection::vec(("x[a-z_]{1,20}", "[ -~]{0,20}"), 0..20),
        ) {
            let mut text = String::from("aof_enabled:1\r\naof_last_bgrewrite_status:err\r\n");
            for (k, v) in &extra {
                text.push_str(&format!("{k}:{v}\r\n"));
            }
            let info = parse(&text).unwrap();
            prop_assert_eq!(info.aof_enabled, Some(true));
            prop_assert_eq!(info.aof_last_bgrewrite_status, Some(OpStatus::Err));
            prop_assert!(info.field_errors.is_empty());
        }
    }
}
