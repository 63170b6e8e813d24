//! The lesson engine: lessons are Markdown files with a TOML front matter (`+++` … `+++`), one
//! per step of the curriculum, embedded in the binary (or read from `MQLAB_LESSONS_DIR` while
//! editing them).
//!
//! Text between `::: k3s` (or `::: local`) and `:::` is shown on that track only.

pub mod charts;
pub mod export;
pub mod observe;
pub mod progress;
pub mod project;
pub mod run;
pub mod solve;
pub mod solver;
pub mod template;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::config::Track;
use crate::probes;

const EMBEDDED: &[(&str, &str)] = &[
    ("01-start-cluster.md", include_str!("../../lessons/01-start-cluster.md")),
    ("02-deploy-rabbitmq.md", include_str!("../../lessons/02-deploy-rabbitmq.md")),
    ("03-management-ui.md", include_str!("../../lessons/03-management-ui.md")),
    ("04-deploy-redis.md", include_str!("../../lessons/04-deploy-redis.md")),
    ("05-celery-app.md", include_str!("../../lessons/05-celery-app.md")),
    ("06-first-task.md", include_str!("../../lessons/06-first-task.md")),
    ("07-message-flow.md", include_str!("../../lessons/07-message-flow.md")),
    ("08-what-you-built.md", include_str!("../../lessons/08-what-you-built.md")),
    ("09-experiments.md", include_str!("../../lessons/09-experiments.md")),
    ("10-document.md", include_str!("../../lessons/10-document.md")),
    ("11-verification.md", include_str!("../../lessons/11-verification.md")),
];

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackChecks {
    #[serde(default)]
    pub k3s: Vec<String>,
    #[serde(default)]
    pub local: Vec<String>,
}

/// One item of the verification checklist (Step 11).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChecklistItem {
    pub id: String,
    pub text: String,
    /// The item as said on the local track (no cluster, Helm or port-forward there).
    #[serde(default)]
    pub text_local: Option<String>,
    /// Why it is ticked by hand (what mqlab cannot observe).
    #[serde(default)]
    pub why_manual: Option<String>,
    /// Checks that tick this item when they all pass (k3s track, and local unless overridden).
    #[serde(default)]
    pub ticked_by: Vec<String>,
    #[serde(default)]
    pub ticked_by_local: Option<Vec<String>>,
    /// Ticked by the learner by hand.
    #[serde(default)]
    pub manual: bool,
}

impl ChecklistItem {
    pub fn text_for(&self, track: Track) -> &str {
        match (track, &self.text_local) {
            (Track::Local, Some(t)) => t,
            _ => &self.text,
        }
    }

    /// What ticks it, in words.
    pub fn how(&self, track: Track) -> String {
        if self.manual {
            return self.why_manual.clone().unwrap_or_else(|| "tick by hand when done".into());
        }
        let titles: Vec<&str> = self.ticked_by(track).iter().map(|c| probes::info(c).map(|i| i.title).unwrap_or(c)).collect();
        format!("ticked when these checks pass: {}", titles.join("; "))
    }

    /// Whether it says (and checks) something different on each track.
    pub fn track_specific(&self) -> bool {
        self.text_local.is_some() || self.ticked_by_local.is_some()
    }

    pub fn ticked_by(&self, track: Track) -> &[String] {
        match (track, &self.ticked_by_local) {
            (Track::Local, Some(l)) => l,
            _ => &self.ticked_by,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Concept {
    pub name: String,
    pub points: Vec<String>,
}

/// A question of the end-of-course quiz: choices, the right one (from 0), and why.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuizQuestion {
    pub q: String,
    pub choices: Vec<String>,
    pub answer: usize,
    pub why: String,
}

/// A prediction the lesson asks for before an experiment: a number the learner gives, compared
/// with the figure the experiment then records (`figure` of the first experiment of `kind` in
/// this lesson after the prediction, among those whose figures match `when`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Predict {
    pub id: String,
    /// The question, as the lesson asks it.
    pub q: String,
    pub kind: progress::ExperimentKind,
    pub figure: String,
    /// Figures the experiment must have with these values (e.g. `concurrency = 16`).
    #[serde(default)]
    pub when: BTreeMap<String, f64>,
    /// What the number counts ("messages", "s").
    pub unit: String,
    /// Why the outcome is what it is, shown beside it once observed (and after the learner's
    /// answer in LEARNINGS.md).
    pub why: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    pub q: String,
    pub a: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FrontMatter {
    step: u32,
    title: String,
    /// The title on the local track, where the cluster's words do not fit.
    #[serde(default)]
    title_local: Option<String>,
    summary: String,
    #[serde(default)]
    checks: TrackChecks,
    #[serde(default)]
    checklist: Vec<ChecklistItem>,
    #[serde(default)]
    concepts: Vec<Concept>,
    #[serde(default)]
    questions: Vec<Question>,
    /// Experiments that must have been seen before the step counts as done.
    #[serde(default)]
    experiments: Vec<String>,
    /// The solution: the learner's actions as this lesson tells them (`solve::Step`).
    #[serde(default)]
    solve: Vec<solve::Step>,
    #[serde(default)]
    quiz: Vec<QuizQuestion>,
    /// Checks of a state that breaks the lesson's experiments without failing its checks (two
    /// workers on the queue): run with the checks, shown only when they find it, never a ✗.
    #[serde(default)]
    diagnose: Vec<String>,
    /// How long the solution's steps take, measured (`mqlab solve N` prints it), in seconds.
    #[serde(default)]
    solve_seconds: u32,
    /// 1 (read and run) to 3 (several terminals, predicting, reading logs).
    #[serde(default = "one_u8")]
    difficulty: u8,
    /// Queues the lesson has the learner make besides the task queue (`math`, `orders.eu`): a
    /// solution that declares them records them, and resetting the lesson deletes them.
    #[serde(default)]
    queues: Vec<String>,
    /// Predictions asked before the lesson's experiments.
    #[serde(default)]
    predict: Vec<Predict>,
}

fn one_u8() -> u8 {
    1
}

#[derive(Clone, Debug)]
pub struct Lesson {
    pub step: u32,
    pub file: String,
    pub title: String,
    /// The title on the local track, when it differs (`title_for`).
    pub title_local: Option<String>,
    pub summary: String,
    pub checks: TrackChecks,
    pub checklist: Vec<ChecklistItem>,
    pub concepts: Vec<Concept>,
    pub questions: Vec<Question>,
    /// Experiments (`burst`, `recovery`, `concurrency`) seen before the step is done.
    pub experiments: Vec<String>,
    /// The solution, for both tracks (`solution` picks a track's steps).
    pub solve: Vec<solve::Step>,
    pub solve_seconds: u32,
    pub difficulty: u8,
    /// Diagnoses run with the checks (see the front matter's `diagnose`).
    pub diagnose: Vec<String>,
    pub quiz: Vec<QuizQuestion>,
    /// Queues of the lesson's own besides the task queue (see the front matter's `queues`).
    pub queues: Vec<String>,
    pub predict: Vec<Predict>,
    body: String,
}

impl Lesson {
    pub fn parse(file: &str, text: &str) -> anyhow::Result<Lesson> {
        let text = text.replace("\r\n", "\n");
        let rest = text.strip_prefix("+++\n").with_context(|| format!("{file}: must start with a +++ front matter line"))?;
        let end = rest.find("\n+++\n").with_context(|| format!("{file}: the front matter has no closing +++ line"))?;
        let fm: FrontMatter = toml::from_str(&rest[..end]).map_err(|e| anyhow::anyhow!("{file}: front matter: {}", e.message()))?;
        Ok(Lesson {
            step: fm.step,
            file: file.to_string(),
            title: fm.title,
            title_local: fm.title_local,
            summary: fm.summary,
            checks: fm.checks,
            checklist: fm.checklist,
            concepts: fm.concepts,
            questions: fm.questions,
            experiments: fm.experiments,
            solve: fm.solve,
            solve_seconds: fm.solve_seconds,
            diagnose: fm.diagnose,
            quiz: fm.quiz,
            queues: fm.queues,
            predict: fm.predict,
            difficulty: fm.difficulty.clamp(1, 3),
            body: rest[end + 5..].to_string(),
        })
    }

    /// The title as the learner's track says it.
    pub fn title_for(&self, track: Track) -> &str {
        match (track, &self.title_local) {
            (Track::Local, Some(t)) => t,
            _ => &self.title,
        }
    }

    pub fn checks(&self, track: Track) -> &[String] {
        match track {
            Track::K3s => &self.checks.k3s,
            Track::Local => &self.checks.local,
        }
    }

    /// The step's state: ✓ when every check was earned on this lesson (see `progress::Earned`:
    /// it stays earned when an experiment makes it false now), every experiment it asks for
    /// was seen and its checklist is ticked; ✗ when a check not earned yet fails now; · for a
    /// step with nothing to check; blank otherwise.
    pub fn mark(&self, track: Track, progress: &progress::Progress) -> char {
        let ids = self.checks(track);
        if ids.is_empty() && self.experiments.is_empty() && self.checklist.is_empty() {
            return '·';
        }
        let earned = |id: &String| progress.earned_for(self.step, id, track).is_some();
        let failing = |id: &String| progress.checks.get(id).is_some_and(|r| r.status == probes::Status::Fail);
        if ids.iter().any(|id| !earned(id) && failing(id)) {
            return '✗';
        }
        let seen = self.experiments.iter().all(|e| self.experiment_seen(progress, e));
        // A step with a checklist is done when every item is ticked on this track (by hand too).
        let ticked = self.checklist.iter().all(|item| progress.tick_for(item, track).is_some());
        if ids.iter().all(earned) && seen && ticked { '✓' } else { ' ' }
    }

    /// What this lesson still needs on `track`, in words: checks not earned, experiments not
    /// seen, checklist items not ticked. Empty when it is done (or has nothing to check).
    pub fn to_do(&self, track: Track, progress: &progress::Progress) -> Vec<String> {
        let mut v: Vec<String> = self
            .checks(track)
            .iter()
            .filter(|id| progress.earned_for(self.step, id, track).is_none())
            .map(|id| format!("check {id}"))
            .collect();
        v.extend(self.missing_experiments(progress).into_iter().map(|e| format!("experiment {e}")));
        v.extend(self.checklist.iter().filter(|i| progress.tick_for(i, track).is_none()).map(|i| format!("tick {}", i.id)));
        v
    }

    /// About how long the lesson takes: reading (200 words a minute) plus what its solution's
    /// steps take (`solve_seconds`, measured by running it), in minutes.
    pub fn minutes(&self, track: Track) -> u32 {
        let words = self.text(track).split_whitespace().count() as u32;
        let reading = words.div_ceil(200);
        (reading + self.solve_seconds.div_ceil(60)).max(1)
    }

    /// Whether an experiment this lesson asks for was seen (in this lesson, or in records from
    /// before lessons were noted).
    pub fn experiment_seen(&self, progress: &progress::Progress, name: &str) -> bool {
        progress.experiment_seen_in(name, Some(self.step))
    }

    /// The experiments this step asks for that were not seen yet.
    pub fn missing_experiments(&self, progress: &progress::Progress) -> Vec<&str> {
        self.experiments.iter().filter(|e| !self.experiment_seen(progress, e)).map(String::as_str).collect()
    }

    /// The solution's steps on a track.
    pub fn solution(&self, track: Track) -> Vec<&solve::Step> {
        self.solve.iter().filter(|s| s.on(track)).collect()
    }

    /// The Markdown text for one track.
    pub fn text(&self, track: Track) -> String {
        let mut out = String::new();
        let mut showing = true;
        let mut in_code = false;
        for line in self.body.lines() {
            let t = line.trim();
            if t.starts_with("```") {
                in_code = !in_code;
            }
            if !in_code && t.starts_with(":::") {
                let tag = t.trim_start_matches(':').trim();
                showing = match tag {
                    "" => true,
                    "k3s" => track == Track::K3s,
                    "local" => track == Track::Local,
                    _ => true,
                };
                continue;
            }
            if showing {
                out.push_str(line);
                out.push('\n');
            }
        }
        out.trim().to_string() + "\n"
    }

    /// The shell commands as the learner sees them: filled with the live configuration.
    pub fn commands_with(&self, track: Track, cfg: &crate::config::Config) -> Vec<String> {
        commands_of(&template::fill(&self.text(track), cfg))
    }

    /// The commands of this step that can be run from the app (```` ```sh run ```` blocks),
    /// exactly as shown and run: templated values quoted, secrets only as environment variables
    /// (see `run::env_for`).
    pub fn runnable(&self, track: Track, cfg: &crate::config::Config) -> Vec<Runnable> {
        let runs = |fence: &str| fence.trim_start_matches('`').split_whitespace().skip(1).any(|w| w == "run");
        blocks_of(&template::fill(&self.text(track), cfg), runs).into_iter().map(|command| Runnable { command }).collect()
    }

    /// The shell commands of the lesson (the ```sh blocks), for one track, unfilled.
    pub fn commands(&self, track: Track) -> Vec<String> {
        commands_of(&self.text(track))
    }
}

fn commands_of(text: &str) -> Vec<String> {
    blocks_of(text, |fence| fence.starts_with("```sh") || fence.starts_with("```bash"))
}

/// The code blocks whose opening fence `opens` accepts, their text without the fences.
fn blocks_of(text: &str, opens: impl Fn(&str) -> bool) -> Vec<String> {
    let mut out = vec![];
    let mut current: Option<String> = None;
    for line in text.lines() {
        let t = line.trim_start();
        match &mut current {
            None if t.starts_with("```") && opens(t) => current = Some(String::new()),
            Some(block) if t.starts_with("```") => {
                out.push(block.trim_end().to_string());
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    out
}

impl Course {
    /// What is wrong with the solutions: a step that does not do exactly one thing, a command the
    /// course has not shown on that track by then, code the lesson does not show, a program
    /// stopped that no solution started.
    fn validate_solutions(&self) -> Vec<String> {
        let mut problems = vec![];
        let cfg = crate::config::Config::load_with(&Default::default(), &|_| None).ok();
        for track in [Track::K3s, Track::Local] {
            let mut shown: Vec<String> = vec![];
            let mut code: Vec<String> = vec![];
            let mut names: Vec<String> = vec![];
            for l in &self.lessons {
                let text = l.text(track);
                shown.extend(solve::shown_lines(&text));
                code.extend(solve::code_blocks(&text, "python"));
                for s in l.solution(track) {
                    let at = format!("{} (solution, {} track, {:?})", l.file, track.as_str(), s.say);
                    if let Some(cfg) = &cfg
                        && let Err(e) = s.plan(cfg)
                    {
                        problems.push(format!("{at}: {e}"));
                    }
                    for line in s.run.iter().chain(&s.start) {
                        if !shown.iter().any(|l| l == solve::bare(line)) {
                            problems.push(format!("{at}: runs {line:?}, which the course has not shown on this track by then"));
                        }
                    }
                    if let Some(text) = &s.text
                        && !code.iter().any(|c| c.trim() == text.trim())
                    {
                        problems.push(format!("{at}: appends code that is not a Python block of the course by then"));
                    }
                    if let Some(n) = &s.name {
                        names.push(n.clone());
                    }
                    for c in s.skip_if.iter().chain(&s.checks) {
                        if probes::info(c).is_none() {
                            problems.push(format!("{at}: names unknown check {c:?}"));
                        }
                    }
                    if let Some(n) = &s.stop
                        && !names.contains(n)
                    {
                        problems.push(format!("{at}: stops {n:?}, which no solution started before"));
                    }
                    if let Some(id) = &s.predict
                        && !l.predict.iter().any(|p| p.id == *id)
                    {
                        problems.push(format!("{at}: predicts {id:?}, which this lesson does not ask"));
                    }
                }
            }
        }
        problems
    }
}

/// A command a lesson lets the learner run from the app: what the screen shows is what runs
/// (`sh -c`), to the byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Runnable {
    pub command: String,
}

/// All lessons, in step order.
#[derive(Clone, Debug)]
pub struct Course {
    pub lessons: Vec<Lesson>,
}

impl Course {
    /// The embedded lessons, or those in `MQLAB_LESSONS_DIR` when it is set.
    pub fn load() -> anyhow::Result<Course> {
        match std::env::var_os("MQLAB_LESSONS_DIR") {
            Some(dir) => Self::from_dir(Path::new(&dir)),
            None => Self::embedded(),
        }
    }

    pub fn embedded() -> anyhow::Result<Course> {
        Self::from_files(EMBEDDED.iter().map(|(f, t)| (f.to_string(), t.to_string())).collect())
    }

    pub fn from_dir(dir: &Path) -> anyhow::Result<Course> {
        let mut files = vec![];
        for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read lessons from {}", dir.display()))? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "md") {
                let name = path.file_name().unwrap().to_string_lossy().to_string();
                files.push((name, crate::files::read_capped(&path, 1024 * 1024)?));
            }
        }
        Self::from_files(files)
    }

    fn from_files(files: Vec<(String, String)>) -> anyhow::Result<Course> {
        let mut lessons = files.iter().map(|(f, t)| Lesson::parse(f, t)).collect::<anyhow::Result<Vec<_>>>()?;
        lessons.sort_by_key(|l| l.step);
        let course = Course { lessons };
        let problems = course.validate();
        if !problems.is_empty() {
            bail!("the lessons have problems:\n  {}", problems.join("\n  "));
        }
        Ok(course)
    }

    pub fn lesson(&self, step: u32) -> Option<&Lesson> {
        self.lessons.iter().find(|l| l.step == step)
    }

    /// The verification checklist (Step 11).
    pub fn checklist(&self) -> Vec<&ChecklistItem> {
        self.lessons.iter().flat_map(|l| l.checklist.iter()).collect()
    }

    /// Where the learner is and what comes next: the first lesson from the current one on that
    /// still needs something (or an earlier one left undone), with what it needs.
    pub fn next(&self, track: Track, progress: &progress::Progress) -> Option<(&Lesson, Vec<String>)> {
        let current = progress.current_lesson;
        let undone = |l: &&Lesson| !l.to_do(track, progress).is_empty();
        self.lessons
            .iter()
            .filter(|l| l.step >= current)
            .find(undone)
            .or_else(|| self.lessons.iter().find(undone))
            .map(|l| (l, l.to_do(track, progress)))
    }

    /// The end-of-course quiz: every lesson's questions, in order.
    pub fn quiz(&self) -> Vec<&QuizQuestion> {
        self.lessons.iter().flat_map(|l| l.quiz.iter()).collect()
    }

    /// Every check named by a lesson for a track, each once, in lesson order.
    pub fn all_checks(&self, track: Track) -> Vec<String> {
        let mut out: Vec<String> = vec![];
        for l in &self.lessons {
            for c in l.checks(track) {
                if !out.contains(c) {
                    out.push(c.clone());
                }
            }
        }
        out
    }

    /// What is wrong with the lesson data: unknown checks, checklist items nothing ticks, gaps
    /// in the steps.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = vec![];
        for (i, l) in self.lessons.iter().enumerate() {
            if l.step != i as u32 + 1 {
                problems.push(format!("{}: step {} out of order (expected {})", l.file, l.step, i + 1));
            }
            for c in l.checks.k3s.iter().chain(&l.checks.local).chain(&l.diagnose) {
                if probes::info(c).is_none() {
                    problems.push(format!("{}: unknown check {c:?}", l.file));
                }
            }
            for e in &l.experiments {
                if !progress::EXPERIMENTS.iter().any(|(name, _)| name == e) {
                    problems.push(format!("{}: unknown experiment {e:?}", l.file));
                }
            }
            for (i, p) in l.predict.iter().enumerate() {
                if l.predict[..i].iter().any(|q| q.id == p.id) {
                    problems.push(format!("{}: prediction {:?} asked twice", l.file, p.id));
                }
            }
            for track in [Track::K3s, Track::Local] {
                for block in blocks_of(&l.text(track), template::is_shell_fence) {
                    for secret in template::SECRET_VALUES {
                        if block.contains(&format!("{{{{{secret}}}}}")) {
                            problems.push(format!(
                                "{}: shell code uses {{{{{secret}}}}}, which carries a password: name an environment variable instead ({{{{mgmt_auth}}}})",
                                l.file
                            ));
                        }
                    }
                }
            }
            if l.title.trim().is_empty() || l.body.trim().is_empty() {
                problems.push(format!("{}: empty title or text", l.file));
            }
            for item in &l.checklist {
                for track in [Track::K3s, Track::Local] {
                    let by = item.ticked_by(track);
                    if by.is_empty() && !item.manual {
                        problems.push(format!(
                            "{}: checklist item {:?} is ticked by no check on the {} track and is not manual",
                            l.file,
                            item.id,
                            track.as_str()
                        ));
                    }
                    for c in by {
                        if probes::info(c).is_none() {
                            problems.push(format!("{}: checklist item {:?} names unknown check {c:?}", l.file, item.id));
                        }
                    }
                }
            }
        }
        problems.extend(self.validate_solutions());
        for (i, q) in self.quiz().iter().enumerate() {
            if q.choices.len() < 2 || q.answer >= q.choices.len() {
                problems.push(format!("quiz question {} needs two choices or more and an answer among them", i + 1));
            }
        }
        let ids: Vec<&str> = self.checklist().iter().map(|i| i.id.as_str()).collect();
        for (i, id) in ids.iter().enumerate() {
            if ids[..i].contains(id) {
                problems.push(format!("checklist item id {id:?} is used twice"));
            }
        }
        problems
    }
}
