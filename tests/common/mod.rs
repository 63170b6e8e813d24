//! Helpers shared by the integration tests: the real RabbitMQ and Redis of this machine, one
//! queue per test so tests run in parallel, and the built binary.
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

fn rabbitmq4_up() {
    use std::sync::OnceLock;
    static UP: OnceLock<bool> = OnceLock::new();
    let up = *UP.get_or_init(|| std::net::TcpStream::connect_timeout(&"127.0.0.1:5673".parse().unwrap(), Duration::from_secs(2)).is_ok());
    assert!(up, "RabbitMQ 4 is not running on 127.0.0.1:5673: `.ci/run` starts it (Debian 13's rabbitmq-server in a chroot)");
}

pub fn broker() -> String {
    if on_rabbitmq4() {
        rabbitmq4_up();
        return "amqp://guest:guest@127.0.0.1:5673//".into();
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
        rabbitmq4_up();
        return "http://127.0.0.1:15673".into();
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

pub fn python() -> PathBuf {
    let venv =
        std::env::var("MQLAB_TEST_VENV").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv"));
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
