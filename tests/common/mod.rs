//! Helpers shared by the integration tests: the real RabbitMQ and Redis of this machine, one
//! queue per test so tests run in parallel, and the built binary.
//!
//! Where the services are: `MQLAB_TEST_BROKER` (AMQP URL), `MQLAB_TEST_MANAGEMENT` (management
//! API URL), `MQLAB_TEST_REDIS` (Redis URL), `MQLAB_TEST_RABBITMQ4` and
//! `MQLAB_TEST_RABBITMQ4_MANAGEMENT` (RabbitMQ 4, for tests/rabbitmq4.rs), `MQLAB_TEST_VENV` (a
//! Python venv with Celery). A test that needs one starts with `if !common::have(&[…]) { return; }`:
//! what is not there is skipped, said once per test binary; under `MQLAB_TEST_REQUIRE_SERVICES=1`
//! (`.ci/run` sets it) a missing service fails the test instead.
#![allow(dead_code)]

pub mod fake_kube;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lapin::options::{ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;

/// True in `tests/rabbitmq4.rs`, which runs the broker-facing test files again against RabbitMQ 4
/// (Debian 13's 4.0 with RabbitMQ 4.3's defaults: transient non-exclusive queues and global QoS
/// denied), started by `.ci/run` in a chroot on 127.0.0.1:5673, management on 15673.
pub fn on_rabbitmq4() -> bool {
    module_path!().starts_with("rabbitmq4::")
}

/// Where `.ci/run` puts RabbitMQ 4's chroot (`MQLAB_RABBITMQ4_ROOT` to move it).
pub fn rabbitmq4_root() -> PathBuf {
    std::env::var_os("MQLAB_RABBITMQ4_ROOT").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/var/tmp/mqlab-rabbitmq4"))
}

pub fn broker() -> String {
    if on_rabbitmq4() {
        return std::env::var("MQLAB_TEST_RABBITMQ4").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5673//".into());
    }
    std::env::var("MQLAB_TEST_BROKER").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672//".into())
}

/// The test broker's URL with other credentials and vhost (`""` is the default vhost `/`).
pub fn broker_as(user: &str, pass: &str, vhost: &str) -> String {
    let b = broker();
    let rest = b.split_once('@').map(|(_, r)| r).unwrap_or("127.0.0.1:5672/");
    let host = rest.split('/').next().unwrap_or(rest);
    if vhost.is_empty() { format!("amqp://{user}:{pass}@{host}//") } else { format!("amqp://{user}:{pass}@{host}/{vhost}") }
}

/// `host:port` of the test broker's AMQP listener.
pub fn broker_addr() -> String {
    broker_as("u", "p", "").trim_start_matches("amqp://u:p@").trim_end_matches("//").to_string()
}

/// Redis database 9 keeps test results away from a learner's database 0.
pub fn redis() -> String {
    std::env::var("MQLAB_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379/9".into())
}

pub fn management() -> String {
    if on_rabbitmq4() {
        return std::env::var("MQLAB_TEST_RABBITMQ4_MANAGEMENT").unwrap_or_else(|_| "http://127.0.0.1:15673".into());
    }
    std::env::var("MQLAB_TEST_MANAGEMENT").unwrap_or_else(|_| "http://127.0.0.1:15672".into())
}

/// `rabbitmqctl` for the test broker (the chroot's own for RabbitMQ 4).
pub fn rabbitmqctl() -> Command {
    if on_rabbitmq4() {
        let mut c = Command::new("chroot");
        c.arg(rabbitmq4_root()).args([
            "env",
            "HOME=/var/lib/rabbitmq",
            "ERL_EPMD_PORT=4370",
            "/usr/lib/rabbitmq/bin/rabbitmqctl",
            "-n",
            "rabbit4@localhost",
        ]);
        return c;
    }
    Command::new("rabbitmqctl")
}

/// The broker's own counts for a queue, `(ready, unacknowledged)` (`rabbitmqctl list_queues`);
/// None when it is not listed or a count does not read as a number.
pub fn queue_counts(queue: &str) -> Option<(u64, u64)> {
    let out = rabbitmqctl()
        .args(["list_queues", "-q", "--no-table-headers", "name", "messages_ready", "messages_unacknowledged"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() == 3 && f[0] == queue).then(|| Some((f[1].parse().ok()?, f[2].parse().ok()?)))?
    })
}

/// A queue name of its own for one test.
pub fn queue(test: &str) -> String {
    format!("mqlab-test-{test}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mqlab")
}

/// `mqlab` with the test services configured and a private data dir.
pub fn mqlab(data_dir: &std::path::Path) -> Command {
    let mut c = Command::new(bin());
    c.env("MQLAB_BROKER_URL", broker())
        .env("MQLAB_RESULT_BACKEND", redis())
        .env("MQLAB_MANAGEMENT_URL", management())
        .env("MQLAB_DATA_DIR", data_dir)
        .env("MQLAB_PROJECT_DIR", data_dir.join("project"))
        .env("MQLAB_CONFIG", data_dir.join("no-config.toml"))
        .env_remove("CELERY_BROKER_URL")
        .env_remove("CELERY_RESULT_BACKEND");
    c
}

/// A child process killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.0.id() as i32, sig);
        }
    }

    /// Waits for the exit status, up to `secs`.
    pub fn wait_exit(&mut self, secs: u64) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.0.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

/// Starts `mqlab worker` on `queue`, logging to `log`, and waits until it is ready.
pub fn start_worker(data_dir: &std::path::Path, queue: &str, extra: &[&str], log: &std::path::Path) -> Proc {
    let file = std::fs::File::create(log).unwrap();
    let child = mqlab(data_dir)
        .args(["worker", "-Q", queue])
        .args(if extra.contains(&"-n") { vec![] } else { vec!["-n".to_string(), format!("w-{queue}")] })
        .args(extra)
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .expect("start mqlab worker");
    let p = Proc(child);
    wait_for_file(log, "ready.", 20);
    p
}

pub fn wait_for_file(path: &std::path::Path, needle: &str, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        if Instant::now() > deadline {
            panic!("{needle:?} did not appear in {} within {secs}s:\n{text}", path.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Deletes a test queue and its exchange.
pub async fn cleanup(queue: &str) {
    if let Ok(conn) = lapin::Connection::connect(&broker(), Default::default()).await
        && let Ok(ch) = conn.create_channel().await
    {
        let _ = ch.queue_delete(queue.into(), QueueDeleteOptions::default()).await;
        let _ = ch.exchange_delete(queue.into(), ExchangeDeleteOptions::default()).await;
        let _ = conn.close(200, "bye".into()).await;
    }
}

/// Messages ready in a queue (passive declare).
pub async fn ready_count(queue: &str) -> u32 {
    let conn = lapin::Connection::connect(&broker(), Default::default()).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    let q =
        ch.queue_declare(queue.into(), QueueDeclareOptions { passive: true, ..Default::default() }, FieldTable::default()).await.unwrap();
    let _ = conn.close(200, "bye".into()).await;
    q.message_count()
}

/// The Python venv with Celery (`MQLAB_TEST_VENV`, else the checkout's `.venv`).
pub fn venv() -> PathBuf {
    std::env::var("MQLAB_TEST_VENV").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv"))
}

pub fn python() -> PathBuf {
    let venv = venv();
    let py = venv.join("bin/python");
    assert!(
        py.exists(),
        "no Python venv at {} (run .ci/run, or create it with `python3 -m venv .venv && .venv/bin/pip install 'celery[redis]'`)",
        venv.display()
    );
    py
}

pub fn python_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python")
}

/// Polls a condition for up to `secs`.
pub async fn eventually<F, Fut>(secs: u64, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Publishes a hand-made message (any headers, body and content type) to a queue.
pub async fn publish_raw(broker: &str, queue: &str, headers: serde_json::Value, body: &[u8], content_type: Option<&str>) {
    let conn = lapin::Connection::connect(broker, Default::default()).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    let mut t = FieldTable::default();
    for (k, v) in headers.as_object().unwrap() {
        t.insert(k.as_str().into(), mqlab::celery::protocol::json_to_amqp(v));
    }
    let mut props = lapin::BasicProperties::default().with_headers(t);
    if let Some(ct) = content_type {
        props = props.with_content_type(ct.into());
    }
    ch.basic_publish("".into(), queue.into(), Default::default(), body, props).await.unwrap().await.unwrap();
    let _ = conn.close(200, "bye".into()).await;
}

/// A vhost of its own on the local RabbitMQ (guest may use it), deleted when dropped: isolates
/// what every worker on a broker sees (events, heartbeats) from the other tests.
pub struct Vhost {
    pub name: String,
}

/// One management API call, on a thread of its own (callers may be inside a runtime).
fn management_call(method: &str, path: &str, body: Option<serde_json::Value>) -> u16 {
    let (method, url) = (method.to_string(), format!("{}{path}", management()));
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            mqlab::tls::ensure_provider();
            let c = reqwest::Client::new();
            let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let mut r = c.request(m, url).basic_auth("guest", Some("guest"));
            if let Some(b) = body {
                r = r.json(&b);
            }
            r.send().await.map(|r| r.status().as_u16()).unwrap_or(0)
        })
    })
    .join()
    .unwrap()
}

impl Vhost {
    pub fn new(test: &str) -> Vhost {
        let name = format!("mqlab-{test}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        assert_eq!(management_call("PUT", &format!("/api/vhosts/{name}"), None) / 100, 2, "create vhost {name}");
        let perms = serde_json::json!({"configure": ".*", "write": ".*", "read": ".*"});
        assert_eq!(management_call("PUT", &format!("/api/permissions/{name}/guest"), Some(perms)) / 100, 2);
        Vhost { name }
    }

    pub fn broker(&self) -> String {
        broker_as("guest", "guest", &self.name)
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        management_call("DELETE", &format!("/api/vhosts/{}", self.name), None);
    }
}

/// What a test needs from this machine beyond Rust: each is looked for once per test binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// The test broker's AMQP port (`broker()`): RabbitMQ, or RabbitMQ 4 in tests/rabbitmq4.rs.
    Rabbitmq,
    /// Its management API (`management()`).
    Management,
    /// The test Redis (`redis()`).
    Redis,
    /// `rabbitmqctl` answering for the test broker (`rabbitmqctl()`).
    Rabbitmqctl,
    /// The Python venv with Celery and its Redis client (`venv()`).
    Venv,
    /// tmux, for the end-to-end tests that drive the app in a terminal.
    Tmux,
    /// kubectl, which reads the fake Kubernetes API as a real cluster.
    Kubectl,
    /// rabbitmq-server and redis-server, which the sandbox starts on ports of its own.
    Programs,
    /// python3 (3.10 or newer) with venv, and the Python package index reachable (pypi.org:443
    /// or `PIP_INDEX_URL`'s host): a lesson's solution installs Celery as the learner does.
    PackageIndex,
}

const NEEDS: usize = 9;

/// Whether everything in `needs` is here. What is not is said once per test binary and group, on
/// stderr past the test harness's capture, e.g.
/// `skipped (no RabbitMQ at 127.0.0.1:5672): the tests of engine that need it; start RabbitMQ
/// there or set MQLAB_TEST_BROKER, or run .ci/run`, and the test returns early. Under
/// `MQLAB_TEST_REQUIRE_SERVICES=1` (`.ci/run`) a missing one fails the test instead.
pub fn have(needs: &[Need]) -> bool {
    use std::sync::OnceLock;
    static FOUND: [OnceLock<Option<(String, String)>>; NEEDS] = [const { OnceLock::new() }; NEEDS];
    for &need in needs {
        let missing = FOUND[need as usize].get_or_init(|| {
            let m = missing(need);
            if let Some((what, how)) = &m
                && !services_required()
            {
                use std::io::Write;
                // Straight to the process's stderr: the harness captures only print!/eprint!.
                let tests = module_path!().trim_end_matches("::common");
                let line = format!("skipped ({what}): the tests of {tests} that need it; {how}, or run .ci/run\n");
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
            m
        });
        if let Some((what, how)) = missing {
            assert!(!services_required(), "{what}: {how} (MQLAB_TEST_REQUIRE_SERVICES is set, so nothing may be skipped)");
            return false;
        }
    }
    true
}

/// `.ci/run` sets `MQLAB_TEST_REQUIRE_SERVICES=1`: there every service must be there.
pub fn services_required() -> bool {
    std::env::var("MQLAB_TEST_REQUIRE_SERVICES").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// `host:port` of an http(s) URL.
fn url_host_port(u: &str) -> Option<String> {
    let rest = u.split_once("://")?.1;
    let host = rest.split(['/', '?']).next()?.rsplit('@').next()?;
    Some(if host.contains(':') {
        host.to_string()
    } else if u.starts_with("https") {
        format!("{host}:443")
    } else {
        format!("{host}:80")
    })
}

/// `host:port` of a URL (its scheme's port when it names none).
fn url_addr(u: &str) -> String {
    let default = if u.starts_with("redis") {
        6379
    } else if u.starts_with("amqp") {
        5672
    } else {
        80
    };
    match url::Url::parse(u) {
        Ok(p) => format!("{}:{}", p.host_str().unwrap_or("127.0.0.1"), p.port_or_known_default().unwrap_or(default)),
        Err(_) => u.to_string(),
    }
}

/// Whether something accepts a TCP connection at `host:port` within a second.
fn answers(addr: &str) -> bool {
    use std::net::ToSocketAddrs;
    addr.to_socket_addrs().map(|mut a| a.any(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok())).unwrap_or(false)
}

/// Whether `cmd` ran and exited 0 within `secs` (killed after that).
fn runs(mut cmd: Command, secs: u64) -> bool {
    let Ok(child) = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn() else { return false };
    let mut p = Proc(child);
    p.wait_exit(secs).is_some_and(|st| st.success())
}

/// What is missing and how to bring it, or None when `need` is there.
fn missing(need: Need) -> Option<(String, String)> {
    let r4 = on_rabbitmq4();
    match need {
        Need::Rabbitmq => {
            let addr = url_addr(&broker());
            (!answers(&addr)).then(|| {
                if r4 {
                    (
                        format!("no RabbitMQ 4 at {addr}"),
                        "start one there (.ci/run runs Debian 13's in a chroot) or set MQLAB_TEST_RABBITMQ4".into(),
                    )
                } else {
                    (format!("no RabbitMQ at {addr}"), "start RabbitMQ there or set MQLAB_TEST_BROKER".into())
                }
            })
        }
        Need::Management => {
            let addr = url_addr(&management());
            let var = if r4 { "MQLAB_TEST_RABBITMQ4_MANAGEMENT" } else { "MQLAB_TEST_MANAGEMENT" };
            (!answers(&addr)).then(|| {
                (
                    format!("no RabbitMQ management API at {addr}"),
                    format!("enable it (rabbitmq-plugins enable rabbitmq_management) or set {var}"),
                )
            })
        }
        Need::Redis => {
            let addr = url_addr(&redis());
            (!answers(&addr)).then(|| (format!("no Redis at {addr}"), "start redis-server there or set MQLAB_TEST_REDIS".into()))
        }
        Need::Rabbitmqctl => {
            let mut c = rabbitmqctl();
            c.args(["list_queues", "-q", "--no-table-headers", "name"]);
            (!runs(c, 30)).then(|| {
                (
                    format!("rabbitmqctl does not answer for the broker at {}", url_addr(&broker())),
                    "install RabbitMQ's command line tools beside it, runnable by this user".into(),
                )
            })
        }
        Need::Venv => {
            let py = venv().join("bin/python");
            let mut c = Command::new(&py);
            c.args(["-c", "import celery, redis"]);
            (!runs(c, 30)).then(|| {
                (
                    format!("no Python venv with Celery at {}", venv().display()),
                    "python3 -m venv .venv && .venv/bin/pip install 'celery[redis]' brotli backports.zstd, or set MQLAB_TEST_VENV".into(),
                )
            })
        }
        Need::Tmux => {
            let mut c = Command::new("tmux");
            c.arg("-V");
            (!runs(c, 10)).then(|| ("no tmux".into(), "install tmux".into()))
        }
        Need::Kubectl => {
            let mut c = Command::new("kubectl");
            c.args(["version", "--client"]);
            (!runs(c, 30)).then(|| ("no kubectl".into(), "install kubectl".into()))
        }
        Need::PackageIndex => {
            let mut c = Command::new("python3");
            c.args(["-c", "import sys, venv; sys.exit(0 if sys.version_info >= (3, 10) else 1)"]);
            if !runs(c, 30) {
                return Some(("no python3 of 3.10 or newer with venv".into(), "install Python 3.10+".into()));
            }
            let index = std::env::var("PIP_INDEX_URL").ok().and_then(|u| url_host_port(&u)).unwrap_or_else(|| "pypi.org:443".into());
            use std::net::ToSocketAddrs;
            let reachable = index
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
                .is_some_and(|a| std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_secs(3)).is_ok());
            (!reachable).then(|| (format!("the Python package index ({index}) is out of reach"), "connect to the network".into()))
        }
        Need::Programs => mqlab::sandbox::find_programs().err().map(|e| {
            let what: Vec<&str> = e.missing.iter().map(|m| m.what).collect();
            (
                format!("no {}", what.join(" nor ")),
                "install them (apt install rabbitmq-server redis-server, or brew install rabbitmq redis)".into(),
            )
        }),
    }
}

/// `mqlab worker` on `queue` against `broker` and `redis`, named `{tag}-{queue's last 8}`,
/// logging at info to `log` (appended); not waited for.
#[allow(dead_code)]
pub fn worker_proc(
    data: &std::path::Path,
    broker: &str,
    redis: &str,
    queue: &str,
    extra: &[&str],
    log: &std::path::Path,
    tag: &str,
) -> Proc {
    let child = mqlab(data)
        .env("MQLAB_BROKER_URL", broker)
        .env("MQLAB_RESULT_BACKEND", redis)
        .args(["worker", "-Q", queue, "-n", &format!("{tag}-{}", &queue[queue.len() - 8..]), "-l", "info"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap())
        .spawn()
        .unwrap();
    Proc(child)
}

/// Publishes task messages as `delay()` does, confirmed by the broker.
#[allow(dead_code)]
pub async fn publish_tasks(broker: &str, queue: &str, msgs: &[mqlab::celery::protocol::TaskMessage]) {
    let c = mqlab::celery::client::Client::connect(broker, None, queue, 3600).await.unwrap();
    c.publish(msgs).await.unwrap();
    c.close().await;
}

/// `mqlab` with no service variables and a data dir of its own: what it uses is what the data dir
/// records (a sandbox).
#[allow(dead_code)]
pub fn bare_mqlab(data: &std::path::Path) -> Command {
    let mut c = Command::new(bin());
    c.env("MQLAB_DATA_DIR", data)
        .env("MQLAB_CONFIG", data.join("none.toml"))
        .env_remove("MQLAB_BROKER_URL")
        .env_remove("MQLAB_RESULT_BACKEND")
        .env_remove("MQLAB_MANAGEMENT_URL")
        .env_remove("CELERY_BROKER_URL")
        .env_remove("CELERY_RESULT_BACKEND");
    c
}

/// One remote-control request to one node, as `celery control` sends it: its reply and how long
/// it took, or None when none came within `secs`.
#[allow(dead_code)]
pub async fn control_request(
    broker: &str,
    node: &str,
    method: &str,
    arguments: serde_json::Value,
    secs: u64,
) -> Option<(serde_json::Value, Duration)> {
    use futures_util::StreamExt;
    use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueBindOptions};
    let conn = lapin::Connection::connect(broker, Default::default()).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    let ticket = uuid::Uuid::new_v4().to_string();
    let q = ch
        .queue_declare("".into(), QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() }, FieldTable::default())
        .await
        .unwrap();
    ch.exchange_declare(
        "reply.celery.pidbox".into(),
        lapin::ExchangeKind::Direct,
        lapin::options::ExchangeDeclareOptions { durable: false, ..Default::default() },
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_bind(
        q.name().clone(),
        "reply.celery.pidbox".into(),
        ticket.as_str().into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let mut replies = ch
        .basic_consume(q.name().clone(), "".into(), BasicConsumeOptions { no_ack: true, ..Default::default() }, FieldTable::default())
        .await
        .unwrap();
    let body = serde_json::json!({"method": method, "arguments": arguments, "destination": [node], "pattern": null, "matcher": null,
        "reply_to": {"exchange": "reply.celery.pidbox", "routing_key": ticket}, "ticket": ticket});
    let props = lapin::BasicProperties::default().with_content_type("application/json".into());
    let sent = Instant::now();
    ch.basic_publish("celery.pidbox".into(), "".into(), BasicPublishOptions::default(), body.to_string().as_bytes(), props)
        .await
        .unwrap()
        .await
        .unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(secs), replies.next()).await;
    let took = sent.elapsed();
    let _ = conn.close(200, "bye".into()).await;
    let d = reply.ok()??.ok()?;
    let v: serde_json::Value = serde_json::from_slice(&d.data).ok()?;
    Some((v[node].clone(), took))
}
