//! Runs a lesson's solution (`solve`): each step shown, then run; the broker watched the whole
//! time (a burst or a recovery the steps cause is recorded as the learner's experiment, as the
//! app records it); then the lesson's checks, recorded as `mqlab check --lesson N` records them.

use std::time::Duration;

use anyhow::Context;
use tokio::sync::{mpsc, watch};

use super::Course;
use super::observe::{BrokerWatch, Observed};
use super::progress::{Change, Store, experiment};
use super::solve::{Action, Planned};
use crate::config::{Config, Track};
use crate::probes::{CheckResult, Probes, Status};

/// How a solve went.
#[derive(Debug)]
pub struct Solved {
    /// Steps run, of all.
    pub steps_run: usize,
    pub steps: usize,
    /// What the broker showed while it ran.
    pub observed: Vec<Observed>,
    /// The lesson's checks afterwards (empty when a step failed).
    pub checks: Vec<CheckResult>,
    /// The step that failed, and why.
    pub failed: Option<String>,
    pub seconds: f64,
}

impl Solved {
    pub fn ok(&self) -> bool {
        self.failed.is_none() && self.checks.iter().all(|c| c.status != Status::Fail)
    }
}

/// Runs lesson `step`'s solution on `track`. `load` gives the configuration as it is now (a step
/// may change it: `mqlab sandbox up`); `say` gets every line to show.
pub async fn solve(
    course: &Course,
    step: u32,
    track: Track,
    load: &dyn Fn() -> anyhow::Result<Config>,
    say: &mut dyn FnMut(&str),
) -> anyhow::Result<Solved> {
    let started = std::time::Instant::now();
    let lesson = course.lesson(step).with_context(|| format!("there is no lesson {step} (lessons 1-{})", course.lessons.len()))?;
    let mut cfg = load()?;
    let store = Store::new(&cfg.data_dir);
    store.apply(course, &[Change::Track(track), Change::CurrentLesson(step)])?;
    let steps = lesson.solution(track);
    say(&format!("Lesson {step} · {} (track {}): {} step(s)", lesson.title_for(track), track.as_str(), steps.len()));
    if steps.is_empty() {
        say("  this lesson has nothing to do but read: its checks run now");
    }
    // The task queue and the lesson's own: those that do not exist yet are the lesson's to undo
    // if its steps declare them.
    let watched: Vec<String> = std::iter::once(cfg.queue.clone()).chain(lesson.queues.iter().cloned()).collect();
    let mut before = vec![];
    for q in &watched {
        before.push(queue_exists(&cfg, q).await);
    }
    let (cfg_tx, cfg_rx) = watch::channel(cfg.clone());
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel();
    let watcher = tokio::spawn(watch_broker(cfg_rx, seen_tx));
    let mut observed: Vec<Observed> = vec![];
    let mut failed = None;
    let mut steps_run = 0;
    for (i, s) in steps.iter().enumerate() {
        let planned = match s.plan(&cfg) {
            Ok(p) => p,
            Err(e) => {
                failed = Some(format!("step {}: {e:#}", i + 1));
                break;
            }
        };
        say(&format!("\n[{}/{}] {}", i + 1, steps.len(), planned.say));
        if let Some(id) = &s.skip_if {
            let r = Probes::new(cfg.clone()).run(id).await;
            if r.status == Status::Pass {
                say(&format!("  skipped, done already: {}", r.detail));
                steps_run += 1;
                continue;
            }
        }
        for line in planned.shown() {
            say(&format!("  {line}"));
        }
        let outcome = run_step(&planned, step, &cfg, &store, course, &mut seen_rx, &mut observed, say).await;
        // Record what the broker showed during the step before going on.
        while let Ok(seen) = seen_rx.try_recv() {
            note(&seen, step, &store, course, say);
            observed.push(seen);
        }
        if let Err(e) = outcome {
            failed = Some(format!("step {} ({}): {e:#}", i + 1, planned.say));
            break;
        }
        steps_run += 1;
        // A step may have changed the endpoints (a sandbox started): later steps, the watcher and
        // the checks use the new ones.
        cfg = load()?;
        let _ = cfg_tx.send(cfg.clone());
    }
    watcher.abort();
    // A queue this lesson's steps declared (it did not exist before) is the lesson's to undo.
    for (q, before) in watched.iter().zip(before) {
        if before == Some(false) && queue_exists(&cfg, q).await == Some(true) {
            made_queue(&cfg.data_dir, step, q)?;
            say(&format!("  (queue {q} was declared during this lesson: `mqlab reset --lesson {step}` deletes it)"));
        }
    }
    let checks = if failed.is_none() {
        let ids: Vec<&str> = lesson.checks(track).iter().map(String::as_str).collect();
        let results = Probes::new(cfg.clone()).run_many(&ids).await;
        store.apply(course, &[Change::Checks { results: results.clone(), track, lessons: vec![step] }])?;
        results
    } else {
        vec![]
    };
    Ok(Solved { steps_run, steps: steps.len(), observed, checks, failed, seconds: started.elapsed().as_secs_f64() })
}

fn note(seen: &Observed, step: u32, store: &Store, course: &Course, say: &mut dyn FnMut(&str)) {
    let (kind, summary, figures) = seen.experiment();
    let mut e = experiment(kind, summary, figures);
    e.lesson = Some(step);
    say(&format!("  {}", seen.status()));
    if let Err(err) = store.apply(course, &[Change::Experiment(e)]) {
        say(&format!("  warning: could not record it: {}", crate::redact::one_line(&err)));
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_step(
    p: &Planned,
    lesson: u32,
    cfg: &Config,
    store: &Store,
    course: &Course,
    seen_rx: &mut mpsc::UnboundedReceiver<Observed>,
    observed: &mut Vec<Observed>,
    say: &mut dyn FnMut(&str),
) -> anyhow::Result<()> {
    let env = super::run::env_for(cfg);
    match &p.action {
        Action::Run { script } => {
            let (tx, mut rx) = mpsc::unbounded_channel();
            let (_cancel_tx, cancel_rx) = tokio::sync::oneshot::channel();
            let run = super::run::run(script, &env, tx, cancel_rx);
            tokio::pin!(run);
            let done = loop {
                tokio::select! {
                    done = &mut run => break done,
                    Some(batch) = rx.recv() => for l in batch { say(&format!("  │ {l}")) },
                }
            };
            while let Ok(batch) = rx.try_recv() {
                for l in batch {
                    say(&format!("  │ {l}"));
                }
            }
            match done.code {
                Some(0) => Ok(()),
                Some(c) => anyhow::bail!("the command exited with {c}"),
                None => anyhow::bail!("the command was ended by a signal"),
            }
        }
        Action::Start { name, script, ready, limit } => {
            if let Some(s) = super::solve::started(&cfg.data_dir).get(name)
                && s.alive()
                && s.command == *script
            {
                say(&format!("  {name} runs already (pid {}, since {}): kept", s.pid, s.at.format("%H:%M:%S")));
                return Ok(());
            }
            // One program of that name at a time: an older one (another command line) goes first.
            super::solve::stop(&cfg.data_dir, name, super::solve::StopSignal::CtrlC).await?;
            let s = super::solve::start(&cfg.data_dir, lesson, name, script, &env)?;
            say(&format!("  started {name} (pid {}; its output: {})", s.pid, s.log.display()));
            let Some(ready) = ready else { return Ok(()) };
            let deadline = tokio::time::Instant::now() + *limit;
            loop {
                let text = crate::files::read_capped(&s.log, 16 * 1024 * 1024).unwrap_or_default();
                if text.contains(ready.as_str()) {
                    say(&format!("  {name} is ready"));
                    return Ok(());
                }
                if !s.alive() {
                    anyhow::bail!("{name} exited before it was ready; its last lines:\n  {}", super::solve::tail(&s.log, 12));
                }
                if tokio::time::Instant::now() >= deadline {
                    anyhow::bail!(
                        "{name} was not ready within {} s; its last lines:\n  {}",
                        limit.as_secs(),
                        super::solve::tail(&s.log, 12)
                    );
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Action::Stop { name, signal } => {
            if super::solve::stop(&cfg.data_dir, name, *signal).await? {
                say(&format!("  {name} stopped"));
            } else {
                say(&format!("  {name} was not running"));
            }
            Ok(())
        }
        Action::Append { file, text } => {
            let old = match std::fs::read_to_string(file) {
                Ok(t) => t,
                Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
            };
            if old.contains(text.trim()) {
                say(&format!("  {} has it already", file.display()));
                return Ok(());
            }
            let sep = if old.ends_with('\n') { "\n" } else { "\n\n" };
            crate::files::write_atomic(file, format!("{old}{sep}{}\n", text.trim_end()).as_bytes())
                .with_context(|| format!("cannot write {}", file.display()))?;
            Ok(())
        }
        Action::Wait { what, limit, checks } if what == "checks" => {
            let deadline = tokio::time::Instant::now() + *limit;
            let ids: Vec<&str> = if checks.is_empty() {
                course.lesson(lesson).map(|l| l.checks(cfg.track).iter().map(String::as_str).collect()).unwrap_or_default()
            } else {
                checks.iter().map(String::as_str).collect()
            };
            loop {
                let results = Probes::new(cfg.clone()).run_many(&ids).await;
                let failing: Vec<String> =
                    results.iter().filter(|r| r.status != Status::Pass).map(|r| format!("{}: {}", r.id, r.detail)).collect();
                if failing.is_empty() {
                    say("  the lesson's checks pass");
                    return Ok(());
                }
                if tokio::time::Instant::now() >= deadline {
                    anyhow::bail!("the lesson's checks did not pass within {} s: {}", limit.as_secs(), failing.join("; "));
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
        Action::Wait { what, limit, .. } => {
            let deadline = tokio::time::Instant::now() + *limit;
            let wanted =
                |o: &Observed| matches!((what.as_str(), o), ("burst", Observed::Burst { .. }) | ("recovery", Observed::Recovery { .. }));
            loop {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                match tokio::time::timeout(left, seen_rx.recv()).await {
                    Ok(Some(seen)) => {
                        note(&seen, lesson, store, course, say);
                        let hit = wanted(&seen);
                        observed.push(seen);
                        if hit {
                            return Ok(());
                        }
                    }
                    Ok(None) => anyhow::bail!("the broker watch stopped"),
                    Err(_) => anyhow::bail!("the broker did not show the {what} within {} s", limit.as_secs()),
                }
            }
        }
        Action::Predict { id, value } => {
            store.apply(course, &[Change::Predict { step: lesson, id: id.clone(), value: *value }])?;
            say(&format!("  predicted; the experiment's outcome is shown beside it (mqlab predict --lesson {lesson})"));
            Ok(())
        }
    }
}

/// Reads the queue every 0.5 s (a passive declare: it creates nothing) and sends what the
/// readings show. Follows the configuration as steps change it.
async fn watch_broker(mut cfg: watch::Receiver<Config>, seen: mpsc::UnboundedSender<Observed>) {
    use crate::celery::broker::{Polled, QueueState, poll_queue};
    use std::ops::ControlFlow::{Break, Continue};
    let mut w = BrokerWatch::default();
    let mut gone = false;
    while !gone {
        let c = cfg.borrow_and_update().clone();
        poll_queue(&c.broker_url, &c.queue, "mqlab solve", |polled, at| {
            if let Polled::Queue(QueueState::Present { ready, consumers }) = polled
                && let Some(o) = w.reading(u64::from(ready), 0, u64::from(consumers), at, false)
                && seen.send(o).is_err()
            {
                gone = true;
            }
            // New endpoints (a step started the forwards): the queue there.
            if gone || cfg.has_changed().unwrap_or(true) { Break(()) } else { Continue(()) }
        })
        .await;
        gone |= cfg.has_changed().is_err();
    }
}

/// Whether `queue` exists (a passive declare); None when the broker does not answer.
async fn queue_exists(cfg: &Config, queue: &str) -> Option<bool> {
    use crate::celery::broker::{QueueState, connect, queue_state};
    let conn = tokio::time::timeout(Duration::from_secs(3), connect(&cfg.broker_url, "mqlab solve")).await.ok()?.ok()?;
    let state = match conn.create_channel().await {
        Ok(ch) => queue_state(&ch, queue).await.ok(),
        Err(_) => None,
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), conn.close(200, "done".into())).await;
    state.map(|s| s != QueueState::Missing)
}

fn queues_path(data_dir: &std::path::Path) -> std::path::PathBuf {
    super::solve::dir(data_dir).join("queues.json")
}

/// Queues each lesson's solution declared: lesson → queue names (no broker address: that is
/// the configuration's).
fn made_queues(data_dir: &std::path::Path) -> std::collections::BTreeMap<u32, Vec<String>> {
    crate::files::read_capped(&queues_path(data_dir), 1024 * 1024).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default()
}

fn made_queue(data_dir: &std::path::Path, lesson: u32, queue: &str) -> anyhow::Result<()> {
    let mut all = made_queues(data_dir);
    let v = all.entry(lesson).or_default();
    if !v.iter().any(|q| q == queue) {
        v.push(queue.to_string());
    }
    crate::files::private_dir(&super::solve::dir(data_dir))?;
    crate::files::write_atomic(&queues_path(data_dir), serde_json::to_string_pretty(&all)?.as_bytes())?;
    Ok(())
}

/// Undoes what a lesson's solution (every lesson's with None) left behind: stops the programs it
/// started, then deletes the queues it declared (their bindings go with them, and Celery's
/// exchange of the same name), if nothing else consumes them. Returns what it
/// did, in words.
pub async fn undo(cfg: &Config, lesson: Option<u32>) -> anyhow::Result<Vec<String>> {
    let mut said = vec![];
    for name in super::solve::stop_lesson(&cfg.data_dir, lesson).await? {
        said.push(format!("stopped {name}"));
    }
    let mut all = made_queues(&cfg.data_dir);
    let lessons: Vec<u32> = all.keys().copied().filter(|l| lesson.is_none_or(|x| x == *l)).collect();
    for l in lessons {
        let queues = all.remove(&l).unwrap_or_default();
        let mut kept = vec![];
        for q in queues {
            match delete_unused(cfg, &q).await {
                Ok((n, exchange)) => {
                    let also = if exchange { format!(", and the exchange {q} Celery declared with it") } else { String::new() };
                    said.push(format!("deleted queue {q} (lesson {l} declared it; {n} message(s) in it went with it{also})"))
                }
                Err(e) => {
                    said.push(format!("kept queue {q}: {e}"));
                    kept.push(q);
                }
            }
        }
        if !kept.is_empty() {
            all.insert(l, kept);
        }
    }
    if queues_path(&cfg.data_dir).exists() {
        crate::files::write_atomic(&queues_path(&cfg.data_dir), serde_json::to_string_pretty(&all)?.as_bytes())?;
    }
    Ok(said)
}

/// Deletes a queue unless a consumer still uses it, then the exchange of the same name Celery
/// declares beside a task queue (`math` → exchange `math`), if nothing else is bound to it:
/// the messages the queue held, and whether that exchange went too.
async fn delete_unused(cfg: &Config, queue: &str) -> anyhow::Result<(u32, bool)> {
    use crate::celery::broker::{AMQPSoftError, is_precondition_failed, is_soft};
    let conn = tokio::time::timeout(Duration::from_secs(5), crate::celery::broker::connect(&cfg.broker_url, "mqlab reset"))
        .await
        .map_err(|_| anyhow::anyhow!("the broker did not answer within 5 s"))??;
    let name = crate::celery::protocol::short(queue);
    let r = async {
        let ch = conn.create_channel().await?;
        ch.queue_delete(name.clone(), lapin::options::QueueDeleteOptions { if_unused: true, ..Default::default() }).await
    }
    .await;
    let exchange = match &r {
        Ok(_) => async {
            let ch = conn.create_channel().await?;
            ch.exchange_delete(name, lapin::options::ExchangeDeleteOptions { if_unused: true, ..Default::default() }).await
        }
        .await
        .map(|()| true)
        // No such exchange (a queue made by hand has none), or another queue is bound to it.
        .or_else(|e| if is_soft(&e, AMQPSoftError::NOTFOUND) || is_precondition_failed(&e) { Ok(false) } else { Err(e) }),
        Err(_) => Ok(false),
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), conn.close(200, "done".into())).await;
    match r {
        Ok(n) => Ok((n, exchange?)),
        // 406: `if_unused` and a consumer on it.
        Err(e) if is_precondition_failed(&e) => anyhow::bail!("a consumer still uses it (another worker)"),
        Err(e) => Err(e.into()),
    }
}
