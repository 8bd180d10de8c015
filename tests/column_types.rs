//! Every column type, with edge values, through the real tailer: each value
//! arrives in Kafka exactly (see crates/test-support/src/alltypes.rs for the
//! table, the rows and the JSON each must become).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_column_type_arrives_exactly() {
    test_support::alltypes::check_every_value_arrives(
        test_support::here!(),
        "types",
        test_support::Server::Replica,
    )
    .await;
}

/// The binlog logs VECTOR(n) as VARBINARY(4n): `check` names a VECTOR column
/// missing from `vector_columns` (published as base64 then) and is quiet
/// once it is listed. MariaDB 11.7+ only; on 10.11 there is no VECTOR.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_a_vector_column_missing_from_vector_columns() {
    use mysql_async::prelude::Queryable;
    use test_support::tailer::{Tailed, TailerSetup, TestDb};
    use test_support::{connect, unique_name, Server, User};

    let mut primary = connect(Server::Primary, User::Admin).await;
    let version: String = primary
        .query_first("SELECT VERSION()")
        .await
        .expect("version")
        .expect("one row");
    if !test_support::alltypes::has_vector(&version) {
        eprintln!("MariaDB {version} has no VECTOR type: nothing to check");
        return;
    }
    let db = TestDb::create("vecnote").await;
    primary
        .query_drop(format!(
            "CREATE TABLE {}.items (id INT PRIMARY KEY, embedding VECTOR(8)) ENGINE=InnoDB",
            db.name
        ))
        .await
        .expect("create a table with a VECTOR column");
    test_support::tailer::wait_for_replica(&mut primary).await;
    let tailed = [Tailed {
        table: db.table("items"),
        topic: unique_name("vecnote"),
        event_type: "test.items.created.v1".into(),
    }];
    let unlisted = TailerSetup::new(test_support::here!(), "vecnote", &tailed, "latest", "");
    let (code, out, err) = unlisted.command(&["check"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(
            "column embedding is VECTOR on the server but not in vector_columns, so it is \
             published as base64 bytes"
        ),
        "{out}"
    );
    let listed = TailerSetup::new(test_support::here!(), "vecnote2", &tailed, "latest", "")
        // [[tables]] is the file's last section: this key joins it.
        .with_extra("vector_columns = [\"embedding\"]\n");
    let (code, out, err) = listed.command(&["check"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("embedding"), "{out}");
}
