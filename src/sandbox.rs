//! Private RabbitMQ and Redis instances for learners without a cluster (the local track), and for
//! tests that must stop or restart a broker. Each instance runs in its own process group with its
//! node name, ports, data and logs under the given directory.

use std::ffi::OsStr;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::process::{self, Seen, Signal, alive, signal_group};
use crate::redact::mask_url;

pub const USER: &str = "admin";
pub const PASS: &str = "admin123";

/// Where the programs are.
#[derive(Clone, Debug)]
pub struct Programs {
    pub rabbitmq_server: PathBuf,
    pub redis_server: PathBuf,
}

/// What `find_programs` could not find, each with where it looked.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.message())]
pub struct MissingPrograms {
    /// One per missing program: RabbitMQ first.
    pub missing: Vec<Missing>,
}

/// A program that is not there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missing {
    /// What it is, e.g. "Redis (redis-server)".
    pub what: &'static str,
    /// Debian's package and Homebrew's formula that bring it.
    pub apt: &'static str,
    pub brew: &'static str,
    /// Where it was looked for, in order; or the variable that named a path that is no file.
    pub looked: Looked,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Looked {
    /// `MQLAB_RABBITMQ_SERVER` or `MQLAB_REDIS_SERVER` named this path.
    Named { var: &'static str, path: PathBuf },
    /// These places: on PATH and Homebrew's prefixes.
    In(Vec<PathBuf>),
}

impl MissingPrograms {
    pub fn message(&self) -> String {
        let what: Vec<&str> = self.missing.iter().map(|m| m.what).collect();
        let verb = if what.len() > 1 { "are" } else { "is" };
        let apt: Vec<&str> = self.missing.iter().map(|m| m.apt).collect();
        let brew: Vec<&str> = self.missing.iter().map(|m| m.brew).collect();
        let mut out = format!(
            "{} {verb} not installed. Install with:\n  Debian/Ubuntu: sudo apt install {}\n  macOS:         brew install {}",
            what.join(" and "),
            apt.join(" "),
            brew.join(" ")
        );
        for m in &self.missing {
            match &m.looked {
                Looked::Named { var, path } => out.push_str(&format!("\n{var} names {}, which is not a file", path.display())),
                Looked::In(places) => {
                    let dirs: Vec<String> = places.iter().filter_map(|p| p.parent()).map(|d| d.display().to_string()).collect();
                    let name = places.first().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
                    out.push_str(&format!(
                        "\nno {name} in {}",
                        if dirs.is_empty() { "PATH (it is empty)".into() } else { dirs.join(", ") }
                    ));
                }
            }
        }
        out
    }
}

/// Homebrew's prefixes: `HOMEBREW_PREFIX` when set, Apple Silicon's /opt/homebrew, Intel's
/// /usr/local.
fn homebrew_prefixes(homebrew_prefix: Option<&OsStr>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = homebrew_prefix.filter(|p| !p.is_empty()).map(PathBuf::from).into_iter().collect();
    for p in ["/opt/homebrew", "/usr/local"] {
        if !out.iter().any(|o| o == Path::new(p)) {
            out.push(PathBuf::from(p));
        }
    }
    out
}

/// Where `name` may be, in order: each PATH entry, then for each Homebrew prefix its linked
/// `sbin` and `bin` (Homebrew links rabbitmq-server into sbin, often not on PATH) and the
/// formula's own `opt/<formula>/{sbin,bin}` (there even when it is not linked).
pub fn candidates(name: &str, formula: &str, path: Option<&OsStr>, homebrew_prefix: Option<&OsStr>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = path.map(|p| std::env::split_paths(p).filter(|d| !d.as_os_str().is_empty()).collect()).unwrap_or_default();
    for prefix in homebrew_prefixes(homebrew_prefix) {
        let opt = prefix.join("opt").join(formula);
        out.extend([prefix.join("sbin"), prefix.join("bin"), opt.join("sbin"), opt.join("bin")]);
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|d| seen.insert(d.clone()));
    out.into_iter().map(|d| d.join(name)).collect()
}

/// Finds rabbitmq-server (on Debian the real script, not the wrapper that switches user) and
/// redis-server: on PATH, then in Homebrew's prefixes (Apple Silicon and Intel).
/// `MQLAB_RABBITMQ_SERVER` and `MQLAB_REDIS_SERVER` name other programs.
pub fn find_programs() -> Result<Programs, MissingPrograms> {
    let path = std::env::var_os("PATH");
    let brew = std::env::var_os("HOMEBREW_PREFIX");
    let find = |var: &'static str, name: &str, formula: &str, first: Option<PathBuf>| -> Result<PathBuf, Looked> {
        if let Some(p) = std::env::var_os(var).map(PathBuf::from) {
            return if p.is_file() { Ok(p) } else { Err(Looked::Named { var, path: p }) };
        }
        let places = candidates(name, formula, path.as_deref(), brew.as_deref());
        first.or_else(|| places.iter().find(|p| p.is_file()).cloned()).ok_or(Looked::In(places))
    };
    let rabbit = find("MQLAB_RABBITMQ_SERVER", "rabbitmq-server", "rabbitmq", debian_rabbit());
    let redis = find("MQLAB_REDIS_SERVER", "redis-server", "redis", None);
    match (rabbit, redis) {
        (Ok(rabbitmq_server), Ok(redis_server)) => Ok(Programs { rabbitmq_server, redis_server }),
        (rabbit, redis) => {
            let mut missing = vec![];
            if let Err(looked) = rabbit {
                missing.push(Missing { what: "RabbitMQ (rabbitmq-server)", apt: "rabbitmq-server", brew: "rabbitmq", looked });
            }
            if let Err(looked) = redis {
                missing.push(Missing { what: "Redis (redis-server)", apt: "redis-server", brew: "redis", looked });
            }
            Err(MissingPrograms { missing })
        }
    }
}

/// Debian's real rabbitmq-server script (/usr/sbin/rabbitmq-server switches to the rabbitmq user).
fn debian_rabbit() -> Option<PathBuf> {
    let entries = std::fs::read_dir("/usr/lib/rabbitmq/lib").ok()?;
    let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    dirs.sort();
    dirs.into_iter().rev().map(|d| d.join("sbin/rabbitmq-server")).find(|p| p.is_file())
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

async fn answers(port: u16) -> bool {
    tokio::time::timeout(Duration::from_millis(500), tokio::net::TcpStream::connect(("127.0.0.1", port))).await.is_ok_and(|r| r.is_ok())
}

/// A RabbitMQ node of our own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rabbit {
    pub pid: u32,
    /// When the process started (clock ticks after boot from /proc on Linux, seconds since the
    /// epoch on macOS): with the process group and working directory, what tells our process from
    /// another that got the same pid later.
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
            started_at: process::start_time(child.id()),
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
        signal_group(self.pid, Signal::TERM);
        wait_gone(self.pid, &[self.amqp_port, self.dist_port], Duration::from_secs(30)).await;
        if is_ours(self.pid, self.started_at, &self.dir) {
            signal_group(self.pid, Signal::KILL);
        }
        Stopped::Stopped
    }

    /// Kills the node at once (a crash).
    pub fn kill(&self) {
        if is_ours(self.pid, self.started_at, &self.dir) {
            signal_group(self.pid, Signal::KILL);
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
        let r = Redis { pid: child.id(), started_at: process::start_time(child.id()), port, dir: dir.to_path_buf() };
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
        signal_group(self.pid, Signal::TERM);
        wait_gone(self.pid, &[self.port], Duration::from_secs(10)).await;
        if is_ours(self.pid, self.started_at, &self.dir) {
            signal_group(self.pid, Signal::KILL);
        }
        Stopped::Stopped
    }

    pub fn kill(&self) {
        if is_ours(self.pid, self.started_at, &self.dir) {
            signal_group(self.pid, Signal::KILL);
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

/// Whether `pid` is still the process this sandbox started: never pid 0 or 1; the start time
/// recorded then; leading its own process group (the one we made for it); working in its dir.
pub fn is_ours(pid: u32, started_at: Option<u64>, dir: &Path) -> bool {
    if pid <= 1 {
        return false;
    }
    owns(pid, started_at, std::fs::canonicalize(dir).ok().as_deref(), process::seen(pid).as_ref())
}

/// The ownership rule itself, on what was recorded at the start (`pid`, `started_at`, the
/// canonical `dir`) and what the process with that pid is now (`now`, None when none runs):
/// the same start time, leading its own process group, and working in `dir` wherever the
/// platform tells a process's working directory (on Linux always; where it does not, the start
/// time and the group decide). Then the health check asks its ports.
pub fn owns(pid: u32, started_at: Option<u64>, dir: Option<&Path>, now: Option<&Seen>) -> bool {
    let (Some(recorded), Some(now)) = (started_at, now) else { return false };
    if pid <= 1 || now.started_at != recorded || now.pgrp != pid {
        return false;
    }
    match &now.cwd {
        Some(cwd) => dir == Some(cwd.as_path()),
        None => true,
    }
}

async fn wait_gone(pid: u32, ports: &[u16], limit: Duration) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        // Reap it if it is our child, so it does not linger as a zombie.
        process::reap(pid);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(started_at: u64, pgrp: u32, cwd: Option<&str>) -> Seen {
        Seen { started_at, pgrp, cwd: cwd.map(PathBuf::from) }
    }

    fn dir() -> Option<&'static Path> {
        Some(Path::new("/data/sandbox/redis"))
    }

    #[test]
    fn the_started_process_is_ours() {
        assert!(owns(4242, Some(777), dir(), Some(&seen(777, 4242, Some("/data/sandbox/redis")))));
    }

    #[test]
    fn a_later_process_with_the_same_pid_is_not_ours() {
        // Another start time: the pid was reused (after a reboot, or wrapped around).
        assert!(!owns(4242, Some(777), dir(), Some(&seen(778, 4242, Some("/data/sandbox/redis")))));
        // Not leading its own group: not the group the sandbox made.
        assert!(!owns(4242, Some(777), dir(), Some(&seen(777, 4000, Some("/data/sandbox/redis")))));
        // Working elsewhere.
        assert!(!owns(4242, Some(777), dir(), Some(&seen(777, 4242, Some("/home/me")))));
    }

    #[test]
    fn nothing_running_or_nothing_recorded_is_not_ours() {
        assert!(!owns(4242, Some(777), dir(), None));
        assert!(!owns(4242, None, dir(), Some(&seen(777, 4242, Some("/data/sandbox/redis")))));
        // The sandbox's folder is gone: whatever runs there now is not ours.
        assert!(!owns(4242, Some(777), None, Some(&seen(777, 4242, Some("/data/sandbox/redis")))));
    }

    #[test]
    fn pid_0_and_1_are_never_ours_whatever_a_record_says() {
        for pid in [0, 1] {
            assert!(!owns(pid, Some(5), dir(), Some(&seen(5, pid, Some("/data/sandbox/redis")))));
            assert!(!owns(pid, Some(5), dir(), Some(&seen(5, pid, None))));
            assert!(!is_ours(pid, Some(5), Path::new("/")));
        }
    }

    /// Where the platform does not tell a process's working directory, the start time and the
    /// group decide.
    #[test]
    fn without_a_working_directory_start_time_and_group_decide() {
        assert!(owns(4242, Some(777), dir(), Some(&seen(777, 4242, None))));
        assert!(!owns(4242, Some(777), dir(), Some(&seen(776, 4242, None))));
        assert!(!owns(4242, Some(777), dir(), Some(&seen(777, 1, None))));
    }

    #[test]
    fn programs_are_looked_for_on_path_then_in_both_homebrew_prefixes() {
        let c = candidates("rabbitmq-server", "rabbitmq", Some(OsStr::new("/usr/bin:/opt/homebrew/bin")), None);
        let want: Vec<PathBuf> = [
            "/usr/bin",
            "/opt/homebrew/bin",
            "/opt/homebrew/sbin",
            "/opt/homebrew/opt/rabbitmq/sbin",
            "/opt/homebrew/opt/rabbitmq/bin",
            "/usr/local/sbin",
            "/usr/local/bin",
            "/usr/local/opt/rabbitmq/sbin",
            "/usr/local/opt/rabbitmq/bin",
        ]
        .iter()
        .map(|d| Path::new(d).join("rabbitmq-server"))
        .collect();
        assert_eq!(c, want);
        // HOMEBREW_PREFIX first among the prefixes; an empty PATH adds nothing.
        let c = candidates("redis-server", "redis", Some(OsStr::new("")), Some(OsStr::new("/home/linuxbrew/.linuxbrew")));
        assert_eq!(c[0], Path::new("/home/linuxbrew/.linuxbrew/sbin/redis-server"));
        assert_eq!(c[3], Path::new("/home/linuxbrew/.linuxbrew/opt/redis/bin/redis-server"));
        assert_eq!(c[4], Path::new("/opt/homebrew/sbin/redis-server"));
        assert_eq!(c.len(), 12);
    }

    #[test]
    fn a_missing_program_is_named_with_its_install_and_where_it_was_looked_for() {
        let m = MissingPrograms {
            missing: vec![Missing {
                what: "Redis (redis-server)",
                apt: "redis-server",
                brew: "redis",
                looked: Looked::In(candidates("redis-server", "redis", Some(OsStr::new("/usr/bin")), None)),
            }],
        };
        let text = m.to_string();
        assert!(text.starts_with("Redis (redis-server) is not installed. Install with:\n"), "{text}");
        assert!(text.contains("sudo apt install redis-server\n") && text.contains("brew install redis\n"), "{text}");
        assert!(text.ends_with("no redis-server in /usr/bin, /opt/homebrew/sbin, /opt/homebrew/bin, /opt/homebrew/opt/redis/sbin, /opt/homebrew/opt/redis/bin, /usr/local/sbin, /usr/local/bin, /usr/local/opt/redis/sbin, /usr/local/opt/redis/bin"), "{text}");
        let both = MissingPrograms {
            missing: vec![
                Missing {
                    what: "RabbitMQ (rabbitmq-server)",
                    apt: "rabbitmq-server",
                    brew: "rabbitmq",
                    looked: Looked::Named { var: "MQLAB_RABBITMQ_SERVER", path: "/nowhere/rabbitmq-server".into() },
                },
                m.missing[0].clone(),
            ],
        };
        let text = both.to_string();
        assert!(text.starts_with("RabbitMQ (rabbitmq-server) and Redis (redis-server) are not installed"), "{text}");
        assert!(text.contains("sudo apt install rabbitmq-server redis-server") && text.contains("brew install rabbitmq redis"), "{text}");
        assert!(text.contains("\nMQLAB_RABBITMQ_SERVER names /nowhere/rabbitmq-server, which is not a file\n"), "{text}");
    }
}
