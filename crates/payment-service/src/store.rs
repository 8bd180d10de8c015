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
//! [`Store::charge_batch`] does the same for many charges in one
//! transaction: it looks up the rows already holding their orders or event
//! ids, judges each charge in order exactly as [`Store::charge`] would one
//! after the other ([`plan`]: a charge whose order or event id is taken, by
//! an older row or by an earlier charge of the batch, is a duplicate and
//! inserts nothing), inserts the rest and commits. The look-up takes no
//! locks: should another writer take one of the keys between the look-up
//! and the insert, the insert fails with `ER_DUP_ENTRY`, the transaction is
//! rolled back and the caller is told to charge the batch one at a time
//! ([`BatchRecorded::OneAtATime`]); the same for a row the table refuses. So
//! a batch either commits every row [`plan`] chose, or none.
//!
//! Batches are cut into statements of power-of-two sizes (at most
//! [`MAX_ROWS_PER_STATEMENT`] rows; look-ups padded up to the next power of
//! two), so that a few statement texts serve every batch size and stay in
//! each connection's prepared-statement cache (mysql_async keeps 32).
//!
//! # Errors
//! [`DbError::is_transient`] sorts failures: a value the table refuses
//! ([`DbError::Rejected`]) is definite for that event; everything else
//! (connection refused or lost, timeouts, lock waits, even missing
//! privileges, which an operator can fix) is transient and retried by the
//! caller without moving past the event.

use std::collections::HashMap;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Pool, PoolConstraints, PoolOpts, Row, TxOpts, Value};
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
/// [`SELECT_COLUMNS`] with the row id first (a batch's look-up orders by it).
const SELECT_ID_COLUMNS: &str = "SELECT id, order_id, event_id, CAST(amount AS CHAR), currency, \
     DATE_FORMAT(charged_at, '%Y-%m-%dT%H:%i:%s.%fZ') FROM payments";

/// Most rows one statement of a batch inserts or looks up (4 and 2
/// placeholders per row: far below the server's 65,535).
pub const MAX_ROWS_PER_STATEMENT: usize = 256;

/// The sizes of the inserts a batch of `n` rows is cut into: the largest
/// power of two that fits, at most [`MAX_ROWS_PER_STATEMENT`], again and
/// again (500 → 256, 128, 64, 32, 16, 4).
fn insert_runs(n: usize) -> impl Iterator<Item = usize> {
    let mut rest = n;
    std::iter::from_fn(move || {
        if rest == 0 {
            return None;
        }
        let run = prev_power_of_two(rest.min(MAX_ROWS_PER_STATEMENT));
        rest -= run;
        Some(run)
    })
}

/// The largest power of two ≤ `n` (`n` ≥ 1).
fn prev_power_of_two(n: usize) -> usize {
    1 << (usize::BITS - 1 - n.max(1).leading_zeros())
}

/// `INSERT … VALUES (?, ?, ?, ?), …` for `rows` rows.
fn insert_statement(rows: usize) -> String {
    let mut sql = String::from(INSERT);
    for _ in 1..rows {
        sql.push_str(", (?, ?, ?, ?)");
    }
    sql
}

/// The rows holding any of `keys` order ids or any of `keys` event ids.
fn lookup_statement(keys: usize) -> String {
    let marks = vec!["?"; keys].join(", ");
    format!(
        "{SELECT_ID_COLUMNS} WHERE order_id IN ({marks}) \
         UNION {SELECT_ID_COLUMNS} WHERE event_id IN ({marks})"
    )
}

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
    /// `existing` is that row (when it could be read): of the rows holding
    /// the order or the event id, the oldest. In a batch it may be the row
    /// of an earlier charge of the same batch, whose `charged_at` is empty
    /// (not known before the commit).
    Duplicate { existing: Option<Payment> },
}

/// What a batch did ([`Store::charge_batch`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchRecorded {
    /// Committed: what each charge did, in the batch's order (as
    /// [`Store::charge`] one after the other would have answered).
    Recorded(Vec<Recorded>),
    /// Rolled back, nothing charged: a row was refused, or another writer
    /// took one of the keys after the look-up. Charge these one at a time.
    OneAtATime { reason: String },
}

/// Judges `charges`, in order, against `existing` (the rows that hold any
/// of their order or event ids) and against the rows the earlier charges of
/// the batch insert; returns what each does and the indexes of those to
/// insert. A charge whose order or event id is taken is a duplicate of the
/// oldest row holding either (what [`Store::charge`] reports after its
/// `ER_DUP_ENTRY`); the others are charged. Pure, so every rule is
/// unit-tested without a server.
pub fn plan(charges: &[&Charge], mut existing: Vec<(u64, Payment)>) -> (Vec<Recorded>, Vec<usize>) {
    // Oldest first: an index into `known` orders rows as their ids do, and
    // the rows this batch inserts come after every existing one.
    existing.sort_by_key(|(id, _)| *id);
    existing.dedup_by_key(|(id, _)| *id);
    let mut known: Vec<Payment> = existing.into_iter().map(|(_, p)| p).collect();
    let mut by_order: HashMap<u64, usize> = HashMap::with_capacity(known.len() + charges.len());
    let mut by_event: HashMap<String, usize> = HashMap::with_capacity(known.len() + charges.len());
    for (i, p) in known.iter().enumerate() {
        by_order.entry(p.order_id).or_insert(i);
        by_event.entry(p.event_id.clone()).or_insert(i);
    }
    let mut recorded = Vec::with_capacity(charges.len());
    let mut insert = Vec::with_capacity(charges.len());
    for (n, charge) in charges.iter().enumerate() {
        let holder = [
            by_order.get(&charge.order_id),
            by_event.get(charge.event_id.as_str()),
        ]
        .into_iter()
        .flatten()
        .min()
        .copied();
        match holder {
            Some(i) => recorded.push(Recorded::Duplicate {
                existing: known.get(i).cloned(),
            }),
            None => {
                let i = known.len();
                by_order.insert(charge.order_id, i);
                by_event.insert(charge.event_id.clone(), i);
                known.push(Payment {
                    order_id: charge.order_id,
                    event_id: charge.event_id.clone(),
                    amount: charge.amount.clone(),
                    currency: charge.currency.clone(),
                    charged_at: String::new(),
                });
                recorded.push(Recorded::Charged);
                insert.push(n);
            }
        }
    }
    (recorded, insert)
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

    /// Records the payments of `charges` in one transaction: see the module
    /// docs. `charges` should be at most a few thousand (one batch).
    ///
    /// # Errors
    /// [`DbError`], as for [`Store::charge`]: after
    /// [`DbError::CommitUnknown`] trying again is safe (the rows committed
    /// then are found as duplicates of this very charge). A row the table
    /// refuses is not an error but [`BatchRecorded::OneAtATime`].
    pub async fn charge_batch(&self, charges: &[&Charge]) -> Result<BatchRecorded, DbError> {
        let mut commit_sent = false;
        let result = tokio::time::timeout(self.timeout, async {
            let mut conn = self.pool.get_conn().await?;
            let mut tx = conn.start_transaction(TxOpts::default()).await?;

            let mut existing = Vec::new();
            for part in charges.chunks(MAX_ROWS_PER_STATEMENT) {
                // Padded with the last key up to a power of two: a few
                // statement texts for every size.
                let Some(last) = part.last() else { continue };
                let size = part.len().next_power_of_two();
                let padded = || {
                    part.iter()
                        .chain(std::iter::repeat_n(last, size - part.len()))
                };
                let params: Vec<Value> = padded()
                    .map(|c| Value::from(c.order_id))
                    .chain(padded().map(|c| Value::from(c.event_id.as_str())))
                    .collect();
                let rows: Vec<Row> = tx
                    .exec(lookup_statement(size), params)
                    .await
                    .map_err(classify)?;
                for row in rows {
                    existing.push(payment_with_id_from_row(row)?);
                }
            }
            let (recorded, insert) = plan(charges, existing);
            if insert.is_empty() {
                tx.rollback().await?;
                return Ok(BatchRecorded::Recorded(recorded));
            }

            let mut rest = insert.as_slice();
            for run in insert_runs(insert.len()) {
                let (part, tail) = rest.split_at(run);
                rest = tail;
                let params: Vec<Value> = part
                    .iter()
                    .filter_map(|&n| charges.get(n))
                    .flat_map(|c| {
                        [
                            Value::from(c.order_id),
                            Value::from(c.event_id.as_str()),
                            Value::from(c.amount.as_str()),
                            Value::from(c.currency.as_str()),
                        ]
                    })
                    .collect();
                match tx.exec_drop(insert_statement(run), params).await {
                    Ok(()) => {}
                    Err(mysql_async::Error::Server(e))
                        if e.code == er::DUP_ENTRY || er::ROW_REJECTED.contains(&e.code) =>
                    {
                        tx.rollback().await?;
                        return Ok(BatchRecorded::OneAtATime {
                            reason: format!("error {}: {}", e.code, e.message),
                        });
                    }
                    Err(e) => return Err(classify(e)),
                }
            }
            commit_sent = true;
            tx.commit()
                .await
                .map_err(|e| DbError::CommitUnknown(e.to_string()))?;
            Ok(BatchRecorded::Recorded(recorded))
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

fn column<T: mysql_async::prelude::FromValue>(row: &Row, i: usize) -> Result<T, DbError> {
    match row.get_opt::<T, usize>(i) {
        Some(Ok(v)) => Ok(v),
        Some(Err(e)) => Err(DbError::BadRow(format!("column {i}: {e}"))),
        None => Err(DbError::BadRow(format!("column {i} is missing"))),
    }
}

/// A row of [`SELECT_COLUMNS`].
fn payment_from_row(row: Row) -> Result<Payment, DbError> {
    payment_at(&row, 0)
}

/// A row of [`SELECT_ID_COLUMNS`]: (id, payment).
fn payment_with_id_from_row(row: Row) -> Result<(u64, Payment), DbError> {
    Ok((column(&row, 0)?, payment_at(&row, 1)?))
}

fn payment_at(row: &Row, first: usize) -> Result<Payment, DbError> {
    Ok(Payment {
        order_id: column(row, first)?,
        event_id: column(row, first + 1)?,
        amount: column(row, first + 2)?,
        currency: column(row, first + 3)?,
        charged_at: column(row, first + 4)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn charge(order_id: u64, event_id: &str) -> Charge {
        Charge {
            order_id,
            event_id: event_id.to_owned(),
            amount: format!("{order_id}.00"),
            currency: "EUR".to_owned(),
            snapshot: false,
        }
    }

    fn row(id: u64, order_id: u64, event_id: &str) -> (u64, Payment) {
        (
            id,
            Payment {
                order_id,
                event_id: event_id.to_owned(),
                amount: "1.00".to_owned(),
                currency: "USD".to_owned(),
                charged_at: "2026-11-26T05:59:41.318802Z".to_owned(),
            },
        )
    }

    /// The holder's (order id, event id) of each duplicate; `None` for a charge.
    fn holders(recorded: &[Recorded]) -> Vec<Option<(u64, String)>> {
        recorded
            .iter()
            .map(|r| match r {
                Recorded::Charged => None,
                Recorded::Duplicate { existing } => {
                    existing.as_ref().map(|p| (p.order_id, p.event_id.clone()))
                }
            })
            .collect()
    }

    #[test]
    fn a_batch_without_known_keys_inserts_everything_in_order() {
        let cs = [charge(1, "e1"), charge(2, "e2"), charge(3, "e3")];
        let refs: Vec<&Charge> = cs.iter().collect();
        let (recorded, insert) = plan(&refs, vec![]);
        assert_eq!(recorded, vec![Recorded::Charged; 3]);
        assert_eq!(insert, vec![0, 1, 2]);
    }

    #[test]
    fn duplicates_are_judged_as_one_at_a_time_would() {
        let cs = [
            charge(1, "e1"),  // order 1 charged before: duplicate
            charge(2, "e2"),  // charged
            charge(2, "e2"),  // the same event again in the batch: duplicate of the one above
            charge(3, "e2"),  // event e2 already charged order 2: a conflict, no insert
            charge(3, "e3"),  // order 3 still free: charged
            charge(4, "e9"),  // event e9 charged order 9 before: conflict
            charge(10, "e1"), // order 10 free but e1 taken: conflict with order 1's row
            charge(5, "e5"),  // order 5 has row id 7 and e5 row id 3: the older (3) holds
        ];
        let refs: Vec<&Charge> = cs.iter().collect();
        let existing = vec![
            row(12, 1, "e1"),
            row(9, 9, "e9"),
            row(7, 5, "x"),
            row(3, 6, "e5"),
            row(3, 6, "e5"), // the look-up's padding may return a row twice
        ];
        let (recorded, insert) = plan(&refs, existing);
        assert_eq!(insert, vec![1, 4]);
        assert_eq!(
            holders(&recorded),
            vec![
                Some((1, "e1".into())),
                None,
                Some((2, "e2".into())),
                Some((2, "e2".into())),
                None,
                Some((9, "e9".into())),
                Some((1, "e1".into())),
                Some((6, "e5".into())),
            ]
        );
        // A holder from the batch itself has no charged_at yet; one from
        // the table keeps its own.
        match &recorded[2] {
            Recorded::Duplicate { existing: Some(p) } => {
                assert_eq!(p.charged_at, "");
                assert_eq!(p.amount, "2.00");
            }
            other => panic!("{other:?}"),
        }
        match &recorded[0] {
            Recorded::Duplicate { existing: Some(p) } => assert_eq!(p.amount, "1.00"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_conflicting_charge_inserts_nothing_so_a_later_one_for_its_order_is_charged() {
        // Order 3's first event reuses order 1's event id (dead-lettered,
        // nothing inserted); its next event has its own id: charged.
        let cs = [charge(3, "e1"), charge(3, "e3")];
        let refs: Vec<&Charge> = cs.iter().collect();
        let (recorded, insert) = plan(&refs, vec![row(1, 1, "e1")]);
        assert_eq!(holders(&recorded), vec![Some((1, "e1".into())), None]);
        assert_eq!(insert, vec![1]);
    }

    #[test]
    fn batches_are_cut_into_few_statement_sizes() {
        assert_eq!(
            insert_runs(500).collect::<Vec<_>>(),
            vec![256, 128, 64, 32, 16, 4]
        );
        assert_eq!(insert_runs(1).collect::<Vec<_>>(), vec![1]);
        assert_eq!(insert_runs(0).count(), 0);
        assert_eq!(
            insert_runs(700).collect::<Vec<_>>(),
            vec![256, 256, 128, 32, 16, 8, 4]
        );
        for n in 1..2000 {
            let runs: Vec<usize> = insert_runs(n).collect();
            assert_eq!(runs.iter().sum::<usize>(), n);
            assert!(runs
                .iter()
                .all(|r| r.is_power_of_two() && *r <= MAX_ROWS_PER_STATEMENT));
        }
        assert_eq!(
            insert_statement(2),
            "INSERT INTO payments (order_id, event_id, amount, currency) VALUES (?, ?, ?, ?), (?, ?, ?, ?)"
        );
        let lookup = lookup_statement(4);
        assert_eq!(lookup.matches('?').count(), 8);
        assert!(lookup.contains("WHERE order_id IN (?, ?, ?, ?) UNION SELECT id,"));
    }
}
