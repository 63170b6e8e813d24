//! Broker checks: local ports, AMQP login, and the management HTTP API (login, versions,
//! exchanges, the celery queue and its consumers).

use std::time::Duration;

use super::mgmt::{Mgmt, MgmtError, segment};

use super::{Outcome, Probes, error_chain, host_port};
use crate::celery::broker::{self, ConnectError};
use crate::config::Track;

/// The vhost named by a broker URL (`amqp://…/` and `amqp://…//` are `/`), percent-decoded.
pub fn vhost_of(broker_url: &str) -> String {
    let Ok(u) = url::Url::parse(broker_url) else { return "/".into() };
    let path = u.path();
    let raw = path.strip_prefix('/').unwrap_or(path);
    if raw.is_empty() {
        return "/".into();
    }
    url::form_urlencoded::parse(format!("v={}", raw.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| raw.to_string())
}

/// A management API client with short timeouts.
pub fn management_client(p: &Probes) -> Mgmt {
    Mgmt::new(&p.cfg, Duration::from_secs(4))
}

fn port_forward_hint(p: &Probes, port: u16) -> String {
    match p.track() {
        Track::K3s => {
            let svc = if port == 6379 { "redis-master" } else { "rabbitmq" };
            format!(
                "start mqlab's forwards and leave them running: F in the app, or `mqlab forward` (by hand: kubectl port-forward svc/{svc} -n {} {port}:{port})",
                p.cfg.namespace
            )
        }
        Track::Local => match port {
            6379 => "start Redis: `mqlab sandbox up`, or `redis-server --daemonize yes`".to_string(),
            15672 => "enable the management plugin: `rabbitmq-plugins enable rabbitmq_management` (or `mqlab sandbox up`)".to_string(),
            _ => "start RabbitMQ: `mqlab sandbox up`, or `rabbitmq-server -detached`".to_string(),
        },
    }
}

fn mgmt_failure(p: &Probes, e: &MgmtError) -> Outcome {
    let (base, user, _) = p.cfg.management_login();
    match e {
        MgmtError::Status(401) => Outcome::fail(
            format!("login refused (401) for user {user:?} at {base}"),
            match p.track() {
                Track::K3s => {
                    "use the user and password given to helm (admin / admin123 in the lessons), e.g. --management-url http://admin:admin123@localhost:15672"
                }
                Track::Local => {
                    "the local broker's default user is guest/guest: pass --broker amqp://guest:guest@localhost:5672// (the management login follows the broker's)"
                }
            },
        ),
        MgmtError::Status(code) if *code < 500 => {
            Outcome::fail(format!("{base} answered HTTP {code}"), "is this the RabbitMQ management port (15672)?")
        }
        MgmtError::Status(code) => Outcome::fail(format!("{base} answered HTTP {code}"), "RabbitMQ is unhealthy: look at its log"),
        other => {
            let (_, port) = host_port(&base, 15672);
            Outcome::fail(format!("cannot reach the management API at {base}: {}", error_chain(other)), port_forward_hint(p, port))
        }
    }
}

pub async fn local_ports(p: &Probes) -> Outcome {
    let targets = [
        ("AMQP", host_port(&p.cfg.broker_url, 5672)),
        ("management", host_port(&p.cfg.management_url, 15672)),
        ("Redis", host_port(&p.cfg.result_backend, 6379)),
    ];
    let mut open = vec![];
    let mut closed = vec![];
    for (what, (host, port)) in targets {
        let ok = tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect((host.as_str(), port)))
            .await
            .is_ok_and(|r| r.is_ok());
        if ok {
            open.push(format!("{what} {port}"));
        } else {
            closed.push((what, host, port));
        }
    }
    if closed.is_empty() {
        // On the cluster track an open port is not enough: it must lead to the cluster.
        if p.track() == Track::K3s {
            use super::identity::{Identity, Service, of};
            let mut how = vec![];
            for s in [Service::Amqp, Service::Management, Service::Redis] {
                match of(p, s).await {
                    Identity::Other(what) => return super::identity::not_the_cluster(p, s, &what),
                    Identity::Cluster(h) => how.push(h),
                    Identity::Unknown => {}
                }
            }
            how.dedup();
            let how = if how.is_empty() { String::new() } else { format!(" ({})", how.join("; ")) };
            return Outcome::pass(format!("open: {}{how}", open.join(", ")));
        }
        return Outcome::pass(format!("open: {}", open.join(", ")));
    }
    let detail = closed.iter().map(|(w, h, port)| format!("{w} {h}:{port}")).collect::<Vec<_>>().join(", ");
    let hints: Vec<String> = closed.iter().map(|(_, _, port)| port_forward_hint(p, *port)).collect();
    Outcome::fail(format!("nothing answers on {detail}"), hints.join("; "))
}

pub async fn amqp_login(p: &Probes) -> Outcome {
    match broker::connect(&p.cfg.broker_url, "mqlab check").await {
        Ok(conn) => {
            let _ = tokio::time::timeout(Duration::from_secs(1), conn.close(200, "check done".into())).await;
            let done = format!("logged in to {}", crate::config::mask_url(&p.cfg.broker_url));
            if p.track() == Track::K3s {
                use super::identity::{Identity, Service, of};
                return match of(p, Service::Amqp).await {
                    Identity::Other(what) => super::identity::not_the_cluster(p, Service::Amqp, &what),
                    Identity::Cluster(how) => Outcome::pass(format!("{done}, {how}")),
                    Identity::Unknown => Outcome::pass(done),
                };
            }
            Outcome::pass(done)
        }
        Err(e @ ConnectError::AccessRefused { .. }) => Outcome::fail(
            e.to_string(),
            match p.track() {
                Track::K3s => {
                    "the lessons install RabbitMQ with admin / admin123; pass --broker amqp://USER:PASS@localhost:5672// if you chose others"
                }
                Track::Local => "a RabbitMQ installed from packages has guest/guest: --broker amqp://guest:guest@localhost:5672//",
            },
        ),
        Err(e) => {
            let (_, port) = host_port(&p.cfg.broker_url, 5672);
            Outcome::fail(e.to_string(), port_forward_hint(p, port))
        }
    }
}

pub async fn mgmt_login(p: &Probes) -> Outcome {
    let c = management_client(p);
    let me = match c.get("/api/whoami").await {
        Ok(me) => me,
        Err(e) => return mgmt_failure(p, &e),
    };
    let user = me.get("name").and_then(|n| n.as_str()).unwrap_or("?").to_string();
    let (base, _, _) = p.cfg.management_login();
    let mut o = Outcome::pass(format!("logged in to {base} as {user}"));
    // The overview names the versions; older brokers may lack fields the client expects, so this
    // is best effort (the login is what this check proves).
    if let Ok(v) = raw_overview(p).await {
        let rv = v.get("rabbitmq_version").and_then(|x| x.as_str()).unwrap_or("?").to_string();
        let ev = v.get("erlang_version").and_then(|x| x.as_str()).unwrap_or("?").to_string();
        o.detail = format!("logged in to {base} as {user}: RabbitMQ {rv}, Erlang {ev}");
        o = o.fact("rabbitmq_version", rv).fact("erlang_version", ev);
        if let Some(node) = v.get("node").and_then(|x| x.as_str()) {
            o = o.fact("node", node);
        }
    }
    // On the cluster track the broker must be the chart's pod (its node is
    // rabbit@rabbitmq-0.rabbitmq-headless…), or carried there by port-forwards; not a RabbitMQ
    // of this machine on the same port.
    if p.track() == Track::K3s {
        use super::identity::{Identity, Service, of};
        match of(p, Service::Management).await {
            Identity::Other(what) => return super::identity::not_the_cluster(p, Service::Management, &what),
            Identity::Cluster(how) => o.detail.push_str(&format!(" ({how})")),
            Identity::Unknown => {}
        }
    }
    o
}

/// Whether a node name is the Bitnami chart's pod (`rabbit@rabbitmq-0.rabbitmq-headless.<ns>…`,
/// or the short `rabbit@rabbitmq-0`).
pub fn is_cluster_node(node: &str) -> bool {
    node.split_once('@').is_some_and(|(_, host)| {
        let pod = host.split('.').next().unwrap_or("");
        pod.rsplit_once('-')
            .is_some_and(|(set, ordinal)| !set.is_empty() && ordinal.chars().all(|c| c.is_ascii_digit()) && !ordinal.is_empty())
            && host.contains("rabbitmq")
    })
}

/// `GET /api/overview` as JSON.
pub async fn raw_overview(p: &Probes) -> Result<serde_json::Value, MgmtError> {
    management_client(p).get("/api/overview").await
}

pub async fn mgmt_exchanges(p: &Probes) -> Outcome {
    if let Some(o) = super::identity::require_cluster(p, &[super::identity::Service::Management]).await {
        return o;
    }
    let c = management_client(p);
    let vhost = vhost_of(&p.cfg.broker_url);
    let list = match c.get(&format!("/api/exchanges/{}?columns=name,type", segment(&vhost))).await {
        Ok(serde_json::Value::Array(l)) => l,
        Ok(other) => {
            return mgmt_failure(
                p,
                &MgmtError::BadAnswer(format!("exchanges: {}", other.to_string().chars().take(80).collect::<String>())),
            );
        }
        Err(e) => return mgmt_failure(p, &e),
    };
    let field = |x: &serde_json::Value, k: &str| x.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
    let want = [("amq.direct", "direct"), ("amq.fanout", "fanout"), ("amq.topic", "topic")];
    let missing: Vec<String> = want
        .iter()
        .filter(|(n, t)| !list.iter().any(|x| field(x, "name") == *n && field(x, "type") == *t))
        .map(|(n, t)| format!("{n} ({t})"))
        .collect();
    if missing.is_empty() {
        let bindings = c
            .get(&format!("/api/exchanges/{}/amq.direct/bindings/source", segment(&vhost)))
            .await
            .ok()
            .and_then(|b| b.as_array().map(Vec::len));
        let note = match bindings {
            Some(0) => "; amq.direct has no bindings yet (Celery publishes through the default exchange)",
            _ => "",
        };
        Outcome::pass(format!("{} exchanges in vhost {vhost}, including amq.direct, amq.fanout, amq.topic{note}", list.len()))
            .fact("exchanges", list.len().to_string())
    } else {
        Outcome::fail(
            format!("missing: {}", missing.join(", ")),
            "these exist on every RabbitMQ; are you logged in to the right vhost and broker?",
        )
    }
}

/// Routing by hand (Step 3): a queue bound to `amq.topic` by a pattern (`*` one word, `#` any
/// number), holding a message the exchange routed there. The binding is read from the
/// management API; what the queue holds over AMQP (a passive declare answers at once, the API's
/// figures lag by their 5 s sampling).
pub async fn mgmt_topic_route(p: &Probes) -> Outcome {
    use broker::QueueState;
    if let Some(o) = super::identity::require_cluster(p, &[super::identity::Service::Management, super::identity::Service::Amqp]).await {
        return o;
    }
    let vhost = vhost_of(&p.cfg.broker_url);
    let bindings = match management_client(p).get(&format!("/api/exchanges/{}/amq.topic/bindings/source", segment(&vhost))).await {
        Ok(serde_json::Value::Array(l)) => l,
        Ok(other) => {
            return mgmt_failure(p, &MgmtError::BadAnswer(format!("bindings: {}", other.to_string().chars().take(80).collect::<String>())));
        }
        Err(e) => return mgmt_failure(p, &e),
    };
    let field = |b: &serde_json::Value, k: &str| b.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
    let patterns: Vec<(String, String)> = bindings
        .iter()
        .filter(|b| field(b, "destination_type") == "queue")
        .map(|b| (field(b, "destination"), field(b, "routing_key")))
        .filter(|(_, key)| key.split('.').any(|w| w == "*" || w == "#"))
        .collect();
    if patterns.is_empty() {
        // A pattern bound to another exchange: the broken state this exercise invites (a direct
        // exchange compares keys exactly, `*` is only a character there; a fanout ignores keys).
        let elsewhere = match management_client(p).get(&format!("/api/bindings/{}", segment(&vhost))).await {
            Ok(serde_json::Value::Array(all)) => all
                .iter()
                .filter(|b| field(b, "destination_type") == "queue" && !field(b, "source").is_empty())
                .filter(|b| field(b, "routing_key").split('.').any(|w| w == "*" || w == "#"))
                .map(|b| (field(b, "source"), field(b, "destination"), field(b, "routing_key")))
                .next(),
            _ => None,
        };
        if let Some((exchange, queue, key)) = elsewhere {
            let kind = management_client(p)
                .get(&format!("/api/exchanges/{}/{}", segment(&vhost), segment(&exchange)))
                .await
                .ok()
                .map(|x| field(&x, "type"))
                .unwrap_or_default();
            let kind = match kind.as_str() {
                "direct" => "a direct exchange compares routing keys exactly: * and # are plain characters there".to_string(),
                "fanout" => "a fanout exchange ignores routing keys: every queue bound to it gets every message".to_string(),
                "headers" => "a headers exchange matches message headers, not routing keys".to_string(),
                "topic" => format!("the pattern works there, but this exercise publishes to amq.topic (or publish to {exchange})"),
                other => format!("an exchange of type {other:?}"),
            };
            return Outcome::fail(
                format!("queue {queue} is bound by {key} to {exchange}, not to amq.topic: {kind}"),
                format!("bind {queue} to amq.topic with {key} (this lesson's second command), and publish to amq.topic"),
            );
        }
        return Outcome::fail(
            format!("no queue is bound to amq.topic by a pattern in vhost {vhost}"),
            "make a queue and bind it to amq.topic with a pattern such as orders.*.eu (this lesson's first two commands, or Queues → Add a new queue, then amq.topic → Add binding)",
        );
    }
    let conn = match broker::connect(&p.cfg.broker_url, "mqlab check").await {
        Ok(c) => c,
        Err(e) => return Outcome::fail(e.to_string(), "see amqp.login"),
    };
    let mut empty = vec![];
    let mut found = None;
    for (queue, key) in &patterns {
        let state = async { broker::queue_state(&conn.create_channel().await?, queue).await }.await;
        match state {
            Ok(QueueState::Present { ready, .. }) if ready > 0 => {
                found = Some((queue.clone(), key.clone(), ready));
                break;
            }
            Ok(_) => empty.push(format!("{queue} (by {key})")),
            Err(e) => empty.push(format!("{queue}: {}", error_chain(&e))),
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), conn.close(200, "check done".into())).await;
    match found {
        Some((queue, key, n)) => {
            Outcome::pass(format!("queue {queue} is bound to amq.topic by {key} and holds {n} message(s) the exchange routed there"))
                .fact("topic_binding", key)
        }
        None => Outcome::fail(
            format!("bound to amq.topic by a pattern, but holding no message: {}", empty.join(", ")),
            "publish to amq.topic with a routing key the pattern matches (orders.book.eu for orders.*.eu); a Get with \"ack\" mode takes the message away, so publish again",
        ),
    }
}

/// The celery queue and its consumers, read over AMQP (a passive declare answers at once with the
/// broker's own counts), not from the management API's statistics, which lag by their 5 s
/// sampling interval: a worker that has just started consuming counts at once.
pub async fn mgmt_celery_queue(p: &Probes) -> Outcome {
    use broker::QueueState;
    if let Some(o) = super::identity::require_cluster(p, &[super::identity::Service::Amqp]).await {
        return o;
    }
    let q = &p.cfg.queue;
    let conn = match broker::connect(&p.cfg.broker_url, "mqlab check").await {
        Ok(c) => c,
        Err(e) => {
            let (_, port) = host_port(&p.cfg.broker_url, 5672);
            return Outcome::fail(e.to_string(), port_forward_hint(p, port));
        }
    };
    let state = async { broker::queue_state(&conn.create_channel().await?, q).await }.await;
    let _ = tokio::time::timeout(Duration::from_secs(1), conn.close(200, "check done".into())).await;
    match state {
        Ok(QueueState::Present { ready, consumers }) if consumers >= 1 => {
            Outcome::pass(format!("queue {q}: {consumers} consumer(s), {ready} message(s) ready (the broker's counts, read over AMQP)"))
                .fact("queue_consumers", consumers.to_string())
        }
        Ok(QueueState::Present { ready, .. }) => Outcome::fail(
            format!("queue {q} exists but has no consumer ({ready} message(s) ready)"),
            "start a worker: `mqlab worker`, or `celery -A celery_app worker --loglevel=info` in your project folder",
        ),
        Ok(QueueState::Missing) => Outcome::fail(
            format!("queue {q} does not exist yet"),
            "it is declared when a Celery worker or client first connects: start a worker (`mqlab worker`) or send a task",
        ),
        Err(e) => Outcome::fail(format!("cannot read queue {q}: {}", error_chain(&e)), "see amqp.login"),
    }
}

/// A state that breaks an experiment without failing any check: who consumes the queue. Two
/// workers split a burst (its timing is neither's); a consumer without a prefetch limit takes
/// every message at once. Read from the management API's consumer details.
pub async fn consumers(p: &Probes) -> Outcome {
    let q = &p.cfg.queue;
    let vhost = vhost_of(&p.cfg.broker_url);
    let path = format!("/api/queues/{}/{}", segment(&vhost), segment(q));
    let v = match management_client(p).get(&path).await {
        Ok(v) => v,
        Err(MgmtError::Status(404)) => return Outcome::skip(format!("queue {q} does not exist yet")),
        Err(e) => return mgmt_failure(p, &e),
    };
    let list = v.get("consumer_details").and_then(|c| c.as_array()).cloned().unwrap_or_default();
    let name = |c: &serde_json::Value| {
        c.pointer("/channel_details/connection_name")
            .and_then(|n| n.as_str())
            .map(|n| n.split(" -> ").next().unwrap_or(n).to_string())
            .unwrap_or_else(|| "a consumer".into())
    };
    let prefetch = |c: &serde_json::Value| c.get("prefetch_count").and_then(|n| n.as_u64()).unwrap_or(0);
    match list.as_slice() {
        [] => Outcome::skip(format!("nobody consumes {q} now")),
        [one] if prefetch(one) == 0 => Outcome::fail(
            format!("the one consumer of {q} ({}) has no prefetch limit: it takes every message at once", name(one)),
            "a worker started with --prefetch-multiplier=0 (or basic.qos 0) reads the whole queue: restart it with the default (4)",
        ),
        [one] => Outcome::pass(format!("one consumer of {q} ({}), prefetch {}", name(one), prefetch(one))),
        many => {
            let who: Vec<String> = many.iter().map(|c| format!("{} prefetch {}", name(c), prefetch(c))).collect();
            Outcome::fail(
                format!(
                    "{} consumers share {q} ({}): a burst is split between them, so its timing is no one worker's",
                    many.len(),
                    who.join("; ")
                ),
                "for an experiment about one worker, stop the others first (Ctrl-C in their terminals; s stops the lab's)",
            )
        }
    }
}
