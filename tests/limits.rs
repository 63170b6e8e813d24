//! Limits that hold: a hard time limit against a task body that computes for long, files and
//! directories private to their owner, every file mqlab reads capped in size, empty queue and
//! task names refused, and exit codes that tell usage, error, timeout and a failed task apart.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use mqlab::celery::backend::ResultBackend;
use mqlab::celery::protocol::{TaskMessage, TaskState};
use serde_json::{Map, Value, json};

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

/// A Decimal argument as kombu's JSON encodes it.
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
    common::publish_tasks(&broker, &q, std::slice::from_ref(&long)).await;
    // The long task has started before the short ones are sent.
    common::wait_for_file(&log, &format!("[{}] received", long.id), 10);
    let started = Instant::now();
    common::publish_tasks(&broker, &q, &short).await;
    let ping = common::control_request(&broker, &node, "ping", json!({}), 5).await;
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

/// Stops the sandbox of a data dir when dropped (a failing test leaves no server behind).
struct SandboxDown(std::path::PathBuf);

impl Drop for SandboxDown {
    fn drop(&mut self) {
        let _ = common::bare_mqlab(&self.0).args(["sandbox", "down"]).output();
    }
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o777
}

/// The sandbox in a data dir made open to others beforehand: the data dir, the sandbox's
/// directories 0700; its RabbitMQ config (with the password), plugin list, record and the two
/// servers' output 0600.
#[test]
fn the_sandbox_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let _down = SandboxDown(data.clone());
    let out = common::bare_mqlab(&data).args(["sandbox", "up", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sb = data.join("sandbox");
    let dirs = [data.clone(), sb.clone(), sb.join("rabbitmq"), sb.join("redis")];
    let files = [
        sb.join("sandbox.json"),
        sb.join("rabbitmq/rabbitmq.conf"),
        sb.join("rabbitmq/enabled_plugins"),
        sb.join("rabbitmq/rabbitmq.out"),
        sb.join("redis/redis.out"),
    ];
    let seen: Vec<String> =
        dirs.iter().chain(&files).map(|p| format!("{} {:o}", p.strip_prefix(&data).unwrap().display(), mode(p))).collect();
    println!("sandbox modes: {}", seen.join(", "));
    for d in &dirs {
        assert_eq!(mode(d), 0o700, "{}", d.display());
    }
    for f in &files {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
    assert!(std::fs::read_to_string(sb.join("rabbitmq/rabbitmq.conf")).unwrap().contains("default_pass"));
}

/// Runs a command to its end (or kills it past `secs` or past `max_rss_mib` of memory): its exit
/// code, its stderr and its peak RSS in MiB.
fn run_watched(mut cmd: std::process::Command, secs: u64, max_rss_mib: f64) -> (Option<i32>, String, f64) {
    let err = tempfile::NamedTempFile::new().unwrap();
    let mut child = common::Proc(cmd.stdout(Stdio::null()).stderr(err.reopen().unwrap()).spawn().unwrap());
    let pid = child.0.id();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut peak = 0.0f64;
    let code = loop {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            && let Some(kb) = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))
        {
            peak = peak.max(kb.trim().trim_end_matches("kB").trim().parse::<f64>().unwrap_or(0.0) / 1024.0);
        }
        if let Some(st) = child.0.try_wait().unwrap() {
            break st.code();
        }
        if Instant::now() > deadline || peak > max_rss_mib {
            let _ = child.0.kill();
            let _ = child.0.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (code, std::fs::read_to_string(err.path()).unwrap_or_default(), peak)
}

/// `MQLAB_CONFIG=/dev/zero` and `worker -S /dev/zero`: an error at once (exit 1, saying the file
/// is too large), not a read until memory runs out.
#[test]
fn files_that_never_end_are_refused_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::mqlab(dir.path());
    config.env("MQLAB_CONFIG", "/dev/zero").args(["progress"]);
    let mut statedb = common::mqlab(dir.path());
    statedb.args(["worker", "-Q", &common::queue("zero"), "-S", "/dev/zero"]);
    for (what, cmd) in [("MQLAB_CONFIG=/dev/zero", config), ("worker -S /dev/zero", statedb)] {
        let started = Instant::now();
        let (code, err, peak) = run_watched(cmd, 20, 500.0);
        println!("{what}: exit {code:?} in {:.2} s, peak RSS {peak:.0} MiB: {}", started.elapsed().as_secs_f64(), err.trim());
        assert_eq!(code, Some(1), "{what}: {err}");
        assert!(err.contains("larger than"), "{what}: {err}");
        assert!(peak < 100.0, "{what}: peak RSS {peak:.0} MiB");
    }
}

/// Empty names: `queue = ""` in the config file, `submit ''`, `submit -Q ''`, `worker -Q ''` and
/// `worker -Q ,` are each refused with a sentence, before anything reaches the broker (a usage
/// error, 64, on the command line; an error, 1, from the config file).
#[test]
fn empty_queue_and_task_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("mqlab.toml");
    std::fs::write(&conf, "queue = \"\"\n").unwrap();
    let out = common::mqlab(dir.path()).env("MQLAB_CONFIG", &conf).args(["worker", "-n", "emptyq"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("queue in the config file: a queue name cannot be empty"), "{err}");
    let q = common::queue("emptyname");
    for (args, says) in [
        (vec!["submit", ""], "a task name cannot be empty"),
        (vec!["submit", " ", "-Q", &q], "a task name cannot be empty"),
        (vec!["submit", "tasks.add", "1", "2", "-Q", ""], "a queue name cannot be empty"),
        (vec!["worker", "-Q", ""], "a queue name cannot be empty"),
        (vec!["worker", "-Q", ","], "a queue name cannot be empty"),
    ] {
        let out = common::mqlab(dir.path()).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // Nothing was sent: the queue the blank task name named was never declared.
    assert!(common::queue_counts(&q).is_none(), "a message was sent to {q}");
}

/// One code per outcome: 0 done (and help), 64 usage, 1 error, 2 timed out waiting, 3 a task
/// failed; and the README says so.
#[tokio::test(flavor = "multi_thread")]
async fn exit_codes_tell_usage_error_timeout_and_failure_apart() {
    let dir = tempfile::tempdir().unwrap();
    let q = common::queue("codes");
    let code = |args: &[&str]| common::mqlab(dir.path()).args(args).output().unwrap().status.code();
    assert_eq!(code(&["--help"]), Some(0));
    assert_eq!(code(&["--no-such-flag"]), Some(64));
    assert_eq!(code(&["submit"]), Some(64));
    assert_eq!(code(&["submit", "tasks.add", "--count", "0"]), Some(64));
    assert_eq!(code(&["submit", "tasks.add", "--kwargs", "{nope"]), Some(1));
    assert_eq!(code(&["submit", "tasks.add", "1", "2", "-Q", &q, "--wait", "--timeout", "0.3"]), Some(2));
    let log = dir.path().join("w.log");
    let mut w = common::start_worker(dir.path(), &q, &[], &log);
    assert_eq!(code(&["submit", "tasks.fail", "boom", "-Q", &q, "--wait", "--timeout", "20"]), Some(3));
    assert_eq!(code(&["submit", "tasks.add", "1", "2", "-Q", &q, "--wait", "--timeout", "20"]), Some(0));
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    assert!(readme.contains("3 when a task failed, and 64 on a usage error"), "the README documents the codes");
    w.signal(libc::SIGTERM);
    assert!(w.wait_exit(15).is_some_and(|s| s.success()));
    common::cleanup(&q).await;
}

/// A worker on a quorum queue: the broker's 406 to the plain declaration is expected and handled,
/// so it is one INFO line with the broker's reason, and no ERROR line; tasks run.
#[tokio::test(flavor = "multi_thread")]
async fn a_quorum_queue_is_information_not_an_error() {
    use lapin::options::QueueDeclareOptions;
    use lapin::types::{AMQPValue, FieldTable};
    let q = common::queue("quorum");
    let conn = lapin::Connection::connect(&common::broker(), Default::default()).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    ch.queue_declare(q.as_str().into(), QueueDeclareOptions { durable: true, ..Default::default() }, args).await.unwrap();
    let _ = conn.close(200, "bye".into()).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("w.log");
    let mut w = common::start_worker(dir.path(), &q, &[], &log);
    let backend = ResultBackend::connect(&common::redis(), 3600).await.unwrap();
    let m = TaskMessage::new("tasks.add", vec![json!(1), json!(2)], Map::new());
    common::publish_tasks(&common::broker(), &q, std::slice::from_ref(&m)).await;
    let done = wait_ready(&backend, &m.id, 20).await;
    w.signal(libc::SIGTERM);
    assert!(w.wait_exit(15).is_some_and(|s| s.success()));
    common::cleanup(&q).await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(done.map(|d| d.0), Some(TaskState::Success), "{text}");
    let line = text.lines().find(|l| l.contains("exists with other arguments")).unwrap_or_else(|| panic!("no line for the queue:\n{text}"));
    println!("{line}");
    assert!(line.contains("INFO/") && line.contains("x-queue-type") && line.contains("quorum"), "{line}");
    assert!(!text.contains("ERROR/"), "{text}");
}

/// The ids of the messages a queue holds (taken off it).
async fn ids_in_queue(queue: &str) -> Vec<String> {
    use lapin::options::BasicGetOptions;
    let conn = lapin::Connection::connect(&common::broker(), Default::default()).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    let mut ids = vec![];
    while let Some(m) = ch.basic_get(queue.into(), BasicGetOptions { no_ack: true }).await.unwrap() {
        let h = m.delivery.properties.headers().clone().unwrap_or_default();
        if let Some(id) = h.inner().get("id").and_then(|v| mqlab::celery::protocol::amqp_to_json(v).as_str().map(String::from)) {
            ids.push(id);
        }
    }
    let _ = conn.close(200, "bye".into()).await;
    ids
}

/// With `--acks-early`, a cold stop costs the tasks that were running, as the README says: of
/// four 30 s tasks on `-c 2`, the two running are neither stored nor back in the queue (lost,
/// counted per task id); the two waiting in the prefetch come back.
#[tokio::test(flavor = "multi_thread")]
async fn a_cold_stop_with_early_acks_loses_the_running_tasks() {
    let q = common::queue("coldearly");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("w.log");
    let mut w = common::start_worker(dir.path(), &q, &["-c", "2", "--acks-early"], &log);
    let msgs: Vec<TaskMessage> = (0..4).map(|_| TaskMessage::new("tasks.sleep", vec![json!(30)], Map::new())).collect();
    common::publish_tasks(&common::broker(), &q, &msgs).await;
    // Two started (acknowledged): the broker holds the other two, unacknowledged.
    let two_running = common::eventually(20, || async { common::queue_counts(&q) == Some((0, 2)) }).await;
    assert!(two_running, "two tasks running: {:?}", common::queue_counts(&q));
    w.signal(libc::SIGTERM);
    common::wait_for_file(&log, "warm shutdown", 10);
    w.signal(libc::SIGTERM);
    assert!(w.wait_exit(15).is_some(), "the cold stop ends the worker");
    let back = ids_in_queue(&q).await;
    let backend = ResultBackend::connect(&common::redis(), 3600).await.unwrap();
    let mut lost = vec![];
    for m in &msgs {
        let stored = backend.get(&m.id).await.map(|r| r.status.is_ready()).unwrap_or(false);
        if !stored && !back.contains(&m.id) {
            lost.push(m.id.clone());
        }
    }
    println!("cold stop with early acks: {} back in the queue, {} lost: {lost:?}", back.len(), lost.len());
    common::cleanup(&q).await;
    assert_eq!((back.len(), lost.len()), (2, 2));
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    assert!(
        readme.contains("With `--acks-early` a cold stop loses the\ntasks that were running"),
        "the README says what a cold stop costs"
    );
}
