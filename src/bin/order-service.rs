//! The `order-service` command: takes orders over HTTP and writes them to
//! its own MariaDB database (see the `order_service` crate).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use order_service::{self as order, OrderConfig};
use service_kit::process;

/// Order service: POST /orders validates an order and stores it in MariaDB;
/// GET /orders/{id} reads it back. It publishes nothing itself: binlog-tailer
/// turns each committed order into an OrderCreated event.
///
/// The database password comes from the environment variable named by
/// database.password_env (default ORDER_SERVICE_DB_PASSWORD) or from
/// database.password_file. Overrides: ORDER_SERVICE__<SECTION>__<KEY> or
/// --set section.key=value. Exit codes: 0 stopped on request, 1 error,
/// 2 bad configuration.
#[derive(Debug, Parser)]
#[command(name = "order-service", version, about)]
struct Cli {
    /// The TOML configuration file (see config/order-service.example.toml).
    #[arg(long, short, env = "ORDER_SERVICE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Override a configuration key (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Log filter (RUST_LOG syntax).
    #[arg(long, default_value = "info", env = "ORDER_SERVICE_LOG")]
    log: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    process::init_logging(false, &cli.log);
    let config = match OrderConfig::load(cli.config.as_deref(), std::env::vars(), &cli.set) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("order-service: configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("order-service: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        let stop_rx = process::shutdown_signal("finishing requests in progress");
        match order::run(config, stop_rx).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e:#}");
                ExitCode::from(1)
            }
        }
    })
}
