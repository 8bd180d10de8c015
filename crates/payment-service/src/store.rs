//! The payments database: one row per charged order, in
//! `<database.database>.payments` (`schemas/payments.sql`).
//!
//! # Contract
//! [`Store::charge`] inserts the payment row (order id, event id, amount,
//! currency) in one transaction and commits it. The table's two unique keys
//! make the insert the deduplication: a second event for the same order, or
//! the same event delivered again, fails with `ER_DUP_ENTRY` and is reported
//! as [`Recorded::Duplicate`], with nothing charged. Because the row *is* the
//! record of the event id, a commit whose answer was lost (connection cut
//! during `COMMIT`) is harmless: the retry finds the row.
//!
//! The amount travels as text into the `DECIMAL(12,2)` column and comes back
//! as text (`CAST(amount AS CHAR)`); it never passes through a float. Every
//! connection runs with `time_zone = '+00:00'` (so `charged_at` is UTC) and
//! strict SQL mode (so a value that does not fit is an error, never a
//! silently truncated payment).
//!
//! # Errors
//! [`DbError::is_transient`] sorts failures: a value the table refuses
//! ([`DbError::Rejected`]) is definite for that event; everything else
//! (connection refused or lost, timeouts, lock waits, even missing
//! privileges, which an operator can fix) is transient and retried by the
//! caller without moving past the event.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Pool, PoolConstraints, PoolOpts, Row, TxOpts};
use serde::Serialize;

use super::config::DatabaseConfig;
use super::event::Charge;

/// MariaDB server error codes the store tells apart
/// (<https://mariadb.com/kb/en/mariadb-error-code-reference/>).
pub mod er {
    /// `ER_DUP_ENTRY`: a unique key already holds the value.
    pub const DUP_ENTRY: u16 = 1062;
    /// `ER_BAD_NULL_ERROR`.
    pub const BAD_NULL: u16 = 1048;
    /// `ER_WARN_DATA_OUT_OF_RANGE`.
    pub const DATA_OUT_OF_RANGE: u16 = 1264;
    /// `WARN_DATA_TRUNCATED`.
    pub const DATA_TRUNCATED: u16 = 1265;
    /// `ER_TRUNCATED_WRONG_VALUE`.
    pub const TRUNCATED_WRONG_VALUE: u16 = 1292;
    /// `ER_TRUNCATED_WRONG_VALUE_FOR_FIELD`.
    pub const WRONG_VALUE_FOR_FIELD: u16 = 1366;
    /// `ER_DATA_TOO_LONG`.
    pub const DATA_TOO_LONG: u16 = 1406;

    /// Errors caused by the values of the row itself: retrying cannot help.
    pub const ROW_REJECTED: [u16; 6] = [
        BAD_NULL,
        DATA_OUT_OF_RANGE,
        DATA_TRUNCATED,
        TRUNCATED_WRONG_VALUE,
        WRONG_VALUE_FOR_FIELD,
        DATA_TOO_LONG,
    ];
}

const INSERT: &str =
    "INSERT INTO payments (order_id, event_id, amount, currency) VALUES (?, ?, ?, ?)";
const SELECT_COLUMNS: &str = "SELECT order_id, event_id, CAST(amount AS CHAR), currency, \
     DATE_FORMAT(charged_at, '%Y-%m-%dT%H:%i:%s.%fZ') FROM payments";

/// A recorded payment, as `GET /payments/{order_id}` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Payment {
    pub order_id: u64,
    pub event_id: String,
    /// Exact decimal text (`"250.00"`).
    pub amount: String,
    pub currency: String,
    /// RFC 3339, UTC, microseconds.
    pub charged_at: String,
}

/// What a charge did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// The row is in and committed.
    Charged,
    /// The order or the event id already has its row; nothing was charged.
    /// `existing` is that row (when it could be read).
    Duplicate { existing: Option<Payment> },
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("the payments table refused the row (error {code}): {message}")]
    Rejected { code: u16, message: String },
    #[error("database error: {0}")]
    Unavailable(#[from] mysql_async::Error),
    #[error("no answer from the database within {0:?}")]
    Timeout(Duration),
    /// The `COMMIT` was sent but its answer lost: the row may be in.
    #[error("the commit's outcome is unknown: {0}")]
    CommitUnknown(String),
    #[error("unexpected row from the payments table: {0}")]
    BadRow(String),
}

impl DbError {
    /// Whether trying again later can succeed.
    pub fn is_transient(&self) -> bool {
        !matches!(self, DbError::Rejected { .. })
    }
}

fn classify(e: mysql_async::Error) -> DbError {
    match e {
        mysql_async::Error::Server(s) if er::ROW_REJECTED.contains(&s.code) => DbError::Rejected {
            code: s.code,
            message: s.message,
        },
        other => DbError::Unavailable(other),
    }
}

/// The connection pool and the queries.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    timeout: Duration,
}

impl Store {
    /// A pool for `config` (connections are made on first use, so a database
    /// that is down at start-up delays nothing but the first charge).
    pub fn new(config: &DatabaseConfig, password: &str) -> Store {
        let constraints = PoolConstraints::new(1, config.max_connections.max(1))
            .unwrap_or_else(|| unreachable!("1 <= max_connections, checked by the config"));
        let opts = OptsBuilder::default()
            .ip_or_hostname(config.host.clone())
            .tcp_port(config.port)
            .user(Some(config.user.clone()))
            .pass(Some(password.to_owned()))
            .db_name(Some(config.database.clone()))
            .prefer_socket(false)
            .setup(vec![
                "SET time_zone = '+00:00'",
                "SET sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'",
            ])
            .pool_opts(
                PoolOpts::default()
                    .with_constraints(constraints)
                    .with_reset_connection(false),
            );
        Store {
            pool: Pool::new(opts),
            timeout: config.timeout,
        }
    }

    async fn bounded<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, DbError>>,
    ) -> Result<T, DbError> {
        tokio::time::timeout(self.timeout, work)
            .await
            .unwrap_or(Err(DbError::Timeout(self.timeout)))
    }

    /// Records the payment of `charge` in one transaction.
    ///
    /// # Errors
    /// [`DbError`]. Only [`DbError::CommitUnknown`] leaves the outcome open
    /// (the `COMMIT` was sent and no answer came); trying again is safe: it
    /// then answers [`Recorded::Duplicate`] with this event's row if the
    /// commit went through.
    pub async fn charge(&self, charge: &Charge) -> Result<Recorded, DbError> {
        let mut commit_sent = false;
        let result = tokio::time::timeout(self.timeout, async {
            let mut conn = self.pool.get_conn().await?;
            let mut tx = conn.start_transaction(TxOpts::default()).await?;
            let inserted = tx
                .exec_drop(
                    INSERT,
                    (
                        charge.order_id,
                        charge.event_id.as_str(),
                        charge.amount.as_str(),
                        charge.currency.as_str(),
                    ),
                )
                .await;
            match inserted {
                Ok(()) => {
                    commit_sent = true;
                    tx.commit()
                        .await
                        .map_err(|e| DbError::CommitUnknown(e.to_string()))?;
                    Ok(Recorded::Charged)
                }
                Err(mysql_async::Error::Server(e)) if e.code == er::DUP_ENTRY => {
                    tx.rollback().await?;
                    let existing = find_existing(&mut conn, charge).await?;
                    Ok(Recorded::Duplicate { existing })
                }
                Err(e) => Err(classify(e)),
            }
        })
        .await;
        match result {
            Ok(r) => r,
            Err(_) if commit_sent => Err(DbError::CommitUnknown(format!(
                "no answer to COMMIT within {:?}",
                self.timeout
            ))),
            Err(_) => Err(DbError::Timeout(self.timeout)),
        }
    }

    /// The payment of `order_id`, if any.
    ///
    /// # Errors
    /// [`DbError`] when the database cannot answer.
    pub async fn find(&self, order_id: u64) -> Result<Option<Payment>, DbError> {
        self.bounded(async {
            let mut conn = self.pool.get_conn().await?;
            let row: Option<Row> = conn
                .exec_first(format!("{SELECT_COLUMNS} WHERE order_id = ?"), (order_id,))
                .await?;
            row.map(payment_from_row).transpose()
        })
        .await
    }

    /// Whether the database answers (for `/readyz`).
    ///
    /// # Errors
    /// [`DbError`] when it does not.
    pub async fn ping(&self) -> Result<(), DbError> {
        self.bounded(async {
            let mut conn = self.pool.get_conn().await?;
            conn.ping().await?;
            Ok(())
        })
        .await
    }

    /// Closes the pool's connections.
    pub async fn close(self) {
        let _ = tokio::time::timeout(self.timeout, self.pool.disconnect()).await;
    }
}

/// The row holding `charge`'s order or event id.
async fn find_existing(conn: &mut Conn, charge: &Charge) -> Result<Option<Payment>, DbError> {
    let row: Option<Row> = conn
        .exec_first(
            format!("{SELECT_COLUMNS} WHERE order_id = ? OR event_id = ? ORDER BY id LIMIT 1"),
            (charge.order_id, charge.event_id.as_str()),
        )
        .await?;
    row.map(payment_from_row).transpose()
}

fn payment_from_row(row: Row) -> Result<Payment, DbError> {
    fn column<T: mysql_async::prelude::FromValue>(row: &Row, i: usize) -> Result<T, DbError> {
        match row.get_opt::<T, usize>(i) {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => Err(DbError::BadRow(format!("column {i}: {e}"))),
            None => Err(DbError::BadRow(format!("column {i} is missing"))),
        }
    }
    Ok(Payment {
        order_id: column(&row, 0)?,
        event_id: column(&row, 1)?,
        amount: column(&row, 2)?,
        currency: column(&row, 3)?,
        charged_at: column(&row, 4)?,
    })
}
