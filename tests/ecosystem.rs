//! mqlab's worker as the Celery ecosystem sees it: `celery status`, `celery inspect`, and
//! Celery's event receiver (what Flower uses) with heartbeats and task events.

mod common;

use common::Need;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn celery(args: &[&str]) -> (bool, String) {
    let bin = common::python().parent().unwrap().join("celery");
    let out = Command::new(bin)
        .args(["-A", "celery_app"])
        .args(args)
        .current_dir(common::python_dir())
        .env("CELERY_BROKER_URL", common::broker())
        .env("CELERY_RESULT_BACKEND", common::redis())
        .output()
        .unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test(flavor = "multi_thread")]
async fn celery_status_and_inspect_list_the_mqlab_worker() {
    if !common::have(&[Need::Rabbitmq, Need::Redis, Need::Venv]) {
        return;
    }
    let q = common::queue("inspect");
    let node = format!("celery@rs-{}", &q[q.len() - 8..]);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("w.log");
    let _w = common::start_worker(dir.path(), &q, &["-n", &node, "-c", "2"], &log);
    let (ok, out) = celery(&["status"]);
    assert!(ok && out.contains(&format!("->  {node}: OK")), "{out}");
    let (ok, out) = celery(&["inspect", "ping", "-d", &node]);
    assert!(ok && out.contains("pong"), "{out}");
    let (ok, out) = celery(&["inspect", "registered", "-d", &node]);
    assert!(ok && out.contains("* tasks.hello") && out.contains("* tasks.divide"), "{out}");
    let (ok, out) = celery(&["inspect", "stats", "-d", &node]);
    assert!(ok && out.contains("\"max-concurrency\": 2") && out.contains("\"prefetch_count\": 8"), "{out}");
    // A running task shows in `inspect active`.
    let sub = common::mqlab(dir.path()).args(["submit", "tasks.sleep", "3", "-Q", &q]).output().unwrap();
    assert!(sub.status.success());
    common::wait_for_file(&log, "Task tasks.sleep[", 10);
    let (ok, out) = celery(&["inspect", "active", "-d", &node]);
    assert!(ok && out.contains("'name': 'tasks.sleep'") && out.contains("'worker_pid'"), "{out}");
    // `celery control shutdown` stops it (warm).
    let (ok, out) = celery(&["control", "shutdown", "-d", &node]);
    assert!(ok, "{out}");
    let text = common::wait_for_file(&log, "warm shutdown complete", 15);
    assert!(text.contains("remote shutdown requested"), "{text}");
    common::cleanup(&q).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn celery_event_receiver_sees_heartbeats_and_task_events() {
    if !common::have(&[Need::Rabbitmq, Need::Redis, Need::Venv]) {
        return;
    }
    let q = common::queue("events");
    let node = format!("celery@ev-{}", &q[q.len() - 8..]);
    let dir = tempfile::tempdir().unwrap();
    let mut capture = Command::new(common::python())
        .args(["capture_events.py", "7"])
        .current_dir(common::python_dir())
        .env("CELERY_BROKER_URL", common::broker())
        .env("CELERY_RESULT_BACKEND", common::redis())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = capture.stdout.take().unwrap();
    let (line_tx, line_rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = line_tx.send(l);
        }
    });
    let mut lines: Vec<String> = vec![];
    // Ready signals, not sleeps: the receiver says when it listens; the worker's heartbeat is
    // waited for by reading what the receiver saw.
    let wait_line = |lines: &mut Vec<String>, what: &dyn Fn(&str) -> bool, secs: u64| {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !lines.iter().any(|l| what(l)) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "not seen within {secs}s: {lines:#?}");
            if let Ok(l) = line_rx.recv_timeout(left) {
                lines.push(l);
            }
        }
    };
    wait_line(&mut lines, &|l| l.contains("capture-ready"), 30);
    let log = dir.path().join("w.log");
    let mut w = common::start_worker(dir.path(), &q, &["-n", &node, "-c", "2"], &log);
    let out = common::mqlab(dir.path()).args(["submit", "tasks.add", "2", "3", "-Q", &q, "--wait", "--json"]).output().unwrap();
    assert!(out.status.success());
    let id = serde_json::from_str::<Value>(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap()["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = common::mqlab(dir.path()).args(["submit", "tasks.divide", "1", "0", "-Q", &q, "--wait"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let out = common::mqlab(dir.path()).args(["submit", "tasks.flaky", "1", "-Q", &q, "--wait"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("RETRY"));
    let node_hb = node.clone();
    wait_line(&mut lines, &move |l: &str| l.contains("worker-heartbeat") && l.contains(&node_hb), 15);
    w.signal(libc::SIGTERM);
    assert!(w.wait_exit(10).is_some_and(|s| s.success()), "the worker stops cleanly");
    let deadline = Instant::now() + Duration::from_secs(15);
    while capture.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = capture.kill();
    reader.join().unwrap();
    lines.extend(line_rx.try_iter());
    let events: Vec<Value> =
        lines.iter().filter_map(|l| serde_json::from_str(l).ok()).filter(|e: &Value| e["hostname"] == node.as_str()).collect();
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    for t in [
        "worker-online",
        "worker-heartbeat",
        "task-received",
        "task-started",
        "task-succeeded",
        "task-failed",
        "task-retried",
        "worker-offline",
    ] {
        assert!(types.contains(&t), "no {t} in {types:?}");
    }
    let hb = events.iter().find(|e| e["type"] == "worker-heartbeat").unwrap();
    assert_eq!(hb["freq"], 2.0);
    assert_eq!(hb["sw_ident"], "mqlab");
    let ok = events.iter().find(|e| e["type"] == "task-succeeded" && e["uuid"] == id.as_str()).expect("task-succeeded for our task");
    assert_eq!(ok["result"], "5");
    let failed = events.iter().find(|e| e["type"] == "task-failed").unwrap();
    assert_eq!(failed["exception"], "ZeroDivisionError('division by zero')");
    common::cleanup(&q).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mqlab_follows_a_python_workers_events() {
    if !common::have(&[Need::Rabbitmq, Need::Redis, Need::Venv]) {
        return;
    }
    let q = common::queue("pyevents");
    let dir = tempfile::tempdir().unwrap();
    let node = format!("py-{}@%h", &q[q.len() - 8..]);
    let log = dir.path().join("celery.log");
    let child = Command::new(common::python().parent().unwrap().join("celery"))
        .args(["-A", "celery_app", "worker", "-E", "-c", "2", "-l", "info", "--without-mingle", "--without-gossip", "-n", &node])
        .current_dir(common::python_dir())
        .env("CELERY_BROKER_URL", common::broker())
        .env("CELERY_RESULT_BACKEND", common::redis())
        .env("MQLAB_TEST_QUEUE", &q)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _py = common::Proc(child);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let broker = common::broker();
    let monitor = tokio::spawn(async move { mqlab::celery::events::monitor(&broker, tx).await });
    common::wait_for_file(&log, "ready.", 60);
    let out = common::mqlab(dir.path()).args(["submit", "tasks.add", "20", "22", "-Q", &q, "--wait", "--json"]).output().unwrap();
    assert!(out.status.success());
    let id = serde_json::from_str::<Value>(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap()["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut seen = vec![];
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && !seen.contains(&"task-succeeded".to_string()) {
        if let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await
            && ev.str("uuid") == Some(id.as_str())
        {
            if ev.kind == "task-succeeded" {
                assert_eq!(ev.str("result"), Some("42"));
            }
            seen.push(ev.kind.clone());
        }
    }
    monitor.abort();
    for k in ["task-received", "task-started", "task-succeeded"] {
        assert!(seen.iter().any(|s| s == k), "no {k} from the Python worker: {seen:?}");
    }
    common::cleanup(&q).await;
}
