//! Every lesson's solution, as a learner on the local track runs it: `mqlab solve N` for lessons
//! 1 to 11 in order from a fresh data directory (a sandbox RabbitMQ and Redis, the project in a
//! folder of its own, Celery installed from the package index into the project's venv, the
//! Python worker in the background), and after each lesson `mqlab check --lesson N` must pass
//! every check the lesson lists. Then the whole course once more over what the first round left
//! (a learner who runs a solution again), then `mqlab reset --lesson 7`. The cluster track's
//! course the same way, once, against the fake Kubernetes API and its port-forwards.

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
    // The solutions predicted before their experiments; each prediction is now beside the figure
    // the broker or the timing measured: lesson 7's Ready peak, lesson 9's time at concurrency 16.
    for (lesson, id, figure) in [(7, "ready_peak", "ready_peak"), (9, "burst_at_16", "seconds")] {
        let o = c.run(&["predict", "--lesson", &lesson.to_string(), "--json"]);
        let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", text(&o)));
        let pr = v["predictions"].as_array().unwrap().iter().find(|p| p["id"] == id).unwrap().clone();
        let observed = pr["observed"].as_f64().unwrap_or_else(|| panic!("lesson {lesson}'s {id} was not observed: {v}"));
        let recorded = exps
            .iter()
            .filter(|e| e["lesson"] == lesson && e["figures"].get(figure).is_some())
            .filter_map(|e| e["figures"][figure].as_f64())
            .collect::<Vec<_>>();
        assert!(recorded.contains(&observed), "lesson {lesson}'s {id}: {observed} is a recorded figure: {recorded:?}");
        println!("lesson {lesson}: predicted {} for {id}, measured {observed}", pr["predicted"]);
    }
    assert!(
        learnings.contains("### My Predictions") && learnings.contains("I predicted 12 messages; the experiment showed"),
        "{learnings}"
    );

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
    assert!(text(&o).contains("stopped python-worker") && text(&o).contains("stopped math-worker"), "{}", text(&o));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while alive(pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(!alive(pid), "the worker still runs");
    assert!(text(&c.run(&["solve", "--stop"])).contains("No program a solution started is running"));
    assert_eq!(progress(&c)["earned"]["6"].as_object().map(|m| m.len()), Some(3), "stopping kept lesson 6's earned checks");

    // The queues a lesson had the learner make go with it: lesson 3's orders.eu (its binding with
    // it), lesson 9's math (its worker was stopped above).
    let o = c.run(&["reset", "--lesson", "3", "--yes"]);
    assert!(text(&o).contains("deleted queue orders.eu (lesson 3 declared it; 2 message(s)"), "{}", text(&o));
    let o = c.run(&["reset", "--lesson", "9", "--yes"]);
    let t = text(&o);
    assert!(t.contains("deleted queue math (lesson 9 declared it") && t.contains("and the exchange math Celery declared with it"), "{t}");
}

/// The cluster track's course, lessons 1 to 11 in order, solved against the project's fake
/// Kubernetes API with the real kubectl, as a learner with Rancher Desktop runs it: the context
/// switch, the namespace and the pinned installs skipped as done (every pod Ready, their checks
/// say so), `mqlab forward` kept in the background from lesson 3 on, through the fake API's
/// WebSocket port-forward to this machine's RabbitMQ (a vhost of the test's), its management API
/// and Redis (a db of the test's); then the project written with
/// the forwards' ports, Celery installed from the package index, the learner's Python worker
/// reaching the broker through the forward, its burst, kill and recovery seen on the broker
/// through the forward. After each lesson every check it lists passes. (`helm` is not
/// installable here: a stand-in on PATH answers `helm version --short` as Helm 3 does; the
/// installs themselves are skipped because their pods run.)
#[test]
fn the_cluster_tracks_course_is_solved_through_the_fake_api_and_its_forwards() {
    use common::fake_kube::ForwardedCluster;
    if !common::have(&[Need::Kubectl, Need::Rabbitmq, Need::Management, Need::Redis, Need::PackageIndex]) {
        return;
    }
    let vhost = common::Vhost::new("k3s-course");
    // Redis database 13 is this test's alone: what the learner's results check counts is
    // what this course stored.
    const DB: u32 = 13;
    let mut redis = redis::Client::open(format!("redis://127.0.0.1:6379/{DB}")).unwrap().get_connection().unwrap();
    redis::cmd("FLUSHDB").query::<()>(&mut redis).unwrap();
    let cluster =
        ForwardedCluster::start(&format!("amqp://guest:guest@localhost:5672/{}", vhost.name), &format!("redis://localhost:6379/{DB}"))
            .with_real_management();
    // Another context is current, as on a machine that also runs Docker Desktop.
    assert_eq!(cluster.fake.kubeconfig("docker-desktop"), cluster.kubeconfig);
    let bin = cluster.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helm = bin.join("helm");
    std::fs::write(&helm, "#!/bin/sh\necho v3.19.0+g3d8990f\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helm, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let project = cluster.dir.path().join("project");
    let mqlab = |args: &[&str]| -> (bool, String) {
        let o = cluster
            .mqlab()
            .env("PATH", &path)
            .env("MQLAB_PROJECT_DIR", &project)
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
            .args(args)
            .output()
            .unwrap();
        (o.status.success(), text(&o))
    };
    // Whatever happens: the forwards and the Python worker the solutions started, then the rest.
    struct Stop<'a, F: Fn(&[&str]) -> (bool, String)>(&'a F);
    impl<F: Fn(&[&str]) -> (bool, String)> Drop for Stop<'_, F> {
        fn drop(&mut self) {
            let _ = (self.0)(&["solve", "--stop"]);
            let _ = (self.0)(&["reset", "--yes"]);
        }
    }
    let _stop = Stop(&mqlab);

    for n in 1..=11u32 {
        let started = std::time::Instant::now();
        let (ok, t) = mqlab(&["solve", &n.to_string(), "--track", "k3s"]);
        assert!(ok, "mqlab solve {n} --track k3s failed:\n{t}");
        let solved = started.elapsed().as_secs_f64();
        match n {
            1 => {
                for shown in ["$ kubectl config use-context rancher-desktop", "$ kubectl get nodes", "lima-rancher-desktop"] {
                    assert!(t.contains(shown), "{shown:?} not in:\n{t}");
                }
                let kubeconfig = std::fs::read_to_string(&cluster.kubeconfig).unwrap();
                assert!(kubeconfig.contains("current-context: rancher-desktop"), "the context was switched");
                assert!(cluster.fake.requests.lock().unwrap().iter().any(|r| r.contains("/api/v1/nodes")), "kubectl asked the fake API");
            }
            2 | 4 => {
                assert!(t.contains("skipped, done already"), "lesson {n}: {t}");
                assert!(t.contains("the lesson's checks pass") || n == 4, "lesson {n}: {t}");
            }
            3 => {
                assert!(t.contains("started forwards") && t.contains("forwards is ready"), "{t}");
                // The curl names the forward's local port (15672 is this machine's own) and no secret.
                let curl = t
                    .lines()
                    .find(|l| l.contains("$ curl -s -u \"$MQLAB_MGMT_USER:$MQLAB_MGMT_PASSWORD\" http://localhost:"))
                    .unwrap_or_else(|| panic!("{t}"));
                assert!(!curl.contains(":15672/"), "{curl}");
                assert!(t.contains("through mqlab's port-forward"), "{t}");
                assert!(t.contains("\"management_version\""), "the API answered through the forward: {t}");
                // Routing by hand: the matching key routed, the other not.
                assert!(t.contains("{\"routed\":true}") && t.contains("{\"routed\":false}"), "{t}");
            }
            5 => {
                // The project names the forwards' ports, not the machine's own RabbitMQ and Redis.
                let app = std::fs::read_to_string(project.join("celery_app.py")).unwrap();
                assert!(!app.contains("localhost:5672/") && !app.contains("localhost:6379/"), "{app}");
                assert!(app.contains(&vhost.name) && app.contains(&format!("/{DB}'")), "{app}");
            }
            _ => {}
        }
        assert!(!t.contains("guest:guest"), "lesson {n} printed the password:\n{t}");
        let (_, checked) = mqlab(&["check", "--lesson", &n.to_string(), "--json"]);
        let v: Value = serde_json::from_str(&checked).unwrap_or_else(|_| panic!("check --lesson {n}: {checked}"));
        println!("k3s lesson {n}: solved in {solved:.1} s, checked in {:.1} s", started.elapsed().as_secs_f64() - solved);
        for r in v["results"].as_array().unwrap() {
            assert_eq!(r["status"], "pass", "lesson {n}: {} after its solution: {r}\nthe solve said:\n{t}", r["id"]);
        }
    }
    // What the learner's Python worker went through on the cluster's broker is recorded, with
    // its lesson: the burst and the recovery of lesson 7, the timing of lesson 9.
    let (_, p) = mqlab(&["progress", "--json"]);
    let p: Value = serde_json::from_str(&p).unwrap();
    let exps = p["experiments"].as_array().unwrap();
    let of = |kind: &str, lesson: u64| exps.iter().filter(|e| e["kind"] == kind && e["lesson"] == lesson).count();
    assert!(of("recovery", 7) >= 1 && of("concurrency", 7) >= 1, "lesson 7's burst and recovery: {exps:#?}");
    assert!(of("concurrency", 9) >= 1, "lesson 9's timing: {exps:#?}");
    let learnings = std::fs::read_to_string(project.join("LEARNINGS.md")).expect("lesson 10 wrote LEARNINGS.md");
    assert!(learnings.contains("Seen on the broker"), "{learnings}");
    assert!(!learnings.contains("guest:guest"), "{learnings}");

    let (_, t) = mqlab(&["solve", "--stop"]);
    assert!(t.contains("stopped forwards") && t.contains("stopped python-worker") && t.contains("stopped math-worker"), "{t}");
    // Every cluster lesson's solution is a plan of commands the course shows.
    for n in 1..=11 {
        let (ok, t) = mqlab(&["solve", &n.to_string(), "--track", "k3s", "--list"]);
        assert!(ok, "lesson {n}: {t}");
    }
}
