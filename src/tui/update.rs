//! The state machine: events in, new state and commands out. No I/O here, so it is tested with
//! injected key presses and background events.

use std::path::PathBuf;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEvent, MouseEventKind};
use ratatui_textarea::TextArea;
use serde_json::{Value, json};

use super::keymap::{self, Action};
use super::state::*;
use crate::celery::backend::ResultMeta;
use crate::celery::events::CeleryEvent;
use crate::celery::worker::{StopMode, WorkerEvent};
use crate::celery::{TaskState, pyrepr};
use crate::config::Track;
use crate::lessons::progress::{Change, ExperimentKind};
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
        /// Deliveries the app's worker holds unacknowledged right now.
        unacked: usize,
    },
    /// Tasks were published (with their raw messages).
    Submitted(Vec<TaskRow>),
    SubmitFailed(String),
    Result(Box<ResultMeta>),
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
    /// Management API overview.
    Overview(Overview),
    /// The store saved the app's changes up to `seq`; `progress` is what the file now holds.
    ProgressSynced {
        seq: u64,
        progress: Box<crate::lessons::progress::Progress>,
    },
    /// The endpoints changed (a sandbox came up): the new configuration.
    ConfigChanged(Box<crate::config::Config>),
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
    /// Lines printed by the command run from a lesson.
    ShellOutput(Vec<String>),
    /// That command ended.
    ShellDone(super::state::ShellDone),
    /// From the port-forwards.
    Forward(crate::forward::Event),
    /// The port-forwards ended (stopped, or could not start).
    ForwardsStopped,
    /// Port-forwards served by another process (None: nobody else serves them).
    ForwardsElsewhere(Option<crate::forward::Recorded>),
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
    /// Write the curriculum's Python project into this folder (never overwriting a file).
    Init(PathBuf),
    /// Endpoints changed (a sandbox came up): restart pollers and a running worker on them.
    Reconfigure,
    /// Ask every worker to drop this task (a `revoke` broadcast).
    Revoke(String),
    /// Run a lesson's command (`sh -c`), exactly as the screen showed it, with the learner's
    /// environment and the secrets it names (`run::env_for`).
    RunShell {
        command: String,
    },
    /// Stop the running lesson command (its whole process group).
    CancelShell,
    /// Put this text on the terminal's clipboard (OSC 52).
    Copy(String),
    /// Start mqlab's port-forwards to the cluster (`mqlab forward`).
    StartForwards,
    StopForwards,
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
                self.clock = now;
                for w in self.workers.values_mut() {
                    if (now - w.last_seen).num_seconds() >= 10 {
                        w.online = false;
                    }
                }
                let mut cmds = self.recheck(now);
                cmds.extend(self.record_sends(now, false));
                cmds
            }
            Event::ChecksStarted(ids) => {
                for id in ids {
                    self.checks.insert(id, CheckState::Running);
                }
                vec![]
            }
            Event::ChecksDone(results) => self.checks_done(results),
            Event::Worker(w) => self.worker_event(w),
            Event::WorkerStats { processed, failed, active, unacked } => {
                self.worker.processed = processed;
                self.worker.failed = failed;
                self.worker.active = active;
                self.worker.unacked = unacked;
                vec![]
            }
            Event::Submitted(rows) => self.submitted(rows),
            Event::SubmitFailed(e) => {
                self.status = Some(format!("submit failed: {e}"));
                vec![]
            }
            Event::Result(meta) => self.result(*meta),
            Event::Depth { ready, consumers, at } => {
                let was = self.badges.amqp;
                self.badges.amqp = Badge::Up;
                self.live = Some(LiveDepth { ready, consumers, at });
                let unacked = self.unacked_now().0;
                self.push_depth(self.seconds_since_start(at), ready, unacked);
                self.depth_at = Some(at);
                if self.worker.state != WorkerState::Running {
                    self.peak_depth_while_down = self.peak_depth_while_down.max(ready + unacked);
                }
                for b in &mut self.bursts {
                    b.peak_depth = b.peak_depth.max(ready + unacked);
                    b.ready_peak = b.ready_peak.max(ready);
                }
                if was != Badge::Up {
                    self.recheck_due = true;
                }
                let solving = self.shell.as_ref().is_some_and(|s| s.done.is_none() && s.command.starts_with("mqlab solve "));
                let lab = solving
                    || matches!(self.worker.state, WorkerState::Running | WorkerState::Starting)
                    || !self.bursts.is_empty()
                    || self.recovery.is_some()
                    || self.killed_since_ready;
                match self.broker_watch.reading(ready, unacked, consumers, at, lab) {
                    Some(seen) => self.observed(seen),
                    None => vec![],
                }
            }
            Event::Sample { sample, at } => {
                let was = self.badges.management;
                self.badges.management = Badge::Up;
                let t = self.seconds_since_start(at);
                self.sample = Some(sample);
                self.sample_at = Some(at);
                self.rates.push_back((t, sample.publish_rate, sample.deliver_rate, sample.ack_rate));
                while self.rates.len() > HISTORY {
                    self.rates.pop_front();
                }
                if was != Badge::Up {
                    self.recheck_due = true;
                }
                vec![]
            }
            Event::Overview(o) => {
                self.overview = Some((o, Utc::now()));
                vec![]
            }
            Event::ConfigChanged(cfg) => {
                self.cfg = *cfg;
                self.checks.clear();
                self.text_cache.clear();
                self.badges =
                    Badges { cluster: self.badges.cluster, amqp: Badge::Unknown, management: Badge::Unknown, redis: Badge::Unknown };
                self.live = None;
                self.sample = None;
                self.depth.clear();
                self.rates.clear();
                self.recheck_due = true;
                let mut cmds = vec![Command::Reconfigure];
                if matches!(self.worker.state, WorkerState::Running | WorkerState::Starting) {
                    self.worker.state = WorkerState::Starting;
                    cmds.push(Command::RestartWorker { concurrency: self.worker.concurrency, acks_late: self.worker.acks_late });
                }
                cmds
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
                if self.badges.redis != Badge::Up {
                    self.recheck_due = true;
                }
                self.badges.redis = Badge::Up;
                vec![]
            }
            Event::ProgressSynced { seq, progress } => {
                self.synced(seq, *progress);
                vec![]
            }
            Event::Exported(path) => {
                self.status = Some(format!("LEARNINGS.md written to {}", path.display()));
                vec![]
            }
            Event::Celery(ev) => self.celery_event(ev),
            Event::Forward(ev) => {
                self.forward_event(ev);
                vec![]
            }
            Event::ShellOutput(lines) => {
                if let Some(run) = &mut self.shell {
                    run.lines.extend(lines);
                    while run.lines.len() > super::state::SHELL_LINES {
                        run.lines.pop_front();
                        run.dropped += 1;
                    }
                }
                vec![]
            }
            Event::ShellDone(done) => {
                if let Some(run) = &mut self.shell {
                    let first = run.command.lines().next().unwrap_or("").to_string();
                    self.status = Some(match (&done.code, done.cancelled) {
                        (_, true) => format!("cancelled after {:.1} s: {first}", done.secs),
                        (Some(c), _) => format!("exit {c} after {:.1} s: {first}", done.secs),
                        (None, _) => format!("ended by a signal after {:.1} s: {first}", done.secs),
                    });
                    run.done = Some(done);
                    // A cluster command may have changed what the checks see.
                    self.recheck_due = true;
                    // A solve or a reset wrote the progress file: a save brings back what it holds.
                    if run.command.starts_with("mqlab solve ") || run.command.starts_with("mqlab reset ") {
                        let step = self.current().step;
                        self.change(Change::CurrentLesson(step));
                        return vec![Command::SaveProgress];
                    }
                }
                vec![]
            }
            Event::ForwardsElsewhere(other) => {
                if other.is_some() != self.forwards_elsewhere.is_some() {
                    // The endpoints the checks see may have moved.
                    self.recheck_due = true;
                }
                self.forwards_elsewhere = other;
                vec![]
            }
            Event::ForwardsStopped => {
                if self.forwards.take().is_some_and(|f| !f.list.is_empty()) {
                    self.status = Some("port-forwards stopped".into());
                }
                vec![]
            }
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
        if !self.modals.is_empty() {
            return self.modal_key(k);
        }
        if ctrl && k.code == KeyCode::Char('c') {
            self.quit = true;
            return vec![];
        }
        match keymap::lookup(&k, self.scope()) {
            Some(a) => self.act(a),
            None => vec![],
        }
    }

    /// Keys while a popup is open: the top popup gets them, Esc closes it.
    fn modal_key(&mut self, k: KeyEvent) -> Vec<Command> {
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        let scroll_action = keymap::lookup(&k, keymap::Scope::Global);
        let is_help = matches!(self.modals.last(), Some(Modal::Help { .. }));
        let cmds = match self.modals.last() {
            Some(Modal::Commands { .. }) => self.current().runnable(self.track, &self.cfg),
            _ => vec![],
        };
        let Some(top) = self.modals.last_mut() else { return vec![] };
        match top {
            Modal::Notes(editor) => {
                // Esc, Ctrl-S and Ctrl-C all keep what was typed: nothing is lost.
                if k.code == KeyCode::Esc || (ctrl && matches!(k.code, KeyCode::Char('s') | KeyCode::Char('c'))) {
                    let text = editor.lines().join("\n");
                    let step = self.current().step;
                    self.change(Change::Note { step, text: text.clone() });
                    self.modals.pop();
                    self.status = Some(format!("note for step {step} saved"));
                    return vec![Command::SaveProgress];
                }
                editor.input(k);
            }
            Modal::Args(task, editor) => match k.code {
                KeyCode::Esc => {
                    self.modals.pop();
                }
                KeyCode::Enter => {
                    let text = editor.lines().join(" ");
                    let task = task.clone();
                    match parse_args(&text) {
                        Ok(_) => {
                            self.submit_args.insert(task.clone(), text);
                            self.modals.pop();
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
            },
            Modal::Filter(editor) => {
                match k.code {
                    KeyCode::Esc => {
                        self.task_filter = None;
                        self.modals.pop();
                    }
                    KeyCode::Enter => {
                        self.modals.pop();
                    }
                    _ => {
                        editor.input(k);
                        let f = editor.lines().join("").trim().to_string();
                        self.task_filter = if f.is_empty() { None } else { Some(f) };
                    }
                }
                self.selected_task = 0;
            }
            Modal::Help { scroll } | Modal::Detail { scroll } => {
                let closes = matches!(k.code, KeyCode::Esc | KeyCode::Char('q') | KeyCode::Enter)
                    || (is_help && k.code == KeyCode::Char('?'))
                    || (ctrl && k.code == KeyCode::Char('c'));
                if closes {
                    self.modals.pop();
                    return vec![];
                }
                if let Some(a) = scroll_action {
                    *scroll = scrolled(*scroll, a, 10);
                }
            }
            Modal::Predict { n, input } => {
                let lesson = self.course.lessons[self.lesson].clone();
                let total = lesson.predict.len();
                match k.code {
                    KeyCode::Esc => {
                        self.modals.pop();
                    }
                    // Digits and one decimal point, at most 12 characters.
                    KeyCode::Char(c) if (c.is_ascii_digit() || (c == '.' && !input.contains('.'))) && input.len() < 12 => {
                        input.push(c);
                    }
                    KeyCode::Backspace => {
                        input.pop();
                    }
                    KeyCode::Enter if !input.is_empty() => {
                        let Ok(value) = input.parse::<f64>() else {
                            self.status = Some(format!("{input:?} is not a number"));
                            return vec![];
                        };
                        let (i, step) = (*n, lesson.step);
                        if let Some(p) = lesson.predict.get(i) {
                            self.change(Change::Predict { step, id: p.id.clone(), value });
                        }
                        match (i + 1..total).find(|j| self.progress.outcome(step, &lesson.predict[*j]).is_none()) {
                            Some(next) => {
                                self.modals.pop();
                                self.modals.push(Modal::Predict { n: next, input: String::new() });
                            }
                            None => {
                                self.modals.pop();
                                self.status =
                                    Some("predicted: run the experiment, and the lesson shows what it measured beside your number".into());
                            }
                        }
                        return vec![Command::SaveProgress];
                    }
                    KeyCode::Down | KeyCode::Right if *n + 1 < total => {
                        *n += 1;
                        input.clear();
                    }
                    KeyCode::Up | KeyCode::Left if *n > 0 => {
                        *n -= 1;
                        input.clear();
                    }
                    _ => {}
                }
            }
            Modal::Quiz { n, picked } => {
                let total = self.course.quiz().len();
                let choices = self.course.quiz().get(*n).map(|q| q.choices.len()).unwrap_or(0);
                match k.code {
                    KeyCode::Esc | KeyCode::Char('q') => {
                        self.modals.pop();
                    }
                    KeyCode::Char(c) if picked.is_none() && (c.is_ascii_lowercase() || c.is_ascii_digit()) => {
                        let i = if c.is_ascii_digit() { (c as usize).wrapping_sub('1' as usize) } else { c as usize - 'a' as usize };
                        if i < choices {
                            *picked = Some(i);
                            let n = *n;
                            self.change(Change::QuizAnswer { n, chosen: i });
                            return vec![Command::SaveProgress];
                        }
                        self.status = Some(format!("answer with a letter from a to {}", (b'a' + choices.saturating_sub(1) as u8) as char));
                    }
                    KeyCode::Enter | KeyCode::Right | KeyCode::Char(' ') if picked.is_some() => {
                        if *n + 1 < total {
                            *n += 1;
                            *picked = self.progress.quiz.get(n).map(|a| a.chosen);
                        } else {
                            let right = self.progress.quiz.values().filter(|a| a.correct).count();
                            self.modals.pop();
                            self.status = Some(format!("quiz: {right} of {total} right; E writes your answers into LEARNINGS.md"));
                        }
                    }
                    KeyCode::Left if *n > 0 => {
                        *n -= 1;
                        *picked = self.progress.quiz.get(n).map(|a| a.chosen);
                    }
                    _ => {}
                }
            }
            Modal::Confirm { what, scroll, .. } => match k.code {
                KeyCode::Esc | KeyCode::Char('n') | KeyCode::Char('q') => {
                    self.modals.pop();
                    self.status = Some("nothing was done".into());
                }
                KeyCode::Down | KeyCode::Char('j') => *scroll = scroll.saturating_add(1),
                KeyCode::Up | KeyCode::Char('k') => *scroll = scroll.saturating_sub(1),
                KeyCode::Char('y') | KeyCode::Enter => {
                    let what = what.clone();
                    self.modals.pop();
                    if self.shell_running() {
                        self.status = Some("a command is still running: ! shows it, c there cancels it".into());
                        return vec![];
                    }
                    let command = match &what {
                        Confirm::Solve { step } => format!("mqlab solve {step} --track {}", self.track.as_str()),
                        // The command clears the progress file and undoes what the lesson's
                        // solution left; the app takes the file back when it ends.
                        Confirm::ResetLesson { step } => format!("mqlab reset --lesson {step} --yes"),
                    };
                    self.modals.push(Modal::Output { scroll: 0, follow: true });
                    self.shell = Some(super::state::ShellRun {
                        command: command.clone(),
                        lines: Default::default(),
                        started: self.clock,
                        dropped: 0,
                        done: None,
                    });
                    return vec![Command::SaveProgress, Command::RunShell { command }];
                }
                _ => {}
            },
            Modal::Commands { selected } => match k.code {
                KeyCode::Esc | KeyCode::Char('q') => {
                    self.modals.pop();
                }
                KeyCode::Down | KeyCode::Char('j') => *selected = (*selected + 1).min(cmds.len().saturating_sub(1)),
                KeyCode::Up | KeyCode::Char('k') => *selected = selected.saturating_sub(1),
                KeyCode::Char('y') => {
                    let Some(c) = cmds.get(*selected) else { return vec![] };
                    self.status = Some("copied to the clipboard (OSC 52: your terminal must allow it)".into());
                    let text = c.command.clone();
                    self.modals.pop();
                    return vec![Command::Copy(text)];
                }
                KeyCode::Enter => {
                    let Some(c) = cmds.get(*selected).cloned() else { return vec![] };
                    if self.shell_running() {
                        self.status = Some("a command is still running: ! shows it, c there cancels it".into());
                        return vec![];
                    }
                    self.modals.pop();
                    self.modals.push(Modal::Output { scroll: 0, follow: true });
                    self.shell = Some(super::state::ShellRun {
                        command: c.command.clone(),
                        lines: Default::default(),
                        started: self.clock,
                        dropped: 0,
                        done: None,
                    });
                    return vec![Command::RunShell { command: c.command }];
                }
                _ => {}
            },
            Modal::Output { scroll, follow } => {
                let running = self.shell.as_ref().is_some_and(|s| s.done.is_none()); // (fields: `top` borrows the modals)
                match k.code {
                    KeyCode::Char('c') if running => {
                        self.status = Some("cancelling…".into());
                        return vec![Command::CancelShell];
                    }
                    KeyCode::Esc | KeyCode::Char('q') | KeyCode::Enter | KeyCode::Char('c') => {
                        self.modals.pop();
                    }
                    _ => {
                        if let Some(a) = scroll_action {
                            *scroll = scrolled(*scroll, a, 10);
                            *follow = a == Action::Bottom;
                        }
                    }
                }
            }
            Modal::Start => {
                return match k.code {
                    KeyCode::Char('k') => self.choose_track(Track::K3s, false),
                    KeyCode::Char('l') => self.choose_track(Track::Local, false),
                    KeyCode::Char('s') if self.sandbox_available => self.choose_track(Track::Local, true),
                    KeyCode::Esc | KeyCode::Enter => self.choose_track(self.track, false),
                    KeyCode::Char('q') => {
                        self.quit = true;
                        vec![]
                    }
                    _ => vec![],
                };
            }
        }
        vec![]
    }

    /// The first-launch choice: saved at once.
    fn choose_track(&mut self, track: Track, sandbox: bool) -> Vec<Command> {
        self.modals.retain(|m| !matches!(m, Modal::Start));
        self.track = track;
        self.change(Change::Track(track));
        self.text_cache.clear();
        self.recheck_due = true;
        let mut cmds = vec![Command::SaveProgress];
        self.status = Some(format!("track: {} (T switches)", track.as_str()));
        if sandbox {
            self.status = Some("starting the sandbox: a private RabbitMQ and Redis (a few seconds)…".into());
            cmds.push(Command::SandboxUp);
        }
        cmds
    }

    /// Carries out what a key asked for.
    pub fn act(&mut self, a: Action) -> Vec<Command> {
        let scope = self.scope();
        match a {
            Action::Quit => self.quit = true,
            Action::Help => self.modals.push(Modal::Help { scroll: 0 }),
            Action::NextPane => self.cycle_place(1),
            Action::PrevPane => self.cycle_place(-1),
            Action::ScreenLesson => {
                self.focus = Focus::Lesson;
                self.pane = Pane::Text;
                self.change(Change::Screen(self.focus.name().into()));
                return vec![Command::SaveProgress];
            }
            Action::ScreenLab | Action::ScreenChecklist => {
                self.focus = if a == Action::ScreenLab { Focus::Lab } else { Focus::Checklist };
                self.change(Change::Screen(self.focus.name().into()));
                return vec![Command::SaveProgress];
            }
            Action::Hint => {
                let failing = self.current().checks(self.track).iter().find_map(|id| match self.checks.get(id) {
                    Some(CheckState::Done(r)) if r.status == Status::Fail => Some(r.clone()),
                    _ => None,
                });
                match failing {
                    None => self.status = Some("no check of this lesson fails now: nothing to hint (r runs them again)".into()),
                    Some(r) => {
                        let rungs = crate::probes::ladder(&r, &self.cfg).len();
                        self.hint_level = (self.hint_level + 1).min(rungs);
                        self.status = Some(format!("hint {} of {rungs} for {} (i for the next)", self.hint_level, r.id));
                    }
                }
            }
            Action::Predict => {
                let lesson = self.current();
                if lesson.predict.is_empty() {
                    self.status = Some(format!("lesson {} asks for no prediction", lesson.step));
                    return vec![];
                }
                // The first question not answered yet.
                let step = lesson.step;
                let first = lesson.predict.iter().position(|p| self.progress.outcome(step, p).is_none()).unwrap_or(0);
                self.modals.push(Modal::Predict { n: first, input: String::new() });
            }
            Action::Quiz => {
                let n = self.course.quiz().len();
                if n == 0 {
                    self.status = Some("this course has no quiz".into());
                    return vec![];
                }
                // Where the learner left off: the first question not answered yet.
                let first = (0..n).find(|i| !self.progress.quiz.contains_key(i)).unwrap_or(0);
                self.modals.push(Modal::Quiz { n: first, picked: None });
            }
            Action::ShowCalls => {
                self.show_calls = !self.show_calls;
                self.status = Some(if self.show_calls {
                    "each check shows the call it made (v hides them)".into()
                } else {
                    "calls hidden (v shows them)".into()
                });
            }
            Action::Solve => {
                let step = self.current().step;
                let steps = self.current().solution(self.track);
                let mut lines = vec![
                    format!(
                        "Lesson {step}'s solution on the {} track: the lesson's own commands, each shown before it runs (`mqlab solve {step}`), then its checks. Programs it starts (your Python worker) keep running; U resets the lesson.",
                        self.track.as_str()
                    ),
                    String::new(),
                ];
                if steps.is_empty() {
                    lines.push("This lesson has nothing to run: its checks run now.".into());
                }
                for (i, s) in steps.iter().enumerate() {
                    match s.plan(&self.cfg) {
                        Ok(p) => {
                            lines.push(format!("{}. {}", i + 1, p.say));
                            lines.extend(p.shown().into_iter().map(|l| format!("   {l}")));
                        }
                        Err(e) => lines.push(format!("{}. {} — cannot run: {e}", i + 1, s.say)),
                    }
                }
                self.modals.push(Modal::Confirm { what: Confirm::Solve { step }, lines, scroll: 0 });
            }
            Action::ResetLesson => {
                let step = self.current().step;
                let todo = self.current().to_do(self.track, &self.progress);
                let lines = vec![
                    format!("Reset lesson {step} · {}?", self.current().title_for(self.track)),
                    String::new(),
                    "Cleared: its earned checks, its experiments, its note and its checklist ticks.".into(),
                    "Undone: programs its solution left running are stopped; queues it declared are deleted (only those).".into(),
                    "Kept: every other lesson's records, your project files.".into(),
                    String::new(),
                    if todo.is_empty() { "It is done now.".into() } else { format!("Still to do now: {}", todo.join(", ")) },
                ];
                self.modals.push(Modal::Confirm { what: Confirm::ResetLesson { step }, lines, scroll: 0 });
            }
            Action::NextLesson => return self.goto_lesson(self.lesson as isize + 1),
            Action::PrevLesson => return self.goto_lesson(self.lesson as isize - 1),
            Action::Down | Action::Up | Action::PageDown | Action::PageUp | Action::Top | Action::Bottom => self.move_in(scope, a),
            Action::Left | Action::Right => {
                if scope == keymap::Scope::Lesson && self.pane == Pane::Text && self.lesson_wide_code {
                    self.hscroll = if a == Action::Right { self.hscroll + 8 } else { self.hscroll.saturating_sub(8) };
                    self.hscroll = self.hscroll.min(self.lesson_max_hscroll);
                } else {
                    let d = if a == Action::Right { 1 } else { -1 };
                    return self.goto_lesson(self.lesson as isize + d);
                }
            }
            Action::RunChecks => return self.run_checks(self.lesson_checks()),
            Action::RunAllChecks => return self.run_checks(self.course.all_checks(self.track)),
            Action::SwitchTrack => {
                self.track = match self.track {
                    Track::K3s => Track::Local,
                    Track::Local => Track::K3s,
                };
                self.change(Change::Track(self.track));
                self.checks.clear();
                self.scroll = 0;
                self.hscroll = 0;
                self.recheck_due = true;
                self.status = Some(format!("track: {}", self.track.as_str()));
                return vec![Command::SaveProgress];
            }
            Action::Notes => {
                let step = self.current().step;
                let text = self.progress.notes.get(&step).cloned().unwrap_or_default();
                let mut ta = TextArea::new(text.lines().map(str::to_string).collect());
                ta.set_placeholder_text("Your notes for this lesson. Esc saves.");
                ta.move_cursor(ratatui_textarea::CursorMove::Bottom);
                ta.move_cursor(ratatui_textarea::CursorMove::End);
                self.modals.push(Modal::Notes(ta));
            }
            Action::Export => {
                return vec![Command::Export(self.cfg.project_dir.join("LEARNINGS.md"))];
            }
            Action::WorkerStart => return self.start_worker(),
            Action::WorkerStop => return self.stop_worker(StopMode::Warm),
            Action::WorkerKill => return self.stop_worker(StopMode::Cold),
            Action::WorkerRestart => {
                self.worker.state = WorkerState::Starting;
                return vec![Command::RestartWorker { concurrency: self.worker.concurrency, acks_late: self.worker.acks_late }];
            }
            Action::ConcurrencyUp => return self.set_concurrency(self.worker.concurrency.saturating_mul(2).min(256)),
            Action::ConcurrencyDown => return self.set_concurrency((self.worker.concurrency / 2).max(1)),
            Action::ToggleAcks => {
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
            Action::SubmitHello => return self.submit("tasks.hello", 1),
            Action::SubmitAdd => return self.submit("tasks.add", 1),
            Action::SubmitDivide => return self.submit("tasks.divide", 1),
            Action::BurstHello => return self.submit("tasks.hello", 20),
            Action::BurstAdd => return self.submit("tasks.add", 100),
            Action::EditArgs => {
                let task = "tasks.hello".to_string();
                let text = self.submit_args.get(&task).cloned().unwrap_or_default();
                self.modals.push(Modal::Args(task, args_textarea(text)));
            }
            Action::Open => {
                if self.selected().is_some() {
                    self.modals.push(Modal::Detail { scroll: 0 });
                }
            }
            Action::Filter => {
                let mut ta = TextArea::new(vec![self.task_filter.clone().unwrap_or_default()]);
                ta.set_placeholder_text("state or task name: failure, started, lost, add…");
                ta.move_cursor(ratatui_textarea::CursorMove::End);
                self.modals.push(Modal::Filter(ta));
            }
            Action::Follow => {
                self.follow = !self.follow;
                if self.follow {
                    self.selected_task = 0;
                }
                self.status = Some(if self.follow { "following the newest task".into() } else { "not following".into() });
            }
            Action::Revoke => {
                let Some(t) = self.selected() else { return vec![] };
                if t.state.is_ready() || t.lost {
                    self.status = Some(format!("{} already finished ({}): nothing to revoke", t.name, t.state.as_str()));
                    return vec![];
                }
                let id = t.id.clone();
                self.status = Some(format!("sending a revoke for {} to the workers online…", short_id(&id)));
                return vec![Command::Revoke(id)];
            }
            Action::Tick => {
                let Some(item) = self.course.checklist().get(self.checklist_selected).map(|i| i.id.clone()) else { return vec![] };
                let ticked_here = self
                    .course
                    .checklist()
                    .into_iter()
                    .find(|i| i.id == item)
                    .is_some_and(|i| self.progress.tick_for(i, self.track).is_some());
                if ticked_here {
                    self.change(Change::Untick(item));
                } else {
                    self.change(Change::Tick(item));
                }
                return vec![Command::SaveProgress];
            }
            Action::Sandbox => {
                self.status = Some("starting the sandbox: a private RabbitMQ and Redis (a few seconds)…".into());
                return vec![Command::SandboxUp];
            }
            Action::Init => {
                return vec![Command::Init(self.cfg.project_dir.clone())];
            }
            Action::RunCommand => {
                if self.shell_running() {
                    self.modals.push(Modal::Output { scroll: 0, follow: true });
                    return vec![];
                }
                if self.current().runnable(self.track, &self.cfg).is_empty() {
                    self.status = Some("this step has no command to run from here".into());
                    return vec![];
                }
                self.modals.push(Modal::Commands { selected: 0 });
                return vec![];
            }
            Action::Forwards => {
                if let Some(other) = &self.forwards_elsewhere
                    && self.forwards.is_none()
                {
                    self.status = Some(format!(
                        "port-forwards are served by `mqlab forward` (pid {}); this app uses them. Stop them there (Ctrl-C in its terminal)",
                        other.pid
                    ));
                    return vec![];
                }
                if self.forwards.is_some() {
                    self.status = Some("stopping the port-forwards…".into());
                    return vec![Command::StopForwards];
                }
                if self.track == Track::Local {
                    self.status = Some("port-forwards are for the cluster track: T switches to it".into());
                    return vec![];
                }
                self.forwards = Some(Default::default());
                self.status = Some(format!("starting port-forwards to the cluster (namespace {})…", self.cfg.namespace));
                return vec![Command::StartForwards];
            }
        }
        vec![]
    }

    fn forward_event(&mut self, ev: crate::forward::Event) {
        use crate::forward::{Event as F, State};
        match ev {
            F::Listening(list) => {
                let ports: Vec<String> = list
                    .iter()
                    .map(|f| {
                        let moved = if f.local != f.target.port { format!(" ({} was taken)", f.target.port) } else { String::new() };
                        format!("{} 127.0.0.1:{}{moved}", f.target.name, f.local)
                    })
                    .collect();
                self.status = Some(format!("port-forwards listening: {} (F stops them)", ports.join(", ")));
                self.forwards = Some(super::state::Forwards { list });
            }
            F::State { name, state } => {
                let Some(fw) = self.forwards.as_mut() else { return };
                let Some(f) = fw.list.iter_mut().find(|f| f.target.name == name) else { return };
                let was_down = matches!(f.state, State::Down { .. });
                match &state {
                    State::Down { error } if !was_down => self.status = Some(format!("forward {name}: {error}; retrying")),
                    State::Up { pod } if was_down => self.status = Some(format!("forward {name}: up again, to pod {pod}")),
                    _ => {}
                }
                if matches!(state, State::Up { .. }) {
                    self.recheck_due = true;
                }
                f.state = state;
            }
            F::Failed(e) => {
                self.forwards = None;
                self.status = Some(format!("port-forwards: {e}"));
            }
            F::Elsewhere(other) => {
                self.forwards = None;
                self.status = Some(format!("port-forwards are already served by `mqlab forward` (pid {}); this app uses them", other.pid));
                self.forwards_elsewhere = Some(other);
            }
        }
    }

    /// Tab order: lesson text, its checks, the live panel (when shown), the lab, the checklist.
    fn cycle_place(&mut self, d: isize) {
        let mut places = vec![(Focus::Lesson, Pane::Text), (Focus::Lesson, Pane::Checks)];
        if self.wide {
            places.push((Focus::Lesson, Pane::Live));
        }
        places.extend([(Focus::Lab, Pane::Text), (Focus::Checklist, Pane::Text)]);
        let here = places.iter().position(|p| p.0 == self.focus && (p.0 != Focus::Lesson || p.1 == self.pane)).unwrap_or(0) as isize;
        let n = places.len() as isize;
        let (f, p) = places[((here + d) % n + n) as usize % places.len()];
        self.focus = f;
        self.pane = p;
    }

    fn move_in(&mut self, scope: keymap::Scope, a: Action) {
        use keymap::Scope;
        match scope {
            Scope::Tasks => {
                let n = self.visible_tasks().len();
                let i = match a {
                    Action::Down => self.selected_task + 1,
                    Action::Up => self.selected_task.saturating_sub(1),
                    Action::PageDown => self.selected_task + 10,
                    Action::PageUp => self.selected_task.saturating_sub(10),
                    Action::Top => 0,
                    _ => usize::MAX,
                };
                self.selected_task = i.min(n.saturating_sub(1));
                self.follow = self.selected_task == 0 && a == Action::Top;
            }
            Scope::Checklist => {
                let n = self.course.checklist().len();
                let i = match a {
                    Action::Down => self.checklist_selected + 1,
                    Action::Up => self.checklist_selected.saturating_sub(1),
                    Action::PageDown => self.checklist_selected + 5,
                    Action::PageUp => self.checklist_selected.saturating_sub(5),
                    Action::Top => 0,
                    _ => usize::MAX,
                };
                self.checklist_selected = i.min(n.saturating_sub(1));
            }
            _ if self.pane == Pane::Checks => self.checks_scroll = scrolled(self.checks_scroll, a, 5),
            _ => {
                let page = self.lesson_view.saturating_sub(2).max(1);
                self.scroll = scrolled(self.scroll, a, page);
                let max = self.lesson_lines.saturating_sub(self.lesson_view);
                if self.lesson_lines > 0 {
                    self.scroll = self.scroll.min(max);
                }
            }
        }
    }

    fn mouse(&mut self, m: MouseEvent) {
        let a = match m.kind {
            MouseEventKind::ScrollDown => Action::Down,
            MouseEventKind::ScrollUp => Action::Up,
            _ => return,
        };
        if let Some(Modal::Help { scroll } | Modal::Detail { scroll }) = self.modals.last_mut() {
            *scroll = if a == Action::Down { scroll.saturating_add(3) } else { scroll.saturating_sub(3) };
            return;
        }
        let scope = self.scope();
        for _ in 0..3 {
            self.move_in(scope, a);
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
        self.hint_level = 0;
        self.change(Change::CurrentLesson(self.current().step));
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
        for id in &ids {
            self.quiet_checks.remove(id);
        }
        if ids.is_empty() {
            self.status = Some("this lesson is read, not checked".into());
            return vec![];
        }
        let on = self.endpoints_key();
        for id in &ids {
            self.checks.insert(id.clone(), CheckState::Running);
            self.checks_asked_on.insert(id.clone(), on.clone());
        }
        vec![Command::RunChecks(ids)]
    }

    /// A worker has just come up: the checks run again now, and again while the queue's consumer
    /// or the worker's heartbeat is not seen yet (for up to 15 s).
    fn expect_consumer(&mut self) {
        self.recheck_due = true;
        self.consumer_expected_until = Some(self.clock + chrono::Duration::seconds(15));
    }

    /// The track and endpoints the checks test now.
    fn endpoints_key(&self) -> String {
        format!("{}|{}|{}|{}", self.track.as_str(), self.cfg.broker_url, self.cfg.result_backend, self.cfg.management_url)
    }

    fn checks_done(&mut self, results: Vec<CheckResult>) -> Vec<Command> {
        // Results of checks asked on another track or other endpoints are not this state's.
        let on = self.endpoints_key();
        let results: Vec<CheckResult> =
            results.into_iter().filter(|r| self.checks_asked_on.get(&r.id).is_none_or(|asked| *asked == on)).collect();
        if self.consumer_expected_until.is_some_and(|t| self.clock < t)
            && results.iter().any(|r| matches!(r.id.as_str(), "mgmt.celery_queue" | "celery.py_worker") && r.status == Status::Fail)
        {
            self.recheck_due = true;
        }
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
        // Passes are earned by the lessons the learner has reached that list them.
        let upto = self.current().step;
        let lessons: Vec<u32> = self.course.lessons.iter().map(|l| l.step).filter(|s| *s <= upto).collect();
        let newly = self.change(Change::Checks { results: results.clone(), track: self.track, lessons });
        // Checks re-run by themselves report in the panel, not over the status line (unless
        // they tick something).
        let removed: Vec<bool> = results.iter().map(|r| self.quiet_checks.remove(&r.id)).collect();
        let quiet = !removed.is_empty() && removed.iter().all(|q| *q);
        if quiet && newly.is_empty() {
            return vec![Command::SaveProgress];
        }
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
                peak_depth: self.depth_now(),
                ready_peak: self.live.map(|l| l.ready).unwrap_or(0),
                interrupted: false,
            });
            // Bursts are bounded: the oldest unfinished ones are dropped.
            if self.bursts.len() > 20 {
                self.bursts.remove(0);
            }
        } else {
            let first = rows.first().and_then(|r| r.times.get(&TaskState::Pending).copied()).unwrap_or_else(Utc::now);
            self.sends.first.get_or_insert(first);
            self.sends.ids.extend(rows.iter().map(|r| r.id.clone()));
            self.sends.names.extend(rows.iter().map(|r| r.name.clone()));
        }
        if let Some(first) = rows.first() {
            self.status = Some(if n == 1 { format!("sent {}{}", first.name, first.args) } else { format!("sent {n} × {}", first.name) });
        }
        for row in rows.into_iter().rev() {
            self.tasks.insert(0, row);
        }
        self.tasks.truncate(MAX_TASKS);
        if self.follow {
            self.selected_task = 0;
        }
        vec![]
    }

    /// Changes the progress here and queues the change for the store (which merges it with
    /// what other writers saved).
    pub fn change(&mut self, c: Change) -> Vec<String> {
        let newly = self.progress.apply(&self.course, &c);
        self.pending.push(c);
        newly
    }

    /// Records what the broker showed of an experiment the lab did not run itself.
    fn observed(&mut self, seen: crate::lessons::observe::Observed) -> Vec<Command> {
        use crate::lessons::observe::Observed;
        let (kind, summary, mut figures) = seen.experiment();
        // A little of the queue before it began, for the chart.
        let start = match seen {
            Observed::Burst { .. } => self.seconds_since_start(seen.from()) - 1.0,
            Observed::Recovery { .. } => (self.seconds_since_start(seen.from()) - 2.0).max(0.0),
        };
        if let Observed::Recovery { down_seconds, .. } = seen {
            figures["down_at"] = json!(self.seconds_since_start(seen.from()) - start);
            figures["up_at"] = json!(self.seconds_since_start(seen.from()) + down_seconds - start);
        }
        let series = self.series_since(start);
        self.record_series(kind, summary, figures, series);
        self.status = Some(seen.status());
        vec![Command::SaveProgress]
    }

    fn record(&mut self, kind: ExperimentKind, summary: String, figures: Value) {
        self.record_series(kind, summary, figures, vec![]);
    }

    fn record_series(&mut self, kind: ExperimentKind, summary: String, figures: Value, series: Vec<[f64; 3]>) {
        let mut e = crate::lessons::progress::experiment(kind, summary, figures);
        e.series = series;
        // The lesson the learner is on: `mqlab reset --lesson N` clears what was done there.
        e.lesson = Some(self.current().step);
        self.change(Change::Experiment(e));
    }

    /// The depth readings from `from` (seconds since the app started) on, relative to `from`,
    /// thinned to at most `MAX_SERIES` points.
    fn series_since(&self, from: f64) -> Vec<[f64; 3]> {
        let pts: Vec<[f64; 3]> = self.depth.iter().filter(|d| d.0 >= from).map(|d| [d.0 - from, d.1 as f64, d.2 as f64]).collect();
        let max = crate::lessons::progress::MAX_SERIES;
        if pts.len() <= max {
            return pts;
        }
        let step = pts.len().div_ceil(max);
        pts.into_iter().step_by(step).collect()
    }

    /// The changes to save now, numbered; kept until the store confirms them.
    pub fn take_pending(&mut self) -> Option<(u64, Vec<Change>)> {
        if self.pending.is_empty() {
            return None;
        }
        self.save_seq += 1;
        let batch = std::mem::take(&mut self.pending);
        self.inflight.push_back((self.save_seq, batch.clone()));
        Some((self.save_seq, batch))
    }

    /// The store saved batch `seq`: what it holds now (with other writers' work) is the
    /// progress, plus the changes not saved yet.
    fn synced(&mut self, seq: u64, saved: crate::lessons::progress::Progress) {
        while self.inflight.front().is_some_and(|(n, _)| *n <= seq) {
            self.inflight.pop_front();
        }
        self.progress = saved;
        let replay: Vec<Change> = self.inflight.iter().flat_map(|(_, b)| b.iter().cloned()).chain(self.pending.iter().cloned()).collect();
        for c in &replay {
            self.progress.apply(&self.course, c);
        }
    }

    /// Keeps only the outcomes an experiment still waits on.
    fn forget_outcomes(&mut self) {
        let mut keep: std::collections::HashSet<&String> = self.sends.ids.iter().collect();
        for b in &self.bursts {
            keep.extend(b.ids.iter());
        }
        if let Some(r) = &self.recovery {
            keep.extend(r.ids.iter());
        }
        let keep: std::collections::HashSet<String> = keep.into_iter().cloned().collect();
        self.outcomes.retain(|id, _| keep.contains(id));
    }

    /// Re-runs the lesson's read-only checks when what they test changed, at most once a second.
    fn recheck(&mut self, now: DateTime<Utc>) -> Vec<Command> {
        if !self.recheck_due || self.last_recheck.is_some_and(|t| (now - t).num_milliseconds() < 1000) {
            return vec![];
        }
        self.recheck_due = false;
        self.last_recheck = Some(now);
        let ids: Vec<String> = self
            .lesson_checks()
            .into_iter()
            .filter(|id| !id.starts_with("tasks.") && !matches!(self.checks.get(id), Some(CheckState::Running)))
            .collect();
        if ids.is_empty() {
            return vec![];
        }
        let on = self.endpoints_key();
        for id in &ids {
            self.checks.insert(id.clone(), CheckState::Running);
            self.checks_asked_on.insert(id.clone(), on.clone());
        }
        self.quiet_checks.extend(ids.iter().cloned());
        vec![Command::RunChecks(ids)]
    }

    /// Single sends are recorded together: once all of them finished, or (`force`) on leaving.
    pub fn record_sends(&mut self, now: DateTime<Utc>, force: bool) -> Vec<Command> {
        if self.sends.ids.is_empty() {
            return vec![];
        }
        let ended = |id: &String| self.outcomes.get(id).copied();
        let done = self.sends.ids.iter().all(|id| ended(id).is_some());
        let quiet = self.sends.first.is_some_and(|f| (now - f).num_seconds() >= 5);
        if !(force || done && quiet) {
            return vec![];
        }
        let n = self.sends.ids.len();
        let mut by_task: BTreeMap<&str, usize> = BTreeMap::new();
        for name in &self.sends.names {
            *by_task.entry(name.as_str()).or_default() += 1;
        }
        let ok = self.sends.ids.iter().filter(|id| matches!(ended(id), Some(Outcome::Done(TaskState::Success, _)))).count();
        let failed = self.sends.ids.iter().filter(|id| matches!(ended(id), Some(Outcome::Done(TaskState::Failure, _)))).count();
        let pending = n - ok - failed;
        let names: Vec<String> = by_task.iter().map(|(t, c)| format!("{c} × {t}")).collect();
        self.record(
            ExperimentKind::TasksSubmitted,
            format!(
                "Sent {} one at a time from the lab: {ok} SUCCESS, {failed} FAILURE{}",
                names.join(", "),
                if pending > 0 { format!(", {pending} not finished") } else { String::new() }
            ),
            json!({"count": n, "succeeded": ok, "failed": failed, "unfinished": pending, "source": "lab"}),
        );
        self.sends = SendTally::default();
        vec![Command::SaveProgress]
    }

    fn set_state(&mut self, id: &str, state: TaskState, at: DateTime<Utc>) -> bool {
        if state.is_ready() || state == TaskState::Rejected {
            self.outcomes.entry(id.to_string()).or_insert(Outcome::Done(state, at));
            if self.outcomes.len() > 4 * MAX_TASKS {
                self.forget_outcomes();
            }
        }
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
                self.expect_consumer();
                let was_down = !matches!(self.worker.state, WorkerState::Running);
                let was_killed = std::mem::take(&mut self.killed_since_ready);
                self.worker.state = WorkerState::Running;
                self.worker.last_error = None;
                // The tasks this app sent, or its worker held, that have not finished (other
                // workers' tasks seen through events are theirs to recover).
                let own = self.own_hostname.clone();
                let pending: Vec<String> = self
                    .tasks
                    .iter()
                    .filter(|t| !t.state.is_ready() && !t.lost && (t.raw.is_some() || t.worker.as_ref() == Some(&own)))
                    .map(|t| t.id.clone())
                    .collect();
                if was_down && !pending.is_empty() && self.recovery.is_none() {
                    let in_flight_at_kill = std::mem::take(&mut self.killed_in_flight);
                    self.recovery = Some(RecoveryWatch {
                        ids: pending,
                        restarted: Utc::now(),
                        // The messages the kill put back were in the queue, even when no reading
                        // (every 0.5 s) fell in a short outage.
                        peak_depth: self.peak_depth_while_down.max(in_flight_at_kill as u64),
                        in_flight_at_kill,
                        killed: was_killed,
                        acks_late: if was_killed { self.killed_acks_late.take() } else { None },
                        down_at: self.down_at,
                        up_at: self.depth.back().map(|d| d.0).unwrap_or(0.0),
                    });
                }
                self.peak_depth_while_down = 0;
            }
            WorkerEvent::ConnectionLost { error } => {
                self.worker.last_error = Some(format!("broker connection lost: {error}; retrying"));
                self.worker.state = WorkerState::Starting;
            }
            WorkerEvent::BackendLost { error } => self.worker.last_error = Some(format!("Redis unavailable: {error}; results wait")),
            WorkerEvent::BackendRecovered => self.worker.last_error = None,
            WorkerEvent::BackendRefused { task_id, error } => {
                self.worker.last_error = Some(format!("Redis refused the result of {}: {error}", short_id(&task_id)));
            }
            WorkerEvent::Stopped { mode } => {
                // On the depth readings' clock: the outage starts after the last reading.
                self.down_at = Some(self.depth.back().map(|d| d.0).unwrap_or(0.0));
                self.worker.state = if mode == StopMode::Cold { WorkerState::Killed } else { WorkerState::Stopped };
                self.worker.active = 0;
                self.worker.unacked = 0;
                self.recheck_due = true;
                for b in &mut self.bursts {
                    b.interrupted = true;
                }
                if mode == StopMode::Cold {
                    self.killed_since_ready = true;
                    return self.after_kill();
                }
            }
            WorkerEvent::Fatal { error } => {
                self.worker.state = WorkerState::Failed;
                self.status = Some(format!("worker failed: {error}"));
                self.worker.last_error = Some(error);
            }
            WorkerEvent::TaskReceived { id, name, args, kwargs, at, .. } => {
                // Received by this app's worker (events from other workers name theirs after).
                let own = self.own_hostname.clone();
                if let Some(row) = self.task_mut(&id)
                    && row.worker.is_none()
                {
                    row.worker = Some(own);
                }
                if !self.set_state(&id, TaskState::Received, at) {
                    // A task sent by someone else (a Python client): it shows up too.
                    let mut times = std::collections::BTreeMap::new();
                    times.insert(TaskState::Received, at);
                    let args = if kwargs == "{}" { args } else { format!("{args} {kwargs}") };
                    self.tasks.insert(
                        0,
                        TaskRow {
                            lost: false,
                            worker: None,
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
            WorkerEvent::TaskRevoked { id, at } => {
                self.set_state(&id, TaskState::Revoked, at);
                return self.after_ready();
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
        if ev.kind.starts_with("task-") {
            self.events_from.insert(ev.hostname.clone());
        }
        let mapped = match ev.kind.as_str() {
            "task-received" => WorkerEvent::TaskReceived {
                id: id.clone(),
                name: text("name"),
                args: text("args"),
                kwargs: text("kwargs"),
                redelivered: false,
                at,
            },
            "task-started" => WorkerEvent::TaskStarted { id: id.clone(), at },
            "task-succeeded" => WorkerEvent::TaskSucceeded { id: id.clone(), result: text("result"), runtime, at },
            "task-failed" => WorkerEvent::TaskFailed {
                id: id.clone(),
                exception: text("exception"),
                traceback: ev.str("traceback").map(String::from),
                runtime,
                at,
            },
            "task-retried" => WorkerEvent::TaskRetried { id: id.clone(), exception: text("exception"), at },
            "task-revoked" => WorkerEvent::TaskRevoked { id: id.clone(), at },
            "worker-online" | "worker-heartbeat" => {
                let software = format!("{} {}", text("sw_ident"), text("sw_ver")).trim().to_string();
                let n = |k: &str| ev.fields.get(k).and_then(Value::as_u64).unwrap_or(0);
                // A worker that comes online (the learner's Python worker, say) may still be
                // setting up its consumer: the checks look again until they see it.
                if !self.workers.get(&ev.hostname).is_some_and(|w| w.online) {
                    self.expect_consumer();
                }
                self.workers.insert(
                    ev.hostname.clone(),
                    SeenWorker { software, active: n("active"), processed: n("processed"), last_seen: Utc::now(), online: true },
                );
                return vec![];
            }
            "worker-offline" => {
                if let Some(w) = self.workers.get_mut(&ev.hostname) {
                    w.online = false;
                    w.active = 0;
                    w.last_seen = Utc::now();
                }
                return vec![];
            }
            _ => return vec![],
        };
        let cmds = self.worker_event(mapped);
        if matches!(ev.kind.as_str(), "task-received" | "task-started")
            && let Some(row) = self.task_mut(&id)
        {
            row.worker = Some(ev.hostname.clone());
        }
        cmds
    }

    fn result(&mut self, meta: ResultMeta) -> Vec<Command> {
        let now = Utc::now();
        if !self.set_state(&meta.task_id, meta.status, now) {
            return if meta.status.is_ready() { self.after_ready() } else { vec![] };
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

    /// After a kill: with early acks the running tasks are gone for good (LOST); with late acks
    /// the broker requeues them and a recovery is watched.
    fn after_kill(&mut self) -> Vec<Command> {
        let own = self.own_hostname.clone();
        let running: Vec<usize> = self
            .tasks
            .iter()
            .enumerate()
            // A task lost at an earlier kill stays STARTED for ever: it is not this kill's.
            .filter(|(_, t)| t.state == TaskState::Started && !t.lost && t.worker.as_ref().is_none_or(|w| *w == own))
            .map(|(i, _)| i)
            .collect();
        // Delivered to this worker and not finished: received (prefetched) or running.
        let in_flight = self
            .tasks
            .iter()
            .filter(|t| {
                matches!(t.state, TaskState::Received | TaskState::Started) && !t.lost && t.worker.as_ref().is_none_or(|w| *w == own)
            })
            .count();
        // What the broker puts back: every delivery not acknowledged yet. With early acks the
        // running ones were acknowledged when they started.
        self.killed_in_flight = if self.worker.acks_late { in_flight } else { in_flight - running.len().min(in_flight) };
        self.killed_acks_late = Some(self.worker.acks_late);
        if self.worker.acks_late {
            self.status = Some(format!(
                "killed with acks late: {} running task(s) were not acknowledged, so the broker puts them back in the queue",
                running.len()
            ));
            return vec![];
        }
        for i in &running {
            self.tasks[*i].lost = true;
            let id = self.tasks[*i].id.clone();
            self.outcomes.insert(id, Outcome::Lost);
        }
        let n = running.len();
        self.status = Some(format!(
            "killed with acks early: {n} running task(s) were already acknowledged and are LOST (Celery's default behaves the same)"
        ));
        if n == 0 {
            return vec![];
        }
        self.record(
            ExperimentKind::EarlyAckLoss,
            format!("Early acks: the worker was killed with {n} task(s) running; {n} of {in_flight} in flight were lost"),
            json!({"lost": n, "in_flight": in_flight, "concurrency": self.worker.concurrency}),
        );
        vec![Command::SaveProgress]
    }

    /// Records experiments whose tasks have all finished.
    fn after_ready(&mut self) -> Vec<Command> {
        let mut cmds = vec![];
        let ready = |app: &App, id: &String| app.outcomes.contains_key(id);
        let success = |app: &App, id: &String| matches!(app.outcomes.get(id), Some(Outcome::Done(TaskState::Success, _)));
        let failure = |app: &App, id: &String| matches!(app.outcomes.get(id), Some(Outcome::Done(TaskState::Failure, _)));
        let mut done_bursts = vec![];
        for (i, b) in self.bursts.iter().enumerate() {
            if b.ids.iter().all(|id| ready(self, id)) {
                done_bursts.push(i);
            }
        }
        for i in done_bursts.into_iter().rev() {
            let b = self.bursts.remove(i);
            if b.interrupted {
                // The queue did rise and drain (a burst for lesson 7), but a stop in the middle
                // makes its time no throughput at any concurrency: no rate is recorded.
                let series = self.series_since(self.seconds_since_start(b.started) - 1.0);
                self.record_series(
                    ExperimentKind::Concurrency,
                    format!(
                        "Burst of {} × {}: the queue rose to {} and drained, but the worker stopped in the middle, so its time is no throughput (the recovery records what the stop cost)",
                        b.ids.len(),
                        b.task,
                        b.peak_depth
                    ),
                    json!({"task": b.task, "count": b.ids.len(), "peak_depth": b.peak_depth, "ready_peak": b.ready_peak, "drained": 1, "interrupted": true}),
                    series,
                );
                self.status = Some(format!(
                    "the burst of {} × {} was cut short by the worker stopping: recorded without a rate",
                    b.ids.len(),
                    b.task
                ));
                cmds.push(Command::SaveProgress);
                continue;
            }
            let end = b
                .ids
                .iter()
                .filter_map(|id| match self.outcomes.get(id) {
                    Some(Outcome::Done(_, at)) => Some(*at),
                    _ => None,
                })
                .max()
                .unwrap_or_else(Utc::now);
            let secs = ((end - b.started).num_milliseconds() as f64 / 1000.0).max(0.001);
            let ok = b.ids.iter().filter(|id| success(self, id)).count();
            let n = b.ids.len();
            let series = self.series_since(self.seconds_since_start(b.started) - 1.0);
            self.record_series(
                ExperimentKind::Concurrency,
                format!(
                    "Burst of {n} × {} at concurrency {}: {}; {ok} SUCCESS in {secs:.1} s ({:.0} tasks/s)",
                    b.task,
                    b.concurrency,
                    if b.peak_depth >= 2 {
                        format!("the queue rose to {} and drained", b.peak_depth)
                    } else {
                        format!("the queue never held more than {} at a reading (every 0.5 s)", b.peak_depth)
                    },
                    n as f64 / secs
                ),
                json!({"task": b.task, "count": n, "succeeded": ok, "concurrency": b.concurrency, "seconds": secs, "peak_depth": b.peak_depth, "ready_peak": b.ready_peak, "drained": 1}),
                series,
            );
            self.status = Some(format!("burst of {n} finished in {secs:.1} s"));
            cmds.push(Command::SaveProgress);
        }
        if let Some(r) = &self.recovery
            && r.ids.iter().all(|id| ready(self, id))
        {
            let r = self.recovery.take().unwrap();
            let ok = r.ids.iter().filter(|id| success(self, id)).count();
            let failed = r.ids.iter().filter(|id| failure(self, id)).count();
            let secs = (Utc::now() - r.restarted).num_milliseconds() as f64 / 1000.0;
            let n = r.ids.len();
            let how = match (r.killed, r.in_flight_at_kill) {
                (true, n) if n > 0 => format!("The worker was killed with {n} message(s) unacknowledged"),
                (true, _) => "The worker was killed with nothing in flight".to_string(),
                (false, _) => "The worker was down".to_string(),
            };
            // The queue from a little before the worker went down to now.
            let from = (r.down_at.unwrap_or(r.up_at) - 2.0).max(0.0);
            let series = self.series_since(from);
            let mut figures = json!({"tasks": n, "succeeded": ok, "failed": failed, "peak_depth": r.peak_depth, "seconds": secs, "in_flight_at_kill": r.in_flight_at_kill});
            // A kill's outcome, with how the worker acknowledged: what lesson 7's late-ack
            // prediction is answered by.
            if let Some(late) = r.acks_late {
                figures["acks_late"] = json!(u8::from(late));
                figures["lost"] = json!(n - ok - failed);
            }
            if let Some(d) = r.down_at {
                figures["down_at"] = json!(d - from);
                figures["up_at"] = json!(r.up_at - from);
            }
            self.record_series(
                ExperimentKind::Recovery,
                format!(
                    "{how}; {n} task(s) waited (peak queue depth {}); after the restart {ok} reached SUCCESS and {failed} FAILURE within {secs:.1} s, {} lost",
                    r.peak_depth,
                    n - ok - failed
                ),
                figures,
                series,
            );
            self.status = Some(format!("recovery: all {n} waiting tasks finished after the restart"));
            cmds.push(Command::SaveProgress);
        }
        cmds
    }
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
        lost: false,
        worker: None,
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

/// A scroll offset moved by a scrolling action (End goes far; the view clamps it).
pub fn scrolled(v: u16, a: Action, page: u16) -> u16 {
    match a {
        Action::Down => v.saturating_add(1),
        Action::Up => v.saturating_sub(1),
        Action::PageDown => v.saturating_add(page),
        Action::PageUp => v.saturating_sub(page),
        Action::Top => 0,
        Action::Bottom => u16::MAX / 2,
        _ => v,
    }
}

/// A task id's first 8 characters (never cut inside a character).
pub fn short_id(id: &str) -> String {
    id.chars().take(8).collect()
}

/// What a revoke did, from the workers' replies: a revoke reaches only the workers online (as in
/// Celery); with none, the task still runs when a worker takes it.
pub fn revoke_told(id: &str, replies: &[(String, serde_json::Value)]) -> String {
    let id = short_id(id);
    if replies.is_empty() {
        return format!(
            "revoke of {id}: no worker answered within 1 s, so none received it; the task will run when a worker takes it (a revoke reaches only the workers online)"
        );
    }
    let names: Vec<&str> = replies.iter().map(|(w, _)| w.as_str()).collect();
    format!(
        "revoke of {id}: {} worker(s) acknowledged it ({}): they will not run it; one already running finishes",
        replies.len(),
        names.join(", ")
    )
}
