//! The worker pool: consumes task messages, runs the registered tasks with bounded concurrency,
//! stores results in Celery's Redis format, acknowledges as configured, and survives bad
//! messages, broker outages and Redis outages.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, BasicRejectOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use serde_json::{Map, Value};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};

use serde_json::json;

use super::backend::{ResultBackend, ResultMeta, StoreOutcome};
use super::broker::{self, ConnectError};
use super::events::{self, Clock, Dispatcher};
use super::pidbox::{self, Inspect};
use super::protocol::{TaskMessage, TaskState, short};
use super::pyrepr;
use super::tasks::{Registry, TaskError, TaskSettings};
use crate::redact::mask_url;

/// Celery's default `max_retries`.
pub const MAX_RETRIES: i64 = 3;

/// How a worker runs.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    pub broker_url: String,
    /// None disables result storing.
    pub result_backend: Option<String>,
    pub concurrency: usize,
    pub prefetch_multiplier: u16,
    /// Ack after the result is stored (the default here, as the curriculum teaches); false gives
    /// Celery's default of acking when the task starts.
    pub acks_late: bool,
    pub queue: String,
    pub hostname: String,
    pub track_started: bool,
    pub result_expires: u64,
    pub settings: TaskSettings,
    /// Send task events (task-received, -started, -succeeded, -failed) on `celeryev`; worker
    /// events (online, heartbeat, offline) are always sent, as Celery does.
    pub task_events: bool,
    /// Where the revoked ids are kept across restarts (`--statedb`, as Celery's); None: memory only.
    pub statedb: Option<std::path::PathBuf>,
    /// Store the task's name, arguments, worker, retries and queue with each state (Celery's
    /// `result_extended`).
    pub result_extended: bool,
    /// The arguments task queues are declared with (`x-max-priority`).
    pub queue_args: broker::QueueArgs,
}

impl WorkerOptions {
    pub fn new(broker_url: impl Into<String>, result_backend: Option<String>) -> Self {
        WorkerOptions {
            broker_url: broker_url.into(),
            result_backend,
            concurrency: default_concurrency(),
            prefetch_multiplier: 4,
            acks_late: true,
            queue: "celery".into(),
            hostname: default_nodename(),
            track_started: true,
            result_expires: 3600,
            settings: TaskSettings::default(),
            task_events: true,
            statedb: None,
            result_extended: false,
            queue_args: broker::QueueArgs::default(),
        }
    }

    /// The queues to consume: `-Q a,b` is two (blank names dropped; none left is the one named).
    pub fn queues(&self) -> Vec<String> {
        let qs: Vec<String> = self.queue.split(',').map(|q| q.trim().to_string()).filter(|q| !q.is_empty()).collect();
        if qs.is_empty() { vec![self.queue.clone()] } else { qs }
    }

    /// `concurrency × multiplier`, as Celery computes it (0 = no limit).
    pub fn prefetch_count(&self) -> u16 {
        (self.concurrency as u64 * self.prefetch_multiplier as u64).min(u16::MAX as u64) as u16
    }
}

pub fn default_concurrency() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}

/// `celery@<hostname>`, Celery's default node name.
pub fn default_nodename() -> String {
    format!("celery@{}", super::protocol::hostname())
}

/// What the worker reports as it goes (for the live views and for tests).
#[derive(Clone, Debug, PartialEq)]
pub enum WorkerEvent {
    Connected {
        broker: String,
    },
    Ready {
        prefetch: u16,
    },
    ConnectionLost {
        error: String,
    },
    BackendLost {
        error: String,
    },
    BackendRecovered,
    /// Redis refused one result for good (a key of another type, a refused login…).
    BackendRefused {
        task_id: String,
        error: String,
    },
    /// Revoked: not run, or stopped (terminate).
    TaskRevoked {
        id: String,
        at: DateTime<Utc>,
    },
    TaskReceived {
        id: String,
        name: String,
        args: String,
        kwargs: String,
        redelivered: bool,
        at: DateTime<Utc>,
    },
    TaskStarted {
        id: String,
        at: DateTime<Utc>,
    },
    TaskSucceeded {
        id: String,
        result: String,
        runtime: f64,
        at: DateTime<Utc>,
    },
    TaskFailed {
        id: String,
        exception: String,
        traceback: Option<String>,
        runtime: f64,
        at: DateTime<Utc>,
    },
    TaskRejected {
        id: Option<String>,
        name: Option<String>,
        reason: String,
        at: DateTime<Utc>,
    },
    TaskRetried {
        id: String,
        exception: String,
        at: DateTime<Utc>,
    },
    Stopped {
        mode: StopMode,
    },
    Fatal {
        error: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopMode {
    /// Stop consuming, finish running tasks, store their results, ack, leave.
    Warm,
    /// Stop at once; unfinished messages stay unacked and the broker requeues them.
    Cold,
}

/// The first wait before reconnecting to the broker, and the longest.
pub const RECONNECT_FIRST: Duration = Duration::from_millis(100);
pub const RECONNECT_MAX: Duration = Duration::from_secs(1);

/// `d` ± 20%, from the clock's nanoseconds (no need for a random generator here).
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|t| t.subsec_nanos()).unwrap_or(0);
    let f = 0.8 + 0.4 * (nanos % 1000) as f64 / 1000.0;
    d.mul_f64(f)
}

/// The longest a task may be held for its ETA or limited in time: a year.
pub const MAX_WAIT_SECS: f64 = 31_536_000.0;

/// Counters shared with whoever watches the worker.
#[derive(Debug, Default)]
pub struct WorkerStats {
    pub received: AtomicU64,
    pub succeeded: AtomicU64,
    pub failed: AtomicU64,
    pub rejected: AtomicU64,
    pub active: AtomicUsize,
    /// Deliveries this worker holds and has not acknowledged or rejected yet (running, waiting
    /// for a slot, or waiting for their ETA): the broker's "unacked" for this consumer.
    pub unacked: AtomicUsize,
    pub connected: AtomicBool,
}

impl WorkerStats {
    pub fn processed(&self) -> u64 {
        self.succeeded.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Control {
    Run,
    Stop(StopMode),
}

/// A running worker.
pub struct WorkerHandle {
    control: watch::Sender<Control>,
    join: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub stats: Arc<WorkerStats>,
}

impl WorkerHandle {
    pub fn stop(&self, mode: StopMode) {
        let _ = self.control.send(Control::Stop(mode));
    }

    pub fn is_finished(&self) -> bool {
        self.join.is_finished()
    }

    /// Waits for the worker to end. Call it until it returns, not again after.
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        (&mut self.join).await.map_err(|e| anyhow::anyhow!("worker task failed: {e}"))?
    }
}

/// Starts a worker on the current tokio runtime.
pub fn spawn(opts: WorkerOptions, events: Option<mpsc::UnboundedSender<WorkerEvent>>) -> WorkerHandle {
    let (control, rx) = watch::channel(Control::Run);
    let stats = Arc::new(WorkerStats::default());
    let join = tokio::spawn(run(opts, control.clone(), rx, Emitter(events), stats.clone()));
    WorkerHandle { control, join, stats }
}

#[derive(Clone)]
struct Emitter(Option<mpsc::UnboundedSender<WorkerEvent>>);

impl Emitter {
    fn send(&self, ev: WorkerEvent) {
        if let Some(tx) = &self.0 {
            let _ = tx.send(ev);
        }
    }
}

/// Everything a task execution needs.
struct Shared {
    opts: WorkerOptions,
    registry: Registry,
    backend: Option<ResultBackend>,
    stats: Arc<WorkerStats>,
    events: Emitter,
    pid: u32,
    clock: Arc<Clock>,
    /// Running tasks as `celery inspect active` shows them.
    active: Mutex<BTreeMap<String, Value>>,
    /// Tasks run, by name (`celery inspect stats` "total").
    totals: Mutex<BTreeMap<String, u64>>,
    control: watch::Sender<Control>,
    started: Instant,
    /// Since when the broker has been unreachable.
    outage: Mutex<Option<Instant>>,
    /// The ordered result writer (present with a result backend).
    writer: Option<mpsc::UnboundedSender<WriteJob>>,
    /// False while the result writer cannot store (an outage): no new task starts meanwhile.
    backend_health: Arc<watch::Sender<bool>>,
    /// Revoked task ids (bounded, as Celery's LimitedSet), checked on receipt and before a run.
    revoked: Mutex<Revoked>,
    /// Received, not started yet (`inspect reserved`), with their ETA if they wait for one
    /// (`inspect scheduled`).
    reserved: Mutex<BTreeMap<String, Held>>,
    /// Wakes the tasks waiting for their ETA when a warm shutdown begins (they go back to the
    /// queue at once instead of holding the shutdown).
    stopping: tokio::sync::Notify,
    /// Running tasks that a `revoke(terminate=True)` can stop.
    terminators: Mutex<HashMap<String, Arc<tokio::sync::Notify>>>,
    /// The queues consumed (`-Q`, then `control add_consumer` / `cancel_consumer`).
    queues: Mutex<Vec<String>>,
    /// The pool's size now (`-c`, then `control pool_grow` / `pool_shrink`).
    concurrency: AtomicUsize,
    /// Task events on (`-E` / `--no-events`, then `control enable_events` / `disable_events`).
    task_events_on: AtomicBool,
    /// Rate limits by task type: tasks per second, and when the next one may start.
    rate_limits: Mutex<HashMap<String, (f64, Instant)>>,
    /// Default (soft, hard) time limits by task type, for messages that give none.
    time_limits: Mutex<HashMap<String, Limits>>,
    /// Bounds how many large or compressed bodies decode at once.
    large_decodes: Semaphore,
    /// Asks the running session to act on the broker (remote control).
    ops: Mutex<Option<mpsc::UnboundedSender<Op>>>,
}

/// A received task not started yet: its request (as `inspect` shows it) and its ETA, if any.
type Held = (Value, Option<DateTime<Utc>>);

/// (soft, hard) time limits in seconds.
type Limits = (Option<f64>, Option<f64>);

/// One consumer's deliveries, tagged with the consumer, ended by `None`.
type Feed = futures_util::stream::BoxStream<'static, (Arc<str>, Option<lapin::Result<Delivery>>)>;

/// What remote control asks of the session.
enum Op {
    Heartbeat,
    AddQueue(String),
    CancelQueue(String),
    Resize(i64),
}

impl Shared {
    fn prefetch_count(&self) -> u16 {
        (self.concurrency.load(Ordering::Relaxed) as u64 * self.opts.prefetch_multiplier as u64).min(u16::MAX as u64) as u16
    }

    fn op(&self, op: Op) {
        if let Some(tx) = self.ops.lock().as_ref() {
            let _ = tx.send(op);
        }
    }

    /// How long a task of this type waits for its rate limit (and books its start).
    fn rate_wait(&self, task: &str) -> Duration {
        let mut limits = self.rate_limits.lock();
        let Some((per_sec, next)) = limits.get_mut(task) else { return Duration::ZERO };
        let now = Instant::now();
        let at = (*next).max(now);
        // `parse_rate` keeps the spacing within a year; checked all the same, so no rate can
        // make this panic.
        let spacing = Duration::try_from_secs_f64(1.0 / *per_sec).unwrap_or(MAX_RATE_SPACING).min(MAX_RATE_SPACING);
        *next = at.checked_add(spacing).unwrap_or(at);
        at - now
    }
}

/// The slowest rate limit: one task a year (a slower one could not be waited for).
pub const MAX_RATE_SPACING: Duration = Duration::from_secs(MAX_WAIT_SECS as u64);

/// Celery's rate strings: a number of tasks per second, or "N/s", "N/m", "N/h"; 0 or empty: none.
/// A rate that is not a number, negative, or slower than one task a year is refused.
pub fn parse_rate(v: &Value) -> Result<f64, String> {
    let per_sec = match v {
        Value::Null => 0.0,
        Value::Number(n) => n.as_f64().unwrap_or(0.0),
        Value::String(s) if s.trim().is_empty() => 0.0,
        Value::String(s) => {
            let (n, unit) = s.split_once('/').unwrap_or((s, "s"));
            let n: f64 = n.trim().parse().map_err(|_| format!("ValueError(\"could not convert string to float: '{}'\")", n.trim()))?;
            match unit.trim() {
                "s" | "" => n,
                "m" => n / 60.0,
                "h" => n / 3600.0,
                other => return Err(format!("KeyError('{other}')")),
            }
        }
        other => return Err(format!("ValueError('{other}')")),
    };
    if !per_sec.is_finite() || per_sec < 0.0 {
        return Err(format!("ValueError('{v}')"));
    }
    if per_sec > 0.0 && 1.0 / per_sec > MAX_WAIT_SECS {
        return Err(format!("ValueError('{v} is slower than one task a year')"));
    }
    Ok(per_sec)
}

/// The revoked ids, oldest dropped first past `MAX_REVOKED` (Celery keeps 50,000).
#[derive(Default)]
pub struct Revoked {
    order: std::collections::VecDeque<String>,
    at: HashMap<String, f64>,
}

pub const MAX_REVOKED: usize = 50_000;
/// The largest state file read: `MAX_REVOKED` ids with their times take under 4 MiB.
const STATEDB_MAX: u64 = 16 * 1024 * 1024;

impl Revoked {
    pub fn add(&mut self, id: &str) {
        if self.at.contains_key(id) {
            return;
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        self.at.insert(id.to_string(), now);
        self.order.push_back(id.to_string());
        while self.order.len() > MAX_REVOKED {
            if let Some(old) = self.order.pop_front() {
                self.at.remove(&old);
            }
        }
    }

    pub fn contains(&self, id: &str) -> bool {
        self.at.contains_key(id)
    }

    pub fn ids(&self) -> Vec<String> {
        self.order.iter().cloned().collect()
    }

    /// Reads a state file written by `save`; a missing file is an empty set.
    pub fn load(path: &std::path::Path) -> anyhow::Result<Revoked> {
        let text = match crate::files::read_capped(path, STATEDB_MAX) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Revoked::default()),
            Err(e) => return Err(anyhow::anyhow!("cannot read the state file {}: {e}", path.display())),
        };
        let v: Value = serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("the state file {} is not mqlab's: {e}", path.display()))?;
        let mut r = Revoked::default();
        for entry in v.get("revoked").and_then(Value::as_array).into_iter().flatten() {
            if let (Some(id), Some(at)) = (entry.get(0).and_then(Value::as_str), entry.get(1).and_then(Value::as_f64))
                && r.at.insert(id.to_string(), at).is_none()
            {
                r.order.push_back(id.to_string());
            }
        }
        while r.order.len() > MAX_REVOKED {
            if let Some(old) = r.order.pop_front() {
                r.at.remove(&old);
            }
        }
        Ok(r)
    }

    /// Writes the set (oldest first) to `path`, atomically (a temporary file renamed over it).
    pub fn save(&self, path: &std::path::Path) -> std::io::Result<()> {
        let entries: Vec<Value> = self.order.iter().map(|id| json!([id, self.at.get(id).copied().unwrap_or(0.0)])).collect();
        let body = serde_json::to_vec(&json!({"mqlab_statedb": 1, "revoked": entries})).unwrap_or_default();
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, body)?;
        std::fs::rename(&tmp, path)
    }
}

/// What one broker connection provides to the task runs.
struct Session {
    publisher: Channel,
    events: Dispatcher,
    task_events: mpsc::UnboundedSender<Value>,
    /// Tells the session loop that a consumer now holds a task waiting for its ETA (the
    /// consumer's tag), so a fresh consumer takes over the prefetch.
    holds: mpsc::UnboundedSender<Arc<str>>,
    /// Every delivery of the session's channel is settled through one `settle_loop`.
    settle: mpsc::UnboundedSender<Settle>,
}

impl Session {
    /// Acknowledges a delivery (batched with others by `settle_loop`).
    fn ack(&self, d: &Delivery) {
        let _ = self.settle.send(Settle::Ack(d.delivery_tag));
    }

    /// Rejects a delivery: back to the queue, or dropped.
    fn reject(&self, d: &Delivery, requeue: bool) {
        let _ = self.settle.send(Settle::Reject { tag: d.delivery_tag, requeue });
    }

    /// Queues a task event for the next `task.multi` batch (never waits).
    fn task_event(&self, shared: &Shared, kind: &str, fields: Value) {
        if !shared.task_events_on.load(Ordering::Relaxed) {
            return;
        }
        let _ = self.task_events.send(self.events.build(&shared.clock, kind, fields));
    }
}

/// The worker as the remote-control handlers see it.
struct Inspector(Arc<Shared>);

impl Inspect for Inspector {
    fn nodename(&self) -> &str {
        &self.0.opts.hostname
    }

    fn stats(&self) -> Value {
        let s = &self.0;
        let (host, port) = match url::Url::parse(&s.opts.broker_url) {
            Ok(u) => (u.host_str().unwrap_or("localhost").to_string(), u.port().unwrap_or(5672)),
            Err(_) => ("localhost".to_string(), 5672),
        };
        json!({
            "total": *s.totals.lock(),
            "pid": s.pid,
            "clock": s.clock.now().to_string(),
            "uptime": s.started.elapsed().as_secs(),
            "pool": {"implementation": "mqlab:tokio", "max-concurrency": s.concurrency.load(Ordering::Relaxed), "processes": [s.pid]},
            "prefetch_count": s.prefetch_count(),
            "broker": {"hostname": host, "port": port, "transport": "amqp", "userid": "**"},
            "acks_late": s.opts.acks_late,
            "sw_ident": "mqlab",
            "sw_ver": env!("CARGO_PKG_VERSION"),
        })
    }

    fn active(&self) -> Value {
        Value::Array(self.0.active.lock().values().cloned().collect())
    }

    fn registered(&self) -> Vec<String> {
        self.0.registry.names().iter().map(|n| n.to_string()).collect()
    }

    fn revoke(&self, ids: &[String], terminate: bool, signal: &str) -> Value {
        let s = &self.0;
        {
            let mut r = s.revoked.lock();
            for id in ids {
                r.add(id);
            }
            if let Some(path) = &s.opts.statedb
                && let Err(e) = r.save(path)
            {
                warn!("cannot write the state file {}: {e}", path.display());
            }
        }
        let mut terminated = vec![];
        if terminate {
            let t = s.terminators.lock();
            for id in ids {
                if let Some(n) = t.get(id) {
                    n.notify_one();
                    terminated.push(id.clone());
                }
            }
        }
        info!(
            "Tasks flagged as revoked: {}{}",
            ids.join(", "),
            if terminate { format!(" (terminate with {signal})") } else { String::new() }
        );
        if terminate && !terminated.is_empty() {
            json!({"ok": format!("terminate: {}", terminated.join(", "))})
        } else {
            json!({"ok": format!("tasks {} flagged as revoked", ids.join(", "))})
        }
    }

    fn revoked(&self) -> Vec<String> {
        self.0.revoked.lock().ids()
    }

    fn reserved(&self) -> Value {
        Value::Array(
            self.0.reserved.lock().values().filter(|(_, eta)| eta.is_none_or(|e| e <= Utc::now())).map(|(r, _)| r.clone()).collect(),
        )
    }

    fn scheduled(&self) -> Value {
        Value::Array(
            self.0
                .reserved
                .lock()
                .values()
                .filter_map(|(r, eta)| {
                    eta.filter(|e| *e > Utc::now())
                        .map(|e| json!({"eta": super::protocol::iso(e), "priority": r.pointer("/delivery_info/priority"), "request": r}))
                })
                .collect(),
        )
    }

    fn query_task(&self, ids: &[String]) -> Value {
        let s = &self.0;
        let mut out = serde_json::Map::new();
        for id in ids {
            if let Some(r) = s.active.lock().get(id) {
                out.insert(id.clone(), json!(["active", r]));
            } else if let Some((r, eta)) = s.reserved.lock().get(id) {
                let state = if eta.is_some_and(|e| e > Utc::now()) { "scheduled" } else { "reserved" };
                out.insert(id.clone(), json!([state, r]));
            }
        }
        Value::Object(out)
    }

    fn active_queues(&self) -> Value {
        Value::Array(
            self.0
                .queues
                .lock()
                .iter()
                .map(|q| {
                    json!({"name": q, "exchange": {"name": q, "type": "direct", "durable": true, "auto_delete": false, "delivery_mode": null,
                        "arguments": null, "no_declare": false, "passive": false, "internal": false},
                        "routing_key": q, "queue_arguments": self.0.opts.queue_args.to_json(), "binding_arguments": null, "consumer_arguments": null,
                        "durable": true, "exclusive": false, "auto_delete": false, "no_ack": false, "alias": null, "bindings": [],
                        "no_declare": null, "expires": null, "message_ttl": null, "max_length": null, "max_length_bytes": null, "max_priority": null})
                })
                .collect(),
        )
    }

    fn conf(&self) -> Value {
        let o = &self.0.opts;
        json!({
            "broker_url": mask_url(&o.broker_url),
            "result_backend": o.result_backend.as_deref().map(mask_url),
            "worker_concurrency": self.0.concurrency.load(Ordering::Relaxed),
            "worker_prefetch_multiplier": o.prefetch_multiplier,
            "task_acks_late": o.acks_late,
            "task_track_started": o.track_started,
            "worker_send_task_events": self.0.task_events_on.load(Ordering::Relaxed),
            "result_expires": o.result_expires,
            "task_default_queue": o.queue,
            "task_queue_max_priority": o.queue_args.max_priority,
            "task_serializer": "json",
            "result_serializer": "json",
            "accept_content": ["json"],
        })
    }

    fn shutdown(&self) {
        tracing::warn!("worker: remote shutdown requested; warm shutdown");
        let _ = self.0.control.send(Control::Stop(StopMode::Warm));
    }

    fn heartbeat(&self) {
        debug!("Heartbeat requested by remote.");
        self.0.op(Op::Heartbeat);
    }

    fn task_events(&self, on: bool) -> Value {
        let was = self.0.task_events_on.swap(on, Ordering::Relaxed);
        match (on, was) {
            (true, false) => {
                info!("Events of group {{task}} enabled by remote.");
                json!({"ok": "task events enabled"})
            }
            (true, true) => json!({"ok": "task events already enabled"}),
            (false, true) => {
                info!("Events of group {{task}} disabled by remote.");
                json!({"ok": "task events disabled"})
            }
            (false, false) => json!({"ok": "task events already disabled"}),
        }
    }

    fn rate_limit(&self, task: &str, rate: &Value) -> Value {
        let per_sec = match parse_rate(rate) {
            Ok(r) => r,
            Err(e) => return json!({"error": format!("Invalid rate limit string: {e}")}),
        };
        if self.0.registry.get(task).is_none() {
            error!("Rate limit attempt for unknown task {task}");
            return json!({"error": "unknown task"});
        }
        let mut limits = self.0.rate_limits.lock();
        if per_sec == 0.0 {
            limits.remove(task);
            return json!({"ok": "rate limit disabled successfully"});
        }
        info!("New rate limit for tasks of type {task}: {rate}.");
        limits.insert(task.to_string(), (per_sec, Instant::now()));
        json!({"ok": "new rate limit set successfully"})
    }

    fn time_limit(&self, task: &str, soft: Option<f64>, hard: Option<f64>) -> Value {
        if self.0.registry.get(task).is_none() {
            error!("Change time limit attempt for unknown task {task}");
            return json!({"error": "unknown task"});
        }
        info!("New time limits for tasks of type {task}: soft={soft:?} hard={hard:?}");
        self.0.time_limits.lock().insert(task.to_string(), (soft, hard));
        json!({"ok": "time limits set successfully"})
    }

    fn pool_resize(&self, n: i64) -> Value {
        self.0.op(Op::Resize(n));
        json!({"ok": if n > 0 { "pool will grow" } else { "pool will shrink" }})
    }

    fn consume(&self, queue: &str, add: bool) -> Value {
        if add {
            self.0.op(Op::AddQueue(queue.to_string()));
            json!({"ok": format!("add consumer {queue}")})
        } else {
            self.0.op(Op::CancelQueue(queue.to_string()));
            json!({"ok": format!("no longer consuming from {queue}")})
        }
    }
}

async fn run(
    opts: WorkerOptions,
    control_tx: watch::Sender<Control>,
    mut control: watch::Receiver<Control>,
    events: Emitter,
    stats: Arc<WorkerStats>,
) -> anyhow::Result<()> {
    // Redis may come up after the worker, as the broker may: wait for it (one line per outage),
    // unless the answer can never change (a bad URL, a refused password).
    let backend = match &opts.result_backend {
        None => None,
        Some(url) => {
            let mut waiting_since: Option<Instant> = None;
            loop {
                match ResultBackend::connect(url, opts.result_expires).await {
                    Ok(b) => {
                        if let Some(t) = waiting_since {
                            info!("result backend: {} answers after {:.1} s", mask_url(url), t.elapsed().as_secs_f64());
                            events.send(WorkerEvent::BackendRecovered);
                        }
                        break Some(b);
                    }
                    Err(e) => {
                        let outage = e.chain().find_map(|c| c.downcast_ref::<redis::RedisError>()).is_some_and(ResultBackend::is_outage);
                        let msg = format!("result backend {}: {}", mask_url(url), crate::redact::mask_urls_in(&format!("{e:#}")));
                        if !outage {
                            error!("{msg}");
                            events.send(WorkerEvent::Fatal { error: msg.clone() });
                            return Err(anyhow::anyhow!(msg));
                        }
                        if waiting_since.is_none() {
                            warn!("{msg}; waiting for Redis before consuming");
                            events.send(WorkerEvent::BackendLost { error: msg });
                            waiting_since = Some(Instant::now());
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                            changed = control.changed() => {
                                let mode = match (changed, *control.borrow()) {
                                    (Ok(()), Control::Stop(m)) => Some(m),
                                    (Err(_), _) => Some(StopMode::Cold),
                                    _ => None,
                                };
                                if let Some(mode) = mode {
                                    events.send(WorkerEvent::Stopped { mode });
                                    return Ok(());
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    // Result writes leave the task slots: one ordered writer batches them (see `write_loop`).
    // The writer ends by itself once the worker's shared state (the last sender) is gone, after
    // writing what was queued.
    let backend_health = Arc::new(watch::channel(true).0);
    let (writer_tx, _writer_task) = match &backend {
        Some(b) => {
            let (tx, rx) = mpsc::unbounded_channel();
            (Some(tx), Some(tokio::spawn(write_loop(b.clone(), events.clone(), backend_health.clone(), rx))))
        }
        None => (None, None),
    };
    // Revoked ids kept by an earlier run (`--statedb`), as Celery's worker keeps them.
    let revoked = match &opts.statedb {
        Some(path) => {
            let r = Revoked::load(path)?;
            if !r.order.is_empty() {
                info!("{} revoked task id(s) read from {}", r.order.len(), path.display());
            }
            r
        }
        None => Revoked::default(),
    };
    let shared = Arc::new(Shared {
        registry: Registry::builtin(),
        backend,
        writer: writer_tx,
        backend_health,
        stats,
        events: events.clone(),
        pid: std::process::id(),
        clock: Arc::new(Clock::default()),
        active: Mutex::new(BTreeMap::new()),
        totals: Mutex::new(BTreeMap::new()),
        control: control_tx,
        started: Instant::now(),
        outage: Mutex::new(None),
        revoked: Mutex::new(revoked),
        reserved: Mutex::new(BTreeMap::new()),
        stopping: tokio::sync::Notify::new(),
        terminators: Mutex::new(HashMap::new()),
        queues: Mutex::new(opts.queues()),
        concurrency: AtomicUsize::new(opts.concurrency.max(1)),
        task_events_on: AtomicBool::new(opts.task_events),
        rate_limits: Mutex::new(HashMap::new()),
        time_limits: Mutex::new(HashMap::new()),
        ops: Mutex::new(None),
        large_decodes: Semaphore::new(LARGE_DECODES),
        opts,
    });
    // Reconnection: quick first tries, then at most a second apart (a lab's broker comes back
    // within seconds), with jitter so that several workers do not knock in step.
    let mut backoff = RECONNECT_FIRST;
    loop {
        if let Control::Stop(mode) = *control.borrow() {
            events.send(WorkerEvent::Stopped { mode });
            return Ok(());
        }
        let ended = session(&shared, &mut control).await;
        // The connection is gone: the broker took back whatever was not acknowledged.
        shared.stats.unacked.store(0, Ordering::Relaxed);
        match ended {
            Ok(mode) => {
                shared.stats.connected.store(false, Ordering::Relaxed);
                info!("{}: {} shutdown complete", shared.opts.hostname, if mode == StopMode::Warm { "warm" } else { "cold" });
                events.send(WorkerEvent::Stopped { mode });
                return Ok(());
            }
            Err(SessionError::Refused(msg)) => {
                error!("{msg}");
                events.send(WorkerEvent::Fatal { error: msg.clone() });
                return Err(anyhow::anyhow!(msg));
            }
            Err(SessionError::Connect(e)) if e.is_permanent() => {
                let msg = e.to_string();
                error!("{msg}");
                events.send(WorkerEvent::Fatal { error: msg.clone() });
                return Err(anyhow::anyhow!(msg));
            }
            Err(e) => {
                let was_connected = shared.stats.connected.swap(false, Ordering::Relaxed);
                if was_connected {
                    backoff = RECONNECT_FIRST;
                }
                let msg = e.to_string();
                // One line per outage; the retries go to the debug log.
                let first = {
                    let mut outage = shared.outage.lock();
                    let first = outage.is_none();
                    outage.get_or_insert_with(Instant::now);
                    first
                };
                if first {
                    warn!("consumer: connection to broker lost or unavailable ({msg}); reconnecting with backoff");
                } else {
                    debug!("consumer: broker still unavailable ({msg}); next attempt in {:.0}s", backoff.as_secs_f64());
                }
                events.send(WorkerEvent::ConnectionLost { error: msg });
                tokio::select! {
                    _ = tokio::time::sleep(jitter(backoff)) => {}
                    _ = control.changed() => {}
                }
                backoff = (backoff * 2).min(RECONNECT_MAX);
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("{0}")]
    Connect(#[from] ConnectError),
    #[error("{0}")]
    Amqp(#[from] lapin::Error),
    #[error("{0}")]
    Lost(String),
    /// The broker refused to set up the queue or the consumer: retrying would be refused too.
    #[error("{0}")]
    Refused(String),
}

/// An error while declaring or consuming: a refusal no retry can change (403 access refused, 404
/// not found, 406 precondition failed) as a sentence, anything else as it is.
fn refusal(e: lapin::Error, what: &str) -> SessionError {
    use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
    if let lapin::ErrorKind::ProtocolError(amqp) = e.kind()
        && let AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED | AMQPSoftError::NOTFOUND | AMQPSoftError::PRECONDITIONFAILED) = amqp.kind()
    {
        return SessionError::Refused(format!("the broker refused to {what}: {}", amqp.get_message()));
    }
    SessionError::Amqp(e)
}

async fn session(shared: &Arc<Shared>, control: &mut watch::Receiver<Control>) -> Result<StopMode, SessionError> {
    let opts = &shared.opts;
    let conn = broker::connect(&opts.broker_url, &format!("mqlab worker {}", opts.hostname)).await?;
    let ch = conn.create_channel().await?;
    // `-Q a,b` consumes each queue, as Celery does.
    let queues = shared.queues.lock().clone();
    for q in &queues {
        let declared = broker::declare_or_use(&conn, q, &opts.queue_args).await.map_err(|e| refusal(e, &format!("declare queue {q:?}")))?;
        // Expected, and handled: the broker's 406 to a plain declaration is how an existing
        // queue of another kind shows itself (a quorum queue, a priority queue). Information,
        // not an error: the worker consumes it.
        if let broker::Declared::Existing(reason) = declared {
            info!("queue {q:?} exists with other arguments than a plain Celery queue ({reason}); consuming it as it is");
        }
    }
    let prefetch = shared.prefetch_count();
    ch.basic_qos(prefetch, BasicQosOptions { global: false }).await?;
    // One consumer per queue at a time. Tasks waiting for their ETA stay unacknowledged (late-ack
    // safety) but must not fill the prefetch: RabbitMQ applies a per-consumer prefetch to the
    // consumers started after it, so when the current consumer holds such a task it is
    // cancelled (its deliveries stay ours to ack) and a new one takes over with a full prefetch.
    let mut feeds = Feeds { current: HashMap::new(), queue_of: HashMap::new(), cancelled: Default::default(), streams: Default::default() };
    for q in &queues {
        feeds.consume(&ch, q, &opts.hostname).await?;
    }
    let (holds_tx, mut holds) = mpsc::unbounded_channel::<Arc<str>>();
    let publisher = conn.create_channel().await?;
    // Events and remote control, so Celery's tools see this worker.
    let ev_channel = conn.create_channel().await?;
    events::declare(&ev_channel).await?;
    let dispatcher = Dispatcher { channel: ev_channel, hostname: opts.hostname.clone(), pid: shared.pid };
    let pidbox_task = PidboxTask(match start_pidbox(&conn, shared).await {
        Ok(t) => Some(t),
        Err(e) => {
            warn!(
                "remote control is off for this worker: {e} (is another worker named {} running? give this one another name with -n)",
                opts.hostname
            );
            None
        }
    });
    dispatcher.send(&shared.clock, "worker-online", events::worker_fields(0, shared.stats.processed())).await;
    let heartbeat = {
        let d = dispatcher.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(2));
            every.tick().await;
            loop {
                every.tick().await;
                let fields = events::worker_fields(shared.stats.active.load(Ordering::Relaxed), shared.stats.processed());
                d.send(&shared.clock, "worker-heartbeat", fields).await;
            }
        })
    };
    // Task events can be turned on and off while the worker runs (`control enable_events`).
    let task_events = dispatcher.task_buffer();
    let (ops_tx, mut ops) = mpsc::unbounded_channel::<Op>();
    *shared.ops.lock() = Some(ops_tx);
    let _ops_guard = OpsGuard(shared.clone());
    let (settle_tx, settle_rx) = mpsc::unbounded_channel::<Settle>();
    let settler = SettleTask(tokio::spawn(settle_loop(ch.clone(), shared.clone(), settle_rx)));
    let session_ctx = Arc::new(Session { publisher, events: dispatcher.clone(), task_events, holds: holds_tx, settle: settle_tx });
    shared.stats.connected.store(true, Ordering::Relaxed);
    let recovered = shared.outage.lock().take();
    match recovered {
        Some(since) => info!(
            "consumer: connection to broker re-established after {:.1}s: {}",
            since.elapsed().as_secs_f64(),
            mask_url(&opts.broker_url)
        ),
        None => info!("Connected to {}", mask_url(&opts.broker_url)),
    }
    shared.events.send(WorkerEvent::Connected { broker: mask_url(&opts.broker_url) });
    info!("{} ready.", opts.hostname);
    shared.events.send(WorkerEvent::Ready { prefetch });

    let slots = Arc::new(Semaphore::new(shared.concurrency.load(Ordering::Relaxed).max(1)));
    let mut running: JoinSet<()> = JoinSet::new();
    let outcome = loop {
        tokio::select! {
            changed = control.changed() => {
                let mode = match (changed, *control.borrow()) {
                    (Ok(()), Control::Stop(m)) => m,
                    (Err(_), _) => StopMode::Cold,
                    (Ok(()), Control::Run) => continue,
                };
                break Ok(mode);
            }
            delivery = feeds.streams.next() => match delivery {
                None => break Err(SessionError::Lost("the broker closed the consumer".into())),
                Some((tag, None)) => {
                    // A consumer we cancelled ends here; any other was cancelled by the broker.
                    if !feeds.cancelled.remove(&*tag) {
                        break Err(SessionError::Lost(format!("the broker cancelled the consumer of queue {:?}", feeds.queue_of.get(&*tag).cloned().unwrap_or_default())));
                    }
                    feeds.queue_of.remove(&*tag);
                }
                Some((_, Some(Err(e)))) => break Err(SessionError::Amqp(e)),
                Some((tag, Some(Ok(d)))) => {
                    shared.stats.unacked.fetch_add(1, Ordering::Relaxed);
                    let _ = session_ctx.settle.send(Settle::Delivered(d.delivery_tag));
                    let shared = shared.clone();
                    let slots = slots.clone();
                    let ctx = session_ctx.clone();
                    running.spawn(async move { handle_delivery(shared, slots, ctx, tag, d).await });
                }
            },
            Some(tag) = holds.recv() => {
                if let Err(e) = feeds.renew(&ch, &tag, &opts.hostname).await {
                    break Err(e);
                }
            }
            Some(op) = ops.recv() => {
                if let Err(e) = remote_op(shared, op, &conn, &ch, &mut feeds, &slots, &mut running, &dispatcher).await {
                    break Err(e);
                }
            }
            Some(_) = running.join_next(), if !running.is_empty() => {}
        }
    };
    match outcome {
        Ok(StopMode::Warm) => {
            info!("worker: warm shutdown: waiting for {} task(s) to finish", shared.stats.active.load(Ordering::Relaxed));
            for tag in feeds.current.values() {
                let _ = ch.basic_cancel(short(tag), BasicCancelOptions::default()).await;
            }
            // Prefetched messages that never started go back to the queue now, those waiting for
            // their ETA too.
            slots.close();
            shared.stopping.notify_waiters();
            loop {
                tokio::select! {
                    next = running.join_next() => if next.is_none() { break },
                    changed = control.changed() => {
                        if changed.is_err() || *control.borrow() == Control::Stop(StopMode::Cold) {
                            info!("worker: cold shutdown requested during warm shutdown");
                            running.shutdown().await;
                            drop(session_ctx);
                            settler.finish().await;
                            heartbeat.abort();
                            pidbox_task.stop();
                            dispatcher.send(&shared.clock, "worker-offline", events::worker_fields(0, shared.stats.processed())).await;
                            close(&conn).await;
                            return Ok(StopMode::Cold);
                        }
                    }
                }
            }
            heartbeat.abort();
            pidbox_task.stop();
            // Let the task-event buffer flush its last batch, and the last acks go out.
            drop(session_ctx);
            settler.finish().await;
            tokio::time::sleep(Duration::from_millis(150)).await;
            dispatcher.send(&shared.clock, "worker-offline", events::worker_fields(0, shared.stats.processed())).await;
            close(&conn).await;
            Ok(StopMode::Warm)
        }
        Ok(StopMode::Cold) => {
            let n = running.len();
            running.shutdown().await;
            // The acks of tasks that finished still go out.
            drop(session_ctx);
            settler.finish().await;
            heartbeat.abort();
            pidbox_task.stop();
            dispatcher.send(&shared.clock, "worker-offline", events::worker_fields(0, shared.stats.processed())).await;
            close(&conn).await;
            if n > 0 {
                info!("worker: cold shutdown: {n} unfinished message(s) left unacknowledged for the broker to requeue");
            }
            Ok(StopMode::Cold)
        }
        Err(e) => {
            // Running tasks go on and store their results; their acks fail and the broker
            // redelivers those messages, which are then recognised by their stored SUCCESS.
            running.detach_all();
            heartbeat.abort();
            pidbox_task.stop();
            Err(e)
        }
    }
}

/// The session's `settle_loop`. A lost session drops it (detached): its handlers may go on and
/// settle into the dead channel, and the loop ends with them.
struct SettleTask(tokio::task::JoinHandle<()>);

impl SettleTask {
    /// Waits (up to 2 s) for the loop to send what it was given; it ends once every sender is
    /// gone.
    async fn finish(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut self.0).await;
    }
}

/// The mailbox consumer of one session.
struct PidboxTask(Option<tokio::task::JoinHandle<lapin::Result<()>>>);

impl PidboxTask {
    fn stop(&self) {
        if let Some(t) = &self.0 {
            t.abort();
        }
    }
}

async fn start_pidbox(conn: &Connection, shared: &Arc<Shared>) -> lapin::Result<tokio::task::JoinHandle<lapin::Result<()>>> {
    let ch = conn.create_channel().await?;
    let queue = pidbox::declare(&ch, &shared.opts.hostname).await?;
    Ok(tokio::spawn(pidbox::serve(ch, queue, Arc::new(Inspector(shared.clone())), shared.clock.clone())))
}

async fn close(conn: &Connection) {
    let _ = tokio::time::timeout(Duration::from_secs(2), conn.close(200, short("worker shutdown"))).await;
}

/// Clears the session's remote-control channel when the session ends.
struct OpsGuard(Arc<Shared>);

impl Drop for OpsGuard {
    fn drop(&mut self) {
        *self.0.ops.lock() = None;
    }
}

/// Carries out what remote control asked of the session.
#[allow(clippy::too_many_arguments)]
async fn remote_op(
    shared: &Arc<Shared>,
    op: Op,
    conn: &Connection,
    ch: &Channel,
    feeds: &mut Feeds,
    slots: &Arc<Semaphore>,
    running: &mut JoinSet<()>,
    dispatcher: &Dispatcher,
) -> Result<(), SessionError> {
    let host = &shared.opts.hostname;
    match op {
        Op::Heartbeat => {
            let fields = events::worker_fields(shared.stats.active.load(Ordering::Relaxed), shared.stats.processed());
            dispatcher.send(&shared.clock, "worker-heartbeat", fields).await;
        }
        Op::AddQueue(q) => {
            if q.is_empty() || feeds.current.contains_key(&q) {
                return Ok(());
            }
            match broker::declare_or_use(conn, &q, &shared.opts.queue_args).await {
                Ok(_) => {
                    // A queue the broker will not let this worker consume is not a reason to
                    // stop: the session starts again on the queues it had.
                    if let Err(e) = feeds.consume(ch, &q, host).await {
                        warn!("add_consumer: cannot consume queue {q:?}: {e}");
                        return Err(SessionError::Lost(format!("add_consumer {q:?} was refused: {e}")));
                    }
                    shared.queues.lock().push(q.clone());
                    info!("Started consuming from {q}");
                }
                Err(e) => warn!("add_consumer: cannot use queue {q:?}: {e}"),
            }
        }
        Op::CancelQueue(q) => {
            if let Some(tag) = feeds.current.remove(&q) {
                feeds.cancelled.insert(tag.clone());
                ch.basic_cancel(short(&tag), BasicCancelOptions::default()).await?;
                shared.queues.lock().retain(|x| *x != q);
                info!("Stopped consuming from {q}");
            }
        }
        Op::Resize(n) => {
            let before = shared.concurrency.load(Ordering::Relaxed);
            let after = (before as i64 + n).clamp(1, 10_000) as usize;
            shared.concurrency.store(after, Ordering::Relaxed);
            if after > before {
                slots.add_permits(after - before);
            } else if after < before {
                // Slots in use are taken back as their tasks finish.
                let (slots, k) = (slots.clone(), (before - after) as u32);
                running.spawn(async move {
                    if let Ok(p) = slots.acquire_many_owned(k).await {
                        p.forget();
                    }
                });
            }
            info!("pool: concurrency {before} → {after}");
            // The prefetch follows (concurrency × multiplier); RabbitMQ applies it to new
            // consumers, so each queue gets a fresh one.
            ch.basic_qos(shared.prefetch_count(), BasicQosOptions { global: false }).await?;
            let tags: Vec<Arc<str>> = feeds.current.values().cloned().collect();
            for tag in tags {
                feeds.renew(ch, &tag, host).await?;
            }
        }
    }
    Ok(())
}

/// The consumers of one session: the current one per queue, and the deliveries of all of them
/// (each stream tagged with its consumer and ended by `None`).
struct Feeds {
    current: HashMap<String, Arc<str>>,
    queue_of: HashMap<Arc<str>, String>,
    cancelled: std::collections::HashSet<Arc<str>>,
    streams: futures_util::stream::SelectAll<Feed>,
}

impl Feeds {
    async fn consume(&mut self, ch: &Channel, q: &str, hostname: &str) -> Result<(), SessionError> {
        let tag = format!("{hostname}-{q}-{}", uuid::Uuid::new_v4().simple());
        let c = ch
            .basic_consume(short(q), short(&tag), BasicConsumeOptions::default(), FieldTable::default())
            .await
            .map_err(|e| refusal(e, &format!("consume from queue {q:?}")))?;
        let tag: Arc<str> = Arc::from(c.tag().as_str());
        let (t, end) = (tag.clone(), tag.clone());
        let stream = c.map(move |d| (t.clone(), Some(d))).chain(futures_util::stream::once(async move { (end, None) }));
        self.streams.push(stream.boxed());
        self.queue_of.insert(tag.clone(), q.to_string());
        self.current.insert(q.to_string(), tag);
        Ok(())
    }

    /// A task from consumer `tag` waits for its ETA: if that consumer is still the current one
    /// of its queue, a new consumer takes over (once per consumer).
    async fn renew(&mut self, ch: &Channel, tag: &Arc<str>, hostname: &str) -> Result<(), SessionError> {
        let Some(q) = self.queue_of.get(tag).cloned() else { return Ok(()) };
        if self.current.get(&q) != Some(tag) {
            return Ok(());
        }
        debug!("a task waits for its ETA: consumer {tag} hands queue {q:?} to a new consumer");
        self.cancelled.insert(tag.clone());
        ch.basic_cancel(short(tag), BasicCancelOptions::default()).await?;
        self.consume(ch, &q, hostname).await
    }
}

/// A body past this size, or a compressed one, is decoded off the runtime's threads, at most
/// `LARGE_DECODES` at a time (so a prefetch of large bodies cannot all expand at once).
pub const LARGE_BODY: usize = 256 * 1024;
pub const LARGE_DECODES: usize = 2;

/// Decodes a delivery's message; a large or compressed body on a blocking thread, under the
/// bound on how many decode at once (the body is handed over, not copied).
async fn decode(shared: &Shared, d: &mut Delivery) -> Result<TaskMessage, super::protocol::DecodeError> {
    let compressed = d.properties.headers().as_ref().is_some_and(|h| h.inner().keys().any(|k| k.as_str() == "compression"));
    if d.data.len() <= LARGE_BODY && !compressed {
        return TaskMessage::decode(&d.properties, &d.data);
    }
    let _permit = shared.large_decodes.acquire().await;
    let (props, data) = (d.properties.clone(), std::mem::take(&mut d.data));
    match tokio::task::spawn_blocking(move || TaskMessage::decode(&props, &data)).await {
        Ok(r) => r,
        Err(e) => Err(super::protocol::DecodeError {
            kind: super::protocol::DecodeErrorKind::Body(format!("decoding failed: {e}")),
            task_id: None,
            task: None,
        }),
    }
}

async fn handle_delivery(shared: Arc<Shared>, slots: Arc<Semaphore>, ctx: Arc<Session>, tag: Arc<str>, mut d: Delivery) {
    let publisher = &ctx.publisher;
    let now = Utc::now();
    let msg = match decode(&shared, &mut d).await {
        Ok(m) => m,
        Err(e) => {
            let who = match (&e.task, &e.task_id) {
                (Some(t), Some(id)) => format!(" for {t}[{id}]"),
                (None, Some(id)) => format!(" with id {id}"),
                _ => String::new(),
            };
            error!("Received invalid message{who}: {e}. The message has been rejected (not requeued).");
            if let Some(id) = &e.task_id {
                let err = TaskError::new("DecodeError", e.to_string()).in_module("kombu.exceptions");
                store(&shared, ResultMeta::failure(id, &err)).await;
            }
            shared.stats.rejected.fetch_add(1, Ordering::Relaxed);
            shared.events.send(WorkerEvent::TaskRejected { id: e.task_id.clone(), name: e.task.clone(), reason: e.to_string(), at: now });
            if let Some(id) = &e.task_id {
                ctx.task_event(&shared, "task-rejected", json!({"uuid": id, "requeue": false}));
            }
            ctx.reject(&d, false);
            return;
        }
    };
    shared.stats.received.fetch_add(1, Ordering::Relaxed);
    let Some(def) = shared.registry.get(&msg.task) else {
        error!(
            "Received unregistered task of type '{}' [{}]. The message has been rejected and discarded; registered tasks: {}",
            msg.task,
            msg.id,
            shared.registry.names().join(", ")
        );
        let err = TaskError::new("NotRegistered", pyrepr::repr(&Value::String(msg.task.clone()))).in_module("celery.exceptions");
        let err = TaskError { args: vec![Value::String(msg.task.clone())], ..err };
        store(&shared, ResultMeta::failure(&msg.id, &err)).await;
        shared.stats.rejected.fetch_add(1, Ordering::Relaxed);
        shared.events.send(WorkerEvent::TaskRejected {
            id: Some(msg.id.clone()),
            name: Some(msg.task.clone()),
            reason: format!("NotRegistered('{}')", msg.task),
            at: now,
        });
        ctx.task_event(
            &shared,
            "task-failed",
            json!({"uuid": msg.id, "exception": format!("NotRegistered('{}')", msg.task), "traceback": null}),
        );
        ctx.reject(&d, false);
        return;
    };
    let name = msg.shadow.clone().unwrap_or_else(|| msg.task.clone());
    info!("Task {name}[{}] received{}", msg.id, if d.redelivered { " (redelivered)" } else { "" });
    ctx.task_event(
        &shared,
        "task-received",
        json!({"uuid": msg.id, "name": name, "args": msg.argsrepr, "kwargs": msg.kwargsrepr, "root_id": msg.root_id, "parent_id": msg.parent_id,
            "retries": msg.retries, "eta": msg.eta.map(super::protocol::iso), "expires": msg.expires.map(super::protocol::iso)}),
    );
    shared.events.send(WorkerEvent::TaskReceived {
        id: msg.id.clone(),
        name: name.clone(),
        args: msg.argsrepr.clone(),
        kwargs: msg.kwargsrepr.clone(),
        redelivered: d.redelivered,
        at: now,
    });
    let stores = shared.backend.is_some() && msg.ignore_result != Some(true);

    if d.redelivered
        && stores
        && let Some(b) = &shared.backend
        && b.get(&msg.id).await.is_ok_and(|m| m.status == TaskState::Success)
    {
        info!("Task {name}[{}] already succeeded before this redelivery; acknowledging without running it again", msg.id);
        ctx.ack(&d);
        return;
    }
    if revoked(&shared, &ctx, &d, &msg.id, &name, stores).await {
        return;
    }
    if let Some(exp) = msg.expires
        && exp <= Utc::now()
    {
        info!("Discarding revoked task: {name}[{}] (expired at {exp})", msg.id);
        if stores {
            store(&shared, ResultMeta::revoked(&msg.id, "expired")).await;
        }
        ctx.ack(&d);
        return;
    }
    let request = json!({"id": msg.id, "name": name, "args": msg.args, "kwargs": msg.kwargs, "type": msg.task, "hostname": shared.opts.hostname,
        "time_start": null, "acknowledged": false, "worker_pid": null,
        "delivery_info": {"exchange": d.exchange.as_str(), "routing_key": d.routing_key.as_str(), "priority": msg.priority, "redelivered": d.redelivered}});
    shared.reserved.lock().insert(msg.id.clone(), (request, msg.eta));
    if let Some(eta) = msg.eta {
        let wait = (eta - Utc::now()).to_std().unwrap_or_default().min(Duration::from_secs_f64(MAX_WAIT_SECS));
        if !wait.is_zero() {
            debug!("Task {name}[{}] scheduled for {eta}", msg.id);
            let _ = ctx.holds.send(tag);
            let stopping = shared.stopping.notified();
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stopping => {
                    // A warm shutdown: back to the queue now, for the next worker.
                    shared.reserved.lock().remove(&msg.id);
                    ctx.reject(&d, true);
                    return;
                }
            }
        }
        // Its expiry is checked again now that it is due (expires may fall within the wait).
        if let Some(exp) = msg.expires
            && exp <= Utc::now()
        {
            shared.reserved.lock().remove(&msg.id);
            info!("Discarding revoked task: {name}[{}] (expired at {exp} while waiting for its ETA)", msg.id);
            if stores {
                store(&shared, ResultMeta::revoked(&msg.id, "expired")).await;
            }
            ctx.task_event(&shared, "task-revoked", json!({"uuid": msg.id, "terminated": false, "signum": null, "expired": true}));
            shared.events.send(WorkerEvent::TaskRevoked { id: msg.id.clone(), at: Utc::now() });
            ctx.ack(&d);
            return;
        }
    }
    // A rate limit (`control rate_limit`) spaces the starts of this task type.
    let pause = shared.rate_wait(&msg.task);
    if !pause.is_zero() {
        tokio::time::sleep(pause).await;
    }
    // Results cannot be stored now: the task waits (its message unacknowledged) until they can,
    // rather than run for a result that would wait anyway.
    if !*shared.backend_health.borrow() && !backend_back(&shared, &slots).await {
        shared.reserved.lock().remove(&msg.id);
        ctx.reject(&d, true);
        return;
    }
    // Waits for a free slot; a closed semaphore means a warm shutdown began before this task
    // started, so the message goes back to the queue.
    let Ok(permit) = slots.acquire_owned().await else {
        shared.reserved.lock().remove(&msg.id);
        ctx.reject(&d, true);
        return;
    };
    shared.reserved.lock().remove(&msg.id);
    // Revoked while it waited for its ETA or a slot.
    if revoked(&shared, &ctx, &d, &msg.id, &name, stores).await {
        return;
    }
    shared.stats.active.fetch_add(1, Ordering::Relaxed);
    if !shared.opts.acks_late {
        ctx.ack(&d);
    }
    // What Celery stores with every state besides the state itself: the task's group, parent and
    // children, and with `result_extended` its name, arguments, worker, retries and queue.
    let extended = shared.opts.result_extended.then(|| super::backend::Extended {
        name: msg.task.clone(),
        args: Value::Array(msg.args.clone()),
        kwargs: Value::Object(msg.kwargs.clone()),
        worker: shared.opts.hostname.clone(),
        retries: msg.retries,
        queue: d.routing_key.to_string(),
    });
    let described = |meta: ResultMeta, children: &[String]| {
        meta.with_links(msg.group.as_deref(), msg.parent_id.as_deref(), children).with_extended(extended.as_ref())
    };
    if stores && shared.opts.track_started {
        store_later(&shared, described(ResultMeta::started(&msg.id, shared.pid, &shared.opts.hostname), &[]));
    }
    shared.active.lock().insert(
        msg.id.clone(),
        json!({"id": msg.id, "name": name, "args": msg.args, "kwargs": msg.kwargs, "type": msg.task, "hostname": shared.opts.hostname,
            "time_start": Utc::now().timestamp_micros() as f64 / 1e6, "acknowledged": !shared.opts.acks_late,
            "delivery_info": {"exchange": d.exchange.as_str(), "routing_key": d.routing_key.as_str(), "priority": msg.priority, "redelivered": d.redelivered},
            "worker_pid": shared.pid}),
    );
    ctx.task_event(&shared, "task-started", json!({"uuid": msg.id}));
    shared.events.send(WorkerEvent::TaskStarted { id: msg.id.clone(), at: Utc::now() });

    let start = Instant::now();
    let mut settings = shared.opts.settings.clone();
    settings.retries = msg.retries;
    let fut = def.call(&msg.args, &msg.kwargs, &settings);
    // Limits from the message, else those set for this task type (`control time_limit`).
    let (default_soft, default_hard) = shared.time_limits.lock().get(&msg.task).copied().unwrap_or((None, None));
    let limit = match (msg.time_limit.or(default_hard), msg.soft_time_limit.or(default_soft)) {
        (Some(h), Some(s)) => Some((h.min(s), s < h)),
        (Some(h), None) => Some((h, false)),
        (None, Some(s)) => Some((s, true)),
        (None, None) => None,
    };
    // A limit from the message is trusted only as far as a Duration can hold it: not finite or
    // not positive means none, and more than a year is a year.
    let limit = limit.filter(|(secs, _)| secs.is_finite() && *secs > 0.0).map(|(secs, soft)| (secs.min(MAX_WAIT_SECS), soft));
    let stop = Arc::new(tokio::sync::Notify::new());
    shared.terminators.lock().insert(msg.id.clone(), stop.clone());
    let limited = async move {
        match limit {
            Some((secs, soft)) => match tokio::time::timeout(Duration::from_secs_f64(secs), fut).await {
                Ok(r) => r,
                Err(_) if soft => {
                    Err(TaskError::new("SoftTimeLimitExceeded", format!("SoftTimeLimitExceeded({secs})")).in_module("billiard.exceptions"))
                }
                Err(_) => Err(TaskError {
                    args: vec![serde_json::json!(secs)],
                    ..TaskError::new("TimeLimitExceeded", "").in_module("billiard.exceptions")
                }),
            },
            None => fut.await,
        }
    };
    let outcome = tokio::select! {
        o = limited => Some(o),
        _ = stop.notified() => None,
    };
    shared.terminators.lock().remove(&msg.id);
    let runtime = start.elapsed().as_secs_f64();
    // The run is over: its slot is free for the next task while this one's result is stored
    // and its message acknowledged.
    drop(permit);
    shared.active.lock().remove(&msg.id);
    shared.stats.active.fetch_sub(1, Ordering::Relaxed);
    let Some(outcome) = outcome else {
        // revoke(terminate=True): the run is stopped where it is.
        info!("Terminating {}: task {name} revoked with terminate", msg.id);
        if stores {
            store(&shared, ResultMeta::revoked(&msg.id, "terminated")).await;
        }
        ctx.task_event(&shared, "task-revoked", json!({"uuid": msg.id, "terminated": true, "signum": 15, "expired": false}));
        shared.events.send(WorkerEvent::TaskRevoked { id: msg.id.clone(), at: Utc::now() });
        if shared.opts.acks_late {
            ctx.ack(&d);
        }
        return;
    };
    match outcome {
        Ok(value) => {
            let children = dispatch_followers(&shared, publisher, &msg, &value).await;
            if stores {
                store(&shared, described(ResultMeta::success(&msg.id, value.clone()), &children)).await;
                chord_part(&shared, publisher, &msg, TaskState::Success, value.clone()).await;
            }
            let repr = pyrepr::truncate(pyrepr::repr(&value), 1024);
            info!("Task {name}[{}] succeeded in {runtime:.4}s: {repr}", msg.id);
            shared.stats.succeeded.fetch_add(1, Ordering::Relaxed);
            ctx.task_event(&shared, "task-succeeded", json!({"uuid": msg.id, "result": repr, "runtime": runtime}));
            shared.events.send(WorkerEvent::TaskSucceeded { id: msg.id.clone(), result: repr, runtime, at: Utc::now() });
        }
        Err(err) if err.retry_in.is_some() && msg.retries < MAX_RETRIES => {
            // Celery's retry: the same task id goes back to the queue with retries + 1 and an
            // eta; RETRY is stored; this message is acknowledged.
            let countdown = err.retry_in.unwrap_or_default();
            let mut again = msg.clone();
            again.retries += 1;
            again.eta = Some(Utc::now() + chrono::Duration::from_std(countdown).unwrap_or_default());
            let res = publisher
                .basic_publish(short(""), d.routing_key.as_str().into(), BasicPublishOptions::default(), &again.body(), again.properties())
                .await;
            if let Err(e) = res {
                error!("Task {name}[{}]: could not send the retry: {e}", msg.id);
            }
            if stores {
                store(&shared, ResultMeta::retry(&msg.id, &err)).await;
            }
            info!("Task {name}[{}] retry: Retry in {}s: {}", msg.id, countdown.as_secs_f64(), err.repr());
            ctx.task_event(&shared, "task-retried", json!({"uuid": msg.id, "exception": err.repr(), "traceback": err.traceback}));
            shared.events.send(WorkerEvent::TaskRetried { id: msg.id.clone(), exception: err.repr(), at: Utc::now() });
            // With early acks it was acknowledged when it started.
            if shared.opts.acks_late {
                ctx.ack(&d);
            }
            return;
        }
        Err(err) => {
            if stores {
                store(&shared, described(ResultMeta::failure(&msg.id, &err), &[])).await;
                chord_part(&shared, publisher, &msg, TaskState::Failure, err.to_result()).await;
            }
            error!("Task {name}[{}] raised unexpected: {}\n{}", msg.id, err.repr(), err.traceback.clone().unwrap_or_default().trim_end());
            dispatch_failure(&shared, publisher, &msg, &err, stores).await;
            shared.stats.failed.fetch_add(1, Ordering::Relaxed);
            ctx.task_event(&shared, "task-failed", json!({"uuid": msg.id, "exception": err.repr(), "traceback": err.traceback}));
            shared.events.send(WorkerEvent::TaskFailed {
                id: msg.id.clone(),
                exception: err.repr(),
                traceback: err.traceback.clone(),
                runtime,
                at: Utc::now(),
            });
        }
    }
    if shared.opts.acks_late {
        ctx.ack(&d);
    }
    *shared.totals.lock().entry(msg.task.clone()).or_insert(0) += 1;
}

/// Waits until the result writer stores again; false when a warm shutdown begins meanwhile.
async fn backend_back(shared: &Shared, slots: &Semaphore) -> bool {
    let mut health = shared.backend_health.subscribe();
    let stopping = shared.stopping.notified();
    tokio::pin!(stopping);
    stopping.as_mut().enable();
    if slots.is_closed() {
        return false;
    }
    tokio::select! {
        ok = health.wait_for(|up| *up) => ok.is_ok(),
        _ = stopping => false,
    }
}

/// Stores a result through the ordered writer and waits until it is stored (or given up): with
/// late acks the message is acknowledged only once its result is safe.
async fn store(shared: &Shared, meta: ResultMeta) {
    let Some(w) = &shared.writer else { return };
    let (tx, rx) = tokio::sync::oneshot::channel();
    if w.send(WriteJob { meta, done: Some(tx) }).is_ok() {
        let _ = rx.await;
    }
}

/// Queues a result for the ordered writer without waiting (STARTED: the task runs meanwhile;
/// the writer keeps the order, so SUCCESS is never published before it).
fn store_later(shared: &Shared, meta: ResultMeta) {
    if let Some(w) = &shared.writer {
        let _ = w.send(WriteJob { meta, done: None });
    }
}

/// A result to write, and who waits for it.
struct WriteJob {
    meta: ResultMeta,
    done: Option<tokio::sync::oneshot::Sender<()>>,
}

/// The first wait before a refused or failed result write is tried again, and the longest (so
/// writes resume within about half a second of Redis answering again).
pub const STORE_RETRY_FIRST: Duration = Duration::from_millis(50);
pub const STORE_RETRY_MAX: Duration = Duration::from_millis(500);

/// The one result writer: takes every waiting result (up to 512) and stores them in one Redis
/// round trip, in the order they came. A write Redis refuses for now (away, NOAUTH, OOM,
/// READONLY, LOADING…) is an outage: the results wait and are tried again with backoff, their
/// messages stay unacknowledged, `health` turns false so that no new task starts, and one line
/// is logged per outage. A result refused for good (a key of another type, a value Redis will
/// not take) is replaced by a FAILURE naming the refusal (Celery's `BackendStoreError`); when
/// even that is refused the result is given up with a clear line, and its message acknowledged.
async fn write_loop(backend: ResultBackend, events: Emitter, health: Arc<watch::Sender<bool>>, mut rx: mpsc::UnboundedReceiver<WriteJob>) {
    let drain = |rx: &mut mpsc::UnboundedReceiver<WriteJob>, batch: &mut Vec<WriteJob>| {
        while batch.len() < 512 {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
    };
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        drain(&mut rx, &mut batch);
        // A STARTED is queued as its task begins, and a quick task ends microseconds later: a
        // moment's yield lets its SUCCESS join this round trip (in order, after the STARTED)
        // instead of costing a second one.
        if batch.len() < 512 && batch.iter().any(|j| j.meta.status == TaskState::Started) {
            for _ in 0..2 {
                tokio::task::yield_now().await;
                drain(&mut rx, &mut batch);
            }
        }
        let metas: Vec<&ResultMeta> = batch.iter().map(|j| &j.meta).collect();
        let outcomes = store_until_settled(&backend, &events, &health, &metas).await;
        // Refused for good: a FAILURE that says why takes the result's place.
        let mut instead = vec![];
        for (job, outcome) in batch.iter().zip(&outcomes) {
            if let Err(e) = outcome {
                error!("result backend refused the {} result of task {}: {e}", job.meta.status, job.meta.task_id);
                events.send(WorkerEvent::BackendRefused { task_id: job.meta.task_id.clone(), error: e.clone() });
                if job.meta.status.is_ready() && !is_store_error(&job.meta) {
                    let err =
                        TaskError::new("BackendStoreError", format!("the result backend refused the {} result: {e}", job.meta.status))
                            .in_module("celery.exceptions");
                    instead.push(ResultMeta::failure(&job.meta.task_id, &err));
                }
            }
        }
        if !instead.is_empty() {
            let refs: Vec<&ResultMeta> = instead.iter().collect();
            for (meta, outcome) in instead.iter().zip(store_until_settled(&backend, &events, &health, &refs).await) {
                match outcome {
                    Ok(_) => warn!("task {}: stored FAILURE (BackendStoreError) in place of the refused result", meta.task_id),
                    Err(e) => error!("result backend refused the FAILURE of task {} too: {e}; it is not stored", meta.task_id),
                }
            }
        }
        for job in batch {
            if let Some(d) = job.done {
                let _ = d.send(());
            }
        }
    }
}

/// A FAILURE that stands for a refused result (not replaced again when refused in turn).
fn is_store_error(meta: &ResultMeta) -> bool {
    meta.status == TaskState::Failure && meta.result.get("exc_type").and_then(Value::as_str) == Some("BackendStoreError")
}

/// Stores `metas` in order, trying again (with backoff, from `STORE_RETRY_FIRST` to
/// `STORE_RETRY_MAX`) every write refused for now, until each is stored or refused for good.
/// The first refusal of an outage is logged and `health` turns false; the first success after
/// it is logged and `health` turns true.
async fn store_until_settled(
    backend: &ResultBackend,
    events: &Emitter,
    health: &watch::Sender<bool>,
    metas: &[&ResultMeta],
) -> Vec<Result<StoreOutcome, String>> {
    let mut out: Vec<Option<Result<StoreOutcome, String>>> = vec![None; metas.len()];
    let mut pending: Vec<usize> = (0..metas.len()).collect();
    let mut delay = STORE_RETRY_FIRST;
    // The cause named last (its first word), so that a change of cause is named once too.
    let mut cause = String::new();
    loop {
        let refused_now = match backend.store_many(pending.iter().map(|&i| metas[i])).await {
            Ok(results) => {
                let mut again = vec![];
                let mut why = None;
                for (i, r) in pending.iter().zip(results) {
                    match r {
                        Err(e) if e.split_whitespace().next().is_some_and(ResultBackend::retryable_code) => {
                            again.push(*i);
                            why = Some(e);
                        }
                        r => out[*i] = Some(r),
                    }
                }
                pending = again;
                why
            }
            Err(e) if !ResultBackend::is_retryable(&e) => {
                for &i in &pending {
                    out[i] = Some(Err(e.to_string()));
                }
                pending.clear();
                None
            }
            Err(e) => Some(e.to_string()),
        };
        match refused_now {
            None => {
                if !*health.borrow() {
                    health.send_replace(true);
                    info!("result backend: connection re-established; storing results again");
                    events.send(WorkerEvent::BackendRecovered);
                }
                return out.into_iter().map(|o| o.unwrap_or_else(|| Err("not stored".into()))).collect();
            }
            Some(e) => {
                let now = e.split_whitespace().next().unwrap_or_default().to_string();
                let changed = !cause.is_empty() && now != cause;
                cause = now;
                if *health.borrow() {
                    health.send_replace(false);
                    warn!(
                        "result backend: cannot store results ({e}); their messages stay unacknowledged and no new task starts; retrying until Redis takes them"
                    );
                    events.send(WorkerEvent::BackendLost { error: e });
                } else if changed {
                    warn!("result backend: results still wait, now because: {e}");
                } else {
                    debug!("result backend: still refusing ({e}); next try in {} ms", delay.as_millis());
                }
                tokio::time::sleep(jitter(delay)).await;
                delay = (delay * 2).min(STORE_RETRY_MAX);
            }
        }
    }
}

/// A revoked task is not run: REVOKED is stored, `task-revoked` sent, the message acknowledged
/// (as Celery does). True when it was revoked.
async fn revoked(shared: &Arc<Shared>, ctx: &Arc<Session>, d: &Delivery, id: &str, name: &str, stores: bool) -> bool {
    if !shared.revoked.lock().contains(id) {
        return false;
    }
    info!("Discarding revoked task: {name}[{id}]");
    if stores {
        store(shared, ResultMeta::revoked(id, "revoked")).await;
    }
    ctx.task_event(shared, "task-revoked", json!({"uuid": id, "terminated": false, "signum": null, "expired": false}));
    shared.events.send(WorkerEvent::TaskRevoked { id: id.to_string(), at: Utc::now() });
    ctx.ack(d);
    true
}

/// Deliveries no longer held unacknowledged (never below zero: a session that ended reset it).
fn settled(stats: &WorkerStats, n: usize) {
    let _ = stats.unacked.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| Some(u.saturating_sub(n as _)));
}

/// How a delivery of the session's channel is settled.
enum Settle {
    /// Received (sent before its handler starts, so it is known before its ack).
    Delivered(u64),
    Ack(u64),
    Reject {
        tag: u64,
        requeue: bool,
    },
}

/// Settles the session channel's deliveries: takes every waiting request and acknowledges the
/// longest run of finished deliveries from the oldest unsettled one with a single `multiple`
/// ack; a finished delivery behind one still running (or waiting for its ETA) is acknowledged
/// on its own at once, so nothing finished waits on a slow task. A multiple ack never covers a
/// delivery that is not finished: only tags this loop saw delivered and then finished.
/// Returns when every sender is gone (the session's handlers have ended).
async fn settle_loop(ch: Channel, shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Settle>) {
    use std::collections::BTreeSet;
    let mut outstanding = BTreeSet::new();
    let mut done = BTreeSet::new();
    let mut rejects = vec![];
    let mut batch = Vec::with_capacity(256);
    while rx.recv_many(&mut batch, 1024).await > 0 {
        for op in batch.drain(..) {
            match op {
                Settle::Delivered(t) => {
                    outstanding.insert(t);
                }
                Settle::Ack(t) => {
                    done.insert(t);
                }
                Settle::Reject { tag, requeue } => {
                    outstanding.remove(&tag);
                    rejects.push((tag, requeue));
                }
            }
        }
        for (tag, requeue) in rejects.drain(..) {
            match ch.basic_reject(tag, BasicRejectOptions { requeue }).await {
                Ok(_) => settled(&shared.stats, 1),
                Err(e) => debug!("reject failed (the channel is gone; the broker will redeliver): {e}"),
            }
        }
        // The run of finished deliveries from the oldest unsettled one.
        let mut upto = None;
        let mut n = 0;
        for t in &outstanding {
            if !done.contains(t) {
                break;
            }
            upto = Some(*t);
            n += 1;
        }
        if let Some(last) = upto {
            match ch.basic_ack(last, BasicAckOptions { multiple: n > 1 }).await {
                Ok(_) => settled(&shared.stats, n),
                Err(e) => debug!("ack failed (the channel is gone; the broker will redeliver): {e}"),
            }
            outstanding = outstanding.split_off(&(last + 1));
            done = done.split_off(&(last + 1));
        }
        // Finished behind an unfinished one: each on its own.
        for t in std::mem::take(&mut done) {
            outstanding.remove(&t);
            match ch.basic_ack(t, BasicAckOptions { multiple: false }).await {
                Ok(_) => settled(&shared.stats, 1),
                Err(e) => debug!("ack failed (the channel is gone; the broker will redeliver): {e}"),
            }
        }
    }
}

/// A header task of a chord ended: its result joins the chord's, and the worker that completes the
/// header sends the body with the header's results in order (Celery's Redis backend, key for key,
/// so Python and mqlab workers may share a chord). A failed part fails the body with ChordError.
async fn chord_part(shared: &Shared, publisher: &Channel, msg: &TaskMessage, state: TaskState, result: Value) {
    use super::backend::ChordPart;
    let (Some(gid), Some(body), Some(b)) = (&msg.group, &msg.embed.chord, &shared.backend) else { return };
    let (results, token) = match b.chord_part(gid, &msg.id, msg.group_index, state, &result).await {
        Ok(ChordPart::Complete { results, token }) => (results, token),
        Ok(_) => return,
        Err(e) => {
            error!("Chord {gid}: cannot record the result of {}[{}]: {e}", msg.task, msg.id);
            return;
        }
    };
    let mut values = vec![];
    let mut failed = None;
    for r in &results {
        let (tid, st) = (r[1].as_str().unwrap_or("?"), r[2].as_str().unwrap_or(""));
        if matches!(st, "FAILURE" | "REVOKED") {
            failed = Some(format!("Dependency {tid} raised {}", TaskError::from_result(&r[3]).repr()));
            break;
        }
        values.push(r[3].clone());
    }
    let body_id = body.pointer("/options/task_id").and_then(Value::as_str).map(str::to_string);
    match failed {
        Some(why) => {
            error!("Chord {gid} raised: ChordError({why:?})");
            if let Some(id) = &body_id {
                let err = TaskError::new("ChordError", why).in_module("celery.exceptions");
                store(shared, ResultMeta::failure(id, &err)).await;
            }
        }
        None => {
            if !b.chord_keep_claim(gid, &token).await.unwrap_or(false) {
                warn!("Chord callback for {gid:?} not published: dispatch claim is no longer owned by this worker");
                return;
            }
            match signature_message(body, Some(Value::Array(values))) {
                Some(mut next) => {
                    next.root_id = msg.root_id.clone();
                    let queue = queue_of(shared, body);
                    match publisher
                        .basic_publish(short(""), short(&queue), BasicPublishOptions::default(), &next.body(), next.properties())
                        .await
                    {
                        Ok(_) => info!("Chord {gid} complete: sent its body {}[{}]", next.task, next.id),
                        Err(e) => error!("Chord {gid}: could not send its body: {e}"),
                    }
                }
                None => error!("Chord {gid}: its body names no task"),
            }
        }
    }
    if let Err(e) = b.chord_cleanup(gid, &token).await {
        warn!("Chord {gid}: cleanup failed (its keys expire on their own): {e}");
    }
}

/// The message a signature describes (`{"task", "args", "kwargs", "options", "immutable"}`),
/// with `first` put before its arguments unless it is immutable.
fn signature_message(sig: &Value, first: Option<Value>) -> Option<TaskMessage> {
    let task = sig.get("task").and_then(Value::as_str)?;
    let immutable = sig.get("immutable").and_then(Value::as_bool).unwrap_or(false);
    let mut args: Vec<Value> = match first {
        Some(v) if !immutable => vec![v],
        _ => vec![],
    };
    args.extend(sig.get("args").and_then(Value::as_array).cloned().unwrap_or_default());
    let kwargs: Map<String, Value> = sig.get("kwargs").and_then(Value::as_object).cloned().unwrap_or_default();
    let mut m = TaskMessage::new(task, args, kwargs);
    if let Some(id) = sig.pointer("/options/task_id").and_then(Value::as_str) {
        m.id = id.to_string();
    }
    Some(m)
}

/// The queue a signature asks for, else the worker's first.
fn queue_of(shared: &Shared, sig: &Value) -> String {
    match sig.pointer("/options/queue").and_then(Value::as_str) {
        Some(q) => q.to_string(),
        None => shared.opts.queues().into_iter().next().unwrap_or_default(),
    }
}

/// After a success Celery sends the next task of a chain (`chain[-1]`) and every callback, with
/// the result prepended to their arguments unless the signature is immutable.
async fn dispatch_followers(shared: &Shared, publisher: &Channel, msg: &TaskMessage, value: &Value) -> Vec<String> {
    let mut children = vec![];
    let mut follow = vec![];
    if let Some(chain) = &msg.embed.chain
        && let Some((next, rest)) = chain.split_last()
    {
        follow.push((next.clone(), Some(rest.to_vec())));
    }
    for cb in msg.embed.callbacks.iter().flatten() {
        follow.push((cb.clone(), None));
    }
    for (sig, rest_of_chain) in follow {
        let Some(mut next) = signature_message(&sig, Some(value.clone())) else {
            warn!("Task {}[{}]: follow-up signature has no task name; skipped", msg.task, msg.id);
            continue;
        };
        let task = next.task.clone();
        next.root_id = msg.root_id.clone();
        next.parent_id = Some(msg.id.clone());
        if let Some(rest) = rest_of_chain
            && !rest.is_empty()
        {
            next.embed.chain = Some(rest);
        }
        let queue = queue_of(shared, &sig);
        let res = publisher.basic_publish(short(""), short(&queue), BasicPublishOptions::default(), &next.body(), next.properties()).await;
        match res {
            Ok(_) => {
                info!("Task {}[{}] sent {task}[{}] (chain/callback)", msg.task, msg.id, next.id);
                children.push(next.id.clone());
            }
            Err(e) => error!("Task {}[{}]: could not send follow-up {task}: {e}", msg.task, msg.id),
        }
    }
    children
}

/// After a failure, as Celery's backend does: the tasks still to come in the chain are stored
/// as FAILURE with the same exception (they will never run), and each errback (`link_error`)
/// is sent with the failed task's id as its first argument.
async fn dispatch_failure(shared: &Shared, publisher: &Channel, msg: &TaskMessage, err: &TaskError, stores: bool) {
    if stores {
        for sig in msg.embed.chain.iter().flatten() {
            if let Some(id) = sig.pointer("/options/task_id").and_then(Value::as_str) {
                store(shared, ResultMeta::failure(id, err)).await;
                info!("Task {}[{}] failed: {} in its chain is marked FAILURE too", msg.task, msg.id, id);
            }
        }
    }
    for sig in msg.embed.errbacks.iter().flatten() {
        let Some(mut eb) = signature_message(sig, Some(Value::String(msg.id.clone()))) else { continue };
        let task = eb.task.clone();
        eb.root_id = msg.root_id.clone();
        eb.parent_id = Some(msg.id.clone());
        let queue = queue_of(shared, sig);
        match publisher.basic_publish(short(""), short(&queue), BasicPublishOptions::default(), &eb.body(), eb.properties()).await {
            Ok(_) => info!("Task {}[{}] failed: sent its errback {task}[{}]", msg.task, msg.id, eb.id),
            Err(e) => error!("Task {}[{}]: could not send errback {task}: {e}", msg.task, msg.id),
        }
    }
}
