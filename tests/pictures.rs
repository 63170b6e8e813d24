//! The README's pictures: real screens drawn by the app's own drawing code (state set by the
//! same events the app handles), written as SVG under assets/screens/. The test fails when a
//! picture is stale; `MQLAB_WRITE_PICTURES=1 cargo test --test pictures` writes them again.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, TimeZone, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use mqlab::celery::TaskState;
use mqlab::celery::worker::{StopMode, WorkerEvent};
use mqlab::config::{Config, Overrides, Track};
use mqlab::lessons::Course;
use mqlab::lessons::progress::Progress;
use mqlab::probes::{CheckResult, Status};
use mqlab::tui::App;
use mqlab::tui::state::{Sample, TaskRow};
use mqlab::tui::update::Event;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use serde_json::json;

fn t(ms: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 9, 0, 0).unwrap() + chrono::Duration::milliseconds(ms)
}

fn app() -> App {
    let env = |k: &str| match k {
        "MQLAB_CONFIG" => Some("/nonexistent".to_string()),
        "MQLAB_DATA_DIR" => Some("/nonexistent-data".to_string()),
        "MQLAB_BROKER_URL" => Some("amqp://admin:admin123@localhost:5672//".to_string()),
        _ => None,
    };
    let cfg = Config::load_with(&Overrides { track: Some(Track::Local), ..Default::default() }, &env).unwrap();
    let mut a = App::new(cfg, Course::embedded().unwrap(), Progress::new());
    a.tz = chrono::FixedOffset::east_opt(0).unwrap();
    a.started = t(0);
    a.clock = t(30_000);
    a.own_hostname = "mqlab-4242@laptop".into();
    a.no_color = false;
    a
}

fn key(a: &mut App, c: char) {
    a.handle(Event::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)));
}

fn row(i: usize, name: &str, args: &str, at: DateTime<Utc>) -> TaskRow {
    let mut times = BTreeMap::new();
    times.insert(TaskState::Pending, at);
    let id = format!("{:08x}-5c1e-4d2a-9f00-{:012x}", 0x3a7f0000u32 + i as u32, i);
    TaskRow {
        lost: false,
        worker: None,
        id: id.clone(),
        name: name.into(),
        args: args.into(),
        state: TaskState::Pending,
        times,
        runtime: None,
        outcome: None,
        traceback: None,
        raw: Some(json!({
            "properties": {"correlation_id": id, "content_type": "application/json", "content_encoding": "utf-8", "delivery_mode": 2, "priority": 0},
            "headers": {"lang": "py", "task": name, "id": id, "root_id": id, "argsrepr": args, "retries": 0, "timelimit": [null, null]},
            "body": [[10, 0], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}],
            "routing_key": "celery"
        })),
        stored: None,
    }
}

fn ok(id: &str, title: &str, detail: &str) -> CheckResult {
    CheckResult {
        id: id.into(),
        title: title.into(),
        status: Status::Pass,
        detail: detail.into(),
        hint: None,
        facts: Default::default(),
        at: t(1000),
        millis: 4,
        expected: String::new(),
        call: String::new(),
    }
}

fn worker_up(a: &mut App) {
    key(a, 'w');
    a.handle(Event::Worker(WorkerEvent::Ready { prefetch: 16 }));
    a.handle(Event::RedisUp);
}

/// Depth readings every 0.5 s from `from` ms: ready figures given, consumers 1.
fn depth(a: &mut App, from: i64, readings: &[u64]) {
    for (i, r) in readings.iter().enumerate() {
        a.handle(Event::Depth { ready: *r, consumers: 1, at: t(from + i as i64 * 500) });
    }
}

fn scenes() -> Vec<(&'static str, &'static str, App, u16, u16)> {
    let mut out = vec![];

    // A lesson with its live panel: step 6, a task through mqlab's worker.
    let mut a = app();
    for _ in 0..5 {
        key(&mut a, ']');
    }
    worker_up(&mut a);
    a.handle(Event::ChecksDone(vec![
        ok("mgmt.celery_queue", "Queue celery exists and has a consumer", "queue celery: 1 consumer(s), 0 message(s) waiting"),
        ok("tasks.roundtrip", "A task runs through the broker", "tasks.add(42, 58) = 100 in 4 ms through queue \"celery\""),
    ]));
    let r = row(1, "tasks.add", "(42, 58)", t(20_000));
    let id = r.id.clone();
    a.handle(Event::Submitted(vec![r]));
    a.handle(Event::Worker(WorkerEvent::TaskStarted { id: id.clone(), at: t(20_004) }));
    a.handle(Event::Worker(WorkerEvent::TaskSucceeded { id, result: "100".into(), runtime: 0.001, at: t(20_006) }));
    depth(&mut a, 0, &[0; 20]);
    a.status = None;
    out.push(("lesson", "Lesson 6 with its live panel: the worker, the queue and the last task", a, 140, 36));

    // The lab during a burst: 100 × tasks.add at concurrency 4, the queue rising then draining.
    let mut a = app();
    worker_up(&mut a);
    key(&mut a, '2');
    let rows: Vec<TaskRow> = (0..100).map(|i| row(100 + i, "tasks.hello", "('World',)", t(10_000))).collect();
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    a.handle(Event::Submitted(rows));
    depth(&mut a, 0, &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    depth(&mut a, 10_000, &[84, 82, 80, 78, 76, 74, 72, 70, 68, 66, 64, 62, 60, 58, 56, 54, 52, 50, 48, 46]);
    a.handle(Event::WorkerStats { processed: 40, failed: 0, active: 4, unacked: 16 });
    for (i, id) in ids.iter().enumerate().take(40) {
        let at = t(10_500 + i as i64 * 500);
        a.handle(Event::Worker(WorkerEvent::TaskStarted { id: id.clone(), at }));
        a.handle(Event::Worker(WorkerEvent::TaskSucceeded {
            id: id.clone(),
            result: "'Hello, World! This message was processed by Celery.'".into(),
            runtime: 2.0,
            at: at + chrono::Duration::seconds(2),
        }));
    }
    for id in ids.iter().skip(40).take(4) {
        a.handle(Event::Worker(WorkerEvent::TaskStarted { id: id.clone(), at: t(29_800) }));
    }
    for (i, s) in [(0.0, 0.0, 0.0), (20.0, 1.8, 1.6), (0.0, 2.0, 2.0), (0.0, 2.0, 2.0)].iter().enumerate() {
        a.handle(Event::Sample {
            sample: Sample { ready: 46, unacked: 16, consumers: 1, publish_rate: s.0, deliver_rate: s.1, ack_rate: s.2 },
            at: t(15_000 + i as i64 * 5000),
        });
    }
    a.status = None;
    out.push(("burst", "The lab during a burst: ready falls as the worker drains the queue, 16 held unacknowledged", a, 140, 40));

    // Recovery: the worker was killed mid-burst (late acks) and restarted; the tasks it held
    // came back and finished.
    let mut a = app();
    worker_up(&mut a);
    key(&mut a, '2');
    let rows: Vec<TaskRow> = (0..20).map(|i| row(300 + i, "tasks.hello", "('World',)", t(5_000))).collect();
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    a.handle(Event::Submitted(rows));
    depth(&mut a, 0, &[0; 10]);
    for id in ids.iter().take(4) {
        a.handle(Event::Worker(WorkerEvent::TaskReceived {
            id: id.clone(),
            name: "tasks.hello".into(),
            args: "('World',)".into(),
            kwargs: "{}".into(),
            redelivered: false,
            at: t(5_010),
        }));
        a.handle(Event::Worker(WorkerEvent::TaskStarted { id: id.clone(), at: t(5_020) }));
    }
    key(&mut a, 'K');
    a.handle(Event::Worker(WorkerEvent::Stopped { mode: StopMode::Cold }));
    depth(&mut a, 5_000, &[20, 20, 20, 20, 20, 20, 20, 20, 20, 20]);
    key(&mut a, 'w');
    a.handle(Event::Worker(WorkerEvent::Ready { prefetch: 16 }));
    depth(&mut a, 10_000, &[4, 4, 4, 0, 0, 0, 0, 0]);
    for (i, id) in ids.iter().enumerate() {
        let at = t(10_100 + i as i64 * 500);
        a.handle(Event::Worker(WorkerEvent::TaskStarted { id: id.clone(), at }));
        a.handle(Event::Worker(WorkerEvent::TaskSucceeded {
            id: id.clone(),
            result: "'Hello, World! This message was processed by Celery.'".into(),
            runtime: 2.0,
            at: at + chrono::Duration::seconds(2),
        }));
    }
    a.handle(Event::WorkerStats { processed: 20, failed: 0, active: 0, unacked: 0 });
    out.push(("recovery", "After a kill: the 4 running tasks were never acknowledged, came back, and all 20 finished", a, 140, 40));

    // A failed task's detail: the message as sent, the stored result and the traceback.
    let mut a = app();
    worker_up(&mut a);
    key(&mut a, '2');
    let mut r = row(7, "tasks.divide", "(10, 0)", t(1_000));
    let id = r.id.clone();
    r.stored = Some(
        json!({"status": "FAILURE", "result": {"exc_type": "ZeroDivisionError", "exc_message": ["division by zero"], "exc_module": "builtins"},
        "traceback": "Traceback (most recent call last):\n  File \"celery_app.py\", line 52, in divide_task\n    return x / y\nZeroDivisionError: division by zero\n",
        "children": [], "date_done": "2026-11-27T09:00:01.006000+00:00", "task_id": id}),
    );
    a.handle(Event::Submitted(vec![r]));
    a.handle(Event::Worker(WorkerEvent::TaskStarted { id: id.clone(), at: t(1_004) }));
    a.handle(Event::Worker(WorkerEvent::TaskFailed {
        id: id.clone(),
        exception: "ZeroDivisionError('division by zero')".into(),
        traceback: Some("Traceback (most recent call last):\n  File \"celery_app.py\", line 52, in divide_task\n    return x / y\nZeroDivisionError: division by zero".into()),
        runtime: 0.001,
        at: t(1_006),
    }));
    a.handle(Event::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)));
    a.status = None;
    out.push(("detail", "A failed task: its times, the exception and traceback, the message as sent and what Redis stored", a, 120, 40));
    out
}

#[test]
fn the_readme_pictures_are_current() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/screens");
    let write = std::env::var_os("MQLAB_WRITE_PICTURES").is_some();
    let mut stale = vec![];
    for (name, title, mut a, w, h) in scenes() {
        // The picture is taken just after the last reading.
        if let Some(at) = a.depth_at {
            a.clock = at + chrono::Duration::milliseconds(500);
        }
        let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
        term.draw(|f| mqlab::tui::view::draw(f, &mut a)).unwrap();
        let svg = mqlab::tui::svg::buffer_to_svg(term.backend().buffer(), title);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        let path = dir.join(format!("{name}.svg"));
        if write {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &svg).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(svg.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(stale.is_empty(), "stale pictures (MQLAB_WRITE_PICTURES=1 cargo test --test pictures writes them): {stale:?}");
}
