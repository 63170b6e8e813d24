//! The lesson engine: lesson data, progress, the checklist, export, and the headless commands.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::fake_kube::{FakeKube, Scenario};
use mqlab::config::{Config, Overrides, Track};
use mqlab::lessons::Course;
use mqlab::lessons::export;
use mqlab::lessons::progress::{ExperimentKind, Progress, Store};
use mqlab::probes::{self, CheckResult, Status};
use serde_json::{Value, json};

#[test]
fn lesson_files_are_valid() {
    let course = Course::embedded().unwrap();
    assert!(course.validate().is_empty(), "{:?}", course.validate());
    assert_eq!(course.lessons.len(), 11);
    for (i, l) in course.lessons.iter().enumerate() {
        assert_eq!(l.step as usize, i + 1);
        for c in l.checks(Track::K3s).iter().chain(l.checks(Track::Local)) {
            assert!(probes::info(c).is_some(), "{}: {c}", l.file);
        }
    }
    // Every checklist item is ticked by some check, or is manual.
    let items = course.checklist();
    assert_eq!(items.len(), 10);
    for item in &items {
        assert!(item.manual || (!item.ticked_by(Track::K3s).is_empty() && !item.ticked_by(Track::Local).is_empty()), "{}", item.id);
    }
    // The files on disk are the ones embedded.
    let from_disk = Course::from_dir(&std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("lessons")).unwrap();
    assert_eq!(from_disk.lessons.len(), 11);
}

#[test]
fn lessons_are_right_for_today() {
    let course = Course::embedded().unwrap();
    let env = |k: &str| match k {
        "MQLAB_CONFIG" => Some("/nonexistent".to_string()),
        "MQLAB_DATA_DIR" => Some("/nonexistent-data".to_string()),
        _ => None,
    };
    let cfg = Config::load_with(&Overrides::default(), &env).unwrap();
    let l2 = course.lesson(2).unwrap();
    let cmds = l2.commands_with(Track::K3s, &cfg).join("\n");
    assert!(cmds.contains("--set image.repository=bitnamilegacy/rabbitmq"), "{cmds}");
    assert!(cmds.contains("global.security.allowInsecureImages=true"));
    assert!(cmds.contains("kubectl logs -f statefulset/rabbitmq -n messaging"));
    assert!(!cmds.contains("deployment/rabbitmq"));
    assert!(l2.text(Track::K3s).contains("ImagePullBackOff"));
    assert!(cmds.contains("--set image.tag=4.1.3-debian-12-r1") && cmds.contains("metrics.enabled=true"), "{cmds}");
    let l4 = course.lesson(4).unwrap().commands_with(Track::K3s, &cfg).join("\n");
    assert!(
        l4.contains("--set image.repository=bitnamilegacy/redis")
            && l4.contains("oci://registry-1.docker.io/bitnamicharts/redis --version 22.0.7")
            && l4.contains("svc/redis-master")
            && l4.contains("architecture=standalone"),
        "{l4}"
    );
    // Helm's warning about the substituted image is announced, and the failure path is given.
    assert!(l2.text(Track::K3s).contains("SECURITY WARNING") && l2.text(Track::K3s).contains("If the image does not pull"));
    // Experiment 2's snippet is valid Python (the original lacked a comma before indent=2).
    let l9 = course.lesson(9).unwrap().text(Track::K3s);
    assert!(l9.contains("}, indent=2))") && !l9.contains("}indent=2"));
    // Track-specific text.
    let l1 = course.lesson(1).unwrap();
    assert!(l1.text(Track::K3s).contains("kubectl config use-context rancher-desktop"));
    assert!(!l1.text(Track::Local).contains("use-context"));
    assert!(l1.text(Track::Local).contains("mqlab sandbox up"));
    assert!(l1.checks(Track::Local).iter().all(|c| !c.starts_with("kube.")));
}

#[test]
fn broken_lesson_data_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("01-x.md"), "+++\nstep = 1\ntitle = \"X\"\nsummary = \"s\"\n[checks]\nk3s = [\"kube.nope\"]\n[[checklist]]\nid = \"a\"\ntext = \"A\"\n+++\nbody\n").unwrap();
    let e = Course::from_dir(dir.path()).unwrap_err().to_string();
    assert!(e.contains("unknown check \"kube.nope\""), "{e}");
    assert!(e.contains("checklist item \"a\" is ticked by no check"), "{e}");
    std::fs::write(dir.path().join("01-x.md"), "no front matter").unwrap();
    assert!(Course::from_dir(dir.path()).unwrap_err().to_string().contains("front matter"));
}

fn result(id: &str, status: Status) -> CheckResult {
    CheckResult {
        id: id.into(),
        title: id.into(),
        status,
        detail: format!("{id} detail"),
        hint: None,
        facts: Default::default(),
        at: chrono::Utc::now(),
        millis: 1,
        expected: String::new(),
        call: String::new(),
    }
}

#[test]
fn passing_checks_tick_the_checklist_and_ticks_are_kept() {
    let course = Course::embedded().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let mut p = store.load().unwrap();
    // mqlab's own tasks going through prove the pipeline, not the learner's Python: nothing ticks.
    let newly = p.record_checks(
        &[result("tasks.roundtrip", Status::Pass), result("tasks.failure", Status::Pass), result("mgmt.celery_queue", Status::Pass)],
        &course,
        Track::K3s,
    );
    assert_eq!(newly, Vec::<String>::new());
    // A result of a task mqlab did not send: the learner's .delay().
    let newly = p.record_checks(&[result("results.learner", Status::Pass)], &course, Track::K3s);
    assert_eq!(newly, ["delay"]);
    let newly = p.record_checks(&[result("celery.py_worker", Status::Pass)], &course, Track::K3s);
    assert_eq!(newly, ["worker"]);
    // The app is the learner's once their worker registers its tasks.
    let newly = p.record_checks(&[result("celery.py_tasks", Status::Pass)], &course, Track::K3s);
    assert_eq!(newly, ["celery_app"]);
    assert_eq!(p.checklist["worker"].evidence.as_deref().map(|e| e.contains("celery.py_worker detail")), Some(true));
    // A later failure does not untick, and the evidence stays the passing one.
    p.record_checks(&[result("results.learner", Status::Fail)], &course, Track::K3s);
    assert!(p.checklist.contains_key("delay"));
    assert!(p.checklist["delay"].evidence.as_deref().unwrap().contains("results.learner detail"));
    // What cannot be observed is ticked by hand only.
    assert!(course.checklist().iter().find(|i| i.id == "get").unwrap().manual);
    p.tick(&course, "explain").unwrap();
    assert!(p.tick(&course, "nonsense").is_err());
    p.set_note(3, "the UI shows rates every 5 s");
    store.save(&p).unwrap();
    let back = store.load().unwrap();
    assert_eq!(back, p);
    assert_eq!(back.checklist["explain"].by, "hand");
    assert_eq!(back.ticked(&course), 4);
}

#[test]
fn a_damaged_progress_file_is_kept_aside_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    std::fs::write(store.path(), "{ this is not json").unwrap();
    let e = store.load().unwrap_err().to_string();
    assert!(e.contains("damaged") && e.contains("kept as"), "{e}");
    let kept: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
    assert!(kept.iter().any(|n| n.starts_with("progress.json.damaged-")), "{kept:?}");
    let aside = kept.iter().find(|n| n.starts_with("progress.json.damaged-")).unwrap();
    assert_eq!(std::fs::read_to_string(dir.path().join(aside)).unwrap(), "{ this is not json");
    assert_eq!(store.load().unwrap(), Progress::new());
}

fn secret_config(dir: &std::path::Path) -> Config {
    let d = dir.to_string_lossy().to_string();
    let env = move |k: &str| match k {
        "MQLAB_CONFIG" => Some("/nonexistent".to_string()),
        "MQLAB_DATA_DIR" => Some(d.clone()),
        "MQLAB_BROKER_URL" => Some("amqp://admin:S3cretPass@localhost:5672//".into()),
        "MQLAB_RESULT_BACKEND" => Some("redis://:RedisPw99@localhost:6379/0".into()),
        _ => None,
    };
    Config::load_with(&Overrides::default(), &env).unwrap()
}

#[test]
fn export_has_what_was_done_and_no_secret() {
    let course = Course::embedded().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = secret_config(dir.path());
    let mut p = Progress::new();
    let mut r = result("mgmt.login", Status::Pass);
    r.detail = "logged in to http://localhost:15672 as admin: RabbitMQ 4.1.3, Erlang 27".into();
    r.facts.insert("rabbitmq_version".into(), "4.1.3".into());
    let mut n = result("kube.node_ready", Status::Pass);
    n.facts.insert("node".into(), "lima-rancher-desktop".into());
    n.facts.insert("k3s_version".into(), "v1.33.4+k3s1".into());
    p.record_checks(&[r, n, result("results.learner_failure", Status::Pass)], &course, Track::K3s);
    p.add_experiment(
        ExperimentKind::TasksSubmitted,
        "Sent 20 × tasks.hello('World'): 20 SUCCESS, 0 FAILURE in 10.31 s (2 tasks/s)",
        json!({"count": 20}),
    );
    p.add_experiment(
        ExperimentKind::Recovery,
        "Worker killed with 20 tasks queued; after restart all 20 reached SUCCESS in 6.2 s, none lost",
        json!({}),
    );
    p.set_note(7, "Killing the worker left 20 messages Ready.\nMy broker URL was amqp://admin:S3cretPass@localhost:5672// and the password S3cretPass.");
    let md = export::render(&p, &course, &cfg);
    for needle in [
        "# Phase 1 Learnings",
        "## Key Concepts",
        "### RabbitMQ",
        "RabbitMQ 4.1.3",
        "node lima-rancher-desktop (v1.33.4+k3s1)",
        "## Verification Checklist (1/10)",
        "- [x] Handle task failures gracefully",
        "  - seen: results.learner_failure detail",
        "- [ ] Create a Celery application with custom tasks",
        "## Experiments Conducted",
        "1. ",
        "[tasks] Sent 20 × tasks.hello('World'): 20 SUCCESS",
        "[recovery] Worker killed with 20 tasks queued",
        "## Questions",
        "_Not answered yet: write your answers in your notes for Step 10",
        "### Model answers",
        "**Q: What happens if a worker crashes during task execution?**",
        "### Step 7: Watch the message flow",
        "Killing the worker left 20 messages Ready.",
        "amqp://admin:**@localhost:5672//",
        "redis://:**@localhost:6379/0",
    ] {
        assert!(md.contains(needle), "missing {needle:?} in:\n{md}");
    }
    assert!(!md.contains("S3cretPass") && !md.contains("RedisPw99"), "{md}");
    // The learner's own answers (their notes of Step 10) come before the model answers.
    p.set_note(10, "A crash requeues what the worker had not acknowledged.");
    let md = export::render(&p, &course, &cfg);
    let (mine, model) = (md.find("### My answers").expect("my answers"), md.find("### Model answers").expect("model answers"));
    assert!(mine < model && md[mine..model].contains("A crash requeues what the worker had not acknowledged."), "{md}");
    assert!(!md.contains("### Step 10:"), "Step 10's notes are the answers, not repeated as notes: {md}");
}

fn run_cli(dir: &std::path::Path, kubeconfig: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = common::mqlab(dir).env("KUBECONFIG", kubeconfig).args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn check_command_reports_and_exits_by_verdict() {
    let fake = FakeKube::start(Scenario::ImagePullBackOff);
    let kc = fake.kubeconfig("rancher-desktop");
    let dir = tempfile::tempdir().unwrap();
    let (code, out, _) = run_cli(dir.path(), &kc, &["check", "--lesson", "1"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("✓ kube.node_ready") && out.contains("lima-rancher-desktop Ready"), "{out}");
    assert!(out.contains("ticked: ") || !out.contains("ticked"), "{out}");

    let (code, out, _) = run_cli(dir.path(), &kc, &["check", "--lesson", "2", "--json"]);
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(&out).unwrap();
    let pod = v["results"].as_array().unwrap().iter().find(|r| r["id"] == "kube.rabbitmq_pod").unwrap();
    assert_eq!(pod["status"], "fail");
    assert!(pod["hint"].as_str().unwrap().contains("bitnamilegacy"));

    let (code, out, _) = run_cli(dir.path(), &kc, &["check", "--lesson", "2"]);
    assert_eq!(code, 1);
    assert!(out.contains("✗ kube.rabbitmq_pod") && out.contains("→ Bitnami's free images moved"), "{out}");

    // Progress kept the results across runs.
    let (code, out, _) = run_cli(dir.path(), &kc, &["progress", "--json"]);
    assert_eq!(code, 0);
    let p: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(p["checks"]["kube.node_ready"]["status"], "pass");
    assert_eq!(p["checks"]["kube.rabbitmq_pod"]["status"], "fail");
    assert_eq!(p["facts"]["k3s_version"], "v1.33.4+k3s1");

    let (code, _, err) = run_cli(dir.path(), &kc, &["check", "--lesson", "99"]);
    assert_eq!(code, 1);
    assert!(err.contains("there is no lesson 99"), "{err}");

    let (code, out, _) = run_cli(dir.path(), &kc, &["check", "--list"]);
    assert_eq!(code, 0);
    assert!(out.lines().count() >= 16);
}

#[test]
fn progress_notes_reset_and_export_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("none");
    let (code, _, _) = run_cli(dir.path(), &kc, &["progress", "--tick", "explain", "--note", "3", "exchanges route, queues store"]);
    assert_eq!(code, 0);
    let (code, _, err) = run_cli(dir.path(), &kc, &["progress", "--tick", "bogus"]);
    assert_eq!(code, 1);
    assert!(err.contains("no checklist item \"bogus\""), "{err}");
    let out_file = dir.path().join("LEARNINGS.md");
    let (code, _, err) = run_cli(dir.path(), &kc, &["export", "-o", out_file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("Wrote "));
    let md = std::fs::read_to_string(&out_file).unwrap();
    assert!(md.contains("exchanges route, queues store") && md.contains("- [x] Explain the flow"), "{md}");
    assert!(!md.contains("guest:guest"));
    // A learner's edited file is kept, not overwritten.
    std::fs::write(&out_file, "my own edits").unwrap();
    let (code, _, err) = run_cli(dir.path(), &kc, &["export", "-o", out_file.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(err.contains("The previous version is kept as"), "{err}");
    let kept: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("LEARNINGS.md.bak-"))
        .collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(std::fs::read_to_string(dir.path().join(&kept[0])).unwrap(), "my own edits");

    // reset asks first; "n" keeps everything.
    let mut child =
        common::mqlab(dir.path()).arg("reset").stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"n\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(dir.path().join("progress.json").exists());
    let mut child =
        common::mqlab(dir.path()).arg("reset").stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"y\n").unwrap();
    assert!(child.wait().unwrap().success());
    assert!(!dir.path().join("progress.json").exists());
}

/// On the local track, with only mqlab's own worker and tasks, the export makes no claim about a
/// cluster, Helm or the learner's Python.
#[test]
fn a_local_run_with_only_mqlab_exports_no_cluster_or_python_claim() {
    let course = Course::embedded().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = secret_config(dir.path());
    let mut p = Progress::new();
    p.track = Some(Track::Local);
    let passing = ["amqp.login", "redis.ping", "mgmt.login", "mgmt.exchanges", "mgmt.celery_queue", "tasks.roundtrip", "tasks.failure"];
    let mut results: Vec<CheckResult> = passing.iter().map(|id| result(id, Status::Pass)).collect();
    results.extend(["celery.py_worker", "results.learner", "results.learner_failure"].iter().map(|id| result(id, Status::Fail)));
    // A cluster seen earlier on the other track is not this track's claim either.
    let mut n = result("kube.node_ready", Status::Pass);
    n.facts.insert("node".into(), "lima-rancher-desktop".into());
    results.push(n);
    let newly = p.record_checks(&results, &course, Track::Local);
    // The management UI is the learner's browser: mqlab's own API login does not tick it.
    assert_eq!(newly, ["cluster", "deploy"]);
    let md = export::render(&p, &course, &cfg);
    assert!(md.contains("Track local: RabbitMQ and Redis running directly on this machine, no cluster"), "{md}");
    let checked: Vec<&str> = md.lines().filter(|l| l.starts_with("- [x]")).collect();
    assert_eq!(checked.len(), 2, "{checked:#?}");
    // On the cluster track, these local ticks are not a Helm deploy: the k3s checklist and its
    // export do not show them.
    let mut k = p.clone();
    k.track = Some(Track::K3s);
    let on_k3s = export::render(&k, &course, &cfg);
    assert!(!on_k3s.lines().any(|l| l.starts_with("- [x]")), "{on_k3s}");
    assert!(on_k3s.contains("- [ ] Deploy RabbitMQ and Redis using Helm charts"), "{on_k3s}");
    assert!(!on_k3s.contains("deployed with Helm"), "no pod was seen: {on_k3s}");
    for l in &checked {
        for word in ["Rancher", "K3s", "Helm", "port-forward", ".delay()", "worker", ".get()"] {
            assert!(!l.contains(word), "{l:?} claims {word}");
        }
    }
    for word in ["lima-rancher-desktop", "Cluster:"] {
        assert!(!md.contains(word), "the local export mentions {word}:\n{md}");
    }
    assert!(md.contains("- [ ] Submit tasks using .delay() method") && md.contains("- [ ] Start Celery worker and see it process tasks"));
}

/// Lesson 7 is done only when its experiments were seen, not when its checks pass.
#[test]
fn a_step_with_experiments_is_done_only_when_they_were_seen() {
    let course = Course::embedded().unwrap();
    let l7 = course.lesson(7).unwrap();
    let mut p = Progress::new();
    p.record_checks(&[result("mgmt.celery_queue", Status::Pass), result("tasks.roundtrip", Status::Pass)], &course, Track::Local);
    assert_eq!(l7.mark(Track::Local, &p), ' ');
    assert_eq!(l7.missing_experiments(&p), ["burst", "recovery"]);
    p.add_experiment(ExperimentKind::Concurrency, "burst", json!({"peak_depth": 1, "drained": 1}));
    assert_eq!(l7.missing_experiments(&p), ["burst", "recovery"], "a burst that never queued up is not the lesson's");
    p.add_experiment(ExperimentKind::Concurrency, "burst", json!({"peak_depth": 14, "drained": 1}));
    p.add_experiment(ExperimentKind::Recovery, "stopped", json!({"tasks": 20, "succeeded": 20, "failed": 0, "in_flight_at_kill": 0}));
    assert_eq!(l7.missing_experiments(&p), ["recovery"], "a warm stop is not a crash");
    p.add_experiment(ExperimentKind::Recovery, "killed", json!({"tasks": 20, "succeeded": 20, "failed": 0, "in_flight_at_kill": 4}));
    assert_eq!(l7.mark(Track::Local, &p), ' ', "its two-workers check has not passed yet");
    p.record_checks(&[result("results.two_workers", Status::Pass)], &course, Track::Local);
    assert_eq!(l7.mark(Track::Local, &p), '✓');
}

/// Every placeholder a lesson uses is known, and filling them gives the live configuration.
#[test]
fn lessons_are_templated_with_the_live_configuration() {
    use mqlab::lessons::template;
    let course = Course::embedded().unwrap();
    let env = |k: &str| match k {
        "MQLAB_CONFIG" => Some("/nonexistent".to_string()),
        "MQLAB_DATA_DIR" => Some("/nonexistent-data".to_string()),
        "MQLAB_BROKER_URL" => Some("amqp://admin:admin123@127.0.0.1:25672//".into()),
        "MQLAB_RESULT_BACKEND" => Some("redis://127.0.0.1:26379/0".into()),
        "MQLAB_MANAGEMENT_URL" => Some("http://127.0.0.1:35672".into()),
        _ => None,
    };
    let cfg = Config::load_with(&Overrides::default(), &env).unwrap();
    for l in &course.lessons {
        for track in [Track::K3s, Track::Local] {
            assert_eq!(template::unknown(&l.text(track), &cfg), Vec::<String>::new(), "{}", l.file);
        }
    }
    let l4 = template::fill(&course.lesson(4).unwrap().text(Track::Local), &cfg);
    assert!(l4.contains("redis-cli -h 127.0.0.1 -p 26379 PING"), "{l4}");
    let l3 = template::fill(&course.lesson(3).unwrap().text(Track::Local), &cfg);
    // Shell code names the login's environment variables, never the password itself.
    assert!(l3.contains("curl -s -u \"$MQLAB_MGMT_USER:$MQLAB_MGMT_PASSWORD\" http://127.0.0.1:35672/api/overview"), "{l3}");
    // A password that is not the curriculum's is never put on screen.
    let secret = secret_config(std::path::Path::new("/nonexistent-data"));
    let l5 = template::fill(&course.lesson(5).unwrap().text(Track::Local), &secret);
    assert!(!l5.contains("S3cretPass") && l5.contains("amqp://admin:****@localhost:5672//"), "{l5}");
    // The files written for the learner carry the real one (they are theirs).
    let d = tempfile::tempdir().unwrap();
    mqlab::lessons::project::write(d.path(), &secret).unwrap();
    let app = std::fs::read_to_string(d.path().join("celery_app.py")).unwrap();
    assert!(app.contains("broker='amqp://admin:S3cretPass@localhost:5672//'"), "{app}");
}

/// `mqlab init` writes the project and never overwrites a file.
#[test]
fn init_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("p");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(project.join("celery_app.py"), "# mine\n").unwrap();
    let out = common::mqlab(dir.path()).args(["init"]).arg(&project).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("kept") && text.contains("celery_app.py"), "{text}");
    assert_eq!(std::fs::read_to_string(project.join("celery_app.py")).unwrap(), "# mine\n");
    for f in ["submit_task.py", "requirements.txt", ".gitignore"] {
        assert!(project.join(f).exists(), "{f}");
    }
    assert!(std::fs::read_to_string(project.join(".gitignore")).unwrap().contains("venv/"));
    assert!(std::fs::read_to_string(project.join("requirements.txt")).unwrap().contains("celery[redis]>=5.7"));
    assert!(!text.contains("guest@"), "the printed URL is masked: {text}");
}

/// One project folder: `mqlab init` with no argument, `mqlab export` with no `-o`, the lessons'
/// `cd` lines and the app's `I` and `E` all name the same folder (the curriculum's
/// `~/rabbitmq-celery-learning`, under this test's own home).
#[test]
fn one_project_folder_for_init_export_the_lessons_and_the_app() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let run = |args: &[&str]| {
        let out = common::mqlab(&data).env("HOME", home.path()).env_remove("MQLAB_PROJECT_DIR").args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
    };
    let project = home.path().join("rabbitmq-celery-learning");
    let said = run(&["init"]);
    assert!(project.join("celery_app.py").exists(), "{said}");
    assert!(said.contains("cd ~/rabbitmq-celery-learning"), "{said}");
    run(&["export"]);
    assert!(project.join("LEARNINGS.md").exists());
    // The lessons' commands cd into it, and the app's keys write there.
    let env_home = home.path().to_path_buf();
    let env = move |k: &str| match k {
        "MQLAB_CONFIG" => Some("/nonexistent".to_string()),
        "MQLAB_DATA_DIR" => Some("/nonexistent-data".to_string()),
        "MQLAB_PROJECT_DIR" => Some(env_home.join("rabbitmq-celery-learning").to_string_lossy().to_string()),
        _ => None,
    };
    let cfg = Config::load_with(&Overrides::default(), &env).unwrap();
    assert_eq!(cfg.project_dir, project);
    let course = Course::embedded().unwrap();
    for step in [5, 6, 10] {
        for track in [Track::K3s, Track::Local] {
            let cmds = course.lesson(step).unwrap().commands_with(track, &cfg).join("\n");
            for line in cmds.lines().filter(|l| l.trim_start().starts_with("cd ")) {
                let target = line.trim_start()["cd ".len()..].split_whitespace().next().unwrap();
                let expanded = target.replacen('~', &std::env::var("HOME").unwrap_or_default(), 1);
                assert!(
                    target == mqlab::config::shell_path(&project) || std::path::Path::new(&expanded) == project,
                    "lesson {step}: {line}"
                );
            }
        }
    }
    let mut app = mqlab::tui::App::new(cfg, course, mqlab::lessons::progress::Progress::new());
    let key = |app: &mut mqlab::tui::App, c: char| {
        app.handle(mqlab::tui::update::Event::Key(crossterm::event::KeyEvent::new(
            crossterm::event::KeyCode::Char(c),
            crossterm::event::KeyModifiers::NONE,
        )))
    };
    assert_eq!(key(&mut app, 'I'), vec![mqlab::tui::update::Command::Init(project.clone())]);
    assert_eq!(key(&mut app, 'E'), vec![mqlab::tui::update::Command::Export(project.join("LEARNINGS.md"))]);
}

/// One writer at a time: ten writers (five like the app, through the store, and five
/// `mqlab progress --add-note` processes) × three rounds keep all thirty notes.
#[test]
fn concurrent_writers_lose_no_note() {
    use mqlab::lessons::progress::Change;
    let course = Course::embedded().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_path_buf();
    let mut handles = vec![];
    for w in 0..10 {
        let data = data.clone();
        let course = course.clone();
        handles.push(std::thread::spawn(move || {
            for r in 0..3 {
                let line = format!("writer {w} round {r}");
                if w % 2 == 0 {
                    Store::new(&data).apply(&course, &[Change::AppendNote { step: 1 + w % 11, text: line }]).unwrap();
                } else {
                    let out = common::mqlab(&data).args(["progress", "--add-note", &(1 + w % 11).to_string(), &line]).output().unwrap();
                    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                }
            }
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    let p = Store::new(&data).load().unwrap();
    let all: String = p.notes.values().cloned().collect::<Vec<_>>().join("\n");
    let kept = (0..10).flat_map(|w| (0..3).map(move |r| format!("writer {w} round {r}"))).filter(|l| all.contains(l.as_str())).count();
    println!("concurrent writers: {kept}/30 notes kept");
    assert_eq!(kept, 30, "{all}");
    // Nothing left behind but the progress and its lock, both private.
    use std::os::unix::fs::PermissionsExt;
    let mut names: Vec<String> = std::fs::read_dir(&data).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
    names.sort();
    assert_eq!(names, ["progress.json", "progress.lock"]);
    assert_eq!(std::fs::metadata(data.join("progress.json")).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(&data).unwrap().permissions().mode() & 0o077, 0, "the data dir is private");
}

/// A progress file with one byte that is not UTF-8 is kept aside, not overwritten; two damaged
/// files in the same second get names of their own.
#[test]
fn damaged_files_are_kept_under_names_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let mut p = Progress::new();
    p.set_note(2, "my precious note");
    store.save(&p).unwrap();
    let mut bytes = std::fs::read(store.path()).unwrap();
    bytes.insert(10, 0xff);
    std::fs::write(store.path(), &bytes).unwrap();
    let e = store.load().unwrap_err().to_string();
    assert!(e.contains("not UTF-8") && e.contains("kept as"), "{e}");
    std::fs::write(store.path(), "{ also broken").unwrap();
    assert!(store.load().is_err());
    let aside: Vec<_> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).filter(|p| p.to_string_lossy().contains("damaged")).collect();
    assert_eq!(aside.len(), 2, "{aside:?}");
    assert!(aside.iter().any(|a| std::fs::read(a).unwrap() == bytes), "the first damaged file is intact");
    // The next write starts fresh and touches neither.
    store.update(|p| p.set_note(3, "new")).unwrap();
    assert_eq!(aside.iter().filter(|a| a.exists()).count(), 2);
}

/// A failed check says what it expected beside what it observed, and `--verbose` the exact call
/// it made: here the fake cluster's broken RabbitMQ pod.
#[test]
fn a_failed_cluster_check_says_expected_observed_and_the_call() {
    let fake = FakeKube::start(Scenario::ImagePullBackOff);
    let kc = fake.kubeconfig("rancher-desktop");
    let dir = tempfile::tempdir().unwrap();
    let (code, out, _) = run_cli(dir.path(), &kc, &["check", "--lesson", "2", "--verbose"]);
    assert_eq!(code, 1, "{out}");
    let at = out.find("✗ kube.rabbitmq_pod").unwrap_or_else(|| panic!("{out}"));
    let failure = &out[at..];
    assert!(failure.contains("ImagePullBackOff"), "observed: {failure}");
    assert!(failure.contains("expected: the RabbitMQ pod Running with every container ready (1/1)"), "{failure}");
    assert!(failure.contains("call: GET /api/v1/namespaces/messaging/pods"), "{failure}");
    // Without --verbose, no calls.
    let (_, out, _) = run_cli(dir.path(), &kc, &["check", "--lesson", "2"]);
    assert!(!out.contains("call: "), "{out}");
}

/// Against the real broker: a queue nobody declared gives the expected/observed pair, the AMQP
/// call with its host, port and vhost, and the hint ladder down to the command; two workers on
/// the queue pass lesson 7's two-workers check once they shared a burst, and its diagnosis says
/// why a timing would be split without failing anything.
#[test]
fn a_failed_broker_check_explains_itself_and_two_workers_are_diagnosed() {
    use common::Need;
    if !common::have(&[Need::Rabbitmq, Need::Management, Need::Redis]) {
        return;
    }
    let vhost = common::Vhost::new("explain");
    // Redis database 10 is this test's: the results its workers store are the only ones there.
    let results = common::redis().rsplit_once('/').map(|(base, _)| format!("{base}/10")).unwrap();
    let _: () = redis::cmd("FLUSHDB").query(&mut redis::Client::open(results.as_str()).unwrap().get_connection().unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| {
        let o = common::mqlab(dir.path())
            .env("MQLAB_BROKER_URL", vhost.broker())
            .env("MQLAB_RESULT_BACKEND", &results)
            .env("MQLAB_TRACK", "local")
            .args(args)
            .output()
            .unwrap();
        (o.status.code().unwrap_or(-1), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
    };
    let (code, out) = cli(&["check", "--id", "mgmt.celery_queue", "--verbose"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("✗ mgmt.celery_queue  queue celery does not exist yet"), "{out}");
    assert!(out.contains("expected: queue celery declared, with 1 consumer or more"), "{out}");
    let addr = common::broker_addr();
    assert!(out.contains(&format!("call: AMQP Queue.Declare \"celery\" passive=true on {addr}, vhost \"{}\"", vhost.name)), "{out}");
    // The ladder: a nudge first, the command last.
    let hints: Vec<&str> = out.lines().filter(|l| l.contains("→ hint ")).collect();
    assert!(hints.len() >= 3 && hints[0].contains("hint 1/") && hints[0].contains("Nothing has declared the queue yet"), "{out}");
    assert!(hints.last().unwrap().contains("&& celery -A celery_app worker --loglevel=info"), "{out}");

    // Two workers on the queue: lesson 7's checks pass, its diagnosis says why a burst would be
    // split.
    let log = |n: &str| dir.path().join(format!("{n}.log"));
    let start = |name: &str| {
        let file = std::fs::File::create(log(name)).unwrap();
        let child = common::mqlab(dir.path())
            .env("MQLAB_BROKER_URL", vhost.broker())
            .env("MQLAB_RESULT_BACKEND", &results)
            .args(["worker", "-n", name, "--result-extended"])
            .stdout(std::process::Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        let p = common::Proc(child);
        common::wait_for_file(&log(name), "ready.", 20);
        p
    };
    let _a = start("first");
    let _b = start("second");
    // A burst both share: each result names its worker (lesson 7's two-workers check).
    let (code, out) = cli(&["submit", "tasks.add", "1", "2", "--count", "8", "--wait"]);
    assert_eq!(code, 0, "{out}");
    // The management API lists consumers as its collector sees them: wait for both.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let out = loop {
        let (code, out) = cli(&["check", "--lesson", "7"]);
        if out.contains("! broker.consumers") || std::time::Instant::now() > deadline {
            assert_eq!(code, 0, "a diagnosis is no failure: {out}");
            break out;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    assert!(out.contains("! broker.consumers  2 consumers share celery"), "{out}");
    assert!(out.contains("stop the others first"), "{out}");
}

/// The quiz from a terminal: answers given as flags or typed (a wrong letter is asked again and
/// loses nothing), scored, written into LEARNINGS.md after the notes; a bad flag changes nothing.
#[test]
fn the_quiz_is_answered_scored_exported_and_reset_with_its_lesson() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], input: &str| {
        let mut child =
            common::mqlab(dir.path()).args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let o = child.wait_with_output().unwrap();
        (o.status.code().unwrap_or(-1), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
    };
    let course = Course::embedded().unwrap();
    let quiz = course.quiz();
    assert_eq!(quiz.len(), 5);
    // A bad answer among good ones: nothing is kept.
    let (code, out) = run(&["quiz", "--answer", "1=b", "--answer", "9=a"], "");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("questions are 1-5"), "{out}");
    let (_, out) = run(&["quiz", "--score"], "");
    assert!(out.contains("0 of 5 right (0 answered)"), "{out}");
    // Typed: question 1 right (b), a letter that is no choice asked again, question 2 wrong (b),
    // question 3 skipped, then the input ends: what was answered stays.
    let right1 = (b'a' + quiz[0].answer as u8) as char;
    let wrong2 = (b'a' + ((quiz[1].answer + 1) % quiz[1].choices.len()) as u8) as char;
    let (code, out) = run(&["quiz"], &format!("{right1}\nz\n{wrong2}\n\n"));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("✓ right."), "{out}");
    assert!(out.contains("\"z\" is not one of a, b, c, d"), "{out}");
    assert!(out.contains("✗ the answer is"), "{out}");
    assert!(out.contains("1 of 5 right (2 answered)"), "{out}");
    let exported = dir.path().join("L.md");
    let o = common::mqlab(dir.path()).args(["export", "-o", exported.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success());
    let md = std::fs::read_to_string(&exported).unwrap();
    assert!(md.contains("## Quiz: 1 of 5 right"), "{md}");
    assert!(md.contains(&format!("My answer: {} ✓", quiz[0].choices[quiz[0].answer])), "{md}");
    assert!(md.contains("_Not answered._"), "{md}");
    // The quiz is lesson 11's: resetting lesson 11 clears it, resetting lesson 7 does not.
    let (_, out) = run(&["reset", "--lesson", "7", "--yes"], "");
    assert!(out.contains("Lesson 7"), "{out}");
    let (_, out) = run(&["quiz", "--score"], "");
    assert!(out.contains("(2 answered)"), "{out}");
    let (_, out) = run(&["reset", "--lesson", "11", "--yes"], "");
    assert!(out.contains("2 quiz answer(s)"), "{out}");
}

/// Earned stays earned: a pass earns the check for the lessons in scope; a later failure leaves
/// it earned (now ✗), the lesson keeps its ✓; resetting one lesson leaves the others'.
#[test]
fn earned_checks_stay_earned_per_lesson_until_that_lesson_is_reset() {
    let course = Course::embedded().unwrap();
    let mut p = Progress::new();
    let local = Track::Local;
    p.record_checks_in(&[result("amqp.login", Status::Pass), result("redis.ping", Status::Pass)], &course, local, &[1]);
    assert!(p.earned_for(1, "amqp.login", local).is_some());
    assert!(p.earned_for(2, "amqp.login", local).is_none(), "only the lesson in scope earns it");
    assert_eq!(course.lesson(1).unwrap().mark(local, &p), '✓');
    p.record_checks_in(&[result("amqp.login", Status::Fail)], &course, local, &[1]);
    assert_eq!(p.checks["amqp.login"].status, Status::Fail, "now ✗");
    assert_eq!(course.lesson(1).unwrap().mark(local, &p), '✓', "earned stays earned");
    // Lesson 2 has not earned it and it fails now: ✗ there.
    assert_eq!(course.lesson(2).unwrap().mark(local, &p), '✗');
    // An empty scope earns it for every lesson that lists it.
    p.record_checks(&[result("amqp.login", Status::Pass)], &course, local);
    for l in [1, 2, 5, 11] {
        assert!(p.earned_for(l, "amqp.login", local).is_some(), "lesson {l}");
    }
    assert!(p.earned_for(1, "amqp.login", Track::K3s).is_none(), "earned on its own track");
    let cleared = p.reset_lesson(&course, 2);
    assert!(cleared.iter().any(|c| c.contains("earned")), "{cleared:?}");
    assert!(p.earned_for(2, "amqp.login", local).is_none());
    assert!(p.earned_for(1, "amqp.login", local).is_some(), "lesson 1 keeps its own");
    // An older progress file (no earned checks kept) counts what passed as earned, once.
    let mut old = Progress::new();
    old.version = 1;
    old.track = Some(local);
    old.record_checks(&[], &course, local);
    old.checks.insert(
        "redis.ping".into(),
        mqlab::lessons::progress::CheckRecord {
            status: Status::Pass,
            detail: "PONG".into(),
            at: chrono::Utc::now(),
            passed_at: Some(chrono::Utc::now()),
            passed_detail: Some("PONG".into()),
        },
    );
    let mut older = Progress { version: 1, ..old.clone() };
    older.earned.clear();
    older.migrate(&course);
    assert!(older.earned_for(4, "redis.ping", local).is_some());
}

/// Predict, then observe: a prediction is matched with the first experiment of its kind in its
/// lesson recorded after it (an earlier one, another lesson's, or one whose figures do not fit
/// the question never answer it); the CLI keeps an answer only when every one given is good; the
/// export puts the learner's number beside the measured one; resetting the lesson clears it.
#[test]
fn predictions_are_answered_then_shown_beside_what_the_experiment_measured() {
    use mqlab::lessons::progress::{Change, experiment};
    let course = Course::embedded().unwrap();
    let seven = course.lesson(7).unwrap();
    let ready = seven.predict.iter().find(|p| p.id == "ready_peak").expect("lesson 7 asks how high Ready goes");
    let nine = course.lesson(9).unwrap();
    let at16 = nine.predict.iter().find(|p| p.id == "burst_at_16").expect("lesson 9 asks for the time at concurrency 16");
    let burst = |lesson: u32, ready_peak: u64, concurrency: Option<u64>, seconds: f64| {
        let mut figures = json!({"peak_depth": ready_peak + 8, "ready_peak": ready_peak, "drained": 1, "seconds": seconds});
        if let Some(c) = concurrency {
            figures["concurrency"] = json!(c);
        }
        let mut e = experiment(ExperimentKind::Concurrency, format!("a burst that rose to {ready_peak}"), figures);
        e.lesson = Some(lesson);
        e
    };
    let mut p = Progress::new();
    // An experiment before the prediction does not answer it.
    let mut earlier = burst(7, 3, None, 1.0);
    earlier.at -= chrono::Duration::seconds(1);
    p.apply(&course, &Change::Experiment(earlier));
    assert!(p.outcome(7, ready).is_none(), "not predicted yet");
    p.apply(&course, &Change::Predict { step: 7, id: "ready_peak".into(), value: 12.0 });
    let o = p.outcome(7, ready).unwrap();
    assert_eq!(o.predicted.value, 12.0);
    assert!(o.observed.is_none(), "the burst before the prediction does not count: {o:?}");
    // Another lesson's burst does not answer lesson 7's question; lesson 7's next one does.
    p.apply(&course, &Change::Experiment(burst(6, 20, None, 1.0)));
    assert!(p.outcome(7, ready).unwrap().observed.is_none());
    p.apply(&course, &Change::Experiment(burst(7, 11, None, 12.4)));
    assert_eq!(p.outcome(7, ready).unwrap().observed.map(|(v, _)| v), Some(11.0));
    // Lesson 9's question is about concurrency 16: a timing at 4 does not answer it.
    p.apply(&course, &Change::Predict { step: 9, id: "burst_at_16".into(), value: 4.0 });
    p.apply(&course, &Change::Experiment(burst(9, 0, Some(4), 10.2)));
    assert!(p.outcome(9, at16).unwrap().observed.is_none());
    p.apply(&course, &Change::Experiment(burst(9, 0, Some(16), 4.3)));
    assert_eq!(p.outcome(9, at16).unwrap().observed.map(|(v, _)| v), Some(4.3));
    // An id the lesson does not ask is not kept.
    p.apply(&course, &Change::Predict { step: 7, id: "nope".into(), value: 1.0 });
    assert_eq!(p.predictions[&7].len(), 1);
    let said = p.reset_lesson(&course, 7);
    assert!(said.iter().any(|s| s == "1 prediction(s)"), "{said:?}");
    assert!(p.outcome(7, ready).is_none() && p.outcome(9, at16).is_some(), "only lesson 7's went");

    // From a terminal.
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let o = common::mqlab(dir.path()).args(args).output().unwrap();
        (o.status.code().unwrap_or(-1), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
    };
    let (code, out) = run(&["predict", "--lesson", "7", "--answer", "ready_peak=12", "--answer", "nope=3"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("lesson 7 asks for ready_peak, late_lost, early_lost"), "{out}");
    let (code, out) = run(&["predict", "--lesson", "7", "--answer", "ready_peak=many"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("a prediction is a number"), "{out}");
    let (_, out) = run(&["predict", "--lesson", "7"]);
    assert!(out.contains("not predicted yet: mqlab predict --lesson 7 --answer ready_peak=NUMBER"), "a bad answer kept nothing: {out}");
    let (code, out) = run(&["predict", "--lesson", "7", "--answer", "ready_peak=12"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("you predicted 12 messages") && out.contains("not observed yet"), "{out}");
    let (code, out) = run(&["predict", "--lesson", "3"]);
    assert_eq!((code, out.trim()), (0, "Lesson 3 asks for no prediction."));
    // The burst the broker then shows, recorded for lesson 7 (as the app and `mqlab solve` do).
    let store = Store::new(dir.path());
    store.apply(&course, &[Change::Experiment(burst(7, 12, None, 12.1))]).unwrap();
    let (_, out) = run(&["predict", "--lesson", "7", "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    let first = &v["predictions"][0];
    assert_eq!(
        (first["id"].as_str(), first["predicted"].as_f64(), first["observed"].as_f64()),
        (Some("ready_peak"), Some(12.0), Some(12.0))
    );
    assert!(v["predictions"][1]["predicted"].is_null(), "{v}");
    let exported = dir.path().join("L.md");
    let (code, out) = run(&["export", "-o", exported.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let md = std::fs::read_to_string(&exported).unwrap();
    assert!(md.contains("### My Predictions"), "{md}");
    assert!(md.contains("I predicted 12 messages; the experiment showed 12 messages (a burst that rose to 12)."), "{md}");
}

/// Every check a lesson lists says what it expects and which call it makes (a ✗ explains itself).
#[test]
fn every_lesson_check_says_what_it_expects_and_the_call_it_makes() {
    let course = Course::embedded().unwrap();
    let cfg = Config::load_with(&Overrides::default(), &|_| None).unwrap();
    for l in &course.lessons {
        for id in l.checks.k3s.iter().chain(&l.checks.local).chain(&l.diagnose) {
            assert!(!probes::expected(id, &cfg).is_empty(), "{}: {id} says nothing of what it expects", l.file);
            assert!(!probes::call(id, &cfg).is_empty(), "{}: {id} does not say which call it makes", l.file);
        }
    }
}
