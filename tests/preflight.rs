//! Preflight and start-up refusals: a server with the wrong settings, bad
//! configuration, a corrupt checkpoint store. Each must stop the tailer with a
//! message that names the problem, and change nothing.

use std::process::Command;

use mysql_async::prelude::Queryable;
use test_support::scratch::ScratchServer;
use test_support::tailer::{Tailed, TailerSetup};
use test_support::{kafka_bootstrap, unique_name};

fn setup_for(port: u16) -> TailerSetup {
    TailerSetup::new(
        test_support::here!(),
        "preflight",
        &[Tailed {
            table: "shop.orders".into(),
            topic: unique_name("preflight"),
            event_type: "shop.order.created.v1".into(),
        }],
        "latest",
        "",
    )
    .with_source_port(port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_names_each_wrong_server_setting_and_passes_when_fixed() {
    let server = ScratchServer::start(
        test_support::here!(),
        "binlog_format = STATEMENT\nbinlog_row_image = FULL\nbinlog_row_metadata = FULL",
    )
    .await;
    let setup = setup_for(server.port);

    let (code, out, _) = setup.command(&["check"]);
    assert_eq!(code, 3, "check fails with exit code 3:\n{out}");
    assert!(
        out.contains("FAIL  binlog_format: found STATEMENT, needed ROW"),
        "names binlog_format, found and needed:\n{out}"
    );
    assert!(
        out.contains("SET GLOBAL binlog_format = ROW"),
        "says how to fix it:\n{out}"
    );
    // `run` refuses too, before reading anything.
    let (code, _, err) = setup.command(&["run"]);
    assert_eq!(code, 3, "run refuses with exit code 3:\n{err}");
    assert!(err.contains("binlog_format"), "{err}");

    let mut root = server.root().await;
    root.query_drop("SET GLOBAL binlog_format = ROW; SET GLOBAL binlog_row_metadata = MINIMAL")
        .await
        .expect("set globals");
    let (code, out, _) = setup.command(&["check"]);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("FAIL  binlog_row_metadata: found MINIMAL, needed FULL"),
        "names binlog_row_metadata:\n{out}"
    );
    assert!(out.contains("ok    binlog_format: ROW"), "{out}");

    root.query_drop("SET GLOBAL binlog_row_metadata = FULL")
        .await
        .expect("set global");
    let (code, out, _) = setup.command(&["check"]);
    assert_eq!(code, 0, "every check passes once fixed:\n{out}");
    assert!(out.contains("checks passed"), "{out}");
    // The version, reported as the server gives it, without a warning on a
    // tested line; binlog_legacy_event_pos as that version has it.
    let version: String = root
        .query_first("SELECT VERSION()")
        .await
        .expect("version")
        .expect("a version");
    assert!(
        out.contains(&format!("ok    server: MariaDB {version} (server_id 77)")),
        "{out}"
    );
    let legacy = if test_support::mariadb_11() {
        "ok    binlog_legacy_event_pos: OFF (events inside a transaction carry end_log_pos 0"
    } else {
        "ok    binlog_legacy_event_pos: not a setting of this server"
    };
    assert!(out.contains(legacy), "{legacy}:\n{out}");
    let _ = kafka_bootstrap();
}

#[test]
fn bad_configuration_exits_2_naming_the_key() {
    let setup = setup_for(1);
    let (code, _, err) = setup.command(&["--set", "checkpoint.intervall=1s", "check"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("intervall"), "{err}");
    let setup =
        setup.with_extra("\n[[tables]]\ntable = \"no_dot\"\ntopic = \"t\"\nevent_type = \"e\"\n");
    let (code, _, err) = setup.command(&["check"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no_dot") && err.contains("database.table"),
        "{err}"
    );
}

#[test]
fn a_missing_password_exits_2_naming_the_variable() {
    let setup = setup_for(1);
    let out = Command::new(env!("CARGO_BIN_EXE_binlog-tailer"))
        .arg("--config")
        .arg(&setup.config)
        .arg("run")
        .env_remove("BINLOG_TAILER_SOURCE_PASSWORD")
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("BINLOG_TAILER_SOURCE_PASSWORD"), "{err}");
}

#[test]
fn a_corrupt_checkpoint_store_stops_the_tailer_and_stays_untouched() {
    let setup = setup_for(test_support::Server::Replica.port());
    std::fs::create_dir_all(&setup.state).expect("state dir");
    let file = setup.state.join(binlog_tailer::checkpoint::FILE_NAME);
    let garbage = b"not a checkpoint store".repeat(200);
    std::fs::write(&file, &garbage).expect("write");
    let (code, _, err) = setup.command(&["run"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("not usable") && err.contains("checkpoint.sqlite3"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&file).expect("read"),
        garbage,
        "the file is untouched"
    );
    let (code, _, err) = setup.command(&["checkpoint", "show"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not usable"), "{err}");
}

#[test]
fn help_answers_commands_configuration_and_exit_codes() {
    let out = Command::new(env!("CARGO_BIN_EXE_binlog-tailer"))
        .arg("--help")
        .output()
        .expect("--help");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for needle in [
        "run",
        "check",
        "checkpoint",
        "--config",
        "--set",
        "Exit codes",
        "BINLOG_TAILER_SOURCE_PASSWORD",
    ] {
        assert!(help.contains(needle), "--help mentions {needle}:\n{help}");
    }
}
