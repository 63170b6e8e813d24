//! Worker throughput, mqlab vs Python Celery, in one run on the same broker and Redis.
//!
//! For each worker: 10,000 `tasks.add` are queued first (no consumer), the worker is started,
//! and the rate is measured from the first stored SUCCESS to the last one (results stored in
//! Redis, STARTED tracked, as in the curriculum's app), so start-up time is not counted.
//!
//!     cargo bench --bench throughput            # N=10000
//!     MQLAB_BENCH_N=2000 cargo bench --bench throughput
//!     MQLAB_BENCH_EVENTS=1 cargo bench --bench throughput   # both with task events
//!
//! Needs RabbitMQ (guest/guest on 127.0.0.1:5672), Redis (127.0.0.1:6379) and the venv of
//! `.ci/run` (`.venv` with celery[redis]).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mqlab::celery::client::{Client, follow};
use mqlab::celery::protocol::{TaskMessage, TaskState};
use serde_json::{Map, json};

const BROKER: &str = "amqp://guest:guest@127.0.0.1:5672//";
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
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    dir.join("mqlab")
}

struct Run {
    label: String,
    tasks_per_s: f64,
    completed: usize,
    failed: usize,
}

async fn measure(label: &str, n: usize, start: impl FnOnce(&str) -> Child) -> Run {
    let queue = format!("mqlab-bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let client = Client::connect(BROKER, Some(REDIS), &queue, 3600).await.expect("broker and Redis must be running");
    let msgs: Vec<TaskMessage> = (0..n).map(|i| TaskMessage::new("tasks.add", vec![json!(i), json!(i)], Map::new())).collect();
    let mut watcher = client.watch(&msgs).await.unwrap();
    client.publish(&msgs).await.unwrap();
    let _worker = Killer(start(&queue));
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
    assert!(done, "{label}: timed out");
    let secs = last.duration_since(first.unwrap()).as_secs_f64();
    let conn = lapin::Connection::connect(BROKER, Default::default()).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    let _ = ch.queue_delete(queue.as_str().into(), Default::default()).await;
    let _ = ch.exchange_delete(queue.as_str().into(), Default::default()).await;
    client.close().await;
    Run { label: label.into(), tasks_per_s: (ok + failed - 1) as f64 / secs, completed: ok, failed }
}

fn main() {
    let n: usize = std::env::var("MQLAB_BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let mqlab_c: String = std::env::var("MQLAB_BENCH_CONCURRENCY").unwrap_or_else(|_| "64".into());
    let py_c: String = std::env::var("MQLAB_BENCH_PY_CONCURRENCY").unwrap_or_else(|_| "2".into());
    let venv = std::env::var("MQLAB_TEST_VENV").map(PathBuf::from).unwrap_or_else(|_| root().join(".venv"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    println!(
        "worker throughput: {n} × tasks.add, results stored in Redis (STARTED + SUCCESS), pre-queued; {} cores",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    let bin = mqlab_bin();
    assert!(bin.exists(), "mqlab binary not found at {}", bin.display());
    // MQLAB_BENCH_EVENTS=1 turns task events on in both workers.
    let events = std::env::var("MQLAB_BENCH_EVENTS").is_ok_and(|v| v == "1");
    let ev = if events { "task events on" } else { "no task events" };
    let run_mqlab = || {
        rt.block_on(measure(&format!("mqlab worker -c {mqlab_c} (prefetch ×4, late acks, {ev})"), n, |q| {
            Command::new(&bin)
                .args([
                    "--broker",
                    BROKER,
                    "--result-backend",
                    REDIS,
                    "worker",
                    "-Q",
                    q,
                    "-c",
                    &mqlab_c,
                    "-l",
                    "warning",
                    if events { "--events" } else { "--no-events" },
                    "-n",
                    &format!("bench-{q}"),
                ])
                .env("MQLAB_CONFIG", "/nonexistent")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        }))
    };
    let run_py = || {
        rt.block_on(measure(&format!("celery worker -P prefork -c {py_c} (prefetch ×4, early acks, {ev})"), n, |q| {
            Command::new(venv.join("bin/celery"))
                .args([
                    "-A",
                    "celery_app",
                    "worker",
                    "-P",
                    "prefork",
                    "-c",
                    &py_c,
                    "-l",
                    "warning",
                    "--without-mingle",
                    "--without-gossip",
                    "-n",
                    &format!("bench-py-{q}@%h"),
                ])
                .args(if events { vec!["-E"] } else { vec![] })
                .current_dir(root().join("tests/python"))
                .env("CELERY_BROKER_URL", BROKER)
                .env("CELERY_RESULT_BACKEND", REDIS)
                .env("MQLAB_TEST_QUEUE", q)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("the Python venv (.venv) with celery[redis] is needed")
        }))
    };
    // Rounds in alternating order (mqlab first, then Python first, ...): median, min and max.
    let rounds: usize = std::env::var("MQLAB_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let (mut ms, mut ps) = (vec![], vec![]);
    for r in 0..rounds {
        if r % 2 == 0 {
            ms.push(run_mqlab());
            ps.push(run_py());
        } else {
            ps.push(run_py());
            ms.push(run_mqlab());
        }
    }
    let stat = |runs: &[Run]| -> (f64, f64, f64) {
        let mut v: Vec<f64> = runs.iter().map(|r| r.tasks_per_s).collect();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        (v[v.len() / 2], v[0], v[v.len() - 1])
    };
    for runs in [&ms, &ps] {
        let (med, min, max) = stat(runs);
        let lost: usize = runs.iter().map(|r| n - r.completed - r.failed).sum();
        println!(
            "  {:<60} median {:>7.0} tasks/s  (min {:.0}, max {:.0}; {} rounds, {} not completed)",
            runs[0].label,
            med,
            min,
            max,
            runs.len(),
            lost
        );
    }
    println!("  ratio of medians mqlab / Python Celery: {:.1}×", stat(&ms).0 / stat(&ps).0);
}
