//! The checkpoint writer: follows the sink's newest fully acknowledged
//! transaction end and saves it, at most every `checkpoint.interval` (when it
//! moved), and once more when the sink ends.
//!
//! It saves only what the sink reports as acknowledged, so the stored
//! position never passes an event the broker has not acknowledged.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};

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
/// and once more when the sink ends (the channel closes, or `sink_done`
/// resolves: the sink task ended or was dropped). `base_events` is the
/// store's event count when this run began. Returns the last checkpoint
/// written.
///
/// Within an interval after a write it sleeps rather than wake for every
/// acknowledged transaction (tens of thousands a second in a backlog).
///
/// # Errors
/// [`WriterError::Store`] when a checkpoint cannot be saved: the run stops,
/// and the store keeps the last one saved.
pub async fn write_checkpoints(
    store: Store,
    mut acked: watch::Receiver<Option<Acked>>,
    mut sink_done: oneshot::Receiver<()>,
    interval: Duration,
    base_events: u64,
    metrics: Arc<Metrics>,
) -> Result<Option<Checkpoint>, WriterError> {
    let store = Arc::new(Mutex::new(store));
    let mut last: Option<Checkpoint> = None;
    // When `last` was written, by the monotonic clock: a wall clock stepped
    // back must not hold checkpoints up until it catches up.
    let mut last_written: Option<Instant> = None;
    let mut sink_ended = false;
    loop {
        // Something to save (or the end)...
        let mut open = acked.changed().await.is_ok();
        // ...but not before the interval since the last write is over.
        if let Some(due) = last_written.map(|t| t + interval) {
            if open && !sink_ended && Instant::now() < due {
                tokio::select! {
                    () = tokio::time::sleep_until(due.into()) => {}
                    _ = &mut sink_done => sink_ended = true,
                }
            }
        }
        if sink_ended {
            // The last acknowledgement is in: save it and stop.
            open = false;
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
