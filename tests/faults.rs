//! Faults: a worker killed mid-burst, a broker restart, a Redis restart, and a corpus of poison
//! messages. Brokers and Redis that get restarted are private instances started by the test
//! (`mqlab::sandbox`), so nothing else is disturbed. Each test prints its figures.

mod common;

use common::Need;

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use mqlab::celery::backend::ResultBackend;
use mqlab::celery::protocol::{TaskMessage, TaskState};
use mqlab::sandbox::{Rabbit, Redis, find_programs};
use serde_json::{Map, Value, json};

/// Counts of SUCCESS, FAILURE and not-yet-ready among `ids` (MGET, so it survives Redis restarts).
async fn tally(backend: &ResultBackend, ids: &[String]) -> (usize, usize, usize) {
    let mut out = (0, 0, 0);
    for chunk in ids.chunks(500) {
        match backend.get_many(chunk).await {
            Ok(metas) => {
                for m in metas {
                    match m.status {
                        TaskState::Success => out.0 += 1,
                        TaskState::Failure => out.1 += 1,
                        _ => out.2 += 1,
                    }
                }
            }
            Err(_) => out.2 += chunk.len(),
        }
    }
    out
}

async fn wait_done(backend: &ResultBackend, ids: &[String], secs: u64) -> (usize, usize, usize) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let t = tally(backend, ids).await;
        if t.2 == 0 || Instant::now() > deadline {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn wait_successes(backend: &ResultBackend, ids: &[String], at_least: usize, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while tally(backend, ids).await.0 < at_least {
        assert!(Instant::now() < deadline, "fewer than {at_least} results within {secs}s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Task ids that ran to completion more than once, from worker logs.
fn duplicates(logs: &[&Path]) -> usize {
    let mut runs: HashMap<String, usize> = HashMap::new();
    for log in logs {
        for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
            if line.contains("] succeeded in ")
                && let Some(start) = line.find('[').and_then(|_| line.find("Task "))
            {
                let rest = &line[start..];
                if let (Some(a), Some(b)) = (rest.find('['), rest.find(']')) {
                    *runs.entry(rest[a + 1..b].to_string()).or_default() += 1;
                }
            }
        }
    }
    runs.values().filter(|n| **n > 1).count()
}

fn burst(n: usize, task: &str, args: Value) -> (Vec<TaskMessage>, Vec<String>) {
    let msgs: Vec<TaskMessage> = (0..n).map(|_| TaskMessage::new(task, args.as_array().unwrap().clone(), Map::new())).collect();
    let ids = msgs.iter().map(|m| m.id.clone()).collect();
    (msgs, ids)
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_burst_loses_nothing_with_late_acks() {
    if !common::have(&[Need::Rabbitmq, Need::Redis]) {
        return;
    }
    let q = common::queue("sigkill");
    let dir = tempfile::tempdir().unwrap();
    let backend = ResultBackend::connect(&common::redis(), 3600).await.unwrap();
    let (msgs, ids) = burst(1000, "tasks.sleep", json!([0.01]));
    common::publish_tasks(&common::broker(), &q, &msgs).await;
    let (log1, log2) = (dir.path().join("w1.log"), dir.path().join("w2.log"));
    let mut w = common::worker_proc(dir.path(), &common::broker(), &common::redis(), &q, &["-c", "20"], &log1, "f");
    wait_successes(&backend, &ids, 300, 60).await;
    w.signal(libc::SIGKILL);
    w.wait_exit(5).expect("killed");
    let before = tally(&backend, &ids).await.0;
    let _w2 = common::worker_proc(dir.path(), &common::broker(), &common::redis(), &q, &["-c", "20"], &log2, "f");
    let (ok, failed, pending) = wait_done(&backend, &ids, 120).await;
    let dups = duplicates(&[&log1, &log2]);
    println!(
        "SIGKILL mid-burst (late acks): sent 1000, done before kill {before}, completed {ok}, failed {failed}, lost {pending}, duplicates {dups}"
    );
    assert_eq!((ok, failed, pending, dups), (1000, 0, 0, 0));
    let redelivered = std::fs::read_to_string(&log2).unwrap().matches("(redelivered)").count();
    assert!(redelivered > 0, "the killed worker's unacknowledged messages came back");
    common::cleanup(&q).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_with_early_acks_loses_the_running_tasks_as_celery_does() {
    if !common::have(&[Need::Rabbitmq, Need::Redis]) {
        return;
    }
    let q = common::queue("early");
    let dir = tempfile::tempdir().unwrap();
    let backend = ResultBackend::connect(&common::redis(), 3600).await.unwrap();
    let (msgs, ids) = burst(60, "tasks.sleep", json!([0.5]));
    common::publish_tasks(&common::broker(), &q, &msgs).await;
    let log = dir.path().join("w.log");
    let mut w = common::worker_proc(dir.path(), &common::broker(), &common::redis(), &q, &["-c", "5", "--acks-early"], &log, "f");
    wait_successes(&backend, &ids, 10, 30).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    w.signal(libc::SIGKILL);
    w.wait_exit(5);
    let _w2 = common::worker_proc(dir.path(), &common::broker(), &common::redis(), &q, &["-c", "5", "--acks-early"], &log, "f");
    // The lost ones never finish: wait for the rest, then count.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = (0, 0, 0);
    while Instant::now() < deadline {
        let t = tally(&backend, &ids).await;
        if t == last && t.0 >= 50 {
            break;
        }
        last = t;
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let (ok, _, pending) = tally(&backend, &ids).await;
    println!("SIGKILL mid-burst (early acks): sent 60, completed {ok}, lost {pending} (the tasks that were running)");
    assert!((1..=5).contains(&pending), "lost {pending}: expected the running ones (at most the concurrency, 5)");
    common::cleanup(&q).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_restart_mid_burst_all_complete() {
    if !common::have(&[Need::Programs, Need::Redis]) {
        return;
    }
    let programs = find_programs().expect("RabbitMQ and Redis programs (.ci/run installs them)");
    let dir = tempfile::tempdir().unwrap();
    let mut rabbit = Rabbit::start(&programs, &dir.path().join("rabbit"), None, None).await.unwrap();
    let broker = rabbit.broker_url();
    let q = common::queue("brokerrestart");
    let backend = ResultBackend::connect(&common::redis(), 3600).await.unwrap();
    let (msgs, ids) = burst(1000, "tasks.sleep", json!([0.02]));
    common::publish_tasks(&broker, &q, &msgs).await;
    let log = dir.path().join("w.log");
    let _w = common::worker_proc(dir.path(), &broker, &common::redis(), &q, &["-c", "10"], &log, "f");
    wait_successes(&backend, &ids, 200, 60).await;
    let t0 = Instant::now();
    rabbit.restart(&programs).await.unwrap();
    println!("broker restarted in {:.1}s", t0.elapsed().as_secs_f64());
    // From the moment the broker answers again to the worker's line saying it is back.
    let back = Instant::now();
    common::wait_for_file(&log, "connection to broker re-established", 60);
    println!("worker reconnected {:.2} s after the broker answered again", back.elapsed().as_secs_f64());
    let (ok, failed, pending) = wait_done(&backend, &ids, 120).await;
    let dups = duplicates(&[&log]);
    println!("broker restart mid-burst: sent 1000, completed {ok}, failed {failed}, lost {pending}, duplicates {dups}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!((ok, failed, pending, dups), (1000, 0, 0, 0), "{}", text.lines().rev().take(20).collect::<Vec<_>>().join("\n"));
    assert_eq!(text.matches("connection to broker lost").count(), 1, "one line for the outage");
    assert_eq!(text.matches("connection to broker re-established").count(), 1, "one line for the recovery");
    rabbit.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_restart_mid_burst_all_results_stored() {
    if !common::have(&[Need::Programs, Need::Rabbitmq]) {
        return;
    }
    let programs = find_programs().expect("RabbitMQ and Redis programs (.ci/run installs them)");
    let dir = tempfile::tempdir().unwrap();
    let mut redis = Redis::start(&programs, &dir.path().join("redis"), None).await.unwrap();
    let url = redis.url();
    let q = common::queue("redisrestart");
    let (msgs, ids) = burst(1000, "tasks.sleep", json!([0.01]));
    common::publish_tasks(&common::broker(), &q, &msgs).await;
    let log = dir.path().join("w.log");
    let _w = common::worker_proc(dir.path(), &common::broker(), &url, &q, &["-c", "10"], &log, "f");
    let backend = ResultBackend::connect(&url, 3600).await.unwrap();
    wait_successes(&backend, &ids, 200, 60).await;
    redis.restart(&programs).await.unwrap();
    let (ok, failed, pending) = wait_done(&backend, &ids, 120).await;
    let dups = duplicates(&[&log]);
    println!("Redis restart mid-burst: sent 1000, results stored {ok}, failed {failed}, missing {pending}, duplicates {dups}");
    assert_eq!((ok, failed, pending, dups), (1000, 0, 0, 0));
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.matches("result backend: cannot store results").count(), 1, "one line for the outage");
    assert_eq!(text.matches("result backend: connection re-established").count(), 1, "one line for the recovery");
    // Late acks: nothing was acknowledged without its result, so nothing is left in the queue.
    assert_eq!(common::ready_count(&q).await, 0);
    redis.stop().await;
    common::cleanup(&q).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn poison_corpus_leaves_the_worker_running_and_good_tasks_done() {
    if !common::have(&[Need::Rabbitmq, Need::Redis]) {
        return;
    }
    let q = common::queue("poison");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("w.log");
    let mut w = common::start_worker(dir.path(), &q, &["-c", "4"], &log);
    let broker = common::broker();
    let backend = ResultBackend::connect(&common::redis(), 3600).await.unwrap();
    let id = || uuid::Uuid::new_v4().to_string();
    let json_ct = Some("application/json");
    let huge = format!("[[\"{}\"], {{}}, {{}}]", "x".repeat(6 * 1024 * 1024));
    let corpus: Vec<(&str, Value, Vec<u8>, Option<&str>)> = vec![
        ("bad JSON", json!({"task": "tasks.add", "id": id()}), b"[[1, 2], {".to_vec(), json_ct),
        ("wrong content type", json!({"task": "tasks.add", "id": id()}), b"\x80\x04\x95".to_vec(), Some("application/x-python-serialize")),
        ("no content type, not JSON", json!({"task": "tasks.add", "id": id()}), b"\xff\xfe".to_vec(), None),
        ("missing id header", json!({"task": "tasks.add"}), b"[[1, 2], {}, {}]".to_vec(), json_ct),
        ("task header not a string", json!({"task": 42, "id": id()}), b"[[1, 2], {}, {}]".to_vec(), json_ct),
        ("retries wrongly typed", json!({"task": "tasks.add", "id": id(), "retries": "many"}), b"[[1, 2], {}, {}]".to_vec(), json_ct),
        ("timelimit wrongly typed", json!({"task": "tasks.add", "id": id(), "timelimit": "soon"}), b"[[1, 2], {}, {}]".to_vec(), json_ct),
        ("eta not a time", json!({"task": "tasks.add", "id": id(), "eta": "tomorrow"}), b"[[1, 2], {}, {}]".to_vec(), json_ct),
        ("unknown task", json!({"task": "tasks.nope", "id": id()}), b"[[1, 2], {}, {}]".to_vec(), json_ct),
        ("body not a list", json!({"task": "tasks.add", "id": id()}), b"{\"args\": [1]}".to_vec(), json_ct),
        ("args not a list", json!({"task": "tasks.add", "id": id()}), b"[7, {}, {}]".to_vec(), json_ct),
        ("wrong argument types", json!({"task": "tasks.add", "id": id()}), b"[[1, \"x\"], {}, {}]".to_vec(), json_ct),
        ("too many arguments", json!({"task": "tasks.add", "id": id()}), b"[[1, 2, 3], {}, {}]".to_vec(), json_ct),
        (
            "unknown kombu type",
            json!({"task": "tasks.add", "id": id()}),
            b"[[{\"__type__\": \"pickle\", \"__value__\": 1}, 2], {}, {}]".to_vec(),
            json_ct,
        ),
        ("no headers, v1 body without id", json!({}), b"{\"task\": \"tasks.add\"}".to_vec(), json_ct),
        ("huge body (6 MB) with a bad argument", json!({"task": "tasks.add", "id": id()}), huge.into_bytes(), json_ct),
        ("empty body", json!({"task": "tasks.add", "id": id()}), vec![], json_ct),
    ];
    let mut good_ids = vec![];
    for (i, (_, h, body, ct)) in corpus.iter().enumerate() {
        common::publish_raw(&broker, &q, h.clone(), body, *ct).await;
        let good = TaskMessage::new("tasks.add", vec![json!(i), json!(1)], Map::new());
        good_ids.push(good.id.clone());
        common::publish_tasks(&broker, &q, std::slice::from_ref(&good)).await;
    }
    let (ok, _, pending) = wait_done(&backend, &good_ids, 60).await;
    assert!(w.0.try_wait().unwrap().is_none(), "the worker is alive");
    let mut bad_failures = 0;
    for (name, h, _, _) in &corpus {
        if let Some(id) = h.get("id").and_then(Value::as_str) {
            // Every bad message whose id is readable ends as FAILURE (the big one takes longest).
            let deadline = Instant::now() + Duration::from_secs(30);
            let m = loop {
                let m = backend.get(id).await.unwrap();
                if m.status.is_ready() || Instant::now() > deadline {
                    break m;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            assert!(m.status == TaskState::Failure, "{name}: {m:?}");
            bad_failures += 1;
        }
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let rejected = text.matches("rejected").count();
    println!(
        "poison corpus: {} bad messages ({bad_failures} stored as FAILURE, {rejected} log lines of rejection), {} good tasks: {ok} done, {pending} missing",
        corpus.len(),
        good_ids.len()
    );
    assert_eq!((ok, pending), (good_ids.len(), 0));
    assert_eq!(common::ready_count(&q).await, 0, "nothing poisonous is requeued");
    w.signal(libc::SIGTERM);
    assert!(w.wait_exit(10).unwrap().success());
    common::cleanup(&q).await;
}

/// Hardening: headers nested 10,000 levels deep (an array and a table) reach the worker's I/O
/// thread, time limits no Duration can hold, and result keys of the wrong type. The worker stays
/// up (with the stack it gives itself: no RUST_MIN_STACK from outside), every good task is done,
/// each bad one is rejected or FAILURE, and no slot is held.
#[tokio::test(flavor = "multi_thread")]
async fn deep_headers_huge_limits_and_wrong_result_keys_stop_nothing() {
    if !common::have(&[Need::Rabbitmq, Need::Redis]) {
        return;
    }
    let q = common::queue("harden");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("w.log");
    let child = common::mqlab(dir.path())
        .env_remove("RUST_MIN_STACK")
        .args(["worker", "-Q", &q, "-c", "2", "-n", &format!("h-{}", &q[q.len() - 8..])])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut w = common::Proc(child);
    common::wait_for_file(&log, "ready.", 20);
    let broker = common::broker();
    let backend = ResultBackend::connect(&common::redis(), 3600).await.unwrap();
    let id = || uuid::Uuid::new_v4().to_string();
    let mut deep_array = json!("bottom");
    for _ in 0..10_000 {
        deep_array = Value::Array(vec![deep_array]);
    }
    let mut deep_table = json!("bottom");
    for _ in 0..10_000 {
        let mut m = Map::new();
        m.insert("k".into(), deep_table);
        deep_table = Value::Object(m);
    }
    let body = b"[[1, 2], {}, {}]".to_vec();
    let (array_id, table_id) = (id(), id());
    let mut sent = 0;
    common::publish_raw(&broker, &q, json!({"task": "tasks.add", "id": array_id, "evil": deep_array}), &body, Some("application/json"))
        .await;
    common::publish_raw(&broker, &q, json!({"task": "tasks.add", "id": table_id, "evil": deep_table}), &body, Some("application/json"))
        .await;
    sent += 2;
    // Time limits: a huge one is held to a year (the task finishes at once); a negative one is none.
    let (huge_id, negative_id) = (id(), id());
    common::publish_raw(
        &broker,
        &q,
        json!({"task": "tasks.add", "id": huge_id, "timelimit": [1e30, null]}),
        &body,
        Some("application/json"),
    )
    .await;
    common::publish_raw(
        &broker,
        &q,
        json!({"task": "tasks.add", "id": negative_id, "timelimit": [-5, -1]}),
        &body,
        Some("application/json"),
    )
    .await;
    sent += 2;
    // Two tasks whose result keys hold a list: Redis answers WRONGTYPE; with -c 2 they would
    // have held both slots for ever.
    let wrong: Vec<String> = (0..2).map(|_| id()).collect();
    {
        let client = redis::Client::open(common::redis()).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        for i in &wrong {
            let _: () = redis::cmd("RPUSH").arg(ResultBackend::key(i)).arg("not a result").query_async(&mut c).await.unwrap();
        }
    }
    for i in &wrong {
        common::publish_raw(&broker, &q, json!({"task": "tasks.add", "id": i}), &body, Some("application/json")).await;
    }
    sent += wrong.len();
    let (goods, good_ids) = burst(20, "tasks.add", json!([2, 3]));
    common::publish_tasks(&broker, &q, &goods).await;
    sent += goods.len();

    let (ok, failed, pending) = wait_done(&backend, &good_ids, 60).await;
    assert!(w.0.try_wait().unwrap().is_none(), "the worker is alive:\n{}", std::fs::read_to_string(&log).unwrap());
    let status = |i: String| {
        let b = &backend;
        async move { b.get(&i).await.map(|m| m.status).ok() }
    };
    let mut bad_ok = 0;
    for i in [&array_id, &table_id] {
        let mut s = None;
        for _ in 0..100 {
            s = status(i.clone()).await;
            if s == Some(TaskState::Failure) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(s, Some(TaskState::Failure), "a deep header is a DecodeError stored as FAILURE");
        bad_ok += 1;
    }
    for i in [&huge_id, &negative_id] {
        assert_eq!(status(i.clone()).await, Some(TaskState::Success), "a limit no Duration holds does not stop the task");
        bad_ok += 1;
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let refused = wrong.iter().filter(|i| text.contains(&format!("refused the SUCCESS result of task {i}"))).count();
    assert_eq!(refused, wrong.len(), "each WRONGTYPE result is given up with a clear line:\n{text}");
    let done = ok + failed + bad_ok + refused;
    let lost = sent - done - pending;
    let dups = duplicates(&[&log]);
    println!("hardening corpus: sent {sent} / completed {done} / lost {lost} / duplicates {dups} (good: {ok} SUCCESS, {pending} missing)");
    assert_eq!((ok, failed, pending, lost, dups), (good_ids.len(), 0, 0, 0, 0));
    assert_eq!(common::ready_count(&q).await, 0, "nothing is left in the queue");
    w.signal(libc::SIGTERM);
    assert!(w.wait_exit(15).is_some_and(|s| s.success()), "a warm stop does not hang");
    common::cleanup(&q).await;
}

/// The worker waits for Redis at start, as it does for the broker, and works once it is there.
#[tokio::test(flavor = "multi_thread")]
async fn the_worker_waits_for_redis_at_start() {
    if !common::have(&[Need::Programs, Need::Rabbitmq]) {
        return;
    }
    let programs = find_programs().expect("RabbitMQ and Redis programs (.ci/run installs them)");
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let redis_url = format!("redis://127.0.0.1:{port}/0");
    let q = common::queue("waitredis");
    let log = dir.path().join("w.log");
    let mut w = common::worker_proc(dir.path(), &common::broker(), &redis_url, &q, &["-c", "2"], &log, "f");
    common::wait_for_file(&log, "waiting for Redis before consuming", 20);
    assert!(w.0.try_wait().unwrap().is_none(), "still running while Redis is away");
    let redis = Redis::start(&programs, &dir.path().join("redis"), Some(port)).await.unwrap();
    common::wait_for_file(&log, "ready.", 30);
    let (msgs, ids) = burst(5, "tasks.add", json!([1, 1]));
    common::publish_tasks(&common::broker(), &q, &msgs).await;
    let backend = ResultBackend::connect(&redis_url, 3600).await.unwrap();
    assert_eq!(wait_done(&backend, &ids, 30).await, (5, 0, 0));
    w.signal(libc::SIGTERM);
    assert!(w.wait_exit(15).is_some_and(|s| s.success()));
    redis.stop().await;
    common::cleanup(&q).await;
}

/// A queue the broker refuses (a name with the reserved prefix `amq.`: 403) ends the worker with
/// one clear error, instead of retrying for ever. (An empty name never reaches the broker: it is
/// a usage error, see tests/limits.rs.)
#[test]
fn a_refused_queue_is_one_clear_error() {
    if !common::have(&[Need::Rabbitmq]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = common::mqlab(dir.path()).args(["worker", "-Q", "amq.mqlab-refused"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.matches("the broker refused to declare queue").count(), 2, "the log line and the error: {err}");
    assert!(!err.contains('\u{1b}'), "no escape codes in a log that is not a terminal: {err:?}");
}

/// A Redis that wants a password: without one in the URL the worker stops at start with one
/// clear line saying so; a wrong one likewise, masked; and when Redis starts asking while the
/// worker runs (a password set, connections dropped), that is an outage: the results wait, named
/// once (NOAUTH), their messages stay unacknowledged, and once Redis stops asking every task's
/// result is stored and its message acknowledged.
#[tokio::test(flavor = "multi_thread")]
async fn a_redis_that_wants_a_password_is_named_not_waited_for() {
    if !common::have(&[Need::Programs, Need::Rabbitmq]) {
        return;
    }
    let programs = find_programs().expect("RabbitMQ and Redis programs (.ci/run installs them)");
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(&programs, &dir.path().join("redis"), None).await.unwrap();
    let url = redis.url();
    let admin = redis::Client::open(url.as_str()).unwrap();
    let mut con = admin.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("CONFIG").arg("SET").arg("requirepass").arg("s3cret-pw").query_async(&mut con).await.unwrap();
    let q = common::queue("noauth");
    // The check says so too, from Redis's own error code.
    let o = common::mqlab(dir.path())
        .env("MQLAB_RESULT_BACKEND", &url)
        .env("MQLAB_TRACK", "local")
        .args(["check", "--id", "redis.ping", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["results"][0]["detail"], "Redis wants a password (NOAUTH)", "{v}");

    for (given, expect) in [(url.clone(), "NOAUTH"), (url.replace("redis://", "redis://:wrong-pw@"), "authentication failed")] {
        let log = dir.path().join(format!("start-{}.log", given.len()));
        let mut w = common::worker_proc(dir.path(), &common::broker(), &given, &q, &["-c", "2"], &log, "f");
        let status = w.wait_exit(20).expect("the worker stops instead of waiting");
        assert!(!status.success());
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.to_lowercase().contains(&expect.to_lowercase()), "{expect} named: {text}");
        assert!(!text.contains("waiting for Redis"), "a refused login is not an outage: {text}");
        assert!(!text.contains("wrong-pw"), "the password is masked: {text}");
    }

    // Redis starts asking while the worker runs.
    let _: () = redis::cmd("AUTH").arg("s3cret-pw").query_async(&mut con).await.unwrap();
    let _: () = redis::cmd("CONFIG").arg("SET").arg("requirepass").arg("").query_async(&mut con).await.unwrap();
    let log = dir.path().join("running.log");
    let mut w = common::worker_proc(dir.path(), &common::broker(), &url, &q, &["-c", "2"], &log, "f");
    common::wait_for_file(&log, "ready.", 30);
    let _: () = redis::cmd("CONFIG").arg("SET").arg("requirepass").arg("s3cret-pw").query_async(&mut con).await.unwrap();
    let _: () = redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("normal").arg("SKIPME").arg("yes").query_async(&mut con).await.unwrap();
    let (msgs, ids) = burst(20, "tasks.add", json!([1, 1]));
    common::publish_tasks(&common::broker(), &q, &msgs).await;
    // Dropped connections first, then NOAUTH: the outage is named, and so is its cause.
    let text = common::wait_for_file(&log, "NOAUTH", 30);
    assert_eq!(text.matches("result backend: cannot store results").count(), 1, "one line for the outage: {text}");
    let held = || common::queue_counts(&q).map(|(r, u)| r + u);
    assert_eq!(held(), Some(20), "no message is acknowledged while its result waits");
    assert!(w.0.try_wait().unwrap().is_none(), "the worker goes on");
    let _: () = redis::cmd("CONFIG").arg("SET").arg("requirepass").arg("").query_async(&mut con).await.unwrap();
    let backend = ResultBackend::connect(&url, 3600).await.unwrap();
    let (ok, failed, pending) = wait_done(&backend, &ids, 30).await;
    assert!(common::eventually(10, || async { common::ready_count(&q).await == 0 && held() == Some(0) }).await, "every task acknowledged");
    let text = std::fs::read_to_string(&log).unwrap();
    println!("NOAUTH while running: sent 20, stored {ok} SUCCESS, {failed} FAILURE, {pending} missing once Redis stopped asking");
    assert_eq!((ok, failed, pending), (20, 0, 0));
    assert_eq!(text.matches("NOAUTH").count(), 1, "one line for the outage: {text}");
    w.signal(libc::SIGTERM);
    assert!(w.wait_exit(15).is_some_and(|s| s.success()), "a warm stop still ends");
    redis.stop().await;
    common::cleanup(&q).await;
}
