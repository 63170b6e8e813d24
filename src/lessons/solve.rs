//! A lesson's solution: the learner's own actions as the lesson tells them, kept as lesson data
//! (`[[solve]]` in the front matter) and run by `mqlab solve N` (and the app's solve key) one
//! step at a time, each shown before it runs.
//!
//! Every command of a solution is one the course has shown by then on that track (a line of a
//! shell block, or inline code), checked by `Course::validate`; the runner is the one the app's
//! `!` uses (same quoting, secrets only in the environment). Programs a solution leaves running
//! (the learner's Python worker) are recorded in `<data dir>/solve/processes.json` with the
//! lesson that started them, so that `mqlab reset --lesson N` can stop what lesson N started.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{Config, Track};

/// One step as written in the lesson data.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// What the step does, in the lesson's words.
    pub say: String,
    /// The track it belongs to; both when absent.
    #[serde(default)]
    pub track: Option<Track>,
    /// Lines the course shows, run as one script (a terminal session: `cd`, `source`, then a
    /// command).
    #[serde(default)]
    pub run: Vec<String>,
    /// Lines the course shows, run in the background as the program `name` (a worker in a
    /// terminal of its own); ready when its output shows `ready`.
    #[serde(default)]
    pub start: Vec<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub ready: Option<String>,
    /// Stop the program `name` started earlier: `kill` (SIGKILL to its process group, a crash)
    /// or `ctrl-c` (SIGINT: the warm shutdown a Ctrl-C in its terminal asks for).
    #[serde(default)]
    pub stop: Option<String>,
    #[serde(default)]
    pub signal: Option<String>,
    /// A file of the project (relative to the project folder) that gets `text` (a code block the
    /// lesson shows) appended, once.
    #[serde(default)]
    pub append: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    /// Wait until the broker shows this (`burst`, `recovery`).
    #[serde(default)]
    pub wait: Option<String>,
    /// How long a `start` or a `wait` may take (default 90 s).
    #[serde(default)]
    pub seconds: Option<u64>,
    /// For `wait = "checks"`: the checks waited for (default: all the lesson's).
    #[serde(default)]
    pub checks: Vec<String>,
    /// Skip the step when this check passes now (the namespace exists, the chart is installed):
    /// what the learner who did it already would do.
    #[serde(default)]
    pub skip_if: Option<String>,
    /// Answer the lesson's prediction of this id with `value` (what the lesson's own reasoning
    /// gives), before the experiment that answers it.
    #[serde(default)]
    pub predict: Option<String>,
    #[serde(default)]
    pub value: Option<f64>,
}

/// What can be waited for: the broker showing a burst or a recovery, or the lesson's checks all
/// passing (pods becoming Ready after an install).
pub const WAITS: &[&str] = &["burst", "recovery", "checks"];

/// A step made concrete for a track and a configuration.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Run { script: String },
    Start { name: String, script: String, ready: Option<String>, limit: Duration },
    Stop { name: String, signal: StopSignal },
    Append { file: PathBuf, text: String },
    Wait { what: String, limit: Duration, checks: Vec<String> },
    Predict { id: String, value: f64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGKILL to the whole process group: a crash, no goodbye to the broker.
    Kill,
    /// SIGINT, as Ctrl-C in the program's terminal: a warm shutdown.
    CtrlC,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Planned {
    pub say: String,
    pub action: Action,
}

impl Planned {
    /// The step as the learner reads it before it runs: the commands exactly as they run.
    pub fn shown(&self) -> Vec<String> {
        match &self.action {
            Action::Run { script } => script.lines().map(|l| format!("$ {l}")).collect(),
            Action::Start { name, script, ready, .. } => {
                let mut v = vec![format!("in the background, as {name} (its output in the solve log):")];
                v.extend(script.lines().map(|l| format!("$ {l}")));
                if let Some(r) = ready {
                    v.push(format!("… until its output says {r:?}"));
                }
                v
            }
            Action::Stop { name, signal: StopSignal::Kill } => {
                vec![format!("kill -9 {name} (SIGKILL to its process group: a crash, no goodbye to the broker)")]
            }
            Action::Stop { name, signal: StopSignal::CtrlC } => vec![format!("Ctrl-C in {name}'s terminal (SIGINT: a warm shutdown)")],
            Action::Append { file, text } => {
                let mut v = vec![format!("append to {}:", file.display())];
                v.extend(text.lines().map(|l| format!("  {l}")));
                v
            }
            Action::Wait { what, limit, checks } if what == "checks" && !checks.is_empty() => {
                vec![format!("wait (up to {} s) until these checks pass: {}", limit.as_secs(), checks.join(", "))]
            }
            Action::Wait { what, limit, .. } if what == "checks" => {
                vec![format!("wait (up to {} s) until this lesson's checks pass", limit.as_secs())]
            }
            Action::Wait { what, limit, .. } => vec![format!("wait (up to {} s) until the broker shows the {what}", limit.as_secs())],
            Action::Predict { id, value } => vec![format!("predict {id}: {value} (mqlab predict --answer {id}={value})")],
        }
    }
}

impl Step {
    /// The one action this step names, filled for `cfg`; an error names what is wrong with it.
    pub fn plan(&self, cfg: &Config) -> anyhow::Result<Planned> {
        let limit = Duration::from_secs(self.seconds.unwrap_or(90));
        let mut actions = vec![];
        if !self.run.is_empty() {
            actions.push(Action::Run { script: fill_shell(&self.run, cfg) });
        }
        if !self.start.is_empty() {
            let name = self.name.clone().ok_or_else(|| anyhow::anyhow!("a `start` step needs a `name`"))?;
            actions.push(Action::Start { name, script: fill_shell(&self.start, cfg), ready: self.ready.clone(), limit });
        }
        if let Some(name) = &self.stop {
            let signal = match self.signal.as_deref() {
                None | Some("kill") => StopSignal::Kill,
                Some("ctrl-c") => StopSignal::CtrlC,
                Some(other) => anyhow::bail!("unknown signal {other:?} (kill or ctrl-c)"),
            };
            actions.push(Action::Stop { name: name.clone(), signal });
        }
        if let Some(file) = &self.append {
            let text = self.text.clone().ok_or_else(|| anyhow::anyhow!("an `append` step needs its `text`"))?;
            actions.push(Action::Append { file: cfg.project_dir.join(file), text });
        }
        if let Some(what) = &self.wait {
            if !WAITS.contains(&what.as_str()) {
                anyhow::bail!("cannot wait for {what:?} (only {})", WAITS.join(", "));
            }
            actions.push(Action::Wait { what: what.clone(), limit, checks: self.checks.clone() });
        }
        if let Some(id) = &self.predict {
            let value = self.value.ok_or_else(|| anyhow::anyhow!("a `predict` step needs its `value`"))?;
            actions.push(Action::Predict { id: id.clone(), value });
        }
        match actions.len() {
            1 => Ok(Planned { say: self.say.clone(), action: actions.remove(0) }),
            0 => anyhow::bail!("step {:?} does nothing (give run, start, stop, append, wait or predict)", self.say),
            _ => anyhow::bail!("step {:?} does more than one thing", self.say),
        }
    }

    pub fn on(&self, track: Track) -> bool {
        self.track.is_none_or(|t| t == track)
    }
}

/// Shell lines as the lesson shows them, filled for `cfg` as shell code (values quoted, secrets
/// never: see `template`).
fn fill_shell(lines: &[String], cfg: &Config) -> String {
    let block = format!("```sh\n{}\n```\n", lines.join("\n"));
    let filled = super::template::fill(&block, cfg);
    filled.trim_start_matches("```sh\n").trim_end().trim_end_matches("```").trim_end().to_string()
}

/// A shell line as compared with what the course shows: without a trailing `# comment`.
pub fn bare(line: &str) -> &str {
    let t = line.trim();
    match t.find("  #").or_else(|| t.find(" # ")) {
        Some(i) => t[..i].trim_end(),
        None => t,
    }
}

/// Every shell line and inline code span of a lesson text, as `bare` lines.
pub fn shown_lines(text: &str) -> Vec<String> {
    let mut out = vec![];
    let mut in_shell: Option<bool> = None;
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("```") {
            in_shell = match in_shell {
                None => Some(super::template::is_shell_fence(t)),
                Some(_) => None,
            };
            continue;
        }
        match in_shell {
            Some(true) => out.push(bare(t).to_string()),
            Some(false) => {}
            None => {
                let mut rest = line;
                while let Some(i) = rest.find('`') {
                    let after = &rest[i + 1..];
                    let Some(j) = after.find('`') else { break };
                    out.push(bare(&after[..j]).to_string());
                    rest = &after[j + 1..];
                }
            }
        }
    }
    out
}

/// The code blocks of a lesson text in a language (`python`), without their fences.
pub fn code_blocks(text: &str, lang: &str) -> Vec<String> {
    super::blocks_of(text, |fence| fence.trim_start_matches('`').split_whitespace().next() == Some(lang))
}

// ---------------------------------------------------------------------------------------------
// The programs a solution started.

/// A program a solution left running.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Started {
    pub name: String,
    /// The lesson whose solution started it.
    pub lesson: u32,
    pub pid: u32,
    /// Its start time (see `process::Seen::started_at`), to tell it from a later process with the
    /// same pid.
    pub started_at: Option<u64>,
    pub command: String,
    pub log: PathBuf,
    pub at: DateTime<Utc>,
}

impl Started {
    /// Whether it still runs: the recorded pid, with the recorded start time, leading its group.
    pub fn alive(&self) -> bool {
        self.pid > 1
            && crate::process::alive(self.pid)
            && crate::process::seen(self.pid).is_some_and(|s| Some(s.started_at) == self.started_at && s.pgrp == self.pid)
    }
}

/// `<data dir>/solve/`: the programs' record and their logs.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("solve")
}

fn record_path(data_dir: &Path) -> PathBuf {
    dir(data_dir).join("processes.json")
}

/// The programs recorded as started by solutions (by name), whether or not they still run.
pub fn started(data_dir: &Path) -> BTreeMap<String, Started> {
    crate::files::read_capped(&record_path(data_dir), 1024 * 1024).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default()
}

fn save_started(data_dir: &Path, all: &BTreeMap<String, Started>) -> anyhow::Result<()> {
    crate::files::private_dir(&dir(data_dir))?;
    crate::files::write_atomic(&record_path(data_dir), serde_json::to_string_pretty(all)?.as_bytes())?;
    Ok(())
}

/// Starts `script` in the background in a process group of its own, its output to a log under
/// the data dir, and records it as `name`, started by `lesson`.
pub fn start(data_dir: &Path, lesson: u32, name: &str, script: &str, env: &[(String, String)]) -> anyhow::Result<Started> {
    use anyhow::Context;
    use std::os::unix::process::CommandExt;
    crate::files::private_dir(&dir(data_dir))?;
    let log = dir(data_dir).join(format!("{name}.log"));
    let out = crate::files::private_file_afresh(&log).with_context(|| format!("cannot write {}", log.display()))?;
    let mut cmd = std::process::Command::new(crate::shell::program());
    cmd.arg("-c").arg(script).stdin(std::process::Stdio::null()).stdout(out.try_clone()?).stderr(out).process_group(0);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().with_context(|| format!("cannot start {}", crate::shell::program()))?;
    let pid = child.id();
    let s = Started {
        name: name.to_string(),
        lesson,
        pid,
        started_at: crate::process::start_time(pid),
        command: script.to_string(),
        log,
        at: Utc::now(),
    };
    let mut all = started(data_dir);
    all.insert(name.to_string(), s.clone());
    save_started(data_dir, &all)?;
    Ok(s)
}

/// Stops the program `name` (its whole process group) and forgets it; whether one was running.
pub async fn stop(data_dir: &Path, name: &str, signal: StopSignal) -> anyhow::Result<bool> {
    let mut all = started(data_dir);
    let Some(s) = all.get(name).cloned() else { return Ok(false) };
    let was = s.alive();
    if was {
        let sig = match signal {
            StopSignal::Kill => crate::process::Signal::KILL,
            StopSignal::CtrlC => crate::process::Signal::INT,
        };
        crate::process::signal_group(s.pid, sig);
        // A warm shutdown finishes the running tasks: give it their time, then end it.
        let limit = if signal == StopSignal::Kill { Duration::from_secs(10) } else { Duration::from_secs(30) };
        if !gone(&s, limit).await {
            crate::process::signal_group(s.pid, crate::process::Signal::KILL);
            if !gone(&s, Duration::from_secs(10)).await {
                anyhow::bail!("{name} (pid {}) did not stop", s.pid);
            }
        }
    }
    all.remove(name);
    save_started(data_dir, &all)?;
    Ok(was)
}

/// Stops every program a lesson's solution started (all lessons' with None); their names.
pub async fn stop_lesson(data_dir: &Path, lesson: Option<u32>) -> anyhow::Result<Vec<String>> {
    let mut stopped = vec![];
    for (name, s) in started(data_dir) {
        if lesson.is_none_or(|l| l == s.lesson) && stop(data_dir, &name, StopSignal::Kill).await? {
            stopped.push(name);
        }
    }
    Ok(stopped)
}

async fn gone(s: &Started, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        // The whole group: a worker's pool processes die with it.
        if !s.alive() && !crate::process::group_alive(s.pid) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The last lines of a log, for an error.
pub fn tail(log: &Path, n: usize) -> String {
    let text = crate::files::read_capped(log, 4 * 1024 * 1024).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].iter().map(|l| crate::redact::mask_urls_in(l)).collect::<Vec<_>>().join("\n  ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_lines_are_shell_lines_and_inline_code_without_comments() {
        let text = "Run `mqlab submit tasks.add 1 2 --count 20` now.\n\n```sh run\nmqlab submit tasks.flaky 2 --wait    # fails twice\ncd x && y\n```\n\n```python\nprint(1)\n```\n";
        let lines = shown_lines(text);
        assert!(lines.contains(&"mqlab submit tasks.add 1 2 --count 20".to_string()));
        assert!(lines.contains(&"mqlab submit tasks.flaky 2 --wait".to_string()));
        assert!(lines.contains(&"cd x && y".to_string()));
        assert!(!lines.contains(&"print(1)".to_string()));
    }

    #[test]
    fn a_step_does_one_thing() {
        let cfg =
            Config::load_with(&Default::default(), &|k: &str| (k == "MQLAB_DATA_DIR").then(|| "/nonexistent/mqlab-test-data".to_string()))
                .unwrap();
        let step = |toml_text: &str| toml::from_str::<Step>(toml_text).unwrap();
        assert!(step("say = 'x'").plan(&cfg).is_err());
        assert!(step("say = 'x'\nrun = ['a']\nwait = 'burst'").plan(&cfg).is_err());
        assert!(step("say = 'x'\nwait = 'lunch'").plan(&cfg).is_err());
        assert!(step("say = 'x'\nstart = ['a']").plan(&cfg).is_err(), "a start needs a name");
        let p = step("say = 'x'\nrun = ['cd {{project_dir}}', 'ls']").plan(&cfg).unwrap();
        assert!(matches!(p.action, Action::Run { ref script } if script.ends_with("\nls") && !script.contains("{{")));
    }
}
