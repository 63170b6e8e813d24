//! The terminal UI without a terminal: key presses and background events go in, state, commands
//! and rendered buffers (ratatui's TestBackend) come out. Snapshots at 80×24 and 140×40.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use mqlab::celery::TaskState;
use mqlab::celery::backend::ResultMeta;
use mqlab::celery::worker::{StopMode, WorkerEvent};
use mqlab::config::{Config, Overrides, Track};
use mqlab::lessons::Course;
use mqlab::lessons::progress::{ExperimentKind, Progress};
use mqlab::probes::{CheckResult, Status};
use mqlab::tui::App;
use mqlab::tui::state::{Focus, Sample, TaskRow, WorkerState};
use mqlab::tui::update::{Command, Event};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use serde_json::json;

fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 9, 0, 0).unwrap() + chrono::Duration::milliseconds(secs)
}

fn app() -> App {
    let env = |k: &str| match k {
        "MQLAB_CONFIG" => Some("/nonexistent".to_string()),
        "MQLAB_DATA_DIR" => Some("/nonexistent-data".to_string()),
        _ => None,
    };
    let cfg = Config::load_with(&Overrides { track: Some(Track::K3s), ..Default::default() }, &env).unwrap();
    let mut app = App::new(cfg, Course::embedded().unwrap(), Progress::new());
    app.tz = chrono::FixedOffset::east_opt(0).unwrap();
    app.started = t(0);
    app.clock = t(0);
    app.own_hostname = "mqlab@test".into();
    app.no_color = false;
    app
}

fn key(app: &mut App, c: char) -> Vec<Command> {
    app.handle(Event::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)))
}

fn code(app: &mut App, c: KeyCode) -> Vec<Command> {
    app.handle(Event::Key(KeyEvent::new(c, KeyModifiers::NONE)))
}

fn render(app: &mut App, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| mqlab::tui::view::draw(f, app)).unwrap();
    term
}

fn screen(app: &mut App, w: u16, h: u16) -> String {
    render(app, w, h).backend().to_string()
}

fn check(id: &str, status: Status, detail: &str, hint: Option<&str>) -> CheckResult {
    CheckResult {
        id: id.into(),
        title: id.into(),
        status,
        detail: detail.into(),
        hint: hint.map(String::from),
        facts: Default::default(),
        at: t(0),
        millis: 3,
        expected: String::new(),
        call: String::new(),
    }
}

fn row(id: &str, name: &str, args: &str, at: DateTime<Utc>) -> TaskRow {
    let mut times = BTreeMap::new();
    times.insert(TaskState::Pending, at);
    TaskRow {
        lost: false,
        worker: None,
        id: id.into(),
        name: name.into(),
        args: args.into(),
        state: TaskState::Pending,
        times,
        runtime: None,
        outcome: None,
        traceback: None,
        raw: Some(json!({"properties": {"correlation_id": id}, "payload": "[[\"World\"], {}, {}]"})),
        stored: None,
    }
}

/// A lab with a worker that ran three tasks, and a queue reading.
fn busy_lab(app: &mut App) {
    key(app, 'w');
    app.handle(Event::Worker(WorkerEvent::Ready { prefetch: 16 }));
    app.handle(Event::Submitted(vec![row("11111111-aaaa", "tasks.hello", "('World',)", t(1000))]));
    app.handle(Event::Submitted(vec![row("22222222-bbbb", "tasks.add", "(42, 58)", t(1500))]));
    app.handle(Event::Submitted(vec![row("33333333-cccc", "tasks.divide", "(10, 0)", t(2000))]));
    app.handle(Event::Worker(WorkerEvent::TaskStarted { id: "11111111-aaaa".into(), at: t(1010) }));
    app.handle(Event::Worker(WorkerEvent::TaskStarted { id: "22222222-bbbb".into(), at: t(1505) }));
    app.handle(Event::Worker(WorkerEvent::TaskSucceeded { id: "22222222-bbbb".into(), result: "100".into(), runtime: 0.001, at: t(1507) }));
    app.handle(Event::Worker(WorkerEvent::TaskStarted { id: "33333333-cccc".into(), at: t(2004) }));
    app.handle(Event::Worker(WorkerEvent::TaskFailed {
        id: "33333333-cccc".into(),
        exception: "ZeroDivisionError('division by zero')".into(),
        traceback: Some("Traceback (most recent call last):\nZeroDivisionError: division by zero\n".into()),
        runtime: 0.002,
        at: t(2006),
    }));
    app.handle(Event::WorkerStats { processed: 2, failed: 1, active: 1, unacked: 1 });
    for (i, d) in [0u64, 3, 7, 4, 1].iter().enumerate() {
        app.handle(Event::Depth { ready: *d, consumers: 1, at: t(1000 + i as i64 * 500) });
    }
    app.handle(Event::Sample {
        sample: Sample { ready: 1, unacked: 1, consumers: 1, publish_rate: 1.2, deliver_rate: 1.0, ack_rate: 0.8 },
        at: t(3000),
    });
    app.handle(Event::RedisUp);
    app.status = None;
}

#[test]
fn snapshot_lesson_with_checks_80x24() {
    let mut a = app();
    a.handle(Event::ChecksDone(vec![
        check("kube.context", Status::Pass, "context \"rancher-desktop\" exists and is current", None),
        check("kube.api", Status::Pass, "API server v1.33.4+k3s1 answers", None),
        check("kube.node_ready", Status::Fail, "not Ready: lima-rancher-desktop (KubeletNotReady)", Some("wait a minute")),
    ]));
    a.status = None;
    insta::assert_snapshot!("lesson_80x24", screen(&mut a, 80, 24));
}

#[test]
fn snapshot_lab_80x24_and_everything_140x40() {
    let mut a = app();
    busy_lab(&mut a);
    key(&mut a, '2');
    insta::assert_snapshot!("lab_80x24", screen(&mut a, 80, 24));
    key(&mut a, '1');
    a.handle(Event::ChecksStarted(vec!["kube.context".into(), "kube.api".into(), "kube.node_ready".into()]));
    insta::assert_snapshot!("wide_140x40", screen(&mut a, 140, 40));
}

#[test]
fn snapshot_checklist_and_help_80x24() {
    let mut a = app();
    let course = a.course.clone();
    a.progress.tick(&course, "explain").unwrap();
    a.handle(Event::ChecksDone(vec![check("tasks.roundtrip", Status::Pass, "tasks.add(42, 58) = 100 in 3 ms", None)]));
    a.status = None;
    key(&mut a, '3');
    insta::assert_snapshot!("checklist_80x24", screen(&mut a, 80, 24));
    key(&mut a, '?');
    let s = screen(&mut a, 80, 24);
    insta::assert_snapshot!("help_80x24", s);
    // The help scrolls: every binding of the keymap can be reached.
    let mut seen = String::new();
    for _ in 0..10 {
        seen.push_str(&screen(&mut a, 80, 24));
        code(&mut a, KeyCode::PageDown);
    }
    for b in mqlab::tui::keymap::KEYMAP {
        let start: String = b.help.chars().take(20).collect();
        assert!(seen.contains(&start), "help never shows {:?}", b.help);
    }
    code(&mut a, KeyCode::Esc);
    assert!(a.modals.is_empty());
}

#[test]
fn lessons_navigate_and_checks_run_on_keys() {
    let mut a = app();
    let lesson2 = vec!["kube.namespace".to_string(), "kube.rabbitmq_pod".into(), "kube.rabbitmq_log".into()];
    // Opening a lesson runs its checks once; `r` runs them again.
    assert_eq!(key(&mut a, ']'), vec![Command::SaveProgress, Command::RunChecks(lesson2.clone())]);
    assert_eq!(a.current().step, 2);
    assert_eq!(a.progress.current_lesson, 2);
    assert_eq!(key(&mut a, 'r'), vec![Command::RunChecks(lesson2)]);
    assert!(screen(&mut a, 80, 24).contains("⠋"), "a spinner while checks run");
    // Lesson 2's Helm command is wider than 80 columns: → and ← scroll it sideways.
    assert!(a.lesson_wide_code);
    code(&mut a, KeyCode::Right);
    assert_eq!((a.current().step, a.hscroll), (2, 8));
    assert!(screen(&mut a, 80, 24).contains("← → code"), "the title says the code is scrolled");
    code(&mut a, KeyCode::Left);
    assert_eq!((a.current().step, a.hscroll), (2, 0));
    key(&mut a, '[');
    assert_eq!(a.current().step, 1);
    key(&mut a, '[');
    assert_eq!(a.current().step, 1, "stays at the first lesson");
    for _ in 0..20 {
        key(&mut a, ']');
    }
    assert_eq!(a.current().step, 11);
    assert!(key(&mut a, 'r').iter().any(|c| matches!(c, Command::RunChecks(ids) if ids.len() == 9)));
    // Back to lesson 2: its checks already ran in this session, so only the progress is saved.
    for _ in 0..8 {
        key(&mut a, '[');
    }
    assert_eq!(key(&mut a, '['), vec![Command::SaveProgress]);
    assert_eq!(a.current().step, 2);
    // Switching track changes the checks and text.
    key(&mut a, 'T');
    assert_eq!(a.track, Track::Local);
    assert!(a.lesson_checks().iter().all(|c| !c.starts_with("kube.")));
    // Scrolling: a page is the panel's height less two lines; the wheel moves three.
    render(&mut a, 80, 24);
    assert!(a.lesson_lines > a.lesson_view, "lesson 2 is longer than a screen");
    code(&mut a, KeyCode::PageDown);
    assert_eq!(a.scroll, a.lesson_view - 2);
    a.handle(Event::Mouse(crossterm::event::MouseEvent {
        kind: crossterm::event::MouseEventKind::ScrollUp,
        column: 10,
        row: 10,
        modifiers: KeyModifiers::NONE,
    }));
    assert_eq!(a.scroll, a.lesson_view - 5);
    code(&mut a, KeyCode::End);
    screen(&mut a, 80, 24);
    assert_eq!(a.scroll, a.lesson_lines - a.lesson_view, "End stops at the last line");
}

#[test]
fn worker_controls_emit_commands_and_follow_events() {
    let mut a = app();
    assert_eq!(key(&mut a, 'w'), vec![Command::StartWorker { concurrency: 4, acks_late: true }]);
    assert_eq!(a.worker.state, WorkerState::Starting);
    assert!(key(&mut a, 'w').is_empty(), "no second start");
    a.handle(Event::Worker(WorkerEvent::Ready { prefetch: 16 }));
    assert_eq!(a.worker.state, WorkerState::Running);
    assert_eq!(key(&mut a, '+'), vec![Command::RestartWorker { concurrency: 8, acks_late: true }]);
    a.handle(Event::Worker(WorkerEvent::Ready { prefetch: 32 }));
    assert_eq!(key(&mut a, 'a'), vec![Command::RestartWorker { concurrency: 8, acks_late: false }]);
    a.handle(Event::Worker(WorkerEvent::Ready { prefetch: 32 }));
    assert!(key(&mut a, 'k').is_empty(), "k scrolls; killing is on the shifted K");
    assert_eq!(key(&mut a, 'K'), vec![Command::StopWorker(StopMode::Cold)]);
    a.handle(Event::Worker(WorkerEvent::Stopped { mode: StopMode::Cold }));
    assert_eq!(a.worker.state, WorkerState::Killed);
    assert!(screen(&mut a, 80, 24).contains("killed"));
    assert!(key(&mut a, 's').is_empty());
    key(&mut a, 'w');
    a.handle(Event::Worker(WorkerEvent::Fatal { error: "login refused by the broker at amqp://admin:**@localhost:5672//".into() }));
    assert_eq!(a.worker.state, WorkerState::Failed);
    key(&mut a, '2');
    assert!(screen(&mut a, 80, 24).contains("login refused"));
}

#[test]
fn submit_keys_use_editable_arguments() {
    let mut a = app();
    assert_eq!(key(&mut a, 'h'), vec![Command::Submit { task: "tasks.hello".into(), args: vec![json!("World")], count: 1 }]);
    assert_eq!(key(&mut a, 'A'), vec![Command::Submit { task: "tasks.add".into(), args: vec![json!(42), json!(58)], count: 1 }]);
    assert_eq!(key(&mut a, 'd'), vec![Command::Submit { task: "tasks.divide".into(), args: vec![json!(10), json!(0)], count: 1 }]);
    assert_eq!(key(&mut a, 'b'), vec![Command::Submit { task: "tasks.hello".into(), args: vec![json!("World")], count: 20 }]);
    assert_eq!(key(&mut a, 'B'), vec![Command::Submit { task: "tasks.add".into(), args: vec![json!(42), json!(58)], count: 100 }]);
    // Edit hello's argument to "Alice".
    key(&mut a, 'e');
    for _ in 0..10 {
        code(&mut a, KeyCode::Backspace);
    }
    for c in "\"Alice\"".chars() {
        key(&mut a, c);
    }
    code(&mut a, KeyCode::Enter);
    assert_eq!(key(&mut a, 'h'), vec![Command::Submit { task: "tasks.hello".into(), args: vec![json!("Alice")], count: 1 }]);
    // Bad arguments are refused with a message, nothing is sent.
    key(&mut a, 'e');
    code(&mut a, KeyCode::Tab);
    for c in "not json".chars() {
        key(&mut a, c);
    }
    code(&mut a, KeyCode::Enter);
    assert!(a.status.as_deref().unwrap().contains("not valid"));
    code(&mut a, KeyCode::Esc);
    assert_eq!(key(&mut a, 'A'), vec![Command::Submit { task: "tasks.add".into(), args: vec![json!(42), json!(58)], count: 1 }]);
}

#[test]
fn task_states_are_tracked_with_times_and_details() {
    let mut a = app();
    busy_lab(&mut a);
    let hello = a.tasks.iter().find(|t| t.id == "11111111-aaaa").unwrap();
    assert_eq!(hello.state, TaskState::Started);
    // The result backend says SUCCESS; a late STARTED does not move it back.
    let mut meta = ResultMeta::success("11111111-aaaa", json!("Hello, World! This message was processed by Celery."));
    meta.date_done = None;
    a.handle(Event::Result(Box::new(meta)));
    a.handle(Event::Result(Box::new(ResultMeta::started("11111111-aaaa", 7, "mqlab@h"))));
    let hello = a.tasks.iter().find(|t| t.id == "11111111-aaaa").unwrap().clone();
    assert_eq!(hello.state, TaskState::Success);
    assert!(
        hello.times.contains_key(&TaskState::Pending)
            && hello.times.contains_key(&TaskState::Started)
            && hello.times.contains_key(&TaskState::Success)
    );
    // A retry shows as RETRY until the task runs again.
    a.handle(Event::Worker(WorkerEvent::TaskRetried { id: "22222222-bbbb".into(), exception: "ConnectionError('x')".into(), at: t(1600) }));
    assert_eq!(a.tasks.iter().find(|t| t.id == "22222222-bbbb").unwrap().state, TaskState::Success, "a finished task stays finished");
    a.handle(Event::Submitted(vec![row("44444444-dddd", "tasks.flaky", "(1,)", t(4000))]));
    a.handle(Event::Worker(WorkerEvent::TaskRetried { id: "44444444-dddd".into(), exception: "ConnectionError('x')".into(), at: t(4100) }));
    assert_eq!(a.tasks[0].state, TaskState::Retry);
    a.handle(Event::Worker(WorkerEvent::TaskStarted { id: "44444444-dddd".into(), at: t(4300) }));
    assert_eq!(a.tasks[0].state, TaskState::Started);
    // A task from another client (Python) appears from the worker's events.
    a.handle(Event::Worker(WorkerEvent::TaskReceived {
        id: "py-1".into(),
        name: "tasks.add".into(),
        args: "(1, 2)".into(),
        kwargs: "{}".into(),
        redelivered: false,
        at: t(5000),
    }));
    assert_eq!(a.tasks[0].id, "py-1");
    // Details of the selected task show the raw message and the stored result.
    key(&mut a, '2');
    let idx = a.tasks.iter().position(|t| t.id == "11111111-aaaa").unwrap();
    for _ in 0..idx {
        code(&mut a, KeyCode::Down);
    }
    a.follow = false;
    code(&mut a, KeyCode::Enter);
    assert_eq!(a.modals.last().map(|m| m.kind()), Some("detail"));
    let s = screen(&mut a, 140, 40);
    assert!(s.contains("Message as sent") && s.contains("correlation_id") && s.contains("celery-task-meta-11111111-aaaa"), "{s}");
    code(&mut a, KeyCode::Esc);
    assert!(a.modals.is_empty());
}

#[test]
fn recovery_and_bursts_become_experiments() {
    let mut a = app();
    key(&mut a, 'w');
    a.handle(Event::Worker(WorkerEvent::Ready { prefetch: 16 }));
    key(&mut a, 'K');
    a.handle(Event::Worker(WorkerEvent::Stopped { mode: StopMode::Cold }));
    let rows: Vec<TaskRow> = (0..20).map(|i| row(&format!("r{i}"), "tasks.hello", "('World',)", t(1000))).collect();
    a.handle(Event::Submitted(rows));
    a.handle(Event::Depth { ready: 20, consumers: 0, at: t(2000) });
    key(&mut a, 'w');
    a.handle(Event::Worker(WorkerEvent::Ready { prefetch: 16 }));
    for i in 0..20 {
        a.handle(Event::Worker(WorkerEvent::TaskSucceeded {
            id: format!("r{i}"),
            result: "'Hello'".into(),
            runtime: 0.2,
            at: t(3000 + i * 10),
        }));
    }
    let kinds: Vec<ExperimentKind> = a.progress.experiments.iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&ExperimentKind::Recovery), "{kinds:?}");
    assert!(kinds.contains(&ExperimentKind::Concurrency), "{kinds:?}");
    let rec = a.progress.experiments.iter().find(|e| e.kind == ExperimentKind::Recovery).unwrap();
    assert!(
        rec.summary.contains("The worker was killed with nothing in flight; 20 task(s) waited (peak queue depth 20)")
            && rec.summary.contains("20 reached SUCCESS")
            && rec.summary.contains("0 lost"),
        "{}",
        rec.summary
    );
    // What lesson 7's late-ack prediction reads: the kill's acks and how many were lost.
    assert_eq!((&rec.figures["acks_late"], &rec.figures["lost"]), (&json!(1), &json!(0)), "{:?}", rec.figures);
    // Killed with nothing in flight: that is not the recovery lesson 7 asks for.
    assert!(!a.progress.experiment_seen("recovery"));
}

#[test]
fn notes_checklist_and_export_keys() {
    let mut a = app();
    key(&mut a, 'n');
    for c in "queues hold, exchanges route".chars() {
        key(&mut a, c);
    }
    assert_eq!(code(&mut a, KeyCode::Esc), vec![Command::SaveProgress]);
    assert_eq!(a.progress.notes[&1], "queues hold, exchanges route");
    key(&mut a, '3');
    for _ in 0..8 {
        code(&mut a, KeyCode::Down);
    }
    assert_eq!(key(&mut a, 'x'), vec![Command::SaveProgress]);
    assert_eq!(a.progress.checklist["explain"].by, "hand");
    key(&mut a, 'x');
    assert!(!a.progress.checklist.contains_key("explain"));
    assert!(matches!(key(&mut a, 'E').as_slice(), [Command::Export(p)] if p.ends_with("LEARNINGS.md")));
    a.handle(Event::Exported("/tmp/x/LEARNINGS.md".into()));
    assert!(screen(&mut a, 80, 24).contains("LEARNINGS.md written to /tmp/x/LEARNINGS.md"));
    assert_eq!(a.focus, Focus::Checklist);
    key(&mut a, 'q');
    assert!(a.quit);
}

#[test]
fn unreachable_sources_are_shown_and_no_color_is_honoured() {
    let mut a = app();
    a.handle(Event::SourceDown { source: mqlab::tui::update::Source::Amqp, error: "refused".into() });
    a.handle(Event::SourceDown { source: mqlab::tui::update::Source::Management, error: "refused".into() });
    key(&mut a, '2');
    assert!(screen(&mut a, 80, 24).contains("The broker does not answer"));
    a.no_color = true;
    let term = render(&mut a, 80, 24);
    assert!(term.backend().buffer().content.iter().all(|c| c.fg == ratatui::style::Color::Reset && c.bg == ratatui::style::Color::Reset));
}

#[test]
fn events_from_a_python_worker_fill_the_table_and_the_worker_list() {
    use mqlab::celery::events::parse;
    let mut a = app();
    let evs = parse(br#"[{"hostname": "celery@vm", "pid": 6631, "clock": 22, "uuid": "py-task-1", "name": "tasks.add", "args": "(1, 2)", "kwargs": "{}", "timestamp": 1795815333.43, "type": "task-received"}]"#);
    let evs2 = parse(br#"{"hostname": "celery@vm", "uuid": "py-task-1", "result": "3", "runtime": 0.004, "timestamp": 1795815333.44, "type": "task-succeeded"}"#);
    let hb = parse(br#"{"hostname": "celery@vm", "freq": 2.0, "active": 0, "processed": 4, "sw_ident": "py-celery", "sw_ver": "5.7.0", "timestamp": 1795815334.27, "type": "worker-heartbeat"}"#);
    for ev in evs.into_iter().chain(evs2).chain(hb) {
        a.handle(Event::Celery(ev));
    }
    let row = a.tasks.iter().find(|t| t.id == "py-task-1").expect("the Python worker's task is listed").clone();
    assert_eq!(row.state, TaskState::Success);
    assert_eq!(row.outcome.as_deref(), Some("3"));
    key(&mut a, '2');
    let s = screen(&mut a, 140, 40);
    assert!(s.contains("celery@vm") && s.contains("py-celery 5.7.0") && s.contains("online"), "{s}");
    assert!(s.contains("py-task-") && s.contains("SUCCESS"), "{s}");
    assert_eq!(row.worker.as_deref(), Some("celery@vm"));
}

#[test]
fn the_sandbox_is_offered_when_nothing_answers_on_the_local_track() {
    let mut a = app();
    key(&mut a, 'T');
    a.status = None;
    a.handle(Event::SourceDown { source: mqlab::tui::update::Source::Amqp, error: "refused".into() });
    a.handle(Event::SourceDown { source: mqlab::tui::update::Source::Redis, error: "refused".into() });
    assert!(a.status.as_deref().unwrap().contains("press S to start a private RabbitMQ and Redis"), "{:?}", a.status);
    assert_eq!(key(&mut a, 'S'), vec![Command::SandboxUp]);
}

#[test]
fn port_forwards_start_and_stop_on_f_and_show_their_state() {
    use mqlab::forward::{Event as F, Forward, State, TARGETS};
    let mut a = app();
    // Step 1 on the cluster track, wide: the Cluster panel says how to start them.
    assert!(screen(&mut a, 160, 40).contains("Port-forwards: off. F starts"));
    assert_eq!(key(&mut a, 'F'), vec![Command::StartForwards]);
    assert!(a.forwards.is_some());
    assert!(screen(&mut a, 160, 40).contains("starting port-forwards"));
    let list: Vec<Forward> = TARGETS
        .iter()
        .map(|t| Forward {
            target: *t,
            local: if t.port == 5672 { 5673 } else { t.port },
            state: State::Connecting,
            counters: Default::default(),
        })
        .collect();
    list[0].counters.received.store(3 * 1024, std::sync::atomic::Ordering::Relaxed);
    a.handle(Event::Forward(F::Listening(list)));
    assert!(a.status.as_deref().unwrap().contains("AMQP 127.0.0.1:5673 (5672 was taken)"), "{:?}", a.status);
    a.handle(Event::Forward(F::State { name: "AMQP", state: State::Up { pod: "rabbitmq-0".into() } }));
    a.handle(Event::Forward(F::State {
        name: "Redis",
        state: State::Down { error: "no Ready pod behind service redis-master yet".into() },
    }));
    assert_eq!(a.status.as_deref(), Some("forward Redis: no Ready pod behind service redis-master yet; retrying"));
    let s = screen(&mut a, 160, 40);
    assert!(s.contains("AMQP       127.0.0.1:5673  → rabbitmq-0"), "{s}");
    assert!(s.contains("↓3.0 KiB") && s.contains("5672 was taken"), "{s}");
    assert!(s.contains("Redis      127.0.0.1:6379  no Ready pod"), "{s}");
    a.handle(Event::Forward(F::State { name: "Redis", state: State::Up { pod: "redis-master-0".into() } }));
    assert_eq!(a.status.as_deref(), Some("forward Redis: up again, to pod redis-master-0"));
    // F again stops them; the runtime says when they ended.
    assert_eq!(key(&mut a, 'F'), vec![Command::StopForwards]);
    a.handle(Event::ForwardsStopped);
    assert!(a.forwards.is_none());
    assert_eq!(a.status.as_deref(), Some("port-forwards stopped"));
    // On the local track there is nothing to forward.
    key(&mut a, 'T');
    assert!(key(&mut a, 'F').is_empty());
    assert!(a.status.as_deref().unwrap().contains("cluster track"));
}

#[test]
fn a_lesson_command_is_shown_then_run_copied_or_cancelled() {
    use mqlab::tui::state::{Modal, ShellDone};
    let mut a = app();
    // Step 1 on the cluster track has two runnable blocks: the preflight, then the cluster's.
    assert_eq!(key(&mut a, '!'), vec![]);
    assert!(matches!(a.modals.last(), Some(Modal::Commands { selected: 0 })));
    let s = screen(&mut a, 120, 40);
    assert!(s.contains("▶ mqlab check --preflight") && s.contains("Enter runs it"), "{s}");
    key(&mut a, 'j');
    assert!(screen(&mut a, 120, 40).contains("▶ kubectl config use-context rancher-desktop"));
    // y copies (OSC 52) and closes.
    assert_eq!(key(&mut a, 'y'), vec![Command::Copy("kubectl config use-context rancher-desktop\nkubectl get nodes".into())]);
    assert!(a.modals.is_empty());
    // Enter runs it, the output streams in, the exit code and duration end it.
    key(&mut a, '!');
    key(&mut a, 'j');
    let cmds = code(&mut a, KeyCode::Enter);
    assert_eq!(cmds, vec![Command::RunShell { command: "kubectl config use-context rancher-desktop\nkubectl get nodes".into() }]);
    assert!(matches!(a.modals.last(), Some(Modal::Output { .. })));
    a.handle(Event::ShellOutput(vec!["Switched to context \"rancher-desktop\".".into(), "NAME                   STATUS   ROLES".into()]));
    let s = screen(&mut a, 120, 40);
    assert!(s.contains("$ kubectl get nodes") && s.contains("Switched to context") && s.contains("c cancels"), "{s}");
    // While it runs, a second run is refused, and c cancels.
    assert_eq!(key(&mut a, 'c'), vec![Command::CancelShell]);
    a.handle(Event::ShellDone(ShellDone { code: None, secs: 1.5, cancelled: true }));
    assert!(screen(&mut a, 120, 40).contains("cancelled after 1.50 s"));
    assert!(a.status.as_deref().unwrap().starts_with("cancelled after 1.5 s"));
    key(&mut a, 'q');
    key(&mut a, '!');
    code(&mut a, KeyCode::Enter);
    a.handle(Event::ShellDone(ShellDone { code: Some(0), secs: 0.25, cancelled: false }));
    assert!(screen(&mut a, 120, 40).contains("exit 0 · 0.25 s"));
    assert!(a.recheck_due, "a command may change what the checks see");
    // A step without runnable commands says so.
    code(&mut a, KeyCode::Esc);
    for _ in 0..7 {
        key(&mut a, ']');
    }
    assert_eq!(a.current().step, 8);
    assert!(key(&mut a, '!').is_empty());
    assert_eq!(a.status.as_deref(), Some("this step has no command to run from here"));
}

/// Forwards served by `mqlab forward` in another terminal: the app shows them as that process's
/// (its pid and ports), uses them, and F neither starts a second set nor stops them.
#[test]
fn forwards_served_elsewhere_are_shown_used_and_left_alone() {
    use mqlab::forward::Recorded;
    let mut a = app();
    let other =
        Recorded { pid: 4242, namespace: "messaging".into(), ports: [(5672, 5673), (15672, 15672), (6379, 6380)].into_iter().collect() };
    a.handle(Event::ForwardsElsewhere(Some(other.clone())));
    let s = screen(&mut a, 160, 40);
    assert!(s.contains("Port-forwards served by `mqlab forward`, pid 4242"), "{s}");
    assert!(s.contains("AMQP       127.0.0.1:5673") && s.contains("5672 was taken"), "{s}");
    assert!(key(&mut a, 'F').is_empty(), "F starts no second set");
    assert!(a.status.as_deref().unwrap().contains("served by `mqlab forward` (pid 4242)"), "{:?}", a.status);
    assert!(a.forwards.is_none());
    // It stops elsewhere: the panel says off again, and F starts the app's own.
    a.handle(Event::ForwardsElsewhere(None));
    assert!(screen(&mut a, 160, 40).contains("Port-forwards: off. F starts"));
    assert_eq!(key(&mut a, 'F'), vec![Command::StartForwards]);
}

/// At 80×24 every line of a long command can be read before Enter: it wraps (↪ marks the
/// continuation) and the list scrolls to the chosen command.
#[test]
fn long_commands_are_readable_at_80x24_before_enter() {
    let mut a = app();
    key(&mut a, ']');
    key(&mut a, '!');
    key(&mut a, 'j');
    let s = screen(&mut a, 80, 24);
    let helm = mqlab::probes::kube::helm_rabbitmq("messaging");
    // The popup's inside, row by row; a row that starts with ↪ continues the one above.
    let rows: Vec<Vec<char>> = s.lines().map(|l| l.trim_matches('"').chars().collect()).collect();
    let top = rows.iter().position(|r| r.iter().collect::<String>().contains("Run a command")).unwrap();
    let left =
        rows[top].iter().collect::<String>().find("┏ Run").map(|b| rows[top].iter().collect::<String>()[..b].chars().count()).unwrap();
    let right = left + rows[top][left..].iter().position(|c| *c == '┓').unwrap();
    let mut lines: Vec<String> = vec![];
    for r in &rows[top + 1..] {
        let inner: String = r[left + 1..right.min(r.len())].iter().collect::<String>().trim_end_matches(['█', '║', ' ']).to_string();
        match inner.strip_prefix("↪ ") {
            Some(more) => lines.last_mut().unwrap().push_str(more),
            None => lines.push(inner.strip_prefix("▶ ").or_else(|| inner.strip_prefix("  ")).unwrap_or(&inner).to_string()),
        }
    }
    for line in helm.lines() {
        assert!(lines.iter().any(|l| l == line), "{line:?} is not readable whole at 80×24:\n{s}\n{lines:#?}");
    }
    assert!(s.contains("▶ helm install rabbitmq"), "{s}");
    assert!(s.contains('↪'), "the first line wraps:\n{s}");
}

/// Two early-ack kills in a row: each records what that kill cost (its own running tasks lost,
/// the rest unacknowledged and put back), never a count carried over from the kill before; and
/// the burst the kills cut short is not recorded as a throughput.
#[test]
fn each_kill_records_its_own_cost_and_a_cut_burst_is_no_throughput() {
    let mut a = app();
    a.worker.acks_late = false;
    key(&mut a, 'w');
    a.handle(Event::Worker(WorkerEvent::Ready { prefetch: 16 }));
    let rows: Vec<TaskRow> = (0..16).map(|i| row(&format!("b{i}"), "tasks.hello", "('World',)", t(1000))).collect();
    a.handle(Event::Submitted(rows));
    let receive = |a: &mut App, i: i64, redelivered: bool| {
        a.handle(Event::Worker(WorkerEvent::TaskReceived {
            id: format!("b{i}"),
            name: "tasks.hello".into(),
            args: "('World',)".into(),
            kwargs: "{}".into(),
            redelivered,
            at: t(1100 + i),
        }))
    };
    for i in 0..16 {
        receive(&mut a, i, false);
    }
    for i in 0..4 {
        a.handle(Event::Worker(WorkerEvent::TaskStarted { id: format!("b{i}"), at: t(1200 + i) }));
    }
    key(&mut a, 'K');
    a.handle(Event::Worker(WorkerEvent::Stopped { mode: StopMode::Cold }));
    assert!(a.status.as_deref().unwrap().contains("4 running task(s) were already acknowledged and are LOST"), "{:?}", a.status);
    // The broker puts back the 12 that were never acknowledged.
    a.handle(Event::Depth { ready: 12, consumers: 0, at: t(2000) });
    key(&mut a, 'w');
    a.handle(Event::Worker(WorkerEvent::Ready { prefetch: 16 }));
    for i in 4..16 {
        receive(&mut a, i, true);
    }
    for i in 4..8 {
        a.handle(Event::Worker(WorkerEvent::TaskStarted { id: format!("b{i}"), at: t(3000 + i) }));
    }
    key(&mut a, 'K');
    a.handle(Event::Worker(WorkerEvent::Stopped { mode: StopMode::Cold }));
    assert!(
        a.status.as_deref().unwrap().contains("4 running task(s) were already acknowledged and are LOST"),
        "second kill: {:?}",
        a.status
    );
    let losses: Vec<&mqlab::lessons::progress::Experiment> =
        a.progress.experiments.iter().filter(|e| e.kind == ExperimentKind::EarlyAckLoss).collect();
    assert_eq!(losses.len(), 2);
    for e in &losses {
        assert_eq!(e.figures["lost"], json!(4), "{}", e.summary);
    }
    assert_eq!(losses[0].figures["in_flight"], json!(16));
    assert_eq!(losses[1].figures["in_flight"], json!(12));
    // The survivors finish after a restart: a recovery, not a burst measurement.
    key(&mut a, 'w');
    a.handle(Event::Worker(WorkerEvent::Ready { prefetch: 16 }));
    for i in 8..16 {
        a.handle(Event::Worker(WorkerEvent::TaskSucceeded {
            id: format!("b{i}"),
            result: "'Hello'".into(),
            runtime: 2.0,
            at: t(6000 + i),
        }));
    }
    assert!(
        !a.progress.experiment_seen("concurrency")
            && !a.progress.experiments.iter().any(|e| e.figures.contains_key("seconds") && e.kind == ExperimentKind::Concurrency),
        "a burst cut by a kill is no throughput: {:#?}",
        a.progress.experiments
    );
    let rec = a.progress.experiments.iter().find(|e| e.kind == ExperimentKind::Recovery).expect("the recovery is recorded");
    assert!(rec.summary.starts_with("The worker was killed with 12 message(s) unacknowledged"), "{}", rec.summary);
    // Early acks: this recovery does not answer the late-ack prediction.
    assert_eq!(rec.figures["acks_late"], json!(0), "{:?}", rec.figures);
}

/// Step 7 the curriculum's way, seen only on the broker: the learner's Python worker consumes,
/// `mqlab submit --count 20` (another program) makes the queue rise and drain, then the worker
/// is killed with messages unacknowledged, more wait, it comes back and the queue drains. The
/// app's own worker never ran: both experiments are recorded, as the broker showed them.
#[test]
fn a_burst_and_a_recovery_of_the_learners_own_worker_are_seen_on_the_broker() {
    let mut a = app();
    let mut ms = 0;
    let mut depth = |a: &mut App, ready: u64, consumers: u64| {
        ms += 500;
        a.handle(Event::Depth { ready, consumers, at: t(ms) });
    };
    for (r, c) in [(0, 1), (14, 1), (20, 1), (9, 1), (0, 1)] {
        depth(&mut a, r, c);
    }
    assert!(a.progress.experiment_seen("burst"), "{:#?}", a.progress.experiments);
    assert!(!a.progress.experiment_seen("concurrency"), "no concurrency is known for a burst seen on the broker");
    for (r, c) in [(18, 1), (14, 1), (22, 0), (26, 0), (26, 1), (12, 1), (0, 1)] {
        depth(&mut a, r, c);
    }
    assert!(a.progress.experiment_seen("recovery"), "{:#?}", a.progress.experiments);
    let rec = a.progress.experiments.iter().rev().find(|e| e.kind == ExperimentKind::Recovery).unwrap();
    assert!(
        rec.summary
            .starts_with("Seen on the broker: the queue's worker went away (8 came back unacknowledged as it left); 26 message(s) waited"),
        "{}",
        rec.summary
    );
    // The lab's own worker running: its experiments record themselves, the broker's view is not
    // recorded twice.
    let before = a.progress.experiments.len();
    key(&mut a, 'w');
    a.handle(Event::Worker(WorkerEvent::Ready { prefetch: 16 }));
    for (r, c) in [(0, 1), (14, 1), (0, 1)] {
        depth(&mut a, r, c);
    }
    assert_eq!(a.progress.experiments.len(), before);
}

/// `T` twice: results of checks asked on the other track (or other endpoints) that arrive after
/// the switch are dropped, and nothing from the other track is shown as this one's.
#[test]
fn results_from_the_other_track_are_not_shown_after_t() {
    let mut a = app();
    assert!(matches!(key(&mut a, 'r').as_slice(), [Command::RunChecks(_)]));
    key(&mut a, 'T');
    assert_eq!(a.track, Track::Local);
    assert!(a.checks.is_empty(), "nothing of the cluster track is shown on the local one");
    a.handle(Event::ChecksDone(vec![check("kube.context", Status::Fail, "context \"rancher-desktop\" is not in the kubeconfig", None)]));
    assert!(!a.checks.contains_key("kube.context"), "a late cluster result is dropped");
    assert!(!a.progress.checks.contains_key("kube.context"), "and not recorded");
    assert!(matches!(key(&mut a, 'r').as_slice(), [Command::RunChecks(_)]));
    key(&mut a, 'T');
    assert_eq!(a.track, Track::K3s);
    a.handle(Event::ChecksDone(vec![check("amqp.login", Status::Pass, "logged in to amqp://guest:**@localhost:5672//", None)]));
    assert!(!a.checks.contains_key("amqp.login"), "a late local result is dropped on the cluster track");
    // Asked on this track, a result counts.
    key(&mut a, 'r');
    a.handle(Event::ChecksDone(vec![check("kube.context", Status::Pass, "context \"rancher-desktop\" exists and is current", None)]));
    assert!(matches!(a.checks.get("kube.context"), Some(mqlab::tui::state::CheckState::Done(_))));
}

/// P asks the lesson's predictions one at a time (a number, Enter; digits only), keeps each in
/// progress, then the checks panel shows the answer, first unmeasured, then beside the figure
/// of the experiment that followed, with why.
#[test]
fn predictions_are_asked_with_p_and_shown_beside_the_measured_figure() {
    use mqlab::lessons::progress::{Change, experiment};
    let mut a = app();
    a.lesson = 2;
    assert!(key(&mut a, 'P').is_empty());
    assert_eq!(a.status.as_deref(), Some("lesson 3 asks for no prediction"));
    a.lesson = 6;
    key(&mut a, 'P');
    let s = screen(&mut a, 100, 30);
    assert!(s.contains("Predict · lesson 7 · question 1 of 3"), "{s}");
    assert!(s.contains("how high will Ready go?"), "{s}");
    key(&mut a, 'x'); // not a digit: ignored
    key(&mut a, '1');
    key(&mut a, '2');
    assert!(screen(&mut a, 100, 30).contains("your prediction: 12▏ messages"));
    assert_eq!(code(&mut a, KeyCode::Enter), vec![Command::SaveProgress]);
    assert_eq!(a.progress.predictions[&7]["ready_peak"].value, 12.0);
    let s = screen(&mut a, 100, 30);
    assert!(s.contains("question 2 of 3") && s.contains("how many are lost?"), "the next question: {s}");
    code(&mut a, KeyCode::Esc);
    assert!(a.modals.is_empty());
    let s = screen(&mut a, 120, 40);
    assert!(s.contains("You predicted 12 messages (ready_peak): not measured yet"), "{s}");
    assert!(s.contains("Predict first (P): In the lab with late acks"), "{s}");
    let mut e = experiment(ExperimentKind::Concurrency, "a burst", json!({"ready_peak": 11, "peak_depth": 19, "drained": 1}));
    e.lesson = Some(7);
    a.change(Change::Experiment(e));
    let s = screen(&mut a, 120, 40);
    assert!(s.contains("You predicted 12 messages; measured 11 messages."), "{s}");
}
