//! The lesson-first screen: every lesson at 80×24, 120×40 and 200×60 (snapshots), prose never
//! cut mid-word, the live panel chosen by the step, one keymap (and the README's key table from
//! it), a modal stack, scrolling popups, the first-launch screen, live figures that never show
//! an impossible combination, crash semantics and what is recorded.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, TimeZone, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use mqlab::celery::TaskState;
use mqlab::celery::worker::{StopMode, WorkerEvent};
use mqlab::config::{Config, Overrides, Track};
use mqlab::lessons::Course;
use mqlab::lessons::progress::{ExperimentKind, Progress};
use mqlab::tui::App;
use mqlab::tui::keymap;
use mqlab::tui::markdown::{self, Kind};
use mqlab::tui::state::{FigureSource, LivePanel, Modal, Sample, TaskRow, WorkerState};
use mqlab::tui::update::{Command, Event};
use mqlab::tui::view;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::layout::Rect;

fn t(ms: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 9, 0, 0).unwrap() + chrono::Duration::milliseconds(ms)
}

fn cfg(track: Track) -> Config {
    let env = |k: &str| match k {
        "MQLAB_CONFIG" => Some("/nonexistent".to_string()),
        "MQLAB_DATA_DIR" => Some("/nonexistent-data".to_string()),
        _ => None,
    };
    Config::load_with(&Overrides { track: Some(track), ..Default::default() }, &env).unwrap()
}

fn app(track: Track) -> App {
    let mut app = App::new(cfg(track), Course::embedded().unwrap(), Progress::new());
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

fn screen(app: &mut App, w: u16, h: u16) -> String {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| view::draw(f, app)).unwrap();
    term.backend().to_string()
}

fn row(id: &str, name: &str, at: DateTime<Utc>) -> TaskRow {
    let mut times = BTreeMap::new();
    times.insert(TaskState::Pending, at);
    TaskRow {
        lost: false,
        worker: None,
        id: id.into(),
        name: name.into(),
        args: "()".into(),
        state: TaskState::Pending,
        times,
        runtime: None,
        outcome: None,
        traceback: None,
        raw: None,
        stored: None,
    }
}

const SIZES: [(u16, u16); 3] = [(80, 24), (120, 40), (200, 60)];

#[test]
fn every_lesson_at_every_size() {
    for track in [Track::K3s, Track::Local] {
        let mut a = app(track);
        for step in 1..=11 {
            for (w, h) in SIZES {
                a.status = None;
                let s = screen(&mut a, w, h);
                assert!(s.contains(&format!("step {step}/11")), "{s}");
                insta::assert_snapshot!(format!("lesson{step:02}_{}_{w}x{h}", track.as_str()), s);
            }
            key(&mut a, ']');
        }
    }
}

/// Tokens of the text as rendered with no width limit: a cut word makes a token not in here.
fn tokens(lines: &[markdown::MdLine]) -> HashSet<String> {
    lines
        .iter()
        .filter(|l| l.kind != Kind::Code)
        .flat_map(|l| markdown::plain(&l.line).split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .collect()
}

#[test]
fn no_prose_line_is_cut_mid_word() {
    let course = Course::embedded().unwrap();
    for track in [Track::K3s, Track::Local] {
        let c = cfg(track);
        for l in &course.lessons {
            let md = mqlab::lessons::template::fill(&l.text(track), &c);
            let whole = tokens(&markdown::render(&md, 2000, 0));
            for (w, h) in SIZES {
                let width = view::lesson_text_width(Rect::new(0, 0, w, h));
                assert!(width <= view::MEASURE, "the measure is at most {}", view::MEASURE);
                for line in markdown::render(&md, width, 0) {
                    let text = markdown::plain(&line.line);
                    let shown = unicode_width::UnicodeWidthStr::width(text.as_str());
                    if line.kind == Kind::Code {
                        assert!(shown <= width as usize, "{}: a code line wider than {width}: {text:?}", l.file);
                        continue;
                    }
                    assert!(shown <= width as usize, "{}: {text:?} is wider than {width}", l.file);
                    // A long URL is shortened to fit (scheme dropped, middle elided with "…"): a
                    // URL is not a prose word.
                    let url_like = |t: &str| t.contains('…') || (t.starts_with('(') && t.contains('/') && t.contains('.'));
                    for tok in text.split_whitespace().filter(|t| !url_like(t)) {
                        assert!(whole.contains(tok), "{} at {w}×{h}: {tok:?} is a piece of a word, in {text:?}", l.file);
                    }
                }
            }
        }
    }
}

#[test]
fn the_lesson_gets_most_of_a_wide_screen() {
    for (w, h) in [(100, 30), (120, 40), (200, 60)] {
        let col = view::lesson_width(w);
        assert!(col * 100 >= w * 60, "{w}: {col}");
        assert!(view::lesson_text_width(Rect::new(0, 0, w, h)) <= view::MEASURE);
    }
    let mut a = app(Track::K3s);
    let s = screen(&mut a, 120, 40);
    // The live panel sits beside the lesson, not a lab in step 1.
    assert!(s.contains("Cluster · kubectl's view") && !s.contains("Worker pool"), "{s}");
    // Below 100 columns, tabs.
    assert!(screen(&mut a, 99, 40).contains("1 Lesson 1"));
}

#[test]
fn the_live_panel_fits_the_step() {
    let mut a = app(Track::K3s);
    let mut seen = vec![];
    for _ in 1..=11 {
        seen.push(a.live_panel());
        key(&mut a, ']');
    }
    use LivePanel::*;
    assert_eq!(seen, [Cluster, Cluster, Management, Cluster, Lab, Lab, Lab, Lab, Lab, Checklist, Checklist]);
    let mut a = app(Track::Local);
    assert_eq!(a.live_panel(), Services);
    let s = screen(&mut a, 140, 40);
    assert!(s.contains("RabbitMQ and Redis on this machine"), "{s}");
    // The local track's screens never mention K3s or port-forwards outside the lesson text.
    key(&mut a, '2');
    a.handle(Event::SourceDown { source: mqlab::tui::update::Source::Amqp, error: "refused".into() });
    let s = screen(&mut a, 140, 40);
    assert!(!s.contains("port-forward") && !s.contains("K3s"), "{s}");
}

#[test]
fn one_keymap_without_conflicts_and_the_readme_has_its_table() {
    assert_eq!(keymap::conflicts(), Vec::<String>::new());
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("<!-- keys:start -->").expect("README has a keys:start marker") + "<!-- keys:start -->".len();
    let end = readme.find("<!-- keys:end -->").expect("README has a keys:end marker");
    assert_eq!(readme[start..end].trim(), keymap::markdown_table().trim(), "README's key table differs from the keymap");
    // The kill is on a shifted key; j/k scroll.
    let kill = keymap::KEYMAP.iter().find(|b| b.action == keymap::Action::WorkerKill).unwrap();
    assert_eq!(kill.label, "K");
    for k in ['j', 'k'] {
        let ev = KeyEvent::new(KeyCode::Char(k), KeyModifiers::NONE);
        assert!(matches!(keymap::lookup(&ev, keymap::Scope::Lesson), Some(keymap::Action::Down | keymap::Action::Up)));
    }
    // The footer hints come from the table.
    let mut a = app(Track::K3s);
    a.status = None;
    let s = screen(&mut a, 200, 60);
    assert!(s.contains(&keymap::hints(keymap::Scope::Lesson)[..40]), "{s}");
}

#[test]
fn popups_are_a_stack_and_esc_closes_the_top_one() {
    let mut a = app(Track::Local);
    a.handle(Event::Submitted(vec![row("aaaa1111", "tasks.add", t(10))]));
    key(&mut a, '2');
    code(&mut a, KeyCode::Enter);
    key(&mut a, '?');
    // While a popup is open, keys go to it: `?` on top of the task detail opened nothing else.
    let kinds: Vec<&str> = a.modals.iter().map(|m| m.kind()).collect();
    assert_eq!(kinds, ["detail"]);
    code(&mut a, KeyCode::Esc);
    assert!(a.modals.is_empty());
    key(&mut a, '?');
    key(&mut a, 'n');
    assert_eq!(a.modals.iter().map(|m| m.kind()).collect::<Vec<_>>(), ["help"], "n inside the help does not open notes");
    code(&mut a, KeyCode::Esc);
    key(&mut a, 'n');
    assert_eq!(a.modals.last().unwrap().kind(), "notes");
    for c in "half a thought".chars() {
        key(&mut a, c);
    }
    // Ctrl-C in the editor keeps the note.
    let cmds = a.handle(Event::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)));
    assert_eq!(cmds, [Command::SaveProgress]);
    assert!(!a.quit && a.modals.is_empty());
    assert_eq!(a.progress.notes[&1], "half a thought");
}

#[test]
fn the_task_detail_scrolls_to_the_traceback() {
    let mut a = app(Track::Local);
    let mut r = row("ffff0000-1111", "tasks.divide", t(10));
    r.state = TaskState::Failure;
    r.outcome = Some("ZeroDivisionError('division by zero')".into());
    let tb: String = (0..60).map(|i| format!("  File \"celery_app.py\", line {i}, in frame_{i}\n")).collect::<String>()
        + "ZeroDivisionError: division by zero-END";
    r.traceback = Some(tb);
    r.raw = Some(serde_json::json!({"properties": {"correlation_id": "ffff0000-1111"}, "payload": "[[10, 0], {}, {}]"}));
    a.handle(Event::Submitted(vec![r]));
    key(&mut a, '2');
    code(&mut a, KeyCode::Enter);
    let first = screen(&mut a, 80, 24);
    assert!(!first.contains("division by zero-END"));
    assert!(first.contains("1–"), "a position indicator: {first}");
    // The traceback comes before the raw message: End, then up a page, shows its last line.
    code(&mut a, KeyCode::End);
    let mut found = false;
    for _ in 0..10 {
        if screen(&mut a, 80, 24).contains("division by zero-END") {
            found = true;
            break;
        }
        code(&mut a, KeyCode::PageUp);
    }
    assert!(found, "the traceback's last line can be reached");
    code(&mut a, KeyCode::Home);
    assert!(screen(&mut a, 80, 24).contains("tasks.divide[ffff0000-1111]"));
}

#[test]
fn first_launch_offers_the_tracks_and_saves_the_choice() {
    let mut c = cfg(Track::K3s);
    c.track_explicit = false;
    let mut a = App::new(c.clone(), Course::embedded().unwrap(), Progress::new());
    assert!(a.first_launch());
    a.modals.push(Modal::Start);
    a.sandbox_available = true;
    let s = screen(&mut a, 100, 30);
    assert!(s.contains("Welcome to mqlab") && s.contains("local track with a sandbox"), "{s}");
    let cmds = key(&mut a, 's');
    assert_eq!(cmds, [Command::SaveProgress, Command::SandboxUp]);
    assert_eq!((a.track, a.progress.track), (Track::Local, Some(Track::Local)));
    assert!(a.modals.is_empty());
    // Chosen once: the next start has a track and no start screen; a flag wins over it.
    let b = App::new(c.clone(), Course::embedded().unwrap(), a.progress.clone());
    assert!(!b.first_launch());
    assert_eq!(b.track, Track::Local);
    let mut flagged = c;
    flagged.track_explicit = true;
    assert_eq!(App::new(flagged, Course::embedded().unwrap(), a.progress.clone()).track, Track::K3s);
}

#[test]
fn a_new_configuration_applies_at_once() {
    let mut a = app(Track::Local);
    key(&mut a, 'w');
    a.handle(Event::Worker(WorkerEvent::Ready { prefetch: 16 }));
    let mut next = a.cfg.clone();
    next.broker_url = "amqp://admin:admin123@localhost:45672//".into();
    next.result_backend = "redis://localhost:46379/0".into();
    let cmds = a.handle(Event::ConfigChanged(Box::new(next)));
    assert_eq!(cmds, [Command::Reconfigure, Command::RestartWorker { concurrency: 4, acks_late: true }]);
    // Lesson 4's command follows the sandbox's port.
    for _ in 0..3 {
        key(&mut a, ']');
    }
    let s = screen(&mut a, 200, 60);
    assert!(s.contains("redis-cli -h localhost -p 46379 PING"), "{s}");
}

#[test]
fn checks_rerun_by_themselves_when_what_they_test_changes() {
    let mut a = app(Track::Local);
    a.handle(Event::Tick);
    key(&mut a, 'w');
    let cmds = a.handle(Event::Worker(WorkerEvent::Ready { prefetch: 16 }));
    assert!(cmds.is_empty());
    let cmds = a.handle(Event::Tick);
    assert!(matches!(cmds.as_slice(), [Command::RunChecks(ids)] if ids.iter().all(|i| !i.starts_with("tasks."))), "{cmds:?}");
    // At most once a second.
    a.handle(Event::ChecksDone(vec![]));
    a.handle(Event::RedisUp);
    assert!(a.handle(Event::Tick).iter().all(|c| !matches!(c, Command::RunChecks(_))));
}

#[test]
fn unacked_is_live_and_never_impossible() {
    let mut a = app(Track::Local);
    key(&mut a, 'w');
    a.handle(Event::Worker(WorkerEvent::Ready { prefetch: 16 }));
    a.handle(Event::WorkerStats { processed: 0, failed: 0, active: 4, unacked: 16 });
    // A stale management sample says 16 unacked; the live reading says nobody consumes.
    a.handle(Event::Sample { sample: Sample { ready: 0, unacked: 16, consumers: 1, ..Default::default() }, at: t(0) });
    a.handle(Event::Depth { ready: 16, consumers: 0, at: t(500) });
    assert_eq!(a.unacked_now(), (0, FigureSource::Live));
    // Only this app's worker consumes: its own count, live.
    a.handle(Event::Depth { ready: 4, consumers: 1, at: t(1000) });
    assert_eq!(a.unacked_now(), (16, FigureSource::Live));
    assert_eq!(a.depth.back().map(|d| (d.1, d.2)), Some((4, 16)));
    // Another consumer that sends no task events: the sample, labelled as one.
    a.handle(Event::Depth { ready: 4, consumers: 2, at: t(1500) });
    a.handle(Event::Sample { sample: Sample { ready: 4, unacked: 20, consumers: 2, ..Default::default() }, at: t(1500) });
    assert_eq!(a.unacked_now(), (20, FigureSource::Sample));
    a.focus = mqlab::tui::state::Focus::Lab;
    assert!(screen(&mut a, 140, 40).contains("unacked 20 (5 s sample)"));
}

#[test]
fn an_early_ack_kill_loses_the_running_tasks_and_says_so() {
    let mut a = app(Track::Local);
    key(&mut a, 'a');
    key(&mut a, 'w');
    a.handle(Event::Worker(WorkerEvent::Ready { prefetch: 8 }));
    a.handle(Event::Submitted((0..5).map(|i| row(&format!("e{i}"), "tasks.hello", t(10))).collect()));
    for i in 0..2 {
        a.handle(Event::Worker(WorkerEvent::TaskReceived {
            id: format!("e{i}"),
            name: "tasks.hello".into(),
            args: "()".into(),
            kwargs: "{}".into(),
            redelivered: false,
            at: t(20),
        }));
        a.handle(Event::Worker(WorkerEvent::TaskStarted { id: format!("e{i}"), at: t(30) }));
    }
    key(&mut a, 'K');
    a.handle(Event::Worker(WorkerEvent::Stopped { mode: StopMode::Cold }));
    assert_eq!(a.worker.state, WorkerState::Killed);
    assert_eq!(a.tasks.iter().filter(|t| t.lost).count(), 2);
    let e = a.progress.experiments.iter().find(|e| e.kind == ExperimentKind::EarlyAckLoss).expect("recorded");
    assert!(e.summary.contains("2 of 2 in flight were lost"), "{}", e.summary);
    assert!(a.status.as_deref().unwrap().contains("LOST"));
    a.focus = mqlab::tui::state::Focus::Lab;
    assert!(screen(&mut a, 140, 40).contains("LOST"));
    // The filter finds them.
    key(&mut a, '/');
    for c in "lost".chars() {
        key(&mut a, c);
    }
    code(&mut a, KeyCode::Enter);
    assert_eq!(a.visible_tasks().len(), 2);
}

#[test]
fn a_late_ack_kill_is_a_recovery_that_lesson_7_counts() {
    let mut a = app(Track::Local);
    key(&mut a, 'w');
    a.handle(Event::Worker(WorkerEvent::Ready { prefetch: 16 }));
    a.handle(Event::Depth { ready: 0, consumers: 1, at: t(0) });
    a.handle(Event::Submitted((0..20).map(|i| row(&format!("b{i}"), "tasks.hello", t(10))).collect()));
    a.handle(Event::Depth { ready: 20, consumers: 1, at: t(500) });
    for i in 0..4 {
        let id = format!("b{i}");
        a.handle(Event::Worker(WorkerEvent::TaskReceived {
            id: id.clone(),
            name: "tasks.hello".into(),
            args: "()".into(),
            kwargs: "{}".into(),
            redelivered: false,
            at: t(600),
        }));
        a.handle(Event::Worker(WorkerEvent::TaskStarted { id, at: t(610) }));
    }
    key(&mut a, 'K');
    a.handle(Event::Worker(WorkerEvent::Stopped { mode: StopMode::Cold }));
    assert_eq!(a.tasks.iter().filter(|t| t.lost).count(), 0, "late acks lose nothing");
    a.handle(Event::Depth { ready: 20, consumers: 0, at: t(1000) });
    a.handle(Event::Depth { ready: 20, consumers: 0, at: t(1500) });
    key(&mut a, 'w');
    a.handle(Event::Worker(WorkerEvent::Ready { prefetch: 16 }));
    for i in 0..20 {
        a.handle(Event::Worker(WorkerEvent::TaskSucceeded {
            id: format!("b{i}"),
            result: "'Hello'".into(),
            runtime: 0.1,
            at: t(2000 + i),
        }));
    }
    assert!(a.progress.experiment_seen("burst"));
    assert!(a.progress.experiment_seen("recovery"));
    let rec = a.progress.experiments.iter().find(|e| e.kind == ExperimentKind::Recovery).unwrap();
    assert!(rec.summary.starts_with("The worker was killed with 4 message(s) unacknowledged"), "{}", rec.summary);
    // Its curve is kept for the export's chart: the depth readings around the outage.
    assert!(rec.series.len() >= 2 && rec.figures.contains_key("down_at"), "{rec:?}");
    assert!(rec.series.iter().any(|p| p[1] == 20.0));
}

#[test]
fn single_sends_are_recorded_together() {
    let mut a = app(Track::Local);
    a.handle(Event::Submitted(vec![row("s1", "tasks.add", t(0))]));
    a.handle(Event::Submitted(vec![row("s2", "tasks.divide", t(100))]));
    a.handle(Event::Worker(WorkerEvent::TaskSucceeded { id: "s1".into(), result: "100".into(), runtime: 0.0, at: t(200) }));
    a.handle(Event::Worker(WorkerEvent::TaskFailed {
        id: "s2".into(),
        exception: "ZeroDivisionError('division by zero')".into(),
        traceback: None,
        runtime: 0.0,
        at: t(300),
    }));
    // Recorded once they all finished and a few seconds passed (the next sends join them until then).
    let cmds = a.record_sends(t(6000), false);
    assert_eq!(cmds, [Command::SaveProgress]);
    let e = a.progress.experiments.last().unwrap();
    assert_eq!(e.kind, ExperimentKind::TasksSubmitted);
    assert!(e.summary.contains("1 × tasks.add, 1 × tasks.divide") && e.summary.contains("1 SUCCESS, 1 FAILURE"), "{}", e.summary);
    assert!(a.record_sends(t(9000), true).is_empty(), "recorded once");
}

#[test]
#[ignore = "prints the README's key table"]
fn print_key_table() {
    print!("{}", keymap::markdown_table());
}

#[test]
fn the_app_saves_changes_not_snapshots_and_sees_what_others_wrote() {
    use mqlab::lessons::progress::{Change, Store};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let mut a = app(Track::Local);
    key(&mut a, '3');
    key(&mut a, 'x'); // ticks the first item by hand
    let (seq, batch) = a.take_pending().expect("a change to save");
    // Meanwhile the command line wrote a note.
    store.apply(&a.course, &[Change::Note { step: 4, text: "from the CLI".into() }]).unwrap();
    // The app's change is applied to the file as it is now, and the app sees both.
    let saved = store.apply(&a.course, &batch).unwrap();
    code(&mut a, KeyCode::Down);
    key(&mut a, 'x'); // a second tick, not saved yet
    a.handle(Event::ProgressSynced { seq, progress: Box::new(saved) });
    assert_eq!(a.progress.notes.get(&4).map(String::as_str), Some("from the CLI"));
    assert_eq!(a.progress.checklist.len(), 2, "the unsaved tick is still shown");
    let (_, rest) = a.take_pending().unwrap();
    let on_disk = store.apply(&a.course, &rest).unwrap();
    assert_eq!((on_disk.checklist.len(), on_disk.notes.len()), (2, 1));
}
