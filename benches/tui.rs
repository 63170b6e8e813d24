//! The terminal UI's start-up and idle cost, measured on the real binary in tmux:
//! time to first frame (from process start, as the binary logs it; median of 5 starts) and CPU
//! used over 10 s idle with the lab open (the pollers and the 4 Hz tick running); and the cost
//! of one frame (events handled, then drawn) at 200×60 with 10,000 tasks in the table while a
//! burst flows, through the app's own update and drawing code.
//!
//!     cargo bench --bench tui
//!
//! Needs tmux, RabbitMQ and Redis (for the lab's live readings).

use std::process::Command;
use std::time::{Duration, Instant};

fn tmux(socket: &str, args: &[&str]) -> String {
    let out = Command::new("tmux").arg("-L").arg(socket).args(args).output().expect("tmux");
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn cpu_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("process alive");
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of /proc/pid/stat (11 and 12 after the name).
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn start(socket: &str, data: &std::path::Path, bin: &std::path::Path) -> String {
    tmux(socket, &["kill-server"]);
    let data_env = format!("MQLAB_DATA_DIR={}", data.display());
    tmux(
        socket,
        &[
            "new-session",
            "-d",
            "-s",
            "b",
            "-x",
            "140",
            "-y",
            "40",
            "env",
            &data_env,
            "MQLAB_CONFIG=/nonexistent",
            "MQLAB_BROKER_URL=amqp://guest:guest@127.0.0.1:5672//",
            "MQLAB_RESULT_BACKEND=redis://127.0.0.1:6379/0",
            "MQLAB_MANAGEMENT_URL=http://127.0.0.1:15672",
            "TERM=xterm-256color",
            bin.to_str().unwrap(),
            "--track",
            "local",
        ],
    );
    tmux(socket, &["display-message", "-p", "-t", "b", "#{pane_pid}"]).trim().to_string()
}

/// Frames at 200×60 with 10,000 tasks in the table and a burst flowing: each frame handles a
/// few task events and a depth reading, then draws. Median and p99 of 300 frames.
fn busy_frames() {
    use chrono::Utc;
    use mqlab::celery::worker::WorkerEvent;
    use mqlab::tui::update::Event;
    let env = |k: &str| match k {
        "MQLAB_CONFIG" => Some("/nonexistent".to_string()),
        "MQLAB_DATA_DIR" => Some("/nonexistent-data".to_string()),
        _ => None,
    };
    let cfg = mqlab::config::Config::load_with(&Default::default(), &env).unwrap();
    let mut app = mqlab::tui::App::new(cfg, mqlab::lessons::Course::embedded().unwrap(), mqlab::lessons::progress::Progress::new());
    app.focus = mqlab::tui::state::Focus::Lab;
    let now = Utc::now();
    let mut ids = vec![];
    for chunk in 0..100 {
        let rows: Vec<_> = (0..100)
            .map(|i| {
                let m =
                    mqlab::celery::TaskMessage::new("tasks.add", vec![serde_json::json!(chunk), serde_json::json!(i)], Default::default());
                ids.push(m.id.clone());
                mqlab::tui::update::row_for(&m, "celery", now)
            })
            .collect();
        app.handle(Event::Submitted(rows));
    }
    assert_eq!(app.tasks.len(), 10_000);
    let mut term = ratatui::Terminal::new(ratatui::backend::TestBackend::new(200, 60)).unwrap();
    let mut times = vec![];
    for f in 0..300usize {
        let t0 = Instant::now();
        for k in 0..10 {
            let id = ids[(f * 10 + k) % ids.len()].clone();
            app.handle(Event::Worker(WorkerEvent::TaskStarted { id: id.clone(), at: Utc::now() }));
            app.handle(Event::Worker(WorkerEvent::TaskSucceeded { id, result: "1".into(), runtime: 0.001, at: Utc::now() }));
        }
        app.handle(Event::Depth { ready: (3000 - f) as u64, consumers: 1, at: Utc::now() });
        term.draw(|fr| mqlab::tui::view::draw(fr, &mut app)).unwrap();
        times.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "a frame at 200×60 with 10,000 tasks and a burst flowing: median {:.2} ms, p99 {:.2} ms, max {:.2} ms (300 frames; target < 16 ms)",
        times[150], times[297], times[299]
    );
}

fn main() {
    busy_frames();
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("mqlab");
    assert!(bin.exists(), "{} missing", bin.display());
    let socket = format!("mqlab-bench-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let mut firsts = vec![];
    for i in 0..5 {
        let data = dir.path().join(format!("run{i}"));
        start(&socket, &data, &bin);
        let log = data.join("mqlab.log");
        let deadline = Instant::now() + Duration::from_secs(10);
        let ms = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(line) = text.lines().find(|l| l.contains("first frame drawn")) {
                let num = line.split("first frame drawn ").nth(1).unwrap().split(' ').next().unwrap();
                break num.parse::<f64>().unwrap();
            }
            assert!(Instant::now() < deadline, "no first frame logged");
            std::thread::sleep(Duration::from_millis(20));
        };
        firsts.push(ms);
        tmux(&socket, &["send-keys", "-t", "b", "q"]);
        std::thread::sleep(Duration::from_millis(300));
    }
    firsts.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("time to first frame: median {:.1} ms (min {:.1}, max {:.1}; 5 starts, target < 100 ms)", firsts[2], firsts[0], firsts[4]);

    let data = dir.path().join("idle");
    let pid = start(&socket, &data, &bin);
    std::thread::sleep(Duration::from_secs(3));
    tmux(&socket, &["send-keys", "-t", "b", "2"]);
    std::thread::sleep(Duration::from_secs(1));
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let t0 = cpu_ticks(&pid);
    let w0 = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    let used = (cpu_ticks(&pid) - t0) as f64 / hz;
    let wall = w0.elapsed().as_secs_f64();
    println!("idle CPU with the lab open: {:.2}% of one core over {wall:.1} s ({used:.2} s CPU; target < 2%)", used / wall * 100.0);
    tmux(&socket, &["send-keys", "-t", "b", "q"]);
    std::thread::sleep(Duration::from_millis(300));
    tmux(&socket, &["kill-server"]);
}
