//! Every lesson's solution, as a learner on the local track runs it: `mqlab solve N` for lessons
//! 1 to 11 in order from a fresh data directory (a sandbox RabbitMQ and Redis, the project in a
//! folder of its own, Celery installed from the package index into the project's venv, the
//! Python worker in the background), and after each lesson `mqlab check --lesson N` must pass
//! every check the lesson lists. Then the whole course once more over what the first round left
//! (a learner who runs a solution again), then `mqlab reset --lesson 7`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::Need;
use serde_json::Value;

struct Course {
    dir: tempfile::TempDir,
}

impl Course {
    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn project(&self) -> PathBuf {
        self.dir.path().join("project")
    }

    /// `mqlab` as the learner runs it: no service variables (what it uses is the sandbox the
    /// data dir records), the local track, the project folder of its own.
    fn mqlab(&self) -> Command {
        let mut c = common::bare_mqlab(&self.data());
        c.env("MQLAB_PROJECT_DIR", self.project()).env("MQLAB_TRACK", "local").env("PIP_DISABLE_PIP_VERSION_CHECK", "1");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.mqlab().args(args).output().expect("mqlab runs")
    }
}

impl Drop for Course {
    /// Whatever happened: the programs the solutions started, then the sandbox.
    fn drop(&mut self) {
        let _ = self.run(&["reset", "--yes"]);
        let _ = self.run(&["sandbox", "down"]);
    }
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn progress(c: &Course) -> Value {
    let o = c.run(&["progress", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).expect("progress JSON")
}

/// The lesson's checks now, by `mqlab check --lesson N --json`: (id, status, detail).
fn checks(c: &Course, n: u32) -> Vec<(String, String, String)> {
    let o = c.run(&["check", "--lesson", &n.to_string(), "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("check --lesson {n}: {}", text(&o)));
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
                r["detail"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn solve_course(c: &Course, round: u32) {
    for n in 1..=11u32 {
        let started = std::time::Instant::now();
        let o = c.run(&["solve", &n.to_string(), "--track", "local"]);
        assert!(o.status.success(), "round {round}: mqlab solve {n} failed:\n{}", text(&o));
        let solved = started.elapsed().as_secs_f64();
        let checked = checks(c, n);
        println!("round {round}, lesson {n}: solved in {solved:.1} s, checked in {:.1} s", started.elapsed().as_secs_f64() - solved);
        for (id, status, detail) in checked {
            assert_eq!(
                status,
                "pass",
                "round {round}, lesson {n}: {id} is {status} after its solution: {detail}\nthe solve said:\n{}",
                text(&o)
            );
        }
    }
}

fn python_worker(data: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(data.join("solve/processes.json")).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v.get("python-worker").cloned()
}

fn alive(pid: u64) -> bool {
    // Signal 0: whether it exists (a zombie of ours is reaped by no one here: it is not our child).
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

#[test]
fn every_local_lesson_is_solved_by_its_own_commands_twice_and_one_lesson_resets_alone() {
    if !common::have(&[Need::Programs, Need::PackageIndex]) {
        return;
    }
    let c = Course { dir: tempfile::tempdir().unwrap() };
    solve_course(&c, 1);

    // What the learner's path recorded: the Python worker's burst and recovery seen on the broker
    // (lesson 7), the timing at concurrency 16 (lesson 9), each with its lesson.
    let p = progress(&c);
    let exps = p["experiments"].as_array().unwrap();
    let of = |kind: &str, lesson: u64| exps.iter().filter(|e| e["kind"] == kind && e["lesson"] == lesson).count();
    assert!(of("recovery", 7) >= 1 && of("concurrency", 7) >= 1, "lesson 7's burst and recovery: {exps:#?}");
    assert!(
        exps.iter().any(|e| e["kind"] == "concurrency" && e["lesson"] == 9 && e["figures"]["concurrency"] == 16),
        "lesson 9's timing at concurrency 16: {exps:#?}"
    );
    let learnings = std::fs::read_to_string(c.project().join("LEARNINGS.md")).expect("lesson 10 wrote LEARNINGS.md");
    assert!(learnings.contains("Seen on the broker"), "{learnings}");

    // Again, over what the first round left: every solution runs again and stays green.
    solve_course(&c, 2);

    // Reset lesson 7 after running it again (its worker is then lesson 7's): lesson 7's earned
    // checks and experiments go, lesson 5's stay, and the worker it started is stopped.
    let o = c.run(&["solve", "7", "--track", "local"]);
    assert!(o.status.success(), "{}", text(&o));
    let worker = python_worker(&c.data()).expect("lesson 7 left the Python worker running");
    assert_eq!(worker["lesson"], 7);
    let pid = worker["pid"].as_u64().unwrap();
    assert!(alive(pid));
    let o = c.run(&["reset", "--lesson", "7", "--yes"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("stopped python-worker"), "{}", text(&o));
    let p = progress(&c);
    assert!(p["earned"].get("7").is_none(), "lesson 7 keeps earned checks: {}", p["earned"]);
    assert!(p["earned"]["5"].get("project.celery_app").is_some(), "lesson 5 lost its checks: {}", p["earned"]);
    assert!(!p["experiments"].as_array().unwrap().iter().any(|e| e["lesson"] == 7), "lesson 7's experiments stay");
    assert!(p["experiments"].as_array().unwrap().iter().any(|e| e["lesson"] == 9), "lesson 9's experiments went too");
    assert!(python_worker(&c.data()).is_none());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while alive(pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(!alive(pid), "the worker lesson 7 started still runs");
    // Lesson 7 is no longer done and says what it needs; lesson 5 still is.
    let o = c.run(&["progress"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    // "  ✓  5 Create…": the mark, then the lesson's number.
    let line = |n: u32| {
        t.lines().find(|l| l.chars().skip(3).collect::<String>().trim_start().starts_with(&format!("{n} "))).unwrap_or("").to_string()
    };
    assert!(line(5).starts_with("  ✓"), "{t}");
    assert!(!line(7).starts_with("  ✓") && line(7).contains("to do:") && line(7).contains("experiment burst"), "{t}");

    // `mqlab solve --stop` stops what solutions left running, and only that.
    let o = c.run(&["solve", "6", "--track", "local"]);
    assert!(o.status.success(), "{}", text(&o));
    let pid = python_worker(&c.data()).expect("lesson 6 started the worker")["pid"].as_u64().unwrap();
    let o = c.run(&["solve", "--stop"]);
    assert!(text(&o).contains("stopped python-worker"), "{}", text(&o));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while alive(pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(!alive(pid), "the worker still runs");
    assert!(text(&c.run(&["solve", "--stop"])).contains("No program a solution started is running"));
    assert_eq!(progress(&c)["earned"]["6"].as_object().map(|m| m.len()), Some(3), "stopping kept lesson 6's earned checks");
}

/// The cluster track's first lesson, solved against the project's fake Kubernetes API with the
/// real kubectl: the context switch the lesson shows, then the node; its checks pass. (`helm` is
/// not installable here: a stand-in on PATH answers `helm version --short` as Helm 3 does, for
/// the preflight's "on PATH" check.) Later cluster lessons install charts with Helm, which no
/// fake here can answer.
#[test]
fn the_cluster_tracks_first_lesson_is_solved_against_the_fake_api() {
    use common::fake_kube::{FakeKube, Scenario};
    if !common::have(&[Need::Kubectl]) {
        return;
    }
    let fake = FakeKube::start(Scenario::Healthy);
    // Another context is current, as on a machine that also runs Docker Desktop.
    let kubeconfig = fake.kubeconfig("docker-desktop");
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helm = bin.join("helm");
    std::fs::write(&helm, "#!/bin/sh\necho v3.19.0+g3d8990f\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helm, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let o = common::bare_mqlab(&dir.path().join("data"))
        .env("KUBECONFIG", &kubeconfig)
        .env("PATH", &path)
        .env("MQLAB_PROJECT_DIR", dir.path().join("project"))
        .args(["solve", "1", "--track", "k3s"])
        .output()
        .unwrap();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    for shown in ["$ kubectl config use-context rancher-desktop", "$ kubectl get nodes", "lima-rancher-desktop"] {
        assert!(t.contains(shown), "{shown:?} not in:\n{t}");
    }
    assert!(std::fs::read_to_string(&kubeconfig).unwrap().contains("current-context: rancher-desktop"), "the context was switched");
    for id in ["kube.context", "kube.api", "kube.node_ready"] {
        assert!(t.lines().any(|l| l.contains(&format!("✓ {id}"))), "{id} did not pass:\n{t}");
    }
    assert!(fake.requests.lock().unwrap().iter().any(|r| r.contains("/api/v1/nodes")), "kubectl and the checks asked the fake API");

    // Lesson 2 on a cluster where the chart runs already: the namespace and the install are
    // skipped as done (their checks say so), then the wait for the lesson's checks passes. (Lesson
    // 3 and later reach RabbitMQ and Redis through port-forwards, which these checks require to be
    // the cluster's.)
    for n in ["2"] {
        let o = common::bare_mqlab(&dir.path().join("data"))
            .env("KUBECONFIG", &kubeconfig)
            .env("PATH", &path)
            .env("MQLAB_PROJECT_DIR", dir.path().join("project"))
            .args(["solve", n, "--track", "k3s"])
            .output()
            .unwrap();
        let t = text(&o);
        assert!(o.status.success(), "lesson {n}: {t}");
        assert!(t.contains("skipped, done already"), "lesson {n}: {t}");
        assert!(t.contains("the lesson's checks pass"), "lesson {n}: {t}");
    }
    // Every cluster lesson's solution is a plan of commands the course shows.
    for n in 1..=11 {
        let o = common::bare_mqlab(&dir.path().join("data")).args(["solve", &n.to_string(), "--track", "k3s", "--list"]).output().unwrap();
        assert!(o.status.success(), "lesson {n}: {}", text(&o));
    }
}

/// The cluster track's lesson 3: its solution keeps `mqlab forward` running in the background
/// (through the fake API's WebSocket port-forward to this machine's RabbitMQ, and to a stand-in
/// for the chart's management API), asks that API through the forward with the login only in
/// the environment, and the lesson's checks pass through the forward; `mqlab solve --stop` ends it.
#[test]
fn the_cluster_tracks_lesson_3_keeps_a_forward_and_asks_the_api_through_it() {
    use common::fake_kube::{FakeKube, Scenario, cluster_management_stub};
    if !common::have(&[Need::Kubectl, Need::Rabbitmq]) {
        return;
    }
    let fake = FakeKube::start(Scenario::Healthy);
    let stub = cluster_management_stub();
    let amqp_real = common::broker_addr().rsplit(':').next().unwrap().parse::<u16>().unwrap();
    fake.live.upstream.lock().unwrap().extend([(5672, amqp_real), (15672, stub)]);
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("config.toml");
    std::fs::write(
        &conf,
        "broker_url = \"amqp://guest:guest@localhost:5672//\"\nresult_backend = \"redis://localhost:6379/9\"\nmanagement_url = \"http://guest:guest@localhost:15672\"\ntrack = \"k3s\"\n",
    )
    .unwrap();
    let mqlab = |args: &[&str]| {
        let o = common::bare_mqlab(&dir.path().join("data"))
            .env("MQLAB_CONFIG", &conf)
            .env("KUBECONFIG", fake.kubeconfig("rancher-desktop"))
            .env("MQLAB_PROJECT_DIR", dir.path().join("project"))
            .args(args)
            .output()
            .unwrap();
        (o.status.success(), text(&o))
    };
    let (ok, t) = mqlab(&["solve", "3", "--track", "k3s"]);
    let _stop = Stop(&mqlab);
    assert!(ok, "{t}");
    assert!(t.contains("started forwards") && t.contains("forwards is ready"), "{t}");
    // The curl names the forward's local port (15672 is this machine's own) and no secret.
    let curl = t
        .lines()
        .find(|l| l.contains("$ curl -s -u \"$MQLAB_MGMT_USER:$MQLAB_MGMT_PASSWORD\" http://localhost:"))
        .unwrap_or_else(|| panic!("{t}"));
    assert!(!curl.contains(":15672/"), "{curl}");
    assert!(t.contains("through mqlab's port-forward"), "{t}");
    assert!(t.contains("rabbit@rabbitmq-0.rabbitmq-headless"), "the cluster's API answered through the forward: {t}");
    assert!(!t.contains("guest:guest"), "{t}");
    for id in ["kube.services", "mgmt.login", "mgmt.exchanges"] {
        assert!(t.lines().any(|l| l.contains(&format!("✓ {id}"))), "{id} did not pass through the forward:\n{t}");
    }
    let (_, t) = mqlab(&["solve", "--stop"]);
    assert!(t.contains("stopped forwards"), "{t}");

    struct Stop<'a, F: Fn(&[&str]) -> (bool, String)>(&'a F);
    impl<F: Fn(&[&str]) -> (bool, String)> Drop for Stop<'_, F> {
        fn drop(&mut self) {
            let _ = (self.0)(&["solve", "--stop"]);
        }
    }
}
