//! Private RabbitMQ and Redis instances for learners without a cluster (the local track), and for
//! tests that must stop or restart a broker. Each instance runs in its own process group with its
//! node name, ports, data and logs under the given directory.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::redact::mask_url;

pub const USER: &str = "admin";
pub const PASS: &str = "admin123";

/// Where the programs are.
#[derive(Clone, Debug)]
pub struct Programs {
    pub rabbitmq_server: PathBuf,
    pub redis_server: PathBuf,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "{missing} not installed. Install with:\n  Debian/Ubuntu: sudo apt install rabbitmq-server redis-server\n  macOS:         brew install rabbitmq redis"
)]
pub struct MissingPrograms {
    pub missing: String,
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

/// Finds rabbitmq-server (the real script, not Debian's wrapper that switches user) and
/// redis-server.
/// `MQLAB_RABBITMQ_SERVER` and `MQLAB_REDIS_SERVER` name other programs.
pub fn find_programs() -> Result<Programs, MissingPrograms> {
    let chosen = |var: &str| std::env::var_os(var).map(PathBuf::from);
    let rabbit = match chosen("MQLAB_RABBITMQ_SERVER") {
        Some(p) => p.is_file().then_some(p),
        None => default_rabbit(),
    };
    let redis = match chosen("MQLAB_REDIS_SERVER") {
        Some(p) => p.is_file().then_some(p),
        None => on_path("redis-server"),
    };
    match (rabbit, redis) {
        (Some(rabbitmq_server), Some(redis_server)) => Ok(Programs { rabbitmq_server, redis_server }),
        (None, None) => Err(MissingPrograms { missing: "RabbitMQ (rabbitmq-server) and Redis (redis-server) are".into() }),
        (None, _) => Err(MissingPrograms { missing: "RabbitMQ (rabbitmq-server) is".into() }),
        (_, None) => Err(MissingPrograms { missing: "Redis (redis-server) is".into() }),
    }
}

fn default_rabbit() -> Option<PathBuf> {
    std::fs::read_dir("/usr/lib/rabbitmq/lib")
        .ok()
        .and_then(|entries| {
            let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            dirs.sort();
            dirs.into_iter().rev().map(|d| d.join("sbin/rabbitmq-server")).find(|p| p.is_file())
        })
        .or_else(|| on_path("rabbitmq-server"))
}

fn port_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The preferred port if free, else any free one.
fn pick(preferred: Option<u16>) -> anyhow::Result<u16> {
    match preferred {
        Some(p) if port_free(p) => Ok(p),
        _ => free_port(),
    }
}

/// Whether the process still runs (a child that exited is reaped, not counted as alive).
fn alive(pid: u32) -> bool {
    unsafe {
        if libc::waitpid(pid as i32, std::ptr::null_mut(), libc::WNOHANG) == pid as i32 {
            return false;
        }
        libc::kill(pid as i32, 0) == 0
    }
}

async fn answers(port: u16) -> bool {
    tokio::time::timeout(Duration::from_millis(500), tokio::net::TcpStream::connect(("127.0.0.1", port))).await.is_ok_and(|r| r.is_ok())
}

/// A RabbitMQ node of our own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rabbit {
    pub pid: u32,
    /// When the process started (clock ticks after boot, from /proc): with the process group
    /// and working directory, what tells our process from another that got the same pid later.
    #[serde(default)]
    pub started_at: Option<u64>,
    pub nodename: String,
    pub amqp_port: u16,
    pub management_port: u16,
    pub dist_port: u16,
    pub dir: PathBuf,
}

/// A Redis server of our own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Redis {
    pub pid: u32,
    #[serde(default)]
    pub started_at: Option<u64>,
    pub port: u16,
    pub dir: PathBuf,
}

impl Rabbit {
    /// Starts a node in `dir` (ports: the preferred ones when free) and waits until AMQP and the
    /// management API answer.
    pub async fn start(programs: &Programs, dir: &Path, amqp: Option<u16>, management: Option<u16>) -> anyhow::Result<Rabbit> {
        crate::files::private_dir(dir)?;
        let amqp_port = pick(amqp)?;
        let management_port = pick(management)?;
        let dist_port = pick(amqp_port.checked_add(20000))?;
        let tag = format!("{:x}", md5_like(&dir.to_string_lossy()));
        let nodename = format!("mqlab-{tag}@localhost");
        Self::launch(programs, dir, &nodename, amqp_port, management_port, dist_port).await
    }

    async fn launch(
        programs: &Programs,
        dir: &Path,
        nodename: &str,
        amqp_port: u16,
        management_port: u16,
        dist_port: u16,
    ) -> anyhow::Result<Rabbit> {
        let conf = dir.join("rabbitmq.conf");
        crate::files::write_atomic(
            &conf,
            format!(
                "listeners.tcp.1 = 127.0.0.1:{amqp_port}\nmanagement.tcp.port = {management_port}\nmanagement.tcp.ip = 127.0.0.1\n\
                 default_user = {USER}\ndefault_pass = {PASS}\nloopback_users = none\n"
            )
            .as_bytes(),
        )?;
        crate::files::write_atomic(&dir.join("enabled_plugins"), b"[rabbitmq_management].\n")?;
        let log = crate::files::private_file_afresh(&dir.join("rabbitmq.out"))?;
        let mut cmd = Command::new(&programs.rabbitmq_server);
        cmd.env("HOME", dir)
            .env("RABBITMQ_NODENAME", nodename)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", amqp_port.to_string())
            .env("RABBITMQ_DIST_PORT", dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_CONFIG_FILE", &conf)
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_CONF_ENV_FILE", dir.join("rabbitmq-env.conf"))
            .env("RABBITMQ_PID_FILE", dir.join("rabbitmq.pid"))
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env("ERL_FLAGS", "-kernel inet_dist_use_interface {127,0,0,1}")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        new_process_group(&mut cmd);
        let child = cmd.spawn().with_context(|| format!("cannot run {}", programs.rabbitmq_server.display()))?;
        let rabbit = Rabbit {
            pid: child.id(),
            started_at: proc_start_time(child.id()),
            nodename: nodename.to_string(),
            amqp_port,
            management_port,
            dist_port,
            dir: dir.to_path_buf(),
        };
        if wait_ready(rabbit.pid, &[amqp_port, management_port], Duration::from_secs(60)).await {
            return Ok(rabbit);
        }
        rabbit.kill();
        bail!("RabbitMQ did not start (log: {}):\n  {}", dir.join("rabbitmq.out").display(), last_lines(&dir.join("rabbitmq.out"), 8));
    }

    pub fn broker_url(&self) -> String {
        format!("amqp://{USER}:{PASS}@127.0.0.1:{}//", self.amqp_port)
    }

    pub fn management_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.management_port)
    }

    pub fn is_alive(&self) -> bool {
        is_ours(self.pid, self.started_at, &self.dir) && alive(self.pid)
    }

    /// Stops the node cleanly (SIGTERM to its process group) and waits for it. A recorded pid
    /// that is not this node any more (a reboot, a stale record) is left alone.
    pub async fn stop(&self) -> Stopped {
        if !is_ours(self.pid, self.started_at, &self.dir) {
            return Stopped::NotOurs;
        }
        signal_group(self.pid, libc::SIGTERM);
        wait_gone(self.pid, &[self.amqp_port, self.dist_port], Duration::from_secs(30)).await;
        if is_ours(self.pid, self.started_at, &self.dir) {
            signal_group(self.pid, libc::SIGKILL);
        }
        Stopped::Stopped
    }

    /// Kills the node at once (a crash).
    pub fn kill(&self) {
        if is_ours(self.pid, self.started_at, &self.dir) {
            signal_group(self.pid, libc::SIGKILL);
        }
    }

    /// Starts the same node again (same ports, data and name).
    pub async fn restart(&mut self, programs: &Programs) -> anyhow::Result<()> {
        self.stop().await;
        let again =
            Self::launch(programs, &self.dir.clone(), &self.nodename.clone(), self.amqp_port, self.management_port, self.dist_port).await?;
        *self = again;
        Ok(())
    }
}

impl Redis {
    pub async fn start(programs: &Programs, dir: &Path, port: Option<u16>) -> anyhow::Result<Redis> {
        crate::files::private_dir(dir)?;
        let port = pick(port)?;
        Self::launch(programs, dir, port).await
    }

    async fn launch(programs: &Programs, dir: &Path, port: u16) -> anyhow::Result<Redis> {
        let log = crate::files::private_file_afresh(&dir.join("redis.out"))?;
        let mut cmd = Command::new(&programs.redis_server);
        // Append-only file: results survive a restart of this Redis.
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        new_process_group(&mut cmd);
        let child = cmd.spawn().with_context(|| format!("cannot run {}", programs.redis_server.display()))?;
        let r = Redis { pid: child.id(), started_at: proc_start_time(child.id()), port, dir: dir.to_path_buf() };
        if wait_ready(r.pid, &[port], Duration::from_secs(10)).await {
            return Ok(r);
        }
        r.kill();
        bail!("Redis did not start: {}", last_lines(&dir.join("redis.out"), 3));
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn is_alive(&self) -> bool {
        is_ours(self.pid, self.started_at, &self.dir) && alive(self.pid)
    }

    pub async fn stop(&self) -> Stopped {
        if !is_ours(self.pid, self.started_at, &self.dir) {
            return Stopped::NotOurs;
        }
        signal_group(self.pid, libc::SIGTERM);
        wait_gone(self.pid, &[self.port], Duration::from_secs(10)).await;
        if is_ours(self.pid, self.started_at, &self.dir) {
            signal_group(self.pid, libc::SIGKILL);
        }
        Stopped::Stopped
    }

    pub fn kill(&self) {
        if is_ours(self.pid, self.started_at, &self.dir) {
            signal_group(self.pid, libc::SIGKILL);
        }
    }

    pub async fn restart(&mut self, programs: &Programs) -> anyhow::Result<()> {
        self.stop().await;
        *self = Self::launch(programs, &self.dir.clone(), self.port).await?;
        Ok(())
    }
}

/// Waits until every port answers; false if the process dies or the time runs out.
async fn wait_ready(pid: u32, ports: &[u16], limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while alive(pid) && Instant::now() < deadline {
        let mut all = true;
        for p in ports {
            all &= answers(*p).await;
        }
        if all {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

fn last_lines(path: &Path, n: usize) -> String {
    let text = crate::files::read_tail(path, 64 * 1024).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(n)..].join("\n  ");
    if tail.is_empty() { "no output".to_string() } else { tail }
}

fn new_process_group(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
}

/// What `stop` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    Stopped,
    /// The recorded process is not running any more, or another process has its pid now.
    NotOurs,
}

/// The start time of a process (field 22 of /proc/<pid>/stat), and its process group (field 5).
fn proc_stat(pid: u32) -> Option<(u64, i64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: read after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3.
    let pgrp = fields.get(5 - 3)?.parse().ok()?;
    let start = fields.get(22 - 3)?.parse().ok()?;
    Some((start, pgrp))
}

pub fn proc_start_time(pid: u32) -> Option<u64> {
    proc_stat(pid).map(|(s, _)| s)
}

/// Whether `pid` is still the process this sandbox started: never pid 0 or 1; the start time
/// recorded then; leading its own process group (the one we made for it); working in its dir.
pub fn is_ours(pid: u32, started_at: Option<u64>, dir: &Path) -> bool {
    if pid <= 1 {
        return false;
    }
    let Some(recorded) = started_at else { return false };
    let Some((start, pgrp)) = proc_stat(pid) else { return false };
    if start != recorded || pgrp != pid as i64 {
        return false;
    }
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok();
    let want = std::fs::canonicalize(dir).ok();
    cwd.is_some() && cwd == want
}

fn signal_group(pid: u32, sig: i32) {
    // Never a broadcast: kill(-1) would signal every process we may signal.
    if pid <= 1 {
        return;
    }
    unsafe {
        libc::kill(-(pid as i32), sig);
    }
}

async fn wait_gone(pid: u32, ports: &[u16], limit: Duration) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        // Reap it if it is our child, so it does not linger as a zombie.
        unsafe {
            libc::waitpid(pid as i32, std::ptr::null_mut(), libc::WNOHANG);
        }
        let mut open = false;
        for p in ports {
            open |= answers(*p).await;
        }
        if !alive(pid) && !open {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn md5_like(s: &str) -> u32 {
    // FNV-1a: a short, stable tag for the node name.
    let mut h: u32 = 0x811c9dc5;
    for b in s.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    h
}

/// The recorded sandbox (`<data dir>/sandbox/sandbox.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sandbox {
    pub rabbitmq: Rabbit,
    pub redis: Redis,
}

impl Sandbox {
    pub fn dir(data_dir: &Path) -> PathBuf {
        data_dir.join("sandbox")
    }

    fn file(data_dir: &Path) -> PathBuf {
        Self::dir(data_dir).join("sandbox.json")
    }

    /// The recorded sandbox, if any.
    pub fn load(data_dir: &Path) -> Option<Sandbox> {
        let text = crate::files::read_capped(&Self::file(data_dir), 64 * 1024).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn broker_url(&self) -> String {
        self.rabbitmq.broker_url()
    }

    pub fn result_backend(&self) -> String {
        self.redis.url()
    }

    pub fn management_url(&self) -> String {
        self.rabbitmq.management_url()
    }

    /// Starts both (on the curriculum's ports when free), records them, and returns them. Does
    /// nothing but report when they already run. Leaves nothing half-started on failure.
    pub async fn up(data_dir: &Path, mut progress: impl FnMut(&str)) -> anyhow::Result<(Sandbox, bool)> {
        if let Some(existing) = Self::load(data_dir) {
            let h = existing.health().await;
            if h.rabbitmq.ok() && h.redis.ok() {
                return Ok((existing, false));
            }
            progress("the recorded sandbox is not healthy; stopping what is left of it");
            existing.stop().await;
        }
        let programs = find_programs()?;
        let dir = Self::dir(data_dir);
        // The data dir and the sandbox's own: for their owner only (one made open to others
        // before is closed).
        crate::files::private_dir(data_dir)?;
        crate::files::private_dir(&dir)?;
        progress("starting Redis");
        let redis = Redis::start(&programs, &dir.join("redis"), Some(6379)).await?;
        progress(&format!("Redis answers on port {}", redis.port));
        progress("starting RabbitMQ with the management plugin (takes a few seconds)");
        let rabbitmq = match Rabbit::start(&programs, &dir.join("rabbitmq"), Some(5672), Some(15672)).await {
            Ok(r) => r,
            Err(e) => {
                redis.stop().await;
                return Err(e);
            }
        };
        progress(&format!("RabbitMQ answers on ports {} (AMQP) and {} (management)", rabbitmq.amqp_port, rabbitmq.management_port));
        let sb = Sandbox { rabbitmq, redis };
        let file = Self::file(data_dir);
        let _ = std::fs::remove_file(&file);
        let mut f = crate::files::private_file(&file).with_context(|| format!("cannot write {}", file.display()))?;
        std::io::Write::write_all(&mut f, serde_json::to_string_pretty(&sb)?.as_bytes())?;
        Ok((sb, true))
    }

    /// Stops both (only if they are still the processes it started) and forgets them; says
    /// what it did, and which of their ports still answer (another program's, then).
    pub async fn down(data_dir: &Path) -> anyhow::Result<Option<DownReport>> {
        let Some(sb) = Self::load(data_dir) else { return Ok(None) };
        let (r, d) = sb.stop().await;
        let _ = std::fs::remove_file(Self::file(data_dir));
        let mut still_open = vec![];
        for p in [sb.rabbitmq.amqp_port, sb.rabbitmq.management_port, sb.redis.port] {
            if answers(p).await {
                still_open.push(p);
            }
        }
        Ok(Some(DownReport { rabbitmq: r, redis: d, still_open }))
    }

    pub async fn stop(&self) -> (Stopped, Stopped) {
        tokio::join!(self.rabbitmq.stop(), self.redis.stop())
    }

    pub async fn health(&self) -> Health {
        let rabbit = if !self.rabbitmq.is_alive() {
            Part::Crashed
        } else if answers(self.rabbitmq.amqp_port).await && answers(self.rabbitmq.management_port).await {
            Part::Running
        } else {
            Part::NotAnswering
        };
        let redis = if !self.redis.is_alive() {
            Part::Crashed
        } else if answers(self.redis.port).await {
            Part::Running
        } else {
            Part::NotAnswering
        };
        Health { rabbitmq: rabbit, redis }
    }

    pub fn describe(&self) -> String {
        format!(
            "broker      {}\nmanagement  {} (user {USER})\nresults     {}\ndata, logs  {}",
            mask_url(&self.broker_url()),
            self.management_url(),
            self.result_backend(),
            self.rabbitmq.dir.parent().unwrap_or(&self.rabbitmq.dir).display()
        )
    }
}

/// What `down` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DownReport {
    pub rabbitmq: Stopped,
    pub redis: Stopped,
    /// Ports of the sandbox that still answer after the stop.
    pub still_open: Vec<u16>,
}

impl DownReport {
    pub fn lines(&self) -> Vec<String> {
        let say = |name: &str, s: Stopped| match s {
            Stopped::Stopped => format!("{name}: stopped"),
            Stopped::NotOurs => {
                format!("{name}: not running any more (its recorded process is gone or is another program now); nothing was signalled")
            }
        };
        let mut out = vec![say("RabbitMQ", self.rabbitmq), say("Redis", self.redis)];
        if !self.still_open.is_empty() {
            let ports: Vec<String> = self.still_open.iter().map(u16::to_string).collect();
            out.push(format!("port(s) {} still answer: another program listens there", ports.join(", ")));
        }
        out
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    Running,
    NotAnswering,
    Crashed,
}

impl Part {
    pub fn ok(self) -> bool {
        self == Part::Running
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Health {
    pub rabbitmq: Part,
    pub redis: Part,
}
