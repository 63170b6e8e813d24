//! LEARNINGS.md: key concepts, the learner's setup, the checklist, the experiments really run
//! with their figures, the questions answered, and the learner's notes. No password ever.

use std::fmt::Write;

use chrono::Utc;

use super::Course;
use super::progress::{ExperimentKind, Progress};
use crate::config::{Config, mask_url};
use crate::probes;

/// Renders LEARNINGS.md.
pub fn render(progress: &Progress, course: &Course, cfg: &Config) -> String {
    let mut md = String::new();
    let track = progress.track.unwrap_or(cfg.track);
    let _ = writeln!(md, "# Phase 1 Learnings\n");
    // Said only as far as the checks saw it.
    let seen = |id: &str| progress.checks.get(id).is_some_and(|r| r.passed_at.is_some());
    let where_ = match track {
        crate::config::Track::K3s if seen("kube.rabbitmq_pod") && seen("kube.redis_pod") => {
            "k3s: RabbitMQ and Redis deployed with Helm on a local K3s cluster (their pods seen Ready)"
        }
        crate::config::Track::K3s => "k3s: a local K3s cluster (RabbitMQ and Redis not seen running there yet)",
        crate::config::Track::Local => "local: RabbitMQ and Redis running directly on this machine, no cluster",
    };
    let _ = writeln!(md, "_Written by mqlab on {}. Track {where_}._\n", Utc::now().format("%Y-%m-%d %H:%M UTC"));

    let _ = writeln!(md, "## My Setup\n");
    let fact = |k: &str| progress.facts.get(k).cloned();
    let mut broker = format!("- **Broker:** {}", mask_url(&cfg.broker_url));
    if let Some(v) = fact("rabbitmq_version") {
        let _ = write!(broker, " — RabbitMQ {v}");
        if let Some(e) = fact("erlang_version") {
            let _ = write!(broker, ", Erlang {e}");
        }
    }
    let _ = writeln!(md, "{broker}");
    let mut results = format!("- **Result backend:** {}", mask_url(&cfg.result_backend));
    if let Some(v) = fact("redis_version") {
        let _ = write!(results, " — Redis {v}");
    }
    let _ = writeln!(md, "{results}");
    let _ = writeln!(md, "- **Management API:** {}", mask_url(&cfg.management_url));
    if track == crate::config::Track::K3s
        && let Some(node) = fact("node")
    {
        let _ = writeln!(
            md,
            "- **Cluster:** context `{}`, node {node}{}, namespace `{}`",
            fact("kube_context").unwrap_or_else(|| cfg.kube_context.clone()),
            fact("k3s_version").map(|v| format!(" ({v})")).unwrap_or_default(),
            cfg.namespace
        );
    }
    let _ = writeln!(md);

    let _ = writeln!(md, "## Key Concepts\n");
    for lesson in &course.lessons {
        for c in &lesson.concepts {
            let _ = writeln!(md, "### {}", c.name);
            for p in &c.points {
                let _ = writeln!(md, "- {p}");
            }
            let _ = writeln!(md);
        }
    }

    let items = course.checklist();
    let _ = writeln!(md, "## Verification Checklist ({}/{})\n", progress.ticked(course), items.len());
    for item in &items {
        let text = item.text_for(track);
        match progress.tick_for(item, track) {
            Some(t) if t.by == "hand" => {
                let _ = writeln!(md, "- [x] {text} — ticked by hand on {}", t.at.format("%Y-%m-%d"));
            }
            Some(t) => {
                let checks = t.by.trim_start_matches("check:").replace(',', ", ");
                let _ = writeln!(md, "- [x] {text} — {} by {checks}", t.at.format("%Y-%m-%d"));
                if let Some(e) = &t.evidence {
                    let _ = writeln!(md, "  - seen: {e}");
                }
            }
            None => {
                let _ = writeln!(md, "- [ ] {text}");
            }
        }
    }
    let _ = writeln!(md);

    let _ = writeln!(md, "## Experiments Conducted\n");
    if progress.experiments.is_empty() {
        let _ = writeln!(md, "None recorded yet: send tasks with `mqlab submit` or from the lab, and they appear here.\n");
    } else {
        for (i, e) in progress.experiments.iter().enumerate() {
            let tag = match e.kind {
                ExperimentKind::TasksSubmitted => "tasks",
                ExperimentKind::WorkerRun => "worker",
                ExperimentKind::Recovery => "recovery",
                ExperimentKind::Concurrency => "concurrency",
                ExperimentKind::EarlyAckLoss => "early acks",
            };
            let _ = writeln!(md, "{}. {} [{tag}] {}", i + 1, e.at.format("%Y-%m-%d %H:%M"), e.summary);
        }
        let _ = writeln!(md);
    }

    // Predictions beside what the experiments then showed: the learner's number first.
    let asked: Vec<(u32, &super::Predict)> = course
        .lessons
        .iter()
        .flat_map(|l| l.predict.iter().map(move |p| (l.step, p)))
        .filter(|(s, p)| progress.outcome(*s, p).is_some())
        .collect();
    if !asked.is_empty() {
        use super::progress::number;
        let _ = writeln!(
            md,
            "### My Predictions
"
        );
        for (step, p) in asked {
            let Some(o) = progress.outcome(step, p) else { continue };
            let _ = writeln!(md, "**Step {step}: {}**", p.q);
            match o.observed {
                Some((v, e)) => {
                    let _ = writeln!(
                        md,
                        "I predicted {} {unit}; the experiment showed {} {unit} ({}). {}\n",
                        number(o.predicted.value),
                        number(v),
                        e.summary,
                        p.why,
                        unit = p.unit
                    );
                }
                None => {
                    let _ = writeln!(md, "I predicted {} {}; not observed yet.\n", number(o.predicted.value), p.unit);
                }
            }
        }
    }

    // What the checks of this track saw when they passed.
    let on_track = |id: &str| course.all_checks(track).iter().any(|c| c == id);
    let charts = super::charts::all(progress);
    if !charts.is_empty() {
        let _ = writeln!(md, "### My Charts\n");
        for (file, _) in &charts {
            let what = match file.as_str() {
                "learnings-recovery.svg" => "Queue depth through my recovery experiment",
                "learnings-throughput.svg" => "Throughput of my bursts by concurrency",
                _ => "A killed worker: early against late acks",
            };
            let _ = writeln!(md, "![{what}]({file})\n");
        }
    }

    let passed: Vec<(&String, &super::progress::CheckRecord)> =
        progress.checks.iter().filter(|(id, r)| r.passed_at.is_some() && on_track(id)).collect();
    if !passed.is_empty() {
        let _ = writeln!(md, "## What the Checks Saw\n");
        for (id, r) in passed {
            let title = probes::info(id).map(|i| i.title).unwrap_or(id);
            let _ = writeln!(
                md,
                "- **{title}** — {} ({})",
                r.passed_detail.as_deref().unwrap_or(&r.detail),
                r.passed_at.unwrap_or(r.at).format("%Y-%m-%d %H:%M")
            );
        }
        let _ = writeln!(md);
    }

    // The learner's own answers (their notes of the step that asks) come first; the model
    // answers after them, said to be such.
    for lesson in course.lessons.iter().filter(|l| !l.questions.is_empty()) {
        let _ = writeln!(md, "## Questions\n");
        for q in &lesson.questions {
            let _ = writeln!(md, "- {}", q.q);
        }
        let _ = writeln!(md);
        match progress.notes.get(&lesson.step) {
            Some(mine) => {
                let _ = writeln!(md, "### My answers\n\n{}\n", mine.trim());
            }
            None => {
                let _ = writeln!(
                    md,
                    "_Not answered yet: write your answers in your notes for Step {} (`n` in the app) and export again._\n",
                    lesson.step
                );
            }
        }
        let _ = writeln!(md, "### Model answers\n");
        for q in &lesson.questions {
            let _ = writeln!(md, "**Q: {}**\nA: {}\n", q.q, q.a);
        }
    }

    let asked: Vec<u32> = course.lessons.iter().filter(|l| !l.questions.is_empty()).map(|l| l.step).collect();
    if progress.notes.keys().any(|s| !asked.contains(s)) {
        let _ = writeln!(md, "## My Notes\n");
        for (step, text) in progress.notes.iter().filter(|(s, _)| !asked.contains(s)) {
            let title = course.lesson(*step).map(|l| l.title_for(track)).unwrap_or("");
            let _ = writeln!(md, "### Step {step}: {title}\n\n{}\n", text.trim());
        }
    }
    let quiz = course.quiz();
    if !progress.quiz.is_empty() {
        let right = progress.quiz.values().filter(|a| a.correct).count();
        let _ = writeln!(md, "## Quiz: {right} of {} right\n", quiz.len());
        for (n, q) in quiz.iter().enumerate() {
            let _ = writeln!(md, "**{}. {}**", n + 1, q.q);
            match progress.quiz.get(&n) {
                Some(a) if a.correct => {
                    let _ = writeln!(md, "My answer: {} ✓\n", q.choices.get(a.chosen).map(String::as_str).unwrap_or("?"));
                }
                Some(a) => {
                    let _ = writeln!(
                        md,
                        "My answer: {} ✗ — right: {}. {}\n",
                        q.choices.get(a.chosen).map(String::as_str).unwrap_or("?"),
                        q.choices[q.answer],
                        q.why
                    );
                }
                None => {
                    let _ = writeln!(md, "_Not answered._\n");
                }
            }
        }
    }
    scrub_secrets(&md, cfg)
}

/// Writes the charts the recorded experiments allow beside LEARNINGS.md (in `dir`); returns
/// their paths. No experiment, no chart.
pub fn write_charts(dir: &std::path::Path, progress: &super::progress::Progress) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut out = vec![];
    for (name, svg) in super::charts::all(progress) {
        let path = dir.join(name);
        std::fs::write(&path, svg).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        out.push(path);
    }
    Ok(out)
}

/// Writes LEARNINGS.md. An existing, different file is kept beside it
/// (`LEARNINGS.md.bak-<time>`), never overwritten; its path is returned.
pub fn write(path: &std::path::Path, md: &str) -> std::io::Result<Option<std::path::PathBuf>> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut kept = None;
    // A file there that differs (or is too large to compare: it differs) is kept aside.
    let differs = match crate::files::read_capped(path, 16 * 1024 * 1024) {
        Ok(old) => old != md,
        Err(e) => e.kind() != std::io::ErrorKind::NotFound,
    };
    if differs {
        let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(format!(".bak-{}", Utc::now().format("%Y%m%d%H%M%S")));
        let backup = path.with_file_name(name);
        std::fs::rename(path, &backup)?;
        kept = Some(backup);
    }
    std::fs::write(path, md)?;
    Ok(kept)
}

/// Masks the password of every URL in the text, and any configured password wherever it appears.
pub fn scrub_secrets(text: &str, cfg: &Config) -> String {
    let mut out = mask_urls_in(text);
    let (_, mgmt_user, mgmt_pass) = cfg.management_login();
    let mut secrets = vec![(mgmt_user, mgmt_pass)];
    for raw in [&cfg.broker_url, &cfg.result_backend, &cfg.management_url] {
        if let Ok(u) = url::Url::parse(raw)
            && let Some(p) = u.password()
        {
            secrets.push((u.username().to_string(), p.to_string()));
        }
    }
    // A password that is also its user's name (guest/guest) is public knowledge; masking it
    // would mangle every user name.
    for (user, pass) in secrets {
        if pass.len() >= 3 && pass != user {
            out = out.replace(&pass, "**");
        }
    }
    out
}

/// `scheme://user:secret@host` → `scheme://user:**@host`, for every URL in a text.
pub use crate::redact::mask_urls_in;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_in_text_are_masked() {
        assert_eq!(
            mask_urls_in("use amqp://admin:admin123@localhost:5672// and (redis://:pw@h:6379/0)."),
            "use amqp://admin:**@localhost:5672// and (redis://:**@h:6379/0)."
        );
        assert_eq!(mask_urls_in("no urls here"), "no urls here");
    }
}
