//! The Celery engine against the real RabbitMQ and Redis: declares, message format, results,
//! acks, prefetch, bad input. Every test has its own queue; results live under unique task ids
//! in a test database.

mod common;

use common::Need;

use std::time::Duration;

use lapin::options::BasicGetOptions;
use lapin::types::AMQPValue;
use mqlab::celery::backend::{ResultBackend, ResultMeta, StoreOutcome};
use mqlab::celery::client::{Client, follow};
use mqlab::celery::protocol::{TaskMessage, TaskState};
use mqlab::celery::worker::{self, StopMode, WorkerEvent, WorkerOptions};
use serde_json::{Map, Value, json};

fn opts(queue: &str) -> WorkerOptions {
    let mut o = WorkerOptions::new(common::broker(), Some(common::redis()));
    o.queue = queue.to_string();
    o.concurrency = 4;
    o.hostname = format!("celery@test-{queue}");
    o.settings.hello_delay = Duration::from_millis(50);
    o
}

fn msg(task: &str, args: Value) -> TaskMessage {
    TaskMessage::new(task, args.as_array().unwrap().clone(), Map::new())
}

/// Publishes, waits for every result and returns them by id, with every state seen.
async fn run_tasks(client: &Client, msgs: &[TaskMessage], secs: u64) -> (Vec<ResultMeta>, Vec<(String, TaskState)>) {
    let mut watcher = client.watch(msgs).await.unwrap();
    client.publish(msgs).await.unwrap();
    let mut states = vec![];
    let mut finals = std::collections::HashMap::new();
    let done = follow(&mut watcher, Some(Duration::from_secs(secs)), |m| {
        states.push((m.task_id.clone(), m.status));
        if m.status.is_ready() {
            finals.insert(m.task_id.clone(), m.clone());
        }
    })
    .await
    .unwrap();
    assert!(done, "timed out; states so far: {states:?}");
    (msgs.iter().map(|m| finals[&m.id].clone()).collect(), states)
}

async fn mgmt_get(path: &str) -> Value {
    mqlab::tls::ensure_provider();
    let c = reqwest::Client::new();
    for _ in 0..50 {
        let r = c.get(format!("{}/api/{path}", common::management())).basic_auth("guest", Some("guest")).send().await.unwrap();
        if r.status().is_success() {
            return r.json().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("management API GET {path} kept failing");
}

#[tokio::test(flavor = "multi_thread")]
async fn declares_what_celery_declares() {
    if !common::have(&[Need::Rabbitmq]) {
        return;
    }
    let q = common::queue("declare");
    let client = Client::connect(&common::broker(), None, &q, 3600).await.unwrap();
    let queue = mgmt_get(&format!("queues/%2F/{q}")).await;
    assert_eq!(queue["durable"], true);
    assert_eq!(queue["auto_delete"], false);
    assert_eq!(queue["exclusive"], false);
    // No arguments from the client; RabbitMQ 4 reports the queue type it chose by default.
    let mut args = queue["arguments"].clone();
    if args.get("x-queue-type") == Some(&json!("classic")) {
        args.as_object_mut().unwrap().remove("x-queue-type");
    }
    assert_eq!(args, json!({}));
    let ex = mgmt_get(&format!("exchanges/%2F/{q}")).await;
    assert_eq!(ex["type"], "direct");
    assert_eq!(ex["durable"], true);
    assert_eq!(ex["auto_delete"], false);
    let bindings = mgmt_get(&format!("bindings/%2F/e/{q}/q/{q}")).await;
    assert_eq!(bindings[0]["routing_key"], q.as_str());
    client.close().await;
    common::cleanup(&q).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_have_celery_properties_headers_and_body() {
    if !common::have(&[Need::Rabbitmq]) {
        return;
    }
    let q = common::queue("format");
    let client = Client::connect(&common::broker(), None, &q, 3600).await.unwrap();
    let m = msg("tasks.hello", json!(["World"]));
    client.publish(std::slice::from_ref(&m)).await.unwrap();
    let conn = lapin::Connection::connect(&common::broker(), Default::default()).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    let got = ch.basic_get(q.as_str().into(), BasicGetOptions { no_ack: true }).await.unwrap().expect("a message");
    let d = &got.delivery;
    assert_eq!(d.exchange.as_str(), "");
    assert_eq!(d.routing_key.as_str(), q);
    let p = &d.properties;
    assert_eq!(p.content_type().as_ref().unwrap().as_str(), "application/json");
    assert_eq!(p.content_encoding().as_ref().unwrap().as_str(), "utf-8");
    assert_eq!(p.correlation_id().as_ref().unwrap().as_str(), m.id);
    assert_eq!(p.delivery_mode(), &Some(2));
    assert_eq!(p.priority(), &Some(0));
    let h = p.headers().as_ref().unwrap().inner();
    let expected = [
        "lang",
        "task",
        "id",
        "shadow",
        "eta",
        "expires",
        "group",
        "group_index",
        "retries",
        "timelimit",
        "root_id",
        "parent_id",
        "argsrepr",
        "kwargsrepr",
        "origin",
        "ignore_result",
        "replaced_task_nesting",
        "stamped_headers",
        "stamps",
    ];
    for k in expected {
        assert!(h.contains_key(k), "header {k} missing");
    }
    assert_eq!(h.len(), expected.len());
    // Types py-amqp reads faithfully: S strings, I ints, V for None, A arrays, F tables, t bools.
    assert!(matches!(h.get("task"), Some(AMQPValue::LongString(s)) if s.as_bytes() == b"tasks.hello"));
    assert!(matches!(h.get("retries"), Some(AMQPValue::LongInt(0))));
    assert!(matches!(h.get("replaced_task_nesting"), Some(AMQPValue::LongInt(0))));
    assert!(matches!(h.get("eta"), Some(AMQPValue::Void)));
    assert!(matches!(h.get("ignore_result"), Some(AMQPValue::Boolean(false))));
    assert!(matches!(h.get("stamps"), Some(AMQPValue::FieldTable(t)) if t.inner().is_empty()));
    match h.get("timelimit") {
        Some(AMQPValue::FieldArray(a)) => {
            assert_eq!(a.as_slice(), &[AMQPValue::Void, AMQPValue::Void])
        }
        other => panic!("timelimit {other:?}"),
    }
    assert!(matches!(h.get("argsrepr"), Some(AMQPValue::LongString(s)) if s.as_bytes() == b"('World',)"));
    assert!(matches!(h.get("origin"), Some(AMQPValue::LongString(s)) if s.as_bytes().starts_with(b"gen")));
    let body: Value = serde_json::from_slice(&d.data).unwrap();
    assert_eq!(body, json!([["World"], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]));
    let _ = conn.close(200, "bye".into()).await;
    client.close().await;
    common::cleanup(&q).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn worker_runs_tasks_and_stores_results_like_celery() {
    if !common::have(&[Need::Rabbitmq, Need::Redis]) {
        return;
    }
    let q = common::queue("results");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut w = worker::spawn(opts(&q), Some(tx));
    let client = Client::connect(&common::broker(), Some(&common::redis()), &q, 3600).await.unwrap();
    let msgs = vec![msg("tasks.hello", json!(["World"])), msg("tasks.add", json!([42, 58])), msg("tasks.divide", json!([10, 0]))];
    // Pub/sub alone, in the order the worker published.
    let mut watcher = client.watch(&msgs).await.unwrap();
    client.publish(&msgs).await.unwrap();
    let mut states = vec![];
    let mut finals = std::collections::HashMap::new();
    while finals.len() < msgs.len() {
        let m = tokio::time::timeout(Duration::from_secs(20), watcher.next()).await.expect("results in time").unwrap();
        states.push((m.task_id.clone(), m.status));
        if m.status.is_ready() {
            finals.insert(m.task_id.clone(), m);
        }
    }
    let finals: Vec<ResultMeta> = msgs.iter().map(|m| finals[&m.id].clone()).collect();
    assert_eq!(finals[0].status, TaskState::Success);
    assert_eq!(finals[0].result, json!("Hello, World! This message was processed by Celery."));
    assert_eq!(finals[1].result, json!(100));
    assert_eq!(finals[2].status, TaskState::Failure);
    assert_eq!(finals[2].result, json!({"exc_type": "ZeroDivisionError", "exc_message": ["division by zero"], "exc_module": "builtins"}));
    assert!(finals[2].traceback.as_ref().unwrap().starts_with("Traceback (most recent call last):"));
    assert!(finals[2].date_done.as_ref().unwrap().ends_with("+00:00"));
    // STARTED was published with the worker's pid and node name before the final state.
    for m in &msgs {
        let seen: Vec<TaskState> = states.iter().filter(|(id, _)| id == &m.id).map(|(_, s)| *s).collect();
        assert_eq!(seen.first(), Some(&TaskState::Started), "{seen:?}");
    }
    // The key expires after result_expires (3600 s).
    let mut conn = redis::Client::open(common::redis()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let ttl: i64 = redis::cmd("TTL").arg(ResultBackend::key(&msgs[1].id)).query_async(&mut conn).await.unwrap();
    assert!((3590..=3600).contains(&ttl), "ttl {ttl}");
    // Events for the live views arrive in order for one task.
    let mut kinds = vec![];
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
        match ev {
            WorkerEvent::TaskReceived { id, .. } if id == msgs[1].id => kinds.push("received"),
            WorkerEvent::TaskStarted { id, .. } if id == msgs[1].id => kinds.push("started"),
            WorkerEvent::TaskSucceeded { id, result, .. } if id == msgs[1].id => {
                assert_eq!(result, "100");
                kinds.push("succeeded")
            }
            _ => {}
        }
    }
    assert_eq!(kinds, ["received", "started", "succeeded"]);
    assert_eq!(w.stats.processed(), 3);
    w.stop(StopMode::Warm);
    w.wait().await.unwrap();
    client.close().await;
    common::cleanup(&q).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn success_is_never_overwritten_and_ignore_result_stores_nothing() {
    if !common::have(&[Need::Rabbitmq, Need::Redis]) {
        return;
    }
    let backend = ResultBackend::connect(&common::redis(), 60).await.unwrap();
    let id = uuid::Uuid::new_v4().to_string();
    assert_eq!(backend.store(&ResultMeta::success(&id, json!(4))).await.unwrap(), StoreOutcome::Stored);
    let err = mqlab::celery::tasks::TaskError::new("ValueError", "late");
    assert_eq!(backend.store(&ResultMeta::failure(&id, &err)).await.unwrap(), StoreOutcome::KeptSuccess);
    assert_eq!(backend.store(&ResultMeta::started(&id, 1, "x")).await.unwrap(), StoreOutcome::KeptSuccess);
    assert_eq!(backend.get(&id).await.unwrap().status, TaskState::Success);
    assert_eq!(backend.get("no-such-id").await.unwrap().status, TaskState::Pending);

    let q = common::queue("ignore");
    let mut w = worker::spawn(opts(&q), None);
    let client = Client::connect(&common::broker(), Some(&common::redis()), &q, 3600).await.unwrap();
    let mut ignored = msg("tasks.add", json!([1, 1]));
    ignored.ignore_result = Some(true);
    let marker = msg("tasks.add", json!([2, 2]));
    client.publish(std::slice::from_ref(&ignored)).await.unwrap();
    run_tasks(&client, std::slice::from_ref(&marker), 20).await;
    assert!(common::eventually(5, || async { w.stats.processed() == 2 }).await);
    assert_eq!(backend.get(&ignored.id).await.unwrap().status, TaskState::Pending, "ignore_result stored something");
    w.stop(StopMode::Warm);
    w.wait().await.unwrap();
    common::cleanup(&q).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_messages_never_stop_the_worker() {
    if !common::have(&[Need::Rabbitmq, Need::Redis]) {
        return;
    }
    let q = common::queue("bad");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut w = worker::spawn(opts(&q), Some(tx));
    let client = Client::connect(&common::broker(), Some(&common::redis()), &q, 3600).await.unwrap();
    let backend = client.backend().unwrap().clone();
    let id_json = uuid::Uuid::new_v4().to_string();
    let id_unknown = uuid::Uuid::new_v4().to_string();
    let id_types = uuid::Uuid::new_v4().to_string();
    common::publish_raw(&common::broker(), &q, json!({"task": "tasks.add", "id": id_json}), b"{this is not json", Some("application/json"))
        .await;
    common::publish_raw(
        &common::broker(),
        &q,
        json!({"task": "tasks.no_such_task", "id": id_unknown}),
        br#"[[1], {}, {}]"#,
        Some("application/json"),
    )
    .await;
    common::publish_raw(&common::broker(), &q, json!({"task": "tasks.add"}), br#"[[1, 2], {}, {}]"#, Some("application/json")).await;
    common::publish_raw(
        &common::broker(),
        &q,
        json!({"task": "tasks.add", "id": "pickled"}),
        b"\x80\x04K\x01.",
        Some("application/x-python-serialize"),
    )
    .await;
    common::publish_raw(
        &common::broker(),
        &q,
        json!({"task": "tasks.add", "id": id_types}),
        br#"[[1, "two"], {}, {}]"#,
        Some("application/json"),
    )
    .await;
    common::publish_raw(&common::broker(), &q, json!({}), b"\"just a string\"", Some("application/json")).await;
    // The next good task still runs.
    let (finals, _) = run_tasks(&client, &[msg("tasks.add", json!([2, 3]))], 20).await;
    assert_eq!(finals[0].result, json!(5));

    let failure = |id: String| {
        let backend = backend.clone();
        async move { backend.get(&id).await.unwrap() }
    };
    let m = failure(id_json.clone()).await;
    assert_eq!(m.status, TaskState::Failure);
    assert_eq!(m.result["exc_type"], "DecodeError");
    let m = failure(id_unknown.clone()).await;
    assert_eq!(m.status, TaskState::Failure);
    assert_eq!(m.result, json!({"exc_type": "NotRegistered", "exc_message": ["tasks.no_such_task"], "exc_module": "celery.exceptions"}));
    let m = failure(id_types.clone()).await;
    assert_eq!(m.result["exc_type"], "TypeError");
    assert_eq!(m.result["exc_message"], json!(["unsupported operand type(s) for +: 'int' and 'str'"]));
    // Rejected without requeue: nothing waits in the queue and nothing is redelivered.
    assert_eq!(common::ready_count(&q).await, 0);
    let mut rejected = vec![];
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
        if let WorkerEvent::TaskRejected { reason, .. } = ev {
            rejected.push(reason);
        }
    }
    assert_eq!(rejected.len(), 5, "{rejected:?}");
    assert!(rejected.iter().any(|r| r.contains("header \"id\" is missing")), "{rejected:?}");
    assert!(rejected.iter().any(|r| r.contains("application/x-python-serialize")), "{rejected:?}");
    assert!(rejected.iter().any(|r| r.contains("NotRegistered('tasks.no_such_task')")), "{rejected:?}");
    assert!(!w.is_finished());
    w.stop(StopMode::Warm);
    w.wait().await.unwrap();
    client.close().await;
    common::cleanup(&q).await;
}

/// Late acks (the default here): a task that was running when the worker stopped cold is
/// requeued. Early acks (Celery's default): it is lost.
#[tokio::test(flavor = "multi_thread")]
async fn late_acks_requeue_a_crashed_task_and_early_acks_lose_it() {
    if !common::have(&[Need::Rabbitmq, Need::Redis]) {
        return;
    }
    for acks_late in [true, false] {
        let q = common::queue(if acks_late { "late" } else { "early" });
        let mut o = opts(&q);
        o.acks_late = acks_late;
        o.concurrency = 1;
        o.prefetch_multiplier = 1;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut w = worker::spawn(o, Some(tx));
        let client = Client::connect(&common::broker(), Some(&common::redis()), &q, 3600).await.unwrap();
        let m = msg("tasks.sleep", json!([30]));
        client.publish(std::slice::from_ref(&m)).await.unwrap();
        loop {
            match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.unwrap().unwrap() {
                WorkerEvent::TaskStarted { .. } => break,
                _ => continue,
            }
        }
        w.stop(StopMode::Cold);
        w.wait().await.unwrap();
        let requeued = common::eventually(5, || {
            let q = q.clone();
            async move { common::ready_count(&q).await == 1 }
        })
        .await;
        assert_eq!(requeued, acks_late, "acks_late={acks_late}");
        client.close().await;
        common::cleanup(&q).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn prefetch_is_concurrency_times_multiplier() {
    if !common::have(&[Need::Rabbitmq]) {
        return;
    }
    let q = common::queue("prefetch");
    let mut o = opts(&q);
    o.concurrency = 3;
    o.prefetch_multiplier = 2;
    let mut w = worker::spawn(o, None);
    let client = Client::connect(&common::broker(), None, &q, 3600).await.unwrap();
    let consumers = loop {
        let all = mgmt_get("consumers").await;
        let mine: Vec<Value> = all.as_array().unwrap().iter().filter(|c| c["queue"]["name"] == q.as_str()).cloned().collect();
        if !mine.is_empty() {
            break mine;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(consumers[0]["prefetch_count"], 6);
    assert_eq!(consumers[0]["ack_required"], true);
    // With 20 long tasks queued, at most 6 are taken from the queue.
    let msgs: Vec<TaskMessage> = (0..20).map(|_| msg("tasks.sleep", json!([20]))).collect();
    client.publish(&msgs).await.unwrap();
    assert!(
        common::eventually(5, || {
            let q = q.clone();
            async move { common::ready_count(&q).await == 14 }
        })
        .await
    );
    assert!(common::eventually(5, || async { w.stats.active.load(std::sync::atomic::Ordering::Relaxed) == 3 }).await);
    w.stop(StopMode::Cold);
    w.wait().await.unwrap();
    client.close().await;
    common::cleanup(&q).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn warm_shutdown_finishes_running_tasks_and_requeues_the_rest() {
    if !common::have(&[Need::Rabbitmq, Need::Redis]) {
        return;
    }
    let q = common::queue("warm");
    let mut o = opts(&q);
    o.concurrency = 1;
    o.prefetch_multiplier = 4;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut w = worker::spawn(o, Some(tx));
    let client = Client::connect(&common::broker(), Some(&common::redis()), &q, 3600).await.unwrap();
    let msgs: Vec<TaskMessage> = (0..3).map(|_| msg("tasks.sleep", json!([0.5]))).collect();
    let mut watcher = client.watch(&msgs).await.unwrap();
    client.publish(&msgs).await.unwrap();
    loop {
        if let WorkerEvent::TaskStarted { .. } = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.unwrap().unwrap() {
            break;
        }
    }
    w.stop(StopMode::Warm);
    w.wait().await.unwrap();
    let mut succeeded = 0;
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), watcher.next()).await {
        if m.status == TaskState::Success {
            succeeded += 1;
        }
    }
    assert_eq!(succeeded, 1, "the running task finishes");
    assert_eq!(common::ready_count(&q).await, 2, "the reserved ones go back to the queue");
    client.close().await;
    common::cleanup(&q).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn chains_and_callbacks_from_python_are_followed() {
    if !common::have(&[Need::Rabbitmq, Need::Redis]) {
        return;
    }
    let q = common::queue("chain");
    let mut w = worker::spawn(opts(&q), None);
    let client = Client::connect(&common::broker(), Some(&common::redis()), &q, 3600).await.unwrap();
    let last_id = uuid::Uuid::new_v4().to_string();
    let mut first = msg("tasks.add", json!([2, 2]));
    first.embed.chain = Some(vec![
        json!({"task": "tasks.add", "args": [8], "kwargs": {}, "options": {"task_id": last_id, "queue": q}, "subtask_type": null, "immutable": false}),
    ]);
    let backend = client.backend().unwrap().clone();
    let mut watcher = backend.watch(std::slice::from_ref(&last_id)).await.unwrap();
    client.publish(std::slice::from_ref(&first)).await.unwrap();
    let ok = follow(&mut watcher, Some(Duration::from_secs(10)), |_| {}).await.unwrap();
    assert!(ok);
    let last = backend.get(&last_id).await.unwrap();
    assert_eq!(last.result, json!(12));
    w.stop(StopMode::Warm);
    w.wait().await.unwrap();
    client.close().await;
    common::cleanup(&q).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_credentials_and_unreachable_hosts_are_clear_errors() {
    if !common::have(&[Need::Rabbitmq]) {
        return;
    }
    let mut o = opts("unused");
    o.broker_url = common::broker_as("guest", "wrong-password", "");
    let mut w = worker::spawn(o, None);
    let err = tokio::time::timeout(Duration::from_secs(10), w.wait()).await.unwrap().unwrap_err().to_string();
    assert!(err.contains("login refused"), "{err}");
    assert!(!err.contains("wrong-password"), "{err}");
    let e = Client::connect("amqp://guest:guest@127.0.0.1:1//", None, "x", 1).await.err().unwrap().to_string();
    assert!(e.contains("cannot reach the broker"), "{e}");
    // A vhost the broker does not have: its 530 NOT_ALLOWED, told apart from a login refused.
    let e = mqlab::celery::broker::connect(&common::broker_as("guest", "guest", "mqlab-no-such-vhost"), "test").await.err().unwrap();
    assert!(matches!(e, mqlab::celery::broker::ConnectError::VhostRefused { .. }), "{e}");
    assert!(e.is_permanent());
    let e = mqlab::celery::broker::connect(&common::broker_as("guest", "wrong-password", ""), "test").await.err().unwrap();
    assert!(matches!(e, mqlab::celery::broker::ConnectError::AccessRefused { .. }), "{e}");
    let e = ResultBackend::connect("redis://127.0.0.1:1/0", 1).await.err().unwrap();
    assert!(format!("{e:#}").contains("cannot connect to Redis"), "{e:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn protocol_v1_messages_run_too() {
    if !common::have(&[Need::Rabbitmq, Need::Redis]) {
        return;
    }
    let q = common::queue("v1");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut w = worker::spawn(opts(&q), Some(tx));
    // The queue exists once the worker is ready (a message to a missing queue is dropped).
    while !matches!(rx.recv().await, Some(WorkerEvent::Ready { .. })) {}
    let backend = ResultBackend::connect(&common::redis(), 3600).await.unwrap();
    let id = uuid::Uuid::new_v4().to_string();
    let mut watcher = backend.watch(std::slice::from_ref(&id)).await.unwrap();
    let body = json!({"task": "tasks.add", "id": id, "args": [20, 22], "kwargs": {}, "retries": 0, "eta": null, "expires": null,
        "utc": true, "callbacks": null, "errbacks": null, "timelimit": [null, null], "taskset": null, "chord": null});
    common::publish_raw(&common::broker(), &q, json!({}), &serde_json::to_vec(&body).unwrap(), Some("application/json")).await;
    assert!(follow(&mut watcher, Some(Duration::from_secs(10)), |_| {}).await.unwrap());
    assert_eq!(backend.get(&id).await.unwrap().result, json!(42));
    w.stop(StopMode::Warm);
    w.wait().await.unwrap();
    common::cleanup(&q).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_go_back_to_the_queue_with_the_same_id_and_stop_at_max_retries() {
    if !common::have(&[Need::Rabbitmq, Need::Redis]) {
        return;
    }
    let q = common::queue("retry");
    let mut w = worker::spawn(opts(&q), None);
    let client = Client::connect(&common::broker(), Some(&common::redis()), &q, 3600).await.unwrap();
    let ok = msg("tasks.flaky", json!([2]));
    let never = msg("tasks.flaky", json!([10]));
    let mut states: Vec<(String, TaskState)> = vec![];
    let mut watcher = client.watch(&[ok.clone(), never.clone()]).await.unwrap();
    client.publish(&[ok.clone(), never.clone()]).await.unwrap();
    let done = follow(&mut watcher, Some(Duration::from_secs(20)), |m| states.push((m.task_id.clone(), m.status))).await.unwrap();
    assert!(done);
    let of = |id: &str| states.iter().filter(|(i, _)| i == id).map(|(_, s)| *s).collect::<Vec<_>>();
    use TaskState::*;
    assert_eq!(of(&ok.id), [Started, Retry, Started, Retry, Started, Success]);
    let backend = client.backend().unwrap();
    assert_eq!(backend.get(&ok.id).await.unwrap().result, json!("succeeded after 2 retries"));
    // Celery's max_retries (3): the fourth failure is final.
    assert_eq!(of(&never.id).iter().filter(|s| **s == Retry).count(), 3);
    let last = backend.get(&never.id).await.unwrap();
    assert_eq!(last.status, Failure);
    assert_eq!(last.result["exc_type"], "ConnectionError");
    assert_eq!(last.result["exc_message"], json!(["simulated failure 4 of 10"]));
    w.stop(StopMode::Warm);
    w.wait().await.unwrap();
    client.close().await;
    common::cleanup(&q).await;
}

/// The Celery engine stands alone: nothing under src/celery/ imports the app (config, probes,
/// lessons, tui, cli, sandbox); URL redaction comes from the `redact` leaf.
#[test]
fn the_engine_imports_nothing_from_the_app() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/celery");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for m in ["crate::config", "crate::probes", "crate::lessons", "crate::tui", "crate::cli", "crate::sandbox"] {
            assert!(!text.contains(m), "{} uses {m}", path.display());
        }
    }
}

/// `--statedb`: revoked ids outlive a restart, as with Celery's worker: a task revoked before the
/// restart and published after it is REVOKED without running; the others run.
#[tokio::test(flavor = "multi_thread")]
async fn revoked_ids_survive_a_restart_with_a_state_file() {
    if !common::have(&[Need::Rabbitmq, Need::Redis, Need::Rabbitmqctl]) {
        return;
    }
    let q = common::queue("statedb");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("worker.state");
    let mut o = opts(&q);
    o.statedb = Some(state.clone());
    let start = |o: WorkerOptions| async move {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let w = worker::spawn(o, Some(tx));
        loop {
            if let WorkerEvent::Ready { .. } =
                tokio::time::timeout(Duration::from_secs(20), rx.recv()).await.expect("worker ready").unwrap()
            {
                return w;
            }
        }
    };
    let mut w = start(o.clone()).await;
    let client = Client::connect(&common::broker(), Some(&common::redis()), &q, 3600).await.unwrap();
    let doomed = msg("tasks.add", json!([1, 1]));
    client.broadcast("revoke", json!({"task_id": doomed.id, "terminate": false, "signal": "SIGTERM"})).await.unwrap();
    assert!(
        common::eventually(10, || async { std::fs::read_to_string(&state).is_ok_and(|t| t.contains(&doomed.id)) }).await,
        "the revoke reaches the state file"
    );
    w.stop(StopMode::Warm);
    w.wait().await.unwrap();

    let mut w = start(o).await;
    let fine = msg("tasks.add", json!([2, 2]));
    let (results, _) = run_tasks(&client, &[doomed.clone(), fine.clone()], 20).await;
    assert_eq!(results[0].status, TaskState::Revoked, "{:?}", results[0]);
    assert_eq!(results[1].status, TaskState::Success);
    assert_eq!(results[1].result, json!(4));
    w.stop(StopMode::Warm);
    w.wait().await.unwrap();
    // A damaged state file is a clear error, not an empty set.
    std::fs::write(&state, "not json").unwrap();
    let mut bad = opts(&q);
    bad.statedb = Some(state.clone());
    let err = worker::spawn(bad, None).wait().await.unwrap_err().to_string();
    assert!(err.contains("is not mqlab's"), "{err}");
    client.close().await;
    common::cleanup(&q).await;
}

/// The broker's own count of unacknowledged messages in a queue.
fn broker_unacked(q: &str) -> Option<u64> {
    common::queue_counts(q).map(|(_, unacked)| unacked)
}

/// Acknowledgements go out in batches (`multiple`) but never cover a delivery that is not
/// finished: a task waiting for its ETA and a slow one stay unacknowledged, by the broker's own
/// count, while the 300 quick tasks queued behind them are done and acknowledged; then both
/// finish and nothing is left unacknowledged.
#[tokio::test(flavor = "multi_thread")]
async fn batched_acks_never_cover_an_unfinished_delivery() {
    if !common::have(&[Need::Rabbitmq, Need::Redis]) {
        return;
    }
    let q = common::queue("acks");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut o = opts(&q);
    o.concurrency = 2;
    let mut w = worker::spawn(o, Some(tx));
    while !matches!(rx.recv().await, Some(WorkerEvent::Ready { .. })) {}
    let client = Client::connect(&common::broker(), Some(&common::redis()), &q, 3600).await.unwrap();
    let mut held = msg("tasks.add", json!([1, 1]));
    held.eta = Some(chrono::Utc::now() + chrono::Duration::seconds(8));
    let slow = msg("tasks.sleep", json!([8]));
    let mut late = client.watch(&[held.clone(), slow.clone()]).await.unwrap();
    client.publish(&[held.clone(), slow.clone()]).await.unwrap();
    let quick: Vec<TaskMessage> = (0..300).map(|i| msg("tasks.add", json!([i, 1]))).collect();
    let (results, _) = run_tasks(&client, &quick, 30).await;
    assert!(results.iter().all(|r| r.status == TaskState::Success));
    let backend = ResultBackend::connect(&common::redis(), 3600).await.unwrap();
    let seen = std::sync::Mutex::new(None);
    assert!(
        common::eventually(10, || async {
            let n = broker_unacked(&q);
            *seen.lock().unwrap() = n;
            n == Some(2)
        })
        .await,
        "the quick tasks are acknowledged, the two unfinished ones are not: broker says {:?} unacknowledged",
        seen.lock().unwrap()
    );
    for m in [&held, &slow] {
        let state = backend.get(&m.id).await.map(|r| r.status).ok();
        assert!(!state.is_some_and(|s| s.is_ready()), "{} still unfinished when counted ({state:?})", m.task);
    }
    assert!(follow(&mut late, Some(Duration::from_secs(30)), |_| {}).await.unwrap(), "both finish");
    assert!(common::eventually(10, || async { broker_unacked(&q) == Some(0) }).await, "nothing left unacknowledged");
    w.stop(StopMode::Warm);
    w.wait().await.unwrap();
    client.close().await;
    common::cleanup(&q).await;
}

/// A revoke tells the truth: with no worker online nobody receives it (and the task will run
/// when a worker takes it); with workers online, each one that received it answers.
#[tokio::test(flavor = "multi_thread")]
async fn a_revoke_says_who_received_it() {
    if !common::have(&[Need::Rabbitmq, Need::Management, Need::Redis]) {
        return;
    }
    use mqlab::tui::update::revoke_told;
    let vhost = common::Vhost::new("revoke");
    let broker = vhost.broker();
    let q = common::queue("revoke");
    let client = mqlab::celery::client::Client::connect(&broker, None, &q, 60).await.unwrap();
    let args = || serde_json::json!({"task_id": "0123456789abcdef", "terminate": false, "signal": "SIGTERM"});
    let replies = client.broadcast_gather("revoke", args(), std::time::Duration::from_secs(1)).await.unwrap();
    assert!(replies.is_empty(), "{replies:?}");
    let told = revoke_told("0123456789abcdef", &replies);
    assert!(told.contains("no worker answered") && told.contains("will run when a worker takes it"), "{told}");

    let mut o = mqlab::celery::WorkerOptions::new(&broker, None);
    o.queue = q.clone();
    o.hostname = format!("celery@revoke-{q}");
    let mut w = mqlab::celery::worker::spawn(o, None);
    // Wait until the worker answers control commands (its pidbox is up).
    let mut replies = vec![];
    for _ in 0..50 {
        replies = client.broadcast_gather("revoke", args(), std::time::Duration::from_millis(500)).await.unwrap();
        if !replies.is_empty() {
            break;
        }
    }
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(replies[0].0, format!("celery@revoke-{q}"));
    assert!(replies[0].1["ok"].as_str().unwrap_or("").contains("0123456789abcdef"), "{replies:?}");
    let told = revoke_told("0123456789abcdef", &replies);
    assert!(told.contains("1 worker(s) acknowledged it") && told.contains(&format!("celery@revoke-{q}")), "{told}");
    // A task id with a multi-byte character at byte 8 is shortened without a panic.
    assert_eq!(mqlab::tui::update::short_id("1234567é9"), "1234567é");
    w.stop(mqlab::celery::worker::StopMode::Warm);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), w.wait()).await;
    client.close().await;
}
