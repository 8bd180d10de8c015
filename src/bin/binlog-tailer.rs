//! The `binlog-tailer` command: parses the command line and the
//! configuration, sets up logging, and calls the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};

use binlog_tailer::checkpoint::{self, ReportFormat, Store};
use binlog_tailer::config::Config;
use binlog_tailer::pipeline::{self, Outcome, RunError};
use binlog_tailer::position::Target;
use service_kit::process;

/// jemalloc rather than the C library's allocator: every event allocates a
/// handful of short-lived buffers, and glibc's allocator spent about a fifth
/// of the tailer's CPU on them (perf of `make bench`'s drain); with jemalloc
/// the drain took about 2 µs less CPU per event, peak RSS a few MiB higher.
/// The crate's `unprefixed_malloc_on_supported_platforms` feature (Cargo.toml)
/// makes it the process's `malloc`/`free` too, so librdkafka's per-message
/// allocations (message, header list, headers) leave glibc as well: about
/// 2 µs less again, peak RSS the same (README, "Benchmarks").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Exit codes, as documented in `--help` and the README.
mod exit {
    /// Stopped on request, everything acknowledged and checkpointed; or a
    /// command that succeeded.
    pub const OK: u8 = 0;
    /// A definite error stopped the tailer (see the log for the position and
    /// the fix). The checkpoint holds the last fully acknowledged transaction.
    pub const ERROR: u8 = 1;
    /// Bad command line or configuration.
    pub const CONFIG: u8 = 2;
    /// A preflight check failed.
    pub const PREFLIGHT: u8 = 3;
    /// Stopped on request, but some events were not acknowledged before the
    /// drain deadline; they are published again on the next start.
    pub const UNACKNOWLEDGED: u8 = 4;
}

const AFTER_HELP: &str = "\
Configuration: a TOML file (--config, or BINLOG_TAILER_CONFIG), overridden by
environment variables BINLOG_TAILER__<SECTION>__<KEY> and by --set
section.key=value. The source password comes from the environment variable
named by source.password_env (default BINLOG_TAILER_SOURCE_PASSWORD) or from
source.password_file, never from the command line. Kafka over TLS and SASL:
kafka.tls (ca_file, cert_file, key_file) and kafka.sasl (mechanism PLAIN,
SCRAM-SHA-256 or SCRAM-SHA-512, username); the SASL password from the
environment variable named by kafka.sasl.password_env (default
BINLOG_TAILER_KAFKA_PASSWORD) or from kafka.sasl.password_file, likewise never
from the file or the command line. See config/example.toml.

Exit codes:
  0  stopped on request with everything acknowledged and checkpointed, or success
  1  a definite error stopped the tailer (the message names position and fix)
  2  bad command line or configuration
  3  a preflight check failed (`check` prints each one)
  4  stopped on request before every event was acknowledged (nothing is lost:
     those events are published again on the next start)";

/// Change-data-capture from MariaDB's row-based binlog to Kafka: every
/// committed insert into a tailed table becomes one acknowledged CloudEvents
/// event, and the binlog position is checkpointed only after the broker's
/// acknowledgement.
#[derive(Debug, Parser)]
#[command(name = "binlog-tailer", version, about, after_help = AFTER_HELP)]
struct Cli {
    /// The TOML configuration file.
    #[arg(
        long,
        short,
        global = true,
        env = "BINLOG_TAILER_CONFIG",
        value_name = "FILE"
    )]
    config: Option<PathBuf>,
    /// Override a configuration key, e.g. --set source.port=3306 (repeatable).
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "BINLOG_TAILER_LOG_FORMAT")]
    log_format: LogFormat,
    /// Log filter, e.g. info or binlog_tailer=debug (RUST_LOG syntax).
    #[arg(long, global = true, default_value = "info", env = "BINLOG_TAILER_LOG")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Stream committed inserts to Kafka until SIGINT/SIGTERM.
    ///
    /// Runs the preflight checks, resumes from the stored checkpoint (or
    /// start.from on the first start), publishes every inserted row of the
    /// tailed tables, and checkpoints after the broker acknowledges. On
    /// SIGINT/SIGTERM it finishes the transaction being read, waits for the
    /// acknowledgements (shutdown.drain_timeout), writes the checkpoint and
    /// exits 0.
    ///
    /// With start.from = "snapshot", a first start (no checkpoint yet) first
    /// publishes every row the tailed tables hold (as `snapshot` does, into
    /// the tables' topics), then streams from exactly the snapshot's binlog
    /// position: each order once, from the snapshot or from the stream.
    /// Stopped or killed midway, the next run resumes the snapshot.
    Run,
    /// Check the server settings, privileges, tables, broker and topics; exit
    /// 0 when all pass, 3 otherwise.
    ///
    /// Missing topics are created with kafka.create_topics = true: replication
    /// factor kafka.topic_replication_factor ("auto": the smaller of 3 and the
    /// brokers found) and min.insync.replicas kafka.topic_min_insync_replicas
    /// ("auto": 2 with 3 or more replicas). On a cluster of several brokers,
    /// an existing topic with replication factor 1 or min.insync.replicas=1
    /// gets a warning (the loss of one broker could lose acknowledged events).
    Check,
    /// Publish the events between two positions again, and exit.
    ///
    /// Events after --from, up to and including --to (default: the live
    /// checkpoint), are published with the same ids and payloads as the
    /// first time, marked with the header binlog.replay=1, to --topic if
    /// given (else to each table's topic). The live checkpoint is not
    /// touched, so a running tailer is not disturbed.
    ///
    /// TARGET is one of: #N (an entry of `checkpoint list`), a GTID state
    /// (0-1-42), file:offset (mariadb-bin.000003:1234), or an RFC 3339 time
    /// (2026-11-26T10:32:00Z: the newest stored checkpoint at or before it).
    Replay {
        /// Start after this point.
        #[arg(long, value_name = "TARGET")]
        from: Target,
        /// Stop after the transaction at this point (default: the live checkpoint).
        #[arg(long, value_name = "TARGET")]
        to: Option<Target>,
        /// Publish to this topic instead of the tables' topics.
        #[arg(long)]
        topic: Option<String>,
    },
    /// Publish every row the tailed tables hold now, and exit.
    ///
    /// Reads each table in primary-key order, in chunks of
    /// snapshot.chunk_rows, inside one consistent read view (START
    /// TRANSACTION WITH CONSISTENT SNAPSHOT; no table is locked) whose
    /// binlog position is logged. Every row becomes one event of its table's
    /// type, as its insert would, marked as a snapshot record: the header
    /// binlog.snapshot and the CloudEvents extension binlogsnapshot, with the
    /// id snapshot:<position>:<database.table>:<key>. Tables need a
    /// one-column integer primary key.
    ///
    /// The live checkpoint is not touched, so this can run beside `run` (a
    /// backfill for a new consumer). Its progress is kept under
    /// <checkpoint.dir>/snapshots/<topic>: stopped or killed, the same
    /// command resumes after the last acknowledged chunk, publishing each row
    /// once. To snapshot and then stream from exactly the snapshot's
    /// position, set start.from = "snapshot" for the first `run` instead.
    Snapshot {
        /// Publish to this topic instead of the tables' topics.
        #[arg(long)]
        topic: Option<String>,
        /// Only the rows matching this SQL condition (e.g. "created_at >= '2026-01-01'").
        #[arg(long = "where", value_name = "CONDITION")]
        filter: Option<String>,
    },
    /// Inspect or move the checkpoint store.
    Checkpoint {
        #[command(subcommand)]
        command: CheckpointCommand,
    },
}

#[derive(Debug, Subcommand)]
enum CheckpointCommand {
    /// Print the live checkpoint (where `run` resumes).
    Show {
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// List stored checkpoints, newest first, numbered for `set` and `replay`.
    List {
        /// How many, at most.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Move the live position (rewind or jump); the next `run` resumes there
    /// and publishes again what follows. Refused while a tailer runs on the
    /// same state directory.
    ///
    /// TARGET: #N (an entry of `checkpoint list`), a GTID state (0-1-42),
    /// file:offset, or an RFC 3339 time (the newest stored checkpoint at or
    /// before it).
    Set {
        #[arg(value_name = "TARGET")]
        target: Target,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OutputFormat {
    Text,
    Json,
}

impl From<OutputFormat> for ReportFormat {
    fn from(format: OutputFormat) -> Self {
        match format {
            OutputFormat::Text => ReportFormat::Text,
            OutputFormat::Json => ReportFormat::Json,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    process::init_logging(matches!(cli.log_format, LogFormat::Json), &cli.log);
    let config = match Config::load(cli.config.as_deref(), std::env::vars(), &cli.set) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("binlog-tailer: configuration: {e}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("binlog-tailer: cannot start the async runtime: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    ExitCode::from(runtime.block_on(async move {
        match cli.command {
            Command::Run => run(config).await,
            Command::Check => check(config).await,
            Command::Checkpoint {
                command: CheckpointCommand::Show { format },
            } => show_checkpoint(&config, format),
            Command::Checkpoint {
                command: CheckpointCommand::List { limit, format },
            } => list_checkpoints(&config, limit, format),
            Command::Checkpoint {
                command: CheckpointCommand::Set { target },
            } => match pipeline::set_checkpoint(&config, &target).await {
                Ok((cp, epoch)) => {
                    println!(
                        "live checkpoint set to {} (epoch {epoch}); the next run resumes there",
                        cp.position
                    );
                    exit::OK
                }
                Err(e) => {
                    eprintln!("binlog-tailer: {e}");
                    exit::ERROR
                }
            },
            Command::Replay { from, to, topic } => replay(config, from, to, topic).await,
            Command::Snapshot { topic, filter } => snapshot(config, topic, filter).await,
        }
    }))
}

async fn run(config: Config) -> u8 {
    exit_code(
        pipeline::run(
            Arc::new(config),
            process::shutdown_signal("finishing the current transaction, draining deliveries"),
        )
        .await,
    )
}

async fn replay(config: Config, from: Target, to: Option<Target>, topic: Option<String>) -> u8 {
    let result = pipeline::replay(
        Arc::new(config),
        &from,
        to.as_ref(),
        topic.as_deref(),
        process::shutdown_signal("finishing the current transaction, draining deliveries"),
    )
    .await;
    exit_code(result)
}

async fn snapshot(config: Config, topic: Option<String>, filter: Option<String>) -> u8 {
    let result = pipeline::snapshot(
        Arc::new(config),
        topic.as_deref(),
        filter.as_deref(),
        process::shutdown_signal("finishing the current chunk, draining deliveries"),
    )
    .await;
    exit_code(result)
}

fn exit_code(result: Result<Outcome, RunError>) -> u8 {
    match result {
        Ok(Outcome::Clean) => {
            tracing::info!("stopped cleanly");
            exit::OK
        }
        Ok(Outcome::Unacknowledged) => exit::UNACKNOWLEDGED,
        Err(e) => {
            tracing::error!("{e}");
            match e {
                RunError::Config(_) => exit::CONFIG,
                RunError::Preflight(_) => exit::PREFLIGHT,
                _ => exit::ERROR,
            }
        }
    }
}

async fn check(config: Config) -> u8 {
    match pipeline::check(&config).await {
        Ok(checks) => {
            let failed = checks.iter().filter(|c| c.outcome.is_err()).count();
            for check in &checks {
                println!("{check}");
            }
            let warned = checks.iter().filter(|c| c.warning.is_some()).count();
            if failed == 0 && warned == 0 {
                println!("all {} checks passed", checks.len());
                exit::OK
            } else if failed == 0 {
                println!(
                    "all {} checks passed, {warned} with a warning",
                    checks.len()
                );
                exit::OK
            } else {
                println!("{failed} of {} checks failed", checks.len());
                exit::PREFLIGHT
            }
        }
        Err(e) => {
            eprintln!("binlog-tailer: {e}");
            match e {
                RunError::Config(_) => exit::CONFIG,
                _ => exit::PREFLIGHT,
            }
        }
    }
}

fn list_checkpoints(config: &Config, limit: u32, format: OutputFormat) -> u8 {
    let store = match Store::open_existing(&config.checkpoint.dir) {
        Ok(Some(store)) => store,
        Ok(None) => {
            eprintln!("no checkpoint store in {}", config.checkpoint.dir.display());
            return exit::ERROR;
        }
        Err(e) => {
            eprintln!("binlog-tailer: {e}");
            return exit::ERROR;
        }
    };
    match store.history(limit) {
        Ok(entries) => {
            print!("{}", checkpoint::render_history(&entries, format.into()));
            exit::OK
        }
        Err(e) => {
            eprintln!("binlog-tailer: {e}");
            exit::ERROR
        }
    }
}

fn show_checkpoint(config: &Config, format: OutputFormat) -> u8 {
    let store = match Store::open_existing(&config.checkpoint.dir) {
        Ok(Some(store)) => store,
        Ok(None) => {
            eprintln!(
                "no checkpoint store in {}: the tailer has not run with this state directory yet",
                config.checkpoint.dir.display()
            );
            return exit::ERROR;
        }
        Err(e) => {
            eprintln!("binlog-tailer: {e}");
            return exit::ERROR;
        }
    };
    match store.current() {
        Ok(Some(cp)) => {
            print!("{}", checkpoint::render_show(&cp, format.into()));
            exit::OK
        }
        Ok(None) => {
            eprintln!(
                "the store {} holds no checkpoint yet",
                store.path().display()
            );
            exit::ERROR
        }
        Err(e) => {
            eprintln!("binlog-tailer: {e}");
            exit::ERROR
        }
    }
}
