//! Everything the screen shows, owned by the UI loop. Background tasks only ever send events;
//! `update.rs` turns events into new state and commands; `view.rs` draws it.

use std::collections::{BTreeMap, HashMap, VecDeque};

use chrono::{DateTime, Utc};
use ratatui::text::Text;
use ratatui_textarea::TextArea;
use serde_json::Value;

use crate::celery::TaskState;
use crate::config::{Config, Track};
use crate::lessons::Course;
use crate::lessons::progress::Progress;
use crate::probes::CheckResult;

/// Which panel has the keyboard (on small terminals, the one panel shown).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Focus {
    Lesson,
    Lab,
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
    pub last_error: Option<String>,
}

/// One task in the table, with the time of each state.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskRow {
    pub id: String,
    pub name: String,
    pub args: String,
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

/// A burst being timed for the concurrency experiment.
#[derive(Clone, Debug)]
pub struct BurstWatch {
    pub ids: Vec<String>,
    pub task: String,
    pub started: DateTime<Utc>,
    pub concurrency: usize,
}

/// Tasks queued while the worker was down, watched until they all complete.
#[derive(Clone, Debug)]
pub struct RecoveryWatch {
    pub ids: Vec<String>,
    pub restarted: DateTime<Utc>,
    pub peak_depth: u64,
}

pub struct App {
    pub cfg: Config,
    pub course: Course,
    pub progress: Progress,
    pub track: Track,
    pub lesson: usize,
    pub scroll: u16,
    pub focus: Focus,
    pub checks: HashMap<String, CheckState>,
    pub worker: WorkerPanel,
    pub tasks: Vec<TaskRow>,
    pub selected_task: usize,
    pub detail_open: bool,
    pub checklist_selected: usize,
    /// Depth samples (fast AMQP readings and management samples), newest last.
    pub depth: VecDeque<(f64, u64, u64)>,
    pub rates: VecDeque<(f64, f64, f64, f64)>,
    pub sample: Option<Sample>,
    pub badges: Badges,
    pub help: bool,
    pub notes: Option<TextArea<'static>>,
    pub args_editor: Option<(String, TextArea<'static>)>,
    pub submit_args: HashMap<String, String>,
    pub status: Option<String>,
    pub spinner: usize,
    pub started: DateTime<Utc>,
    pub quit: bool,
    pub bursts: Vec<BurstWatch>,
    pub recovery: Option<RecoveryWatch>,
    pub peak_depth_while_down: u64,
    pub offered_sandbox: bool,
    /// Workers seen on the broker by their events: name → (software, active, last seen).
    pub workers: BTreeMap<String, (String, u64, DateTime<Utc>)>,
    pub no_color: bool,
    /// Offset used to show times (the local one; tests pin it).
    pub tz: chrono::FixedOffset,
    pub(crate) text_cache: HashMap<(usize, Track), Text<'static>>,
}

pub const MAX_TASKS: usize = 500;
pub const HISTORY: usize = 240;

impl App {
    pub fn new(cfg: Config, course: Course, progress: Progress) -> App {
        let track = progress.track.unwrap_or(cfg.track);
        let lesson = (progress.current_lesson.max(1) as usize - 1).min(course.lessons.len().saturating_sub(1));
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
            focus: Focus::Lesson,
            checks: HashMap::new(),
            worker: WorkerPanel {
                state: WorkerState::Stopped,
                concurrency: 4,
                acks_late: true,
                processed: 0,
                failed: 0,
                active: 0,
                last_error: None,
            },
            tasks: vec![],
            selected_task: 0,
            detail_open: false,
            checklist_selected: 0,
            depth: VecDeque::new(),
            rates: VecDeque::new(),
            sample: None,
            badges: Badges { cluster: Badge::Unknown, amqp: Badge::Unknown, management: Badge::Unknown, redis: Badge::Unknown },
            help: false,
            notes: None,
            args_editor: None,
            submit_args,
            status: None,
            spinner: 0,
            started: Utc::now(),
            quit: false,
            bursts: vec![],
            recovery: None,
            peak_depth_while_down: 0,
            offered_sandbox: false,
            workers: BTreeMap::new(),
            no_color: std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
            tz: *chrono::Local::now().offset(),
            text_cache: HashMap::new(),
        }
    }

    pub fn current(&self) -> &crate::lessons::Lesson {
        &self.course.lessons[self.lesson]
    }

    pub fn lesson_checks(&self) -> Vec<String> {
        self.current().checks(self.track).to_vec()
    }

    /// A lesson's mark in the list: all its checks passed, some failed, or not run.
    pub fn lesson_mark(&self, idx: usize) -> char {
        let ids = self.course.lessons[idx].checks(self.track);
        if ids.is_empty() {
            return '·';
        }
        let rec = |id: &String| self.progress.checks.get(id);
        if ids.iter().all(|id| rec(id).is_some_and(|r| r.status == crate::probes::Status::Pass)) {
            '✓'
        } else if ids.iter().any(|id| rec(id).is_some_and(|r| r.status == crate::probes::Status::Fail)) {
            '✗'
        } else {
            ' '
        }
    }

    pub fn task_mut(&mut self, id: &str) -> Option<&mut TaskRow> {
        self.tasks.iter_mut().find(|t| t.id == id)
    }

    /// Queue depth right now (ready + unacked), from the newest reading.
    pub fn depth_now(&self) -> u64 {
        self.depth.back().map(|(_, r, u)| r + u).unwrap_or(0)
    }

    pub fn seconds_since_start(&self, t: DateTime<Utc>) -> f64 {
        (t - self.started).num_milliseconds() as f64 / 1000.0
    }
}
