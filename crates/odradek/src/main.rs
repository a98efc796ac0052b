//! `odradek`: the broker binary.

mod dev_cluster;
mod groups;

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use odradek_broker::config::{parse_properties, settings_from_env, BrokerConfig, Source};

#[derive(Parser)]
#[command(
    name = "odradek",
    version,
    about = "Kafka-compatible event streaming broker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker. With no options: a single node on 127.0.0.1:9092 with
    /// data under ./odradek-data.
    Serve {
        /// A Kafka-style properties file (name=value lines).
        #[arg(long, value_name = "FILE")]
        config: Option<String>,
        /// Set one config, overriding the file and environment, as
        /// kafka-server-start.sh's --override does. Repeatable.
        #[arg(long = "override", value_name = "NAME=VALUE")]
        overrides: Vec<String>,
    },
    /// Tools for trying Odradek locally.
    Dev {
        #[command(subcommand)]
        command: DevCommand,
    },
    /// Consumer groups, as kafka-consumer-groups.sh sees them.
    Groups {
        #[command(subcommand)]
        command: GroupsCommand,
    },
}

#[derive(Subcommand)]
enum GroupsCommand {
    /// Per-partition committed offset, log-end offset (high watermark) and
    /// lag of one consumer group, with the member owning each partition.
    Describe {
        /// Any broker of the cluster, or a comma-separated list of them.
        #[arg(long, value_name = "HOST:PORT")]
        bootstrap_server: String,
        /// The consumer group id.
        #[arg(long, value_name = "GROUP")]
        group: String,
        /// Print one JSON array of rows instead of the table.
        #[arg(long)]
        json: bool,
        /// Give up (or leave unknown log-end offsets as "-") after this
        /// many milliseconds.
        #[arg(long, value_name = "MS", default_value_t = 10_000)]
        timeout: u64,
    },
}

#[derive(Subcommand)]
enum DevCommand {
    /// Start a local cluster of combined broker+controller nodes as child
    /// processes and print its bootstrap address.
    Cluster {
        #[arg(long, default_value_t = 3)]
        nodes: u16,
        /// Node n listens for clients on base-port + 2(n-1) and for its
        /// controller quorum on the port after.
        #[arg(long, default_value_t = 9092)]
        base_port: u16,
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Data directories and logs of every node.
        #[arg(long, default_value = "./odradek-dev-cluster")]
        dir: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ODRADEK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn")),
        )
        .init();
    let result = match cli.command {
        Command::Serve { config, overrides } => serve(config, overrides),
        Command::Dev {
            command:
                DevCommand::Cluster {
                    nodes,
                    base_port,
                    host,
                    dir,
                },
        } => dev_cluster::DevCluster {
            nodes,
            dir: dir.into(),
            host,
            base_port,
        }
        .run(),
        Command::Groups {
            command:
                GroupsCommand::Describe {
                    bootstrap_server,
                    group,
                    json,
                    timeout,
                },
        } => groups::Describe {
            bootstrap_server,
            group,
            json,
            timeout_ms: timeout,
        }
        .run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(file: Option<String>, overrides: Vec<String>) -> anyhow::Result<BrokerConfig> {
    let mut settings = Vec::new();
    if let Some(path) = file {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read config file {path}"))?;
        settings.extend(
            parse_properties(&path, &text)?
                .into_iter()
                .map(|(k, v)| (k, v, Source::File)),
        );
    }
    settings.extend(
        settings_from_env(std::env::vars())
            .into_iter()
            .map(|(k, v)| (k, v, Source::Env)),
    );
    for o in overrides {
        let (k, v) = o
            .split_once('=')
            .with_context(|| format!("--override '{o}' is not name=value"))?;
        settings.push((k.trim().to_string(), v.to_string(), Source::Override));
    }
    Ok(BrokerConfig::from_settings(settings)?)
}

fn serve(file: Option<String>, overrides: Vec<String>) -> anyhow::Result<()> {
    let config = load_config(file, overrides)?;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if config.num_io_threads > 0 {
        runtime.worker_threads(config.num_io_threads);
    }
    let runtime = runtime
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let running = odradek_broker::start(config).await?;
        wait_for_signal().await?;
        tracing::info!("signal received; shutting down");
        running.shutdown().await;
        anyhow::Ok(())
    })
}

/// SIGTERM (kill, systemd, Kubernetes) or SIGINT (Ctrl-C).
async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => r?,
    }
    Ok(())
}
