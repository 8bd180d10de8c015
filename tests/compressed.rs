//! Every column type through the real tailer while the replica writes
//! compressed binlog events (`log_bin_compress=ON`): the values arrive exactly
//! as without compression.
//!
//! Its own test binary: it changes a global setting of the shared replica,
//! and cargo runs test binaries one after another.

use mysql_async::prelude::Queryable;
use test_support::{connect, global_var, Server, User};

/// Restores the replica's compression settings, even when the test fails.
struct Restore {
    min_len: String,
}

impl Drop for Restore {
    fn drop(&mut self) {
        let min_len = self.min_len.clone();
        let restored = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let mut replica = connect(Server::Replica, User::Admin).await;
                replica
                    .query_drop(format!(
                        "SET GLOBAL log_bin_compress = OFF, GLOBAL log_bin_compress_min_len = {min_len}"
                    ))
                    .await
            })
        })
        .join();
        if !matches!(restored, Ok(Ok(()))) {
            eprintln!("could not restore log_bin_compress=OFF on the replica: {restored:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_column_type_arrives_exactly_from_compressed_events() {
    let mut replica = connect(Server::Replica, User::Admin).await;
    let _restore = Restore {
        min_len: global_var(&mut replica, "log_bin_compress_min_len").await,
    };
    replica
        .query_drop("SET GLOBAL log_bin_compress_min_len = 10, GLOBAL log_bin_compress = ON")
        .await
        .expect("turn compression on");
    let (file, pos): (String, u64) = {
        let row: mysql_async::Row = replica
            .query_first("SHOW MASTER STATUS")
            .await
            .expect("SHOW MASTER STATUS")
            .expect("a binlog");
        (row.get(0).expect("file"), row.get(1).expect("pos"))
    };

    test_support::alltypes::check_every_value_arrives(
        test_support::here!(),
        "compressed",
        Server::Replica,
    )
    .await;

    // The events the tailer read were compressed ones.
    let kinds: Vec<String> = replica
        .query_map(
            format!("SHOW BINLOG EVENTS IN '{file}' FROM {pos}"),
            |row: mysql_async::Row| row.get::<String, _>("Event_type").unwrap_or_default(),
        )
        .await
        .expect("SHOW BINLOG EVENTS");
    assert!(
        kinds
            .iter()
            .any(|k| k.to_ascii_lowercase().contains("compressed")),
        "the replica wrote compressed row events: {kinds:?}"
    );
}
