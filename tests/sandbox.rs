//! `mqlab sandbox`: private RabbitMQ and Redis started, used, checked and stopped; missing
//! programs give the install commands and start nothing.

mod common;

use common::Need;

use std::process::Stdio;
use std::time::{Duration, Instant};

use mqlab::sandbox::{Part, Sandbox, Stopped};
use serde_json::Value;

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(300)).is_ok()
}

#[test]
fn sandbox_runs_the_local_track_to_a_passing_step_6_and_stops_cleanly() {
    if !common::have(&[Need::Programs, Need::Venv]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let out = common::bare_mqlab(data).args(["sandbox", "up", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let up: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(up["started"], true);
    assert!(up["broker"].as_str().unwrap().contains("admin:**@"), "{up}");
    let sb = Sandbox::load(data).expect("recorded");

    // Starting twice is harmless.
    let again: Value =
        serde_json::from_slice(&common::bare_mqlab(data).args(["sandbox", "up", "--json"]).output().unwrap().stdout).unwrap();
    assert_eq!(again["started"], false);
    assert_eq!(Sandbox::load(data).unwrap(), sb);

    // A worker and a submit through it, with no URL given: the sandbox is used automatically.
    let log = data.join("worker.log");
    let worker = common::bare_mqlab(data)
        .args(["worker", "-c", "2", "--hello-seconds", "0.1"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut worker = common::Proc(worker);
    common::wait_for_file(&log, "ready.", 20);
    let out = common::bare_mqlab(data).args(["submit", "tasks.hello", "World", "--wait", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Hello, World!"));

    // The lessons' commands, templated with the sandbox's endpoints, work as shown.
    let env_data = data.to_string_lossy().to_string();
    let env = move |k: &str| match k {
        "MQLAB_DATA_DIR" => Some(env_data.clone()),
        "MQLAB_CONFIG" => Some("/nonexistent".to_string()),
        _ => None,
    };
    let cfg = mqlab::config::Config::load_with(&Default::default(), &env).unwrap();
    assert_eq!(cfg.broker_url, sb.broker_url(), "the sandbox is the configuration");
    let course = mqlab::lessons::Course::embedded().unwrap();
    // As the app runs them (`!`, then Enter): the lesson's runnable block, by the same runner.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let run_lesson_command = |step: u32, starts: &str| -> String {
        let lesson = course.lesson(step).unwrap();
        let cmd = lesson
            .runnable(mqlab::config::Track::Local, &cfg)
            .into_iter()
            .find(|c| c.command.starts_with(starts))
            .unwrap_or_else(|| panic!("lesson {step} lets the learner run `{starts}…`"));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let (_cancel, cancelled) = tokio::sync::oneshot::channel();
        let env = mqlab::lessons::run::env_for(&cfg);
        let done = rt.block_on(mqlab::lessons::run::run(&cmd.command, &env, tx, cancelled));
        let mut out = vec![];
        while let Ok(batch) = rx.try_recv() {
            out.extend(batch);
        }
        assert_eq!(done.code, Some(0), "{}: {out:?}", cmd.command);
        out.join("\n")
    };
    assert_eq!(run_lesson_command(4, "redis-cli").trim(), "PONG");
    let overview = run_lesson_command(3, "curl");
    assert!(overview.contains("\"management_version\""), "{overview}");

    // A task sent from Python, as the learner's .delay() does, gives step 6 its own evidence.
    let py = format!(
        "from celery import Celery\napp = Celery(broker={:?}, backend={:?})\nprint(app.send_task('tasks.add', (40, 2)).get(timeout=20))",
        sb.broker_url(),
        sb.result_backend()
    );
    let out = std::process::Command::new(common::python()).arg("-c").arg(&py).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42", "{}", String::from_utf8_lossy(&out.stderr));

    // Step 6 of the local track passes (the management API counts consumers every 5 s).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = common::bare_mqlab(data).args(["--track", "local", "check", "--lesson", "6"]).output().unwrap();
        if out.status.success() {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.contains("✓ tasks.roundtrip") && text.contains("✓ mgmt.celery_queue") && text.contains("✓ results.learner"),
                "{text}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "step 6 never passed:\n{}", String::from_utf8_lossy(&out.stdout));
        std::thread::sleep(Duration::from_millis(500));
    }
    worker.signal(libc::SIGTERM);
    worker.wait_exit(10);

    let status: Value =
        serde_json::from_slice(&common::bare_mqlab(data).args(["sandbox", "status", "--json"]).output().unwrap().stdout).unwrap();
    assert_eq!(status["running"], true);
    let out = common::bare_mqlab(data).args(["sandbox", "down"]).output().unwrap();
    assert!(out.status.success());
    for port in [sb.rabbitmq.amqp_port, sb.rabbitmq.management_port, sb.rabbitmq.dist_port, sb.redis.port] {
        assert!(!port_open(port), "port {port} still open");
    }
    assert!(!sb.rabbitmq.is_alive() && !sb.redis.is_alive(), "processes left running");
    assert!(Sandbox::load(data).is_none());
    let out = common::bare_mqlab(data).args(["sandbox", "status"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn missing_programs_say_how_to_install_and_start_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out =
        common::bare_mqlab(dir.path()).env("MQLAB_REDIS_SERVER", "/nonexistent/redis-server").args(["sandbox", "up"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Redis (redis-server) is not installed"), "{err}");
    assert!(err.contains("sudo apt install redis-server") && err.contains("brew install redis"), "{err}");
    assert!(!err.contains("rabbitmq-server") && !err.contains("brew install rabbitmq"), "only what is missing: {err}");
    assert!(err.contains("MQLAB_REDIS_SERVER names /nonexistent/redis-server, which is not a file"), "{err}");
    assert!(Sandbox::load(dir.path()).is_none());
    assert!(!dir.path().join("sandbox").exists(), "nothing half-started");
    let out = common::bare_mqlab(dir.path())
        .env("MQLAB_RABBITMQ_SERVER", "/nonexistent")
        .env("MQLAB_REDIS_SERVER", "/nonexistent")
        .args(["sandbox", "up"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("RabbitMQ (rabbitmq-server) and Redis (redis-server) are not installed"), "{err}");
    assert!(err.contains("sudo apt install rabbitmq-server redis-server") && err.contains("brew install rabbitmq redis"), "{err}");
    // No redis-server on PATH: the message names every place looked in, Homebrew's prefixes
    // (HOMEBREW_PREFIX, Apple Silicon's, Intel's) included.
    let brewed = ["/opt/homebrew", "/usr/local"].iter().any(|p| std::path::Path::new(p).join("bin/redis-server").exists());
    if !brewed {
        let out = common::bare_mqlab(dir.path())
            .env("PATH", dir.path())
            .env("HOMEBREW_PREFIX", dir.path().join("brew"))
            .env("MQLAB_RABBITMQ_SERVER", "/nonexistent")
            .args(["sandbox", "up"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        let looked = err.split("no redis-server in ").nth(1).unwrap_or_else(|| panic!("{err}"));
        for place in ["brew/sbin", "brew/bin", "brew/opt/redis/sbin", "brew/opt/redis/bin"] {
            assert!(looked.contains(&dir.path().join(place).display().to_string()), "{place}: {looked}");
        }
        for place in ["/opt/homebrew/sbin", "/opt/homebrew/bin", "/usr/local/bin", "/usr/local/opt/redis/bin"] {
            assert!(looked.contains(place), "{place}: {looked}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crashed_instance_is_detected_and_up_mends_it() {
    if !common::have(&[Need::Programs]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (sb, started) = Sandbox::up(dir.path(), |_| {}).await.unwrap();
    assert!(started);
    sb.redis.kill();
    // Gone (and reaped: it is this process's child).
    let deadline = Instant::now() + Duration::from_secs(10);
    while mqlab::process::alive(sb.redis.pid) {
        assert!(Instant::now() < deadline, "Redis outlived SIGKILL");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let h = sb.health().await;
    assert_eq!(h.redis, Part::Crashed);
    assert_eq!(h.rabbitmq, Part::Running);
    let (again, started) = Sandbox::up(dir.path(), |_| {}).await.unwrap();
    assert!(started, "a crashed sandbox is started again");
    let h = again.health().await;
    assert!(h.redis.ok() && h.rabbitmq.ok());
    let report = Sandbox::down(dir.path()).await.unwrap().expect("recorded");
    assert_eq!((report.rabbitmq, report.redis), (Stopped::Stopped, Stopped::Stopped));
    assert!(report.still_open.is_empty(), "{report:?}");
}

/// A record left from before a reboot names pids that now belong to other programs: `down`
/// signals none of them and says so.
#[test]
fn a_stale_record_touches_no_other_process() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    // An unrelated program leading its own process group, as `setsid sleep` does.
    let mut bystander = std::process::Command::new("sleep").arg("60").process_group(0).spawn().unwrap();
    let pid = bystander.id();
    let sb_dir = data.join("sandbox");
    std::fs::create_dir_all(&sb_dir).unwrap();
    let record = serde_json::json!({
        "rabbitmq": {"pid": pid, "started_at": 12345, "nodename": "mqlab-x@localhost", "amqp_port": 1, "management_port": 2,
                     "dist_port": 3, "dir": sb_dir.join("rabbitmq")},
        "redis": {"pid": 1, "port": 4, "dir": sb_dir.join("redis")}
    });
    std::fs::write(sb_dir.join("sandbox.json"), record.to_string()).unwrap();
    let out = common::bare_mqlab(data).args(["sandbox", "down"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("RabbitMQ: not running any more") && text.contains("Redis: not running any more"), "{text}");
    assert!(!text.contains("stopped\n"), "{text}");
    assert!(bystander.try_wait().unwrap().is_none(), "the unrelated process survived");
    let _ = bystander.kill();
    let _ = bystander.wait();
    // pid 1 and 0 are never ours, whatever a record says.
    assert!(!mqlab::sandbox::is_ours(1, mqlab::process::start_time(1), std::path::Path::new("/")));
    assert!(!mqlab::sandbox::is_ours(0, Some(0), std::path::Path::new("/")));
}

#[test]
fn a_failed_start_leaves_nothing_running() {
    if !common::have(&[Need::Programs]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A "rabbitmq-server" that dies at once: Redis (started first) must be stopped again.
    let fake = dir.path().join("rabbitmq-server");
    std::fs::write(&fake, "#!/bin/sh\necho 'BOOT FAILED: simulated' >&2\nexit 1\n").unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = common::bare_mqlab(dir.path()).env("MQLAB_RABBITMQ_SERVER", &fake).args(["sandbox", "up"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("RabbitMQ did not start") && err.contains("BOOT FAILED: simulated"), "{err}");
    assert!(Sandbox::load(dir.path()).is_none());
    let redis_out = std::fs::read_to_string(dir.path().join("sandbox/redis/redis.out")).unwrap();
    let port: u16 = redis_out.lines().find_map(|l| l.split("Port: ").nth(1)).and_then(|p| p.trim().parse().ok()).unwrap_or(0);
    if port != 0 {
        assert!(!port_open(port), "Redis on {port} was left running");
    }
    let pids = std::process::Command::new("pgrep").arg("-f").arg(dir.path()).output().unwrap();
    assert!(String::from_utf8_lossy(&pids.stdout).trim().is_empty(), "processes left: {}", String::from_utf8_lossy(&pids.stdout));
}
