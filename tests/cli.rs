//! The headless commands as a user runs them: the binary, its output and exit codes.

mod common;

#[test]
fn worker_banner_masks_passwords_and_sigterm_is_a_warm_shutdown() {
    let q = common::queue("banner");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("w.log");
    let mut w = common::start_worker(dir.path(), &q, &["-c", "3", "--prefetch-multiplier", "2", "--acks-early"], &log);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("transport:   amqp://guest:**@127.0.0.1:5672//"), "{text}");
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
        .env("MQLAB_BROKER_URL", "amqp://guest:bad@127.0.0.1:5672//")
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
