//! Black-box tests of Redis Cluster and Sentinel discovery: real `redis-server` processes on
//! loopback, the real exporter binary, assertions on `/metrics`.
//!
//! Each test shows the healthy state first, then changes the topology (node added, failover,
//! node removed, node or Sentinel gone) and waits for the exporter to follow.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use support::{free_port, run_cli, samples, strings, wait_until, Exporter, TopologyNode as Server};

/// Discovery refreshes every second and targets are polled every 500 ms; topology changes
/// in Redis itself (gossip, failover) take a few seconds more.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(45);

/// `redis-cli --cluster <args>` with the cluster password.
fn cluster_tool(password: &str, args: &[&str]) -> String {
    let mut all = strings(&["--no-auth-warning", "-a", password, "--cluster"]);
    all.extend(strings(args));
    run_cli(&all)
}

/// Per target of `cluster`: its `role` label and `redis_up` value.
fn view(body: &str, cluster: &str) -> BTreeMap<String, (String, f64)> {
    samples(body, "redis_up", &[("cluster", cluster)])
        .into_iter()
        .map(|s| {
            (
                s.label("target").unwrap_or_default().to_owned(),
                (s.label("role").unwrap_or_default().to_owned(), s.value),
            )
        })
        .collect()
}

fn role_of(body: &str, cluster: &str, target: &str) -> Option<(String, f64)> {
    view(body, cluster).get(target).cloned()
}

/// Waits until every node's `CLUSTER NODES` lists `count` connected nodes, `replicas` of
/// them replicas, and the cluster state is ok. `redis-cli --cluster create` returns before
/// every node has heard which nodes became replicas.
fn wait_cluster_settled(nodes: &[&Server], count: usize, replicas: usize) {
    wait_until(CHANGE_TIMEOUT, "the cluster is settled", || {
        nodes.iter().all(|n| {
            let listing = n.cli(&["CLUSTER", "NODES"]);
            let lines: Vec<&str> = listing.lines().collect();
            lines.len() == count
                && lines
                    .iter()
                    .all(|l| l.contains(" connected") && !l.contains("handshake"))
                && lines.iter().filter(|l| l.contains("slave")).count() == replicas
                && n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok")
        })
    });
}

/// `(replica, its primary)` node IDs from one node's `CLUSTER NODES`.
fn replica_of(listing: &str, replica_id: &str) -> Option<String> {
    listing.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.first() == Some(&replica_id) && fields[2].contains("slave"))
            .then(|| fields[3].to_owned())
    })
}

#[test]
fn cluster_nodes_are_discovered_and_followed() {
    const PASSWORD: &str = "cluster-secret";
    let started = Instant::now();
    let nodes: Vec<Server> = (0..6).map(|_| Server::cluster_node(PASSWORD)).collect();
    let mut create = vec!["create".to_owned()];
    create.extend(nodes.iter().map(Server::address));
    create.extend(strings(&["--cluster-replicas", "1", "--cluster-yes"]));
    let create: Vec<&str> = create.iter().map(String::as_str).collect();
    let out = cluster_tool(PASSWORD, &create);
    assert!(out.contains("All 16384 slots covered"), "{out}");
    let refs: Vec<&Server> = nodes.iter().collect();
    wait_cluster_settled(&refs, 6, 3);

    // One seed, credentials from [cluster.defaults] for it and every node.
    let seed = &nodes[0];
    let config = format!(
        "poll_interval = \"500ms\"\npoll_timeout = \"400ms\"\n\
         [[cluster]]\nname = \"c1\"\nseeds = [\"{}\"]\nrefresh_interval = \"1s\"\n\
         [cluster.defaults]\npassword = \"{PASSWORD}\"\nlabels = {{ env = \"test\" }}\n",
        seed.address()
    );
    let exporter = Exporter::start(&config);
    let name = |node: &Server| format!("c1/{}", node.address());

    // Healthy: all six, three primaries and three replicas, all up.
    let count = |view: &BTreeMap<String, (String, f64)>, role: &str| {
        view.values().filter(|(r, _)| r == role).count()
    };
    let body = exporter.wait_for(CHANGE_TIMEOUT, "six cluster nodes up, 3 + 3", |body| {
        let view = view(body, "c1");
        view.len() == 6
            && view.values().all(|(_, up)| *up == 1.0)
            && count(&view, "primary") == 3
            && count(&view, "replica") == 3
    });
    let view_now = view(&body, "c1");
    for node in &nodes {
        assert!(view_now.contains_key(&name(node)), "{view_now:?}");
    }
    // Template labels ride along; the info series keeps the discovered role, once.
    assert_eq!(samples(&body, "redis_up", &[("env", "test")]).len(), 6);
    for info in samples(&body, "redis_instance_info", &[("cluster", "c1")]) {
        assert_eq!(info.labels.iter().filter(|(k, _)| k == "role").count(), 1);
    }
    assert!(!body.contains(PASSWORD));

    // A seventh node joins without slots: it is a primary target too.
    let newcomer = Server::cluster_node(PASSWORD);
    let out = cluster_tool(
        PASSWORD,
        &["add-node", &newcomer.address(), &seed.address()],
    );
    assert!(out.contains("New node added correctly"), "{out}");
    exporter.wait_for(CHANGE_TIMEOUT, "the added node is polled", |body| {
        role_of(body, "c1", &name(&newcomer)) == Some(("primary".into(), 1.0))
            && view(body, "c1").len() == 7
    });

    // Failover: a replica takes over from its primary (not the seed, which is killed last);
    // the labels follow.
    let seed_id = seed.cli(&["CLUSTER", "MYID"]);
    assert_eq!(view_now[&name(seed)].0, "primary");
    let (replica, primary_id) = nodes
        .iter()
        .filter(|n| view_now[&name(n)].0 == "replica")
        .find_map(|n| {
            let id = n.cli(&["CLUSTER", "MYID"]);
            let primary_id = replica_of(&n.cli(&["CLUSTER", "NODES"]), &id)?;
            (primary_id != seed_id).then_some((n, primary_id))
        })
        .expect("a replica of another primary than the seed");
    let primary = nodes
        .iter()
        .find(|n| n.cli(&["CLUSTER", "MYID"]) == primary_id)
        .expect("its primary");
    assert_eq!(replica.cli(&["CLUSTER", "FAILOVER"]), "OK");
    exporter.wait_for(CHANGE_TIMEOUT, "roles swap after the failover", |body| {
        role_of(body, "c1", &name(replica)) == Some(("primary".into(), 1.0))
            && role_of(body, "c1", &name(primary)) == Some(("replica".into(), 1.0))
    });

    // The slotless node is removed: its series go. `del-node` needs every node to know it.
    let mut everyone: Vec<&Server> = nodes.iter().collect();
    everyone.push(&newcomer);
    wait_cluster_settled(&everyone, 7, 3);
    let newcomer_id = newcomer.cli(&["CLUSTER", "MYID"]);
    let out = cluster_tool(PASSWORD, &["del-node", &seed.address(), &newcomer_id]);
    assert!(out.contains("CLUSTER RESET"), "{out}");
    exporter.wait_for(
        CHANGE_TIMEOUT,
        "the removed node's series are gone",
        |body| {
            !body.contains(&format!("target=\"{}\"", name(&newcomer)))
                && view(body, "c1").len() == 6
        },
    );

    // The only seed, a primary, dies: the cluster is still read through the nodes found
    // before, and the dead node stays a target that is down while its replica is promoted.
    let mut nodes = nodes;
    let seed_name = name(&nodes[0]);
    nodes[0].kill();
    let body = exporter.wait_for(CHANGE_TIMEOUT, "the dead seed shows down", |body| {
        role_of(body, "c1", &seed_name).is_some_and(|(_, up)| up == 0.0)
    });
    assert_eq!(view(&body, "c1").len(), 6, "{:?}", view(&body, "c1"));
    exporter.wait_for(
        CHANGE_TIMEOUT,
        "the dead primary's replica is promoted",
        |body| {
            view(body, "c1")
                .values()
                .filter(|(role, up)| role == "primary" && *up == 1.0)
                .count()
                == 3
        },
    );
    assert!(exporter.log().contains("discovered nodes changed"));
    eprintln!("cluster test took {:?}", started.elapsed());
}

#[test]
fn sentinel_primary_and_replica_are_discovered_and_follow_failover() {
    const NODE_PASSWORD: &str = "node-secret";
    const SENTINEL_PASSWORD: &str = "sentinel-secret";
    let started = Instant::now();
    let primary = Server::data_node(NODE_PASSWORD, None);
    let replica = Server::data_node(NODE_PASSWORD, Some(primary.port));
    wait_until(CHANGE_TIMEOUT, "the replica is in sync", || {
        replica
            .cli(&["INFO", "replication"])
            .contains("master_link_status:up")
    });
    let mut sentinel = Server::sentinel(primary.port, NODE_PASSWORD, SENTINEL_PASSWORD);
    // SENTINEL FAILOVER refuses (NOGOODSLAVE) until Sentinel has seen the replica in sync.
    wait_until(
        CHANGE_TIMEOUT,
        "the Sentinel knows the replica in sync",
        || {
            let listing = sentinel.cli(&["SENTINEL", "REPLICAS", "mymaster"]);
            listing.contains(&replica.port.to_string())
                && listing.contains("master-link-status\nok")
        },
    );

    // The first Sentinel listed is down: the next one is asked.
    let dead = free_port();
    let config = format!(
        "poll_interval = \"500ms\"\npoll_timeout = \"400ms\"\n\
         [[sentinel]]\nname = \"s1\"\nsentinels = [\"127.0.0.1:{dead}\", \"redis://{}\"]\n\
         masters = [\"mymaster\"]\nrefresh_interval = \"1s\"\n\
         [sentinel.defaults]\npassword = \"{NODE_PASSWORD}\"\n\
         [sentinel.sentinel_auth]\npassword = \"{SENTINEL_PASSWORD}\"\n",
        sentinel.address()
    );
    let exporter = Exporter::start(&config);
    let primary_name = format!("mymaster/{}", primary.address());
    let replica_name = format!("mymaster/{}", replica.address());

    let body = exporter.wait_for(CHANGE_TIMEOUT, "primary and replica discovered", |body| {
        role_of(body, "mymaster", &primary_name) == Some(("primary".into(), 1.0))
            && role_of(body, "mymaster", &replica_name) == Some(("replica".into(), 1.0))
    });
    assert_eq!(view(&body, "mymaster").len(), 2);
    assert!(!body.contains(NODE_PASSWORD) && !body.contains(SENTINEL_PASSWORD));

    // Failover: the roles swap.
    assert_eq!(sentinel.cli(&["SENTINEL", "FAILOVER", "mymaster"]), "OK");
    exporter.wait_for(CHANGE_TIMEOUT, "roles swap after the failover", |body| {
        role_of(body, "mymaster", &replica_name) == Some(("primary".into(), 1.0))
            && role_of(body, "mymaster", &primary_name) == Some(("replica".into(), 1.0))
    });

    // A reload with the same sources keeps the discovered pollers instead of dropping and
    // re-adding them while the first refresh runs.
    let reply = reqwest::blocking::Client::new()
        .post(format!("http://127.0.0.1:{}/-/reload", exporter.port()))
        .timeout(Duration::from_secs(10))
        .send()
        .and_then(|r| r.text())
        .expect("POST /-/reload");
    assert!(
        reply.contains("0 added, 0 removed, 0 changed, 2 unchanged"),
        "{reply}"
    );

    // No Sentinel answers: the nodes stay, and the failure is logged once, not per refresh.
    sentinel.kill();
    wait_until(CHANGE_TIMEOUT, "several refreshes have failed", || {
        exporter.log().matches("discovery still failing").count() >= 2
    });
    let log = exporter.log();
    assert_eq!(log.matches("discovery failed").count(), 1, "{log}");
    let body = exporter.scrape();
    assert_eq!(view(&body, "mymaster").len(), 2, "{body}");
    assert_eq!(
        role_of(&body, "mymaster", &replica_name),
        Some(("primary".into(), 1.0))
    );
    eprintln!("sentinel test took {:?}", started.elapsed());
}
