//! The interactive terminal UI. One loop owns the state (`state.rs`), turns events into state
//! and commands (`update.rs`), draws (`view.rs`), and hands commands to background tasks, which
//! answer with events. The loop never waits on the network.

pub mod keymap;
pub mod markdown;
pub mod state;
pub mod svg;
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
use tokio::task::JoinSet;

use crate::celery::client::Client;
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
pub async fn run(cfg: Config, over: crate::config::Overrides, context_explicit: bool) -> anyhow::Result<()> {
    let log_path = crate::logging::init_file(&cfg.data_dir)?;
    tracing::info!("mqlab UI starting; log at {}", log_path.display());
    let course = Course::load()?;
    let store = Store::new(&cfg.data_dir);
    let (progress, warning) = store.load_or_fresh();
    let mut app = App::new(cfg.clone(), course, progress);
    app.status = warning;
    app.sandbox_available = crate::sandbox::find_programs().is_ok();
    let first_launch = app.first_launch();
    if first_launch {
        app.modals.push(state::Modal::Start);
    }

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
    let mut rt = Runtime {
        tx: tx.clone(),
        cfg: cfg.clone(),
        store,
        probes,
        worker: Arc::new(Mutex::new(None)),
        client: Arc::new(Mutex::new(None)),
        tasks: JoinSet::new(),
        pollers: JoinSet::new(),
        over,
        forwards: None,
        shell: None,
    };
    rt.tasks.spawn(input(tx.clone()));
    rt.start_pollers();
    // One saver, in order: each batch of changes is applied to the file under its lock, and the
    // app gets back what the file then holds (with whatever the CLI wrote meanwhile).
    let (save_tx, mut save_rx) = mpsc::unbounded_channel::<(u64, Vec<crate::lessons::progress::Change>)>();
    let saver = {
        let store = rt.store.clone();
        let course = app.course.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some((seq, changes)) = save_rx.recv().await {
                let (store, course) = (store.clone(), course.clone());
                let saved = tokio::task::spawn_blocking(move || store.apply(&course, &changes)).await;
                let ev = match saved {
                    Ok(Ok(p)) => Event::ProgressSynced { seq, progress: Box::new(p) },
                    Ok(Err(e)) => Event::Failed(format!("progress not saved: {e:#}")),
                    Err(e) => Event::Failed(format!("progress not saved: {e}")),
                };
                let _ = tx.send(ev);
            }
        })
    };
    let first: Vec<String> = if first_launch {
        // What the start screen reports: a cluster, a broker, a Redis.
        vec!["kube.api".into(), "amqp.login".into(), "redis.ping".into()]
    } else {
        app.lesson_checks().into_iter().filter(|id| !id.starts_with("tasks.")).collect()
    };
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
            // Reap finished background work (its results came as events).
            Some(_) = rt.tasks.join_next(), if !rt.tasks.is_empty() => continue,
            Some(_) = rt.pollers.join_next(), if !rt.pollers.is_empty() => continue,
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
        if let Some(batch) = app.take_pending() {
            let _ = save_tx.send(batch);
        }
        terminal.draw(|f| view::draw(f, &mut app))?;
    }
    app.record_sends(Utc::now(), true);
    if let Some(batch) = app.take_pending() {
        let _ = save_tx.send(batch);
    }
    drop(save_tx);
    if tokio::time::timeout(Duration::from_secs(5), saver).await.is_err() {
        tracing::error!("the last progress changes could not be saved within 5 s");
    }
    rt.pollers.abort_all();
    if let Some(stop) = rt.forwards.take() {
        let _ = stop.send(true);
    }
    if let Some(mut w) = rt.worker.lock().await.take() {
        // Leaving with a running worker: finish what runs (briefly), then stop.
        w.stop(StopMode::Warm);
        if tokio::time::timeout(Duration::from_secs(3), w.wait()).await.is_err() {
            w.stop(StopMode::Cold);
            let _ = tokio::time::timeout(Duration::from_secs(2), w.wait()).await;
        }
    }
    tracing::info!(
        "at exit: {} background task(s) and {} poller(s) owned by the UI, {} open file(s)",
        rt.tasks.len(),
        rt.pollers.len(),
        std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
    );
    rt.tasks.shutdown().await;
    Ok(())
}

/// The configuration loaded again as on a start (a sandbox or port-forwards recorded since count;
/// flags and the environment still win), on the track the app is on.
fn reloaded(over: &crate::config::Overrides, track: crate::config::Track, explicit: bool) -> anyhow::Result<Config> {
    let mut next = Config::load(over)?;
    next.track = track;
    next.track_explicit = explicit;
    Ok(next)
}

/// Runs the port-forwards (on a thread of their own: building the cluster client reads the
/// kubeconfig and may run its exec plugin, which blocks) and passes their events on; when they
/// listen and when they end, the configuration is loaded again, as on a start, so that the ports
/// they recorded are used (or no longer).
async fn forwards(
    probes: Probes,
    over: crate::config::Overrides,
    stop: tokio::sync::watch::Receiver<bool>,
    tx: mpsc::UnboundedSender<Event>,
) {
    use crate::forward::Event as F;
    let (fw_tx, mut fw_rx) = mpsc::unbounded_channel();
    let (track, explicit) = (probes.cfg.track, probes.cfg.track_explicit);
    let mut current = probes.cfg.clone();
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        rt.block_on(async move {
            match crate::probes::kube::stream_client(&probes).await {
                Ok(c) => crate::forward::run(c, probes.cfg.namespace.clone(), probes.cfg.data_dir.clone(), fw_tx, stop).await,
                Err(o) => {
                    let hint = o.hint.map(|h| format!(" ({h})")).unwrap_or_default();
                    let _ = fw_tx.send(F::Failed(format!("{}{hint}", o.detail)));
                }
            }
        });
    });
    let reload = |current: &mut Config| {
        if let Ok(next) = reloaded(&over, track, explicit) {
            let same = (&next.broker_url, &next.result_backend, &next.management_url)
                == (&current.broker_url, &current.result_backend, &current.management_url);
            if !same {
                *current = next.clone();
                let _ = tx.send(Event::ConfigChanged(Box::new(next)));
            }
        }
    };
    while let Some(ev) = fw_rx.recv().await {
        let listening = matches!(ev, F::Listening(_));
        let _ = tx.send(Event::Forward(ev));
        if listening {
            reload(&mut current);
        }
    }
    let _ = tx.send(Event::ForwardsStopped);
    reload(&mut current);
}

/// Carries out the update function's commands. Every task it starts is owned here (dropped,
/// and so cancelled, when the UI ends): `tasks` for one-off work, `pollers` for the live
/// readings, which restart when the endpoints change.
struct Runtime {
    tx: mpsc::UnboundedSender<Event>,
    cfg: Config,
    store: Store,
    probes: Probes,
    worker: Arc<Mutex<Option<WorkerHandle>>>,
    client: Arc<Mutex<Option<Client>>>,
    tasks: JoinSet<()>,
    pollers: JoinSet<()>,
    /// The command line's settings, to load the configuration again as on a start.
    over: crate::config::Overrides,
    /// Stops the port-forwards, while they run.
    forwards: Option<tokio::sync::watch::Sender<bool>>,
    /// Cancels the lesson command running now.
    shell: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Runtime {
    fn exec(&mut self, cmd: Command, app: &App) {
        let tx = self.tx.clone();
        match cmd {
            Command::RunChecks(ids) => {
                let mut probes = self.probes.clone();
                probes.cfg = app.cfg.clone();
                probes.cfg.track = app.track;
                self.tasks.spawn(async move {
                    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
                    let results = probes.run_many(&refs).await;
                    let _ = tx.send(Event::ChecksDone(results));
                });
            }
            Command::StartWorker { concurrency, acks_late } => self.start_worker(concurrency, acks_late, false),
            Command::RestartWorker { concurrency, acks_late } => self.start_worker(concurrency, acks_late, true),
            Command::StopWorker(mode) => {
                let slot = self.worker.clone();
                self.tasks.spawn(async move {
                    if let Some(w) = slot.lock().await.as_ref() {
                        w.stop(mode);
                    }
                });
            }
            Command::Submit { task, args, count } => {
                let client = self.client.clone();
                let cfg = self.cfg.clone();
                self.tasks.spawn(submit(cfg, client, task, args, count, tx));
            }
            Command::Export(path) => {
                let md = export::render(&app.progress, &app.course, &app.cfg);
                let progress = app.progress.clone();
                self.tasks.spawn_blocking(move || {
                    let dir = path.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
                    if let Err(e) = export::write_charts(&dir, &progress) {
                        let _ = tx.send(Event::Failed(format!("charts not written: {e:#}")));
                    }
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
            Command::Init(dir) => {
                let cfg = self.cfg.clone();
                self.tasks.spawn_blocking(move || {
                    let ev = match crate::lessons::project::write(&dir, &cfg) {
                        Ok(outcomes) => {
                            let kept = outcomes.iter().filter(|o| matches!(o, crate::lessons::project::Outcome::Kept(_))).count();
                            Event::Notice(format!(
                                "Python project in {}: {} file(s) written{} · next: cd {} && python3 -m venv venv",
                                crate::config::shell_path(&dir),
                                outcomes.len() - kept,
                                if kept > 0 { format!(", {kept} already there and kept") } else { String::new() },
                                crate::config::shell_path(&dir)
                            ))
                        }
                        Err(e) => Event::Failed(crate::redact::one_line(&e)),
                    };
                    let _ = tx.send(ev);
                });
            }
            Command::SandboxUp => {
                let cfg = self.cfg.clone();
                let over = self.over.clone();
                self.tasks.spawn(async move {
                    let ev = match crate::sandbox::Sandbox::up(&cfg.data_dir, |step| tracing::info!("sandbox: {step}")).await {
                        // The configuration is loaded again, as on the next start: the recorded
                        // sandbox comes before the config file and the defaults; flags and the
                        // environment still win.
                        Ok(_) => match reloaded(&over, cfg.track, cfg.track_explicit) {
                            Ok(next) => {
                                let _ = tx.send(Event::Notice(format!(
                                    "sandbox running: RabbitMQ {} and Redis {}, in use now (mqlab sandbox down stops them)",
                                    crate::config::mask_url(&next.broker_url),
                                    crate::config::mask_url(&next.result_backend)
                                )));
                                Event::ConfigChanged(Box::new(next))
                            }
                            Err(e) => Event::Failed(format!(
                                "sandbox running, but the configuration does not load: {}",
                                crate::redact::one_line(&e)
                            )),
                        },
                        Err(e) => Event::Failed(format!("sandbox: {}", crate::redact::one_line(&e))),
                    };
                    let _ = tx.send(ev);
                });
            }
            Command::Reconfigure => {
                self.cfg = app.cfg.clone();
                self.probes.cfg = app.cfg.clone();
                let client = self.client.clone();
                self.tasks.spawn(async move {
                    if let Some(c) = client.lock().await.take() {
                        c.close().await;
                    }
                });
                self.start_pollers();
            }
            Command::Revoke(id) => {
                let client = self.client.clone();
                let cfg = self.cfg.clone();
                self.tasks.spawn(async move {
                    let mut guard = client.lock().await;
                    let args = serde_json::json!({"task_id": id, "terminate": false, "signal": "SIGTERM"});
                    let sent = match connected(&mut guard, &cfg).await {
                        Ok(c) => c.broadcast_gather("revoke", args, Duration::from_secs(1)).await,
                        Err(e) => Err(e),
                    };
                    let _ = tx.send(match sent {
                        Ok(replies) => Event::Notice(crate::tui::update::revoke_told(&id, &replies)),
                        Err(e) => Event::Failed(format!("revoke not sent: {}", crate::redact::one_line(&e))),
                    });
                });
            }
            Command::StartForwards => {
                let (stop, stop_rx) = tokio::sync::watch::channel(false);
                self.forwards = Some(stop);
                let mut probes = self.probes.clone();
                probes.cfg = app.cfg.clone();
                probes.cfg.track = app.track;
                self.tasks.spawn(forwards(probes, self.over.clone(), stop_rx, tx));
            }
            Command::RunShell { command } => {
                let (cancel, cancelled) = tokio::sync::oneshot::channel();
                self.shell = Some(cancel);
                let env = crate::lessons::run::env_for(&app.cfg);
                tracing::info!("running a lesson command: {}", command.lines().next().unwrap_or(""));
                self.tasks.spawn(async move {
                    let (lines_tx, mut lines) = mpsc::unbounded_channel();
                    let relay = async {
                        while let Some(batch) = lines.recv().await {
                            let _ = tx.send(Event::ShellOutput(batch));
                        }
                    };
                    let (done, ()) = tokio::join!(crate::lessons::run::run(&command, &env, lines_tx, cancelled), relay);
                    let _ = tx.send(Event::ShellDone(done));
                });
            }
            Command::CancelShell => {
                if let Some(c) = self.shell.take() {
                    let _ = c.send(());
                }
            }
            Command::Copy(text) => {
                use base64::Engine;
                use std::io::Write;
                let b64 = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
                let mut out = std::io::stdout();
                let _ = write!(out, "\x1b]52;c;{b64}\x07");
                let _ = out.flush();
            }
            Command::StopForwards => {
                if let Some(stop) = self.forwards.take() {
                    let _ = stop.send(true);
                }
            }
            // Changes reach the store through the saver (see `run`).
            Command::SaveProgress => {}
        }
    }

    fn start_pollers(&mut self) {
        self.pollers.abort_all();
        let cfg = self.cfg.clone();
        let tx = self.tx.clone();
        self.pollers.spawn(amqp_depth(cfg.clone(), tx.clone()));
        self.pollers.spawn(management(cfg.clone(), tx.clone()));
        self.pollers.spawn(celery_events(cfg.clone(), tx.clone()));
        self.pollers.spawn(results_monitor(cfg.clone(), tx.clone()));
        self.pollers.spawn(forwards_elsewhere(cfg.data_dir.clone(), tx.clone()));
        self.pollers.spawn(redis_ping(cfg, tx));
    }

    fn start_worker(&mut self, concurrency: usize, acks_late: bool, restart: bool) {
        let slot = self.worker.clone();
        let tx = self.tx.clone();
        let mut opts = WorkerOptions::new(&self.cfg.broker_url, Some(self.cfg.result_backend.clone()));
        opts.concurrency = concurrency;
        opts.acks_late = acks_late;
        opts.queue = self.cfg.queue.clone();
        opts.hostname = format!("mqlab-{}@{}", std::process::id(), crate::celery::protocol::hostname());
        opts.result_expires = self.cfg.result_expires;
        opts.queue_args = self.cfg.queue_args(None);
        opts.settings.hello_delay = Duration::from_secs_f64(self.cfg.hello_seconds);
        self.tasks.spawn(async move {
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
            // The worker's events, and its counters every 200 ms, until it is gone.
            let mut every = tokio::time::interval(Duration::from_millis(200));
            loop {
                tokio::select! {
                    ev = wrx.recv() => match ev {
                        Some(ev) => if tx.send(Event::Worker(ev)).is_err() { break },
                        None => break,
                    },
                    _ = every.tick() => {
                        let ev = Event::WorkerStats {
                            processed: stats.processed(),
                            failed: stats.failed.load(Ordering::Relaxed),
                            active: stats.active.load(Ordering::Relaxed),
                            unacked: stats.unacked.load(Ordering::Relaxed),
                        };
                        if tx.send(ev).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = tx.send(Event::WorkerStats {
                processed: stats.processed(),
                failed: stats.failed.load(Ordering::Relaxed),
                active: 0,
                unacked: 0,
            });
        });
    }
}

/// The app's one shared client, connected on first use (it notes the ids it sends).
async fn connected<'a>(slot: &'a mut Option<Client>, cfg: &Config) -> anyhow::Result<&'a Client> {
    if slot.is_none() {
        let c =
            Client::connect_with_args(&cfg.broker_url, Some(&cfg.result_backend), &cfg.queue, cfg.result_expires, &cfg.queue_args(None))
                .await?;
        *slot = Some(c.log_sent_ids(crate::probes::learner::SENT_LOG_KEY));
    }
    Ok(slot.as_ref().expect("connected above"))
}

/// Sends tasks over the app's one shared client (one AMQP connection, one Redis connection for
/// noting ids). Results come back through the results monitor, not a subscription per send.
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
    let client = match connected(&mut guard, &cfg).await {
        Ok(c) => c,
        Err(e) => {
            let _ = tx.send(Event::SubmitFailed(crate::redact::one_line(&e)));
            return;
        }
    };
    let now = Utc::now();
    let _ = tx.send(Event::Submitted(msgs.iter().map(|m| update::row_for(m, &cfg.queue, now)).collect()));
    if let Err(e) = client.publish(&msgs).await {
        if let Some(c) = guard.take() {
            c.close().await;
        }
        let _ = tx.send(Event::SubmitFailed(crate::redact::one_line(&e)));
    }
}

/// Every result stored in Redis, by anyone (this app's tasks, the learner's): one pattern
/// subscription on `celery-task-meta-*`, which Celery's Redis backend publishes each state on.
async fn results_monitor(c: Config, tx: mpsc::UnboundedSender<Event>) {
    loop {
        let sub = async {
            let client = redis::Client::open(c.result_backend.as_str()).ok()?;
            let mut ps = client.get_async_pubsub().await.ok()?;
            ps.psubscribe(format!("{}*", crate::celery::backend::KEY_PREFIX)).await.ok()?;
            Some(ps)
        }
        .await;
        if let Some(ps) = sub {
            let mut stream = ps.into_on_message();
            while let Some(msg) = stream.next().await {
                let Ok(payload) = msg.get_payload::<String>() else { continue };
                if let Ok(meta) = crate::celery::pyjson::from_str::<crate::celery::backend::ResultMeta>(&payload)
                    && tx.send(Event::Result(Box::new(meta))).is_err()
                {
                    return;
                }
            }
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn input(tx: mpsc::UnboundedSender<Event>) {
    forward_input(EventStream::new(), tx).await
}

/// Passes the terminal's keys, mouse and resizes on. A read error does not end it (the keys that
/// follow, Ctrl-C and q included, still arrive): it is logged once and reading goes on, after a
/// short pause so a terminal that keeps failing cannot spin a core.
async fn forward_input<S>(mut events: S, tx: mpsc::UnboundedSender<Event>)
where
    S: futures_util::Stream<Item = std::io::Result<CtEvent>> + Unpin,
{
    let mut failing = false;
    while let Some(ev) = events.next().await {
        let ev = match ev {
            Ok(ev) => {
                failing = false;
                ev
            }
            Err(e) => {
                if !failing {
                    tracing::warn!("reading the terminal failed: {e}; reading on");
                    failing = true;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
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
}

/// The fast AMQP reading: a passive declare every 0.5 s gives ready messages and consumers as
/// the broker has them now, and creates nothing.
async fn amqp_depth(c: Config, t: mpsc::UnboundedSender<Event>) {
    use crate::celery::broker::{Polled, QueueState, poll_queue};
    use std::ops::ControlFlow::{Break, Continue};
    poll_queue(&c.broker_url, &c.queue, "mqlab monitor", |polled, at| {
        let ev = match polled {
            Polled::Queue(QueueState::Present { ready, consumers }) => {
                Event::Depth { ready: u64::from(ready), consumers: u64::from(consumers), at }
            }
            // Not declared yet: nothing waits and nobody consumes (the first worker or client
            // declares it, as the lessons say; the app does not).
            Polled::Queue(QueueState::Missing) => Event::Depth { ready: 0, consumers: 0, at },
            Polled::Down(error) => Event::SourceDown { source: Source::Amqp, error },
        };
        if t.send(ev).is_err() { Break(()) } else { Continue(()) }
    })
    .await;
}

/// The management API every 5 s: the queue (rates are the broker's 5 s figures) and the overview.
async fn management(c: Config, t: mpsc::UnboundedSender<Event>) {
    use crate::probes::mgmt::{Mgmt, MgmtError, segment};
    let api = Mgmt::new(&c, Duration::from_secs(3));
    let vhost = crate::probes::rabbit::vhost_of(&c.broker_url);
    let queue_path = format!("/api/queues/{}/{}", segment(&vhost), segment(&c.queue));
    let exchanges_path = format!("/api/exchanges/{}?columns=name,type", segment(&vhost));
    loop {
        let ev = match api.get(&queue_path).await {
            Err(MgmtError::Status(404)) => Event::Sample { sample: Default::default(), at: Utc::now() },
            Ok(v) => Event::Sample { sample: sample_of(&v), at: Utc::now() },
            Err(e) => Event::SourceDown { source: Source::Management, error: e.to_string() },
        };
        let up = matches!(ev, Event::Sample { .. });
        if t.send(ev).is_err() {
            return;
        }
        if up
            && let (Ok(o), Ok(x)) = (api.get("/api/overview").await, api.get(&exchanges_path).await)
            && t.send(Event::Overview(overview_of(&o, &x))).is_err()
        {
            return;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// Every worker's events (celeryev), mqlab's and Python's.
async fn celery_events(c: Config, t: mpsc::UnboundedSender<Event>) {
    loop {
        let (etx, mut erx) = mpsc::unbounded_channel();
        let forward = async {
            while let Some(ev) = erx.recv().await {
                if t.send(Event::Celery(ev)).is_err() {
                    return;
                }
            }
        };
        tokio::select! {
            _ = crate::celery::events::monitor(&c.broker_url, etx) => {}
            _ = forward => return,
        }
        if t.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn redis_ping(c: Config, tx: mpsc::UnboundedSender<Event>) {
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
}

/// Reads the management API's overview and the vhost's exchanges.
pub fn overview_of(o: &Value, exchanges: &Value) -> state::Overview {
    let n = |k: &str| o.pointer(&format!("/object_totals/{k}")).and_then(Value::as_u64).unwrap_or(0);
    let s = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let exchange_names = exchanges
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    (
                        x.get("name").and_then(Value::as_str).unwrap_or("").to_string(),
                        x.get("type").and_then(Value::as_str).unwrap_or("").to_string(),
                    )
                })
                .take(12)
                .collect()
        })
        .unwrap_or_default();
    state::Overview {
        node: s("node"),
        rabbitmq_version: s("rabbitmq_version"),
        exchanges: n("exchanges"),
        queues: n("queues"),
        consumers: n("consumers"),
        connections: n("connections"),
        channels: n("channels"),
        exchange_names,
    }
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

/// Port-forwards served by another process (`mqlab forward` in another terminal): looked at every
/// 2 s (a file and its lock; no network), reported when that changes.
async fn forwards_elsewhere(data_dir: std::path::PathBuf, tx: mpsc::UnboundedSender<Event>) {
    let me = std::process::id();
    let mut last: Option<crate::forward::Recorded> = None;
    let mut first = true;
    loop {
        let dir = data_dir.clone();
        let now = tokio::task::spawn_blocking(move || crate::forward::Recorded::load(&dir)).await.ok().flatten().filter(|r| r.pid != me);
        if first || now != last {
            first = false;
            last = now.clone();
            if tx.send(Event::ForwardsElsewhere(now)).is_err() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    /// A read error from the terminal does not end the input: the q after it still arrives.
    #[tokio::test]
    async fn input_goes_on_after_a_read_error() {
        let q = KeyEvent::new(KeyCode::Char('q'), KeyModifiers::NONE);
        let events =
            futures_util::stream::iter(vec![Err(std::io::Error::other("EIO")), Err(std::io::Error::other("EIO")), Ok(CtEvent::Key(q))]);
        let (tx, mut rx) = mpsc::unbounded_channel();
        forward_input(events, tx).await;
        assert!(matches!(rx.recv().await, Some(Event::Key(k)) if k == q));
    }
}
