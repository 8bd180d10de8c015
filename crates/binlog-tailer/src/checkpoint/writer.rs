//! The checkpoint writer: follows the sink's newest fully acknowledged
//! transaction end and saves it, at most every `checkpoint.interval` (when it
//! moved), and once more when the sink ends.
//!
//! It saves only what the sink reports as acknowledged, so the stored
//! position never passes an event the broker has not acknowledged.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::store::{now_ms, Checkpoint, Store, StoreError};
use crate::handoff::Acked;
use crate::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Saves the newest acknowledged position every `interval` (when it moved),
/// and once more when the sink ends (the channel closes). `base_events` is
/// the store's event count when this run began. Returns the last checkpoint
/// written.
///
/// # Errors
/// [`WriterError::Store`] when a checkpoint cannot be saved: the run stops,
/// and the store keeps the last one saved.
pub async fn write_checkpoints(
    store: Store,
    mut acked: watch::Receiver<Option<Acked>>,
    interval: Duration,
    base_events: u64,
    metrics: Arc<Metrics>,
) -> Result<Option<Checkpoint>, WriterError> {
    let store = Arc::new(Mutex::new(store));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<Checkpoint> = None;
    // When `last` was written, by the monotonic clock: a wall clock stepped
    // back must not hold checkpoints up until it catches up.
    let mut last_written: Option<Instant> = None;
    loop {
        let open = tokio::select! {
            _ = ticker.tick() => true,
            changed = acked.changed() => changed.is_ok(),
        };
        if open && last_written.is_some_and(|t| t.elapsed() < interval) {
            continue;
        }
        let current = acked.borrow_and_update().clone();
        if let Some(acked) = current {
            // The count moves on also while the position is held before a
            // pending XA transaction.
            let unchanged = last.as_ref().is_some_and(|l| {
                &l.position == acked.commit.checkpoint_position()
                    && l.events_published == base_events + acked.records
            });
            if !unchanged {
                let cp = Checkpoint {
                    position: acked.commit.checkpoint_position().clone(),
                    source_server_id: acked.commit.server_id,
                    commit_time: Some(i64::from(acked.commit.commit_time)),
                    written_at_ms: now_ms(),
                    events_published: base_events + acked.records,
                };
                let store = Arc::clone(&store);
                let to_save = cp.clone();
                tokio::task::spawn_blocking(move || {
                    store
                        .lock()
                        .map_err(|_| {
                            WriterError::Internal("checkpoint store lock poisoned".into())
                        })?
                        .save(&to_save)
                        .map_err(WriterError::Store)
                })
                .await
                .map_err(|e| WriterError::Internal(format!("checkpoint write: {e}")))??;
                metrics.checkpoint_position(cp.written_at_ms, &cp.position);
                last = Some(cp);
                last_written = Some(Instant::now());
            }
        }
        if !open {
            return Ok(last);
        }
    }
}
