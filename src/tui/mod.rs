//! The interactive terminal UI. One loop owns the state (`state.rs`), turns events into state
//! and commands (`update.rs`), draws (`view.rs`), and hands commands to background tasks, which
//! answer with events. The loop never waits on the network.

pub mod state;
pub mod update;
pub mod view;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use crossterm::event::{DisableMouseCapture, EnableMouseCapture, Event as CtEvent, EventStream};
use crossterm::execute;
use futures_util::StreamExt;
use serde_json::{Map, Value};
use tokio::sync::{Mutex, mpsc};

use crate::celery::client::{Client, follow};
use crate::celery::protocol::TaskMessage;
use crate::celery::worker::{self, StopMode, WorkerHandle, WorkerOptions};
use crate::config::Config;
use crate::lessons::Course;
use crate::lessons::export;
use crate::lessons::progress::Store;
use crate::probes::Probes;
pub use state::App;
use update::{Command, Event, Source};

/// Restores the terminal however the loop ends.
struct RestoreGuard;

impl Drop for RestoreGuard {
    fn drop(&mut self) {
        let _ = execute!(std::io::stdout(), DisableMouseCapture);
        ratatui::restore();
    }
}

/// Starts the UI and runs it until the learner quits.
pub async fn run(cfg: Config, context_explicit: bool) -> anyhow::Result<()> {
    let log_path = crate::logging::init_file(&cfg.data_dir)?;
    tracing::info!("mqlab UI starting; log at {}", log_path.display());
    let course = Course::load()?;
    let store = Store::new(&cfg.data_dir);
    let (progress, warning) = store.load_or_fresh();
    let mut app = App::new(cfg.clone(), course, progress);
    app.status = warning;

    let mut terminal = ratatui::try_init()?;
    let _guard = RestoreGuard;
    execute!(std::io::stdout(), EnableMouseCapture)?;
    terminal.draw(|f| view::draw(f, &mut app))?;
    if let Some(t0) = crate::STARTED.get() {
        tracing::info!("first frame drawn {:.1} ms after start", t0.elapsed().as_secs_f64() * 1000.0);
    }

    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
    let mut probes = Probes::new(cfg.clone());
    probes.context_explicit = context_explicit;
    let rt =
        Runtime { tx: tx.clone(), cfg: cfg.clone(), store, probes, worker: Arc::new(Mutex::new(None)), client: Arc::new(Mutex::new(None)) };
    spawn_input(tx.clone());
    spawn_pollers(&cfg, tx.clone());
    let first: Vec<String> = app.lesson_checks().into_iter().filter(|id| !id.starts_with("tasks.")).collect();
    if !first.is_empty() {
        for cmd in app.run_checks(first) {
            rt.exec(cmd, &app);
        }
    }
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    while !app.quit {
        let ev = tokio::select! {
            Some(ev) = rx.recv() => ev,
            _ = tick.tick() => Event::Tick,
            _ = term.recv() => { app.quit = true; continue }
        };
        for cmd in app.handle(ev) {
            rt.exec(cmd, &app);
        }
        // Take whatever else is already waiting before drawing once.
        while let Ok(ev) = rx.try_recv() {
            for cmd in app.handle(ev) {
                rt.exec(cmd, &app);
            }
        }
        terminal.draw(|f| view::draw(f, &mut app))?;
    }
    let _ = rt.store.save(&app.progress);
    if let Some(mut w) = rt.worker.lock().await.take() {
        // Leaving with a running worker: finish what runs (briefly), then stop.
        w.stop(StopMode::Warm);
        if tokio::time::timeout(Duration::from_secs(3), w.wait()).await.is_err() {
            w.stop(StopMode::Cold);
            let _ = tokio::time::timeout(Duration::from_secs(2), w.wait()).await;
        }
    }
    Ok(())
}

struct Runtime {
    tx: mpsc::UnboundedSender<Event>,
    cfg: Config,
    store: Store,
    probes: Probes,
    worker: Arc<Mutex<Option<WorkerHandle>>>,
    client: Arc<Mutex<Option<Client>>>,
}

impl Runtime {
    fn exec(&self, cmd: Command, app: &App) {
        let tx = self.tx.clone();
        match cmd {
            Command::RunChecks(ids) => {
                let mut probes = self.probes.clone();
                probes.cfg.track = app.track;
                tokio::spawn(async move {
                    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
                    let results = probes.run_many(&refs).await;
                    let _ = tx.send(Event::ChecksDone(results));
                });
            }
            Command::StartWorker { concurrency, acks_late } => self.start_worker(concurrency, acks_late, false),
            Command::RestartWorker { concurrency, acks_late } => self.start_worker(concurrency, acks_late, true),
            Command::StopWorker(mode) => {
                let slot = self.worker.clone();
                tokio::spawn(async move {
                    if let Some(w) = slot.lock().await.as_ref() {
                        w.stop(mode);
                    }
                });
            }
            Command::Submit { task, args, count } => {
                let client = self.client.clone();
                let cfg = self.cfg.clone();
                tokio::spawn(submit(cfg, client, task, args, count, tx));
            }
            Command::Export(path) => {
                let md = export::render(&app.progress, &app.course, &app.cfg);
                tokio::task::spawn_blocking(move || {
                    let _ = match export::write(&path, &md) {
                        Ok(None) => tx.send(Event::Exported(path)),
                        Ok(Some(kept)) => tx.send(Event::Notice(format!(
                            "LEARNINGS.md written to {} (previous kept as {})",
                            path.display(),
                            kept.display()
                        ))),
                        Err(e) => tx.send(Event::Failed(format!("cannot write {}: {e}", path.display()))),
                    };
                });
            }
            Command::SandboxUp => {
                let cfg = self.cfg.clone();
                tokio::spawn(async move {
                    let ev = match crate::sandbox::Sandbox::up(&cfg.data_dir, |step| tracing::info!("sandbox: {step}")).await {
                        Ok((sb, _)) if sb.broker_url() == cfg.broker_url && sb.result_backend() == cfg.result_backend => {
                            Event::Notice("sandbox running: RabbitMQ and Redis answer (mqlab sandbox down stops them)".into())
                        }
                        Ok(_) => Event::Notice("sandbox running on its own ports: quit and start mqlab again to use it".into()),
                        Err(e) => Event::Failed(format!("sandbox: {}", crate::cli::one_line(&e))),
                    };
                    let _ = tx.send(ev);
                });
            }
            Command::SaveProgress => {
                let store = self.store.clone();
                let p = app.progress.clone();
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = store.save(&p) {
                        let _ = tx.send(Event::Failed(format!("progress not saved: {e:#}")));
                    }
                });
            }
        }
    }

    fn start_worker(&self, concurrency: usize, acks_late: bool, restart: bool) {
        let slot = self.worker.clone();
        let tx = self.tx.clone();
        let mut opts = WorkerOptions::new(&self.cfg.broker_url, Some(self.cfg.result_backend.clone()));
        opts.concurrency = concurrency;
        opts.acks_late = acks_late;
        opts.queue = self.cfg.queue.clone();
        opts.hostname = format!("mqlab@{}", crate::celery::protocol::hostname());
        opts.result_expires = self.cfg.result_expires;
        opts.settings.hello_delay = Duration::from_secs_f64(self.cfg.hello_seconds);
        tokio::spawn(async move {
            let mut guard = slot.lock().await;
            if let Some(mut old) = guard.take()
                && !old.is_finished()
            {
                old.stop(if restart { StopMode::Warm } else { StopMode::Cold });
                if tokio::time::timeout(Duration::from_secs(10), old.wait()).await.is_err() {
                    old.stop(StopMode::Cold);
                    let _ = tokio::time::timeout(Duration::from_secs(3), old.wait()).await;
                }
            }
            let (wtx, mut wrx) = mpsc::unbounded_channel();
            let handle = worker::spawn(opts, Some(wtx));
            let stats = handle.stats.clone();
            *guard = Some(handle);
            drop(guard);
            let fwd = tx.clone();
            tokio::spawn(async move {
                while let Some(ev) = wrx.recv().await {
                    if fwd.send(Event::Worker(ev)).is_err() {
                        break;
                    }
                }
            });
            loop {
                tokio::time::sleep(Duration::from_millis(400)).await;
                let ev = Event::WorkerStats {
                    processed: stats.processed(),
                    failed: stats.failed.load(Ordering::Relaxed),
                    active: stats.active.load(Ordering::Relaxed),
                };
                if tx.send(ev).is_err() || Arc::strong_count(&stats) == 1 {
                    break;
                }
            }
        });
    }
}

async fn submit(
    cfg: Config,
    slot: Arc<Mutex<Option<Client>>>,
    task: String,
    args: Vec<Value>,
    count: usize,
    tx: mpsc::UnboundedSender<Event>,
) {
    let msgs: Vec<TaskMessage> = (0..count).map(|_| TaskMessage::new(task.clone(), args.clone(), Map::new())).collect();
    let mut guard = slot.lock().await;
    if guard.is_none() {
        match Client::connect(&cfg.broker_url, Some(&cfg.result_backend), &cfg.queue, cfg.result_expires).await {
            Ok(c) => *guard = Some(c),
            Err(e) => {
                let _ = tx.send(Event::SubmitFailed(crate::cli::one_line(&e)));
                return;
            }
        }
    }
    let client = guard.as_ref().expect("connected above");
    let mut watcher = match client.watch(&msgs).await {
        Ok(w) => w,
        Err(e) => {
            *guard = None;
            let _ = tx.send(Event::SubmitFailed(crate::cli::one_line(&e)));
            return;
        }
    };
    let now = Utc::now();
    let _ = tx.send(Event::Submitted(msgs.iter().map(|m| update::row_for(m, &cfg.queue, now)).collect()));
    if let Err(e) = client.publish(&msgs).await {
        *guard = None;
        let _ = tx.send(Event::SubmitFailed(crate::cli::one_line(&e)));
        return;
    }
    drop(guard);
    let _ = follow(&mut watcher, Some(Duration::from_secs(3600)), |m| {
        let _ = tx.send(Event::Result(m.clone()));
    })
    .await;
}

fn spawn_input(tx: mpsc::UnboundedSender<Event>) {
    tokio::spawn(async move {
        let mut events = EventStream::new();
        while let Some(Ok(ev)) = events.next().await {
            let mapped = match ev {
                CtEvent::Key(k) => Event::Key(k),
                CtEvent::Mouse(m) => Event::Mouse(m),
                CtEvent::Resize(..) => Event::Tick,
                _ => continue,
            };
            if tx.send(mapped).is_err() {
                break;
            }
        }
    });
}

/// Live broker readings: a fast AMQP depth reading, the management API's sample (its rates are
/// computed by the broker every 5 s), and a Redis PING.
fn spawn_pollers(cfg: &Config, tx: mpsc::UnboundedSender<Event>) {
    let c = cfg.clone();
    let t = tx.clone();
    tokio::spawn(async move {
        loop {
            match crate::celery::broker::connect(&c.broker_url, "mqlab monitor").await {
                Ok(conn) => {
                    let Ok(ch) = conn.create_channel().await else { continue };
                    loop {
                        let q = ch
                            .queue_declare(
                                crate::celery::protocol::short(&c.queue),
                                lapin::options::QueueDeclareOptions { durable: true, ..Default::default() },
                                Default::default(),
                            )
                            .await;
                        match q {
                            Ok(q) => {
                                if t.send(Event::Depth {
                                    ready: q.message_count() as u64,
                                    consumers: q.consumer_count() as u64,
                                    at: Utc::now(),
                                })
                                .is_err()
                                {
                                    return;
                                }
                            }
                            Err(e) => {
                                let _ = t.send(Event::SourceDown { source: Source::Amqp, error: e.to_string() });
                                break;
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
                Err(e) => {
                    if t.send(Event::SourceDown { source: Source::Amqp, error: e.to_string() }).is_err() {
                        return;
                    }
                }
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });
    let c = cfg.clone();
    let t = tx.clone();
    tokio::spawn(async move {
        let (base, user, pass) = c.management_login();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(3)).build().expect("client");
        let url = format!("{base}/api/queues/%2F/{}", url::form_urlencoded::byte_serialize(c.queue.as_bytes()).collect::<String>());
        loop {
            let ev = match http.get(&url).basic_auth(&user, Some(&pass)).send().await {
                Ok(r) if r.status().as_u16() == 404 => Event::Sample { sample: Default::default(), at: Utc::now() },
                Ok(r) if r.status().is_success() => match r.json::<Value>().await {
                    Ok(v) => Event::Sample { sample: sample_of(&v), at: Utc::now() },
                    Err(e) => Event::SourceDown { source: Source::Management, error: e.to_string() },
                },
                Ok(r) => Event::SourceDown { source: Source::Management, error: format!("HTTP {}", r.status()) },
                Err(e) => Event::SourceDown { source: Source::Management, error: e.to_string() },
            };
            if t.send(ev).is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    });
    let c = cfg.clone();
    let t = tx.clone();
    tokio::spawn(async move {
        loop {
            let (etx, mut erx) = mpsc::unbounded_channel();
            let fwd = t.clone();
            let forward = tokio::spawn(async move {
                while let Some(ev) = erx.recv().await {
                    if fwd.send(Event::Celery(ev)).is_err() {
                        break;
                    }
                }
            });
            let _ = crate::celery::events::monitor(&c.broker_url, etx).await;
            forward.abort();
            if t.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });
    let c = cfg.clone();
    tokio::spawn(async move {
        loop {
            let ok = async {
                let client = redis::Client::open(c.result_backend.as_str()).ok()?;
                let cfg = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(2)))
                    .set_response_timeout(Some(Duration::from_secs(2)));
                let mut conn = client.get_multiplexed_async_connection_with_config(&cfg).await.ok()?;
                redis::cmd("PING").query_async::<String>(&mut conn).await.ok()
            }
            .await;
            let ev = match ok {
                Some(_) => Event::RedisUp,
                None => Event::SourceDown { source: Source::Redis, error: "no PONG".into() },
            };
            if tx.send(ev).is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    });
}

/// Reads the management API's queue object.
pub fn sample_of(v: &Value) -> state::Sample {
    let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    let rate = |k: &str| v.pointer(&format!("/message_stats/{k}_details/rate")).and_then(Value::as_f64).unwrap_or(0.0);
    state::Sample {
        ready: n("messages_ready"),
        unacked: n("messages_unacknowledged"),
        consumers: n("consumers"),
        publish_rate: rate("publish"),
        deliver_rate: rate("deliver_get"),
        ack_rate: rate("ack"),
    }
}
