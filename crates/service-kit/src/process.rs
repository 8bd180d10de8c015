//! Logging set-up and turning SIGINT/SIGTERM into a shutdown signal.

use std::io::IsTerminal;

use tokio::sync::watch;

/// Logs to stderr through `tracing`: human-readable (colours only on a
/// terminal) or JSON, filtered by `filter` (RUST_LOG syntax; `info` if it
/// does not parse).
pub fn init_logging(json: bool, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// A receiver that turns true on the first SIGINT or SIGTERM; `what` is
/// logged then (what the process does next). Call inside a tokio runtime.
pub fn shutdown_signal(what: &'static str) -> watch::Receiver<bool> {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested: {what}");
        let _ = stop_tx.send(true);
    });
    stop_rx
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
