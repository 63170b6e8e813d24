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
    /// What the check wants to see (the detail says what it saw).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub expected: String,
    /// The exact call it made: HTTP path, AMQP operation, Redis command, host:port.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub call: String,
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
    CheckInfo {
        id: "mgmt.topic_route",
        title: "A queue bound to amq.topic by a pattern holds a message routed there",
        group: Group::Management,
        timeout: T5,
    },
    CheckInfo { id: "redis.ping", title: "Redis answers PING with PONG", group: Group::Redis, timeout: T5 },
    CheckInfo {
        id: "broker.consumers",
        title: "One worker consumes the queue, with a prefetch limit",
        group: Group::Management,
        timeout: T5,
    },
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
        id: "results.routed",
        title: "A task of yours ran from a queue of its own (task_routes)",
        group: Group::Redis,
        timeout: Duration::from_secs(8),
    },
    CheckInfo {
        id: "results.two_workers",
        title: "Two workers shared one queue's tasks (each result names its worker)",
        group: Group::Redis,
        timeout: Duration::from_secs(8),
    },
    CheckInfo {
        id: "results.unregistered",
        title: "A task your worker did not know failed NotRegistered, then ran after a restart",
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
            "results.routed" => &[Amqp, Redis],
            "results.unregistered" | "results.two_workers" => &[Redis],
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
            "mgmt.topic_route" => rabbit::mgmt_topic_route(self).await,
            "broker.consumers" => rabbit::consumers(self).await,
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
            "results.routed" => learner::routed(self).await,
            "results.unregistered" => learner::unregistered(self).await,
            "results.two_workers" => learner::two_workers(self).await,
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
        r.expected = expected(id, &self.cfg);
        r.call = call(id, &self.cfg);
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

/// What a check wants to see, in the learner's terms.
pub fn expected(id: &str, cfg: &Config) -> String {
    let q = &cfg.queue;
    match id {
        "kube.context" => format!("a kubeconfig context named {} (the current one unless --context chose it)", cfg.kube_context),
        "kube.api" => "the cluster's API server answers GET /version".into(),
        "kube.node_ready" => "at least one node with condition Ready=True".into(),
        "kube.namespace" => format!("namespace {} exists", cfg.namespace),
        "kube.rabbitmq_pod" => "the RabbitMQ pod Running with every container ready (1/1)".into(),
        "kube.redis_pod" => "the Redis pod Running with every container ready (1/1)".into(),
        "kube.rabbitmq_log" => "\"Server startup complete\" in the RabbitMQ pod's log after its last start".into(),
        "kube.services" => "services rabbitmq (5672, 15672) and redis-master (6379)".into(),
        "ports.local" => "something answering on each of the three local ports".into(),
        "amqp.login" => "an AMQP connection opened with your user and vhost".into(),
        "mgmt.login" => "HTTP 200 from the management API with your user".into(),
        "mgmt.exchanges" => "exchanges amq.direct (direct), amq.fanout (fanout) and amq.topic (topic)".into(),
        "mgmt.celery_queue" => format!("queue {q} declared, with 1 consumer or more"),
        "redis.ping" => "PONG".into(),
        "broker.consumers" => format!("one consumer on queue {q}, with a prefetch limit above 0"),
        "tasks.roundtrip" => format!("tasks.add(42, 58) through queue {q} stored as SUCCESS 100 within 10 s"),
        "tasks.failure" => format!("tasks.divide(10, 0) through queue {q} stored as FAILURE ZeroDivisionError within 10 s"),
        "celery.py_worker" => "a heartbeat from a Python Celery worker (sw_ident py-celery) within 4.5 s".into(),
        "celery.py_tasks" => "your Python worker answers `registered` with tasks.hello and tasks.add".into(),
        "project.celery_app" => "celery_app.py in the project folder naming tasks.hello and tasks.add".into(),
        "results.learner" => "a SUCCESS in Redis of a task mqlab did not send (your .delay())".into(),
        "results.learner_failure" => "a FAILURE in Redis of a task mqlab did not send, with its exception".into(),
        "mgmt.topic_route" => "a queue bound to amq.topic by a routing key with * or #, holding 1 message or more".into(),
        "results.routed" => {
            format!("a SUCCESS in Redis of a task of yours delivered from a queue other than {q} (result_extended's queue)")
        }
        "results.unregistered" => {
            "a FAILURE NotRegistered in Redis of a task of yours, then a SUCCESS of the same task stored after it".into()
        }
        "results.two_workers" => "SUCCESS results of one task stored by two workers or more (result_extended's worker)".into(),
        _ => String::new(),
    }
}

/// Hints for a failed check, one rung at a time: a nudge (a question), then the step (what to
/// do, in the lessons' terms), then the command. Chosen by what the check observed; the check's
/// own hint ends the ladder where it says more.
pub fn ladder(r: &CheckResult, cfg: &Config) -> Vec<String> {
    let d = r.detail.as_str();
    let project = crate::config::shell_path(&cfg.project_dir);
    let venv = format!("cd {project} && source venv/bin/activate");
    let worker = format!("{venv} && celery -A celery_app worker --loglevel=info");
    let local = cfg.track == Track::Local;
    let refused = d.contains("refused") || d.contains("no answer") || d.contains("unreachable") || d.contains("timed out");
    let ns = crate::shell::quote(&cfg.namespace);
    // On the cluster track a local server answering for the cluster's is its own matter: the
    // check's hint (a port-forward) is the whole answer.
    if d.contains("not the cluster's") {
        return r.hint.iter().cloned().collect();
    }
    let rungs: [String; 3] = match r.id.as_str() {
        "amqp.login" | "mgmt.login" | "ports.local" if refused => [
            "Nothing answers on that port: is RabbitMQ running, and is the port the one mqlab uses?".into(),
            if local {
                "Start RabbitMQ: S in the app starts a private one (a sandbox), or start your system's service.".into()
            } else {
                "The cluster's ports reach this machine through port-forwards: F in the app keeps them up.".into()
            },
            if local { "mqlab sandbox up".into() } else { format!("kubectl port-forward svc/rabbitmq -n {ns} 5672:5672 15672:15672") },
        ],
        "amqp.login" | "mgmt.login" => [
            "RabbitMQ answered but refused the login: which user, password and vhost does mqlab use?".into(),
            "Use the broker's own user: a sandbox's is admin / admin123, a packaged RabbitMQ's guest / guest (from localhost only).".into(),
            "mqlab --broker 'amqp://USER:PASSWORD@localhost:5672//' check --lesson 1".into(),
        ],
        "redis.ping" => [
            "Does anything answer on Redis's port?".into(),
            if local {
                "Start Redis: S in the app starts a private one, or your system's service.".into()
            } else {
                "Redis reaches this machine through the port-forward: F in the app.".into()
            },
            if local { "mqlab sandbox up".into() } else { format!("kubectl port-forward svc/redis-master -n {ns} 6379:6379") },
        ],
        "mgmt.celery_queue" if d.contains("does not exist") => [
            "Nothing has declared the queue yet: who creates it, the client or the worker?".into(),
            "Celery declares its queue when a worker starts: start yours (Step 6) and leave it running.".into(),
            worker,
        ],
        "mgmt.celery_queue" | "celery.py_worker" | "celery.py_tasks" => [
            "Is your worker running, and on this broker (its banner's transport line)?".into(),
            "Start your Python worker in the project folder with its venv (Step 6) and wait for its `ready.` line.".into(),
            worker,
        ],
        "tasks.roundtrip" | "tasks.failure" if d.contains("no worker finished") => [
            "The task went into the queue; did any worker take it?".into(),
            "A worker must consume this queue and know the task: start yours (Step 6), or w for mqlab's.".into(),
            worker,
        ],
        "results.learner" => [
            "mqlab's own tasks never count here: which program sent yours?".into(),
            "Run submit_task.py from your project with its venv: it calls .delay() and .get() (Step 6).".into(),
            format!("{venv} && python submit_task.py"),
        ],
        "results.learner_failure" => [
            "Has a task of yours failed yet, on purpose?".into(),
            "Add Step 9's divide_task block (Experiment 4) to submit_task.py and run it again.".into(),
            format!("{venv} && python submit_task.py"),
        ],
        "mgmt.topic_route" if d.contains("not to amq.topic") => [
            "Which exchange is your queue bound to, and what does that exchange's type do with * and #?".into(),
            "Bind the queue to amq.topic, the topic exchange, with the same pattern; a binding to another exchange can stay (Step 3)."
                .into(),
            "mqlab solve 3 --list (the binding is its second command)".into(),
        ],
        "mgmt.topic_route" => [
            "An exchange stores nothing: which queue would keep a message sent to amq.topic?".into(),
            "Make a queue, bind it to amq.topic with a pattern, then publish with a routing key the pattern matches (Step 3).".into(),
            "mqlab solve 3 --list (the lesson's commands, in order)".into(),
        ],
        "results.routed" => [
            "Who decides which queue a task goes to: the worker, or the code that sends it?".into(),
            "Add task_routes to celery_app.py, start a second worker with -Q math, then send add from Python (Step 9, Experiment 6)."
                .into(),
            format!("{venv} && celery -A celery_app worker -Q math --loglevel=info -n math@%h --concurrency=1"),
        ],
        "results.two_workers" => [
            "How many workers consume the queue now, and does each have room to take a message?".into(),
            "Start a second worker beside your first, with its own name, then send a burst (Step 7, Two workers).".into(),
            format!("{venv} && celery -A celery_app worker --loglevel=info --concurrency=1 --prefetch-multiplier=1 -n second@%h"),
        ],
        "results.unregistered" if d.contains("has not succeeded since") => [
            "Your worker read celery_app.py when it started: has it read it since you added the task?".into(),
            "Restart your worker so it imports the new task (Ctrl-C, then the same command), then call the task again.".into(),
            worker.clone(),
        ],
        "results.unregistered" => [
            "Which code does a worker run: the file as it is now, or as it was when the worker started?".into(),
            "Add the multiply task to celery_app.py while your worker runs, then call it from Python (Step 9, Experiment 5).".into(),
            format!(
                "{venv} && python -c \"from celery_app import multiply_task; r = multiply_task.delay(6, 7); print(r.get(timeout=10, propagate=False), r.state)\""
            ),
        ],
        "project.celery_app" => [
            "Is celery_app.py in the folder mqlab looks at?".into(),
            format!("Step 5 writes the project into {project}: I in the app, or mqlab init."),
            "mqlab init".into(),
        ],
        _ => return r.hint.iter().cloned().collect(),
    };
    let mut v = rungs.to_vec();
    if let Some(h) = &r.hint
        && !v.iter().any(|x| x == h)
    {
        v.insert(2, h.clone());
    }
    v
}

/// The call a check makes, exactly: what a learner would repeat to see the same.
pub fn call(id: &str, cfg: &Config) -> String {
    let (ah, ap) = host_port(&cfg.broker_url, 5672);
    let (rh, rp) = host_port(&cfg.result_backend, 6379);
    let mgmt = url::Url::parse(&cfg.management_url)
        .map(|u| format!("{}://{}:{}", u.scheme(), u.host_str().unwrap_or("localhost"), u.port_or_known_default().unwrap_or(15672)))
        .unwrap_or_else(|_| cfg.management_url.clone());
    let vhost = rabbit::vhost_of(&cfg.broker_url);
    let enc = |s: &str| mgmt::segment(s);
    let (_, user, _) = cfg.management_login();
    let amqp_user = url::Url::parse(&cfg.broker_url).map(|u| u.username().to_string()).unwrap_or_default();
    let db = url::Url::parse(&cfg.result_backend).ok().map(|u| u.path().trim_start_matches('/').to_string()).filter(|d| !d.is_empty());
    let db = db.unwrap_or_else(|| "0".into());
    let ns = &cfg.namespace;
    let q = &cfg.queue;
    let kube = |path: &str| format!("GET {path} on the API server of context {} (kubeconfig)", cfg.kube_context);
    match id {
        "kube.context" => "read the kubeconfig ($KUBECONFIG or ~/.kube/config): contexts and current-context".into(),
        "kube.api" => kube("/version"),
        "kube.node_ready" => kube("/api/v1/nodes"),
        "kube.namespace" => kube(&format!("/api/v1/namespaces/{ns}")),
        "kube.rabbitmq_pod" => kube(&format!("/api/v1/namespaces/{ns}/pods (the RabbitMQ pod) and its events")),
        "kube.redis_pod" => kube(&format!("/api/v1/namespaces/{ns}/pods (the Redis pod) and its events")),
        "kube.rabbitmq_log" => kube(&format!("/api/v1/namespaces/{ns}/pods/<rabbitmq pod>/log (last 2000 lines)")),
        "kube.services" => kube(&format!("/api/v1/namespaces/{ns}/services/rabbitmq and …/redis-master")),
        "ports.local" => format!("TCP connect to {ah}:{ap}, the management port and {rh}:{rp}"),
        "amqp.login" => format!("AMQP 0-9-1 connect to {ah}:{ap}, vhost {vhost:?}, user {amqp_user:?} (Connection.Start → Open)"),
        "mgmt.login" => format!("GET {mgmt}/api/overview as {user:?}"),
        "mgmt.exchanges" => format!("GET {mgmt}/api/exchanges/{}?columns=name,type as {user:?}", enc(&vhost)),
        "mgmt.celery_queue" => format!("AMQP Queue.Declare {q:?} passive=true on {ah}:{ap}, vhost {vhost:?} (the broker's own counts)"),
        "mgmt.topic_route" => format!(
            "GET {mgmt}/api/exchanges/{}/amq.topic/bindings/source as {user:?}; AMQP Queue.Declare passive=true of each queue bound by a pattern on {ah}:{ap}",
            enc(&vhost)
        ),
        "redis.ping" => format!("Redis PING to {rh}:{rp}"),
        "broker.consumers" => format!("GET {mgmt}/api/queues/{}/{} as {user:?}", enc(&vhost), enc(q)),
        "tasks.roundtrip" => format!(
            "AMQP Basic.Publish tasks.add(42, 58) to exchange \"\" key {q:?} on {ah}:{ap}; Redis SUBSCRIBE celery-task-meta-<id> and GET it on {rh}:{rp} db {db}"
        ),
        "tasks.failure" => format!(
            "AMQP Basic.Publish tasks.divide(10, 0) to exchange \"\" key {q:?} on {ah}:{ap}; Redis SUBSCRIBE celery-task-meta-<id> and GET it on {rh}:{rp} db {db}"
        ),
        "celery.py_worker" => format!("AMQP: a queue bound to exchange celeryev (key #) on {ah}:{ap}, listened to for 4.5 s"),
        "celery.py_tasks" => {
            format!("AMQP: celeryev listened to for heartbeats, then remote control `registered` broadcast to celery.pidbox on {ah}:{ap}")
        }
        "project.celery_app" => format!("read {}", cfg.project_dir.join("celery_app.py").display()),
        "results.two_workers" => {
            format!("Redis SCAN celery-task-meta-* and MGET them on {rh}:{rp} db {db} (each result's name and worker)")
        }
        "results.learner" | "results.learner_failure" | "results.unregistered" => format!(
            "Redis SCAN celery-task-meta-* and MGET them on {rh}:{rp} db {db}; ZSCORE {} for each id (the tasks mqlab sent)",
            learner::SENT_LOG_KEY
        ),
        "results.routed" => format!(
            "Redis SCAN celery-task-meta-* and MGET them on {rh}:{rp} db {db} (each result's queue); AMQP Queue.Declare \"math\" passive=true on {ah}:{ap}"
        ),
        _ => String::new(),
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
        expected: String::new(),
        call: String::new(),
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
