//! What the fault tests share: stopping and restarting the shared services
//! by the PIDs `tests/env/services.sh` records, a steady writer of orders,
//! and the rows and values it writes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use binlog_tailer::position::Gtid;
use mysql_async::prelude::Queryable;
use serde_json::{json, Value as Json};

use crate::tailer::{last_gtid, Consumed, TestDb};
use crate::{connect, Server, User};

// ------------------------------------------------------------ services

/// The services' state directory, as `tests/env/services.sh` computes it.
pub fn services_state() -> PathBuf {
    std::env::var_os("BT_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            crate::repo_root()
                .join("target/services")
                .join(crate::mariadb_version())
        })
}

/// `bash tests/env/services.sh up`: starts whatever is down and waits until
/// it answers. Returns how long it took.
pub fn services_up() -> Result<Duration, String> {
    let started = Instant::now();
    let out = Command::new("bash")
        .arg(crate::repo_root().join("tests/env/services.sh"))
        .arg("up")
        .current_dir(crate::repo_root())
        .output()
        .map_err(|e| format!("running tests/env/services.sh up: {e}"))?;
    if out.status.success() {
        Ok(started.elapsed())
    } else {
        Err(format!(
            "tests/env/services.sh up failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Brings the services back when dropped, even when the test panics.
pub struct RestoreServices {
    pending: bool,
}

impl RestoreServices {
    pub fn armed() -> Self {
        RestoreServices { pending: true }
    }

    /// Restores now; returns how long `services.sh up` took.
    pub fn now(&mut self) -> Duration {
        let took = services_up().unwrap_or_else(|e| panic!("{e}"));
        self.pending = false;
        took
    }
}

impl Drop for RestoreServices {
    fn drop(&mut self) {
        if self.pending {
            if let Err(e) = services_up() {
                eprintln!("restoring the services: {e}");
            }
        }
    }
}

/// Whether a process exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_none_or(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// SIGTERM to the PID recorded in `<state>/<name>/pid`, then waits for the
/// process to exit. Returns the PID and how long the exit took.
pub fn stop_service(name: &str, timeout: Duration) -> (u32, Duration) {
    let state = services_state();
    let pidfile = state.join(name).join("pid");
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap_or_else(|e| panic!("{}: {e}; are the services up?", pidfile.display()))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{}: not a PID: {e}", pidfile.display()));
    // The same check as services.sh: a recycled PID is not ours.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(
        alive(pid) && String::from_utf8_lossy(&cmdline).contains(&*state.to_string_lossy()),
        "{name} (pid {pid} from {}) is not running; run `make services-up`",
        pidfile.display()
    );
    let started = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -TERM {pid} failed");
    while alive(pid) {
        assert!(
            started.elapsed() < timeout,
            "{name} (pid {pid}) did not exit within {timeout:?} of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (pid, started.elapsed())
}

// ------------------------------------------------------------ orders

/// The INSERT of the orders `ids` into `database.orders`, with the values of
/// [`order_values`].
pub fn insert_orders(database: &str, ids: impl IntoIterator<Item = u64>) -> String {
    let values: Vec<String> = ids.into_iter().map(order_values).collect();
    format!(
        "INSERT INTO {database}.orders (id, customer_id, amount, currency, status, items, created_at) VALUES {}",
        values.join(", ")
    )
}

/// An order as the writer inserts it, and as its event's `data` must carry it.
pub fn order_values(id: u64) -> String {
    let o = expected_data(id);
    format!(
        "({id}, {}, '{}', '{}', 'created', '{}', '{}')",
        o["customer_id"],
        o["amount"].as_str().unwrap_or_default(),
        o["currency"].as_str().unwrap_or_default(),
        o["items"].to_string().replace('\'', "''"),
        o["created_at"].as_str().unwrap_or_default()
    )
}

pub fn expected_data(id: u64) -> Json {
    const AMOUNTS: [&str; 5] = ["0.01", "19.99", "1234567890.00", "250.50", "0.00"];
    const CURRENCIES: [&str; 3] = ["EUR", "USD", "JPY"];
    json!({
        "id": id,
        "customer_id": id % 7 + 1,
        "amount": AMOUNTS[(id % 5) as usize],
        "currency": CURRENCIES[(id % 3) as usize],
        "status": "created",
        "items": [{"sku": format!("sku-{id}"), "qty": id % 4 + 1}],
        "created_at": format!("2026-11-26 10:{:02}:{:02}.{:06}", id % 60, (id * 7) % 60, id * 1001 % 1_000_000),
    })
}

/// Inserts single-row order transactions on the primary at a steady rate
/// until stopped.
pub struct Writer {
    stop: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
    last: Arc<Mutex<Option<Gtid>>>,
    /// Each order id with the GTID of its transaction.
    task: tokio::task::JoinHandle<Vec<(u64, Gtid)>>,
}

impl Writer {
    /// One transaction every `every`; every `big_every`-th of them (if not
    /// 0) inserts `big_rows` orders in one statement, the others one.
    pub fn start(db: &TestDb, every: Duration, big_every: u64, big_rows: u64) -> Writer {
        Writer::start_in(db, None, 0, every, big_every, big_rows)
    }

    /// As [`Writer::start`], in a session of GTID domain `domain` (when
    /// given; `SET SESSION gtid_domain_id`), with ids after `ids_after`.
    pub fn start_in(
        db: &TestDb,
        domain: Option<u32>,
        ids_after: u64,
        every: Duration,
        big_every: u64,
        big_rows: u64,
    ) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicU64::new(0));
        let last = Arc::new(Mutex::new(None));
        let (s, c, l, name) = (
            Arc::clone(&stop),
            Arc::clone(&count),
            Arc::clone(&last),
            db.name.clone(),
        );
        let task = tokio::spawn(async move {
            let mut primary = connect(Server::Primary, User::Admin).await;
            if let Some(domain) = domain {
                primary
                    .query_drop(format!("SET SESSION gtid_domain_id = {domain}"))
                    .await
                    .expect("SET SESSION gtid_domain_id");
            }
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut ids = Vec::new();
            let mut id = ids_after;
            let mut txn = 0;
            while !s.load(Ordering::SeqCst) {
                ticker.tick().await;
                txn += 1;
                let rows = if big_every > 0 && txn % big_every == 0 {
                    big_rows
                } else {
                    1
                };
                let batch: Vec<u64> = (id + 1..=id + rows).collect();
                primary
                    .query_drop(insert_orders(&name, batch.iter().copied()))
                    .await
                    .unwrap_or_else(|e| panic!("insert orders {batch:?}: {e}"));
                let gtid = last_gtid(&mut primary).await;
                *l.lock().expect("lock") = Some(gtid);
                id += rows;
                ids.extend(batch.into_iter().map(|i| (i, gtid)));
                c.store(id - ids_after, Ordering::SeqCst);
            }
            ids
        });
        Writer {
            stop,
            count,
            last,
            task,
        }
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    pub fn last(&self) -> Option<Gtid> {
        *self.last.lock().expect("lock")
    }

    /// Stops; returns the ids inserted (committed) and the last GTID.
    pub async fn finish(self) -> (Vec<u64>, Gtid) {
        let (ids, last) = self.finish_with_gtids().await;
        (ids.into_iter().map(|(id, _)| id).collect(), last)
    }

    /// Stops; returns each id inserted (committed) with the GTID of its
    /// transaction, and the last GTID.
    pub async fn finish_with_gtids(self) -> (Vec<(u64, Gtid)>, Gtid) {
        self.stop.store(true, Ordering::SeqCst);
        let ids = tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the writer stops within 30 s")
            .expect("the writer did not fail");
        let last = (*self.last.lock().expect("lock")).expect("the writer committed something");
        (ids, last)
    }
}

/// Each order id with its messages: exactly once means one message per id.
pub fn by_order(messages: &[Consumed]) -> BTreeMap<u64, Vec<&Consumed>> {
    let mut by_id: BTreeMap<u64, Vec<&Consumed>> = BTreeMap::new();
    for m in messages {
        let id = m.payload["data"]["id"].as_u64().expect("data.id");
        by_id.entry(id).or_default().push(m);
    }
    by_id
}

/// What a topic holds of a set of committed orders.
pub struct Delivery<'m> {
    /// Each order id with its messages.
    pub by_id: BTreeMap<u64, Vec<&'m Consumed>>,
    /// Ids with more than one message.
    pub repeated: Vec<u64>,
    /// Committed ids with no message.
    pub missing: Vec<u64>,
}

/// Groups `messages` by order id and lists the repeated ones and the ones
/// of `ids` that are missing: exactly once means both lists are empty.
pub fn delivery<'m>(messages: &'m [Consumed], ids: &[u64]) -> Delivery<'m> {
    let by_id = by_order(messages);
    let repeated = by_id
        .iter()
        .filter(|(_, ms)| ms.len() > 1)
        .map(|(id, _)| *id)
        .collect();
    let missing = ids
        .iter()
        .copied()
        .filter(|id| !by_id.contains_key(id))
        .collect();
    Delivery {
        by_id,
        repeated,
        missing,
    }
}
