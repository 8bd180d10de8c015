//! A session that logs its INSERT as a statement (`SET SESSION
//! binlog_format = 'STATEMENT'`) on the server the tailer reads, here the
//! primary with a global ROW format: the order's rows are not in the binlog,
//! only its SQL. The tailer stops at that transaction with exit code 1,
//! naming the table, the position, binlog_format and the fix, its
//! checkpoint before it, and again on every restart. The fix it names,
//! reading the replica (which logs the same transaction as rows), publishes
//! every committed order exactly once.

use std::time::{Duration, Instant};

use binlog_tailer::checkpoint::Checkpoint;
use binlog_tailer::position::Gtid;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use test_support::tailer::{
    assert_checkpoint_unchanged, consume_all, last_gtid, wait_for_replica, Tailed, Tailer,
    TailerSetup, TestDb,
};
use test_support::{connect, unique_name, Server, User};

async fn insert_order(conn: &mut Conn, db: &TestDb, id: u64) -> Gtid {
    conn.query_drop(format!(
        "INSERT INTO {}.orders (id, customer_id, amount, currency, items, created_at) \
         VALUES ({id}, 1, '9.99', 'EUR', '[]', NOW(6))",
        db.name
    ))
    .await
    .expect("insert an order");
    last_gtid(conn).await
}

/// The error's `at FILE:OFFSET` is where the logged INSERT's event ends: the
/// next event starts there. On MariaDB 11.x that event's header says
/// `end_log_pos 0` (it is inside a transaction), so this holds only if the
/// tailer computes positions rather than copy the header's.
async fn assert_names_the_statement_end(
    primary: &mut Conn,
    checkpoint: &Checkpoint,
    error: &str,
    table: &str,
) {
    let at = error
        .split(&format!("table {table} at "))
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no position in the error: {error}"));
    let (file, offset) = at
        .rsplit_once(':')
        .and_then(|(f, o)| Some((f, o.parse::<u64>().ok()?)))
        .unwrap_or_else(|| panic!("not FILE:OFFSET: {at}"));
    let coord = checkpoint
        .position
        .coord
        .as_ref()
        .expect("checkpoint coord");
    assert_eq!(file, coord.file, "the statement follows the checkpoint");
    // From the checkpoint on: the event before the one at `offset` is the
    // INSERT.
    let events = test_support::binlog_events(primary, file, coord.offset, 500)
        .await
        .expect("SHOW BINLOG EVENTS");
    let next = events
        .iter()
        .position(|e| e.pos == offset)
        .unwrap_or_else(|| panic!("{at} is no event boundary after {coord}: {events:?}"));
    let insert = &events[next.checked_sub(1).expect("an event before it")];
    assert!(
        insert.kind == "Query" && insert.info.contains("INSERT INTO"),
        "the event ending at {at} is the logged INSERT, not {insert:?}"
    );
    println!(
        "the error names {at}: the end of the INSERT at {}, whose header says end_log_pos {}",
        insert.pos, insert.end_log_pos
    );
}

fn exits_within(tailer: &mut Tailer, timeout: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = tailer.child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(
            started.elapsed() < timeout,
            "the tailer was still running {timeout:?} after a statement-logged INSERT into a \
             tailed table: it must stop with exit code 1; log:\n{}",
            tailer.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn order_ids(topic: &str) -> Vec<u64> {
    let mut ids: Vec<u64> = consume_all(topic)
        .iter()
        .map(|m| m.payload["data"]["id"].as_u64().expect("data.id"))
        .collect();
    ids.sort_unstable();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insert_logged_as_a_statement_stops_the_tailer_and_the_replica_publishes_it() {
    let db = TestDb::create("stmt_logged").await;
    let table = db.table("orders");
    let mut primary = connect(Server::Primary, User::Admin).await;
    let start: String = primary
        .query_first("SELECT @@gtid_binlog_pos")
        .await
        .expect("gtid_binlog_pos")
        .unwrap_or_default();
    let topic = unique_name("stmt_logged");
    let setup = TailerSetup::new(
        test_support::here!(),
        "stmt_logged",
        &[Tailed::orders(&db, &topic)],
        &start,
        "",
    )
    .with_source_port(Server::Primary.port());

    let (code, check, _) = setup.command(&["check"]);
    assert_eq!(code, 0, "{check}");
    assert!(
        check.contains("ok    binlog_format: ROW (a session can still SET SESSION binlog_format"),
        "check says a session can override the global format:\n{check}"
    );

    let mut tailer = setup.spawn();
    let first = insert_order(&mut primary, &db, 1).await;
    setup.wait_checkpoint(first, Duration::from_secs(60), Some(&mut tailer));
    let cp = setup.checkpoint().expect("a checkpoint");

    // Order 2 from a session that logs statements; order 3 as rows again.
    let mut statement_session = connect(Server::Primary, User::Admin).await;
    statement_session
        .query_drop("SET SESSION binlog_format = 'STATEMENT'")
        .await
        .expect("SET SESSION binlog_format");
    let logged = insert_order(&mut statement_session, &db, 2).await;
    let third = insert_order(&mut primary, &db, 3).await;
    let committed: Vec<u64> = primary
        .query(format!("SELECT id FROM {table} ORDER BY id"))
        .await
        .expect("SELECT");
    assert_eq!(committed, vec![1, 2, 3]);

    let mut stops = Vec::new();
    for run in ["running", "restarted"] {
        let started = Instant::now();
        let status = exits_within(&mut tailer, Duration::from_secs(60));
        let took = started.elapsed();
        let log = tailer.log();
        assert_eq!(status.code(), Some(1), "{run}: exit code 1; log:\n{log}");
        let error = log
            .lines()
            .find(|l| l.contains("ERROR"))
            .unwrap_or_default()
            .to_owned();
        for needed in [
            format!("table {table} at "),
            format!("(transaction {logged})"),
            "binlog_format=STATEMENT".to_owned(),
            "INSERT INTO".to_owned(),
            "log_slave_updates=ON".to_owned(),
        ] {
            assert!(
                error.contains(&needed),
                "{run}: the error names {needed:?}: {error}"
            );
        }
        assert!(
            !log.contains("reconnecting"),
            "{run}: not retried; log:\n{log}"
        );
        assert_names_the_statement_end(&mut primary, &cp, &error, &table).await;
        assert_checkpoint_unchanged(&cp, setup.checkpoint(), run);
        stops.push((run, took, error));
        tailer = setup.spawn();
    }
    drop(tailer);
    assert_eq!(order_ids(&topic), vec![1], "nothing past the statement");

    // The fix it names: read the replica, which logged order 2 as rows.
    wait_for_replica(&mut primary).await;
    let on_replica = setup.with_source_port(Server::Replica.port());
    let mut tailer = on_replica.spawn();
    on_replica.wait_checkpoint(third, Duration::from_secs(60), Some(&mut tailer));
    let status = tailer.terminate(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0));
    let ids = order_ids(&topic);

    println!("INSERT logged as a statement (order 2, {logged}), read from the primary:");
    for (run, took, error) in &stops {
        println!("  {run}: exit 1 after {:.1} s: {error}", took.as_secs_f64());
    }
    println!(
        "  then read from the replica: orders in the topic {ids:?} (committed: {committed:?})"
    );
    assert_eq!(ids, committed, "every committed order once");
}
