//! The state machine: events in, new state and commands out. No I/O here, so it is tested with
//! injected key presses and background events.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEvent, MouseEventKind};
use ratatui_textarea::TextArea;
use serde_json::{Value, json};

use super::state::*;
use crate::celery::backend::ResultMeta;
use crate::celery::events::CeleryEvent;
use crate::celery::worker::{StopMode, WorkerEvent};
use crate::celery::{TaskState, pyrepr};
use crate::config::Track;
use crate::lessons::progress::ExperimentKind;
use crate::probes::{CheckResult, Status};

/// What happens around the UI.
#[derive(Clone, Debug)]
pub enum Event {
    Key(KeyEvent),
    Mouse(MouseEvent),
    Tick,
    ChecksStarted(Vec<String>),
    ChecksDone(Vec<CheckResult>),
    Worker(WorkerEvent),
    WorkerStats {
        processed: u64,
        failed: u64,
        active: usize,
    },
    /// Tasks were published (with their raw messages).
    Submitted(Vec<TaskRow>),
    SubmitFailed(String),
    Result(ResultMeta),
    /// Fast AMQP depth reading (ready messages, consumers).
    Depth {
        ready: u64,
        consumers: u64,
        at: DateTime<Utc>,
    },
    /// Management API sample.
    Sample {
        sample: Sample,
        at: DateTime<Utc>,
    },
    SourceDown {
        source: Source,
        error: String,
    },
    RedisUp,
    Exported(PathBuf),
    Failed(String),
    /// Something to tell the learner in the status line.
    Notice(String),
    /// An event from any worker on the broker (celeryev).
    Celery(CeleryEvent),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Amqp,
    Management,
    Redis,
}

/// Side effects for the runtime to carry out.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    RunChecks(Vec<String>),
    StartWorker {
        concurrency: usize,
        acks_late: bool,
    },
    StopWorker(StopMode),
    RestartWorker {
        concurrency: usize,
        acks_late: bool,
    },
    Submit {
        task: String,
        args: Vec<Value>,
        count: usize,
    },
    Export(PathBuf),
    SaveProgress,
    /// Start the private RabbitMQ and Redis (`mqlab sandbox up`).
    SandboxUp,
}

const SUBMIT_TASKS: [&str; 3] = ["tasks.hello", "tasks.add", "tasks.divide"];

impl App {
    pub fn handle(&mut self, ev: Event) -> Vec<Command> {
        match ev {
            Event::Key(k) if k.kind != KeyEventKind::Release => self.key(k),
            Event::Key(_) => vec![],
            Event::Mouse(m) => {
                self.mouse(m);
                vec![]
            }
            Event::Tick => {
                self.spinner = self.spinner.wrapping_add(1);
                // A worker that sent no heartbeat for 10 s (five beats) is gone.
                let now = Utc::now();
                self.workers.retain(|_, (_, _, seen)| (now - *seen).num_seconds() < 10);
                vec![]
            }
            Event::ChecksStarted(ids) => {
                for id in ids {
                    self.checks.insert(id, CheckState::Running);
                }
                vec![]
            }
            Event::ChecksDone(results) => self.checks_done(results),
            Event::Worker(w) => self.worker_event(w),
            Event::WorkerStats { processed, failed, active } => {
                self.worker.processed = processed;
                self.worker.failed = failed;
                self.worker.active = active;
                vec![]
            }
            Event::Submitted(rows) => self.submitted(rows),
            Event::SubmitFailed(e) => {
                self.status = Some(format!("submit failed: {e}"));
                vec![]
            }
            Event::Result(meta) => self.result(meta),
            Event::Depth { ready, consumers, at } => {
                self.badges.amqp = Badge::Up;
                let unacked = self.sample.map(|s| s.unacked).unwrap_or(0);
                self.push_depth(self.seconds_since_start(at), ready, unacked);
                if let Some(s) = &mut self.sample {
                    s.ready = ready;
                    s.consumers = consumers;
                } else {
                    self.sample = Some(Sample { ready, consumers, ..Default::default() });
                }
                if self.worker.state != WorkerState::Running {
                    self.peak_depth_while_down = self.peak_depth_while_down.max(ready + unacked);
                }
                vec![]
            }
            Event::Sample { sample, at } => {
                self.badges.management = Badge::Up;
                let t = self.seconds_since_start(at);
                self.sample = Some(sample);
                self.push_depth(t, sample.ready, sample.unacked);
                self.rates.push_back((t, sample.publish_rate, sample.deliver_rate, sample.ack_rate));
                while self.rates.len() > HISTORY {
                    self.rates.pop_front();
                }
                vec![]
            }
            Event::SourceDown { source, error } => {
                match source {
                    Source::Amqp => self.badges.amqp = Badge::Down,
                    Source::Management => self.badges.management = Badge::Down,
                    Source::Redis => self.badges.redis = Badge::Down,
                }
                tracing::debug!("{source:?} unreachable: {error}");
                if self.track == Track::Local
                    && self.badges.amqp == Badge::Down
                    && self.badges.redis == Badge::Down
                    && !self.offered_sandbox
                {
                    self.offered_sandbox = true;
                    self.status =
                        Some("Nothing answers on this machine: press S to start a private RabbitMQ and Redis (mqlab sandbox up)".into());
                }
                vec![]
            }
            Event::RedisUp => {
                self.badges.redis = Badge::Up;
                vec![]
            }
            Event::Exported(path) => {
                self.status = Some(format!("LEARNINGS.md written to {}", path.display()));
                vec![]
            }
            Event::Celery(ev) => self.celery_event(ev),
            Event::Failed(e) | Event::Notice(e) => {
                self.status = Some(e);
                vec![]
            }
        }
    }

    fn push_depth(&mut self, t: f64, ready: u64, unacked: u64) {
        self.depth.push_back((t, ready, unacked));
        while self.depth.len() > HISTORY {
            self.depth.pop_front();
        }
    }

    fn key(&mut self, k: KeyEvent) -> Vec<Command> {
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && k.code == KeyCode::Char('c') {
            self.quit = true;
            return vec![];
        }
        if self.help {
            self.help = false;
            return vec![];
        }
        if let Some(editor) = &mut self.notes {
            if k.code == KeyCode::Esc || (ctrl && k.code == KeyCode::Char('s')) {
                let text = editor.lines().join("\n");
                let step = self.current().step;
                self.progress.set_note(step, &text);
                self.notes = None;
                self.status = Some(format!("note for step {step} saved"));
                return vec![Command::SaveProgress];
            }
            editor.input(k);
            return vec![];
        }
        if let Some((task, editor)) = &mut self.args_editor {
            match k.code {
                KeyCode::Esc => self.args_editor = None,
                KeyCode::Enter => {
                    let text = editor.lines().join(" ");
                    let task = task.clone();
                    match parse_args(&text) {
                        Ok(_) => {
                            self.submit_args.insert(task.clone(), text);
                            self.args_editor = None;
                            self.status = Some(format!("arguments for {task} set; press its key to send"));
                        }
                        Err(e) => self.status = Some(format!("arguments not valid: {e}")),
                    }
                }
                KeyCode::Tab => {
                    let i = SUBMIT_TASKS.iter().position(|t| t == task).unwrap_or(0);
                    let next = SUBMIT_TASKS[(i + 1) % SUBMIT_TASKS.len()].to_string();
                    *editor = args_textarea(self.submit_args.get(&next).cloned().unwrap_or_default());
                    *task = next;
                }
                _ => {
                    editor.input(k);
                }
            }
            return vec![];
        }
        if self.detail_open {
            if matches!(k.code, KeyCode::Esc | KeyCode::Enter | KeyCode::Char('q')) {
                self.detail_open = false;
            }
            return vec![];
        }
        match k.code {
            KeyCode::Char('q') => self.quit = true,
            KeyCode::Char('?') => self.help = true,
            KeyCode::Tab => self.focus = next_focus(self.focus, 1),
            KeyCode::BackTab => self.focus = next_focus(self.focus, 2),
            KeyCode::Char('1') => self.focus = Focus::Lesson,
            KeyCode::Char('2') => self.focus = Focus::Lab,
            KeyCode::Char('3') => self.focus = Focus::Checklist,
            KeyCode::Char(']') => return self.goto_lesson(self.lesson as isize + 1),
            KeyCode::Char('[') => return self.goto_lesson(self.lesson as isize - 1),
            KeyCode::Char('r') => return self.run_checks(self.lesson_checks()),
            KeyCode::Char('R') => return self.run_checks(self.course.all_checks(self.track)),
            KeyCode::Char('n') => {
                let step = self.current().step;
                let text = self.progress.notes.get(&step).cloned().unwrap_or_default();
                let mut ta = TextArea::new(text.lines().map(str::to_string).collect());
                ta.set_placeholder_text("Your notes for this lesson. Esc saves.");
                ta.move_cursor(ratatui_textarea::CursorMove::Bottom);
                ta.move_cursor(ratatui_textarea::CursorMove::End);
                self.notes = Some(ta);
            }
            KeyCode::Char('T') => {
                self.track = match self.track {
                    Track::K3s => Track::Local,
                    Track::Local => Track::K3s,
                };
                self.progress.track = Some(self.track);
                self.scroll = 0;
                self.status = Some(format!("track: {}", self.track.as_str()));
                return vec![Command::SaveProgress];
            }
            KeyCode::Char('E') => {
                let path = std::env::current_dir().unwrap_or_default().join("LEARNINGS.md");
                return vec![Command::Export(path)];
            }
            KeyCode::Char('w') => return self.start_worker(),
            KeyCode::Char('s') => return self.stop_worker(StopMode::Warm),
            KeyCode::Char('k') => return self.stop_worker(StopMode::Cold),
            KeyCode::Char('W') => {
                self.worker.state = WorkerState::Starting;
                return vec![Command::RestartWorker { concurrency: self.worker.concurrency, acks_late: self.worker.acks_late }];
            }
            KeyCode::Char('+') | KeyCode::Char('=') => return self.set_concurrency(self.worker.concurrency.saturating_mul(2).min(256)),
            KeyCode::Char('-') => return self.set_concurrency((self.worker.concurrency / 2).max(1)),
            KeyCode::Char('a') => {
                self.worker.acks_late = !self.worker.acks_late;
                self.status = Some(format!(
                    "acks {}: {}",
                    if self.worker.acks_late { "late" } else { "early" },
                    if self.worker.acks_late {
                        "a message is acknowledged after its result is stored"
                    } else {
                        "a message is acknowledged when its task starts (Celery's default)"
                    }
                ));
                return self.restart_if_running();
            }
            KeyCode::Char('h') => return self.submit("tasks.hello", 1),
            KeyCode::Char('A') => return self.submit("tasks.add", 1),
            KeyCode::Char('d') => return self.submit("tasks.divide", 1),
            KeyCode::Char('b') => return self.submit("tasks.hello", 20),
            KeyCode::Char('B') => return self.submit("tasks.add", 100),
            KeyCode::Char('e') => {
                let task = "tasks.hello".to_string();
                let text = self.submit_args.get(&task).cloned().unwrap_or_default();
                self.args_editor = Some((task, args_textarea(text)));
            }
            KeyCode::Char('c') => self.focus = Focus::Checklist,
            KeyCode::Char('S') => {
                self.status = Some("starting the sandbox: a private RabbitMQ and Redis (a few seconds)…".into());
                return vec![Command::SandboxUp];
            }
            code => return self.focused_key(code),
        }
        vec![]
    }

    fn focused_key(&mut self, code: KeyCode) -> Vec<Command> {
        match self.focus {
            Focus::Lesson => match code {
                KeyCode::Down | KeyCode::Char('j') => self.scroll = self.scroll.saturating_add(1),
                KeyCode::Up | KeyCode::Char('K') => self.scroll = self.scroll.saturating_sub(1),
                KeyCode::PageDown | KeyCode::Char(' ') => self.scroll = self.scroll.saturating_add(10),
                KeyCode::PageUp => self.scroll = self.scroll.saturating_sub(10),
                KeyCode::Home | KeyCode::Char('g') => self.scroll = 0,
                KeyCode::Right => return self.goto_lesson(self.lesson as isize + 1),
                KeyCode::Left => return self.goto_lesson(self.lesson as isize - 1),
                _ => {}
            },
            Focus::Lab => match code {
                KeyCode::Down | KeyCode::Char('j') => self.selected_task = (self.selected_task + 1).min(self.tasks.len().saturating_sub(1)),
                KeyCode::Up => self.selected_task = self.selected_task.saturating_sub(1),
                KeyCode::Enter if !self.tasks.is_empty() => self.detail_open = true,
                _ => {}
            },
            Focus::Checklist => {
                let n = self.course.checklist().len();
                match code {
                    KeyCode::Down | KeyCode::Char('j') => self.checklist_selected = (self.checklist_selected + 1).min(n.saturating_sub(1)),
                    KeyCode::Up => self.checklist_selected = self.checklist_selected.saturating_sub(1),
                    KeyCode::Char('x') | KeyCode::Enter => {
                        let id = self.course.checklist()[self.checklist_selected].id.clone();
                        let course = self.course.clone();
                        if self.progress.checklist.contains_key(&id) {
                            let _ = self.progress.untick(&course, &id);
                        } else {
                            let _ = self.progress.tick(&course, &id);
                        }
                        return vec![Command::SaveProgress];
                    }
                    _ => {}
                }
            }
        }
        vec![]
    }

    fn mouse(&mut self, m: MouseEvent) {
        match m.kind {
            MouseEventKind::ScrollDown => match self.focus {
                Focus::Lab => self.selected_task = (self.selected_task + 1).min(self.tasks.len().saturating_sub(1)),
                _ => self.scroll = self.scroll.saturating_add(3),
            },
            MouseEventKind::ScrollUp => match self.focus {
                Focus::Lab => self.selected_task = self.selected_task.saturating_sub(1),
                _ => self.scroll = self.scroll.saturating_sub(3),
            },
            _ => {}
        }
    }

    fn goto_lesson(&mut self, idx: isize) -> Vec<Command> {
        let max = self.course.lessons.len() as isize - 1;
        let idx = idx.clamp(0, max) as usize;
        if idx == self.lesson {
            return vec![];
        }
        self.lesson = idx;
        self.scroll = 0;
        self.progress.current_lesson = self.current().step;
        // A lesson's read-only checks run when it is first opened in this session; the task checks
        // (which send tasks) wait for `r`.
        let fresh: Vec<String> =
            self.lesson_checks().into_iter().filter(|id| !self.checks.contains_key(id) && !id.starts_with("tasks.")).collect();
        let mut cmds = vec![Command::SaveProgress];
        if !fresh.is_empty() {
            cmds.extend(self.run_checks(fresh));
        }
        cmds
    }

    pub fn run_checks(&mut self, ids: Vec<String>) -> Vec<Command> {
        if ids.is_empty() {
            self.status = Some("this lesson is read, not checked".into());
            return vec![];
        }
        for id in &ids {
            self.checks.insert(id.clone(), CheckState::Running);
        }
        vec![Command::RunChecks(ids)]
    }

    fn checks_done(&mut self, results: Vec<CheckResult>) -> Vec<Command> {
        for r in &results {
            match r.id.as_str() {
                "kube.api" | "kube.node_ready" | "kube.context" => {
                    self.badges.cluster = if r.status == Status::Pass {
                        Badge::Up
                    } else if r.status == Status::Fail {
                        Badge::Down
                    } else {
                        self.badges.cluster
                    }
                }
                "redis.ping" if r.status == Status::Pass => self.badges.redis = Badge::Up,
                "redis.ping" if r.status == Status::Fail => self.badges.redis = Badge::Down,
                _ => {}
            }
            self.checks.insert(r.id.clone(), CheckState::Done(r.clone()));
        }
        let course = self.course.clone();
        self.progress.track = Some(self.track);
        let newly = self.progress.record_checks(&results, &course, self.track);
        let passed = results.iter().filter(|r| r.status == Status::Pass).count();
        let mut msg = format!("{passed}/{} checks passed", results.len());
        if !newly.is_empty() {
            msg.push_str(&format!("; ticked {}", newly.join(", ")));
        }
        self.status = Some(msg);
        vec![Command::SaveProgress]
    }

    fn start_worker(&mut self) -> Vec<Command> {
        if matches!(self.worker.state, WorkerState::Running | WorkerState::Starting) {
            self.status = Some("the worker is already running".into());
            return vec![];
        }
        self.worker.state = WorkerState::Starting;
        self.worker.last_error = None;
        vec![Command::StartWorker { concurrency: self.worker.concurrency, acks_late: self.worker.acks_late }]
    }

    fn stop_worker(&mut self, mode: StopMode) -> Vec<Command> {
        if !matches!(self.worker.state, WorkerState::Running | WorkerState::Starting) {
            self.status = Some("the worker is not running".into());
            return vec![];
        }
        self.worker.state = WorkerState::Stopping;
        self.status = Some(match mode {
            StopMode::Warm => "stopping: running tasks finish and are acknowledged".into(),
            StopMode::Cold => "killed: unacknowledged messages go back to the queue".into(),
        });
        vec![Command::StopWorker(mode)]
    }

    fn set_concurrency(&mut self, n: usize) -> Vec<Command> {
        self.worker.concurrency = n;
        self.status = Some(format!("concurrency {n}"));
        self.restart_if_running()
    }

    fn restart_if_running(&mut self) -> Vec<Command> {
        if self.worker.state == WorkerState::Running {
            self.worker.state = WorkerState::Starting;
            vec![Command::RestartWorker { concurrency: self.worker.concurrency, acks_late: self.worker.acks_late }]
        } else {
            vec![]
        }
    }

    fn submit(&mut self, task: &str, count: usize) -> Vec<Command> {
        let raw = self.submit_args.get(task).cloned().unwrap_or_default();
        match parse_args(&raw) {
            Ok(args) => vec![Command::Submit { task: task.to_string(), args, count }],
            Err(e) => {
                self.status = Some(format!("arguments for {task} are not valid: {e}"));
                vec![]
            }
        }
    }

    fn submitted(&mut self, rows: Vec<TaskRow>) -> Vec<Command> {
        let n = rows.len();
        if n >= 10 {
            self.bursts.push(BurstWatch {
                ids: rows.iter().map(|r| r.id.clone()).collect(),
                task: rows[0].name.clone(),
                started: rows[0].times.get(&TaskState::Pending).copied().unwrap_or_else(Utc::now),
                concurrency: self.worker.concurrency,
            });
        }
        if let Some(first) = rows.first() {
            self.status = Some(if n == 1 { format!("sent {}{}", first.name, first.args) } else { format!("sent {n} × {}", first.name) });
        }
        for row in rows.into_iter().rev() {
            self.tasks.insert(0, row);
        }
        self.tasks.truncate(MAX_TASKS);
        self.selected_task = 0;
        vec![]
    }

    fn set_state(&mut self, id: &str, state: TaskState, at: DateTime<Utc>) -> bool {
        let Some(row) = self.task_mut(id) else { return false };
        row.times.entry(state).or_insert(at);
        // States only move forward; a late STARTED does not hide a SUCCESS.
        if !row.state.is_ready() || state.is_ready() {
            row.state = state;
        }
        true
    }

    fn worker_event(&mut self, ev: WorkerEvent) -> Vec<Command> {
        match ev {
            WorkerEvent::Connected { .. } => {}
            WorkerEvent::Ready { .. } => {
                let was_down = !matches!(self.worker.state, WorkerState::Running);
                self.worker.state = WorkerState::Running;
                self.worker.last_error = None;
                let pending: Vec<String> = self.tasks.iter().filter(|t| !t.state.is_ready()).map(|t| t.id.clone()).collect();
                if was_down && !pending.is_empty() && self.recovery.is_none() {
                    self.recovery = Some(RecoveryWatch { ids: pending, restarted: Utc::now(), peak_depth: self.peak_depth_while_down });
                }
                self.peak_depth_while_down = 0;
            }
            WorkerEvent::ConnectionLost { error } => {
                self.worker.last_error = Some(format!("broker connection lost: {error}; retrying"));
                self.worker.state = WorkerState::Starting;
            }
            WorkerEvent::BackendLost { error } => self.worker.last_error = Some(format!("Redis unavailable: {error}; results wait")),
            WorkerEvent::BackendRecovered => self.worker.last_error = None,
            WorkerEvent::Stopped { mode } => {
                self.worker.state = if mode == StopMode::Cold { WorkerState::Killed } else { WorkerState::Stopped };
                self.worker.active = 0;
            }
            WorkerEvent::Fatal { error } => {
                self.worker.state = WorkerState::Failed;
                self.status = Some(format!("worker failed: {error}"));
                self.worker.last_error = Some(error);
            }
            WorkerEvent::TaskReceived { id, name, args, kwargs, at, .. } => {
                if !self.set_state(&id, TaskState::Received, at) {
                    // A task sent by someone else (a Python client): it shows up too.
                    let mut times = std::collections::BTreeMap::new();
                    times.insert(TaskState::Received, at);
                    let args = if kwargs == "{}" { args } else { format!("{args} {kwargs}") };
                    self.tasks.insert(
                        0,
                        TaskRow {
                            id,
                            name,
                            args,
                            state: TaskState::Received,
                            times,
                            runtime: None,
                            outcome: None,
                            traceback: None,
                            raw: None,
                            stored: None,
                        },
                    );
                    self.tasks.truncate(MAX_TASKS);
                }
            }
            WorkerEvent::TaskStarted { id, at } => {
                self.set_state(&id, TaskState::Started, at);
            }
            WorkerEvent::TaskSucceeded { id, result, runtime, at } => {
                if self.set_state(&id, TaskState::Success, at)
                    && let Some(row) = self.task_mut(&id)
                {
                    row.runtime = Some(runtime);
                    row.outcome = Some(result);
                }
                return self.after_ready();
            }
            WorkerEvent::TaskFailed { id, exception, traceback, runtime, at } => {
                if self.set_state(&id, TaskState::Failure, at)
                    && let Some(row) = self.task_mut(&id)
                {
                    row.runtime = Some(runtime);
                    row.outcome = Some(exception);
                    row.traceback = traceback;
                }
                return self.after_ready();
            }
            WorkerEvent::TaskRejected { id: Some(id), reason, at, .. } => {
                if self.set_state(&id, TaskState::Rejected, at)
                    && let Some(row) = self.task_mut(&id)
                {
                    row.outcome = Some(reason);
                }
            }
            WorkerEvent::TaskRejected { .. } => {}
            WorkerEvent::TaskRetried { id, exception, at } => {
                if self.set_state(&id, TaskState::Retry, at)
                    && let Some(row) = self.task_mut(&id)
                {
                    row.outcome = Some(format!("retrying: {exception}"));
                }
            }
        }
        vec![]
    }

    /// Task and worker events from any worker (a Python one too) feed the same table.
    fn celery_event(&mut self, ev: CeleryEvent) -> Vec<Command> {
        let at = ev.time();
        let id = ev.str("uuid").unwrap_or("").to_string();
        let text = |k: &str| ev.str(k).unwrap_or("").to_string();
        let runtime = ev.fields.get("runtime").and_then(Value::as_f64).unwrap_or(0.0);
        let mapped = match ev.kind.as_str() {
            "task-received" => {
                WorkerEvent::TaskReceived { id, name: text("name"), args: text("args"), kwargs: text("kwargs"), redelivered: false, at }
            }
            "task-started" => WorkerEvent::TaskStarted { id, at },
            "task-succeeded" => WorkerEvent::TaskSucceeded { id, result: text("result"), runtime, at },
            "task-failed" => {
                WorkerEvent::TaskFailed { id, exception: text("exception"), traceback: ev.str("traceback").map(String::from), runtime, at }
            }
            "task-retried" => WorkerEvent::TaskRetried { id, exception: text("exception"), at },
            "worker-online" | "worker-heartbeat" => {
                let ident = format!("{} {}", text("sw_ident"), text("sw_ver")).trim().to_string();
                let active = ev.fields.get("active").and_then(Value::as_u64).unwrap_or(0);
                self.workers.insert(ev.hostname.clone(), (ident, active, Utc::now()));
                return vec![];
            }
            "worker-offline" => {
                self.workers.remove(&ev.hostname);
                return vec![];
            }
            _ => return vec![],
        };
        self.worker_event(mapped)
    }

    fn result(&mut self, meta: ResultMeta) -> Vec<Command> {
        let now = Utc::now();
        if !self.set_state(&meta.task_id, meta.status, now) {
            return vec![];
        }
        let stored = serde_json::to_value(&meta).ok();
        if let Some(row) = self.task_mut(&meta.task_id) {
            row.stored = stored;
            match meta.status {
                TaskState::Success => {
                    row.outcome.get_or_insert_with(|| pyrepr::repr(&meta.result));
                }
                TaskState::Failure | TaskState::Revoked => {
                    row.outcome.get_or_insert_with(|| meta.exception_text().unwrap_or_default());
                    if row.traceback.is_none() {
                        row.traceback = meta.traceback.clone();
                    }
                }
                _ => {}
            }
            if row.runtime.is_none()
                && meta.status.is_ready()
                && let (Some(s), Some(e)) = (row.times.get(&TaskState::Started), row.times.get(&meta.status))
            {
                row.runtime = Some((*e - *s).num_milliseconds() as f64 / 1000.0);
            }
        }
        if meta.status.is_ready() { self.after_ready() } else { vec![] }
    }

    /// Records experiments whose tasks have all finished.
    fn after_ready(&mut self) -> Vec<Command> {
        let mut cmds = vec![];
        let ready = |app: &App, id: &String| app.tasks.iter().any(|t| &t.id == id && t.state.is_ready());
        let mut done_bursts = vec![];
        for (i, b) in self.bursts.iter().enumerate() {
            if b.ids.iter().all(|id| ready(self, id)) {
                done_bursts.push(i);
            }
        }
        for i in done_bursts.into_iter().rev() {
            let b = self.bursts.remove(i);
            let end = b
                .ids
                .iter()
                .filter_map(|id| self.tasks.iter().find(|t| &t.id == id))
                .filter_map(|t| t.times.iter().filter(|(s, _)| s.is_ready()).map(|(_, t)| *t).max())
                .max()
                .unwrap_or_else(Utc::now);
            let secs = ((end - b.started).num_milliseconds() as f64 / 1000.0).max(0.001);
            let ok = b.ids.iter().filter(|id| self.tasks.iter().any(|t| &t.id == *id && t.state == TaskState::Success)).count();
            let n = b.ids.len();
            self.progress.add_experiment(
                ExperimentKind::Concurrency,
                format!(
                    "Burst of {n} × {} at concurrency {}: {ok} SUCCESS in {secs:.1} s ({:.0} tasks/s)",
                    b.task,
                    b.concurrency,
                    n as f64 / secs
                ),
                json!({"task": b.task, "count": n, "succeeded": ok, "concurrency": b.concurrency, "seconds": secs}),
            );
            self.status = Some(format!("burst of {n} finished in {secs:.1} s"));
            cmds.push(Command::SaveProgress);
        }
        if let Some(r) = &self.recovery
            && r.ids.iter().all(|id| ready(self, id))
        {
            let r = self.recovery.take().unwrap();
            let ok = r.ids.iter().filter(|id| self.tasks.iter().any(|t| &t.id == *id && t.state == TaskState::Success)).count();
            let secs = (Utc::now() - r.restarted).num_milliseconds() as f64 / 1000.0;
            let n = r.ids.len();
            self.progress.add_experiment(
                ExperimentKind::Recovery,
                format!(
                    "Worker was down with {n} task(s) waiting (peak queue depth {}); after the restart {ok} reached SUCCESS within {secs:.1} s, {} lost",
                    r.peak_depth,
                    n - ok
                ),
                json!({"tasks": n, "succeeded": ok, "peak_depth": r.peak_depth, "seconds": secs}),
            );
            self.status = Some(format!("recovery: all {n} waiting tasks finished after the restart"));
            cmds.push(Command::SaveProgress);
        }
        cmds
    }
}

fn next_focus(f: Focus, step: usize) -> Focus {
    let order = [Focus::Lesson, Focus::Lab, Focus::Checklist];
    let i = order.iter().position(|x| *x == f).unwrap_or(0);
    order[(i + step) % order.len()]
}

fn args_textarea(text: String) -> TextArea<'static> {
    let mut ta = TextArea::new(vec![text]);
    ta.set_placeholder_text("arguments as JSON values, comma separated: \"World\"   or   42, 58");
    ta.move_cursor(ratatui_textarea::CursorMove::End);
    ta
}

/// `"World"` or `42, 58` or `[1, 2], {"a": 1}`: the arguments as a JSON array's items.
pub fn parse_args(text: &str) -> Result<Vec<Value>, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(vec![]);
    }
    match serde_json::from_str::<Value>(&format!("[{t}]")) {
        Ok(Value::Array(a)) => Ok(a),
        _ => Err("use JSON values separated by commas, with strings in double quotes".into()),
    }
}

/// A row for a task mqlab just sent.
pub fn row_for(msg: &crate::celery::TaskMessage, queue: &str, at: DateTime<Utc>) -> TaskRow {
    let mut times = std::collections::BTreeMap::new();
    times.insert(TaskState::Pending, at);
    let mut raw = crate::celery::protocol::describe(msg);
    raw["routing_key"] = json!(queue);
    TaskRow {
        id: msg.id.clone(),
        name: msg.task.clone(),
        args: msg.argsrepr.clone(),
        state: TaskState::Pending,
        times,
        runtime: None,
        outcome: None,
        traceback: None,
        raw: Some(raw),
        stored: None,
    }
}
