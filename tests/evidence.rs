//! Ticks from evidence: the project `mqlab init` writes, run with the real Python Celery of the
//! test venv, ticks the checklist's Python items; mqlab's own worker and tasks never do.
//!
//! Isolation: a vhost of its own on the local RabbitMQ (so no other test's worker heartbeat is
//! seen) and a Redis database of its own per test (12, 14, 15: so no other test's results are).

mod common;

use common::Need;

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

/// The test Redis, database `db`: each test here has its own (they run side by side).
fn redis_db(db: u32) -> String {
    let mut u = url::Url::parse(&common::redis()).expect("MQLAB_TEST_REDIS is a URL");
    u.set_path(&format!("/{db}"));
    u.to_string()
}

fn mgmt(method: reqwest::Method, path: &str, body: Option<Value>) -> u16 {
    let (base, user, pass) = (common::management(), "guest", "guest");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        mqlab::tls::ensure_provider();
        let c = reqwest::Client::new();
        let mut r = c.request(method, format!("{base}{path}")).basic_auth(user, Some(pass));
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.map(|r| r.status().as_u16()).unwrap_or(0)
    })
}

struct Vhost(String);

impl Drop for Vhost {
    fn drop(&mut self) {
        mgmt(reqwest::Method::DELETE, &format!("/api/vhosts/{}", self.0), None);
    }
}

fn flush_db(db: u32) {
    let client = redis::Client::open(redis_db(db)).unwrap();
    let mut c = client.get_connection().unwrap();
    let _: () = redis::cmd("FLUSHDB").query(&mut c).unwrap();
}

fn mqlab(data: &Path, broker: &str, db: u32) -> Command {
    let mut c = common::mqlab(data);
    c.env("MQLAB_BROKER_URL", broker).env("MQLAB_RESULT_BACKEND", redis_db(db)).env("MQLAB_TRACK", "local");
    c
}

/// Runs the three evidence checks and returns each one's status.
fn evidence(data: &Path, broker: &str, db: u32) -> Vec<(String, String, String)> {
    let out = mqlab(data, broker, db)
        .args([
            "check",
            "--json",
            "--id",
            "celery.py_worker",
            "--id",
            "celery.py_tasks",
            "--id",
            "results.learner",
            "--id",
            "results.learner_failure",
        ])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (r["id"].as_str().unwrap().to_string(), r["status"].as_str().unwrap().to_string(), r["detail"].as_str().unwrap().to_string())
        })
        .collect()
}

#[test]
fn the_learners_own_python_ticks_the_python_items_and_mqlab_never_does() {
    const DB: u32 = 12;
    if !common::have(&[Need::Rabbitmq, Need::Management, Need::Redis, Need::Venv]) {
        return;
    }
    let name = format!("mqlab-evidence-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    assert_eq!(mgmt(reqwest::Method::PUT, &format!("/api/vhosts/{name}"), None) / 100, 2, "create the vhost (management plugin on?)");
    let _vhost = Vhost(name.clone());
    let perms = serde_json::json!({"configure": ".*", "write": ".*", "read": ".*"});
    assert_eq!(mgmt(reqwest::Method::PUT, &format!("/api/permissions/{name}/guest"), Some(perms)) / 100, 2);
    let broker = common::broker_as("guest", "guest", &name);
    flush_db(DB);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    // mqlab's own worker and tasks: the pipeline works, the Python items stay unticked.
    let log = dir.path().join("worker.log");
    let file = std::fs::File::create(&log).unwrap();
    let child = mqlab(&data, &broker, DB).args(["worker", "-n", "own@%h"]).stdout(Stdio::null()).stderr(file).spawn().unwrap();
    let mut own = common::Proc(child);
    common::wait_for_file(&log, "ready.", 20);
    for args in [&["tasks.add", "1", "2"][..], &["tasks.divide", "1", "0"][..]] {
        let out = mqlab(&data, &broker, DB).arg("submit").args(args).args(["--wait", "--timeout", "20"]).output().unwrap();
        assert!(matches!(out.status.code(), Some(0 | 3)), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let checked = evidence(&data, &broker, DB);
    assert!(checked.iter().all(|(_, status, _)| status == "fail"), "mqlab's own work counts for nothing: {checked:#?}");
    own.signal(libc::SIGTERM);
    assert!(own.wait_exit(15).is_some_and(|s| s.success()), "the worker stops cleanly");

    // The learner's project, written by mqlab init, with the real Celery of the venv.
    let project = dir.path().join("project");
    let out = mqlab(&data, &broker, DB).arg("init").arg(&project).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bin = common::python().parent().unwrap().to_path_buf();
    let plog = dir.path().join("celery.log");
    let child = Command::new(bin.join("celery"))
        .args(["-A", "celery_app", "worker", "-c", "2", "-l", "info", "--without-mingle", "--without-gossip", "-n", "py-evidence@%h"])
        .current_dir(&project)
        .env_remove("CELERY_BROKER_URL")
        .env_remove("CELERY_RESULT_BACKEND")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&plog).unwrap())
        .spawn()
        .unwrap();
    let _py = common::Proc(child);
    common::wait_for_file(&plog, "ready.", 60);
    let out = Command::new(bin.join("python")).arg("submit_task.py").current_dir(&project).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("add completed: 100") && !text.contains("divide"), "the first submitter sends hello and add only: {text}");
    // Experiment 4, as the learner adds it.
    let exp4 = "from celery_app import divide_task\nr = divide_task.delay(10, 0)\ntry:\n    r.get(timeout=5)\nexcept ZeroDivisionError as e:\n    print('Task failed as expected:', e)\n";
    let out = Command::new(bin.join("python")).args(["-c", exp4]).current_dir(&project).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Task failed as expected: division by zero"), "{text}\n{}", String::from_utf8_lossy(&out.stderr));

    let checked = evidence(&data, &broker, DB);
    for (id, status, detail) in &checked {
        assert_eq!(status, "pass", "{id}: {detail}");
    }
    assert!(checked[0].2.contains("py-evidence@") && checked[0].2.contains("Celery 5."), "{checked:#?}");
    let out = mqlab(&data, &broker, DB).args(["progress", "--json"]).output().unwrap();
    let p: Value = serde_json::from_slice(&out.stdout).unwrap();
    for item in ["worker", "delay", "celery_app", "failures"] {
        let tick = &p["checklist"][item];
        assert!(tick["by"].as_str().unwrap().starts_with("check:"), "{item} ticked by a check: {p:#}");
        assert!(!tick["evidence"].as_str().unwrap_or("").is_empty(), "{item} keeps its evidence: {p:#}");
    }
    assert!(p["checklist"].get("get").is_none(), ".get() cannot be observed: it is ticked by hand only");
    flush_db(DB);
}

/// One check, by `mqlab check --id`: its status and detail.
fn check(data: &Path, broker: &str, db: u32, id: &str) -> (String, String) {
    let out = mqlab(data, broker, db).args(["check", "--json", "--id", id]).output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let r = &v["results"][0];
    (r["status"].as_str().unwrap().to_string(), r["detail"].as_str().unwrap().to_string())
}

/// Routing, as the learner does it: by hand to `amq.topic` through a pattern binding (Step 3),
/// then with `task_routes` in their own Celery app and a second Python worker on `-Q math`
/// (Step 9). Each check fails before the learner's action, says which part is missing, and
/// passes after it.
#[test]
fn routing_by_hand_and_by_task_routes_is_seen_on_the_broker() {
    const DB: u32 = 14;
    if !common::have(&[Need::Rabbitmq, Need::Management, Need::Redis, Need::Venv]) {
        return;
    }
    let name = format!("mqlab-routing-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    assert_eq!(mgmt(reqwest::Method::PUT, &format!("/api/vhosts/{name}"), None) / 100, 2, "create the vhost (management plugin on?)");
    let _vhost = Vhost(name.clone());
    let perms = serde_json::json!({"configure": ".*", "write": ".*", "read": ".*"});
    assert_eq!(mgmt(reqwest::Method::PUT, &format!("/api/permissions/{name}/guest"), Some(perms)) / 100, 2);
    let broker = common::broker_as("guest", "guest", &name);
    flush_db(DB);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let topic = |data: &Path| check(data, &broker, DB, "mgmt.topic_route");

    // By hand: nothing bound, then bound and empty, then a message that matches no binding, then
    // one that does.
    let (status, detail) = topic(&data);
    assert_eq!(status, "fail");
    assert!(detail.contains("no queue is bound to amq.topic by a pattern"), "{detail}");
    assert_eq!(mgmt(reqwest::Method::PUT, &format!("/api/queues/{name}/orders.eu"), Some(serde_json::json!({"durable": true}))) / 100, 2);
    // The pattern bound to the direct exchange first: the broken state is named, with why.
    let bind = serde_json::json!({"routing_key": "orders.*.eu"});
    assert_eq!(mgmt(reqwest::Method::POST, &format!("/api/bindings/{name}/e/amq.direct/q/orders.eu"), Some(bind)) / 100, 2);
    let (status, detail) = topic(&data);
    assert_eq!(status, "fail");
    assert!(
        detail.contains(
            "queue orders.eu is bound by orders.*.eu to amq.direct, not to amq.topic: a direct exchange compares routing keys exactly"
        ),
        "{detail}"
    );
    let bind = serde_json::json!({"routing_key": "orders.*.eu"});
    assert_eq!(mgmt(reqwest::Method::POST, &format!("/api/bindings/{name}/e/amq.topic/q/orders.eu"), Some(bind)) / 100, 2);
    let (status, detail) = topic(&data);
    assert_eq!(status, "fail");
    assert!(detail.contains("holding no message") && detail.contains("orders.eu (by orders.*.eu)"), "{detail}");
    let publish = |key: &str| {
        let body = serde_json::json!({"properties": {}, "routing_key": key, "payload": "one book", "payload_encoding": "string"});
        assert_eq!(mgmt(reqwest::Method::POST, &format!("/api/exchanges/{name}/amq.topic/publish"), Some(body)) / 100, 2);
    };
    publish("orders.book.us");
    publish("orders.eu");
    assert_eq!(topic(&data).0, "fail", "neither key matches orders.*.eu");
    publish("orders.book.eu");
    let (status, detail) = topic(&data);
    assert_eq!(status, "pass", "{detail}");
    assert!(detail.contains("queue orders.eu is bound to amq.topic by orders.*.eu and holds 1 message(s)"), "{detail}");

    // task_routes in the learner's app: no math queue, then a math worker and nothing sent, then
    // add from Python.
    let routed = |data: &Path| check(data, &broker, DB, "results.routed");
    let (status, detail) = routed(&data);
    assert_eq!(status, "fail");
    assert!(detail.contains("no queue math yet"), "{detail}");
    let project = dir.path().join("project");
    let out = mqlab(&data, &broker, DB).arg("init").arg(&project).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let app = project.join("celery_app.py");
    let mut text = std::fs::read_to_string(&app).unwrap();
    text.push_str(
        "\n# Step 9, Experiment 5: tasks.add goes to a queue of its own.\napp.conf.task_routes = {'tasks.add': {'queue': 'math'}}\n",
    );
    std::fs::write(&app, text).unwrap();
    let bin = common::python().parent().unwrap().to_path_buf();
    let worker = |queue: Option<&str>, node: &str, log: &Path| {
        let mut c = Command::new(bin.join("celery"));
        c.args(["-A", "celery_app", "worker", "-c", "1", "-l", "info", "--without-mingle", "--without-gossip", "-n", node]);
        if let Some(q) = queue {
            c.args(["-Q", q]);
        }
        // The banner goes to stdout, the log to stderr: both in one file, as in a terminal.
        let file = std::fs::File::create(log).unwrap();
        let child = c
            .current_dir(&project)
            .env_remove("CELERY_BROKER_URL")
            .env_remove("CELERY_RESULT_BACKEND")
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        common::Proc(child)
    };
    let mlog = dir.path().join("math.log");
    let mut math = worker(Some("math"), "math@%h", &mlog);
    let banner = common::wait_for_file(&mlog, "ready.", 60);
    assert!(banner.contains("exchange=math(direct) key=math"), "{banner}");
    let (status, detail) = routed(&data);
    assert_eq!(status, "fail");
    assert!(detail.contains("a worker consumes math, but no result of yours came from it yet"), "{detail}");
    // mqlab's own tasks.add goes to celery whatever the learner's routes say, and never counts.
    let plog = dir.path().join("first.log");
    let _first = worker(None, "first@%h", &plog);
    common::wait_for_file(&plog, "ready.", 60);
    let out = mqlab(&data, &broker, DB).args(["submit", "tasks.add", "1", "2", "--wait", "--timeout", "20"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(routed(&data).0, "fail");
    let out = Command::new(bin.join("python")).arg("submit_task.py").current_dir(&project).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("hello completed") && said.contains("add completed: 100"), "{said}\n{}", String::from_utf8_lossy(&out.stderr));
    let log = std::fs::read_to_string(&mlog).unwrap();
    assert!(log.contains("Task tasks.add["), "the math worker ran add: {log}");
    assert!(!log.contains("Task tasks.hello["), "hello stayed on celery: {log}");
    let (status, detail) = routed(&data);
    assert_eq!(status, "pass", "{detail}");
    assert!(detail.contains("tasks.add") && detail.contains("ran from queue math by math@") && detail.contains("not celery"), "{detail}");

    // The math worker gone: what add waits in is said.
    math.signal(libc::SIGTERM);
    assert!(math.wait_exit(15).is_some());
    flush_db(DB);
    let out = Command::new(bin.join("python"))
        .args(["-c", "from celery_app import add_task; add_task.delay(1, 1)"])
        .current_dir(&project)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (status, detail) = routed(&data);
    assert_eq!(status, "fail");
    assert!(detail.contains("queue math exists with 1 task(s) waiting, but no worker consumes it"), "{detail}");
    flush_db(DB);
}

/// Sender and worker must run the same code: a task added to celery_app.py while the learner's
/// worker runs fails NotRegistered (the check says it has not succeeded since), and after a
/// restart the same call succeeds (the check passes, naming the task and both times).
#[test]
fn a_task_the_worker_did_not_know_fails_not_registered_then_runs_after_a_restart() {
    const DB: u32 = 15;
    if !common::have(&[Need::Rabbitmq, Need::Management, Need::Redis, Need::Venv]) {
        return;
    }
    let name = format!("mqlab-unknown-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    assert_eq!(mgmt(reqwest::Method::PUT, &format!("/api/vhosts/{name}"), None) / 100, 2, "create the vhost (management plugin on?)");
    let _vhost = Vhost(name.clone());
    let perms = serde_json::json!({"configure": ".*", "write": ".*", "read": ".*"});
    assert_eq!(mgmt(reqwest::Method::PUT, &format!("/api/permissions/{name}/guest"), Some(perms)) / 100, 2);
    let broker = common::broker_as("guest", "guest", &name);
    flush_db(DB);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let project = dir.path().join("project");
    let out = mqlab(&data, &broker, DB).arg("init").arg(&project).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bin = common::python().parent().unwrap().to_path_buf();
    let start = |log: &Path| {
        let file = std::fs::File::create(log).unwrap();
        let child = Command::new(bin.join("celery"))
            .args(["-A", "celery_app", "worker", "-c", "2", "-l", "info", "--without-mingle", "--without-gossip", "-n", "py-unknown@%h"])
            .current_dir(&project)
            .env_remove("CELERY_BROKER_URL")
            .env_remove("CELERY_RESULT_BACKEND")
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        common::Proc(child)
    };
    let log1 = dir.path().join("before.log");
    let mut worker = start(&log1);
    common::wait_for_file(&log1, "ready.", 60);
    let (status, detail) = check(&data, &broker, DB, "results.unregistered");
    assert_eq!(status, "fail");
    assert!(detail.contains("your worker knew every task you sent"), "{detail}");
    // The lesson's block, added while the worker runs; then the lesson's call.
    let app = project.join("celery_app.py");
    let mut text = std::fs::read_to_string(&app).unwrap();
    text.push_str("\n# Step 9, Experiment 5: a task added while the worker runs.\n@app.task(name='tasks.multiply')\ndef multiply_task(x: int, y: int):\n    return x * y\n");
    std::fs::write(&app, text).unwrap();
    let call = || {
        let code =
            "from celery_app import multiply_task; r = multiply_task.delay(6, 7); print(r.get(timeout=10, propagate=False), r.state)";
        let out = Command::new(bin.join("python")).args(["-c", code]).current_dir(&project).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(call(), "'tasks.multiply' FAILURE");
    assert!(std::fs::read_to_string(&log1).unwrap().contains("Received unregistered task of type 'tasks.multiply'"));
    let (status, detail) = check(&data, &broker, DB, "results.unregistered");
    assert_eq!(status, "fail");
    assert!(detail.starts_with("tasks.multiply failed with NotRegistered at ") && detail.ends_with("has not succeeded since"), "{detail}");
    // The restart, as the lesson says: Ctrl-C, then the same command.
    worker.signal(libc::SIGINT);
    assert!(worker.wait_exit(20).is_some(), "the worker stops on Ctrl-C");
    let log2 = dir.path().join("after.log");
    let _worker = start(&log2);
    let banner = common::wait_for_file(&log2, "ready.", 60);
    assert!(banner.contains("tasks.multiply"), "the banner lists the new task: {banner}");
    assert_eq!(call(), "42 SUCCESS");
    let (status, detail) = check(&data, &broker, DB, "results.unregistered");
    assert_eq!(status, "pass", "{detail}");
    assert!(
        detail.contains("tasks.multiply failed with NotRegistered at")
            && detail.contains("then succeeded at")
            && detail.contains("with 42"),
        "{detail}"
    );
    flush_db(DB);
}

/// Competing consumers: with one worker every result names it (the check says so); with a
/// second beside it, taking one message at a time, a burst is shared and each result names the
/// worker that ran it.
#[test]
fn two_workers_share_a_burst_and_each_result_names_its_worker() {
    const DB: u32 = 11;
    if !common::have(&[Need::Rabbitmq, Need::Management, Need::Redis, Need::Venv]) {
        return;
    }
    let name = format!("mqlab-two-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    assert_eq!(mgmt(reqwest::Method::PUT, &format!("/api/vhosts/{name}"), None) / 100, 2, "create the vhost (management plugin on?)");
    let _vhost = Vhost(name.clone());
    let perms = serde_json::json!({"configure": ".*", "write": ".*", "read": ".*"});
    assert_eq!(mgmt(reqwest::Method::PUT, &format!("/api/permissions/{name}/guest"), Some(perms)) / 100, 2);
    let broker = common::broker_as("guest", "guest", &name);
    flush_db(DB);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let project = dir.path().join("project");
    let out = mqlab(&data, &broker, DB).arg("init").arg(&project).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bin = common::python().parent().unwrap().to_path_buf();
    let start = |args: &[&str], log: &Path| {
        let file = std::fs::File::create(log).unwrap();
        let child = Command::new(bin.join("celery"))
            .args(["-A", "celery_app", "worker", "-l", "info", "--without-mingle", "--without-gossip"])
            .args(args)
            .current_dir(&project)
            .env_remove("CELERY_BROKER_URL")
            .env_remove("CELERY_RESULT_BACKEND")
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        common::Proc(child)
    };
    let burst = |n: &str| {
        let out =
            mqlab(&data, &broker, DB).args(["submit", "tasks.hello", "World", "--count", n, "--wait", "--timeout", "60"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    let first_log = dir.path().join("first.log");
    let _first = start(&["-c", "2", "-n", "first@%h"], &first_log);
    common::wait_for_file(&first_log, "ready.", 60);
    let (status, detail) = check(&data, &broker, DB, "results.two_workers");
    assert_eq!((status.as_str(), detail.as_str()), ("fail", "no result in Redis yet"));
    burst("4");
    let (status, detail) = check(&data, &broker, DB, "results.two_workers");
    assert_eq!(status, "fail");
    assert!(detail.starts_with("every tasks.hello result names one worker: first@") && detail.ends_with("×4"), "{detail}");
    // The lesson's second worker: one slot, one message at a time.
    let second_log = dir.path().join("second.log");
    let _second = start(&["--concurrency=1", "--prefetch-multiplier=1", "-n", "second@%h"], &second_log);
    common::wait_for_file(&second_log, "ready.", 60);
    burst("20");
    let (status, detail) = check(&data, &broker, DB, "results.two_workers");
    assert_eq!(status, "pass", "{detail}");
    assert!(detail.starts_with("tasks.hello ran on 2 workers sharing the queue: first@"), "{detail}");
    assert!(detail.contains("second@"), "{detail}");
    println!("{detail}");
    flush_db(DB);
}
