use clap::Parser;

/// Change-data-capture from MariaDB's row-based binlog to Kafka.
#[derive(Debug, Parser)]
#[command(name = "binlog-tailer", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
