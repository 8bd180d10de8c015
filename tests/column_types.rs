//! Every column type, with edge values, through the real tailer: each value
//! arrives in Kafka exactly (see tests/common/alltypes.rs for the table, the
//! rows and the JSON each must become).

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_column_type_arrives_exactly() {
    common::alltypes::check_every_value_arrives("types", common::Server::Replica).await;
}
