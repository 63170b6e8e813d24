//! Everything the screen shows, owned by the UI loop. Background tasks only ever send events;
//! `update.rs` turns events into new state and commands; `view.rs` draws it.

use std::collections::{BTreeMap, HashMap, VecDeque};

use chrono::{DateTime, Utc};
use ratatui_textarea::TextArea;
use serde_json::Value;

use super::markdown::MdLine;
use crate::celery::TaskState;
use crate::config::{Config, Track};
use crate::lessons::Course;
use crate::lessons::progress::Progress;
use crate::probes::CheckResult;

/// The screen shown: the lesson (with a live panel beside it when wide), the full lab, or the
/// lessons and checklist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Focus {
    Lesson,
    Lab,
    Checklist,
}

/// What a confirmation is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Confirm {
    /// Run this lesson's solution (`mqlab solve N --track T`).
    Solve { step: u32 },
    /// Clear this lesson (`mqlab reset --lesson N`).
    ResetLesson { step: u32 },
}

impl Focus {
    pub fn name(self) -> &'static str {
        match self {
            Focus::Lesson => "lesson",
            Focus::Lab => "lab",
            Focus::Checklist => "checklist",
        }
    }

    pub fn from_name(s: &str) -> Option<Focus> {
        [Focus::Lesson, Focus::Lab, Focus::Checklist].into_iter().find(|f| f.name() == s)
    }
}

/// Which pane of the lesson screen has the keyboard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pane {
    Text,
    Checks,
    Live,
}

/// Popups, newest last; Esc closes the top one.
pub enum Modal {
    Help {
        scroll: u16,
    },
    Detail {
        scroll: u16,
    },
    Notes(TextArea<'static>),
    Args(String, TextArea<'static>),
    Filter(TextArea<'static>),
    /// First launch: what is on this machine, and the tracks to choose from.
    Start,
    /// The step's runnable commands, one selected: Enter runs it, y copies it.
    Commands {
        selected: usize,
    },
    /// A question before something that changes or runs a lot: what will happen, in lines; y or
    /// Enter goes ahead, n or Esc does nothing.
    Confirm {
        what: Confirm,
        lines: Vec<String>,
        scroll: u16,
    },
    /// The end-of-course quiz at question `n` (from 0); `picked` once answered.
    Quiz {
        n: usize,
        picked: Option<usize>,
    },
    /// The lesson's predictions, at `n`; `input` is the number being typed.
    Predict {
        n: usize,
        input: String,
    },
    /// The output of the command run from a lesson; `follow` keeps the newest line in view.
    Output {
        scroll: u16,
        follow: bool,
    },
}

impl Modal {
    pub fn kind(&self) -> &'static str {
        match self {
            Modal::Help { .. } => "help",
            Modal::Detail { .. } => "detail",
            Modal::Notes(_) => "notes",
            Modal::Args(..) => "args",
            Modal::Filter(_) => "filter",
            Modal::Start => "start",
            Modal::Commands { .. } => "commands",
            Modal::Output { .. } => "output",
            Modal::Confirm { .. } => "confirm",
            Modal::Quiz { .. } => "quiz",
            Modal::Predict { .. } => "predict",
        }
    }
}

/// What the live panel beside a lesson shows, chosen by the step and track.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LivePanel {
    /// Cluster: context, node, pods and services (k3s, steps 1–4).
    Cluster,
    /// Broker and Redis status (local, steps 1–4).
    Services,
    /// The management overview: exchanges, queues, consumers (step 3).
    Management,
    /// Worker, queue depth and the last tasks (steps 5–9).
    Lab,
    /// The verification checklist (steps 10–11).
    Checklist,
}

#[derive(Clone, Debug, PartialEq)]
pub enum CheckState {
    Running,
    Done(CheckResult),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerState {
    Stopped,
    Starting,
    Running,
    Stopping,
    /// Killed: in-flight messages were left unacknowledged for the broker to requeue.
    Killed,
    Failed,
}

impl WorkerState {
    pub fn label(self) -> &'static str {
        match self {
            WorkerState::Stopped => "stopped",
            WorkerState::Starting => "starting",
            WorkerState::Running => "running",
            WorkerState::Stopping => "stopping",
            WorkerState::Killed => "killed",
            WorkerState::Failed => "failed",
        }
    }
}

#[derive(Clone, Debug)]
pub struct WorkerPanel {
    pub state: WorkerState,
    pub concurrency: usize,
    pub acks_late: bool,
    pub processed: u64,
    pub failed: u64,
    pub active: usize,
    /// Deliveries it holds unacknowledged (live, from the worker itself).
    pub unacked: usize,
    pub last_error: Option<String>,
}

/// One task in the table, with the time of each state.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskRow {
    /// Lost in a crash: it was running on a worker that acknowledged early and was killed.
    pub lost: bool,
    pub id: String,
    pub name: String,
    pub args: String,
    /// The worker that received it, when known from events.
    pub worker: Option<String>,
    pub state: TaskState,
    pub times: BTreeMap<TaskState, DateTime<Utc>>,
    pub runtime: Option<f64>,
    /// Result repr or exception text.
    pub outcome: Option<String>,
    pub traceback: Option<String>,
    /// The message as sent (properties, headers, body), when mqlab sent it.
    pub raw: Option<Value>,
    /// The stored result as read from Redis.
    pub stored: Option<Value>,
}

/// One reading of the broker.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sample {
    pub ready: u64,
    pub unacked: u64,
    pub consumers: u64,
    pub publish_rate: f64,
    pub deliver_rate: f64,
    pub ack_rate: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Badge {
    Unknown,
    Up,
    Down,
}

#[derive(Clone, Debug)]
pub struct Badges {
    pub cluster: Badge,
    pub amqp: Badge,
    pub management: Badge,
    pub redis: Badge,
}

/// How a watched task ended (kept apart from the table, which holds only the newest rows).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Done(TaskState, DateTime<Utc>),
    Lost,
}

/// A burst being timed for the concurrency experiment.
#[derive(Clone, Debug)]
pub struct BurstWatch {
    pub ids: Vec<String>,
    pub task: String,
    pub started: DateTime<Utc>,
    pub concurrency: usize,
    /// Highest queue depth (ready + unacked) seen while it ran.
    pub peak_depth: u64,
    /// Highest Ready (waiting, not yet delivered) seen while it ran.
    pub ready_peak: u64,
    /// The worker stopped (or was killed) before the burst drained: its time is not a
    /// throughput at any concurrency (its tasks count in the recovery instead).
    pub interrupted: bool,
}

/// The fast AMQP reading of the queue (every 0.5 s).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LiveDepth {
    pub ready: u64,
    pub consumers: u64,
    pub at: DateTime<Utc>,
}

/// Where an unacknowledged figure comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FigureSource {
    /// Computed now from the workers' own state and events.
    Live,
    /// The management API's last sample (updated every 5 s).
    Sample,
}

/// Tasks queued while the worker was down, watched until they all complete.
#[derive(Clone, Debug)]
pub struct RecoveryWatch {
    pub ids: Vec<String>,
    pub restarted: DateTime<Utc>,
    pub peak_depth: u64,
    /// Messages in flight when the worker was killed.
    pub in_flight_at_kill: usize,
    /// Killed (a crash), not stopped.
    pub killed: bool,
    /// Whether the killed worker acknowledged late.
    pub acks_late: Option<bool>,
    /// When the worker went down and came back (seconds since the app started).
    pub down_at: Option<f64>,
    pub up_at: f64,
}

/// A lesson command run from the app, and what it printed.
#[derive(Clone, Debug)]
pub struct ShellRun {
    /// The command, as shown and run.
    pub command: String,
    pub lines: VecDeque<String>,
    pub started: DateTime<Utc>,
    /// Lines dropped at the front (only the last `SHELL_LINES` are kept).
    pub dropped: usize,
    pub done: Option<ShellDone>,
}

pub use crate::lessons::run::ShellDone;

impl App {
    /// A lesson command is running (started, not yet ended).
    pub fn shell_running(&self) -> bool {
        self.shell.as_ref().is_some_and(|s| s.done.is_none())
    }
}

/// Lines of a command's output kept on screen.
pub const SHELL_LINES: usize = 5000;

/// The port-forwards as the app shows them.
#[derive(Clone, Debug, Default)]
pub struct Forwards {
    /// Empty while they start.
    pub list: Vec<crate::forward::Forward>,
}

pub struct App {
    pub cfg: Config,
    pub course: Course,
    pub progress: Progress,
    pub track: Track,
    pub lesson: usize,
    pub scroll: u16,
    /// Sideways scroll of the lesson's wide code blocks.
    pub hscroll: usize,
    pub checks_scroll: u16,
    pub focus: Focus,
    pub pane: Pane,
    pub modals: Vec<Modal>,
    /// Show only tasks whose state or name contains this.
    pub task_filter: Option<String>,
    /// Keep the newest task selected.
    pub follow: bool,
    /// `rabbitmq-server` and `redis-server` are installed (a sandbox can start).
    pub sandbox_available: bool,
    /// A check re-run is wanted (something it tests changed); done at most once a second.
    pub recheck_due: bool,
    pub last_recheck: Option<DateTime<Utc>>,
    /// Checks started by a re-run nobody asked for: their results do not take the status line.
    pub quiet_checks: std::collections::HashSet<String>,
    /// For each check asked for, the track and endpoints it was asked on: a result that comes
    /// back after they changed tested something else, and is dropped.
    pub checks_asked_on: HashMap<String, String>,
    /// Until when a worker that just came up is expected to show as the queue's consumer.
    pub consumer_expected_until: Option<DateTime<Utc>>,
    /// Bursts and recoveries seen on the broker, whoever's worker and publisher.
    pub broker_watch: crate::lessons::observe::BrokerWatch,
    /// Management API overview (exchanges, queues, consumers...), with when it was read.
    pub overview: Option<(Overview, DateTime<Utc>)>,
    /// When the last fast AMQP reading and management sample arrived.
    pub depth_at: Option<DateTime<Utc>>,
    pub sample_at: Option<DateTime<Utc>>,
    /// Lines of the lesson text as last drawn (for paging and the scroll indicator).
    pub lesson_lines: u16,
    pub lesson_view: u16,
    pub checks: HashMap<String, CheckState>,
    pub worker: WorkerPanel,
    pub tasks: Vec<TaskRow>,
    pub selected_task: usize,
    pub checklist_selected: usize,
    /// Depth samples (fast AMQP readings and management samples), newest last.
    pub depth: VecDeque<(f64, u64, u64)>,
    pub rates: VecDeque<(f64, f64, f64, f64)>,
    pub sample: Option<Sample>,
    pub badges: Badges,
    pub submit_args: HashMap<String, String>,
    pub status: Option<String>,
    pub spinner: usize,
    pub started: DateTime<Utc>,
    /// The time of the last tick (what "12 s ago" is measured from; tests pin it).
    pub clock: DateTime<Utc>,
    pub quit: bool,
    pub bursts: Vec<BurstWatch>,
    pub recovery: Option<RecoveryWatch>,
    pub peak_depth_while_down: u64,
    /// Tasks in flight at the last kill (for the recovery record).
    pub killed_in_flight: usize,
    /// The worker was killed (not stopped) since it was last ready.
    pub killed_since_ready: bool,
    /// Whether the last kill's worker acknowledged late (for the recovery record).
    pub killed_acks_late: Option<bool>,
    /// When the worker last stopped (seconds since the app started).
    pub down_at: Option<f64>,
    pub offered_sandbox: bool,
    /// mqlab's port-forwards to the cluster, when started (F): each forward with its state.
    pub forwards: Option<Forwards>,
    /// Port-forwards another process serves (`mqlab forward` in another terminal), which this
    /// app's configuration uses.
    pub forwards_elsewhere: Option<crate::forward::Recorded>,
    /// The last lesson command run from the app (`!`).
    pub shell: Option<ShellRun>,
    /// Show the exact call each check makes (`v`).
    pub show_calls: bool,
    /// How many rungs of the hint ladder of the lesson's first failing check are shown (`i`).
    pub hint_level: usize,
    /// Workers seen on the broker by their events.
    pub workers: BTreeMap<String, SeenWorker>,
    /// Tasks sent by this app and not yet recorded as a single-send experiment.
    pub sends: SendTally,
    /// How each task an experiment watches ended (bursts, recoveries, single sends).
    pub outcomes: HashMap<String, Outcome>,
    pub no_color: bool,
    /// Offset used to show times (the local one; tests pin it).
    pub tz: chrono::FixedOffset,
    /// The last fast AMQP reading.
    pub live: Option<LiveDepth>,
    /// This app's worker's node name (its events come back on the broker too).
    pub own_hostname: String,
    /// Workers that send task events (their in-flight tasks can be counted live).
    pub events_from: std::collections::HashSet<String>,
    /// The terminal is wide enough for the live panel beside the lesson (set when drawing).
    pub wide: bool,
    /// The lesson, at its current width, has code wider than the panel.
    pub lesson_wide_code: bool,
    pub lesson_max_hscroll: usize,
    /// Progress changes not yet handed to the store, and those handed but not yet confirmed.
    pub pending: Vec<crate::lessons::progress::Change>,
    pub inflight: VecDeque<(u64, Vec<crate::lessons::progress::Change>)>,
    pub save_seq: u64,
    pub(crate) text_cache: HashMap<(usize, Track, u16, usize), std::rc::Rc<Vec<MdLine>>>,
}

/// A worker seen through its events (mqlab's or Python's).
#[derive(Clone, Debug, PartialEq)]
pub struct SeenWorker {
    /// `py-celery 5.7.0` or `mqlab 0.1.0`.
    pub software: String,
    pub active: u64,
    pub processed: u64,
    pub last_seen: DateTime<Utc>,
    pub online: bool,
}

/// Single sends, tallied until they are recorded together.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SendTally {
    pub ids: Vec<String>,
    /// Task name of each send.
    pub names: Vec<String>,
    pub first: Option<DateTime<Utc>>,
}

/// The management API's overview.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overview {
    pub node: String,
    pub rabbitmq_version: String,
    pub exchanges: u64,
    pub queues: u64,
    pub consumers: u64,
    pub connections: u64,
    pub channels: u64,
    /// The vhost's exchanges by name and type (first ones).
    pub exchange_names: Vec<(String, String)>,
}

/// The task table keeps the newest this many rows.
pub const MAX_TASKS: usize = 10_000;
pub const HISTORY: usize = 240;

impl App {
    pub fn new(cfg: Config, course: Course, progress: Progress) -> App {
        let track = if cfg.track_explicit { cfg.track } else { progress.track.unwrap_or(cfg.track) };
        let lesson = (progress.current_lesson.max(1) as usize - 1).min(course.lessons.len().saturating_sub(1));
        // The app reopens where the learner left it: the lesson (above) and the screen.
        let focus = progress.screen.as_deref().and_then(Focus::from_name).unwrap_or(Focus::Lesson);
        let mut progress = progress;
        progress.migrate(&course);
        let mut submit_args = HashMap::new();
        submit_args.insert("tasks.hello".into(), "\"World\"".into());
        submit_args.insert("tasks.add".into(), "42, 58".into());
        submit_args.insert("tasks.divide".into(), "10, 0".into());
        App {
            cfg,
            course,
            progress,
            track,
            lesson,
            scroll: 0,
            hscroll: 0,
            checks_scroll: 0,
            focus,
            pane: Pane::Text,
            modals: vec![],
            task_filter: None,
            follow: true,
            sandbox_available: false,
            recheck_due: false,
            last_recheck: None,
            quiet_checks: Default::default(),
            checks_asked_on: Default::default(),
            consumer_expected_until: None,
            broker_watch: Default::default(),
            overview: None,
            depth_at: None,
            sample_at: None,
            lesson_lines: 0,
            lesson_view: 0,
            checks: HashMap::new(),
            worker: WorkerPanel {
                state: WorkerState::Stopped,
                concurrency: 4,
                acks_late: true,
                processed: 0,
                failed: 0,
                active: 0,
                unacked: 0,
                last_error: None,
            },
            tasks: vec![],
            selected_task: 0,
            checklist_selected: 0,
            depth: VecDeque::new(),
            rates: VecDeque::new(),
            sample: None,
            badges: Badges { cluster: Badge::Unknown, amqp: Badge::Unknown, management: Badge::Unknown, redis: Badge::Unknown },
            submit_args,
            status: None,
            spinner: 0,
            started: Utc::now(),
            clock: Utc::now(),
            quit: false,
            bursts: vec![],
            recovery: None,
            peak_depth_while_down: 0,
            killed_in_flight: 0,
            killed_since_ready: false,
            killed_acks_late: None,
            down_at: None,
            offered_sandbox: false,
            forwards: None,
            forwards_elsewhere: None,
            shell: None,
            show_calls: false,
            hint_level: 0,
            workers: BTreeMap::new(),
            sends: SendTally::default(),
            outcomes: HashMap::new(),
            live: None,
            own_hostname: format!("mqlab-{}@{}", std::process::id(), crate::celery::protocol::hostname()),
            events_from: Default::default(),
            wide: false,
            lesson_wide_code: false,
            lesson_max_hscroll: 0,
            pending: vec![],
            inflight: VecDeque::new(),
            save_seq: 0,
            no_color: std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
            tz: *chrono::Local::now().offset(),
            text_cache: HashMap::new(),
        }
    }

    /// Nothing done yet and no track chosen: the start screen is shown.
    pub fn first_launch(&self) -> bool {
        self.progress.track.is_none() && self.progress.checks.is_empty() && !self.cfg.track_explicit
    }

    pub fn current(&self) -> &crate::lessons::Lesson {
        &self.course.lessons[self.lesson]
    }

    /// The lesson's checks and its diagnoses (run together).
    pub fn lesson_checks(&self) -> Vec<String> {
        let mut v = self.current().checks(self.track).to_vec();
        v.extend(self.current().diagnose.iter().filter(|d| !v.contains(d)).cloned().collect::<Vec<_>>());
        v
    }

    /// A lesson's mark: ✓ when its checks passed and its experiments were seen.
    pub fn lesson_mark(&self, idx: usize) -> char {
        self.course.lessons[idx].mark(self.track, &self.progress)
    }

    /// The panel beside the lesson, chosen by the step and the track.
    pub fn live_panel(&self) -> LivePanel {
        match self.current().step {
            3 => LivePanel::Management,
            1..=4 if self.track == Track::K3s => LivePanel::Cluster,
            1..=4 => LivePanel::Services,
            5..=9 => LivePanel::Lab,
            _ => LivePanel::Checklist,
        }
    }

    /// Indices of the tasks the filter lets through, newest first.
    pub fn visible_tasks(&self) -> Vec<usize> {
        match &self.task_filter {
            None => (0..self.tasks.len()).collect(),
            Some(f) => {
                let f = f.to_lowercase();
                self.tasks
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| {
                        let state = if t.lost { "lost" } else { t.state.as_str() };
                        state.to_lowercase().contains(&f) || t.name.to_lowercase().contains(&f)
                    })
                    .map(|(i, _)| i)
                    .collect()
            }
        }
    }

    /// The task under the cursor (in the filtered list).
    pub fn selected(&self) -> Option<&TaskRow> {
        self.visible_tasks().get(self.selected_task).and_then(|i| self.tasks.get(*i))
    }

    /// Where keys apply now, for the keymap.
    pub fn scope(&self) -> super::keymap::Scope {
        use super::keymap::Scope;
        match self.focus {
            Focus::Lab => Scope::Tasks,
            Focus::Checklist => Scope::Checklist,
            Focus::Lesson if self.pane == Pane::Live && self.live_panel() == LivePanel::Lab => Scope::Tasks,
            Focus::Lesson if self.pane == Pane::Live && self.live_panel() == LivePanel::Checklist => Scope::Checklist,
            Focus::Lesson => Scope::Lesson,
        }
    }

    pub fn task_mut(&mut self, id: &str) -> Option<&mut TaskRow> {
        self.tasks.iter_mut().find(|t| t.id == id)
    }

    /// Unacknowledged messages on the queue now, and where the figure comes from. With only this
    /// app's worker consuming (or workers that send task events), it is computed live; with
    /// other consumers that send no task events, it is the management API's last sample. Never
    /// more than nothing when nobody consumes.
    pub fn unacked_now(&self) -> (u64, FigureSource) {
        let consumers = self.live.map(|l| l.consumers).unwrap_or(0);
        let own_running = matches!(self.worker.state, WorkerState::Running) as u64;
        let own = if own_running == 1 { self.worker.unacked as u64 } else { 0 };
        if consumers == 0 {
            return (0, FigureSource::Live);
        }
        let others = consumers.saturating_sub(own_running);
        if others == 0 {
            return (own, FigureSource::Live);
        }
        let other_online: Vec<&String> =
            self.workers.iter().filter(|(n, w)| w.online && **n != self.own_hostname).map(|(n, _)| n).collect();
        if other_online.len() as u64 >= others && other_online.iter().all(|n| self.events_from.contains(*n)) {
            let inflight = self
                .tasks
                .iter()
                .filter(|t| {
                    !t.lost
                        && !t.state.is_ready()
                        && matches!(t.state, TaskState::Received | TaskState::Started)
                        && t.worker.as_ref().is_some_and(|w| *w != self.own_hostname)
                })
                .count() as u64;
            return (own + inflight, FigureSource::Live);
        }
        let sampled = self.sample.map(|s| s.unacked).unwrap_or(0);
        (sampled.max(own), FigureSource::Sample)
    }

    /// Queue depth right now (ready + unacked), from the newest reading.
    pub fn depth_now(&self) -> u64 {
        self.depth.back().map(|(_, r, u)| r + u).unwrap_or(0)
    }

    pub fn seconds_since_start(&self, t: DateTime<Utc>) -> f64 {
        (t - self.started).num_milliseconds() as f64 / 1000.0
    }
}
