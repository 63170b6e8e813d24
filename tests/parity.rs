//! Celery parity, side by side: the same Python client script against mqlab's worker and a
//! Python Celery worker from the test venv, asserting the same outcomes from both.

mod common;

use std::process::{Command, Stdio};

use serde_json::Value;

fn python_worker(q: &str, node: &str, log: &std::path::Path) -> common::Proc {
    let celery = common::python().parent().unwrap().join("celery");
    let child = Command::new(celery)
        .args(["-A", "celery_app", "worker", "-c", "2", "-l", "info", "--without-mingle", "--without-gossip", "-n", node])
        .current_dir(common::python_dir())
        .env("CELERY_BROKER_URL", common::broker())
        .env("CELERY_RESULT_BACKEND", common::redis())
        .env("MQLAB_TEST_QUEUE", q)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let p = common::Proc(child);
    common::wait_for_file(log, "ready.", 60);
    p
}

fn run_revoke_script(q: &str, node: &str) -> Value {
    let out = Command::new(common::python())
        .args(["revoke.py", node])
        .current_dir(common::python_dir())
        .env("CELERY_BROKER_URL", common::broker())
        .env("CELERY_RESULT_BACKEND", common::redis())
        .env("MQLAB_TEST_QUEUE", q)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(String::from_utf8_lossy(&out.stdout).lines().last().unwrap().as_bytes()).unwrap()
}

fn assert_revoke_outcomes(who: &str, v: &Value) {
    assert_eq!(v["eta"]["state"], "REVOKED", "{who}: a task revoked while waiting for its ETA: {v}");
    assert_eq!(v["terminate"]["state"], "REVOKED", "{who}: a running task revoked with terminate: {v}");
    assert!(v["terminate"]["seconds"].as_f64().unwrap_or(99.0) < 10.0, "{who}: terminated at once, not after 30 s: {v}");
    assert_eq!(v["after"], 5, "{who}: the worker goes on: {v}");
    let listed: Vec<&str> = v["revoked"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    for id in v["ids"].as_array().unwrap() {
        assert!(listed.contains(&id.as_str().unwrap()), "{who}: inspect revoked lists {id}: {v}");
    }
}

#[test]
fn revoke_every_form_on_both_workers() {
    // Python Celery's worker.
    let q = common::queue("revoke-py");
    let dir = tempfile::tempdir().unwrap();
    let node = format!("py-{}@{}", &q[q.len() - 8..], mqlab::celery::protocol::hostname());
    let py = python_worker(&q, &node, &dir.path().join("py.log"));
    let python = run_revoke_script(&q, &node);
    drop(py);
    assert_revoke_outcomes("Python Celery", &python);

    // mqlab's worker, the same script.
    let q = common::queue("revoke-mq");
    let node = format!("mq-{}@{}", &q[q.len() - 8..], mqlab::celery::protocol::hostname());
    let log = dir.path().join("mq.log");
    let _w = common::start_worker(dir.path(), &q, &["-n", &node, "-c", "2"], &log);
    let mqlab = run_revoke_script(&q, &node);
    assert_revoke_outcomes("mqlab", &mqlab);
    println!("revoke, Python Celery: {python}\nrevoke, mqlab: {mqlab}");
}

fn run_script(script: &str, q: &str, args: &[&str]) -> Value {
    let out = Command::new(common::python())
        .arg(script)
        .args(args)
        .current_dir(common::python_dir())
        .env("CELERY_BROKER_URL", common::broker())
        .env("CELERY_RESULT_BACKEND", common::redis())
        .env("MQLAB_TEST_QUEUE", q)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(String::from_utf8_lossy(&out.stdout).lines().last().unwrap().as_bytes()).unwrap()
}

/// Compressed task bodies (zlib, gzip, bzip2, lzma), as Celery's task_compression sends them:
/// the same outcomes on both workers.
#[test]
fn compressed_messages_on_both_workers() {
    let dir = tempfile::tempdir().unwrap();
    let q = common::queue("zip-py");
    let node = format!("pyz-{}@{}", &q[q.len() - 8..], mqlab::celery::protocol::hostname());
    let py = python_worker(&q, &node, &dir.path().join("py.log"));
    let python = run_script("compressed.py", &q, &[]);
    drop(py);
    let q = common::queue("zip-mq");
    let _w = common::start_worker(dir.path(), &q, &["-c", "2"], &dir.path().join("mq.log"));
    let mqlab = run_script("compressed.py", &q, &[]);
    for m in ["zlib", "gzip", "bzip2", "lzma"] {
        assert_eq!(python[m], serde_json::json!({"result": 42, "state": "SUCCESS"}), "Python Celery, {m}: {python}");
        assert_eq!(mqlab[m], python[m], "mqlab, {m}: {mqlab}");
    }
}
