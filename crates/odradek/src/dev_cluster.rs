//! `odradek dev cluster`: a local multi-node cluster for trying things
//! out. Each node is a child `odradek serve` process in the combined
//! broker+controller role with its own data directory and ports; the
//! command prints the bootstrap address and stops the nodes on Ctrl-C.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use anyhow::Context;

pub struct DevCluster {
    pub nodes: u16,
    pub dir: PathBuf,
    pub host: String,
    /// Node n (1-based) serves clients on `base_port + 2(n-1)` and its
    /// controller on the port after.
    pub base_port: u16,
}

impl DevCluster {
    fn client_port(&self, node: u16) -> u16 {
        self.base_port + 2 * (node - 1)
    }

    fn controller_port(&self, node: u16) -> u16 {
        self.client_port(node) + 1
    }

    pub fn bootstrap(&self) -> String {
        (1..=self.nodes)
            .map(|n| format!("{}:{}", self.host, self.client_port(n)))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn voters(&self) -> String {
        (1..=self.nodes)
            .map(|n| format!("{n}@{}:{}", self.host, self.controller_port(n)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The overrides that start node `n`.
    pub fn node_args(&self, node: u16) -> Vec<String> {
        let data = self.dir.join(format!("node-{node}"));
        let rf = self.nodes.min(3);
        [
            format!("node.id={node}"),
            format!("controller.quorum.voters={}", self.voters()),
            format!(
                "listeners=PLAINTEXT://{h}:{c},CONTROLLER://{h}:{k}",
                h = self.host,
                c = self.client_port(node),
                k = self.controller_port(node)
            ),
            format!("log.dirs={}", data.display()),
            format!("default.replication.factor={rf}"),
            format!("offsets.topic.replication.factor={rf}"),
            format!("min.insync.replicas={}", if rf >= 3 { 2 } else { 1 }),
        ]
        .into_iter()
        .flat_map(|o| ["--override".to_string(), o])
        .collect()
    }

    pub fn run(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.nodes >= 1, "--nodes must be at least 1");
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let exe = std::env::current_exe().context("cannot locate the odradek binary")?;
        let mut children: Vec<Child> = Vec::new();
        for node in 1..=self.nodes {
            let child = Command::new(&exe)
                .arg("serve")
                .args(self.node_args(node))
                .stderr(log_file(&self.dir, node)?)
                .spawn()
                .with_context(|| format!("cannot start node {node}"))?;
            children.push(child);
        }
        // A node that cannot start (a port in use, a bad data directory)
        // exits at once: stop the others and say why, rather than leave a
        // cluster without a quorum.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while std::time::Instant::now() < deadline {
            for (i, child) in children.iter_mut().enumerate() {
                if let Ok(Some(status)) = child.try_wait() {
                    let node = i + 1;
                    let log = std::fs::read_to_string(self.dir.join(format!("node-{node}.log")))
                        .unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(5).collect();
                    for other in children.iter_mut() {
                        let _ = other.kill();
                        let _ = other.wait();
                    }
                    anyhow::bail!(
                        "node {node} exited ({status}) while starting:\n{}",
                        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                    );
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        println!("odradek dev cluster: {} nodes", self.nodes);
        println!("bootstrap.servers={}", self.bootstrap());
        println!("data and logs under {}", self.dir.display());
        println!("press Ctrl-C to stop");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(crate::wait_for_signal())?;
        for child in &children {
            // SIGTERM: each node moves its leaderships away and flushes.
            let _ = Command::new("kill").arg(child.id().to_string()).status();
        }
        for mut child in children {
            let _ = child.wait();
        }
        Ok(())
    }
}

fn log_file(dir: &Path, node: u16) -> anyhow::Result<std::fs::File> {
    let path = dir.join(format!("node-{node}.log"));
    std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_get_distinct_ports_and_the_same_voters() {
        let c = DevCluster {
            nodes: 3,
            dir: "d".into(),
            host: "127.0.0.1".into(),
            base_port: 9092,
        };
        assert_eq!(
            c.bootstrap(),
            "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096"
        );
        let args = c.node_args(2).join(" ");
        assert!(args.contains("node.id=2"), "{args}");
        assert!(args.contains("PLAINTEXT://127.0.0.1:9094,CONTROLLER://127.0.0.1:9095"));
        assert!(args.contains("1@127.0.0.1:9093,2@127.0.0.1:9095,3@127.0.0.1:9097"));
    }
}
