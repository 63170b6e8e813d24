//! Hardening, second pass: a result that cannot be stored is an outage, not a loss; remote
//! control cannot poison the worker; no small message costs gigabytes. Redis servers that get
//! refused, filled or locked are private ones the tests start themselves; each test runs on a
//! queue (or vhost) of its own and prints its figures.

mod common;

use common::Need;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use mqlab::celery::backend::ResultBackend;
use mqlab::celery::protocol::{TaskMessage, TaskState};
use mqlab::sandbox::{Redis, find_programs};
use serde_json::{Map, Value, json};

/// A private Redis, killed when dropped (a failing test leaves none behind).
struct OwnRedis(Redis);

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.0.kill();
    }
}

async fn own_redis(dir: &Path) -> OwnRedis {
    let programs = find_programs().expect("RabbitMQ and Redis programs (.ci/run installs them)");
    OwnRedis(Redis::start(&programs, &dir.join("redis"), None).await.unwrap())
}

/// An administrative connection to a private Redis (kept through CLIENT KILL by SKIPME).
async fn admin(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap()
}

async fn cmd<T: redis::FromRedisValue>(con: &mut redis::aio::MultiplexedConnection, args: &[&str]) -> T {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query_async(con).await.unwrap()
}

fn burst(n: usize, task: &str, args: Value) -> (Vec<TaskMessage>, Vec<String>) {
    let msgs: Vec<TaskMessage> = (0..n).map(|_| TaskMessage::new(task, args.as_array().unwrap().clone(), Map::new())).collect();
    let ids = msgs.iter().map(|m| m.id.clone()).collect();
    (msgs, ids)
}

/// Per task id: (SUCCESS, FAILURE, STARTED, nothing stored).
async fn tally(backend: &ResultBackend, ids: &[String]) -> (usize, usize, usize, usize) {
    let mut out = (0, 0, 0, 0);
    for chunk in ids.chunks(500) {
        // A read that fails (this client's own connection was dropped too) counts as unknown.
        let Ok(metas) = backend.get_many(chunk).await else {
            out.3 += chunk.len();
            continue;
        };
        for m in metas {
            match m.status {
                TaskState::Success => out.0 += 1,
                TaskState::Failure => out.1 += 1,
                TaskState::Started => out.2 += 1,
                _ => out.3 += 1,
            }
        }
    }
    out
}

async fn wait_tally(
    backend: &ResultBackend,
    ids: &[String],
    secs: u64,
    done: impl Fn((usize, usize, usize, usize)) -> bool,
) -> (usize, usize, usize, usize) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let t = tally(backend, ids).await;
        if done(t) || Instant::now() > deadline {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Messages the broker still holds for a queue: ready plus unacknowledged.
fn held(queue: &str) -> u64 {
    let (ready, unacked) = common::queue_counts(queue).expect("the queue is listed");
    ready + unacked
}

/// How long after `since` the number of keys in a Redis grows past `keys` (writes resumed).
async fn resumed_after(con: &mut redis::aio::MultiplexedConnection, keys: u64, since: Instant) -> Duration {
    let deadline = since + Duration::from_secs(20);
    loop {
        let n: u64 = cmd(con, &["DBSIZE"]).await;
        if n > keys {
            return since.elapsed();
        }
        assert!(Instant::now() < deadline, "no result stored within 20 s of Redis taking writes again");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Checks the outage's shape in the worker's log: one line when it began, one when it ended.
fn one_line_each(log: &Path) {
    let text = std::fs::read_to_string(log).unwrap();
    assert_eq!(text.matches("result backend: cannot store results").count(), 1, "one line for the outage:\n{text}");
    assert_eq!(text.matches("result backend: connection re-established").count(), 1, "one line for the recovery");
}

/// Redis asks for a password (every connection dropped) while 5,000 tasks run, for 5 s after the
/// broker's counts settle: no message is acknowledged without its result, none is lost, none is
/// left STARTED, and writes resume within a second of Redis taking them again.
#[tokio::test(flavor = "multi_thread")]
async fn noauth_for_five_seconds_loses_no_result() {
    if !common::have(&[Need::Programs, Need::Rabbitmq, Need::Rabbitmqctl]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let redis = own_redis(dir.path()).await;
    let url = redis.0.url();
    let mut con = admin(&url).await;
    let q = common::queue("noauth5");
    let (msgs, ids) = burst(5000, "tasks.add", json!([1, 2]));
    common::publish_tasks(&common::broker(), &q, &msgs).await;
    let log = dir.path().join("w.log");
    let mut w = common::worker_proc(dir.path(), &common::broker(), &url, &q, &[], &log, "hd");
    let backend = ResultBackend::connect(&url, 3600).await.unwrap();
    wait_tally(&backend, &ids, 60, |t| t.0 >= 300).await;

    let _: () = cmd(&mut con, &["CONFIG", "SET", "requirepass", "s3cret-pw"]).await;
    let _: () = cmd(&mut con, &["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"]).await;
    common::wait_for_file(&log, "result backend: cannot store results", 20);
    let reader = ResultBackend::connect(&url.replace("redis://", "redis://:s3cret-pw@"), 3600).await.unwrap();
    // The acks of results stored before the outage go out, then nothing moves: two looks a
    // second apart agree. (Each look asks rabbitmqctl, an Erlang VM of its own: seconds on a busy
    // machine.)
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = (held(&q), tally(&reader, &ids).await);
    let at_start = loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = (held(&q), tally(&reader, &ids).await);
        if now == last {
            break now;
        }
        assert!(Instant::now() < deadline, "the counts did not settle within 30 s of the outage: {last:?} → {now:?}");
        last = now;
    };
    // Nothing moves for 5 s more of the fault (which lasts at least 5 s in all).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let at_end = (held(&q), tally(&reader, &ids).await);
    println!("NOAUTH for 5 s: held by the broker {} → {}, stored {} → {}", at_start.0, at_end.0, (at_start.1).0, (at_end.1).0);
    assert_eq!(at_start, at_end, "nothing was stored, nothing acknowledged during the outage");
    // No message is acknowledged without its result stored: held + stored covers all 5,000. (A
    // write the kill cut after Redis applied it is stored while its message is held: the worker
    // stores it again once Redis takes writes, so the sum may exceed 5,000 by those.)
    assert!(at_end.0 + (at_end.1).0 as u64 >= 5000, "a message was acknowledged without its result: {at_end:?}");

    let keys: u64 = cmd(&mut con, &["DBSIZE"]).await;
    let _: () = cmd(&mut con, &["CONFIG", "SET", "requirepass", ""]).await;
    let resume = resumed_after(&mut con, keys, Instant::now()).await;
    let (ok, failed, started, missing) = wait_tally(&backend, &ids, 120, |t| t.0 + t.1 == 5000).await;
    println!(
        "NOAUTH for 5 s during 5,000 tasks: {ok} SUCCESS, {failed} FAILURE, {started} stuck STARTED, {missing} lost; writes resumed {:.0} ms after Redis took them again",
        resume.as_secs_f64() * 1000.0
    );
    assert_eq!((ok, failed, started, missing), (5000, 0, 0, 0));
    assert!(resume < Duration::from_secs(1), "writes resumed after {resume:?}");
    assert!(common::eventually(30, || async { held(&q) == 0 }).await, "every message acknowledged once its result was stored");
    one_line_each(&log);
    w.signal(libc::SIGTERM);
    assert!(w.wait_exit(15).is_some_and(|s| s.success()));
    common::cleanup(&q).await;
}

/// Redis at `maxmemory` with `noeviction` (every write refused with OOM) while 2,000 tasks wait:
/// no new task starts, nothing is acknowledged, and once Redis has room all 2,000 are stored.
#[tokio::test(flavor = "multi_thread")]
async fn redis_out_of_memory_pauses_intake_and_loses_nothing() {
    if !common::have(&[Need::Programs, Need::Rabbitmq, Need::Rabbitmqctl]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let redis = own_redis(dir.path()).await;
    let url = redis.0.url();
    let mut con = admin(&url).await;
    let q = common::queue("oom");
    let log = dir.path().join("w.log");
    let mut w = common::worker_proc(dir.path(), &common::broker(), &url, &q, &[], &log, "hd");
    common::wait_for_file(&log, "ready.", 30);
    let _: () = cmd(&mut con, &["CONFIG", "SET", "maxmemory-policy", "noeviction"]).await;
    let _: () = cmd(&mut con, &["CONFIG", "SET", "maxmemory", "1"]).await;
    let (msgs, ids) = burst(2000, "tasks.add", json!([2, 2]));
    common::publish_tasks(&common::broker(), &q, &msgs).await;
    common::wait_for_file(&log, "result backend: cannot store results", 20);
    let backend = ResultBackend::connect(&url, 3600).await.unwrap();
    let ran = || std::fs::read_to_string(&log).unwrap().matches("succeeded in").count();
    let before = (held(&q), ran());
    // The fault lasts 2 s: long enough for a worker that went on to drain the queue.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = (held(&q), ran());
    println!("OOM: held by the broker {} → {}, tasks run {} → {}", before.0, after.0, before.1, after.1);
    assert_eq!(after.0, 2000, "no message acknowledged while its result cannot be stored");
    assert_eq!(before.1, after.1, "no new task started during the outage");
    assert!(after.1 <= 8, "at most the tasks already under way ran: {}", after.1);
    assert_eq!(tally(&backend, &ids).await.0, 0);

    let keys: u64 = cmd(&mut con, &["DBSIZE"]).await;
    let _: () = cmd(&mut con, &["CONFIG", "SET", "maxmemory", "0"]).await;
    let resume = resumed_after(&mut con, keys, Instant::now()).await;
    let (ok, failed, started, missing) = wait_tally(&backend, &ids, 120, |t| t.0 + t.1 == 2000).await;
    println!(
        "Redis at maxmemory during 2,000 tasks: {ok} SUCCESS, {failed} FAILURE, {started} stuck STARTED, {missing} lost; writes resumed {:.0} ms after Redis had room",
        resume.as_secs_f64() * 1000.0
    );
    assert_eq!((ok, failed, started, missing), (2000, 0, 0, 0));
    assert!(resume < Duration::from_secs(1), "writes resumed after {resume:?}");
    assert!(common::eventually(30, || async { held(&q) == 0 }).await);
    one_line_each(&log);
    w.signal(libc::SIGTERM);
    assert!(w.wait_exit(15).is_some_and(|s| s.success()));
    common::cleanup(&q).await;
}

/// A result Redis refuses for good (larger than its `proto-max-bulk-len`): the task is stored
/// as FAILURE (BackendStoreError) naming the refusal and its message acknowledged once; the
/// tasks around it are stored as usual.
#[tokio::test(flavor = "multi_thread")]
async fn a_result_refused_for_good_is_a_failure_with_the_reason() {
    if !common::have(&[Need::Programs, Need::Rabbitmq, Need::Rabbitmqctl]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let redis = own_redis(dir.path()).await;
    let url = redis.0.url();
    let mut con = admin(&url).await;
    let _: () = cmd(&mut con, &["CONFIG", "SET", "proto-max-bulk-len", "1048576"]).await;
    let q = common::queue("toolarge");
    let log = dir.path().join("w.log");
    let mut w = common::worker_proc(dir.path(), &common::broker(), &url, &q, &[], &log, "hd");
    common::wait_for_file(&log, "ready.", 30);
    let big = TaskMessage::new("tasks.echo", vec![json!("x".repeat(1536 * 1024))], Map::new());
    let (small, mut ids) = burst(10, "tasks.add", json!([1, 1]));
    common::publish_tasks(&common::broker(), &q, std::slice::from_ref(&big)).await;
    common::publish_tasks(&common::broker(), &q, &small).await;
    ids.push(big.id.clone());
    let backend = ResultBackend::connect(&url, 3600).await.unwrap();
    let t = wait_tally(&backend, &ids, 60, |t| t.0 + t.1 == 11).await;
    assert_eq!(t, (10, 1, 0, 0));
    let m = backend.get(&big.id).await.unwrap();
    assert_eq!(m.result["exc_type"], "BackendStoreError", "{m:?}");
    let why = m.exception_text().unwrap();
    println!("a result refused for good: {why}");
    assert!(why.contains("refused the SUCCESS result"), "{why}");
    assert!(common::eventually(30, || async { held(&q) == 0 }).await, "acknowledged once");
    // Redis closes the connection after such a request: at most a moment's outage, ended.
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.matches("cannot store results").count(), text.matches("connection re-established").count(), "{text}");
    w.signal(libc::SIGTERM);
    assert!(w.wait_exit(15).is_some_and(|s| s.success()));
    common::cleanup(&q).await;
}

/// The node's reply to one control request (within 10 s).
async fn control(broker: &str, node: &str, method: &str, arguments: Value) -> Value {
    let what = format!("{method} {arguments}");
    common::control_request(broker, node, method, arguments, 10).await.unwrap_or_else(|| panic!("no reply to {what} within 10 s")).0
}

/// Every control command that takes arguments, sent hostile ones: each gets Celery's error reply
/// (or a harmless ok), none panics, the pidbox keeps answering, and tasks of every type still
/// run. Among them the rate that used to poison the worker (`1e-300/s`), then undone.
#[tokio::test(flavor = "multi_thread")]
async fn hostile_control_arguments_poison_nothing() {
    if !common::have(&[Need::Rabbitmq, Need::Management, Need::Redis]) {
        return;
    }
    let vhost = common::Vhost::new("hostilectl");
    let broker = vhost.broker();
    let dir = tempfile::tempdir().unwrap();
    let q = common::queue("hostilectl");
    let node = format!("celery@hd-{}", &q[q.len() - 8..]);
    let log = dir.path().join("w.log");
    let mut w = common::worker_proc(dir.path(), &broker, &common::redis(), &q, &["-c", "2"], &log, "hd");
    common::wait_for_file(&log, "ready.", 30);
    let big = "q".repeat(300);
    let cases: Vec<(&str, Value, bool)> = vec![
        ("rate_limit", json!({"task_name": "tasks.add", "rate_limit": "1e-300/s"}), false),
        ("rate_limit", json!({"task_name": "tasks.add", "rate_limit": 1e-300}), false),
        ("rate_limit", json!({"task_name": "tasks.add", "rate_limit": "-5/s"}), false),
        ("rate_limit", json!({"task_name": "tasks.add", "rate_limit": "abc/s"}), false),
        ("rate_limit", json!({"task_name": "tasks.add", "rate_limit": "1/fortnight"}), false),
        ("rate_limit", json!({"task_name": "tasks.add", "rate_limit": [1]}), false),
        ("rate_limit", json!({"task_name": "tasks.nope", "rate_limit": "1/s"}), false),
        ("rate_limit", json!({"task_name": 42, "rate_limit": "1/s"}), false),
        ("rate_limit", json!({"task_name": "tasks.echo", "rate_limit": "1e308/s"}), true),
        ("rate_limit", json!({"task_name": "tasks.echo", "rate_limit": "0"}), true),
        ("time_limit", json!({"task_name": "tasks.add", "soft": "soon", "hard": null}), false),
        ("time_limit", json!({"task_name": "tasks.add", "soft": null, "hard": -1}), false),
        ("time_limit", json!({"task_name": "tasks.add", "soft": 1e300, "hard": null}), false),
        ("time_limit", json!({"task_name": "tasks.add", "soft": [], "hard": {}}), false),
        ("time_limit", json!({"task_name": "tasks.nope", "soft": 1, "hard": 2}), false),
        ("time_limit", json!({"task_name": "tasks.add", "soft": null, "hard": null}), true),
        ("pool_grow", json!({"n": -5}), false),
        ("pool_grow", json!({"n": 1e30}), false),
        ("pool_grow", json!({"n": "many"}), false),
        ("pool_grow", json!({"n": 100_000}), false),
        ("pool_grow", json!({"n": 2}), true),
        ("pool_shrink", json!({"n": 0}), false),
        ("pool_shrink", json!({"n": 10_000}), true),
        ("add_consumer", json!({"queue": ""}), false),
        ("add_consumer", json!({"queue": big}), false),
        ("add_consumer", json!({"queue": 5}), false),
        ("add_consumer", json!({}), false),
        ("cancel_consumer", json!({"queue": "  "}), false),
        ("revoke", json!({"task_id": []}), false),
        ("revoke", json!({"task_id": 7}), false),
        ("query_task", json!({"ids": 7}), true),
        ("enable_events", json!({"junk": [1, 2]}), true),
        ("no_such_method", json!({}), false),
    ];
    let mut errors = 0;
    for (method, args, ok) in &cases {
        let reply = control(&broker, &node, method, args.clone()).await;
        let is_error = reply.get("error").is_some();
        assert_eq!(!is_error, *ok, "{method} {args}: {reply}");
        errors += is_error as usize;
    }
    // The worker still answers and still runs every task type; the undo of a rate is fine too.
    assert_eq!(control(&broker, &node, "ping", json!({})).await, json!({"ok": "pong"}));
    let undo = control(&broker, &node, "rate_limit", json!({"task_name": "tasks.add", "rate_limit": 0})).await;
    assert!(undo.get("ok").is_some(), "{undo}");
    let mut msgs = vec![];
    for i in 0..10 {
        msgs.push(TaskMessage::new("tasks.add", vec![json!(i), json!(1)], Map::new()));
        msgs.push(TaskMessage::new("tasks.echo", vec![json!(i)], Map::new()));
    }
    let ids: Vec<String> = msgs.iter().map(|m| m.id.clone()).collect();
    common::publish_tasks(&broker, &q, &msgs).await;
    let backend = ResultBackend::connect(&common::redis(), 3600).await.unwrap();
    let t = wait_tally(&backend, &ids, 30, |t| t.0 == ids.len()).await;
    println!("hostile control: {} commands, {errors} error replies, then {} of {} tasks done", cases.len(), t.0, ids.len());
    assert_eq!(t, (ids.len(), 0, 0, 0));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("panicked"), "{text}");
    assert!(w.0.try_wait().unwrap().is_none(), "the worker is alive");
    w.signal(libc::SIGTERM);
    assert!(w.wait_exit(15).is_some_and(|s| s.success()));
}

/// The peak resident memory of a process (VmHWM), in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).unwrap().trim().trim_end_matches("kB").trim().parse().unwrap();
    kb / 1024.0
}

/// Small messages that expand to huge ones: 60 MiB of valid JSON in 61 KB of zlib, 1 GiB of
/// zeros in 156 KB of xz, a plain 20 MiB body, a body of more values than the cap, an integer of
/// 5 million digits. Each is refused before it is built (FAILURE with the reason, rejected once:
/// the queue ends empty, so no crash loop can follow), the worker's peak RSS stays small, and
/// the good tasks around them are done at once. A 4,300-digit integer (Python's limit) passes.
#[tokio::test(flavor = "multi_thread")]
async fn small_messages_cannot_cost_gigabytes() {
    if !common::have(&[Need::Rabbitmq, Need::Redis]) {
        return;
    }
    use std::io::Write;
    let q = common::queue("bombs");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("w.log");
    let mut w = common::start_worker(dir.path(), &q, &["-c", "2"], &log);
    let baseline = peak_rss_mib(w.0.id());
    let broker = common::broker();
    let backend = ResultBackend::connect(&common::redis(), 3600).await.unwrap();
    let id = || uuid::Uuid::new_v4().to_string();
    let ct = Some("application/json");

    // [[0,0,…],{},null]: 60 MiB of JSON, zlib.
    let mut json60 = Vec::with_capacity(61 << 20);
    json60.extend_from_slice(b"[[0");
    while json60.len() < 60 << 20 {
        json60.extend_from_slice(b",0");
    }
    json60.extend_from_slice(b"],{},null]");
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&json60).unwrap();
    let zlib = z.finish().unwrap();
    // 1 GiB of zeros, xz (the xz program, as Python's lzma writes it).
    let mut xz = std::process::Command::new("sh")
        .args(["-c", "head -c 1073741824 /dev/zero | xz -6 -T1 -c"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("xz");
    let mut xz_bytes = vec![];
    std::io::Read::read_to_end(xz.stdout.as_mut().unwrap(), &mut xz_bytes).unwrap();
    assert!(xz.wait().unwrap().success());
    // A plain 20 MiB body; 1.5 million values in 3 MB; 5 million digits; and 4,300 digits.
    let plain20 = [b"[[\"".as_slice(), &vec![b'x'; 20 << 20], b"\"], {}, null]"].concat();
    let mut many = b"[[0".to_vec();
    for _ in 0..1_500_000 {
        many.extend_from_slice(b",0");
    }
    many.extend_from_slice(b"], {}, null]");
    let digits5m = format!("[[{}], {{}}, null]", "7".repeat(5_000_000)).into_bytes();
    let ok_digits = "7".repeat(4300);
    println!(
        "sizes: zlib {} KB, xz {} KB, plain {} MiB, many {} MB",
        zlib.len() / 1024,
        xz_bytes.len() / 1024,
        plain20.len() >> 20,
        many.len() >> 20
    );

    // (what, task id, body, compression, the reason the FAILURE gives)
    type Bomb<'a> = (&'a str, String, Vec<u8>, Option<&'a str>, &'a str);
    let bad: Vec<Bomb> = vec![
        ("zlib 60 MiB", id(), zlib, Some("application/x-gzip"), "expands past 16 MiB"),
        ("xz 1 GiB", id(), xz_bytes, Some("application/x-lzma"), "expands past 16 MiB"),
        ("plain 20 MiB", id(), plain20, None, "larger than 16 MiB"),
        ("1.5 million values", id(), many, None, "more than 1000000 values"),
        ("5 million digits", id(), digits5m, None, "Exceeds the limit (4300 digits)"),
    ];
    let mut good_ids = vec![];
    let start = Instant::now();
    for (_, bid, body, compression, _) in &bad {
        let mut h = json!({"task": "tasks.echo", "id": bid});
        if let Some(c) = compression {
            h["compression"] = json!(c);
        }
        common::publish_raw(&broker, &q, h, body, ct).await;
        let good = TaskMessage::new("tasks.add", vec![json!(1), json!(2)], Map::new());
        good_ids.push(good.id.clone());
        common::publish_tasks(&broker, &q, std::slice::from_ref(&good)).await;
    }
    let big_ok_raw = format!("[[{ok_digits}], {{}}, null]");
    let big_ok_id = id();
    common::publish_raw(&broker, &q, json!({"task": "tasks.echo", "id": big_ok_id}), big_ok_raw.as_bytes(), ct).await;
    good_ids.push(big_ok_id.clone());

    let t = wait_tally(&backend, &good_ids, 60, |t| t.0 == good_ids.len()).await;
    let elapsed = start.elapsed();
    assert_eq!(t.0, good_ids.len(), "every good task done: {t:?}");
    assert!(w.0.try_wait().unwrap().is_none(), "the worker is alive");
    let bad_ids: Vec<String> = bad.iter().map(|b| b.1.clone()).collect();
    wait_tally(&backend, &bad_ids, 30, |t| t.1 == bad_ids.len()).await;
    let refused_in = start.elapsed();
    for (name, bid, _, _, why) in &bad {
        let m = backend.get(bid).await.unwrap();
        assert_eq!(m.status, TaskState::Failure, "{name}: {m:?}");
        let text = m.exception_text().unwrap();
        assert!(text.starts_with("DecodeError") && text.contains(why), "{name}: {text}");
    }
    let echoed = backend.get(&big_ok_id).await.unwrap();
    assert_eq!(mqlab::celery::pyjson::big_int_digits(&echoed.result).map(str::len), Some(4300), "{echoed:?}");
    assert!(common::eventually(30, || async { held(&q) == 0 }).await, "each refused message rejected once: nothing comes back");
    let peak = peak_rss_mib(w.0.id());
    println!(
        "bombs: 5 refused within {:.1} s, {} good tasks done in {:.1} s; worker peak RSS {peak:.0} MiB (at start {baseline:.0} MiB)",
        refused_in.as_secs_f64(),
        good_ids.len(),
        elapsed.as_secs_f64()
    );
    assert!(peak < 400.0, "peak RSS {peak:.0} MiB");
    w.signal(libc::SIGTERM);
    assert!(w.wait_exit(15).is_some_and(|s| s.success()));
    common::cleanup(&q).await;
}
