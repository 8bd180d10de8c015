//! TLS to MariaDB: against a server that refuses unencrypted connections, the
//! tailer connects, passes its checks and streams when `source.tls` says so,
//! and is refused with a clear message when it does not.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use test_support::scratch::{ScratchServer, ROW_LOGGING};
use test_support::tailer::{consume_all, last_gtid, Tailed, TailerSetup};
use test_support::unique_name;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A throw-away CA and a server certificate for 127.0.0.1 signed by it.
fn make_certificates(dir: &Path) {
    std::fs::create_dir_all(dir).expect("cert dir");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=binlog-tailer test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_over_tls_and_is_refused_without_it() {
    let certs = Path::new(env!("CARGO_TARGET_TMPDIR")).join(unique_name("certs"));
    make_certificates(&certs);
    let server = ScratchServer::start(
        test_support::here!(),
        &format!(
            "{ROW_LOGGING}\n\
             ssl_ca = {d}/ca.pem\nssl_cert = {d}/server.pem\nssl_key = {d}/server.key\n\
             require_secure_transport = ON",
            d = certs.display()
        ),
    )
    .await;
    let mut root = server.root().await;
    let start: String = root
        .query_first("SELECT @@gtid_binlog_pos")
        .await
        .expect("gtid")
        .unwrap_or_default();
    let topic = unique_name("tls");
    let tables = [Tailed {
        table: "shop.orders".into(),
        topic: topic.clone(),
        event_type: "shop.order.created.v1".into(),
    }];

    // Without TLS the server refuses the connection, and the message says so.
    let plain = TailerSetup::new(test_support::here!(), "tls-off", &tables, "latest", "")
        .with_source_port(server.port);
    let (code, out, err) = plain.command(&["check"]);
    assert_ne!(code, 0, "an unencrypted connection must fail:\n{out}{err}");
    // MariaDB 10.11 answers a password login over plain TCP to a server with
    // require_secure_transport=ON with "Access denied"; the message must say
    // TLS is a possible cause.
    let said = (out.clone() + &err).to_lowercase();
    assert!(
        said.contains("insecure transport")
            || (said.contains("access denied") && said.contains("source.tls")),
        "the refusal is shown with its likely causes:\n{out}{err}"
    );

    // With TLS verified against the test CA: checks pass, rows stream.
    let start_from = if start.is_empty() {
        "earliest".to_owned()
    } else {
        start
    };
    let setup = TailerSetup::new(
        test_support::here!(),
        "tls-on",
        &tables,
        &start_from,
        &format!(
            "\n[source.tls]\nmode = \"required\"\nca_file = \"{}/ca.pem\"\n",
            certs.display()
        ),
    )
    .with_source_port(server.port);
    let (code, out, err) = setup.command(&["check"]);
    assert_eq!(code, 0, "check over TLS:\n{out}{err}");

    let mut tailer = setup.spawn();
    root.query_drop(
        "INSERT INTO shop.orders (customer_id, amount, currency, items) VALUES (5, '12.34', 'EUR', '[]')",
    )
    .await
    .expect("insert");
    let last = last_gtid(&mut root).await;
    setup.wait_checkpoint(last, Duration::from_secs(60), Some(&mut tailer));
    let status = tailer.terminate(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0));
    let messages = consume_all(&topic);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].payload["data"]["amount"], "12.34");

    // TLS required but the CA does not match: refused, not silently trusted.
    let other = certs.join("other");
    std::fs::create_dir_all(&other).expect("dir");
    openssl(
        &other,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=another CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    let wrong = TailerSetup::new(
        test_support::here!(),
        "tls-wrong-ca",
        &tables,
        "latest",
        &format!(
            "\n[source.tls]\nmode = \"required\"\nca_file = \"{}/ca.pem\"\n",
            other.display()
        ),
    )
    .with_source_port(server.port);
    let (code, out, err) = wrong.command(&["check"]);
    assert_ne!(
        code, 0,
        "a certificate from an unknown CA must be refused:\n{out}{err}"
    );
}
