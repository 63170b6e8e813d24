//! Read-only checks of the learner's system: the cluster, the broker, the management API, Redis,
//! and a task through the whole path. Each check has a timeout and returns pass, fail or skipped
//! with a one-line detail and, on failure, what to do.

pub mod identity;
pub mod kube;
pub mod learner;
pub mod mgmt;
pub mod preflight;
pub mod rabbit;
pub mod redis;
pub mod tasks;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{Config, Track};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Skipped,
}

impl Status {
    pub fn mark(self) -> &'static str {
        match self {
            Status::Pass => "✓",
            Status::Fail => "✗",
            Status::Skipped => "–",
        }
    }
}

/// The outcome of one check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    pub id: String,
    pub title: String,
    pub status: Status,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Facts learned on the way (versions, node names, figures) for the export.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub facts: BTreeMap<String, String>,
    pub at: DateTime<Utc>,
    pub millis: u64,
}

/// What a check body returns.
#[derive(Debug, Default)]
pub struct Outcome {
    pub status: Option<Status>,
    pub detail: String,
    pub hint: Option<String>,
    pub facts: BTreeMap<String, String>,
}

impl Outcome {
    pub fn pass(detail: impl Into<String>) -> Self {
        Outcome { status: Some(Status::Pass), detail: detail.into(), ..Default::default() }
    }
    pub fn fail(detail: impl Into<String>, hint: impl Into<String>) -> Self {
        Outcome { status: Some(Status::Fail), detail: detail.into(), hint: Some(hint.into()), ..Default::default() }
    }
    pub fn skip(detail: impl Into<String>) -> Self {
        Outcome { status: Some(Status::Skipped), detail: detail.into(), ..Default::default() }
    }
    pub fn fact(mut self, k: &str, v: impl Into<String>) -> Self {
        self.facts.insert(k.into(), v.into());
        self
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    Kube,
    Broker,
    Management,
    Redis,
    Tasks,
}

/// A check mqlab knows.
#[derive(Clone, Copy, Debug)]
pub struct CheckInfo {
    pub id: &'static str,
    pub title: &'static str,
    pub group: Group,
    pub timeout: Duration,
}

const T5: Duration = Duration::from_secs(5);

pub const CHECKS: &[CheckInfo] = &[
    CheckInfo { id: "kube.context", title: "Kubernetes context exists and is selected", group: Group::Kube, timeout: T5 },
    CheckInfo { id: "kube.api", title: "Kubernetes API answers", group: Group::Kube, timeout: T5 },
    CheckInfo { id: "kube.node_ready", title: "Node is Ready", group: Group::Kube, timeout: T5 },
    CheckInfo { id: "kube.namespace", title: "Namespace exists", group: Group::Kube, timeout: T5 },
    CheckInfo { id: "kube.rabbitmq_pod", title: "RabbitMQ pod is Running and Ready", group: Group::Kube, timeout: T5 },
    CheckInfo { id: "kube.rabbitmq_log", title: "RabbitMQ log shows \"Server startup complete\"", group: Group::Kube, timeout: T5 },
    CheckInfo { id: "kube.redis_pod", title: "Redis pod is Running and Ready", group: Group::Kube, timeout: T5 },
    CheckInfo { id: "kube.services", title: "Services rabbitmq and redis-master expose their ports", group: Group::Kube, timeout: T5 },
    CheckInfo { id: "ports.local", title: "Local ports 5672, 15672 and 6379 answer", group: Group::Broker, timeout: T5 },
    CheckInfo { id: "amqp.login", title: "AMQP login on port 5672", group: Group::Broker, timeout: T5 },
    CheckInfo { id: "mgmt.login", title: "Management API login", group: Group::Management, timeout: T5 },
    CheckInfo { id: "mgmt.exchanges", title: "Exchanges amq.direct, amq.fanout, amq.topic exist", group: Group::Management, timeout: T5 },
    CheckInfo { id: "mgmt.celery_queue", title: "Queue celery exists and has a consumer", group: Group::Management, timeout: T5 },
    CheckInfo { id: "redis.ping", title: "Redis answers PING with PONG", group: Group::Redis, timeout: T5 },
    CheckInfo { id: "preflight.python", title: "Python 3.10 or newer, with venv", group: Group::Tasks, timeout: Duration::from_secs(12) },
    CheckInfo { id: "preflight.tools", title: "kubectl and helm on PATH", group: Group::Tasks, timeout: Duration::from_secs(12) },
    CheckInfo { id: "preflight.memory", title: "The cluster's VM has 4 GB of memory or more", group: Group::Kube, timeout: T5 },
    CheckInfo { id: "preflight.ports", title: "Who holds the lessons' ports", group: Group::Broker, timeout: Duration::from_secs(10) },
    CheckInfo { id: "preflight.celery", title: "Celery 5.7 in your project's venv", group: Group::Tasks, timeout: Duration::from_secs(12) },
    CheckInfo {
        id: "celery.py_tasks",
        title: "Your Python worker registers tasks.hello and tasks.add",
        group: Group::Tasks,
        timeout: Duration::from_secs(10),
    },
    CheckInfo { id: "project.celery_app", title: "Your celery_app.py defines tasks.hello and tasks.add", group: Group::Tasks, timeout: T5 },
    CheckInfo {
        id: "tasks.roundtrip",
        title: "A task runs through the broker and its result is read back",
        group: Group::Tasks,
        timeout: Duration::from_secs(15),
    },
    CheckInfo {
        id: "celery.py_worker",
        title: "Your Python Celery worker is on the broker (its heartbeat)",
        group: Group::Tasks,
        timeout: Duration::from_secs(8),
    },
    CheckInfo {
        id: "results.learner",
        title: "A result in Redis from a task you sent with .delay()",
        group: Group::Redis,
        timeout: Duration::from_secs(8),
    },
    CheckInfo {
        id: "results.learner_failure",
        title: "A failed task of yours stored as FAILURE",
        group: Group::Redis,
        timeout: Duration::from_secs(8),
    },
    CheckInfo {
        id: "tasks.failure",
        title: "A failing task is stored as FAILURE and re-raised",
        group: Group::Tasks,
        timeout: Duration::from_secs(15),
    },
];

pub fn info(id: &str) -> Option<&'static CheckInfo> {
    CHECKS.iter().find(|c| c.id == id)
}

/// A check's title with the endpoints in use now (the sandbox's or a forward's port, the
/// configured queue), as the learner should read it.
pub fn title_for(id: &str, cfg: &Config) -> String {
    let Some(info) = info(id) else { return id.to_string() };
    let port = |url: &str, default: u16| host_port(url, default).1;
    match id {
        "amqp.login" => format!("AMQP login on port {}", port(&cfg.broker_url, 5672)),
        "ports.local" => format!(
            "Local ports {}, {} and {} answer",
            port(&cfg.broker_url, 5672),
            port(&cfg.management_url, 15672),
            port(&cfg.result_backend, 6379)
        ),
        "mgmt.celery_queue" => format!("Queue {} exists and has a consumer", cfg.queue),
        _ => info.title.to_string(),
    }
}

/// Runs checks for one configuration.
#[derive(Clone)]
pub struct Probes {
    pub cfg: Config,
    /// Where to read the kubeconfig; None = `$KUBECONFIG` or `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// Whether the context was chosen explicitly (then it need not be the current one).
    pub context_explicit: bool,
}

impl Probes {
    pub fn new(cfg: Config) -> Self {
        Probes { cfg, kubeconfig: None, context_explicit: false }
    }

    pub fn track(&self) -> Track {
        self.cfg.track
    }

    /// Runs one check with its timeout.
    async fn run_body(&self, id: &str) -> Outcome {
        // On the cluster track, checks that go through the broker or Redis count only when those
        // are the cluster's (their own login checks say so themselves).
        use identity::Service::{Amqp, Redis};
        let needs: &[identity::Service] = match id {
            "tasks.roundtrip" | "tasks.failure" => &[Amqp, Redis],
            "celery.py_worker" | "celery.py_tasks" => &[Amqp],
            "results.learner" | "results.learner_failure" => &[Redis],
            _ => &[],
        };
        if let Some(o) = identity::require_cluster(self, needs).await {
            return o;
        }
        match id {
            "kube.context" => kube::context(self).await,
            "kube.api" => kube::api(self).await,
            "kube.node_ready" => kube::node_ready(self).await,
            "kube.namespace" => kube::namespace(self).await,
            "kube.rabbitmq_pod" => kube::rabbitmq_pod(self).await,
            "kube.rabbitmq_log" => kube::rabbitmq_log(self).await,
            "kube.redis_pod" => kube::redis_pod(self).await,
            "kube.services" => kube::services(self).await,
            "ports.local" => rabbit::local_ports(self).await,
            "amqp.login" => rabbit::amqp_login(self).await,
            "mgmt.login" => rabbit::mgmt_login(self).await,
            "mgmt.exchanges" => rabbit::mgmt_exchanges(self).await,
            "mgmt.celery_queue" => rabbit::mgmt_celery_queue(self).await,
            "redis.ping" => redis::ping(self).await,
            "tasks.roundtrip" => tasks::roundtrip(self).await,
            "tasks.failure" => tasks::failure(self).await,
            "celery.py_worker" => learner::py_worker(self).await,
            "project.celery_app" => learner::project_app(self),
            "celery.py_tasks" => learner::py_tasks(self).await,
            "preflight.python" => preflight::python(self).await,
            "preflight.tools" => preflight::tools(self).await,
            "preflight.memory" => preflight::memory(self).await,
            "preflight.ports" => preflight::ports(self).await,
            "preflight.celery" => preflight::celery(self).await,
            "results.learner" => learner::results(self).await,
            "results.learner_failure" => learner::failures(self).await,
            _ => Outcome::fail("check not implemented", "report this as a bug"),
        }
    }

    pub async fn run(&self, id: &str) -> CheckResult {
        let started = Instant::now();
        let Some(info) = info(id) else {
            return finish(id, "unknown check", Outcome::fail(format!("no check named {id:?}"), "see `mqlab check --list`"), started);
        };
        let body = async {
            if info.group == Group::Kube {
                // Reading the kubeconfig and running its exec plugin block: the cluster checks run
                // on a thread of their own, so the timeout below can always fire.
                let me = self.clone();
                let id = id.to_string();
                let (tx, rx) = tokio::sync::oneshot::channel();
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
                    let out = match rt {
                        Ok(rt) => rt.block_on(me.run_body(&id)),
                        Err(e) => Outcome::fail(format!("cannot start a runtime: {e}"), "report this as a bug"),
                    };
                    let _ = tx.send(out);
                });
                return rx.await.unwrap_or_else(|_| Outcome::fail("the cluster check stopped", "report this as a bug"));
            }
            self.run_body(id).await
        };
        let outcome = match tokio::time::timeout(info.timeout, body).await {
            Ok(o) => o,
            Err(_) => Outcome::fail(
                format!("no answer within {} s", info.timeout.as_secs()),
                match info.group {
                    Group::Kube => "the cluster API is slow or unreachable: is Rancher Desktop running?",
                    _ => "the service is slow or unreachable: check that it runs and that its port-forward is up",
                },
            ),
        };
        let mut r = finish(id, &title_for(id, &self.cfg), outcome, started);
        r.detail = crate::config::scrub(&r.detail, &[&self.cfg.broker_url, &self.cfg.result_backend, &self.cfg.management_url]);
        r
    }

    /// Runs several checks. Cluster checks run in order and are skipped once the context or the
    /// API fails (their failure says it all); the others run concurrently.
    pub async fn run_many(&self, ids: &[&str]) -> Vec<CheckResult> {
        let (kube_ids, other): (Vec<&str>, Vec<&str>) = ids.iter().partition(|id| id.starts_with("kube."));
        let kube_part = async {
            let mut out = vec![];
            let mut blocked: Option<String> = None;
            let mut order: Vec<&str> = kube_ids.clone();
            order.sort_by_key(|id| CHECKS.iter().position(|c| c.id == *id));
            // The API checks underpin the rest even when a lesson does not list them.
            for id in order {
                if let Some(reason) = &blocked {
                    let info = info(id).expect("known");
                    out.push(finish(id, info.title, Outcome::skip(reason.clone()), Instant::now()));
                    continue;
                }
                let r = self.run(id).await;
                if r.status == Status::Fail && matches!(id, "kube.context" | "kube.api") {
                    blocked = Some(format!("skipped: {} failed", id));
                }
                if r.status == Status::Fail && id == "kube.namespace" {
                    blocked = Some("skipped: the namespace does not exist".into());
                }
                out.push(r);
            }
            out
        };
        let other_part = futures_util::future::join_all(other.iter().map(|id| self.run(id)));
        let (k, o) = tokio::join!(kube_part, other_part);
        let mut all: Vec<CheckResult> = k.into_iter().chain(o).collect();
        all.sort_by_key(|r| ids.iter().position(|i| *i == r.id));
        all
    }
}

fn finish(id: &str, title: &str, o: Outcome, started: Instant) -> CheckResult {
    CheckResult {
        id: id.to_string(),
        title: title.to_string(),
        status: o.status.unwrap_or(Status::Fail),
        detail: o.detail,
        hint: o.hint,
        facts: o.facts,
        at: Utc::now(),
        millis: started.elapsed().as_millis() as u64,
    }
}

pub(crate) use crate::redact::error_chain;

/// Host and port of a URL, with a default port.
pub(crate) fn host_port(raw: &str, default_port: u16) -> (String, u16) {
    match url::Url::parse(raw) {
        Ok(u) => (u.host_str().unwrap_or("localhost").to_string(), u.port().unwrap_or(default_port)),
        Err(_) => ("localhost".into(), default_port),
    }
}
