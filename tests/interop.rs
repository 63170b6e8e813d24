//! Interoperability with real Python Celery (the venv `.ci/run` creates): the curriculum's
//! `celery_app.py` tasks sent from Python run on `mqlab worker`, and `mqlab submit` sends to a
//! Python `celery worker`.

mod common;

use common::Need;

use std::process::{Command, Stdio};

use serde_json::Value;

#[tokio::test(flavor = "multi_thread")]
async fn python_client_uses_the_mqlab_worker() {
    if !common::have(&[Need::Rabbitmq, Need::Redis, Need::Venv]) {
        return;
    }
    let q = common::queue("py2rs");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("worker.log");
    let _worker = common::start_worker(dir.path(), &q, &["-c", "4", "--hello-seconds", "0.2"], &log);
    let out = Command::new(common::python())
        .arg("submit_and_check.py")
        .current_dir(common::python_dir())
        .env("CELERY_BROKER_URL", common::broker())
        .env("CELERY_RESULT_BACKEND", common::redis())
        .env("MQLAB_TEST_QUEUE", &q)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python failed:\n{stdout}\n{}\nworker log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&log).unwrap()
    );
    let lines: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let by = |t: &str| lines.iter().find(|l| l["task"] == t).unwrap_or_else(|| panic!("no {t} in {stdout}")).clone();
    // Read right after .delay(): PENDING, or STARTED if the worker was already on it.
    assert!(["PENDING", "STARTED"].contains(&by("hello")["state0"].as_str().unwrap()));
    assert_eq!(by("hello")["result"], "Hello, World! This message was processed by Celery.");
    assert_eq!(by("hello")["state"], "SUCCESS");
    assert_eq!(by("add")["result"], 100);
    assert_eq!(by("divide")["result"], 2.5);
    let d0 = by("divide0");
    assert_eq!(d0["raised"], "ZeroDivisionError", "{d0}");
    assert_eq!(d0["message"], "division by zero");
    assert_eq!(d0["state"], "FAILURE");
    assert!(d0["traceback"].as_str().unwrap().contains("ZeroDivisionError: division by zero"));
    assert_eq!(by("add_type")["raised"], "TypeError");
    assert_eq!(by("chain")["result"], 8);
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(log_text.contains("Task tasks.hello[") && log_text.contains("succeeded in"), "{log_text}");
    assert!(log_text.contains("raised unexpected: ZeroDivisionError('division by zero')"), "{log_text}");
    common::cleanup(&q).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mqlab_submit_uses_a_python_celery_worker() {
    if !common::have(&[Need::Rabbitmq, Need::Redis, Need::Venv]) {
        return;
    }
    let q = common::queue("rs2py");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("celery.log");
    let celery = common::python().parent().unwrap().join("celery");
    let child = Command::new(celery)
        .args(["-A", "celery_app", "worker", "-c", "2", "-l", "info", "--without-mingle", "--without-gossip", "-n", &format!("py-{q}@%h")])
        .current_dir(common::python_dir())
        .env("CELERY_BROKER_URL", common::broker())
        .env("CELERY_RESULT_BACKEND", common::redis())
        .env("MQLAB_TEST_QUEUE", &q)
        .env("HELLO_SECONDS", "0.2")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _py = common::Proc(child);
    common::wait_for_file(&log, "ready.", 60);

    let submit = |args: &[&str]| {
        let out =
            common::mqlab(dir.path()).arg("submit").args(args).args(["-Q", &q, "--wait", "--json", "--timeout", "20"]).output().unwrap();
        let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        (out.status.code(), lines, String::from_utf8_lossy(&out.stderr).to_string())
    };
    let (code, lines, err) = submit(&["tasks.hello", "World"]);
    assert_eq!(code, Some(0), "{lines:?} {err}");
    let states: Vec<&str> = lines.iter().filter_map(|l| l["state"].as_str()).collect();
    assert_eq!(states, ["PENDING", "STARTED", "SUCCESS"], "{lines:?}");
    assert_eq!(lines[1]["worker"]["hostname"].as_str().unwrap(), format!("py-{q}@{}", mqlab::celery::protocol::hostname()));
    assert_eq!(lines[2]["result"], "Hello, World! This message was processed by Celery.");

    let (code, lines, _) = submit(&["tasks.add", "42", "58"]);
    assert_eq!(code, Some(0));
    assert_eq!(lines.last().unwrap()["result"], 100);

    let (code, lines, _) = submit(&["tasks.add", "--kwargs", r#"{"x": 1.5, "y": 2}"#]);
    assert_eq!(code, Some(0));
    assert_eq!(lines.last().unwrap()["result"], 3.5);

    let (code, lines, _) = submit(&["tasks.divide", "10", "0"]);
    assert_eq!(code, Some(3), "a failed task exits 3");
    let last = lines.last().unwrap();
    assert_eq!(last["state"], "FAILURE");
    assert_eq!(last["exception"], "ZeroDivisionError: division by zero");
    assert!(last["traceback"].as_str().unwrap().contains("celery_app.py"));

    let out = common::mqlab(dir.path())
        .args(["submit", "tasks.add", "1", "2", "-n", "50", "-Q", &q, "--wait", "--json", "--timeout", "30"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let last: Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(last["succeeded"], 50);
    assert!(last["rate"].as_f64().unwrap() > 0.0);
    common::cleanup(&q).await;
}
