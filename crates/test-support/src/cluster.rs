//! The three-node Kafka cluster of `tests/env/kafka-cluster.sh`, started by
//! a test for itself (state in `target/kafka-cluster-tests/`, removed when
//! dropped) and faulted node by node through the same script, so that every
//! process is started and stopped by its PID file.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// A running cluster; `down` and its data deleted when dropped.
pub struct Cluster {
    state: PathBuf,
    bootstrap: String,
    /// How long `up` took.
    pub started_in: Duration,
}

/// One partition as the cluster's metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    pub partition: i32,
    /// The leader's node id, -1 while there is none.
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

impl Cluster {
    /// Starts a fresh cluster (any data a failed earlier run left is
    /// deleted first) and waits until every node answers.
    pub fn up() -> Cluster {
        let state = crate::repo_root().join("target/kafka-cluster-tests");
        let mut cluster = Cluster {
            state,
            bootstrap: String::new(),
            started_in: Duration::ZERO,
        };
        cluster.script(&["clean"]);
        let started = Instant::now();
        cluster.script(&["up"]);
        cluster.started_in = started.elapsed();
        cluster.bootstrap = cluster.script(&["bootstrap"]).trim().to_owned();
        cluster
    }

    /// Runs `tests/env/kafka-cluster.sh ARGS` on this cluster's state; its
    /// standard output. Fails the test, with the script's errors, if it fails.
    fn script(&self, args: &[&str]) -> String {
        let out = Command::new("bash")
            .arg(crate::repo_root().join("tests/env/kafka-cluster.sh"))
            .args(args)
            .env("BT_CLUSTER_STATE_DIR", &self.state)
            .current_dir(crate::repo_root())
            .output()
            .expect("run tests/env/kafka-cluster.sh");
        assert!(
            out.status.success(),
            "tests/env/kafka-cluster.sh {} failed ({}):\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `bootstrap.servers` of the three nodes.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// SIGKILL to node `n`, waiting until it is gone.
    pub fn kill(&self, n: i32) {
        self.script(&["kill", &n.to_string()]);
    }

    /// SIGSTOP to node `n`: it keeps its sockets and answers nothing.
    pub fn pause(&self, n: i32) {
        self.script(&["pause", &n.to_string()]);
    }

    /// SIGCONT to node `n`.
    pub fn resume(&self, n: i32) {
        self.script(&["resume", &n.to_string()]);
    }

    /// Starts node `n` again; returns how long until it answered.
    pub fn start(&self, n: i32) -> Duration {
        let started = Instant::now();
        self.script(&["start", &n.to_string()]);
        started.elapsed()
    }

    /// The node id of the active controller (the metadata quorum's leader).
    pub fn controller(&self) -> i32 {
        let out = self.script(&["controller"]);
        out.trim()
            .parse()
            .unwrap_or_else(|_| panic!("controller: not a node id: {out:?}"))
    }

    fn admin(&self) -> AdminClient<DefaultClientContext> {
        ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()
            .expect("admin client")
    }

    /// Creates `name` with replication factor 3, `min.insync.replicas` 2.
    pub async fn create_topic(&self, name: &str, partitions: i32) {
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(3))
            .set("min.insync.replicas", "2");
        self.create(topic).await;
    }

    /// Creates `name` with the given replication and settings.
    pub async fn create_topic_with(
        &self,
        name: &str,
        partitions: i32,
        replication: i32,
        settings: &[(&str, &str)],
    ) {
        let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(replication));
        for (key, value) in settings {
            topic = topic.set(key, value);
        }
        self.create(topic).await;
    }

    async fn create(&self, topic: NewTopic<'_>) {
        let results = self
            .admin()
            .create_topics(
                &[topic],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
            )
            .await
            .expect("create topic");
        for r in results {
            r.unwrap_or_else(|(t, e)| panic!("creating topic {t}: {e}"));
        }
    }

    /// A topic setting as the brokers report it.
    pub async fn topic_setting(&self, topic: &str, key: &str) -> Option<String> {
        let resource = ResourceSpecifier::Topic(topic);
        let results = self
            .admin()
            .describe_configs(
                [&resource],
                &AdminOptions::new().request_timeout(Some(Duration::from_secs(20))),
            )
            .await
            .expect("describe configs");
        let config = results
            .into_iter()
            .next()
            .expect("an answer")
            .expect("topic config");
        config.get(key).and_then(|e| e.value.clone())
    }

    /// Every partition of `topic`: leader, replicas, in-sync replicas.
    pub fn partitions(&self, topic: &str) -> Vec<PartitionState> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()
            .expect("consumer");
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(20))
            .expect("metadata");
        metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic)
            .flat_map(|t| t.partitions())
            .map(|p| PartitionState {
                partition: p.id(),
                leader: p.leader(),
                replicas: p.replicas().to_vec(),
                isr: p.isr().to_vec(),
            })
            .collect()
    }

    /// The leader of `topic`'s `partition` (-1: none).
    pub fn leader(&self, topic: &str, partition: i32) -> i32 {
        self.partitions(topic)
            .iter()
            .find(|p| p.partition == partition)
            .map_or(-1, |p| p.leader)
    }

    /// Waits until every partition of each of `topics` has a leader and all
    /// its replicas in sync (a restarted node has caught up); how long.
    pub fn wait_fully_in_sync(&self, topics: &[&str], timeout: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let states: Vec<PartitionState> =
                topics.iter().flat_map(|t| self.partitions(t)).collect();
            if !states.is_empty()
                && states
                    .iter()
                    .all(|p| p.leader >= 0 && p.isr.len() == p.replicas.len())
            {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < timeout,
                "partitions of {topics:?} not fully in sync within {timeout:?}: {states:?}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let out = Command::new("bash")
            .arg(crate::repo_root().join("tests/env/kafka-cluster.sh"))
            .arg("clean")
            .env("BT_CLUSTER_STATE_DIR", &self.state)
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!(
                "stopping the cluster failed:\n{}",
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => eprintln!("stopping the cluster: {e}"),
        }
    }
}
