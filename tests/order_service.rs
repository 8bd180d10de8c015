//! order-service against the real primary: orders are stored and read back;
//! bad input is refused with a body naming the problem and writes nothing;
//! a database that cannot be reached answers 503; connections the server
//! closed under the service's pool are replaced, not answered with errors.

use mysql_async::prelude::Queryable;
use serde_json::{json, Value as Json};
use test_support::services::OrderService;
use test_support::tailer::TestDb;
use test_support::{connect, free_port, http_get, http_request, Server, User};

async fn grant_orders_app(db: &TestDb) {
    let mut admin = connect(Server::Primary, User::Admin).await;
    admin
        .query_drop(format!(
            "GRANT SELECT, INSERT ON {}.* TO '{}'@'127.0.0.1'",
            db.name,
            User::OrdersApp.credentials().0
        ))
        .await
        .expect("grant");
}

async fn row_count(db: &TestDb) -> u64 {
    let mut admin = connect(Server::Primary, User::Admin).await;
    admin
        .query_first(format!("SELECT COUNT(*) FROM {}.orders", db.name))
        .await
        .expect("count")
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_are_stored_and_bad_input_writes_nothing() {
    let db = TestDb::create("ordersvc").await;
    grant_orders_app(&db).await;
    let service = OrderService::start(test_support::here!(), &db.name, Server::Primary.port());

    let order = json!({"customer_id": 42, "amount": "19.9", "currency": "EUR",
                       "items": [{"sku": "book-1", "qty": 2}]});
    let (status, created) = service.post(&order);
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_u64().expect("id");
    assert_eq!(created["amount"], "19.90");
    assert_eq!(created["currency"], "EUR");
    assert_eq!(created["status"], "created");
    assert_eq!(created["items"], json!([{"sku": "book-1", "qty": 2}]));
    assert!(
        created["created_at"]
            .as_str()
            .is_some_and(|t| t.len() == 26),
        "{created}"
    );
    let (status, read) = http_get(service.port, &format!("/orders/{id}")).expect("GET");
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Json>(&read).expect("json"), created);
    assert_eq!(
        http_get(service.port, "/orders/999999999").expect("GET").0,
        404
    );
    assert_eq!(http_get(service.port, "/orders/abc").expect("GET").0, 400);
    assert_eq!(row_count(&db).await, 1);

    // Every bad input: 4xx, a body naming the problem, nothing written.
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"{not json".to_vec(), 400, "not valid JSON"),
        (b"[1, 2]".to_vec(), 422, "JSON object"),
        (json!({"customer_id": "42", "amount": "1.00", "currency": "EUR", "items": [{"sku": "a", "qty": 1}]}).to_string().into_bytes(), 422, "customer_id"),
        (json!({"customer_id": 1, "amount": "-5.00", "currency": "EUR", "items": [{"sku": "a", "qty": 1}]}).to_string().into_bytes(), 422, "negative"),
        (json!({"customer_id": 1, "amount": "1.234", "currency": "EUR", "items": [{"sku": "a", "qty": 1}]}).to_string().into_bytes(), 422, "amount"),
        (json!({"customer_id": 1, "amount": 12.5, "currency": "EUR", "items": [{"sku": "a", "qty": 1}]}).to_string().into_bytes(), 422, "amount"),
        (json!({"customer_id": 1, "amount": "1.00", "currency": "XXY", "items": [{"sku": "a", "qty": 1}]}).to_string().into_bytes(), 422, "ISO 4217"),
        (json!({"customer_id": 1, "amount": "1.00", "currency": "EUR", "items": []}).to_string().into_bytes(), 422, "items"),
        (json!({"customer_id": 1, "amount": "1.00", "currency": "EUR", "items": [{"sku": "a", "qty": 0}]}).to_string().into_bytes(), 422, "items[0].qty"),
        (json!({"customer_id": 1, "amount": "1.00", "currency": "EUR"}).to_string().into_bytes(), 422, "items"),
        (format!("{{\"customer_id\": 1, \"pad\": \"{}\"}}", "x".repeat(100_000)).into_bytes(), 413, "larger than"),
    ];
    for (body, want_status, needle) in &cases {
        let (status, text) =
            http_request(service.port, "POST", "/orders", Some(body)).expect("POST");
        assert_eq!(
            status,
            *want_status,
            "{}: {text}",
            String::from_utf8_lossy(&body[..body.len().min(80)])
        );
        assert!(
            text.contains(needle),
            "the body names the problem ({needle}): {text}"
        );
    }
    assert_eq!(row_count(&db).await, 1, "bad input wrote nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_answers_503_and_writes_nothing() {
    // Nothing listens on this port: the database is "down".
    let service = OrderService::start(test_support::here!(), "shop", free_port());
    let (status, body) = service.post(
        &json!({"customer_id": 1, "amount": "1.00", "currency": "EUR",
                                               "items": [{"sku": "a", "qty": 1}]}),
    );
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("unavailable") && e.contains("nothing was written")),
        "{body}"
    );
    assert_eq!(http_get(service.port, "/readyz").expect("readyz").0, 503);
    assert_eq!(http_get(service.port, "/healthz").expect("healthz").0, 200);
}

/// The service keeps its database connections between requests. When the
/// server has closed them (a restart, a failover, `wait_timeout`, a KILL),
/// the next orders must still be stored, on new connections, not refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_after_the_server_closed_the_pooled_connections_are_stored() {
    let db = TestDb::create("ordersvc_pool").await;
    grant_orders_app(&db).await;
    let service = OrderService::start(test_support::here!(), &db.name, Server::Primary.port());
    let order = json!({"customer_id": 7, "amount": "2.50", "currency": "EUR",
                       "items": [{"sku": "pen", "qty": 1}]});
    for _ in 0..3 {
        let (status, body) = service.post(&order);
        assert_eq!(status, 201, "{body}");
    }

    let mut admin = connect(Server::Primary, User::Admin).await;
    let pooled = format!(
        "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = '{}' AND DB = '{}'",
        User::OrdersApp.credentials().0,
        db.name
    );
    let ids: Vec<u64> = admin.query(&pooled).await.expect("processlist");
    assert!(
        !ids.is_empty(),
        "the service keeps at least one connection between requests"
    );
    for id in &ids {
        admin
            .query_drop(format!("KILL CONNECTION {id}"))
            .await
            .expect("kill");
    }

    for _ in 0..3 {
        let (status, body) = service.post(&order);
        assert_eq!(status, 201, "{body}");
    }
    assert_eq!(row_count(&db).await, 6);
    let now: Vec<u64> = admin.query(&pooled).await.expect("processlist");
    assert!(
        now.iter().all(|id| !ids.contains(id)),
        "the orders after the kill went over new connections: {ids:?} then {now:?}"
    );
}
