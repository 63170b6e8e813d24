//! Limits that hold: a hard time limit against a task body that computes for long, files and
//! directories private to their owner, every file mqlab reads capped in size, empty queue and
//! task names refused, and exit codes that tell usage, error, timeout and a failed task apart.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use mqlab::celery::backend::ResultBackend;
use mqlab::celery::client::Client;
use mqlab::celery::protocol::{TaskMessage, TaskState};
use serde_json::{Map, Value, json};

async fn publish(broker: &str, queue: &str, msgs: &[TaskMessage]) {
    let c = Client::connect(broker, None, queue, 3600).await.unwrap();
    c.publish(msgs).await.unwrap();
    c.close().await;
}

/// The state stored for `id` as soon as it is ready, with when it was seen, waiting up to `secs`.
async fn wait_ready(backend: &ResultBackend, id: &str, secs: u64) -> Option<(TaskState, Instant)> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if let Ok(m) = backend.get(id).await
            && m.status.is_ready()
        {
            return Some((m.status, Instant::now()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// One remote-control request as `celery control` sends it: the node's reply and how long it
/// took, or None after `secs`.
async fn control(broker: &str, node: &str, method: &str, secs: u64) -> Option<(Value, Duration)> {
    use futures_util::StreamExt;
    use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueBindOptions, QueueDeclareOptions};
    use lapin::types::FieldTable;
    let conn = lapin::Connection::connect(broker, Default::default()).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    let ticket = uuid::Uuid::new_v4().to_string();
    let q = ch
        .queue_declare("".into(), QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() }, FieldTable::default())
        .await
        .unwrap();
    ch.exchange_declare(
        "reply.celery.pidbox".into(),
        lapin::ExchangeKind::Direct,
        lapin::options::ExchangeDeclareOptions { durable: false, ..Default::default() },
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_bind(
        q.name().clone(),
        "reply.celery.pidbox".into(),
        ticket.as_str().into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let mut replies = ch
        .basic_consume(q.name().clone(), "".into(), BasicConsumeOptions { no_ack: true, ..Default::default() }, FieldTable::default())
        .await
        .unwrap();
    let body = json!({"method": method, "arguments": {}, "destination": [node], "pattern": null, "matcher": null,
        "reply_to": {"exchange": "reply.celery.pidbox", "routing_key": ticket}, "ticket": ticket});
    let props = lapin::BasicProperties::default().with_content_type("application/json".into());
    let sent = Instant::now();
    ch.basic_publish("celery.pidbox".into(), "".into(), BasicPublishOptions::default(), body.to_string().as_bytes(), props)
        .await
        .unwrap()
        .await
        .unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(secs), replies.next()).await;
    let took = sent.elapsed();
    let _ = conn.close(200, "bye".into()).await;
    let d = reply.ok()??.ok()?;
    let v: Value = serde_json::from_slice(&d.data).ok()?;
    Some((v[node].clone(), took))
}

fn decimal(s: &str) -> Value {
    json!({"__type__": "decimal", "__value__": s})
}

/// The digits of the Decimal the long computation adds to.
const DIGITS: usize = 4_000_000;

/// `tasks.add(Decimal('77…7'), Decimal('1'))` with 4 million digits: legal for Python's decimal
/// (no digit limit; a 4 MB body), and a computation of many seconds for mqlab's exact sum. With a
/// 1 s hard limit the task is FAILURE (TimeLimitExceeded) about 1 s after it starts, while short
/// tasks sent after it finish meanwhile and the worker answers `ping` at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_hard_time_limit_ends_a_long_computation_on_time() {
    let q = common::queue("cpulimit");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("w.log");
    let node = format!("celery@w-{q}");
    let mut w = common::start_worker(dir.path(), &q, &["-c", "2", "-l", "info"], &log);
    let broker = common::broker();
    let backend = ResultBackend::connect(&common::redis(), 3600).await.unwrap();

    let digits = "7".repeat(DIGITS);
    let mut long = TaskMessage::new("tasks.add", vec![decimal(&digits), decimal("1")], Map::new());
    long.time_limit = Some(1.0);
    let short: Vec<TaskMessage> = (0..5).map(|i| TaskMessage::new("tasks.add", vec![json!(i), json!(1)], Map::new())).collect();
    let sent = Instant::now();
    publish(&broker, &q, std::slice::from_ref(&long)).await;
    // The long task has started before the short ones are sent.
    common::wait_for_file(&log, &format!("[{}] received", long.id), 10);
    let started = Instant::now();
    publish(&broker, &q, &short).await;
    let ping = control(&broker, &node, "ping", 5).await;
    let mut short_done = vec![];
    for m in &short {
        short_done.push(wait_ready(&backend, &m.id, 30).await);
    }
    let limited = wait_ready(&backend, &long.id, 30).await;
    let meta = backend.get(&long.id).await.unwrap();
    let (state, at) = limited.expect("the long task ends within 30 s");
    let ended_after = at.duration_since(started);
    println!(
        "time limit: received {:.2} s after sending, FAILURE stored {:.2} s after it started; ping answered in {:?}; short tasks done {:?} s after it started",
        started.duration_since(sent).as_secs_f64(),
        ended_after.as_secs_f64(),
        ping.as_ref().map(|p| p.1),
        short_done.iter().map(|d| d.map(|(_, t)| (t.duration_since(started).as_secs_f64() * 100.0).round() / 100.0)).collect::<Vec<_>>()
    );
    assert_eq!(state, TaskState::Failure, "{meta:?}");
    assert!(meta.exception_text().unwrap_or_default().starts_with("TimeLimitExceeded"), "{meta:?}");
    assert!(ended_after < Duration::from_millis(2000), "the 1 s limit answered after {ended_after:?}");
    let (pong, took) = ping.expect("the worker answers ping while the long task computes");
    assert_eq!(pong, json!({"ok": "pong"}));
    assert!(took < Duration::from_secs(1), "ping took {took:?}");
    for (m, d) in short.iter().zip(&short_done) {
        let (state, t) = d.unwrap_or_else(|| panic!("short task {} not done", m.id));
        assert_eq!(state, TaskState::Success);
        assert!(t < at, "the short task {} finished before the long one's limit", m.id);
    }
    assert!(w.0.try_wait().unwrap().is_none(), "the worker is alive");
    // A warm stop does not wait for the computation the limit gave up on.
    w.signal(libc::SIGTERM);
    assert!(w.wait_exit(10).is_some_and(|s| s.success()), "a warm stop within 10 s");
    common::cleanup(&q).await;
}
