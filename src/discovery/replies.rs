//! Pure parsers of the replies discovery reads: `CLUSTER NODES`, `SENTINEL MASTERS` and
//! `SENTINEL REPLICAS`, and the members they describe. Unit-tested on text captured from real
//! servers.

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
pub(super) mod tests {
    use super::*;

    /// `CLUSTER NODES` from 127.0.0.1:17000 of a 3+3 cluster made by
    /// `redis-cli --cluster create … --cluster-replicas 1` (Redis 7.0.15).
    pub(in crate::discovery) const HEALTHY: &str = "\
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
}
