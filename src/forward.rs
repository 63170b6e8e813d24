//! Port-forwards to the cluster's RabbitMQ and Redis, what `kubectl port-forward svc/…` does,
//! built in: each local connection is carried over the Kubernetes API's WebSocket port-forward
//! protocol (kube-rs `Api::<Pod>::portforward`) to a Ready pod behind the service. A watcher
//! follows the pods: when one restarts or its stream breaks, open connections are closed and the
//! next ones go to the new pod, with one log line per outage and one per recovery.
//!
//! Listening is on the loopback addresses only (127.0.0.1 and ::1). A local port already taken (a local RabbitMQ on 5672, say)
//! gives the next free one; the ports in use are recorded in `forwards.json` in the data dir, so
//! the configuration, the lesson commands and the checks of every mqlab on this machine use them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ListParams};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};

/// One forward: a local port for a port of a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// What it carries, as shown to the learner.
    pub name: &'static str,
    pub service: &'static str,
    /// The service's port, also the local port asked for first.
    pub port: u16,
}

/// The three forwards the curriculum opens by hand (Steps 3-5).
pub const TARGETS: [Target; 3] = [
    Target { name: "AMQP", service: "rabbitmq", port: 5672 },
    Target { name: "management", service: "rabbitmq", port: 15672 },
    Target { name: "Redis", service: "redis-master", port: 6379 },
];

/// What a forward is doing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// Looking for a Ready pod behind the service.
    Connecting,
    /// Traffic goes to this pod.
    Up { pod: String },
    /// No pod to forward to right now (why); retried with backoff.
    Down { error: String },
}

/// Counters of one forward, shared with whoever shows them.
#[derive(Debug, Default)]
pub struct Counters {
    /// Bytes from local clients to the pod.
    pub sent: AtomicU64,
    /// Bytes from the pod to local clients.
    pub received: AtomicU64,
    /// Connections open now.
    pub open: AtomicU64,
    /// Connections accepted so far.
    pub connections: AtomicU64,
    /// Times traffic moved to a new pod (or came back) after an outage.
    pub reconnects: AtomicU64,
    /// Connections ended by the local client (it closed its socket).
    pub closed_by_client: AtomicU64,
    /// Connections ended by the pod's side (the service closed it).
    pub closed_by_pod: AtomicU64,
    /// Connections cut by the forward itself: the pod was replaced or went away, or its stream
    /// broke. Each is logged with its cause.
    pub cut: AtomicU64,
}

impl Counters {
    /// Connections that ended so far, whoever ended them.
    pub fn closed(&self) -> u64 {
        self.closed_by_client.load(Ordering::Relaxed) + self.closed_by_pod.load(Ordering::Relaxed) + self.cut.load(Ordering::Relaxed)
    }
}

/// A forward as its owner sees it.
#[derive(Clone, Debug)]
pub struct Forward {
    pub target: Target,
    /// The local port it listens on (127.0.0.1).
    pub local: u16,
    pub state: State,
    pub counters: Arc<Counters>,
}

/// What the forwards report.
#[derive(Clone, Debug)]
pub enum Event {
    /// All listeners are bound (ports recorded in `forwards.json`).
    Listening(Vec<Forward>),
    /// One forward's state changed.
    State { name: &'static str, state: State },
    /// The forwards cannot start (no listener could be bound).
    Failed(String),
    /// Another process already serves the forwards of this data directory (its record); this
    /// one starts none.
    Elsewhere(Recorded),
}

/// The ports recorded while forwards run, read by the configuration of every mqlab.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Recorded {
    pub pid: u32,
    pub namespace: String,
    /// Service port → local port.
    pub ports: BTreeMap<u16, u16>,
}

impl Recorded {
    pub fn file(data_dir: &Path) -> PathBuf {
        data_dir.join("forwards.json")
    }

    /// The lock the serving process holds for as long as it serves (`forwards.lock`).
    pub fn lock_file(data_dir: &Path) -> PathBuf {
        data_dir.join("forwards.lock")
    }

    /// The record, while a process serves it (it holds `forwards.lock`): the lock, not a pid,
    /// tells, so a record left by a process that died (or a reused pid) is never taken for live.
    /// No network call: this runs in every configuration load.
    pub fn load(data_dir: &Path) -> Option<Recorded> {
        let text = crate::files::read_capped(&Self::file(data_dir), 64 * 1024).ok()?;
        let r: Recorded = serde_json::from_str(&text).ok()?;
        held_by_someone(&Self::lock_file(data_dir)).then_some(r)
    }

    /// `url` with its port moved to the forward's local one, when the URL points at this
    /// machine on a forwarded service port; otherwise `url` as it is.
    pub fn apply(&self, url: &str) -> String {
        let Ok(mut u) = url::Url::parse(url) else { return url.to_string() };
        let local_host = matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
        let Some(port) = u.port_or_known_default() else { return url.to_string() };
        match self.ports.get(&port) {
            Some(&local) if local_host && local != port => {
                let _ = u.set_port(Some(local));
                u.to_string()
            }
            _ => url.to_string(),
        }
    }

    /// Whether `url` (on this machine) reaches the cluster through these forwards: its port is
    /// one they listen on.
    pub fn carries(&self, url: &str) -> bool {
        let Ok(u) = url::Url::parse(url) else { return false };
        let local_host = matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
        local_host && u.port_or_known_default().is_some_and(|p| self.ports.values().any(|l| *l == p))
    }

    fn save(&self, data_dir: &Path) -> std::io::Result<()> {
        crate::files::write_atomic(&Self::file(data_dir), &serde_json::to_vec_pretty(self).unwrap_or_default())
    }
}

/// Whether another open of `path` holds its lock (a serving process). A missing file is no.
fn held_by_someone(path: &Path) -> bool {
    let Ok(f) = std::fs::OpenOptions::new().read(true).open(path) else { return false };
    match f.try_lock() {
        Ok(()) => {
            let _ = f.unlock();
            false
        }
        Err(std::fs::TryLockError::WouldBlock) => true,
        Err(std::fs::TryLockError::Error(_)) => false,
    }
}

/// The right to serve the forwards of a data directory, held until dropped.
struct Serving {
    lock: std::fs::File,
    data_dir: PathBuf,
}

impl Serving {
    /// Takes the lock, or says who holds it.
    fn take(data_dir: &Path) -> Result<Serving, Option<Recorded>> {
        if let Err(e) = crate::files::private_dir(data_dir) {
            warn!("forwards: cannot create {}: {e}", data_dir.display());
        }
        let lock = match std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(Recorded::lock_file(data_dir)) {
            Ok(f) => f,
            Err(e) => {
                warn!("forwards: cannot open {}: {e}", Recorded::lock_file(data_dir).display());
                return Err(None);
            }
        };
        match lock.try_lock() {
            Ok(()) => Ok(Serving { lock, data_dir: data_dir.to_path_buf() }),
            Err(_) => {
                let text = crate::files::read_capped(&Recorded::file(data_dir), 64 * 1024).ok();
                Err(text.and_then(|t| serde_json::from_str(&t).ok()))
            }
        }
    }
}

impl Drop for Serving {
    /// The record goes first, then the lock: nobody sees a record without its server.
    fn drop(&mut self) {
        let _ = std::fs::remove_file(Recorded::file(&self.data_dir));
        let _ = self.lock.unlock();
    }
}

/// Binds `wanted` on both loopback addresses (as `kubectl port-forward` does: "localhost" may
/// resolve to either), or the next port free on both. Without IPv6, 127.0.0.1 alone.
pub async fn bind_free(wanted: u16) -> std::io::Result<Vec<TcpListener>> {
    let mut last = None;
    for p in (wanted..=wanted.saturating_add(100)).filter(|p| *p != 0) {
        match bind_loopbacks(p).await {
            Ok(ls) => return Ok(ls),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no port to try")))
}

async fn bind_loopbacks(port: u16) -> std::io::Result<Vec<TcpListener>> {
    let v4 = TcpListener::bind(("127.0.0.1", port)).await?;
    match TcpListener::bind(("::1", port)).await {
        Ok(v6) => Ok(vec![v4, v6]),
        // No IPv6 loopback on this machine: 127.0.0.1 is all "localhost" can mean.
        Err(e) if matches!(e.kind(), std::io::ErrorKind::AddrNotAvailable | std::io::ErrorKind::Unsupported) => Ok(vec![v4]),
        Err(e)
            if [rustix::io::Errno::AFNOSUPPORT, rustix::io::Errno::ADDRNOTAVAIL]
                .iter()
                .any(|n| e.raw_os_error() == Some(n.raw_os_error())) =>
        {
            Ok(vec![v4])
        }
        Err(e) => Err(e),
    }
}

/// Runs the forwards until `stop` turns true (or its sender is dropped); the ports are recorded
/// in `data_dir` meanwhile.
pub async fn run(
    client: kube::Client,
    namespace: String,
    data_dir: PathBuf,
    events: mpsc::UnboundedSender<Event>,
    mut stop: watch::Receiver<bool>,
) {
    let serving = match Serving::take(&data_dir) {
        Ok(s) => s,
        Err(Some(other)) => {
            info!("forwards: already served by process {} (namespace {}); not starting a second set", other.pid, other.namespace);
            let _ = events.send(Event::Elsewhere(other));
            return;
        }
        Err(None) => {
            let _ = events.send(Event::Failed(format!(
                "another mqlab is starting port-forwards for {} (its lock is held): wait a moment",
                data_dir.display()
            )));
            return;
        }
    };
    let mut forwards = vec![];
    let mut listeners = vec![];
    for t in TARGETS {
        match bind_free(t.port).await {
            Ok(l) => {
                let local = l[0].local_addr().map(|a| a.port()).unwrap_or(0);
                if local != t.port {
                    warn!("forward {}: 127.0.0.1:{} is taken (a local service?), listening on 127.0.0.1:{local} instead", t.name, t.port);
                }
                forwards.push(Forward { target: t, local, state: State::Connecting, counters: Arc::default() });
                listeners.push(l);
            }
            Err(e) => {
                let _ = events.send(Event::Failed(format!("cannot listen for {} on 127.0.0.1: {e}", t.name)));
                return;
            }
        }
    }
    let record = Recorded {
        pid: std::process::id(),
        namespace: namespace.clone(),
        ports: forwards.iter().map(|f| (f.target.port, f.local)).collect(),
    };
    if let Err(e) = record.save(&data_dir) {
        warn!("forwards: cannot record the ports in {}: {e}", data_dir.display());
    }
    for f in &forwards {
        info!("forward {}: 127.0.0.1:{} → svc/{} port {} (namespace {namespace})", f.target.name, f.local, f.target.service, f.target.port);
    }
    let _ = events.send(Event::Listening(forwards.clone()));
    let (quit, quitting) = watch::channel(false);
    let mut set = JoinSet::new();
    for (f, l) in forwards.into_iter().zip(listeners) {
        set.spawn(serve(client.clone(), namespace.clone(), f, l, events.clone(), quitting.clone()));
    }
    loop {
        tokio::select! {
            changed = stop.changed() => if changed.is_err() || *stop.borrow() { break },
            done = set.join_next() => if done.is_none() { break },
        }
    }
    // Each forward closes its listeners and connections before this returns.
    let _ = quit.send(true);
    while set.join_next().await.is_some() {}
    drop(serving);
    info!("forwards stopped");
}

/// Where a service's port leads: a Ready pod and its container port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub pod: String,
    pub uid: String,
    pub port: u16,
}

/// Finds a Ready pod behind `target.service` (its selector) and the container port its
/// `targetPort` names.
pub async fn resolve(client: &kube::Client, namespace: &str, target: &Target) -> Result<Endpoint, String> {
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let svc = services.get(target.service).await.map_err(|e| match &e {
        kube::Error::Api(s) if s.code == 404 => format!("service {} not found in namespace {namespace} (is it deployed?)", target.service),
        _ => format!("cannot read service {}: {}", target.service, crate::redact::error_chain(&e)),
    })?;
    let spec = svc.spec.unwrap_or_default();
    let selector = spec.selector.unwrap_or_default();
    if selector.is_empty() {
        return Err(format!("service {} has no selector", target.service));
    }
    let sport = spec
        .ports
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.port == i32::from(target.port))
        .ok_or_else(|| format!("service {} has no port {}", target.service, target.port))?;
    let labels: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let list = pods
        .list(&ListParams::default().labels(&labels.join(",")))
        .await
        .map_err(|e| format!("cannot list the pods of {}: {}", target.service, crate::redact::error_chain(&e)))?;
    let mut ready: Vec<Pod> = list.items.into_iter().filter(crate::pods::serving).collect();
    ready.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let pod = ready.into_iter().next().ok_or_else(|| format!("no Ready pod behind service {} yet", target.service))?;
    let port = match sport.target_port {
        None => target.port,
        Some(IntOrString::Int(p)) => u16::try_from(p).map_err(|_| format!("service {} targets port {p}", target.service))?,
        Some(IntOrString::String(name)) => pod
            .spec
            .as_ref()
            .into_iter()
            .flat_map(|s| s.containers.iter())
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or_else(|| format!("no container port named {name:?} in the pods of {}", target.service))?,
    };
    Ok(Endpoint { pod: pod.metadata.name.unwrap_or_default(), uid: pod.metadata.uid.unwrap_or_default(), port })
}

/// The delay before retry `n` (from 0) after an outage: 0.25 s, 0.5 s, 1 s, 2 s, then 4 s.
pub fn backoff(n: u32) -> Duration {
    Duration::from_millis(250u64 << n.min(4))
}

/// One forward: the watcher keeps the endpoint, the listeners carry connections to it.
async fn serve(
    client: kube::Client,
    namespace: String,
    f: Forward,
    listeners: Vec<TcpListener>,
    events: mpsc::UnboundedSender<Event>,
    mut quit: watch::Receiver<bool>,
) {
    let (endpoint_tx, endpoint_rx) = watch::channel::<Option<Endpoint>>(None);
    let (broken_tx, broken_rx) = mpsc::unbounded_channel::<String>();
    let mut tasks = JoinSet::new();
    tasks.spawn(watch_endpoint(client.clone(), namespace.clone(), f.clone(), endpoint_tx, broken_rx, events));
    let (conn_tx, mut conns) = mpsc::unbounded_channel::<TcpStream>();
    for l in listeners {
        let conn_tx = conn_tx.clone();
        tasks.spawn(async move {
            while let Ok((sock, _)) = l.accept().await {
                if conn_tx.send(sock).is_err() {
                    return;
                }
            }
        });
    }
    loop {
        tokio::select! {
            _ = quit.changed() => break,
            accepted = conns.recv() => {
                let Some(sock) = accepted else { break };
                f.counters.connections.fetch_add(1, Ordering::Relaxed);
                let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
                tasks.spawn(carry(pods, sock, endpoint_rx.clone(), f.counters.clone(), broken_tx.clone(), f.target.name));
            }
            Some(_) = tasks.join_next() => {}
        }
    }
    tasks.shutdown().await;
}

/// Follows the pod behind the service: checks it every 5 s while up, retries with backoff
/// while down, and reacts at once when a connection's stream breaks.
async fn watch_endpoint(
    client: kube::Client,
    namespace: String,
    f: Forward,
    endpoint: watch::Sender<Option<Endpoint>>,
    mut broken: mpsc::UnboundedReceiver<String>,
    events: mpsc::UnboundedSender<Event>,
) {
    let name = f.target.name;
    let mut outage: Option<(Instant, u32)> = None;
    let mut last_error = String::new();
    loop {
        // The client carries streams, so it has no read timeout of its own: bound each look.
        let found = match tokio::time::timeout(Duration::from_secs(5), resolve(&client, &namespace, &f.target)).await {
            Ok(found) => found,
            Err(_) => Err("the Kubernetes API did not answer within 5 s".to_string()),
        };
        let current = endpoint.borrow().clone();
        match found {
            Ok(ep) => {
                if current.as_ref() != Some(&ep) {
                    if let Some((since, _)) = outage.take() {
                        f.counters.reconnects.fetch_add(1, Ordering::Relaxed);
                        info!("forward {name}: traffic flows again, to pod {} (after {:.1} s)", ep.pod, since.elapsed().as_secs_f64());
                    } else if let Some(old) = &current {
                        f.counters.reconnects.fetch_add(1, Ordering::Relaxed);
                        info!("forward {name}: pod {} replaced by {}; open connections closed", old.pod, ep.pod);
                    } else {
                        info!("forward {name}: 127.0.0.1:{} → pod {} port {}", f.local, ep.pod, ep.port);
                    }
                    let _ = events.send(Event::State { name, state: State::Up { pod: ep.pod.clone() } });
                    endpoint.send_replace(Some(ep));
                }
            }
            Err(e) => {
                if current.is_some() || outage.is_none() {
                    let since = outage.map(|o| o.0).unwrap_or_else(Instant::now);
                    if outage.is_none() || e != last_error {
                        warn!("forward {name}: {e}; retrying");
                    }
                    outage = Some((since, outage.map(|o| o.1).unwrap_or(0)));
                    let _ = events.send(Event::State { name, state: State::Down { error: e.clone() } });
                    endpoint.send_replace(None);
                }
                last_error = e;
            }
        }
        let wait = match &mut outage {
            Some((_, n)) => {
                let d = backoff(*n);
                *n += 1;
                d
            }
            // While up, a look every 5 s; a broken stream brings one at once.
            None => Duration::from_secs(5),
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            Some(why) = broken.recv() => {
                // A stream broke: look again at once (the pod may be gone).
                if outage.is_none() {
                    warn!("forward {name}: stream broken ({why}); reconnecting");
                    outage = Some((Instant::now(), 0));
                    last_error = why;
                    let _ = events.send(Event::State { name, state: State::Connecting });
                    endpoint.send_replace(None);
                }
                while broken.try_recv().is_ok() {}
            }
        }
    }
}

/// Why a forwarded connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Closed {
    /// The local client closed its socket (or failed reading/writing it).
    ByClient(String),
    /// The service in the pod closed the connection.
    ByPod(String),
    /// The forward cut it: the pod was replaced or went away, or its stream reported an error.
    Cut(String),
}

/// How one direction of a connection ended.
#[derive(Clone, Debug)]
enum PumpEnd {
    /// End of file from the reader.
    Eof,
    /// The reader failed.
    ReadError(String),
    /// The writer failed.
    WriteError(String),
}

/// Carries one local connection to the current pod; closes it when the pod changes. Every close
/// is counted and logged with its cause.
async fn carry(
    pods: Api<Pod>,
    mut sock: TcpStream,
    mut endpoint: watch::Receiver<Option<Endpoint>>,
    counters: Arc<Counters>,
    broken: mpsc::UnboundedSender<String>,
    name: &'static str,
) {
    let peer = sock.peer_addr().map(|a| a.to_string()).unwrap_or_else(|_| "?".into());
    // Wait briefly for a pod (a client reconnecting during a restart), then give up cleanly.
    let found = match tokio::time::timeout(Duration::from_secs(10), endpoint.wait_for(Option::is_some)).await {
        Ok(Ok(ep)) => ep.clone(),
        _ => None,
    };
    let Some(ep) = found else {
        let _ = sock.shutdown().await;
        counters.cut.fetch_add(1, Ordering::Relaxed);
        warn!("forward {name}: connection from {peer} closed: no Ready pod within 10 s");
        return;
    };
    let mut pf = match pods.portforward(&ep.pod, &[ep.port]).await {
        Ok(pf) => pf,
        Err(e) => {
            let why = format!("pod {}: {}", ep.pod, crate::redact::error_chain(&e));
            warn!("forward {name}: connection from {peer} closed: the stream to {why}");
            let _ = broken.send(why);
            let _ = sock.shutdown().await;
            counters.cut.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let Some(upstream) = pf.take_stream(ep.port) else {
        counters.cut.fetch_add(1, Ordering::Relaxed);
        warn!("forward {name}: connection from {peer} closed: pod {} gave no stream for port {}", ep.pod, ep.port);
        return;
    };
    let error = pf.take_error(ep.port);
    counters.open.fetch_add(1, Ordering::Relaxed);
    let opened = Instant::now();
    let (mut lr, mut lw) = sock.split();
    let (mut ur, mut uw) = tokio::io::split(upstream);
    // Which side ended first tells who closed the connection.
    let first: std::sync::Mutex<Option<Closed>> = std::sync::Mutex::new(None);
    let note = |c: Closed| {
        let mut f = first.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if f.is_none() {
            *f = Some(c);
        }
    };
    let up = async {
        let end = pump(&mut lr, &mut uw, &counters.sent).await;
        note(match end {
            PumpEnd::Eof => Closed::ByClient("the client closed".into()),
            PumpEnd::ReadError(e) => Closed::ByClient(format!("reading from the client failed: {e}")),
            PumpEnd::WriteError(e) => Closed::Cut(format!("writing to the pod's stream failed: {e}")),
        });
    };
    let down = async {
        let end = pump(&mut ur, &mut lw, &counters.received).await;
        note(match end {
            PumpEnd::Eof => Closed::ByPod("the service in the pod closed".into()),
            PumpEnd::ReadError(e) => Closed::Cut(format!("the pod's stream failed: {e}")),
            PumpEnd::WriteError(e) => Closed::ByClient(format!("writing to the client failed: {e}")),
        });
    };
    let moved = async {
        // The pod changed or went away: this connection ends.
        let _ = endpoint.wait_for(|now| now.as_ref() != Some(&ep)).await.map(|_| ());
    };
    let pod_error = async {
        match error {
            Some(e) => e.await,
            None => std::future::pending().await,
        }
    };
    let cause = tokio::select! {
        _ = async { tokio::join!(up, down) } => {
            first.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take().unwrap_or_else(|| Closed::ByClient("closed".into()))
        }
        _ = moved => Closed::Cut(format!("pod {} was replaced or went away", ep.pod)),
        Some(e) = pod_error => {
            let _ = broken.send(format!("pod {}: {e}", ep.pod));
            Closed::Cut(format!("pod {} reported: {e}", ep.pod))
        }
    };
    let _ = lw.shutdown().await;
    pf.abort();
    counters.open.fetch_sub(1, Ordering::Relaxed);
    let lived = opened.elapsed().as_secs_f64();
    match &cause {
        Closed::ByClient(why) => {
            counters.closed_by_client.fetch_add(1, Ordering::Relaxed);
            info!("forward {name}: connection from {peer} to pod {} closed after {lived:.1} s: {why}", ep.pod);
        }
        Closed::ByPod(why) => {
            counters.closed_by_pod.fetch_add(1, Ordering::Relaxed);
            info!("forward {name}: connection from {peer} to pod {} closed after {lived:.1} s: {why}", ep.pod);
        }
        Closed::Cut(why) => {
            counters.cut.fetch_add(1, Ordering::Relaxed);
            warn!("forward {name}: connection from {peer} cut after {lived:.1} s: {why}");
        }
    }
}

/// Copies one direction until EOF or an error, counting bytes; shuts the writer down at the end.
async fn pump<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(r: &mut R, w: &mut W, count: &AtomicU64) -> PumpEnd {
    let mut buf = vec![0u8; 32 * 1024];
    let end = loop {
        match r.read(&mut buf).await {
            Ok(0) => break PumpEnd::Eof,
            Err(e) => break PumpEnd::ReadError(e.to_string()),
            Ok(n) => {
                if let Err(e) = w.write_all(&buf[..n]).await {
                    break PumpEnd::WriteError(e.to_string());
                }
                count.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    };
    let _ = w.shutdown().await;
    end
}
