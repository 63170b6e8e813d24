//! Celery parity, side by side: the same Python client script against mqlab's worker and a
//! Python Celery worker from the test venv, asserting the same outcomes from both.

mod common;

use common::Need;

use std::process::{Command, Stdio};

use serde_json::Value;

fn python_worker(q: &str, node: &str, log: &std::path::Path) -> common::Proc {
    python_worker_with(q, node, log, &[])
}

fn python_worker_with(q: &str, node: &str, log: &std::path::Path, extra: &[&str]) -> common::Proc {
    python_worker_env(q, node, log, extra, &[])
}

fn python_worker_env(q: &str, node: &str, log: &std::path::Path, extra: &[&str], env: &[(&str, &str)]) -> common::Proc {
    let celery = common::python().parent().unwrap().join("celery");
    let child = Command::new(celery)
        .envs(env.iter().copied())
        .args(["-A", "celery_app", "worker", "-c", "2", "-l", "info", "--without-mingle", "--without-gossip", "-n", node])
        .args(extra)
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
    if !common::have(&[Need::Rabbitmq, Need::Redis, Need::Venv]) {
        return;
    }
    let (python, mqlab) = on_both_workers("revoke", "revoke.py", &|_, node| vec![node.to_string()]);
    assert_revoke_outcomes("Python Celery", &python);
    assert_revoke_outcomes("mqlab", &mqlab);
    println!("revoke, Python Celery: {python}\nrevoke, mqlab: {mqlab}");
}

/// Runs a Python client `script` against a Python Celery worker, then against mqlab's worker
/// (`-c 2`), each on a queue and with a node name of its own, and returns both outputs. `args`
/// gives the script's arguments from the queue and the node name.
fn on_both_workers(tag: &str, script: &str, args: &dyn Fn(&str, &str) -> Vec<String>) -> (Value, Value) {
    on_both_workers_with(tag, script, args, &[], &[])
}

/// `on_both_workers` with environment for the Python worker and flags for mqlab's.
fn on_both_workers_with(
    tag: &str,
    script: &str,
    args: &dyn Fn(&str, &str) -> Vec<String>,
    py_env: &[(&str, &str)],
    mq_flags: &[&str],
) -> (Value, Value) {
    let dir = tempfile::tempdir().unwrap();
    let mut outputs = vec![];
    for who in ["py", "mq"] {
        let q = common::queue(&format!("{tag}-{who}"));
        let node = format!("{who}{tag}-{}@{}", &q[q.len() - 8..], mqlab::celery::protocol::hostname());
        let log = dir.path().join(format!("{who}.log"));
        let worker = if who == "py" {
            python_worker_env(&q, &node, &log, &[], py_env)
        } else {
            let flags: Vec<&str> = ["-n", node.as_str(), "-c", "2"].into_iter().chain(mq_flags.iter().copied()).collect();
            common::start_worker(dir.path(), &q, &flags, &log)
        };
        let a = args(&q, &node);
        outputs.push(run_script(script, &q, &a.iter().map(String::as_str).collect::<Vec<_>>()));
        drop(worker);
        tokio::runtime::Runtime::new().unwrap().block_on(common::cleanup(&q));
    }
    let mqlab = outputs.pop().unwrap();
    (outputs.pop().unwrap(), mqlab)
}

fn run_script(script: &str, q: &str, args: &[&str]) -> Value {
    run_script_env(script, q, args, &[])
}

fn run_script_env(script: &str, q: &str, args: &[&str], env: &[(&str, &str)]) -> Value {
    let out = Command::new(common::python())
        .envs(env.iter().copied())
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

/// Compressed task bodies (zlib, gzip, bzip2, lzma, brotli, zstd), as Celery's task_compression sends them:
/// the same outcomes on both workers.
#[test]
fn compressed_messages_on_both_workers() {
    if !common::have(&[Need::Rabbitmq, Need::Redis, Need::Venv]) {
        return;
    }
    let (python, mqlab) = on_both_workers("zip", "compressed.py", &|_, _| vec![]);
    for m in ["zlib", "gzip", "bzip2", "lzma", "brotli", "zstd"] {
        assert_eq!(python[m], serde_json::json!({"result": 42, "state": "SUCCESS"}), "Python Celery, {m}: {python}");
        assert_eq!(mqlab[m], python[m], "mqlab, {m}: {mqlab}");
    }
}

/// Python ints beyond 64 bits and kombu's typed values (datetime, date, time, Decimal, UUID,
/// bytes) go through each worker and come back as the same Python objects.
#[test]
fn big_ints_and_kombu_types_on_both_workers() {
    if !common::have(&[Need::Rabbitmq, Need::Redis, Need::Venv]) {
        return;
    }
    let (python, mqlab) = on_both_workers("types", "pytypes.py", &|_, _| vec![]);
    let expect = |name: &str, ty: &str, repr: &str| {
        let want = serde_json::json!({"state": "SUCCESS", "type": ty, "repr": repr});
        assert_eq!(python[name], want, "Python Celery, {name}: {python}");
        assert_eq!(mqlab[name], want, "mqlab, {name}: {mqlab}");
    };
    expect("big", "int", "100000000000000000001");
    expect("two62", "int", "9223372036854775808");
    expect("negative", "int", "-9223372036854775809");
    expect("datetime", "datetime", "datetime.datetime(2026, 11, 28, 9, 30, 5, 123)");
    expect("aware", "datetime", "datetime.datetime(2026, 11, 28, 9, 30, tzinfo=datetime.timezone.utc)");
    expect("date", "date", "datetime.date(2026, 11, 28)");
    expect("time", "time", "datetime.time(12, 0, 1)");
    expect("decimal", "Decimal", "Decimal('1.10')");
    expect("uuid", "UUID", "UUID('01234567-89ab-cdef-0123-456789abcdef')");
    expect("bytes", "bytes", "b'mqlab'");
    expect("binary", "bytes", "b'\\xff\\x00\\xfe'");
    expect("concat", "bytes", "b'ab\\xff'");
    expect("decimal_sum", "Decimal", "Decimal('3.30')");
    expect("decimal_int", "Decimal", "Decimal('101')");
    expect("decimal_precision", "Decimal", "Decimal('2.000000000000000000000000000')");
    assert_eq!(mqlab, python, "every value the same on both workers");
}

/// `-Q a,b` consumes both queues, on both workers.
#[test]
fn comma_separated_queues_on_both_workers() {
    if !common::have(&[Need::Rabbitmq, Need::Redis, Need::Venv]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (common::queue("qa"), common::queue("qb"));
    let both = format!("{a},{b}");
    let node = format!("pyq-{}@{}", &a[a.len() - 8..], mqlab::celery::protocol::hostname());
    let py = python_worker_with(&a, &node, &dir.path().join("py.log"), &["-Q", &both]);
    let python = run_script("queues.py", &a, &[&a, &b]);
    drop(py);
    let (a2, b2) = (common::queue("qa"), common::queue("qb"));
    let node2 = format!("mqq-{}@{}", &a2[a2.len() - 8..], mqlab::celery::protocol::hostname());
    let _w = common::start_worker(dir.path(), &format!("{a2},{b2}"), &["-n", &node2, "-c", "2"], &dir.path().join("mq.log"));
    let mqlab = run_script("queues.py", &a2, &[&a2, &b2]);
    assert_eq!(python, serde_json::json!({"a": 3, "b": 7}));
    assert_eq!(mqlab, python);
}

/// A queue that already exists with other arguments (a priority queue) is consumed as it is,
/// and the broker hands out the waiting messages by priority.
#[tokio::test(flavor = "multi_thread")]
async fn an_existing_priority_queue_is_consumed_in_priority_order() {
    if !common::have(&[Need::Rabbitmq, Need::Redis, Need::Rabbitmqctl]) {
        return;
    }
    use lapin::options::QueueDeclareOptions;
    use lapin::types::{AMQPValue, FieldTable};
    let q = common::queue("prio");
    let conn = lapin::Connection::connect(&common::broker(), Default::default()).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    let mut args = FieldTable::default();
    args.insert("x-max-priority".into(), AMQPValue::ShortShortUInt(10));
    ch.queue_declare(q.as_str().into(), QueueDeclareOptions { durable: true, ..Default::default() }, args).await.unwrap();
    // The submitter declares the plain queue too, and copes the same way (a passive declare).
    let client = mqlab::celery::client::Client::connect(&common::broker(), Some(&common::redis()), &q, 3600).await.unwrap();
    let mut msgs = vec![];
    for i in 0..6 {
        let mut m =
            mqlab::celery::protocol::TaskMessage::new("tasks.add", vec![serde_json::json!(i), serde_json::json!(0)], Default::default());
        m.priority = if i == 5 { 9 } else { 0 };
        msgs.push(m);
    }
    client.publish(&msgs).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("w.log");
    let mut w = common::start_worker(dir.path(), &q, &["-c", "1", "--prefetch-multiplier", "1"], &log);
    let backend = mqlab::celery::backend::ResultBackend::connect(&common::redis(), 3600).await.unwrap();
    assert!(
        common::eventually(20, || async {
            let mut done = 0;
            for m in &msgs {
                if backend.get(&m.id).await.map(|r| r.status.is_ready()).unwrap_or(false) {
                    done += 1;
                }
            }
            done == msgs.len()
        })
        .await,
        "every task ran:\n{}",
        std::fs::read_to_string(&log).unwrap()
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("consuming it as it is"), "{text}");
    let first = text.lines().find(|l| l.contains("] received")).unwrap();
    assert!(first.contains(&msgs[5].id), "the priority 9 task is handed out first: {first}");
    w.signal(libc::SIGTERM);
    assert!(w.wait_exit(10).is_some_and(|s| s.success()));
    let _ = ch.queue_delete(q.as_str().into(), Default::default()).await;
    let _ = conn.close(200, "bye".into()).await;
}

/// A queue's arguments as the broker holds them (`rabbitmqctl list_queues`), with their AMQP
/// types: `{"x-max-priority": ["signedint", 10]}`.
fn queue_arguments(q: &str) -> Value {
    let out = common::rabbitmqctl().args(["list_queues", "-q", "--formatter", "json", "name", "arguments"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let all: Value = serde_json::from_slice(&out.stdout).unwrap();
    let args = all.as_array().unwrap().iter().find(|e| e["name"] == q).map(|e| e["arguments"].clone()).unwrap_or(Value::Null);
    // rabbitmqctl lists them as [name, type, value] triples.
    let triples = args.as_array().cloned().unwrap_or_default();
    Value::Object(triples.iter().map(|t| (t[0].as_str().unwrap_or("").to_string(), serde_json::json!([t[1], t[2]]))).collect())
}

/// Priority queues from configuration (Celery's `task_queue_max_priority`, mqlab's
/// `--max-priority` / `queue_max_priority`): the queue is declared with `x-max-priority`, the
/// priority 9 task queued last runs first, and `inspect` reports the arguments alike.
#[test]
fn configured_priority_queues_on_both_workers() {
    if !common::have(&[Need::Rabbitmq, Need::Redis, Need::Venv]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let env = [("MQLAB_TEST_MAX_PRIORITY", "10")];
    let run = |who: &str, q: &str, start: &dyn Fn(&str) -> common::Proc| {
        let ids = run_script_env("priority.py", q, &["send"], &env);
        let node = format!("{who}-{}@{}", &q[q.len() - 8..], mqlab::celery::protocol::hostname());
        let _worker = start(&node);
        let out = run_script_env("priority.py", q, &["collect", &node, &ids.to_string()], &env);
        (out, queue_arguments(q))
    };
    let q = common::queue("cprio-py");
    let (python, py_args) = run("py", &q, &|node| {
        python_worker_env(&q, node, &dir.path().join("py.log"), &["--concurrency", "1", "--prefetch-multiplier", "1"], &env)
    });
    let q2 = common::queue("cprio-mq");
    let log = dir.path().join("mq.log");
    let (mqlab, mq_args) = run("mq", &q2, &|node| {
        common::start_worker(dir.path(), &q2, &["-n", node, "-c", "1", "--prefetch-multiplier", "1", "--max-priority", "10"], &log)
    });
    let want = serde_json::json!({"first": 5, "queue_arguments": {"x-max-priority": 10}, "task_queue_max_priority": 10});
    assert_eq!(python, want, "Python Celery");
    assert_eq!(mqlab, want, "mqlab");
    assert_eq!(py_args["x-max-priority"][1], 10, "{py_args}");
    assert_eq!(mq_args, py_args);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("as it is"), "mqlab declares the queue exactly as Celery did (no 406): {text}");

    // mqlab declares it first: `submit --max-priority`, then the Python worker consumes it.
    let q3 = common::queue("cprio-sub");
    let out = common::mqlab(dir.path())
        .args(["submit", "-Q", &q3, "--max-priority", "10", "--priority", "3", "tasks.add", "1", "2"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(queue_arguments(&q3), py_args, "the submitter declares the priority queue");
    let node = format!("py3-{}@{}", &q3[q3.len() - 8..], mqlab::celery::protocol::hostname());
    let py3 = python_worker_env(&q3, &node, &dir.path().join("py3.log"), &[], &env);
    drop(py3);
    let text = std::fs::read_to_string(dir.path().join("py3.log")).unwrap();
    assert!(!text.contains("PRECONDITION_FAILED"), "Celery finds the queue equivalent: {text}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    for q in [&q, &q2, &q3] {
        rt.block_on(common::cleanup(q));
    }
}

/// Tasks waiting for their ETA: an expiry within the wait revokes them, and `inspect
/// scheduled`, `query_task`, `active_queues` and `conf` (what Flower asks) answer alike; a warm
/// stop hands a waiting task back to the queue at once.
#[test]
fn eta_tasks_and_inspect_on_both_workers() {
    if !common::have(&[Need::Rabbitmq, Need::Redis, Need::Venv]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let q = common::queue("eta-py");
    let node = format!("pye-{}@{}", &q[q.len() - 8..], mqlab::celery::protocol::hostname());
    let py = python_worker(&q, &node, &dir.path().join("py.log"));
    let mut python = run_script("eta.py", &q, &[&node]);
    drop(py);
    let q2 = common::queue("eta-mq");
    let node2 = format!("mqe-{}@{}", &q2[q2.len() - 8..], mqlab::celery::protocol::hostname());
    let mut w = common::start_worker(dir.path(), &q2, &["-n", &node2, "-c", "2"], &dir.path().join("mq.log"));
    let mut mqlab = run_script("eta.py", &q2, &[&node2]);
    // A warm stop while a task waits 60 s for its ETA: out at once, the task back in the queue.
    let t0 = std::time::Instant::now();
    w.signal(libc::SIGTERM);
    assert!(w.wait_exit(15).is_some_and(|s| s.success()));
    let took = t0.elapsed().as_secs_f64();
    println!("warm stop holding a 60 s ETA task: {took:.1} s");
    assert!(took < 5.0, "{took}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    assert_eq!(rt.block_on(common::ready_count(&q2)), 1, "the waiting task is back in the queue");
    for v in [&mut python, &mut mqlab] {
        v["active_queues"] = serde_json::json!(v["active_queues"].as_array().unwrap().len());
        v.as_object_mut().unwrap().remove("held");
    }
    assert_eq!(python["expired_in_wait"]["state"], "REVOKED", "{python}");
    assert_eq!(mqlab, python, "mqlab: {mqlab}\nPython Celery: {python}");
    rt.block_on(common::cleanup(&q2));
}

/// Twelve tasks waiting 30 s for their ETA (more than a `-c 2` worker's prefetch of 8), then one
/// plain add: the add does not wait behind them, and `inspect scheduled` lists all twelve; the
/// same on Python Celery with RabbitMQ 3 (global QoS), while on RabbitMQ 4 Celery's add waits.
#[test]
fn waiting_eta_tasks_do_not_hold_back_the_others_on_both_workers() {
    if !common::have(&[Need::Rabbitmq, Need::Redis, Need::Venv]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let q = common::queue("etapf-py");
    let node = format!("pyp-{}@{}", &q[q.len() - 8..], mqlab::celery::protocol::hostname());
    let py = python_worker(&q, &node, &dir.path().join("py.log"));
    let python = run_script("eta_prefetch.py", &q, &[&node]);
    drop(py);
    let q2 = common::queue("etapf-mq");
    let node2 = format!("mqp-{}@{}", &q2[q2.len() - 8..], mqlab::celery::protocol::hostname());
    let _w = common::start_worker(dir.path(), &q2, &["-n", &node2, "-c", "2"], &dir.path().join("mq.log"));
    let mqlab = run_script("eta_prefetch.py", &q2, &[&node2]);
    println!("an add behind 12 waiting ETA tasks, Python Celery: {python}\nmqlab: {mqlab}");
    let all_twelve = Value::from(vec![true; 12]);
    assert_eq!(mqlab["value"], 10, "{mqlab}");
    assert_eq!(mqlab["fast"], true, "mqlab: the add waited behind the ETA tasks: {mqlab}");
    assert_eq!(mqlab["scheduled"], all_twelve, "mqlab: inspect scheduled lists the twelve: {mqlab}");
    if common::on_rabbitmq4() {
        // Celery raises a global QoS for each waiting task; without global QoS (RabbitMQ 4) its
        // prefetch stays full of them and the add times out behind them. mqlab's fresh consumers
        // need no global QoS.
        assert_eq!(python["fast"], false, "Python Celery on RabbitMQ 4: {python}");
    } else {
        assert_eq!(python["value"], 10, "{python}");
        assert_eq!(python["fast"], true, "Python Celery: {python}");
        assert_eq!(python["scheduled"], all_twelve, "Python Celery: {python}");
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(common::cleanup(&q));
    rt.block_on(common::cleanup(&q2));
}

/// Remote control as `celery control` sends it: the same replies from both workers, and the same
/// effects (events toggled, a rate limit spacing starts, a time limit stopping a task, the pool
/// resized, a queue added and cancelled).
#[test]
fn remote_control_commands_on_both_workers() {
    if !common::have(&[Need::Rabbitmq, Need::Redis, Need::Venv]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut results: Vec<serde_json::Value> = vec![];
    for who in ["py", "mq"] {
        let q = common::queue(&format!("ctl-{who}"));
        let extra = format!("{q}-extra");
        let node = format!("{who}c-{}@{}", &q[q.len() - 8..], mqlab::celery::protocol::hostname());
        let log = dir.path().join(format!("{who}.log"));
        // Both start with task events off (Celery's default).
        let _w = if who == "py" {
            python_worker(&q, &node, &log)
        } else {
            common::start_worker(dir.path(), &q, &["-n", &node, "-c", "2", "--no-events"], &log)
        };
        let v = run_script("control.py", &q, &[&node, &extra]);
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(common::cleanup(&q));
        rt.block_on(common::cleanup(&extra));
        results.push(v);
    }
    println!("control, Python Celery: {}\ncontrol, mqlab: {}", results[0], results[1]);
    // The one difference: a time limit set by `control time_limit` stops mqlab's next task of that
    // type, as Celery documents; Celery 5.7's worker replies the same but its task strategies
    // keep the limits they were built with, so there the task runs to the end.
    let mut limited = vec![];
    for v in results.iter_mut() {
        limited.push(v.as_object_mut().unwrap().remove("time_limited").unwrap());
    }
    assert_eq!(limited[1], serde_json::json!({"state": "FAILURE", "raised": "TimeLimitExceeded"}));
    let (python, mqlab) = (&results[0], &results[1]);
    assert_eq!(python["rate_limited"]["spread_at_least_1s"], true, "{python}");
    assert_eq!(python["task_on_added_queue"], 42, "{python}");
    assert_eq!(mqlab, python, "mqlab: {mqlab}\nPython Celery: {python}");
}

/// Chords through the Redis backend, header and body on every combination of workers: all on
/// mqlab, all on Python, the header on mqlab and the body on Python, and the reverse. The body
/// gets the header's results in order; a failing header task fails the body with ChordError.
#[test]
fn chords_across_both_workers() {
    if !common::have(&[Need::Rabbitmq, Need::Redis, Need::Venv]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let expected = serde_json::json!({"results": [0, 2, 4],
        "failed_header": {"raised": true, "body_state": "FAILURE", "body_error": "ChordError", "says": true}});
    // "both": the header queue is consumed by a Python and an mqlab worker at once (RabbitMQ
    // hands them the header tasks in turn), so their results meet in the same Redis keys.
    for (header_on, body_on) in [("py", "py"), ("mq", "mq"), ("mq", "py"), ("py", "mq"), ("both", "mq")] {
        let base = common::queue(&format!("chord-{header_on}{body_on}"));
        let (qh, qb) = (format!("{base}-h"), format!("{base}-b"));
        let mut workers = vec![];
        let mut start = |who: &str, queues: &str, tag: &str| {
            let node = format!("{who}{tag}-{}@{}", &base[base.len() - 8..], mqlab::celery::protocol::hostname());
            let log = dir.path().join(format!("{base}-{tag}.log"));
            workers.push(if who == "py" {
                python_worker_with(&base, &node, &log, &["-Q", queues])
            } else {
                common::start_worker(dir.path(), queues, &["-n", &node, "-c", "2"], &log)
            });
        };
        if header_on == "both" {
            start("py", &qh, "h");
            start("mq", &qh, "h2");
            start(body_on, &qb, "b");
        } else if header_on == body_on {
            start(header_on, &format!("{qh},{qb}"), "hb");
        } else {
            start(header_on, &qh, "h");
            start(body_on, &qb, "b");
        }
        let v = run_script("chord.py", &base, &[&qh, &qb]);
        println!("chord, header on {header_on}, body on {body_on}: {v}");
        assert_eq!(v, expected, "header on {header_on}, body on {body_on}");
        if header_on == "both" {
            for tag in ["h", "h2"] {
                let log = std::fs::read_to_string(dir.path().join(format!("{base}-{tag}.log"))).unwrap_or_default();
                assert!(log.contains("Task tasks.add["), "each header worker ran header tasks ({tag}):\n{log}");
            }
        }
        drop(workers);
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(common::cleanup(&qh));
        rt.block_on(common::cleanup(&qb));
    }
}

/// A chord whose header task is revoked before it runs: the same on both workers (the client's
/// `.get()` raises TaskRevokedError, the body is never sent and stays PENDING).
#[test]
fn a_chord_with_a_revoked_header_task_on_both_workers() {
    if !common::have(&[Need::Rabbitmq, Need::Redis, Need::Venv]) {
        return;
    }
    let expected = serde_json::json!({"raised": "TaskRevokedError", "body": "PENDING", "header": ["SUCCESS", "REVOKED"]});
    let (python, mqlab) = on_both_workers("chordrev", "chord_revoked.py", &|q, _| vec![q.to_string()]);
    assert_eq!(python, expected, "Python Celery");
    assert_eq!(mqlab, expected, "mqlab");
}

/// The stored result of linked tasks, byte for byte in shape (ids and dates by role): children of
/// a task with a callback or a next chain task, parent_id of a chain's second task, group_id of a
/// group member, keys in Celery's order.
#[test]
fn stored_results_of_linked_tasks_match_celery() {
    if !common::have(&[Need::Rabbitmq, Need::Redis, Need::Venv]) {
        return;
    }
    let (python, mqlab) = on_both_workers("links", "links.py", &|_, _| vec![]);
    println!("linked results, Python Celery: {python}\nmqlab: {mqlab}");
    assert_eq!(python["linked"]["meta"]["children"], serde_json::json!([[["<callback>", null], null]]), "{python}");
    assert_eq!(python["chain_second"]["meta"]["parent_id"], "<parent>", "{python}");
    assert_eq!(mqlab, python, "mqlab: {mqlab}\nPython Celery: {python}");
}

/// `result_extended`: the same stored JSON from both workers for a success and a failure (name,
/// args, kwargs, worker, retries, queue, in Celery's key order).
#[test]
fn result_extended_on_both_workers() {
    if !common::have(&[Need::Rabbitmq, Need::Redis, Need::Venv]) {
        return;
    }
    let (python, mqlab) = on_both_workers_with(
        "ext",
        "extended.py",
        &|q, node| vec![node.to_string(), q.to_string()],
        &[("MQLAB_TEST_RESULT_EXTENDED", "1")],
        &["--result-extended"],
    );
    println!("result_extended, Python Celery: {python}\nmqlab: {mqlab}");
    assert_eq!(python["success"]["meta"]["name"], "tasks.add", "{python}");
    assert_eq!(python["success"]["meta"]["worker"], "<worker>", "{python}");
    assert_eq!(mqlab, python, "mqlab: {mqlab}\nPython Celery: {python}");
}

/// A failure's errback (`link_error`) runs with the failed task's id, and the rest of its chain
/// is FAILURE too: the same on both workers.
#[test]
fn errbacks_and_failed_chains_on_both_workers() {
    if !common::have(&[Need::Rabbitmq, Need::Redis, Need::Venv]) {
        return;
    }
    let (python, mqlab) = on_both_workers("eb", "canvas_failure.py", &|_, _| vec![]);
    assert_eq!(
        python,
        serde_json::json!({"errback_got_failed_id": true, "chain_states": ["FAILURE", "FAILURE"], "second_raises": "ZeroDivisionError"})
    );
    assert_eq!(mqlab, python);
}
