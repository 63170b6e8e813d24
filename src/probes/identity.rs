//! On the cluster track, whether what answers on this machine's ports is the cluster's own
//! RabbitMQ and Redis. It is when mqlab's port-forwards carry the port (in this process or in
//! `mqlab forward` elsewhere: they hold `forwards.lock` while they serve), or when what answers
//! names the chart's pod itself (a `kubectl port-forward` of the learner's): RabbitMQ's node in
//! its AMQP greeting or its management overview, Redis's Bitnami build in `INFO server`. A
//! RabbitMQ or Redis of the laptop answering on the same port is never taken for the cluster's.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Outcome, Probes, host_port};
use crate::config::Track;
use crate::forward::Recorded;

/// What answers on a service's local port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// The cluster's service; how that is known.
    Cluster(String),
    /// Something else (a local server); what it says it is.
    Other(String),
    /// Nothing could be learned (it does not answer); the check's own failure says why.
    Unknown,
}

/// The services whose identity the checks ask about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Amqp,
    Management,
    Redis,
}

impl Service {
    fn url(self, p: &Probes) -> &str {
        match self {
            Service::Amqp => &p.cfg.broker_url,
            Service::Management => &p.cfg.management_url,
            Service::Redis => &p.cfg.result_backend,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Service::Amqp => "RabbitMQ (AMQP)",
            Service::Management => "the management API",
            Service::Redis => "Redis",
        }
    }

    fn svc(self) -> (&'static str, u16) {
        match self {
            Service::Amqp => ("rabbitmq", 5672),
            Service::Management => ("rabbitmq", 15672),
            Service::Redis => ("redis-master", 6379),
        }
    }
}

/// The port-forwards serving `url` for this configuration's namespace, if any.
pub fn forwarded(p: &Probes, url: &str) -> Option<Recorded> {
    Recorded::load(&p.cfg.data_dir).filter(|r| r.namespace == p.cfg.namespace && r.carries(url))
}

fn through(r: &Recorded) -> String {
    if r.pid == std::process::id() {
        "through this app's port-forward to the cluster".to_string()
    } else {
        format!("through mqlab's port-forward (pid {}) to the cluster", r.pid)
    }
}

/// Who answers for `service`.
pub async fn of(p: &Probes, service: Service) -> Identity {
    let url = service.url(p);
    if let Some(r) = forwarded(p, url) {
        return Identity::Cluster(through(&r));
    }
    match service {
        Service::Amqp => match amqp_node(url).await {
            Some(node) if super::rabbit::is_cluster_node(&node) => Identity::Cluster(format!("answers as the cluster's node {node}")),
            Some(node) => Identity::Other(format!("answers as node {node}")),
            None => Identity::Unknown,
        },
        Service::Management => match super::rabbit::raw_overview(p).await {
            Ok(v) => match v.get("node").and_then(|n| n.as_str()) {
                Some(node) if super::rabbit::is_cluster_node(node) => Identity::Cluster(format!("answers as the cluster's node {node}")),
                Some(node) => Identity::Other(format!("answers as node {node}")),
                None => Identity::Unknown,
            },
            Err(_) => Identity::Unknown,
        },
        Service::Redis => match redis_info(url).await {
            Some(info) => redis_identity(&info),
            None => Identity::Unknown,
        },
    }
}

/// Redis's identity from an `INFO server` already read (the port-forwards first).
pub fn redis_identity_or_forward(p: &Probes, info: &str) -> Identity {
    match forwarded(p, &p.cfg.result_backend) {
        Some(r) => Identity::Cluster(through(&r)),
        None => redis_identity(info),
    }
}

/// Redis's `INFO server`, read as who it is: the chart's image runs Bitnami's build
/// (`executable:/opt/bitnami/redis/bin/redis-server`); a laptop's Redis runs from elsewhere.
pub fn redis_identity(info: &str) -> Identity {
    let field = |k: &str| info.lines().find_map(|l| l.trim().strip_prefix(k).and_then(|v| v.strip_prefix(':'))).unwrap_or("").trim();
    let (version, exe, config) = (field("redis_version"), field("executable"), field("config_file"));
    let bitnami = exe.starts_with("/opt/bitnami/") || config.starts_with("/opt/bitnami/");
    let exe_shown = if exe.is_empty() { "an unknown executable".to_string() } else { exe.to_string() };
    if bitnami {
        Identity::Cluster(format!("answers as the chart's Redis {version} ({exe_shown})"))
    } else {
        Identity::Other(format!("answers as Redis {version} run from {exe_shown}, not the chart's image"))
    }
}

async fn redis_info(url: &str) -> Option<String> {
    let client = redis::Client::open(url).ok()?;
    let cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)));
    let mut conn = client.get_multiplexed_async_connection_with_config(&cfg).await.ok()?;
    redis::cmd("INFO").arg("server").query_async(&mut conn).await.ok()
}

/// The node RabbitMQ names in its AMQP greeting (`Connection.Start`'s `cluster_name`, which is
/// the node's name unless set otherwise), read before any login.
pub async fn amqp_node(url: &str) -> Option<String> {
    use lapin::protocol::{AMQPClass, connection::AMQPMethod};
    let (host, port) = host_port(url, 5672);
    let read = async {
        let mut sock = tokio::net::TcpStream::connect((host.as_str(), port)).await.ok()?;
        sock.write_all(b"AMQP\x00\x00\x09\x01").await.ok()?;
        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0u8; 4096];
        loop {
            let n = sock.read(&mut chunk).await.ok()?;
            if n == 0 || buf.len() > 64 * 1024 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
            match amq_protocol::frame::parsing::parse_frame(buf.as_slice()) {
                Ok((_, amq_protocol::frame::AMQPFrame::Method(_, AMQPClass::Connection(AMQPMethod::Start(start))))) => {
                    let props = start.server_properties.inner();
                    let name = props.iter().find(|(k, _)| k.as_str() == "cluster_name").map(|(_, v)| v.clone());
                    return match name {
                        Some(lapin::types::AMQPValue::LongString(s)) => Some(s.to_string()),
                        Some(lapin::types::AMQPValue::ShortString(s)) => Some(s.to_string()),
                        _ => None,
                    };
                }
                Ok(_) => return None,
                // Not all of the frame yet: read on.
                Err(e) if e.is_incomplete() => continue,
                Err(_) => return None,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(3), read).await.ok().flatten()
}

/// On the cluster track, a failure when any of `services` answers but is not the cluster's;
/// None otherwise (the local track, the cluster's services, or nothing answering: the check's
/// own failure then says why).
pub async fn require_cluster(p: &Probes, services: &[Service]) -> Option<Outcome> {
    if p.track() != Track::K3s {
        return None;
    }
    for s in services {
        if let Identity::Other(what) = of(p, *s).await {
            return Some(not_the_cluster(p, *s, &what));
        }
    }
    None
}

/// "Redis at localhost:6379 is not the cluster's: …" and how to reach the cluster instead.
pub fn not_the_cluster(p: &Probes, service: Service, what: &str) -> Outcome {
    let (host, port) = host_port(service.url(p), service.svc().1);
    let (svc, svc_port) = service.svc();
    let ns = crate::shell::quote(&p.cfg.namespace);
    Outcome::fail(
        format!("{} at {host}:{port} is not the cluster's: it {what} (a server of this machine holds the port)", service.name()),
        format!(
            "press F in the app (or run `mqlab forward`): mqlab's port-forwards take the next free port and every check and command follows; \
             or stop the local server and run your own `kubectl port-forward svc/{svc} -n {ns} {svc_port}:{svc_port}`"
        ),
    )
}
