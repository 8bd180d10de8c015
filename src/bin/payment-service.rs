//! The `payment-service` command: parses the command line and the
//! configuration, sets up logging, and calls
//! [`payment_service::run`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};

use payment_service::{self as payment, Outcome, PaymentConfig, ServiceError};
use service_kit::process;

/// Exit codes, as documented in `--help`.
mod exit {
    /// Stopped on request; every processed message's offset committed.
    pub const OK: u8 = 0;
    /// A definite error stopped the service (a missing topic, a fatal Kafka
    /// client error, an address in use).
    pub const ERROR: u8 = 1;
    /// Bad command line or configuration.
    pub const CONFIG: u8 = 2;
    /// Stopped on request while a message waited for a retry (database
    /// down); it is processed on the next start.
    pub const INTERRUPTED: u8 = 4;
}

const AFTER_HELP: &str = "\
Configuration: a TOML file (--config, or PAYMENT_SERVICE_CONFIG), overridden by
environment variables PAYMENT_SERVICE__<SECTION>__<KEY> and by --set
section.key=value. The database password comes from the environment variable
named by database.password_env (default PAYMENT_SERVICE_DB_PASSWORD) or from
database.password_file, never from the command line. Kafka over TLS and SASL:
kafka.tls (ca_file, cert_file, key_file) and kafka.sasl (mechanism PLAIN,
SCRAM-SHA-256 or SCRAM-SHA-512, username); the SASL password from the
environment variable named by kafka.sasl.password_env (default
PAYMENT_SERVICE_KAFKA_PASSWORD) or from kafka.sasl.password_file, likewise
never from the file or the command line. See
config/payment-service.example.toml.

Exit codes:
  0  stopped on request, every processed message's offset committed
  1  a definite error stopped the service (missing topic, fatal Kafka error,
     refused Kafka login or TLS handshake, …)
  2  bad command line or configuration
  4  stopped on request while a message waited for a retry (database down);
     it is processed on the next start";

/// Consumes OrderCreated events from Kafka in a consumer group and records
/// one payment per order in its own MariaDB database, committing each offset
/// only after the database commit. Events it cannot process go to a
/// dead-letter topic, which must exist; on a cluster of several brokers it
/// warns at start-up when that topic or the consumed one has replication
/// factor 1 or min.insync.replicas=1. Serves GET /payments/{order_id},
/// /metrics, /healthz and /readyz.
#[derive(Debug, Parser)]
#[command(name = "payment-service", version, after_help = AFTER_HELP)]
struct Cli {
    /// The TOML configuration file.
    #[arg(long, short, env = "PAYMENT_SERVICE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Override a configuration key, e.g. --set database.port=3306 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "PAYMENT_SERVICE_LOG_FORMAT")]
    log_format: LogFormat,
    /// Log filter, e.g. info or payment_service=debug (RUST_LOG syntax).
    #[arg(long, default_value = "info", env = "PAYMENT_SERVICE_LOG")]
    log: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    process::init_logging(matches!(cli.log_format, LogFormat::Json), &cli.log);
    let config = match PaymentConfig::load(cli.config.as_deref(), std::env::vars(), &cli.set) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("payment-service: configuration: {e}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("payment-service: cannot start the async runtime: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    let code = runtime.block_on(async move {
        match payment::run(config, process::shutdown_signal("finishing the current message, committing its offset")).await {
            Ok(Outcome::Clean) => {
                tracing::info!("stopped cleanly");
                exit::OK
            }
            Ok(Outcome::Interrupted { at }) => {
                tracing::warn!(%at, "stopped before the message at {at} was processed; it is processed on the next start");
                exit::INTERRUPTED
            }
            Err(e) => {
                tracing::error!("{e}");
                match e {
                    ServiceError::Config(_) => exit::CONFIG,
                    _ => exit::ERROR,
                }
            }
        }
    });
    ExitCode::from(code)
}
