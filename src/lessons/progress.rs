//! What the learner has done, kept in `<data dir>/progress.json`: check results, checklist ticks,
//! notes per lesson, and the experiments run with their figures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Course;
use crate::config::Track;
use crate::probes::{CheckResult, Status};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckRecord {
    pub status: Status,
    pub detail: String,
    pub at: DateTime<Utc>,
    /// When it last passed.
    #[serde(default)]
    pub passed_at: Option<DateTime<Utc>>,
    /// What it saw when it last passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passed_detail: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tick {
    /// `check:<id>[,<id>…]` or `hand`.
    pub by: String,
    pub at: DateTime<Utc>,
    /// What the checks saw when they ticked it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    /// The track it was earned on: an item worded for one track (a Helm deploy, say) is not
    /// ticked on the other by this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track: Option<Track>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExperimentKind {
    /// Tasks sent, with how many succeeded and failed, and the rate.
    TasksSubmitted,
    /// A worker ran (concurrency, ack mode, tasks processed).
    WorkerRun,
    /// The worker was down while tasks queued up, and they all completed after it came back.
    Recovery,
    /// The same burst run at different concurrency.
    Concurrency,
    /// A worker acknowledging early was killed: the tasks it was running were lost.
    EarlyAckLoss,
}

/// A check passed from the learner's evidence while a lesson's checks ran: it stays earned (a
/// later experiment may make it false now, on purpose) until that lesson is reset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Earned {
    pub at: DateTime<Utc>,
    /// What the check saw then.
    pub detail: String,
    pub track: Track,
}

/// The learner's prediction before an experiment (a lesson's `[[predict]]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub value: f64,
    pub at: DateTime<Utc>,
}

/// A prediction beside what the experiment then showed.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome<'a> {
    pub predicted: &'a Prediction,
    /// The figure the experiment recorded, and the experiment; None until it ran.
    pub observed: Option<(f64, &'a Experiment)>,
}

/// A number as a learner writes it: 12, 4.5.
pub fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{v:.0}") } else { format!("{v:.1}") }
}

/// An answer to a quiz question.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuizAnswer {
    /// The choice (from 0).
    pub chosen: usize,
    pub correct: bool,
    pub at: DateTime<Utc>,
}

/// Experiments a lesson can ask for, and what proves each.
pub const EXPERIMENTS: &[(&str, &str)] = &[
    ("burst", "a burst whose queue depth rose and then drained"),
    ("recovery", "a worker killed with unacknowledged messages, and those tasks completed after the restart"),
    ("concurrency", "a burst timed at a known concurrency"),
];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    pub kind: ExperimentKind,
    pub at: DateTime<Utc>,
    /// One line in the learner's terms.
    pub summary: String,
    #[serde(default)]
    pub figures: BTreeMap<String, serde_json::Value>,
    /// What the queue did during it: [seconds from its start, ready, unacked], at most
    /// `MAX_SERIES` points (for the charts beside LEARNINGS.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub series: Vec<[f64; 3]>,
    /// The lesson the learner was on (what `mqlab reset --lesson N` clears); None in records
    /// from before lessons were noted (then `lesson_of` goes by the experiment's kind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lesson: Option<u32>,
}

/// The most points an experiment keeps of its time series.
pub const MAX_SERIES: usize = 240;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    #[serde(default = "one")]
    pub version: u32,
    #[serde(default)]
    pub track: Option<Track>,
    #[serde(default = "one")]
    pub current_lesson: u32,
    #[serde(default)]
    pub checks: BTreeMap<String, CheckRecord>,
    #[serde(default)]
    pub checklist: BTreeMap<String, Tick>,
    #[serde(default)]
    pub notes: BTreeMap<u32, String>,
    #[serde(default)]
    pub experiments: Vec<Experiment>,
    /// Facts learned by checks: versions, node name, figures.
    #[serde(default)]
    pub facts: BTreeMap<String, String>,
    /// Checks earned per lesson (see `Earned`).
    #[serde(default)]
    pub earned: BTreeMap<u32, BTreeMap<String, Earned>>,
    /// The quiz: question number (from 0) → the learner's answer.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub quiz: BTreeMap<usize, QuizAnswer>,
    /// When each lesson was last reset: experiments from before do not count for it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reset_at: BTreeMap<u32, DateTime<Utc>>,
    /// The screen the app was on (`lesson`, `lab`, `checklist`…), to reopen there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screen: Option<String>,
    /// Predictions per lesson: the prediction's id → the learner's answer.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub predictions: BTreeMap<u32, BTreeMap<String, Prediction>>,
}

fn one() -> u32 {
    1
}

impl Progress {
    pub fn new() -> Self {
        Progress { version: 2, current_lesson: 1, ..Default::default() }
    }

    /// Records check results and ticks every checklist item whose checks have all passed; a pass
    /// is earned by every lesson that lists the check. Returns the ids of items newly ticked.
    pub fn record_checks(&mut self, results: &[CheckResult], course: &Course, track: Track) -> Vec<String> {
        self.record_checks_in(results, course, track, &[])
    }

    /// Like `record_checks`, with the passes earned by `lessons` only (those of them that list
    /// the check on `track`; every lesson that lists it when `lessons` is empty).
    pub fn record_checks_in(&mut self, results: &[CheckResult], course: &Course, track: Track, lessons: &[u32]) -> Vec<String> {
        self.migrate(course);
        for r in results.iter().filter(|r| r.status == Status::Pass) {
            for l in &course.lessons {
                if (lessons.is_empty() || lessons.contains(&l.step)) && l.checks(track).contains(&r.id) {
                    self.earned.entry(l.step).or_default().entry(r.id.clone()).or_insert_with(|| Earned {
                        at: r.at,
                        detail: r.detail.clone(),
                        track,
                    });
                }
            }
        }
        for r in results {
            if r.status == Status::Skipped {
                continue;
            }
            let earlier = self.checks.get(&r.id);
            let (passed_at, passed_detail) = if r.status == Status::Pass {
                (Some(r.at), Some(r.detail.clone()))
            } else {
                (earlier.and_then(|c| c.passed_at), earlier.and_then(|c| c.passed_detail.clone()))
            };
            self.checks
                .insert(r.id.clone(), CheckRecord { status: r.status, detail: r.detail.clone(), at: r.at, passed_at, passed_detail });
            if r.status == Status::Pass {
                for (k, v) in &r.facts {
                    self.facts.insert(k.clone(), v.clone());
                }
            }
        }
        let mut newly = vec![];
        for item in course.checklist() {
            let by = item.ticked_by(track);
            if by.is_empty() || self.tick_for(item, track).is_some() {
                continue;
            }
            if !item.manual && by.iter().all(|c| self.checks.get(c).is_some_and(|r| r.passed_at.is_some())) {
                let evidence = by
                    .iter()
                    .filter_map(|c| {
                        self.checks.get(c).map(|r| {
                            format!(
                                "{} ({})",
                                r.passed_detail.as_deref().unwrap_or(&r.detail),
                                r.passed_at.unwrap_or(r.at).format("%Y-%m-%d %H:%M UTC")
                            )
                        })
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                self.checklist.insert(
                    item.id.clone(),
                    Tick { by: format!("check:{}", by.join(",")), at: Utc::now(), evidence: Some(evidence), track: Some(track) },
                );
                newly.push(item.id.clone());
            }
        }
        newly
    }

    /// The earned record of a check for a lesson, on `track`.
    pub fn earned_for(&self, lesson: u32, id: &str, track: Track) -> Option<&Earned> {
        self.earned.get(&lesson).and_then(|m| m.get(id)).filter(|e| e.track == track)
    }

    /// Older progress files kept no earned checks: each check that has passed counts as earned,
    /// when it last passed, by every lesson that lists it on the track of the progress.
    pub fn migrate(&mut self, course: &Course) {
        if self.version >= 2 {
            return;
        }
        self.version = 2;
        let track = self.track.unwrap_or_default();
        for l in &course.lessons {
            for id in l.checks(track) {
                if let Some(r) = self.checks.get(id)
                    && let Some(at) = r.passed_at
                {
                    let detail = r.passed_detail.clone().unwrap_or_else(|| r.detail.clone());
                    self.earned.entry(l.step).or_default().insert(id.clone(), Earned { at, detail, track });
                }
            }
        }
    }

    /// The lesson an experiment belongs to: the one it was recorded on, or (records from before
    /// lessons were noted) the first lesson that asks for its kind.
    pub fn lesson_of(e: &Experiment, course: &Course) -> Option<u32> {
        e.lesson.or_else(|| {
            let name = match e.kind {
                ExperimentKind::Recovery | ExperimentKind::EarlyAckLoss => "recovery",
                ExperimentKind::Concurrency if e.figures.contains_key("concurrency") => "concurrency",
                ExperimentKind::Concurrency => "burst",
                _ => return None,
            };
            course.lessons.iter().find(|l| l.experiments.iter().any(|x| x == name)).map(|l| l.step)
        })
    }

    /// Clears one lesson: its earned checks, its experiments, its note and its checklist ticks.
    /// Other lessons' records stay. Returns what was cleared, in words.
    pub fn reset_lesson(&mut self, course: &Course, step: u32) -> Vec<String> {
        let mut said = vec![];
        self.reset_at.insert(step, Utc::now());
        if let Some(e) = self.earned.remove(&step) {
            said.push(format!("{} earned check(s)", e.len()));
        }
        let before = self.experiments.len();
        self.experiments.retain(|e| Self::lesson_of(e, course) != Some(step));
        if before > self.experiments.len() {
            said.push(format!("{} experiment(s)", before - self.experiments.len()));
        }
        if self.notes.remove(&step).is_some() {
            said.push("its note".into());
        }
        if let Some(p) = self.predictions.remove(&step) {
            said.push(format!("{} prediction(s)", p.len()));
        }
        if let Some(l) = course.lesson(step) {
            // Its quiz questions, when it has them.
            let first: usize = course.lessons.iter().take_while(|x| x.step != step).map(|x| x.quiz.len()).sum();
            let answered = (first..first + l.quiz.len()).filter(|n| self.quiz.remove(n).is_some()).count();
            if answered > 0 {
                said.push(format!("{answered} quiz answer(s)"));
            }
            let ticks = l.checklist.iter().filter(|i| self.checklist.remove(&i.id).is_some()).count();
            if ticks > 0 {
                said.push(format!("{ticks} checklist tick(s)"));
            }
        }
        said
    }

    /// The learner's prediction `p` of lesson `step` beside what the experiment showed: the
    /// first experiment of its kind recorded with this lesson after the prediction whose
    /// figures match the prediction's `when`. None when not predicted yet.
    pub fn outcome<'a>(&'a self, step: u32, p: &crate::lessons::Predict) -> Option<Outcome<'a>> {
        let predicted = self.predictions.get(&step)?.get(&p.id)?;
        let num = |e: &Experiment, k: &str| e.figures.get(k).and_then(|v| v.as_f64());
        let observed = self
            .experiments
            .iter()
            .filter(|e| e.kind == p.kind && e.lesson == Some(step) && e.at >= predicted.at)
            .filter(|e| p.when.iter().all(|(k, v)| num(e, k) == Some(*v)))
            .find_map(|e| num(e, &p.figure).map(|x| (x, e)));
        Some(Outcome { predicted, observed })
    }

    pub fn tick(&mut self, course: &Course, id: &str) -> anyhow::Result<()> {
        known_item(course, id)?;
        let track = self.track.unwrap_or_default();
        let item = course.checklist().into_iter().find(|i| i.id == id).expect("known");
        if self.tick_for(item, track).is_none() {
            self.checklist.insert(id.to_string(), Tick { by: "hand".into(), at: Utc::now(), evidence: None, track: Some(track) });
        }
        Ok(())
    }

    pub fn untick(&mut self, course: &Course, id: &str) -> anyhow::Result<()> {
        known_item(course, id)?;
        self.checklist.remove(id);
        Ok(())
    }

    pub fn set_note(&mut self, lesson: u32, text: &str) {
        if text.trim().is_empty() {
            self.notes.remove(&lesson);
        } else {
            self.notes.insert(lesson, text.trim_end().to_string());
        }
    }

    pub fn add_experiment(&mut self, kind: ExperimentKind, summary: impl Into<String>, figures: serde_json::Value) {
        self.experiments.push(experiment(kind, summary, figures));
    }

    /// Whether an experiment a lesson asks for (see `EXPERIMENTS`) was seen.
    pub fn experiment_seen(&self, name: &str) -> bool {
        self.experiment_seen_in(name, None)
    }

    /// Like `experiment_seen`, for a lesson: only experiments since it was last reset count.
    pub fn experiment_seen_in(&self, name: &str, lesson: Option<u32>) -> bool {
        let num = |e: &Experiment, k: &str| e.figures.get(k).and_then(serde_json::Value::as_f64).unwrap_or(0.0);
        let since = lesson.and_then(|l| self.reset_at.get(&l));
        self.experiments.iter().filter(|e| since.is_none_or(|t| e.at > *t)).any(|e| match name {
            "burst" => e.kind == ExperimentKind::Concurrency && num(e, "peak_depth") >= 2.0 && num(e, "drained") >= 1.0,
            "recovery" => {
                let lab = num(e, "in_flight_at_kill") >= 1.0
                    && num(e, "tasks") >= 1.0
                    && num(e, "succeeded") + num(e, "failed") >= num(e, "tasks");
                // Seen on the broker (the learner's own worker): messages waited and drained.
                let broker = observed(e) && num(e, "waited") >= 1.0 && num(e, "drained") >= 1.0;
                e.kind == ExperimentKind::Recovery && (lab || broker)
            }
            // A throughput at a known concurrency (a burst seen only on the broker has none).
            "concurrency" => e.kind == ExperimentKind::Concurrency && num(e, "concurrency") >= 1.0,
            _ => false,
        })
    }

    /// Items ticked on the learner's track.
    pub fn ticked(&self, course: &Course) -> usize {
        let track = self.track.unwrap_or_default();
        course.checklist().iter().filter(|i| self.tick_for(i, track).is_some()).count()
    }

    /// The tick of an item on `track`: one earned there, or on either track for an item that
    /// means the same on both (a tick from before ticks named their track counts as well).
    pub fn tick_for(&self, item: &super::ChecklistItem, track: Track) -> Option<&Tick> {
        self.checklist.get(&item.id).filter(|t| !item.track_specific() || t.track.is_none_or(|earned| earned == track))
    }
}

/// One change to the progress. The app keeps its changes as these and the store applies them
/// to what is on disk under a lock, so that the app and the command line (or two apps) never
/// erase each other's work.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// Check results; passes are earned by `lessons` (every lesson listing them when empty).
    Checks {
        results: Vec<CheckResult>,
        track: Track,
        lessons: Vec<u32>,
    },
    /// Clear one lesson (`Progress::reset_lesson`).
    ResetLesson(u32),
    /// A prediction of lesson `step` (its `[[predict]]` of this id).
    Predict {
        step: u32,
        id: String,
        value: f64,
    },
    /// An answer to quiz question `n` (from 0).
    QuizAnswer {
        n: usize,
        chosen: usize,
    },
    /// The screen the app shows.
    Screen(String),
    Tick(String),
    Untick(String),
    Note {
        step: u32,
        text: String,
    },
    /// A line added to a lesson's note.
    AppendNote {
        step: u32,
        text: String,
    },
    Experiment(Experiment),
    Track(Track),
    CurrentLesson(u32),
}

impl Progress {
    /// Applies a change; returns the checklist items it newly ticked.
    pub fn apply(&mut self, course: &Course, c: &Change) -> Vec<String> {
        match c {
            Change::Checks { results, track, lessons } => return self.record_checks_in(results, course, *track, lessons),
            Change::ResetLesson(step) => {
                self.reset_lesson(course, *step);
            }
            Change::Screen(s) => self.screen = Some(s.clone()),
            Change::Predict { step, id, value } => {
                if course.lesson(*step).is_some_and(|l| l.predict.iter().any(|p| p.id == *id)) && value.is_finite() {
                    self.predictions.entry(*step).or_default().insert(id.clone(), Prediction { value: *value, at: Utc::now() });
                }
            }
            Change::QuizAnswer { n, chosen } => {
                if let Some(q) = course.quiz().get(*n) {
                    self.quiz.insert(*n, QuizAnswer { chosen: *chosen, correct: *chosen == q.answer, at: Utc::now() });
                }
            }
            Change::Tick(id) => {
                let _ = self.tick(course, id);
            }
            Change::Untick(id) => {
                let _ = self.untick(course, id);
            }
            Change::Note { step, text } => self.set_note(*step, text),
            Change::AppendNote { step, text } => {
                let joined = match self.notes.get(step) {
                    Some(old) if !old.is_empty() => format!("{old}\n{text}"),
                    _ => text.clone(),
                };
                self.set_note(*step, &joined);
            }
            Change::Experiment(e) => self.experiments.push(e.clone()),
            Change::Track(t) => self.track = Some(*t),
            Change::CurrentLesson(n) => self.current_lesson = *n,
        }
        vec![]
    }
}

/// An experiment as recorded now.
/// Whether an experiment was seen on the broker (done outside the lab).
pub fn observed(e: &Experiment) -> bool {
    e.figures.get("observed").and_then(serde_json::Value::as_str) == Some("broker")
}

pub fn experiment(kind: ExperimentKind, summary: impl Into<String>, figures: serde_json::Value) -> Experiment {
    let figures = figures.as_object().map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
    Experiment { kind, at: Utc::now(), summary: summary.into(), figures, series: vec![], lesson: None }
}

fn known_item(course: &Course, id: &str) -> anyhow::Result<()> {
    if course.checklist().iter().any(|i| i.id == id) {
        Ok(())
    } else {
        let ids: Vec<&str> = course.checklist().iter().map(|i| i.id.as_str()).collect();
        anyhow::bail!("no checklist item {id:?} (items: {})", ids.join(", "))
    }
}

/// The progress file, with one writer at a time: an advisory lock on `progress.lock` is held
/// while the file is read, changed and replaced, so every writer works on the latest version.
#[derive(Clone, Debug)]
pub struct Store {
    path: PathBuf,
}

use crate::files::unique_beside;
/// The largest progress file read: far beyond what the recorded runs of a course take.
const PROGRESS_MAX: u64 = 16 * 1024 * 1024;

pub use crate::files::{private_dir, private_file};

impl Store {
    pub fn new(data_dir: &Path) -> Self {
        Store { path: data_dir.join("progress.json") }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Holds the advisory lock until the returned file is dropped.
    fn lock(&self) -> anyhow::Result<std::fs::File> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        private_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let lock_path = self.path.with_extension("lock");
        let f = match private_file(&lock_path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                std::fs::OpenOptions::new().write(true).open(&lock_path).with_context(|| format!("cannot open {}", lock_path.display()))?
            }
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", lock_path.display())),
        };
        f.lock().with_context(|| format!("cannot lock {}", lock_path.display()))?;
        Ok(f)
    }

    /// Reads the progress. A missing file is a fresh start; a damaged one (not UTF-8, not JSON,
    /// not progress) is moved aside under a name of its own, never overwritten, and reported.
    pub fn load(&self) -> anyhow::Result<Progress> {
        let bytes = match crate::files::read_capped_bytes(&self.path, PROGRESS_MAX) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Progress::new()),
            // Larger than any progress mqlab writes: damaged, moved aside below.
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => return self.set_aside(e.to_string()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", self.path.display())),
        };
        let parsed = std::str::from_utf8(&bytes)
            .map_err(|e| format!("not UTF-8: {e}"))
            .and_then(|t| serde_json::from_str::<Progress>(t).map_err(|e| e.to_string()));
        match parsed {
            Ok(p) => Ok(p),
            Err(e) => self.set_aside(e),
        }
    }

    /// Moves a damaged progress file aside under a name of its own, and says so.
    fn set_aside(&self, why: String) -> anyhow::Result<Progress> {
        let aside = unique_beside(&self.path, "damaged");
        std::fs::rename(&self.path, &aside).with_context(|| format!("cannot move aside {}", self.path.display()))?;
        anyhow::bail!("{} was damaged ({why}); it was kept as {} and a fresh progress will start", self.path.display(), aside.display())
    }

    /// Like `load`, but a damaged file starts fresh (after being moved aside) with a warning.
    pub fn load_or_fresh(&self) -> (Progress, Option<String>) {
        match self.load() {
            Ok(p) => (p, None),
            Err(e) => (Progress::new(), Some(format!("{e:#}"))),
        }
    }

    /// Replaces the file atomically: a temporary file of its own (0600), synced, then renamed.
    fn write(&self, p: &Progress) -> anyhow::Result<()> {
        use std::io::Write;
        let tmp = unique_beside(&self.path, "tmp");
        let mut f = private_file(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
        let res = f.write_all(serde_json::to_string_pretty(p)?.as_bytes()).and_then(|_| f.sync_all());
        if let Err(e) = res {
            let _ = std::fs::remove_file(&tmp);
            return Err(e).with_context(|| format!("cannot write {}", tmp.display()));
        }
        std::fs::rename(&tmp, &self.path).with_context(|| format!("cannot write {}", self.path.display()))?;
        Ok(())
    }

    /// Saves `p` as it is (under the lock). Prefer `update` or `apply`, which keep what other
    /// writers saved meanwhile.
    pub fn save(&self, p: &Progress) -> anyhow::Result<()> {
        let _lock = self.lock()?;
        self.write(p)
    }

    /// Loads the latest version, changes it and saves it, all under the lock.
    pub fn update<T>(&self, f: impl FnOnce(&mut Progress) -> T) -> anyhow::Result<T> {
        let _lock = self.lock()?;
        let (mut p, _) = self.load_or_fresh();
        let out = f(&mut p);
        self.write(&p)?;
        Ok(out)
    }

    /// Applies changes to the latest version; returns what is now saved.
    pub fn apply(&self, course: &Course, changes: &[Change]) -> anyhow::Result<Progress> {
        self.update(|p| {
            for c in changes {
                p.apply(course, c);
            }
            p.clone()
        })
    }

    pub fn reset(&self) -> anyhow::Result<()> {
        let _lock = self.lock()?;
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("cannot remove {}", self.path.display())),
        }
    }
}
