//! Ticks from evidence: the project `mqlab init` writes, run with the real Python Celery of the
//! test venv, ticks the checklist's Python items; mqlab's own worker and tasks never do. Then
//! the exercises checked from what the broker and Redis show: routing (by hand and by
//! `task_routes`), a task the worker does not know, two workers sharing a queue.
//!
//! Isolation: each test has a `Lab` of its own: a vhost on the local RabbitMQ (so no other
//! test's worker heartbeat is seen) and a Redis database (so no other test's results are).

mod common;

use common::Need;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

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

/// One test's corner of the services: a vhost of its own, a Redis database emptied before and
/// after, a data dir, and (once `init` wrote it) the learner's project.
struct Lab {
    vhost: common::Vhost,
    db: u32,
    dir: tempfile::TempDir,
}

impl Lab {
    fn new(test: &str, db: u32) -> Lab {
        let lab = Lab { vhost: common::Vhost::new(test), db, dir: tempfile::tempdir().unwrap() };
        lab.flush();
        lab
    }

    /// The test Redis at this lab's database.
    fn results(&self) -> String {
        let mut u = url::Url::parse(&common::redis()).expect("MQLAB_TEST_REDIS is a URL");
        u.set_path(&format!("/{}", self.db));
        u.to_string()
    }

    fn flush(&self) {
        let mut c = redis::Client::open(self.results()).unwrap().get_connection().unwrap();
        let _: () = redis::cmd("FLUSHDB").query(&mut c).unwrap();
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn project(&self) -> PathBuf {
        self.dir.path().join("project")
    }

    fn log(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    /// `mqlab` on this lab's vhost and database, the local track.
    fn mqlab(&self) -> Command {
        let mut c = common::mqlab(&self.data());
        c.env("MQLAB_BROKER_URL", self.vhost.broker()).env("MQLAB_RESULT_BACKEND", self.results()).env("MQLAB_TRACK", "local");
        c
    }

    /// One check, by `mqlab check --id`: its status and detail.
    fn check(&self, id: &str) -> (String, String) {
        let v = self.checks(&[id]);
        let r = &v[0];
        (r.1.clone(), r.2.clone())
    }

    /// Checks by `mqlab check --json --id …`: (id, status, detail) each.
    fn checks(&self, ids: &[&str]) -> Vec<(String, String, String)> {
        let mut c = self.mqlab();
        c.args(["check", "--json"]);
        for id in ids {
            c.args(["--id", id]);
        }
        let out = c.output().unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
                (s("id"), s("status"), s("detail"))
            })
            .collect()
    }

    /// `mqlab init`: the learner's project, with this lab's broker and Redis.
    fn init(&self) {
        let out = self.mqlab().arg("init").arg(self.project()).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    /// Appends a block the lessons show to one of the project's files.
    fn append(&self, file: &str, text: &str) {
        let path = self.project().join(file);
        let mut all = std::fs::read_to_string(&path).unwrap();
        all.push_str(text);
        std::fs::write(&path, all).unwrap();
    }

    /// The venv's Celery worker in the project (`celery -A celery_app worker … args`), its banner
    /// (stdout) and log (stderr) in one file as in a terminal; returned once it is ready, with
    /// what it printed by then.
    fn celery_worker(&self, args: &[&str], log: &str) -> (common::Proc, String) {
        let bin = common::python().parent().unwrap().to_path_buf();
        let file = std::fs::File::create(self.log(log)).unwrap();
        let child = Command::new(bin.join("celery"))
            .args(["-A", "celery_app", "worker", "-l", "info", "--without-mingle", "--without-gossip"])
            .args(args)
            .current_dir(self.project())
            .env_remove("CELERY_BROKER_URL")
            .env_remove("CELERY_RESULT_BACKEND")
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        let p = common::Proc(child);
        let banner = common::wait_for_file(&self.log(log), "ready.", 60);
        (p, banner)
    }

    /// The venv's python in the project.
    fn python(&self, args: &[&str]) -> Output {
        let bin = common::python().parent().unwrap().to_path_buf();
        Command::new(bin.join("python")).args(args).current_dir(self.project()).output().unwrap()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.flush();
    }
}

fn have() -> bool {
    common::have(&[Need::Rabbitmq, Need::Management, Need::Redis, Need::Venv])
}

const EVIDENCE: [&str; 4] = ["celery.py_worker", "celery.py_tasks", "results.learner", "results.learner_failure"];

#[test]
fn the_learners_own_python_ticks_the_python_items_and_mqlab_never_does() {
    if !have() {
        return;
    }
    let lab = Lab::new("evidence", 12);

    // mqlab's own worker and tasks: the pipeline works, the Python items stay unticked.
    let log = lab.log("worker");
    let file = std::fs::File::create(&log).unwrap();
    let child = lab.mqlab().args(["worker", "-n", "own@%h"]).stdout(Stdio::null()).stderr(file).spawn().unwrap();
    let mut own = common::Proc(child);
    common::wait_for_file(&log, "ready.", 20);
    for args in [&["tasks.add", "1", "2"][..], &["tasks.divide", "1", "0"][..]] {
        let out = lab.mqlab().arg("submit").args(args).args(["--wait", "--timeout", "20"]).output().unwrap();
        assert!(matches!(out.status.code(), Some(0 | 3)), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let checked = lab.checks(&EVIDENCE);
    assert!(checked.iter().all(|(_, status, _)| status == "fail"), "mqlab's own work counts for nothing: {checked:#?}");
    own.signal(libc::SIGTERM);
    assert!(own.wait_exit(15).is_some_and(|s| s.success()), "the worker stops cleanly");

    // The learner's project, written by mqlab init, with the real Celery of the venv.
    lab.init();
    let (_py, _) = lab.celery_worker(&["-c", "2", "-n", "py-evidence@%h"], "celery");
    let out = lab.python(&["submit_task.py"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("add completed: 100") && !text.contains("divide"), "the first submitter sends hello and add only: {text}");
    // Experiment 4, as the learner adds it.
    let exp4 = "from celery_app import divide_task\nr = divide_task.delay(10, 0)\ntry:\n    r.get(timeout=5)\nexcept ZeroDivisionError as e:\n    print('Task failed as expected:', e)\n";
    let out = lab.python(&["-c", exp4]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Task failed as expected: division by zero"), "{text}\n{}", String::from_utf8_lossy(&out.stderr));

    let checked = lab.checks(&EVIDENCE);
    for (id, status, detail) in &checked {
        assert_eq!(status, "pass", "{id}: {detail}");
    }
    assert!(checked[0].2.contains("py-evidence@") && checked[0].2.contains("Celery 5."), "{checked:#?}");
    let out = lab.mqlab().args(["progress", "--json"]).output().unwrap();
    let p: Value = serde_json::from_slice(&out.stdout).unwrap();
    for item in ["worker", "delay", "celery_app", "failures"] {
        let tick = &p["checklist"][item];
        assert!(tick["by"].as_str().unwrap().starts_with("check:"), "{item} ticked by a check: {p:#}");
        assert!(!tick["evidence"].as_str().unwrap_or("").is_empty(), "{item} keeps its evidence: {p:#}");
    }
    assert!(p["checklist"].get("get").is_none(), ".get() cannot be observed: it is ticked by hand only");
}

/// Routing, as the learner does it: by hand to `amq.topic` through a pattern binding (Step 3),
/// then with `task_routes` in their own Celery app and a second Python worker on `-Q math`
/// (Step 9). Each check fails before the learner's action, says which part is missing, and
/// passes after it.
#[test]
fn routing_by_hand_and_by_task_routes_is_seen_on_the_broker() {
    if !have() {
        return;
    }
    let lab = Lab::new("routing", 14);
    let name = lab.vhost.name.clone();

    // By hand: nothing bound, then bound to the wrong exchange, then bound and empty, then
    // messages that match no binding, then one that does.
    let (status, detail) = lab.check("mgmt.topic_route");
    assert_eq!(status, "fail");
    assert!(detail.contains("no queue is bound to amq.topic by a pattern"), "{detail}");
    assert_eq!(mgmt(reqwest::Method::PUT, &format!("/api/queues/{name}/orders.eu"), Some(serde_json::json!({"durable": true}))) / 100, 2);
    let bind = |exchange: &str| {
        let body = serde_json::json!({"routing_key": "orders.*.eu"});
        assert_eq!(mgmt(reqwest::Method::POST, &format!("/api/bindings/{name}/e/{exchange}/q/orders.eu"), Some(body)) / 100, 2);
    };
    // The pattern bound to the direct exchange first: the broken state is named, with why.
    bind("amq.direct");
    let (status, detail) = lab.check("mgmt.topic_route");
    assert_eq!(status, "fail");
    assert!(
        detail.contains(
            "queue orders.eu is bound by orders.*.eu to amq.direct, not to amq.topic: a direct exchange compares routing keys exactly"
        ),
        "{detail}"
    );
    bind("amq.topic");
    let (status, detail) = lab.check("mgmt.topic_route");
    assert_eq!(status, "fail");
    assert!(detail.contains("holding no message") && detail.contains("orders.eu (by orders.*.eu)"), "{detail}");
    let publish = |key: &str| {
        let body = serde_json::json!({"properties": {}, "routing_key": key, "payload": "one book", "payload_encoding": "string"});
        assert_eq!(mgmt(reqwest::Method::POST, &format!("/api/exchanges/{name}/amq.topic/publish"), Some(body)) / 100, 2);
    };
    publish("orders.book.us");
    publish("orders.eu");
    assert_eq!(lab.check("mgmt.topic_route").0, "fail", "neither key matches orders.*.eu");
    publish("orders.book.eu");
    let (status, detail) = lab.check("mgmt.topic_route");
    assert_eq!(status, "pass", "{detail}");
    assert!(detail.contains("queue orders.eu is bound to amq.topic by orders.*.eu and holds 1 message(s)"), "{detail}");

    // task_routes in the learner's app: no math queue, then a math worker and nothing sent, then
    // add from Python.
    let (status, detail) = lab.check("results.routed");
    assert_eq!(status, "fail");
    assert!(detail.contains("no queue math yet"), "{detail}");
    lab.init();
    lab.append(
        "celery_app.py",
        "\n# Step 9, Experiment 6: tasks.add goes to a queue of its own.\napp.conf.task_routes = {'tasks.add': {'queue': 'math'}}\n",
    );
    let (mut math, banner) = lab.celery_worker(&["-c", "1", "-Q", "math", "-n", "math@%h"], "math");
    assert!(banner.contains("exchange=math(direct) key=math"), "{banner}");
    let (status, detail) = lab.check("results.routed");
    assert_eq!(status, "fail");
    assert!(detail.contains("a worker consumes math, but no result of yours came from it yet"), "{detail}");
    // mqlab's own tasks.add goes to celery whatever the learner's routes say, and never counts.
    let (_first, _) = lab.celery_worker(&["-c", "1", "-n", "first@%h"], "first");
    let out = lab.mqlab().args(["submit", "tasks.add", "1", "2", "--wait", "--timeout", "20"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(lab.check("results.routed").0, "fail");
    let out = lab.python(&["submit_task.py"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("hello completed") && said.contains("add completed: 100"), "{said}\n{}", String::from_utf8_lossy(&out.stderr));
    let log = std::fs::read_to_string(lab.log("math")).unwrap();
    assert!(log.contains("Task tasks.add["), "the math worker ran add: {log}");
    assert!(!log.contains("Task tasks.hello["), "hello stayed on celery: {log}");
    let (status, detail) = lab.check("results.routed");
    assert_eq!(status, "pass", "{detail}");
    assert!(detail.contains("tasks.add") && detail.contains("ran from queue math by math@") && detail.contains("not celery"), "{detail}");

    // The math worker gone: what add waits in is said.
    math.signal(libc::SIGTERM);
    assert!(math.wait_exit(15).is_some());
    lab.flush();
    let out = lab.python(&["-c", "from celery_app import add_task; add_task.delay(1, 1)"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (status, detail) = lab.check("results.routed");
    assert_eq!(status, "fail");
    assert!(detail.contains("queue math exists with 1 task(s) waiting, but no worker consumes it"), "{detail}");
}

/// Sender and worker must run the same code: a task added to celery_app.py while the learner's
/// worker runs fails NotRegistered (the check says it has not succeeded since), and after a
/// restart the same call succeeds (the check passes, naming the task and both times).
#[test]
fn a_task_the_worker_did_not_know_fails_not_registered_then_runs_after_a_restart() {
    if !have() {
        return;
    }
    let lab = Lab::new("unknown", 15);
    lab.init();
    let (mut worker, _) = lab.celery_worker(&["-c", "2", "-n", "py-unknown@%h"], "before");
    let (status, detail) = lab.check("results.unregistered");
    assert_eq!(status, "fail");
    assert!(detail.contains("your worker knew every task you sent"), "{detail}");
    // The lesson's block, added while the worker runs; then the lesson's call.
    lab.append(
        "celery_app.py",
        "\n# Step 9, Experiment 5: a task added while the worker runs.\n@app.task(name='tasks.multiply')\ndef multiply_task(x: int, y: int):\n    return x * y\n",
    );
    let call = || {
        let code =
            "from celery_app import multiply_task; r = multiply_task.delay(6, 7); print(r.get(timeout=10, propagate=False), r.state)";
        let out = lab.python(&["-c", code]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(call(), "'tasks.multiply' FAILURE");
    assert!(std::fs::read_to_string(lab.log("before")).unwrap().contains("Received unregistered task of type 'tasks.multiply'"));
    let (status, detail) = lab.check("results.unregistered");
    assert_eq!(status, "fail");
    assert!(detail.starts_with("tasks.multiply failed with NotRegistered at ") && detail.ends_with("has not succeeded since"), "{detail}");
    // The restart, as the lesson says: Ctrl-C, then the same command.
    worker.signal(libc::SIGINT);
    assert!(worker.wait_exit(20).is_some(), "the worker stops on Ctrl-C");
    let (_worker, banner) = lab.celery_worker(&["-c", "2", "-n", "py-unknown@%h"], "after");
    assert!(banner.contains("tasks.multiply"), "the banner lists the new task: {banner}");
    assert_eq!(call(), "42 SUCCESS");
    let (status, detail) = lab.check("results.unregistered");
    assert_eq!(status, "pass", "{detail}");
    assert!(
        detail.contains("tasks.multiply failed with NotRegistered at")
            && detail.contains("then succeeded at")
            && detail.contains("with 42"),
        "{detail}"
    );
}

/// Competing consumers: with one worker every result names it (the check says so); with a
/// second beside it, taking one message at a time, a burst is shared and each result names the
/// worker that ran it.
#[test]
fn two_workers_share_a_burst_and_each_result_names_its_worker() {
    if !have() {
        return;
    }
    let lab = Lab::new("two", 11);
    lab.init();
    let burst = |n: &str| {
        let out = lab.mqlab().args(["submit", "tasks.hello", "World", "--count", n, "--wait", "--timeout", "60"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    let (_first, _) = lab.celery_worker(&["-c", "2", "-n", "first@%h"], "first");
    let (status, detail) = lab.check("results.two_workers");
    assert_eq!((status.as_str(), detail.as_str()), ("fail", "no result in Redis yet"));
    burst("4");
    let (status, detail) = lab.check("results.two_workers");
    assert_eq!(status, "fail");
    assert!(detail.starts_with("every tasks.hello result names one worker: first@") && detail.ends_with("×4"), "{detail}");
    // The lesson's second worker: one slot, one message at a time.
    let (_second, _) = lab.celery_worker(&["--concurrency=1", "--prefetch-multiplier=1", "-n", "second@%h"], "second");
    burst("20");
    let (status, detail) = lab.check("results.two_workers");
    assert_eq!(status, "pass", "{detail}");
    assert!(detail.starts_with("tasks.hello ran on 2 workers sharing the queue: first@"), "{detail}");
    assert!(detail.contains("second@"), "{detail}");
    println!("{detail}");
}
