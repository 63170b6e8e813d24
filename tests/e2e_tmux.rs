//! End to end: the real binary in a real terminal (tmux), on the local track with a sandbox of
//! its own (the learner's session) or the test services. Open, walk lessons 1→11 at 120×40 and
//! back at 80×24, start the worker, submit a task and see SUCCESS, kill the worker, submit a
//! burst, restart, see the burst complete, export, quit — and the terminal is clean.

mod common;

use common::Need;

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
    /// Waits for a line of the screen that `ok` accepts.
    fn wait_line(&self, ok: impl Fn(&str) -> bool, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.screen();
            if let Some(l) = s.lines().find(|l| ok(l)) {
                return l.to_string();
            }
            if Instant::now() > deadline {
                panic!("no such line within {secs}s; screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until `what` is gone from the screen (a popup closed).
    fn wait_gone(&self, what: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while self.screen().contains(what) {
            assert!(Instant::now() < deadline, "{what:?} still on the screen after {secs}s:\n{}", self.screen());
            std::thread::sleep(Duration::from_millis(100));
        }
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

/// The environment of a session against the test services (broker in `vhost`).
fn services_env(vhost: &common::Vhost, data: &Path, config: &Path) -> Vec<String> {
    vec![
        format!("MQLAB_BROKER_URL={}", vhost.broker()),
        format!("MQLAB_RESULT_BACKEND={}", common::redis()),
        format!("MQLAB_MANAGEMENT_URL={}", common::management()),
        format!("MQLAB_DATA_DIR={}", data.display()),
        format!("MQLAB_PROJECT_DIR={}", data.join("project").display()),
        format!("MQLAB_CONFIG={}", config.display()),
        "PS1=$ ".to_string(),
        "TERM=xterm-256color".to_string(),
    ]
}

fn start_session(tmux: &Tmux, cwd: &Path, env: &[String], w: u16, h: u16) {
    let (w, h) = (w.to_string(), h.to_string());
    let mut args = vec!["new-session", "-d", "-s", "e2e", "-x", &w, "-y", &h, "-c"];
    let cwd = cwd.to_string_lossy().to_string();
    args.push(&cwd);
    args.extend(["env", "-u", "NO_COLOR"]);
    args.extend(env.iter().map(String::as_str));
    args.extend(["bash", "--norc", "--noprofile"]);
    tmux.run(&args);
    tmux.wait_for("$", 10);
}

/// What the live panel beside each lesson is called on the local track.
const LIVE_PANELS: [&str; 11] = [
    "RabbitMQ and Redis on this machine",
    "RabbitMQ and Redis on this machine",
    "Management API",
    "RabbitMQ and Redis on this machine",
    "Worker pool",
    "Worker pool",
    "Worker pool",
    "Worker pool",
    "Worker pool",
    "Checklist",
    "Checklist",
];

#[tokio::test(flavor = "multi_thread")]
async fn a_learner_session_in_a_real_terminal() {
    if !common::have(&[Need::Tmux, Need::Rabbitmq, Need::Management, Need::Redis]) {
        return;
    }
    let q = common::queue("e2e");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, format!("queue = \"{q}\"\nhello_seconds = 2\ntrack = \"local\"\n")).unwrap();
    let tmux = Tmux { socket: format!("mqlab-{}", &q[q.len() - 8..]) };
    // The local track as a learner without services runs it: a sandbox of its own (stopped at the
    // end), found by the app through the data directory.
    let sandbox = |verb: &str| {
        let out = std::process::Command::new(common::bin())
            .args(["sandbox", verb])
            .env("MQLAB_DATA_DIR", &data)
            .env("MQLAB_CONFIG", &config)
            .output()
            .unwrap();
        assert!(out.status.success(), "sandbox {verb}: {}", String::from_utf8_lossy(&out.stderr));
    };
    sandbox("up");
    struct Down<F: Fn(&str)>(F);
    impl<F: Fn(&str)> Drop for Down<F> {
        fn drop(&mut self) {
            (self.0)("down");
        }
    }
    let _down = Down(sandbox);
    let env = [
        format!("MQLAB_DATA_DIR={}", data.display()),
        format!("MQLAB_PROJECT_DIR={}", data.join("project").display()),
        format!("MQLAB_CONFIG={}", config.display()),
        "PS1=$ ".to_string(),
        "TERM=xterm-256color".to_string(),
    ];
    start_session(&tmux, dir.path(), &env, 120, 40);
    tmux.keys(&[
        "env -u MQLAB_BROKER_URL -u MQLAB_RESULT_BACKEND -u MQLAB_MANAGEMENT_URL -u CELERY_BROKER_URL -u CELERY_RESULT_BACKEND ",
        common::bin(),
        "Enter",
    ]);
    tmux.wait_for("step 1/11", 10);
    // The header's badges say the sandbox answers.
    tmux.wait_for("● amqp", 15);

    // Walk the lessons at 120×40: each has its live panel beside it.
    for (i, panel) in LIVE_PANELS.iter().enumerate() {
        let s = tmux.wait_for(&format!("step {}/11", i + 1), 5);
        let s = if s.contains(panel) { s } else { tmux.wait_for(panel, 5) };
        assert!(!s.contains("1 Lesson"), "no tabs at 120×40:\n{s}");
        tmux.keys(&["]"]);
    }
    // And at 80×24: tabs, the lesson first.
    tmux.run(&["resize-window", "-t", "e2e", "-x", "80", "-y", "24"]);
    tmux.wait_for("1 Lesson 11", 5);
    for step in (1..=10).rev() {
        tmux.keys(&["["]);
        tmux.wait_for(&format!("1 Lesson {step} "), 5);
    }
    tmux.run(&["resize-window", "-t", "e2e", "-x", "120", "-y", "40"]);
    // Lesson 6: start the worker and run one task.
    for _ in 0..5 {
        tmux.keys(&["]"]);
    }
    tmux.wait_for("step 6/11", 5);
    tmux.keys(&["w"]);
    tmux.wait_for("RUNNING", 15);
    tmux.keys(&["A"]);
    // The compact lab beside the lesson shows the task's row with its state and result.
    tmux.wait_line(|l| l.contains("add") && l.contains("SUCCESS") && l.contains("100"), 15);

    // Lesson 7 in the full lab: a burst, a kill while tasks run (late acks), a restart, and
    // every task finishes; the recovery is recorded with the messages that were in flight.
    tmux.keys(&["]"]);
    tmux.wait_for("step 7/11", 5);
    tmux.keys(&["2"]);
    tmux.wait_for("Workers on the broker", 5);
    tmux.keys(&["b"]);
    tmux.wait_for("STARTED", 10);
    tmux.keys(&["K"]);
    tmux.wait_for("KILLED", 10);
    tmux.wait_for("back in the queue", 5);
    tmux.keys(&["w"]);
    let progress = data.join("progress.json");
    let text = wait_file(&progress, "\"recovery\"", 40);
    assert!(text.contains("The worker was killed with") && text.contains("0 lost"), "{text}");
    let s = tmux.screen();
    assert!(!s.contains("PENDING"), "every task finished:\n{s}");

    // Export, then quit.
    tmux.keys(&["E"]);
    tmux.wait_for("LEARNINGS.md written to", 10);
    let md = std::fs::read_to_string(data.join("project/LEARNINGS.md")).unwrap();
    assert!(md.contains("[recovery] The worker was killed with"), "{md}");
    // The burst the kill cut short rose and drained, but it is no throughput measurement.
    let burst = md.lines().find(|l| l.contains("Burst of 20")).expect("the burst is recorded");
    assert!(burst.contains("no throughput") && !burst.contains("tasks/s"), "{burst}");
    assert!(md.contains("Track local"), "{md}");
    assert!(!md.contains("guest:guest"));
    tmux.keys(&["q"]);
    tmux.wait_for("$", 10);
    // The shell prints its prompt once the UI has left the alternate screen.
    let deadline = Instant::now() + Duration::from_secs(5);
    while tmux.run(&["display-message", "-p", "-t", "e2e", "#{alternate_on}"]).trim() != "0" {
        assert!(Instant::now() < deadline, "still on the alternate screen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = tmux.screen();
    assert!(!s.contains("Worker pool") && !s.contains("Checks · r runs"), "the UI is gone:\n{s}");
    assert_eq!(tmux.run(&["display-message", "-p", "-t", "e2e", "#{cursor_flag}"]).trim(), "1", "cursor visible");
    // The terminal is usable: a command runs and prints normally.
    tmux.keys(&["echo done-$((40+2))", "Enter"]);
    tmux.wait_for("done-42", 5);
    let log = std::fs::read_to_string(data.join("mqlab.log")).unwrap();
    assert!(log.contains("first frame drawn"), "{log}");
}

/// A plain `mqlab` with nothing configured: the start screen, `s` for a sandbox, then a worker
/// and a task. Reports the keys pressed and the seconds to the first SUCCESS.
#[tokio::test(flavor = "multi_thread")]
async fn from_nothing_to_the_first_success_with_a_sandbox() {
    if !common::have(&[Need::Tmux, Need::Programs]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let tmux = Tmux { socket: format!("mqlab-first-{}", std::process::id()) };
    let env = [
        format!("MQLAB_DATA_DIR={}", data.display()),
        format!("MQLAB_PROJECT_DIR={}", data.join("project").display()),
        format!("MQLAB_CONFIG={}", dir.path().join("none.toml").display()),
        format!("KUBECONFIG={}", dir.path().join("no-kubeconfig").display()),
        "PS1=$ ".to_string(),
        "TERM=xterm-256color".to_string(),
    ];
    start_session(&tmux, dir.path(), &env, 120, 40);
    let started = Instant::now();
    let mut keys = 1;
    tmux.keys(&["env -u MQLAB_BROKER_URL -u MQLAB_RESULT_BACKEND -u MQLAB_MANAGEMENT_URL -u CELERY_BROKER_URL -u CELERY_RESULT_BACKEND -u MQLAB_TRACK ", common::bin(), "Enter"]);
    tmux.wait_for("Welcome to mqlab", 10);
    tmux.wait_for("a private sandbox can start", 5);
    tmux.keys(&["s"]);
    keys += 1;
    // The header's badges turn to ● once the sandbox answers and the app uses it.
    tmux.wait_for("● amqp", 90);
    // The lesson's commands now name the sandbox's ports.
    tmux.keys(&["2", "w"]);
    keys += 2;
    tmux.wait_for("RUNNING", 30);
    tmux.keys(&["h"]);
    keys += 1;
    tmux.wait_for("SUCCESS", 30);
    let secs = started.elapsed().as_secs_f64();
    println!("first SUCCESS from a plain mqlab: {keys} keys (Enter, s, 2, w, h), {secs:.1} s");
    let progress = std::fs::read_to_string(data.join("progress.json")).unwrap_or_default();
    assert!(progress.contains("\"track\": \"local\""), "the choice is saved: {progress}");
    tmux.keys(&["q"]);
    tmux.wait_for("$", 10);
    let out = std::process::Command::new(common::bin()).args(["sandbox", "down"]).env("MQLAB_DATA_DIR", &data).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn open_files(pid: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// A thousand sends from the app leave no connection or task behind: the open files of the
/// process are counted before and after, and the UI reports its background tasks at exit.
#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_sends_leave_nothing_behind() {
    if !common::have(&[Need::Tmux, Need::Rabbitmq, Need::Management, Need::Redis]) {
        return;
    }
    let q = common::queue("e2e1000");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, format!("queue = \"{q}\"\ntrack = \"local\"\n")).unwrap();
    let tmux = Tmux { socket: format!("mqlab-k-{}", &q[q.len() - 8..]) };
    let vhost = common::Vhost::new("e2e1000");
    let env = services_env(&vhost, &data, &config);
    start_session(&tmux, dir.path(), &env, 140, 40);
    tmux.keys(&[common::bin(), "Enter"]);
    tmux.wait_for("step 1/11", 10);
    let shell = tmux.run(&["display-message", "-p", "-t", "e2e", "#{pane_pid}"]).trim().to_string();
    let out = Command::new("pgrep").args(["-P", &shell]).output().unwrap();
    let pid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(!pid.is_empty(), "the mqlab process");
    tmux.keys(&["2", "w"]);
    tmux.wait_for("RUNNING", 15);
    tmux.keys(&["A"]);
    tmux.wait_line(|l| l.contains("(42, 58)") && l.contains("SUCCESS"), 15);
    let before = open_files(&pid);
    for _ in 0..10 {
        tmux.keys(&["B"]);
    }
    // All thousand finished: the last burst's record says so, and nothing waits in the queue.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let p = std::fs::read_to_string(data.join("progress.json")).unwrap_or_default();
        if p.matches("Burst of 100").count() == 10 {
            break;
        }
        assert!(Instant::now() < deadline, "the ten bursts did not all finish:\n{}", tmux.screen());
        std::thread::sleep(Duration::from_millis(200));
    }
    let after = open_files(&pid);
    println!("open files of the app: {before} before 1,000 sends, {after} after");
    assert!(after <= before + 2, "no connection per send: {before} → {after}");
    tmux.keys(&["q"]);
    let log = wait_file(&data.join("mqlab.log"), "at exit:", 10);
    let line = log.lines().find(|l| l.contains("at exit:")).unwrap();
    println!("{line}");
    common::cleanup(&q).await;
}

/// The cluster track with a fake cluster: F starts the forwards, the Cluster panel shows them
/// up with their pods, the lesson's commands follow a port that moved (this machine's own
/// RabbitMQ holds 5672 and 15672), and F stops them.
#[test]
fn forwards_from_the_app() {
    if !common::have(&[Need::Tmux]) {
        return;
    }
    use common::fake_kube::{FakeKube, Scenario};
    let fake = FakeKube::start(Scenario::Healthy);
    let amqp_real = common::broker_addr().rsplit(':').next().unwrap().parse::<u16>().unwrap();
    let mgmt_real = common::management().rsplit(':').next().unwrap().parse::<u16>().unwrap();
    fake.live.upstream.lock().unwrap().extend([(5672, amqp_real), (15672, mgmt_real)]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "broker_url = \"amqp://guest:guest@localhost:5672//\"\nresult_backend = \"redis://localhost:6379/9\"\nmanagement_url = \"http://guest:guest@localhost:15672\"\ntrack = \"k3s\"\n",
    )
    .unwrap();
    let tmux = Tmux { socket: format!("mqlab-fw-{}", std::process::id()) };
    let env = [
        format!("MQLAB_DATA_DIR={}", data.display()),
        format!("MQLAB_PROJECT_DIR={}", data.join("project").display()),
        format!("MQLAB_CONFIG={}", config.display()),
        format!("KUBECONFIG={}", fake.kubeconfig("rancher-desktop").display()),
        "PS1=$ ".to_string(),
        "TERM=xterm-256color".to_string(),
    ];
    start_session(&tmux, dir.path(), &env, 160, 45);
    tmux.keys(&[
        "env -u MQLAB_BROKER_URL -u MQLAB_RESULT_BACKEND -u MQLAB_MANAGEMENT_URL -u CELERY_BROKER_URL -u CELERY_RESULT_BACKEND ",
        common::bin(),
        "Enter",
    ]);
    tmux.wait_for("Port-forwards: off", 15);
    tmux.keys(&["F"]);
    let line = tmux.wait_line(|l| l.contains("AMQP") && l.contains("→ rabbitmq-0"), 15);
    let amqp: u16 = line.split("127.0.0.1:").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    assert_ne!(amqp, 5672, "{line}");
    tmux.wait_line(|l| l.contains("Redis") && l.contains("→ redis-master-0"), 15);
    let mgmt_line = tmux.wait_line(|l| l.contains("management") && l.contains("→ rabbitmq-0"), 15);
    let mgmt: u16 = mgmt_line.split("127.0.0.1:").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    // Lesson 3's command names the forward's port.
    tmux.keys(&["]", "]"]);
    tmux.wait_for(&format!("kubectl port-forward svc/rabbitmq -n messaging {mgmt}:15672"), 10);
    tmux.keys(&["F", "[", "["]);
    tmux.wait_for("Port-forwards: off", 10);
    let deadline = Instant::now() + Duration::from_secs(10);
    let _ = amqp;
    while data.join("forwards.json").exists() {
        assert!(Instant::now() < deadline, "the forwards did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    tmux.keys(&["q"]);
    tmux.wait_for("$", 10);
    assert!(!data.join("forwards.json").exists());
}

/// A lesson command run from the app against fake kubectl and helm on PATH: its output and exit
/// code in the pane, then a long one (the Helm block ends watching pods) cancelled with c.
#[test]
fn a_lesson_command_runs_in_the_app_and_a_long_one_is_cancelled() {
    if !common::have(&[Need::Tmux]) {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for name in ["kubectl", "helm"] {
        let script = format!("#!/bin/sh\necho \"fake {name}: $*\"\ncase \"$*\" in\n  *\" -w\"*) while :; do sleep 0.2; done ;;\nesac\n");
        std::fs::write(bin.join(name), script).unwrap();
        std::fs::set_permissions(bin.join(name), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let data = dir.path().join("data");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "track = \"k3s\"\n").unwrap();
    let tmux = Tmux { socket: format!("mqlab-run-{}", std::process::id()) };
    let env = [
        format!("MQLAB_DATA_DIR={}", data.display()),
        format!("MQLAB_PROJECT_DIR={}", data.join("project").display()),
        format!("MQLAB_CONFIG={}", config.display()),
        format!("KUBECONFIG={}", dir.path().join("no-kubeconfig").display()),
        format!("PATH={}:{}", bin.display(), std::env::var("PATH").unwrap_or_default()),
        "PS1=$ ".to_string(),
        "TERM=xterm-256color".to_string(),
    ];
    start_session(&tmux, dir.path(), &env, 120, 40);
    tmux.keys(&[common::bin(), "Enter"]);
    tmux.wait_for("Step 1", 15);
    tmux.keys(&["!"]);
    tmux.wait_for("Enter runs it", 5);
    // The first command is the preflight; the second is the cluster's.
    tmux.keys(&["j", "Enter"]);
    tmux.wait_for("fake kubectl: get nodes", 10);
    tmux.wait_for("exit 0 ·", 10);
    // Esc then a key at once would read as Alt-key: close with q.
    tmux.keys(&["q"]);
    tmux.keys(&["]"]);
    tmux.wait_for("Step 2", 5);
    tmux.keys(&["!"]);
    tmux.wait_for("Enter runs it", 5);
    tmux.keys(&["j", "Enter"]);
    tmux.wait_for("fake helm: install rabbitmq oci://registry-1.docker.io/bitnamicharts/rabbitmq", 10);
    tmux.wait_for("fake kubectl: get pods -n messaging -w", 10);
    tmux.wait_for("c cancels", 5);
    tmux.keys(&["c"]);
    tmux.wait_for("cancelled after", 10);
    tmux.keys(&["q"]);
    tmux.keys(&["q"]);
    tmux.wait_for("$", 10);
}

/// Step 5 to 7 the curriculum's way, in real terminals: `I` writes the project, the learner's own
/// Python worker runs in a terminal of its own (the repository's venv stands in for
/// `pip install -r requirements.txt`), `python submit_task.py` sends from another, then a burst
/// from `mqlab submit --count`, Ctrl-C twice on the worker while it is busy, more tasks while it is
/// down, and the worker started again. The app, open all along, records the burst and the
/// recovery from what the broker showed, and LEARNINGS.md says so.
#[test]
fn the_python_path_through_step_7_is_recorded_from_the_broker() {
    let venv = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv");
    if !venv.join("bin/celery").exists() {
        println!("skipped: no Python venv with Celery at .venv (.ci/run makes it)");
        return;
    }
    let vhost = common::Vhost::new("e2e-python");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let project = data.join("project");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "track = \"local\"\n").unwrap();
    let tmux = Tmux { socket: format!("mqlab-py-{}", &vhost.name[vhost.name.len() - 8..]) };
    let env = services_env(&vhost, &data, &config);
    start_session(&tmux, dir.path(), &env, 120, 40);
    // Two more terminals, as the curriculum has them: the worker's and the client's.
    let term = |name: &str| {
        let mut args =
            vec!["new-session".to_string(), "-d".into(), "-s".into(), name.into(), "-x".into(), "120".into(), "-y".into(), "40".into()];
        args.extend(["-c".into(), dir.path().to_string_lossy().to_string(), "env".into()]);
        args.extend(env.iter().cloned());
        args.extend([format!(
            "PATH={}:{}",
            std::path::Path::new(common::bin()).parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        )]);
        args.extend(["bash".into(), "--norc".into(), "--noprofile".into()]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        tmux.run(&refs);
    };
    term("worker");
    term("client");
    let send = |session: &str, line: &str| {
        tmux.run(&["send-keys", "-t", session, line, "Enter"]);
    };
    let pane = |session: &str| tmux.run(&["capture-pane", "-p", "-S", "-200", "-t", session]);
    let wait_pane = |session: &str, what: &str, secs: u64| {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = pane(session);
            if s.contains(what) {
                return s;
            }
            assert!(Instant::now() < deadline, "{what:?} not in the {session} terminal within {secs}s:\n{s}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    tmux.keys(&[common::bin(), "Enter"]);
    tmux.wait_for("step 1/11", 10);
    for _ in 0..4 {
        tmux.keys(&["]"]);
    }
    tmux.wait_for("step 5/11", 5);
    tmux.keys(&["I"]);
    tmux.wait_for("Python project in", 10);
    assert!(project.join("celery_app.py").exists());
    let start_worker = format!(
        "cd {} && ln -sfn {} venv && source venv/bin/activate && celery -A celery_app worker --loglevel=info -c 2",
        project.display(),
        venv.display()
    );
    send("worker", &start_worker);
    wait_pane("worker", "ready.", 60);
    send("client", &format!("cd {} && source venv/bin/activate && python submit_task.py", project.display()));
    wait_pane("client", "add completed: 100", 30);

    // Step 7: a burst from another program, consumed by the Python worker.
    let progress = data.join("progress.json");
    send("client", "mqlab submit tasks.hello World --count 10");
    wait_file(&progress, "Seen on the broker: the queue rose", 60);
    // Busy again, then Ctrl-C twice (a cold shutdown: what it held goes back), more tasks wait.
    let received = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while pane("worker").matches("] received").count() < n {
            assert!(Instant::now() < deadline, "the worker did not receive {n} tasks:\n{}", pane("worker"));
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let before = pane("worker").matches("] received").count();
    send("client", "mqlab submit tasks.hello World --count 10");
    // It holds some of them (running and prefetched) when it is stopped.
    received(before + 2);
    tmux.run(&["send-keys", "-t", "worker", "C-c"]);
    tmux.run(&["send-keys", "-t", "worker", "C-c"]);
    wait_pane("worker", "$ ", 30);
    send("client", "mqlab submit tasks.add 1 2 --count 5");
    // Started again: the queue drains.
    send("worker", "celery -A celery_app worker --loglevel=info -c 2");
    let text = wait_file(&progress, "Seen on the broker: the queue's worker went away", 90);
    assert!(text.contains("\"observed\": \"broker\""), "{text}");
    // Lesson 7's experiments are seen, and the export tells them as they happened.
    let out = common::mqlab(&data).env("MQLAB_BROKER_URL", vhost.broker()).args(["progress", "--json"]).output().unwrap();
    let p: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let exps = p["experiments"].as_array().unwrap();
    assert!(exps.iter().any(|e| e["kind"] == "recovery" && e["figures"]["observed"] == "broker"), "{p:#}");
    assert!(exps.iter().any(|e| e["kind"] == "concurrency" && e["figures"]["observed"] == "broker"), "{p:#}");
    tmux.keys(&["E"]);
    tmux.wait_for("LEARNINGS.md written to", 10);
    let md = std::fs::read_to_string(project.join("LEARNINGS.md")).unwrap();
    assert!(md.contains("[recovery] Seen on the broker") && md.contains("Seen on the broker: the queue rose"), "{md}");
    tmux.run(&["send-keys", "-t", "worker", "C-c"]);
    tmux.run(&["send-keys", "-t", "worker", "C-c"]);
    tmux.keys(&["q"]);
}

/// A learner's first session on the local track, in a folder of its own: the environment a fresh
/// machine gives (no service variables, no kubeconfig), mqlab launched, the sandbox started from
/// the start screen (`s`). Dropping it stops what the course's solutions left running, then the
/// sandbox.
struct Learner {
    data: std::path::PathBuf,
    project: std::path::PathBuf,
    none: std::path::PathBuf,
}

/// The command line that launches mqlab as on a fresh machine.
fn launch_line() -> String {
    format!(
        "env -u MQLAB_BROKER_URL -u MQLAB_RESULT_BACKEND -u MQLAB_MANAGEMENT_URL -u CELERY_BROKER_URL -u CELERY_RESULT_BACKEND -u MQLAB_TRACK {}",
        common::bin()
    )
}

impl Learner {
    fn start(tmux: &Tmux, dir: &Path, w: u16, h: u16) -> Learner {
        let l = Learner { data: dir.join("data"), project: dir.join("project"), none: dir.join("none.toml") };
        let env = [
            format!("MQLAB_DATA_DIR={}", l.data.display()),
            format!("MQLAB_PROJECT_DIR={}", l.project.display()),
            format!("MQLAB_CONFIG={}", l.none.display()),
            format!("KUBECONFIG={}", dir.join("no-kubeconfig").display()),
            "PIP_DISABLE_PIP_VERSION_CHECK=1".to_string(),
            "PS1=$ ".to_string(),
            "TERM=xterm-256color".to_string(),
        ];
        start_session(tmux, dir, &env, w, h);
        tmux.keys(&[&launch_line(), "Enter"]);
        tmux.wait_for("Welcome to mqlab", 10);
        tmux.keys(&["s"]);
        tmux.wait_for("● amqp", 90);
        l
    }

    /// `mqlab` in the learner's other terminal.
    fn mqlab(&self) -> Command {
        let mut c = Command::new(common::bin());
        c.env("MQLAB_DATA_DIR", &self.data).env("MQLAB_PROJECT_DIR", &self.project).env("MQLAB_CONFIG", &self.none);
        c
    }
}

impl Drop for Learner {
    fn drop(&mut self) {
        let _ = self.mqlab().args(["reset", "--yes"]).output();
        let _ = self.mqlab().args(["sandbox", "down"]).output();
    }
}

/// The course's mechanics as a learner uses them: `D` runs a lesson's solution after listing its
/// commands; a check earned and then made false by an experiment shows both; `U` resets one
/// lesson (after asking); the app reopens on the lesson and screen it was left on.
#[test]
fn solve_earned_and_now_reset_and_resume_in_the_app() {
    if !common::have(&[Need::Tmux, Need::Programs]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tmux = Tmux { socket: format!("mqlab-course-{}", std::process::id()) };
    let learner = Learner::start(&tmux, dir.path(), 140, 45);
    let data = learner.data.clone();

    // D lists lesson 1's solution before anything runs; y runs it, its checks pass.
    tmux.keys(&["D"]);
    let s = tmux.wait_for("Run lesson 1's solution?", 10);
    assert!(s.contains("$ mqlab check --preflight") && s.contains("$ mqlab sandbox up"), "{s}");
    tmux.keys(&["y"]);
    tmux.wait_for("2 of 2 check(s) passed", 90);
    // Escape alone (followed at once by another key it would read as Alt).
    tmux.keys(&["Escape"]);
    tmux.wait_gone("Output ·", 10);

    // Lesson 7 with the lab's worker: its checks pass and are earned; the kill makes the
    // consumer check false now, and the lesson shows both.
    for _ in 0..6 {
        tmux.keys(&["]"]);
    }
    tmux.wait_for("Watch the message flow", 10);
    tmux.keys(&["w"]);
    tmux.wait_for("RUNNING", 30);
    tmux.keys(&["r"]);
    tmux.wait_for("1 consumer(s)", 30);
    tmux.keys(&["K"]);
    tmux.wait_for("killed", 30);
    tmux.keys(&["r"]);
    let s = tmux.wait_for("· now ✗", 30);
    assert!(s.contains("earned "), "{s}");
    // The exact call on a key.
    tmux.keys(&["v"]);
    tmux.wait_for("call: AMQP Queue.Declare", 10);

    // U asks first; n does nothing, y clears lesson 7 only.
    tmux.keys(&["U"]);
    tmux.wait_for("Reset lesson 7?", 10);
    tmux.keys(&["n"]);
    tmux.wait_for("nothing was done", 10);
    tmux.keys(&["U"]);
    tmux.wait_for("Reset lesson 7?", 10);
    tmux.keys(&["y"]);
    tmux.wait_for("Lesson 7 cleared", 30);
    tmux.keys(&["Escape"]);
    tmux.wait_gone("Output ·", 10);
    tmux.keys(&["r"]);
    tmux.wait_line(|l| l.contains("✗ queue celery exists but has no consumer"), 30);
    let p: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(data.join("progress.json")).unwrap()).unwrap();
    assert!(p["earned"].get("7").is_none(), "{}", p["earned"]);
    assert!(p["earned"]["1"].get("amqp.login").is_some(), "lesson 1 keeps what it earned: {}", p["earned"]);

    // Leave on the checklist screen; the app reopens there, on lesson 7.
    tmux.keys(&["3"]);
    tmux.wait_for("x ticks by hand", 10);
    tmux.keys(&["q"]);
    tmux.wait_for("$", 10);
    tmux.keys(&[&launch_line(), "Enter"]);
    let s = tmux.wait_for("x ticks by hand", 20);
    assert!(s.contains("step 7/11"), "{s}");
    tmux.keys(&["q"]);
    tmux.wait_for("$", 10);
}

/// The whole course the Python way, as a learner who lets each lesson's solution run (`D`, then
/// `y`) walks it in the app: the sandbox, the project and its venv, the learner's Python worker,
/// its burst, its kill and restart, the timing at concurrency 16, the failing task, the export,
/// the checks of Step 11. Afterwards every lesson is ✓ (the three checklist items no program can
/// observe ticked by hand, as the learner would), and every experiment LEARNINGS.md reports is
/// one the progress recorded from the broker or from mqlab submit, in the same words.
#[test]
fn the_whole_course_the_python_way_by_each_lessons_solution_in_the_app() {
    if !common::have(&[Need::Tmux, Need::Programs, Need::PackageIndex]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tmux = Tmux { socket: format!("mqlab-walk-{}", std::process::id()) };
    let learner = Learner::start(&tmux, dir.path(), 140, 45);
    let (data, project) = (learner.data.clone(), learner.project.clone());
    for n in 1..=11 {
        tmux.keys(&["D"]);
        tmux.wait_for(&format!("Run lesson {n}'s solution?"), 10);
        tmux.keys(&["y"]);
        // The output popup's last line: "exit 0 · 12.34 s".
        let end = tmux.wait_line(|l| l.contains("┃exit ") || l.contains("┃ended by a signal"), 400);
        assert!(end.contains("┃exit 0 ·"), "lesson {n}'s solution failed:\n{}", tmux.screen());
        tmux.keys(&["Escape"]);
        tmux.wait_gone("Output ·", 10);
        if n < 11 {
            tmux.keys(&["]"]);
            tmux.wait_for(&format!("step {}/11", n + 1), 10);
        }
    }
    // What no program can observe, ticked by hand as the learner does once it is true.
    let o = learner
        .mqlab()
        .args(["progress", "--tick", "management_ui", "--tick", "get", "--tick", "observe", "--tick", "explain"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Any save brings the file back into the app: the checklist screen, then the export.
    tmux.keys(&["3"]);
    tmux.wait_for("Checklist 10/10", 20);
    tmux.keys(&["E"]);
    tmux.wait_for("LEARNINGS.md written", 20);
    let s = tmux.screen();
    let header = s.lines().next().unwrap_or("");
    for n in 1..=11 {
        let mark = if n == 8 || n == 10 { '·' } else { '✓' };
        assert!(header.contains(&format!(" {n}{mark}")), "lesson {n} is not {mark}: {header}");
    }
    tmux.keys(&["q"]);
    tmux.wait_for("$", 10);

    let p: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(data.join("progress.json")).unwrap()).unwrap();
    let md = std::fs::read_to_string(project.join("LEARNINGS.md")).unwrap();
    let exps = p["experiments"].as_array().unwrap();
    let broker_seen: Vec<&serde_json::Value> = exps.iter().filter(|e| e["figures"]["observed"] == "broker").collect();
    assert!(broker_seen.iter().any(|e| e["kind"] == "recovery"), "lesson 7's recovery, seen on the broker: {exps:#?}");
    assert!(broker_seen.iter().any(|e| e["kind"] == "concurrency"), "lesson 7's burst, seen on the broker: {exps:#?}");
    for e in exps.iter().filter(|e| matches!(e["kind"].as_str(), Some("recovery" | "concurrency"))) {
        let summary = e["summary"].as_str().unwrap();
        assert!(md.contains(summary), "LEARNINGS.md does not report {summary:?}:\n{md}");
    }
    assert!(md.contains("at concurrency 16"), "{md}");
    assert!(!md.contains("[ ]"), "every checklist item is ticked in LEARNINGS.md:\n{md}");
}
