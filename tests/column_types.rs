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
