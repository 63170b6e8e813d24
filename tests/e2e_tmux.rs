//! End to end: the real binary in a real terminal (tmux) against the real RabbitMQ and Redis.
//! Open, move through lessons, start the worker, submit a task and see SUCCESS, kill the worker,
//! submit a burst, restart, see the burst complete, export, quit — and the terminal is clean.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

struct Tmux {
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux").arg("-L").arg(&self.socket).args(args).output().expect("tmux is needed (.ci/run installs it)");
        String::from_utf8_lossy(&out.stdout).to_string()
    }
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "e2e"];
        args.extend_from_slice(keys);
        self.run(&args);
    }
    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "e2e"])
    }
    fn wait_for(&self, what: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.screen();
            if s.contains(what) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("{what:?} did not appear within {secs}s; screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}

fn wait_file(path: &Path, needle: &str, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(Instant::now() < deadline, "{needle:?} not in {} within {secs}s:\n{text}", path.display());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_learner_session_in_a_real_terminal() {
    let q = common::queue("e2e");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, format!("queue = \"{q}\"\nhello_seconds = 0.3\ntrack = \"local\"\n")).unwrap();
    let tmux = Tmux { socket: format!("mqlab-{}", &q[q.len() - 8..]) };
    let env = [
        format!("MQLAB_BROKER_URL={}", common::broker()),
        format!("MQLAB_RESULT_BACKEND={}", common::redis()),
        format!("MQLAB_MANAGEMENT_URL={}", common::management()),
        format!("MQLAB_DATA_DIR={}", data.display()),
        format!("MQLAB_CONFIG={}", config.display()),
        "PS1=$ ".to_string(),
        "TERM=xterm-256color".to_string(),
    ];
    let mut args = vec!["new-session", "-d", "-s", "e2e", "-x", "140", "-y", "40", "-c"];
    let cwd = dir.path().to_string_lossy().to_string();
    args.push(&cwd);
    args.extend(["env", "-u", "NO_COLOR"]);
    let env_refs: Vec<&str> = env.iter().map(String::as_str).collect();
    args.extend(env_refs);
    args.extend(["bash", "--norc", "--noprofile"]);
    tmux.run(&args);
    tmux.wait_for("$", 10);
    tmux.keys(&[common::bin(), "Enter"]);
    tmux.wait_for("step 1/11", 10);
    tmux.wait_for("Worker pool", 5);

    // Move through the lessons.
    tmux.keys(&["]", "]"]);
    tmux.wait_for("step 3/11", 5);
    tmux.wait_for("Open the RabbitMQ management UI", 5);
    tmux.keys(&["["]);
    tmux.wait_for("step 2/11", 5);

    // Start the worker and run one task.
    tmux.keys(&["w"]);
    tmux.wait_for("RUNNING", 15);
    tmux.keys(&["A"]);
    let s = tmux.wait_for("SUCCESS", 15);
    assert!(s.contains("(42, 58)") && s.contains("100"), "{s}");

    // Kill it, queue a burst, watch the depth, restart, and see every task finish.
    tmux.keys(&["k"]);
    tmux.wait_for("KILLED", 10);
    tmux.keys(&["b"]);
    tmux.wait_for("Tasks (21)", 10);
    tmux.wait_for("ready 20", 10);
    tmux.keys(&["w"]);
    let progress = data.join("progress.json");
    let text = wait_file(&progress, "\"recovery\"", 30);
    assert!(text.contains("20 reached SUCCESS") && text.contains("0 lost"), "{text}");
    let s = tmux.screen();
    assert!(!s.contains("PENDING"), "every task finished:\n{s}");

    // Export, then quit.
    tmux.keys(&["E"]);
    tmux.wait_for("LEARNINGS.md written to", 10);
    let md = std::fs::read_to_string(dir.path().join("LEARNINGS.md")).unwrap();
    assert!(md.contains("[recovery] Worker was down with 20 task(s) waiting") && md.contains("[concurrency] Burst of 20"), "{md}");
    assert!(!md.contains("guest:guest"));
    tmux.keys(&["q"]);
    tmux.wait_for("$", 10);
    std::thread::sleep(Duration::from_millis(500));
    let s = tmux.screen();
    assert!(!s.contains("Worker pool") && !s.contains("Lessons"), "the UI is gone:\n{s}");
    assert_eq!(tmux.run(&["display-message", "-p", "-t", "e2e", "#{alternate_on}"]).trim(), "0", "left the alternate screen");
    assert_eq!(tmux.run(&["display-message", "-p", "-t", "e2e", "#{cursor_flag}"]).trim(), "1", "cursor visible");
    // The terminal is usable: a command runs and prints normally.
    tmux.keys(&["echo done-$((40+2))", "Enter"]);
    tmux.wait_for("done-42", 5);
    let log = std::fs::read_to_string(data.join("mqlab.log")).unwrap();
    assert!(log.contains("first frame drawn"), "{log}");
    common::cleanup(&q).await;
}
