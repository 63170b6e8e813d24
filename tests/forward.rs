//! The built-in port-forwards against a fake Kubernetes API that speaks the WebSocket
//! port-forward protocol and carries the bytes to this machine's real RabbitMQ and Redis: a real
//! Celery task and a real PING go through the forwards, a pod restart is survived, a taken local
//! port moves the forward to the next free one, and the management API behind the forward is
//! told apart from a local broker.

mod common;

use common::Need;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::fake_kube::{FakeKube, ForwardedCluster, Scenario};
use mqlab::celery::client::{Client, follow};
use mqlab::celery::protocol::{TaskMessage, TaskState};
use mqlab::celery::worker::{self, StopMode, WorkerOptions};
use mqlab::config::{Config, Overrides, Track};
use mqlab::forward::{Event, Forward, Recorded, State};
use mqlab::probes::Probes;
use serde_json::{Map, json};
use tokio::sync::{mpsc, watch};

fn probes(fake: &FakeKube, data: &std::path::Path) -> Probes {
    let data = data.to_path_buf();
    let env = move |k: &str| match k {
        "MQLAB_CONFIG" => Some("/nonexistent/config.toml".to_string()),
        "MQLAB_DATA_DIR" => Some(data.to_string_lossy().to_string()),
        _ => None,
    };
    let cfg = Config::load_with(&Overrides { track: Some(Track::K3s), ..Default::default() }, &env).unwrap();
    let mut p = Probes::new(cfg);
    p.kubeconfig = Some(fake.kubeconfig("rancher-desktop"));
    p
}

struct Running {
    forwards: Vec<Forward>,
    events: mpsc::UnboundedReceiver<Event>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    fn local(&self, name: &str) -> u16 {
        self.forwards.iter().find(|f| f.target.name == name).unwrap().local
    }

    fn forward(&self, name: &str) -> &Forward {
        self.forwards.iter().find(|f| f.target.name == name).unwrap()
    }

    /// Waits for a state of one forward that `want` accepts; returns it.
    async fn wait_state(&mut self, name: &str, secs: u64, want: impl Fn(&State) -> bool) -> State {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(Event::State { name: n, state })) if n == name && want(&state) => return state,
                Ok(Some(_)) => {}
                _ => panic!("forward {name}: the state did not come within {secs} s"),
            }
        }
    }
}

async fn start(fake: &FakeKube, data: &std::path::Path) -> Running {
    let p = probes(fake, data);
    let client = mqlab::probes::kube::stream_client(&p).await.unwrap_or_else(|o| panic!("{o:?}"));
    let (tx, mut events) = mpsc::unbounded_channel();
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(mqlab::forward::run(client, "messaging".into(), data.to_path_buf(), tx, stop_rx));
    let forwards = match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
        Ok(Some(Event::Listening(f))) => f,
        other => panic!("no listeners: {other:?}"),
    };
    let mut r = Running { forwards, events, stop, task };
    // Each forward finds its Ready pod.
    let mut up = std::collections::HashSet::new();
    while up.len() < 3 {
        match tokio::time::timeout(Duration::from_secs(10), r.events.recv()).await {
            Ok(Some(Event::State { name, state: State::Up { pod } })) => {
                assert_eq!(pod, if name == "Redis" { "redis-master-0" } else { "rabbitmq-0" });
                up.insert(name);
            }
            Ok(Some(_)) => {}
            other => panic!("forwards not up: {other:?}"),
        }
    }
    r
}

/// One tasks.add through the broker and the result backend at these URLs.
async fn add_through(broker: &str, redis: &str, queue: &str, x: i64) -> (TaskState, serde_json::Value) {
    let client = Client::connect(broker, Some(redis), queue, 600).await.unwrap();
    let m = TaskMessage::new("tasks.add", vec![json!(x), json!(1)], Map::new());
    let mut watcher = client.watch(std::slice::from_ref(&m)).await.unwrap();
    client.publish(std::slice::from_ref(&m)).await.unwrap();
    let mut last = None;
    let done = follow(&mut watcher, Some(Duration::from_secs(20)), |meta| last = Some((meta.status, meta.result.clone()))).await.unwrap();
    assert!(done, "tasks.add({x}, 1) did not finish through the forwards");
    client.close().await;
    last.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_celery_task_and_a_ping_go_through_the_forwards_and_survive_a_pod_restart() {
    if !common::have(&[Need::Rabbitmq, Need::Management, Need::Redis]) {
        return;
    }
    let fake = FakeKube::start(Scenario::Healthy);
    // The fake pods' container ports lead to the test broker (RabbitMQ 3 or 4) and Redis.
    let (amqp_real, mgmt_real) = (
        common::broker_addr().rsplit(':').next().unwrap().parse::<u16>().unwrap(),
        common::management().rsplit(':').next().unwrap().parse::<u16>().unwrap(),
    );
    fake.live.upstream.lock().unwrap().extend([(5672, amqp_real), (15672, mgmt_real)]);
    let dir = tempfile::tempdir().unwrap();
    let mut fw = start(&fake, dir.path()).await;
    let (amqp, mgmt, redis) = (fw.local("AMQP"), fw.local("management"), fw.local("Redis"));

    // 5672 and 6379 are this machine's own RabbitMQ and Redis: the forwards took the next free
    // ports, recorded them, and the configuration follows them.
    assert_ne!(amqp, 5672);
    assert_ne!(redis, 6379);
    let rec = Recorded::load(dir.path()).expect("the ports are recorded while the forwards run");
    assert_eq!(rec.ports[&5672], amqp);
    assert_eq!(rec.apply("amqp://admin:admin123@localhost:5672//"), format!("amqp://admin:admin123@localhost:{amqp}//"));
    assert_eq!(rec.apply("amqp://admin:admin123@rabbit.example:5672//"), "amqp://admin:admin123@rabbit.example:5672//");
    let cfg = probes(&fake, dir.path()).cfg;
    assert!(cfg.broker_url.ends_with(&format!(":{amqp}//")), "{}", cfg.broker_url);
    assert!(cfg.management_url.contains(&format!(":{mgmt}")), "{}", cfg.management_url);
    assert!(cfg.result_backend.contains(&format!(":{redis}/")), "{}", cfg.result_backend);

    // A real PING, a real management call and a real Celery task through the forwards.
    let r = redis::Client::open(format!("redis://127.0.0.1:{redis}/9")).unwrap();
    let mut c = r.get_multiplexed_async_connection().await.unwrap();
    let pong: String = redis::cmd("PING").query_async(&mut c).await.unwrap();
    assert_eq!(pong, "PONG");
    let overview: serde_json::Value = {
        mqlab::tls::ensure_provider();
        let resp = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{mgmt}/api/overview"))
            .basic_auth("guest", Some("guest"))
            .send()
            .await
            .unwrap();
        resp.json().await.unwrap()
    };
    assert!(overview["node"].as_str().unwrap().starts_with("rabbit"), "{overview}");
    let broker = format!("amqp://guest:guest@127.0.0.1:{amqp}//");
    let backend = format!("redis://127.0.0.1:{redis}/9");
    let q = common::queue("forward");
    let mut o = WorkerOptions::new(&broker, Some(backend.clone()));
    o.queue = q.clone();
    o.hostname = format!("celery@fw-{q}");
    let mut w = worker::spawn(o, None);
    assert_eq!(add_through(&broker, &backend, &q, 41).await, (TaskState::Success, json!(42)));
    let carried = fw.forward("AMQP").counters.connections.load(Ordering::Relaxed);
    assert!(carried >= 2, "the worker's and the client's connections went through: {carried}");
    assert!(fw.forward("AMQP").counters.received.load(Ordering::Relaxed) > 0);

    // The RabbitMQ pod restarts: its streams are cut, it is not Ready for a moment, then a new
    // pod (new uid) is. The forward says so, recovers, and the worker's next task succeeds.
    let streams_before = fake.live.streams.load(Ordering::Relaxed);
    let t0 = Instant::now();
    fake.live.restart("rabbitmq");
    fw.wait_state("AMQP", 10, |s| !matches!(s, State::Up { .. })).await;
    fake.live.ready_again("rabbitmq");
    fw.wait_state("AMQP", 10, |s| matches!(s, State::Up { .. })).await;
    // Traffic flows again when a new AMQP connection through the forward logs in.
    let back = loop {
        if lapin::Connection::connect(&broker, Default::default()).await.is_ok() {
            break t0.elapsed();
        }
        assert!(t0.elapsed() < Duration::from_secs(15), "no AMQP through the forward after the restart");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!("pod restart: traffic flowed again {:.2} s after the streams were cut", back.as_secs_f64());
    assert!(fw.forward("AMQP").counters.reconnects.load(Ordering::Relaxed) >= 1);
    assert_eq!(add_through(&broker, &backend, &q, 99).await, (TaskState::Success, json!(100)));
    assert!(fake.live.streams.load(Ordering::Relaxed) > streams_before, "new streams to the new pod");

    // Bytes/s through one forward against a direct connection: a 10 MB Redis value round trip.
    let value = vec![b'x'; 10 * 1024 * 1024];
    let key = format!("mqlab-test-forward-{q}");
    let mut rates = vec![];
    for url in [format!("redis://127.0.0.1:{redis}/9"), common::redis()] {
        // redis-rs gives up on a reply after 0.5 s by default; 10 MB through a forward on a busy
        // machine may take longer, and what is measured here is the rate.
        let config = redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(60)));
        let mut c = redis::Client::open(url).unwrap().get_multiplexed_async_connection_with_config(&config).await.unwrap();
        let t = Instant::now();
        let _: () = redis::cmd("SET").arg(&key).arg(&value).query_async(&mut c).await.unwrap();
        let back: Vec<u8> = redis::cmd("GET").arg(&key).query_async(&mut c).await.unwrap();
        assert_eq!(back.len(), value.len());
        rates.push(2.0 * value.len() as f64 / t.elapsed().as_secs_f64() / 1e6);
    }
    let _: () = redis::cmd("DEL").arg(&key).query_async(&mut c).await.unwrap();
    println!("10 MB Redis value round trip: {:.0} MB/s through the forward, {:.0} MB/s direct", rates[0], rates[1]);

    w.stop(StopMode::Warm);
    let _ = tokio::time::timeout(Duration::from_secs(10), w.wait()).await;
    common::cleanup(&q).await;
    fw.stop.send(true).unwrap();
    let counters = fw.forward("AMQP").counters.clone();
    tokio::time::timeout(Duration::from_secs(5), fw.task).await.expect("the forwards stop").unwrap();
    assert!(Recorded::load(dir.path()).is_none(), "the record goes with the forwards");
    // Nothing of ours listens any more (another test may take the port meanwhile: what counts is
    // that no connection reaches these forwards).
    let before = counters.connections.load(Ordering::Relaxed);
    let _ = std::net::TcpStream::connect(("127.0.0.1", amqp));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(counters.connections.load(Ordering::Relaxed), before, "a connection reached stopped forwards");
}

/// A forward whose service has no Ready pod says so and retries; when the pod is Ready the
/// forward comes up without being restarted.
#[tokio::test(flavor = "multi_thread")]
async fn a_forward_waits_for_its_pod() {
    let fake = FakeKube::start(Scenario::Healthy);
    fake.live.restart("redis");
    let dir = tempfile::tempdir().unwrap();
    let p = probes(&fake, dir.path());
    let client = mqlab::probes::kube::stream_client(&p).await.unwrap_or_else(|o| panic!("{o:?}"));
    let (tx, mut events) = mpsc::unbounded_channel();
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(mqlab::forward::run(client, "messaging".into(), dir.path().to_path_buf(), tx, stop_rx));
    let mut saw_down = None;
    let t0 = Instant::now();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await.expect("events") {
            Some(Event::State { name: "Redis", state: State::Down { error } }) if saw_down.is_none() => {
                assert!(error.contains("no Ready pod behind service redis-master"), "{error}");
                saw_down = Some(t0.elapsed());
                fake.live.ready_again("redis");
            }
            Some(Event::State { name: "Redis", state: State::Up { pod } }) => {
                assert!(saw_down.is_some());
                assert_eq!(pod, "redis-master-0");
                break;
            }
            Some(_) => {}
            None => panic!("events ended"),
        }
    }
    println!("Redis pod Ready → forward up in {:.2} s", (t0.elapsed() - saw_down.unwrap()).as_secs_f64());
    stop.send(true).unwrap();
    task.await.unwrap();
}

/// `mqlab forward` as a learner runs it: it prints the ports, the checks of another mqlab use
/// them (the management API answering as the cluster's node), Ctrl-C stops it cleanly; without
/// the forward, the machine's own RabbitMQ on 15672 is named as what answers.
#[test]
fn mqlab_forward_runs_until_ctrl_c_and_the_checks_follow_its_ports() {
    if !common::have(&[Need::Rabbitmq, Need::Management]) {
        return;
    }
    use std::io::BufRead;
    let cluster = ForwardedCluster::start("amqp://guest:guest@localhost:5672//", "redis://localhost:6379/9");
    let mqlab = || cluster.mqlab();
    let child = mqlab().arg("forward").stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let mut fw = common::Proc(child);
    let mut out = std::io::BufReader::new(fw.0.stdout.take().unwrap());
    let mut printed = String::new();
    while !printed.contains("use these ports") {
        let mut l = String::new();
        assert!(out.read_line(&mut l).unwrap() > 0, "mqlab forward ended: {printed}");
        printed.push_str(&l);
    }
    println!("{printed}");
    let port_of = |name: &str| -> u16 {
        let line = printed.lines().find(|l| l.trim_start().starts_with(name)).unwrap();
        line.split("127.0.0.1:").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap()
    };
    let (amqp, mgmt, redis) = (port_of("AMQP"), port_of("management"), port_of("Redis"));
    assert!(printed.contains("(5672 is taken on this machine)"), "{printed}");

    let check = |ids: &[&str]| -> serde_json::Value {
        let mut c = mqlab();
        c.args(["check", "--json"]);
        for id in ids {
            c.args(["--id", id]);
        }
        let o = c.output().unwrap();
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)))
    };
    let v = check(&["amqp.login", "mgmt.login", "redis.ping", "ports.local"]);
    for r in v["results"].as_array().unwrap() {
        assert_eq!(r["status"], "pass", "{r}");
    }
    let detail =
        |v: &serde_json::Value, id: &str| v["results"].as_array().unwrap().iter().find(|r| r["id"] == id).unwrap()["detail"].to_string();
    assert!(detail(&v, "amqp.login").contains(&format!(":{amqp}/")), "{v}");
    assert!(detail(&v, "mgmt.login").contains(&format!(":{mgmt} as admin: RabbitMQ 4.1.3")), "{v}");
    assert!(detail(&v, "ports.local").contains(&format!("Redis {redis}")), "{v}");

    // Ctrl-C: a clean stop, the record removed, the ports closed.
    fw.signal(libc::SIGINT);
    let st = fw.wait_exit(10).expect("mqlab forward stops on Ctrl-C");
    assert!(st.success(), "{st:?}");
    assert!(!cluster.data().join("forwards.json").exists());
    let _ = amqp;

    // Without the forward, 15672 is this machine's RabbitMQ (guest/guest there): named as such.
    if !common::on_rabbitmq4() {
        let v = check(&["mgmt.login"]);
        let r = &v["results"][0];
        assert_eq!(r["status"], "fail", "{r}");
        let d = r["detail"].as_str().unwrap();
        assert!(d.contains(":15672 is not the cluster's: it answers as node rabbit@") && d.contains("holds the port"), "{r}");
        assert!(r["hint"].as_str().unwrap().contains("mqlab forward"), "{r}");
    }
}

#[test]
fn cluster_node_names() {
    use mqlab::probes::rabbit::is_cluster_node;
    assert!(is_cluster_node("rabbit@rabbitmq-0.rabbitmq-headless.messaging.svc.cluster.local"));
    assert!(is_cluster_node("rabbit@rabbitmq-0"));
    assert!(!is_cluster_node("rabbit@my-laptop"));
    assert!(!is_cluster_node("rabbit@localhost"));
    assert!(!is_cluster_node("rabbit@rabbitmq"));
}

/// A port some other program holds on either loopback address is not used: "localhost" could
/// resolve to that program. kubectl too listens on both.
#[tokio::test]
async fn a_port_taken_on_either_loopback_moves_the_forward() {
    for other in ["127.0.0.1:0", "[::1]:0"] {
        let Ok(held) = std::net::TcpListener::bind(other) else {
            assert!(other.starts_with('['), "127.0.0.1 always binds");
            continue; // no IPv6 loopback on this machine
        };
        let port = held.local_addr().unwrap().port();
        let ls = mqlab::forward::bind_free(port).await.unwrap();
        let got = ls[0].local_addr().unwrap().port();
        assert_ne!(got, port, "{other} holds {port}");
        assert!(ls.iter().all(|l| l.local_addr().unwrap().port() == got));
        assert!(ls.iter().all(|l| l.local_addr().unwrap().ip().is_loopback()));
    }
}

/// The real services behind the fake pods' container ports (the test broker and Redis).
fn upstream_to_real_services(fake: &FakeKube) {
    let amqp_real = common::broker_addr().rsplit(':').next().unwrap().parse::<u16>().unwrap();
    let mgmt_real = common::management().rsplit(':').next().unwrap().parse::<u16>().unwrap();
    fake.live.upstream.lock().unwrap().extend([(5672, amqp_real), (15672, mgmt_real)]);
}

/// Idle connections through a forward live as long as their ends: an AMQP connection and a Redis
/// connection stay silent for 65 s (longer than any timeout mqlab sets: the API client's 4 s
/// reads, the 5 s endpoint looks), then both are used on the same connection. No connection was
/// cut, and each close is counted with who closed it.
#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_through_a_forward_outlive_every_timeout() {
    if !common::have(&[Need::Rabbitmq, Need::Redis]) {
        return;
    }
    let fake = FakeKube::start(Scenario::Healthy);
    upstream_to_real_services(&fake);
    let dir = tempfile::tempdir().unwrap();
    let fw = start(&fake, dir.path()).await;
    let (amqp, redis) = (fw.local("AMQP"), fw.local("Redis"));
    let conn = lapin::Connection::connect(&format!("amqp://guest:guest@127.0.0.1:{amqp}/%2f"), Default::default()).await.unwrap();
    let cfg = redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(5)));
    let mut r = redis::Client::open(format!("redis://127.0.0.1:{redis}/9"))
        .unwrap()
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
        .unwrap();
    let pong: String = redis::cmd("PING").query_async(&mut r).await.unwrap();
    assert_eq!(pong, "PONG");
    let idle = Duration::from_secs(65);
    println!("both connections idle for {} s…", idle.as_secs());
    // The idle time is what is under test: nothing is awaited but the clock.
    tokio::time::sleep(idle).await;
    let pong: String = redis::cmd("PING").query_async(&mut r).await.expect("the idle Redis connection still works");
    assert_eq!(pong, "PONG");
    let q = common::queue("idle-forward");
    let ch = conn.create_channel().await.expect("the idle AMQP connection still works");
    ch.queue_declare(q.as_str().into(), lapin::options::QueueDeclareOptions { exclusive: true, ..Default::default() }, Default::default())
        .await
        .expect("a declare on the idle AMQP connection");
    for name in ["AMQP", "Redis"] {
        let c = &fw.forward(name).counters;
        assert_eq!(c.cut.load(Ordering::Relaxed), 0, "{name}: a connection was cut");
        assert_eq!(c.connections.load(Ordering::Relaxed), 1, "{name}: the same connection, never reopened");
    }
    let _ = conn.close(200, "bye".into()).await;
    drop(r);
    // The two closes are counted as the client's.
    let counters = [fw.forward("AMQP").counters.clone(), fw.forward("Redis").counters.clone()];
    assert!(
        common::eventually(10, || async { counters.iter().all(|c| c.closed_by_client.load(Ordering::Relaxed) == 1) }).await,
        "closes counted: {counters:?}"
    );
    fw.stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), fw.task).await.expect("the forwards stop").unwrap();
}

/// The learner's own Python Celery worker, connected through the forwards for two minutes with
/// nothing to do, loses its broker connection not once, and then runs a task sent through them.
#[tokio::test(flavor = "multi_thread")]
async fn a_python_celery_worker_stays_connected_through_the_forwards_for_two_minutes() {
    if !common::have(&[Need::Rabbitmq, Need::Redis, Need::Venv]) {
        return;
    }
    let fake = FakeKube::start(Scenario::Healthy);
    upstream_to_real_services(&fake);
    let dir = tempfile::tempdir().unwrap();
    let fw = start(&fake, dir.path()).await;
    let (amqp, redis) = (fw.local("AMQP"), fw.local("Redis"));
    let broker = format!("amqp://guest:guest@127.0.0.1:{amqp}//");
    let backend = format!("redis://127.0.0.1:{redis}/9");
    let q = common::queue("py-forward");
    let log = dir.path().join("worker.log");
    let celery = common::python().parent().unwrap().join("celery");
    let child = std::process::Command::new(celery)
        .args(["-A", "celery_app", "worker", "-c", "1", "-l", "info", "-n", &format!("py@{q}")])
        .current_dir(common::python_dir())
        .env("CELERY_BROKER_URL", &broker)
        .env("CELERY_RESULT_BACKEND", &backend)
        .env("MQLAB_TEST_QUEUE", &q)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut worker = common::Proc(child);
    common::wait_for_file(&log, "ready.", 60);
    let held = Duration::from_secs(120);
    println!("the Python worker holds its connections through the forwards for {} s…", held.as_secs());
    tokio::time::sleep(held).await;
    assert_eq!(add_through(&broker, &backend, &q, 20).await, (TaskState::Success, json!(21)));
    worker.signal(libc::SIGTERM);
    assert!(worker.wait_exit(30).is_some(), "the worker stops on SIGTERM");
    let text = std::fs::read_to_string(&log).unwrap();
    let lost = text.matches("Connection to broker lost").count();
    assert_eq!(lost, 0, "the worker lost its broker connection {lost} time(s):\n{text}");
    assert!(!text.contains("Cannot connect to amqp"), "{text}");
    assert_eq!(fw.forward("AMQP").counters.cut.load(Ordering::Relaxed), 0, "no AMQP connection was cut");
    assert_eq!(fw.forward("Redis").counters.cut.load(Ordering::Relaxed), 0, "no Redis connection was cut");
    common::cleanup(&q).await;
    fw.stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), fw.task).await.expect("the forwards stop").unwrap();
}

/// One process serves the forwards of a data directory: a second `run` (the app's F while
/// `mqlab forward` runs elsewhere) starts nothing, names the one that serves, and leaves its
/// record alone; the record is live while that one holds the lock, and gone with it.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_forwarder_defers_to_the_first_and_leaves_its_record() {
    if !common::have(&[Need::Rabbitmq, Need::Redis]) {
        return;
    }
    let fake = FakeKube::start(Scenario::Healthy);
    upstream_to_real_services(&fake);
    let dir = tempfile::tempdir().unwrap();
    let first = start(&fake, dir.path()).await;
    let rec = Recorded::load(dir.path()).expect("the first serves");
    assert_eq!(rec.pid, std::process::id());
    let p = probes(&fake, dir.path());
    let client = mqlab::probes::kube::stream_client(&p).await.unwrap_or_else(|o| panic!("{o:?}"));
    let (tx, mut events) = mpsc::unbounded_channel();
    let (_stop, stop_rx) = watch::channel(false);
    let second = tokio::spawn(mqlab::forward::run(client, "messaging".into(), dir.path().to_path_buf(), tx, stop_rx));
    match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
        Ok(Some(Event::Elsewhere(other))) => assert_eq!(other, rec),
        other => panic!("the second forwarder did not defer: {other:?}"),
    }
    tokio::time::timeout(Duration::from_secs(5), second).await.expect("the second returns at once").unwrap();
    // The first's record and ports are untouched by the second's end.
    assert_eq!(Recorded::load(dir.path()), Some(rec.clone()));
    let redis = first.local("Redis");
    let mut c = redis::Client::open(format!("redis://127.0.0.1:{redis}/9")).unwrap().get_multiplexed_async_connection().await.unwrap();
    let pong: String = redis::cmd("PING").query_async(&mut c).await.unwrap();
    assert_eq!(pong, "PONG");
    // The configuration of another mqlab on this data dir uses the first's ports, and the
    // checks know them for the cluster's.
    let cfg = probes(&fake, dir.path()).cfg;
    assert!(cfg.result_backend.contains(&format!(":{redis}/")), "{}", cfg.result_backend);
    let r = probes(&fake, dir.path()).run("redis.ping").await;
    assert_eq!(r.status, mqlab::probes::Status::Pass, "{r:?}");
    assert!(r.detail.contains("port-forward") && r.detail.contains("to the cluster"), "{r:?}");
    drop(c);
    first.stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), first.task).await.expect("the forwards stop").unwrap();
    assert!(Recorded::load(dir.path()).is_none(), "the record goes with the one that served it");
}

/// A record left behind by a process that died (its lock released with it) is not taken for
/// live forwards, whatever pid it names.
#[test]
fn a_stale_record_is_not_live() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorded { pid: std::process::id(), namespace: "messaging".into(), ports: [(5672, 5673)].into_iter().collect() };
    std::fs::write(dir.path().join("forwards.json"), serde_json::to_vec(&rec).unwrap()).unwrap();
    assert_eq!(Recorded::load(dir.path()), None, "no lock file: nobody serves");
    std::fs::write(dir.path().join("forwards.lock"), b"").unwrap();
    assert_eq!(Recorded::load(dir.path()), None, "an unheld lock: nobody serves");
    let lock = std::fs::OpenOptions::new().write(true).open(dir.path().join("forwards.lock")).unwrap();
    lock.lock().unwrap();
    assert_eq!(Recorded::load(dir.path()), Some(rec), "a held lock: served");
}
