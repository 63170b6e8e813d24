//! Worker throughput, mqlab vs Python Celery, in one run on the same broker and Redis.
//!
//! 1. Throughput. For each worker, at its defaults and at its best (mqlab `-c 64`; Python
//!    prefork at its default `-c nproc` and `-P threads -c 16`), with task events off and on:
//!    10,000 `tasks.add` are queued first (no consumer), the worker is started (each at its
//!    default log level at its defaults: info for mqlab, warning for Celery), and the rate is
//!    measured from the first stored SUCCESS to the last one (results stored in Redis, STARTED
//!    tracked, as in the curriculum's app), so start-up time is not counted. Rounds alternate
//!    the order; each line is the median with min–max.
//! 2. Latency: one `tasks.add` at a time, from publish to its SUCCESS seen, p50 and p99, each
//!    worker at its defaults.
//! 3. Memory: mqlab's worker RSS (and peak) after 100,000 tasks at its defaults.
//! 4. Publishing: `mqlab submit -n 10000` (the binary, its own figure) beside what the broker
//!    takes from lapin alone: the same Celery messages (every publish sent, then every confirm
//!    awaited), and the same count of bare persistent messages (no property but the delivery
//!    mode: what Celery's headers cost the broker), each into a fresh durable queue, rounds
//!    alternating.
//!
//! ```text
//! cargo bench --bench throughput
//! MQLAB_BENCH_N=2000 MQLAB_BENCH_ROUNDS=1 cargo bench --bench throughput   # quicker
//! MQLAB_BENCH_EVENTS=off|on|both (default both), MQLAB_BENCH_LATENCY_N (200),
//! MQLAB_BENCH_RSS_N (100000; 0 skips), MQLAB_BENCH_PUBLISH_N (10000; 0 skips),
//! MQLAB_BENCH_ONLY=mqlab (skip Python), MQLAB_BENCH_BROKER (an AMQP URL; 5672 by default)
//! ```
//!
//! Needs RabbitMQ (guest/guest on 127.0.0.1:5672), Redis (127.0.0.1:6379) and the venv of
//! `.ci/run` (`.venv` with celery[redis]).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mqlab::celery::client::{Client, follow};
use mqlab::celery::protocol::{TaskMessage, TaskState};
use serde_json::{Map, json};

/// The broker: RabbitMQ on 127.0.0.1:5672, or `MQLAB_BENCH_BROKER` (RabbitMQ 4 of `.ci/run`:
/// `amqp://guest:guest@127.0.0.1:5673//`).
fn broker() -> &'static str {
    static URL: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| std::env::var("MQLAB_BENCH_BROKER").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672//".into()));
    URL.as_str()
}
const REDIS: &str = "redis://127.0.0.1:6379/10";

struct Killer(Child);
impl Drop for Killer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn mqlab_bin() -> PathBuf {
    // Built by `cargo bench` alongside this bench (same profile).
    PathBuf::from(env!("CARGO_BIN_EXE_mqlab"))
}

struct Run {
    tasks_per_s: f64,
    completed: usize,
    failed: usize,
}

/// A worker to measure.
#[derive(Clone)]
enum Worker {
    /// mqlab's worker, with `-c` when given (its default otherwise).
    Mqlab(Option<usize>),
    /// Celery's prefork pool, with `-c` when given (its default, one per core, otherwise).
    PyPrefork(Option<usize>),
    PyThreads(usize),
}

impl Worker {
    fn label(&self, events: bool) -> String {
        let ev = if events { "events on" } else { "events off" };
        match self {
            Worker::Mqlab(None) => {
                format!("mqlab worker, defaults (-c {}; late acks; -l info; {ev})", mqlab::celery::worker::default_concurrency())
            }
            Worker::Mqlab(Some(c)) => format!("mqlab worker -c {c} (-l warning; {ev})"),
            Worker::PyPrefork(None) => {
                format!("celery worker, defaults (prefork -c {}; {ev})", mqlab::celery::worker::default_concurrency())
            }
            Worker::PyPrefork(Some(c)) => format!("celery worker -P prefork -c {c} ({ev})"),
            Worker::PyThreads(c) => format!("celery worker -P threads -c {c} ({ev})"),
        }
    }

    fn spawn(&self, q: &str, events: bool) -> Child {
        match self {
            Worker::Mqlab(c) => {
                let mut cmd = Command::new(mqlab_bin());
                cmd.args(["--broker", broker(), "--result-backend", REDIS, "worker", "-Q", q, "-n", &format!("bench-{q}")]);
                cmd.arg(if events { "--events" } else { "--no-events" });
                // At its defaults it logs as it does by default (info: two lines per task, as
                // a learner sees them); at its best, warnings only (Celery's default level).
                if let Some(c) = c {
                    cmd.args(["-c", &c.to_string(), "-l", "warning"]);
                }
                cmd.env("MQLAB_CONFIG", "/nonexistent").stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()
            }
            py => {
                let venv = std::env::var("MQLAB_TEST_VENV").map(PathBuf::from).unwrap_or_else(|_| root().join(".venv"));
                let mut cmd = Command::new(venv.join("bin/celery"));
                cmd.args([
                    "-A",
                    "celery_app",
                    "worker",
                    "-l",
                    "warning",
                    "--without-mingle",
                    "--without-gossip",
                    "-n",
                    &format!("bench-py-{q}@%h"),
                ]);
                match py {
                    Worker::PyPrefork(Some(c)) => cmd.args(["-P", "prefork", "-c", &c.to_string()]),
                    Worker::PyThreads(c) => cmd.args(["-P", "threads", "-c", &c.to_string()]),
                    _ => &mut cmd,
                };
                if events {
                    cmd.arg("-E");
                }
                cmd.current_dir(root().join("tests/python"))
                    .env("CELERY_BROKER_URL", broker())
                    .env("CELERY_RESULT_BACKEND", REDIS)
                    .env("MQLAB_TEST_QUEUE", q)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("the Python venv (.venv) with celery[redis] is needed")
            }
        }
    }
}

/// `n` × `tasks.add(i, i)`, the load the workers are measured with.
fn adds(n: usize) -> Vec<TaskMessage> {
    (0..n).map(|i| TaskMessage::new("tasks.add", vec![json!(i), json!(i)], Map::new())).collect()
}

fn fresh_queue() -> String {
    format!("mqlab-bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

async fn drop_queue(queue: &str) {
    let conn = lapin::Connection::connect(broker(), Default::default()).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    let _ = ch.queue_delete(queue.into(), Default::default()).await;
    let _ = ch.exchange_delete(queue.into(), Default::default()).await;
    let _ = conn.close(200, "bye".into()).await;
}

async fn measure(worker: &Worker, events: bool, n: usize) -> Run {
    let queue = fresh_queue();
    let client = Client::connect(broker(), Some(REDIS), &queue, 3600).await.expect("broker and Redis must be running");
    let msgs = adds(n);
    let mut watcher = client.watch(&msgs).await.unwrap();
    client.publish(&msgs).await.unwrap();
    let _worker = Killer(worker.spawn(&queue, events));
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    let (mut ok, mut failed) = (0usize, 0usize);
    let done = follow(&mut watcher, Some(Duration::from_secs(600)), |m| {
        if m.status.is_ready() {
            let now = Instant::now();
            first.get_or_insert(now);
            last = now;
            if m.status == TaskState::Success { ok += 1 } else { failed += 1 }
        }
    })
    .await
    .unwrap();
    assert!(done, "{}: timed out", worker.label(events));
    let secs = last.duration_since(first.unwrap()).as_secs_f64();
    drop_queue(&queue).await;
    client.close().await;
    Run { tasks_per_s: (ok + failed - 1) as f64 / secs, completed: ok, failed }
}

/// One task at a time: from publish to its SUCCESS seen by the client (Redis pub/sub), after 20
/// warm-up tasks. Returns the sorted round trips in milliseconds.
async fn latencies(worker: &Worker, n: usize) -> Vec<f64> {
    let queue = fresh_queue();
    let client = Client::connect(broker(), Some(REDIS), &queue, 3600).await.unwrap();
    let _worker = Killer(worker.spawn(&queue, false));
    let mut out = vec![];
    for i in 0..n + 20 {
        let m = TaskMessage::new("tasks.add", vec![json!(i), json!(1)], Map::new());
        let mut watcher = client.watch(std::slice::from_ref(&m)).await.unwrap();
        let t0 = Instant::now();
        client.publish(std::slice::from_ref(&m)).await.unwrap();
        let mut at = None;
        let done = follow(&mut watcher, Some(Duration::from_secs(60)), |meta| {
            if meta.status == TaskState::Success {
                at.get_or_insert_with(Instant::now);
            }
        })
        .await
        .unwrap();
        assert!(done, "{}: a task timed out", worker.label(false));
        if i >= 20 {
            out.push(at.unwrap().duration_since(t0).as_secs_f64() * 1000.0);
        }
    }
    drop_queue(&queue).await;
    client.close().await;
    out.sort_by(|a, b| a.partial_cmp(b).unwrap());
    out
}

/// `VmRSS` and `VmHWM` (peak) of a process, in MiB.
fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok()).unwrap_or(0.0)
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// lapin alone consuming `n` pre-queued Celery messages with this prefetch and acking each as it
/// arrives, without waiting for the ack's write (no task run, nothing stored): what the broker
/// allows a worker with that many unacknowledged messages. Messages per second from the first
/// delivery to the last.
async fn raw_consume_rate(n: usize, prefetch: u16) -> f64 {
    use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
    let queue = fresh_queue();
    let client = Client::connect(broker(), None, &queue, 600).await.unwrap();
    let msgs = adds(n);
    client.publish(&msgs).await.unwrap();
    client.close().await;
    let conn = lapin::Connection::connect(broker(), Default::default()).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.basic_qos(prefetch, BasicQosOptions::default()).await.unwrap();
    let mut consumer =
        ch.basic_consume(queue.as_str().into(), "bench".into(), BasicConsumeOptions::default(), Default::default()).await.unwrap();
    let mut first = None;
    for _ in 0..n {
        let d = futures_util::StreamExt::next(&mut consumer).await.expect("a delivery").unwrap();
        first.get_or_insert_with(Instant::now);
        // The ack frame is queued, not waited for (as the worker's acks are).
        let _ = futures_util::FutureExt::now_or_never(ch.basic_ack(d.delivery_tag, BasicAckOptions::default()));
    }
    let secs = first.unwrap().elapsed().as_secs_f64();
    let _ = conn.close(200, "bye".into()).await;
    drop_queue(&queue).await;
    (n - 1) as f64 / secs
}

/// mqlab's worker at its defaults through `n` tasks: its memory once every result is stored.
async fn memory_after(n: usize) -> (f64, f64, f64) {
    use redis::AsyncCommands;
    let queue = fresh_queue();
    let client = Client::connect(broker(), Some(REDIS), &queue, 600).await.unwrap();
    let msgs = adds(n);
    for chunk in msgs.chunks(10_000) {
        client.publish(chunk).await.unwrap();
    }
    let worker = Killer(Worker::Mqlab(None).spawn(&queue, false));
    let t0 = Instant::now();
    let redis = redis::Client::open(REDIS).unwrap();
    let mut con = redis.get_multiplexed_async_connection().await.unwrap();
    let mut done = 0;
    for chunk in msgs.chunks(1000) {
        loop {
            let keys: Vec<String> = chunk.iter().map(|m| format!("celery-task-meta-{}", m.id)).collect();
            let got: Vec<Option<String>> = con.mget(&keys).await.unwrap();
            let ready = got.iter().filter(|v| v.as_deref().is_some_and(|t| t.contains("\"SUCCESS\""))).count();
            if ready == chunk.len() {
                done += ready;
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(900), "memory run timed out at {done} of {n}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let (rss, peak) = rss_mib(worker.0.id());
    drop(worker);
    drop_queue(&queue).await;
    let keys: Vec<String> = msgs.iter().map(|m| format!("celery-task-meta-{}", m.id)).collect();
    for chunk in keys.chunks(10_000) {
        let _: () = con.del(chunk).await.unwrap();
    }
    client.close().await;
    (rss, peak, n as f64 / secs)
}

/// `mqlab submit -n` through the binary: the rate it reports for its publishing.
fn submit_rate(rt: &tokio::runtime::Runtime, n: usize) -> f64 {
    let queue = fresh_queue();
    let out = Command::new(mqlab_bin())
        .args([
            "--broker",
            broker(),
            "--result-backend",
            REDIS,
            "submit",
            "tasks.add",
            "2",
            "3",
            "-n",
            &n.to_string(),
            "-Q",
            &queue,
            "--json",
        ])
        .env("MQLAB_CONFIG", "/nonexistent")
        .env("MQLAB_DATA_DIR", std::env::temp_dir().join("mqlab-bench-data"))
        .output()
        .unwrap();
    assert!(out.status.success(), "mqlab submit failed: {}", String::from_utf8_lossy(&out.stderr));
    let line =
        String::from_utf8_lossy(&out.stdout).lines().find(|l| l.contains("\"published\"")).map(str::to_string).expect("a published line");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    rt.block_on(drop_queue(&queue));
    v["rate"].as_f64().unwrap()
}

/// lapin alone, into a fresh durable queue, publisher confirms on: every publish sent, then every
/// confirm awaited. `celery`: the Celery messages `mqlab submit` sends; otherwise bare persistent
/// messages with the same body.
async fn raw_publish_rate(n: usize, celery: bool) -> f64 {
    use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
    let queue = fresh_queue();
    let conn = lapin::Connection::connect(broker(), Default::default()).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(queue.as_str().into(), QueueDeclareOptions { durable: true, ..Default::default() }, Default::default()).await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    let msgs: Vec<TaskMessage> = (0..n).map(|_| TaskMessage::new("tasks.add", vec![json!(2), json!(3)], Map::new())).collect();
    let started = Instant::now();
    let bodies: Vec<Vec<u8>> = msgs.iter().map(TaskMessage::body).collect();
    let sends = msgs.iter().zip(&bodies).map(|(m, body)| {
        let props = if celery { m.properties() } else { lapin::BasicProperties::default().with_delivery_mode(2) };
        ch.basic_publish("".into(), queue.as_str().into(), BasicPublishOptions::default(), body, props)
    });
    let confirms: Vec<_> = futures_util::future::join_all(sends).await.into_iter().map(Result::unwrap).collect();
    for c in confirms {
        assert!(c.await.unwrap().is_ack(), "the broker refused a message");
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    let _ = conn.close(200, "bye".into()).await;
    drop_queue(&queue).await;
    rate
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let n = env_usize("MQLAB_BENCH_N", 10_000);
    let rounds = env_usize("MQLAB_BENCH_ROUNDS", 3).max(1);
    let only_mqlab = std::env::var("MQLAB_BENCH_ONLY").is_ok_and(|v| v == "mqlab");
    let events: Vec<bool> = match std::env::var("MQLAB_BENCH_EVENTS").as_deref() {
        Ok("on") | Ok("1") => vec![true],
        Ok("off") | Ok("0") => vec![false],
        _ => vec![false, true],
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let bin = mqlab_bin();
    assert!(bin.exists(), "mqlab binary not found at {}", bin.display());
    println!(
        "worker throughput: {n} × tasks.add, results stored in Redis (STARTED + SUCCESS), pre-queued; {} cores; {rounds} rounds in alternating order",
        mqlab::celery::worker::default_concurrency()
    );
    let mut workers = vec![Worker::Mqlab(None), Worker::Mqlab(Some(64))];
    if !only_mqlab {
        workers.extend([Worker::PyPrefork(None), Worker::PyThreads(16)]);
    }
    let stat = |v: &[f64]| -> (f64, f64, f64) {
        let mut v = v.to_vec();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        (v[v.len() / 2], v[0], v[v.len() - 1])
    };
    for &ev in &events {
        let mut rates: Vec<Vec<f64>> = vec![vec![]; workers.len()];
        let mut missing = vec![0usize; workers.len()];
        for r in 0..rounds {
            let order: Vec<usize> = if r % 2 == 0 { (0..workers.len()).collect() } else { (0..workers.len()).rev().collect() };
            for i in order {
                let run = rt.block_on(measure(&workers[i], ev, n));
                rates[i].push(run.tasks_per_s);
                missing[i] += n - run.completed - run.failed;
            }
        }
        for (i, w) in workers.iter().enumerate() {
            let (med, min, max) = stat(&rates[i]);
            println!("  {:<62} median {med:>7.0} tasks/s  (min {min:.0}, max {max:.0}; {} not completed)", w.label(ev), missing[i]);
        }
        if !only_mqlab {
            let (m, p) = (stat(&rates[0]).0, stat(&rates[2]).0);
            println!("  defaults against defaults, {}: mqlab / Python Celery = {:.1}×", if ev { "events on" } else { "events off" }, m / p);
        }
    }

    // What the broker allows at the same number of unacknowledged messages, with no work at all.
    let prefetch = mqlab::celery::worker::WorkerOptions::new(broker(), None).prefetch_count();
    let floors: Vec<f64> = (0..rounds).map(|_| rt.block_on(raw_consume_rate(n, prefetch))).collect();
    let (med, min, max) = stat(&floors);
    println!(
        "  {:<62} median {med:>7.0} msgs/s   (min {min:.0}, max {max:.0})",
        format!("lapin alone, prefetch {prefetch}, ack each at once (no task)")
    );

    let lat_n = env_usize("MQLAB_BENCH_LATENCY_N", 200);
    if lat_n > 0 {
        println!("latency: one tasks.add at a time, publish → SUCCESS seen, {lat_n} tasks after 20 warm-up, each worker at its defaults");
        let contenders = if only_mqlab { vec![Worker::Mqlab(None)] } else { vec![Worker::Mqlab(None), Worker::PyPrefork(None)] };
        for w in contenders {
            let l = rt.block_on(latencies(&w, lat_n));
            let pct = |p: f64| l[((l.len() as f64 - 1.0) * p).round() as usize];
            println!("  {:<62} p50 {:.2} ms  p99 {:.2} ms  (max {:.2} ms)", w.label(false), pct(0.5), pct(0.99), l[l.len() - 1]);
        }
    }

    let pub_n = env_usize("MQLAB_BENCH_PUBLISH_N", 10_000);
    if pub_n > 0 {
        println!("publishing: {pub_n} tasks.add with publisher confirms into a durable queue; {rounds} rounds in alternating order");
        let labels = [
            "mqlab submit -n (confirms a window behind the sends)",
            "lapin alone, the same Celery messages (then confirms)",
            "lapin alone, bare persistent messages (then confirms)",
        ];
        let mut rates: Vec<Vec<f64>> = vec![vec![]; 3];
        for r in 0..rounds {
            let order: Vec<usize> = if r % 2 == 0 { vec![0, 1, 2] } else { vec![2, 1, 0] };
            for i in order {
                rates[i].push(match i {
                    0 => submit_rate(&rt, pub_n),
                    1 => rt.block_on(raw_publish_rate(pub_n, true)),
                    _ => rt.block_on(raw_publish_rate(pub_n, false)),
                });
            }
        }
        for (i, label) in labels.iter().enumerate() {
            let (med, min, max) = stat(&rates[i]);
            println!("  {label:<62} median {med:>7.0} tasks/s  (min {min:.0}, max {max:.0})");
        }
    }

    let rss_n = env_usize("MQLAB_BENCH_RSS_N", 100_000);
    if rss_n > 0 {
        let (rss, peak, rate) = rt.block_on(memory_after(rss_n));
        println!("memory: mqlab worker at its defaults after {rss_n} tasks ({rate:.0} tasks/s): RSS {rss:.1} MiB, peak {peak:.1} MiB");
    }
}
