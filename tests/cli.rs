//! The headless commands as a user runs them: the binary, its output and exit codes.

mod common;

use common::Need;

#[test]
fn worker_banner_masks_passwords_and_sigterm_is_a_warm_shutdown() {
    if !common::have(&[Need::Rabbitmq, Need::Redis]) {
        return;
    }
    let q = common::queue("banner");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("w.log");
    let mut w = common::start_worker(dir.path(), &q, &["-c", "3", "--prefetch-multiplier", "2", "--acks-early"], &log);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains(&format!("transport:   amqp://guest:**@{}//", common::broker_addr())), "{text}");
    assert!(!text.contains("guest:guest"), "{text}");
    assert!(text.contains("concurrency: 3"), "{text}");
    assert!(text.contains("prefetch:    6"), "{text}");
    assert!(text.contains("acks:        early"), "{text}");
    assert!(text.contains(&format!(".> {q}")), "{text}");
    for t in ["tasks.hello", "tasks.add", "tasks.divide"] {
        assert!(text.contains(&format!("  . {t}")), "{text}");
    }
    let out = common::mqlab(dir.path()).args(["submit", "tasks.add", "2", "3", "-Q", &q, "--wait"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("SUCCESS") && stdout.contains("result: 5"), "{stdout}");
    let text = common::wait_for_file(&log, "succeeded in", 5);
    assert!(text.contains("Task tasks.add[") && text.contains("received"), "{text}");
    w.signal(libc::SIGTERM);
    let status = w.wait_exit(10).expect("worker exits after SIGTERM");
    assert!(status.success(), "{status:?}");
    assert!(std::fs::read_to_string(&log).unwrap().contains("warm shutdown complete"));
    tokio::runtime::Runtime::new().unwrap().block_on(common::cleanup(&q));
}

#[test]
fn submit_reports_bulk_rates_timeouts_and_bad_input() {
    if !common::have(&[Need::Rabbitmq, Need::Redis]) {
        return;
    }
    let q = common::queue("submitcli");
    let dir = tempfile::tempdir().unwrap();
    // Nobody consumes this queue: --wait times out with exit code 2 and says why.
    let out = common::mqlab(dir.path()).args(["submit", "tasks.hello", "World", "-Q", &q, "--wait", "--timeout", "0.5"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is a worker consuming queue"));
    let out = common::mqlab(dir.path()).args(["submit", "tasks.add", "1", "2", "-n", "100", "-Q", &q]).output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("Published 100 × tasks.add in") && stdout.contains("tasks/s"), "{stdout}");
    assert_eq!(tokio::runtime::Runtime::new().unwrap().block_on(common::ready_count(&q)), 101);

    let out = common::mqlab(dir.path()).args(["submit", "tasks.add", "--kwargs", "{nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--kwargs is not valid JSON"));
    let out =
        common::mqlab(dir.path()).env("MQLAB_BROKER_URL", "amqp://admin:s3cret@").args(["submit", "tasks.add", "1", "2"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: invalid broker URL") && err.lines().count() == 1 && !err.contains("s3cret"), "{err}");
    let out = common::mqlab(dir.path())
        .env("MQLAB_BROKER_URL", common::broker_as("guest", "bad", ""))
        .args(["submit", "tasks.add", "1", "2"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("login refused") && !err.contains(":bad@"), "{err}");
    tokio::runtime::Runtime::new().unwrap().block_on(common::cleanup(&q));
}

#[test]
fn a_second_signal_is_a_cold_shutdown_that_requeues() {
    if !common::have(&[Need::Rabbitmq, Need::Redis]) {
        return;
    }
    let q = common::queue("twosignals");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("w.log");
    let mut w = common::start_worker(dir.path(), &q, &["-c", "1"], &log);
    let out = common::mqlab(dir.path()).args(["submit", "tasks.sleep", "30", "-Q", &q]).output().unwrap();
    assert!(out.status.success());
    common::wait_for_file(&log, "Task tasks.sleep[", 10);
    w.signal(libc::SIGTERM);
    common::wait_for_file(&log, "warm shutdown: waiting for 1 task(s)", 10);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(w.0.try_wait().unwrap().is_none(), "a warm shutdown waits for the running task");
    w.signal(libc::SIGTERM);
    let status = w.wait_exit(10).expect("the second signal stops it");
    assert!(status.success());
    common::wait_for_file(&log, "cold shutdown", 5);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let requeued = rt.block_on(async {
        for _ in 0..50 {
            if common::ready_count(&q).await == 1 {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        false
    });
    assert!(requeued, "the unfinished task went back to the queue");
    rt.block_on(common::cleanup(&q));
}

/// Completions for three shells, a man page, and a version that says what the build speaks.
#[test]
fn completions_man_page_and_version() {
    let dir = tempfile::tempdir().unwrap();
    for (shell, marker) in [("bash", "complete -F"), ("zsh", "#compdef mqlab"), ("fish", "complete -c mqlab")] {
        let out = common::mqlab(dir.path()).args(["completions", shell]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.contains(marker) && text.contains("sandbox"), "{shell}: {text}");
    }
    let man = common::mqlab(dir.path()).arg("man").output().unwrap();
    let text = String::from_utf8_lossy(&man.stdout);
    assert!(text.contains(".TH mqlab 1") && text.contains("SUBCOMMANDS"), "{text}");
    let v = common::mqlab(dir.path()).arg("--version").output().unwrap();
    let text = String::from_utf8_lossy(&v.stdout);
    assert!(text.starts_with(&format!("mqlab {}", env!("CARGO_PKG_VERSION"))) && text.contains("rustls with ring"), "{text}");
}

/// The export draws the learner's own charts from what was recorded, and none without it.
#[test]
fn export_writes_charts_from_recorded_experiments() {
    use mqlab::lessons::progress::{ExperimentKind, Progress, Store, experiment};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out_dir = dir.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    // Nothing recorded: no chart.
    let run = |data: &std::path::Path| {
        let o = common::mqlab(data).args(["export", "-o"]).arg(out_dir.join("LEARNINGS.md")).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    run(&data);
    assert!(!out_dir.join("learnings-recovery.svg").exists() && !out_dir.join("learnings-throughput.svg").exists());
    let mut p = Progress::new();
    let mut rec = experiment(
        ExperimentKind::Recovery,
        "The worker was killed with 4 message(s) unacknowledged; 20 task(s) waited (peak queue depth 20)",
        serde_json::json!({"tasks": 20, "succeeded": 20, "failed": 0, "peak_depth": 20, "seconds": 8.5, "in_flight_at_kill": 4, "down_at": 2.0, "up_at": 9.0}),
    );
    rec.series = (0..30).map(|i| [i as f64 * 0.5, if (4..18).contains(&i) { 20.0 } else { 0.0 }, if i < 4 { 4.0 } else { 0.0 }]).collect();
    p.experiments.push(rec);
    for (c, secs) in [(4, 10.2), (16, 2.9)] {
        p.experiments.push(experiment(
            ExperimentKind::Concurrency,
            format!("Burst of 20 × tasks.hello at concurrency {c}"),
            serde_json::json!({"count": 20, "succeeded": 20, "concurrency": c, "seconds": secs, "peak_depth": 20, "drained": 1}),
        ));
    }
    p.experiments.push(experiment(
        ExperimentKind::EarlyAckLoss,
        "Early acks: 4 of 20 lost",
        serde_json::json!({"lost": 4, "in_flight": 4}),
    ));
    Store::new(&data).save(&p).unwrap();
    run(&data);
    let md = std::fs::read_to_string(out_dir.join("LEARNINGS.md")).unwrap();
    for (file, title_bits) in [
        ("learnings-recovery.svg", vec!["peak depth 20", "20 of 20 tasks done 8.5 s after the restart"]),
        ("learnings-throughput.svg", vec!["c=4: 2.0/s", "c=16: 6.9/s"]),
        ("learnings-acks.svg", vec!["early acks: 4 of 4 lost", "late acks: 0 of 4 lost"]),
    ] {
        let svg = std::fs::read_to_string(out_dir.join(file)).unwrap_or_else(|_| panic!("{file} written"));
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{file}");
        let title = svg.split("<title>").nth(1).unwrap().split("</title>").next().unwrap();
        for bit in title_bits {
            assert!(title.contains(bit), "{file}: {title:?} lacks {bit:?}");
        }
        assert!(md.contains(&format!("]({file})")), "LEARNINGS.md links {file}");
    }
}

/// `cargo package` carries every file the binary embeds (lessons, the learner's Python project),
/// so a build from the published crate has them.
#[test]
fn the_package_holds_what_the_binary_embeds() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut embedded = vec![];
    let mut dirs = vec![root.join("src")];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            for (i, _) in text.match_indices("include_str!(\"") {
                let rel = &text[i + 14..];
                let rel = &rel[..rel.find('"').unwrap()];
                let full = p.parent().unwrap().join(rel).canonicalize().unwrap();
                embedded.push(full.strip_prefix(root).unwrap().to_string_lossy().to_string());
            }
        }
    }
    assert!(embedded.len() >= 15, "the lessons and the Python project are embedded: {embedded:?}");
    let out = std::process::Command::new(env!("CARGO"))
        .args(["package", "--list", "--allow-dirty", "--offline"])
        .current_dir(root)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
    for f in &embedded {
        assert!(listed.contains(f), "{f} is embedded but not packaged");
    }
    for picture in ["assets/screens/lesson.svg", "assets/screens/burst.svg"] {
        assert!(listed.iter().any(|l| l == picture), "the README's pictures are packaged: {picture}");
    }
}
