//! The Kafka broker goes away for over 30 s while orders keep being
//! committed: the tailer stays up, its checkpoint stands still, and once the
//! broker is back every committed order arrives exactly once.
//!
//! Its own test binary: it stops the shared broker (SIGTERM to the PID that
//! `tests/env/services.sh` recorded), and cargo runs test binaries one after
//! another. The broker is started again by `services.sh up`, also when the
//! test fails.

use std::time::{Duration, Instant};

use test_support::faults::*;
use test_support::tailer::{consume_all, replica_gtid_state, Tailed, TailerSetup, TestDb};
use test_support::unique_name;

// ------------------------------------------------------------ the test

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_of_30s_loses_nothing_repeats_nothing() {
    const OUTAGE: Duration = Duration::from_secs(32);
    // Acknowledgements received before the broker died may still be written
    // by the checkpointer (interval 200 ms) just after it exits.
    const GRACE: Duration = Duration::from_secs(1);

    let mut restore = RestoreServices::armed();
    let http_port = test_support::free_port();
    let db = TestDb::create("kafka_outage").await;
    let topic = unique_name("kafka_outage");
    let setup = TailerSetup::new(
        test_support::here!(),
        "kafka_outage",
        &[Tailed::orders(&db, &topic)],
        &replica_gtid_state().await,
        "",
    )
    .with_http_listen(([127, 0, 0, 1], http_port).into());
    let mut tailer = setup.spawn();
    let writer = Writer::start(&db, Duration::from_millis(50), 0, 0);

    // Streaming normally first.
    setup
        .wait_published(40, Duration::from_secs(60), &mut tailer)
        .await;
    let before_outage = writer.count();

    // The broker goes away.
    // (Blocking calls here run on the test's own thread; the writer and the
    // rest of the runtime keep going on the worker threads.)
    let (kafka_pid, stop_took) = stop_service("kafka", Duration::from_secs(120));
    let down_at = Instant::now();
    let at_exit = writer.count();

    let mut baseline = None;
    let mut moves = Vec::new();
    let mut samples = 0;
    let mut exited = None;
    let mut not_ready = None;
    while down_at.elapsed() < OUTAGE {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Some(status) = tailer.child.try_wait().expect("try_wait") {
            exited = Some(status);
            break;
        }
        let cp = setup.checkpoint().expect("a checkpoint");
        if not_ready.is_none() {
            if let Ok((503, body)) = test_support::http_get(http_port, "/readyz") {
                not_ready = Some((down_at.elapsed(), body));
            }
        }
        if down_at.elapsed() < GRACE {
            continue;
        }
        samples += 1;
        match &baseline {
            None => baseline = Some(cp),
            Some(b) if b.position != cp.position || b.events_published != cp.events_published => {
                moves.push(format!(
                    "{:.1}s after the broker exited: {} ({} events) -> {} ({} events)",
                    down_at.elapsed().as_secs_f64(),
                    b.position,
                    b.events_published,
                    cp.position,
                    cp.events_published
                ));
            }
            Some(_) => {}
        }
    }
    let during = writer.count() - at_exit;
    let log_during_outage = tailer.log();
    if let Some(status) = exited {
        panic!("the tailer exited ({status}) while the broker was down; log:\n{log_during_outage}");
    }
    let baseline = baseline.expect("samples during the outage");
    let (not_ready_after, not_ready_body) =
        not_ready.expect("/readyz answered 503 at some point while the broker was down");
    assert!(
        not_ready_body.contains("Kafka"),
        "/readyz says why: {not_ready_body}"
    );
    println!(
        "  /readyz: 503 {:.1} s after the broker exited: {}",
        not_ready_after.as_secs_f64(),
        not_ready_body.trim().replace('\n', " / ")
    );

    // The broker comes back.
    let up_took = restore.now();
    let back_at = Instant::now();
    let outage = down_at.elapsed();
    let written_while_down = writer.count() - at_exit;
    let last_before_back = writer.last().expect("a GTID");
    setup.wait_checkpoint(
        last_before_back,
        Duration::from_secs(120),
        Some(&mut tailer),
    );
    let catch_up = back_at.elapsed();

    // A few more seconds of normal streaming, then stop writing.
    let count_at_back = writer.count();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (ids, last) = writer.finish().await;
    let after = ids.len() as u64 - count_at_back;
    setup.wait_checkpoint(last, Duration::from_secs(120), Some(&mut tailer));
    let log = tailer.log();
    let status = tailer.terminate(Duration::from_secs(60));

    let messages = consume_all(&topic);
    let Delivery {
        by_id,
        repeated,
        missing,
    } = delivery(&messages, &ids);
    let waiting_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("waiting for the broker"))
        .collect();
    let reconnect_lines = log_during_outage
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .count();

    println!("broker outage (kafka pid {kafka_pid}):");
    println!(
        "  SIGTERM to exit:               {:.1} s",
        stop_took.as_secs_f64()
    );
    println!(
        "  broker away (exit -> answering): {:.1} s (services.sh up took {:.1} s)",
        outage.as_secs_f64(),
        up_took.as_secs_f64()
    );
    println!("  orders before the outage:      {before_outage}");
    println!("  orders during the outage:      {during} sampled, {written_while_down} until the broker answered");
    println!("  orders after it was back:      {after}");
    println!(
        "  checkpoint during the outage:  {} ({} events), {samples} samples, {} moves",
        baseline.position,
        baseline.events_published,
        moves.len()
    );
    println!(
        "  catch-up after the broker was back: {:.1} s",
        catch_up.as_secs_f64()
    );
    println!(
        "  messages: {} for {} orders; {} repeated, {} missing",
        messages.len(),
        ids.len(),
        repeated.len(),
        missing.len()
    );
    println!("  log lines with \"waiting for the broker\": {}; WARN/ERROR lines during the outage: {reconnect_lines}", waiting_lines.len());

    assert!(missing.is_empty(), "orders lost: {missing:?}");
    assert!(
        repeated.is_empty(),
        "orders published more than once: {repeated:?}"
    );
    assert_eq!(
        by_id.keys().copied().collect::<Vec<_>>(),
        ids,
        "the topic holds exactly the committed orders"
    );
    for (id, ms) in &by_id {
        assert_eq!(ms[0].payload["data"], expected_data(*id), "order {id}");
    }
    assert!(
        moves.is_empty(),
        "the checkpoint moved while the broker was down:\n{}",
        moves.join("\n")
    );
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM after catching up exits 0; log:\n{log}"
    );
    assert!(
        !waiting_lines.is_empty(),
        "the tailer's log never says it is \"waiting for the broker\" during a {:.0} s outage; \
         log during the outage:\n{log_during_outage}",
        outage.as_secs_f64()
    );
}
