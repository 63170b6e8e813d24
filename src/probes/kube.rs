//! Cluster checks with kube-rs, against the user's kubeconfig (`$KUBECONFIG` or ~/.kube/config).

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use kube::api::{ListParams, LogParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};

use super::{Outcome, Probes, error_chain};

/// A Bitnami chart as the lessons install it: pinned by OCI reference and version, with its
/// image moved to the frozen `bitnamilegacy` repository.
///
/// Facts (checked against the bitnami/charts history, December 2026): from 2025-08-28 every
/// versioned `docker.io/bitnami/*` tag moved to `docker.io/bitnamilegacy/*`; the charts kept
/// their August 2025 default tags, which no longer pull from `docker.io/bitnami`. The versions
/// pinned here are the last published before the change, and their default images are the tags
/// pinned here. Helm prints a "SECURITY WARNING" about the substituted image; that is expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chart {
    /// The Helm release and the chart's name (`rabbitmq`, `redis`).
    pub release: &'static str,
    /// The chart's OCI reference.
    pub oci: &'static str,
    pub version: &'static str,
    pub image_repository: &'static str,
    pub image_tag: &'static str,
    /// The lesson's own values, one `--set` per entry.
    pub values: &'static [&'static str],
}

pub const RABBITMQ_CHART: Chart = Chart {
    release: "rabbitmq",
    oci: "oci://registry-1.docker.io/bitnamicharts/rabbitmq",
    version: "16.0.14",
    image_repository: "bitnamilegacy/rabbitmq",
    image_tag: "4.1.3-debian-12-r1",
    values: &["auth.username=admin", "auth.password=admin123", "persistence.enabled=false", "metrics.enabled=true"],
};

pub const REDIS_CHART: Chart = Chart {
    release: "redis",
    oci: "oci://registry-1.docker.io/bitnamicharts/redis",
    version: "22.0.7",
    image_repository: "bitnamilegacy/redis",
    image_tag: "8.2.1-debian-12-r0",
    values: &["auth.enabled=false", "architecture=standalone", "master.persistence.enabled=false"],
};

/// Kept for callers that name the image alone.
pub const RABBITMQ_IMAGE_REPOSITORY: &str = RABBITMQ_CHART.image_repository;
pub const RABBITMQ_IMAGE_TAG: &str = RABBITMQ_CHART.image_tag;

impl Chart {
    pub fn for_app(app: &str) -> Chart {
        if app == "rabbitmq" { RABBITMQ_CHART } else { REDIS_CHART }
    }

    /// `oci://… --version V`: where `helm install` and `helm upgrade` take the chart from.
    pub fn reference(&self) -> String {
        format!("{} --version {}", self.oci, self.version)
    }

    /// The image the install pulls (`docker.io/bitnamilegacy/rabbitmq:4.1.3-debian-12-r1`).
    pub fn image(&self) -> String {
        format!("docker.io/{}:{}", self.image_repository, self.image_tag)
    }

    /// The `helm install` the lesson shows, one option per line.
    pub fn install(&self, namespace: &str) -> String {
        let ns = crate::shell::quote(namespace);
        let mut lines = vec![
            format!("helm install {} {}", self.release, self.reference()),
            format!("--namespace {ns}"),
            format!("--set image.repository={}", self.image_repository),
            format!("--set image.tag={}", self.image_tag),
            "--set global.security.allowInsecureImages=true".to_string(),
        ];
        lines.extend(self.values.iter().map(|v| format!("--set {v}")));
        lines.join(" \\\n  ")
    }

    /// A `helm upgrade` of the installed release that keeps its values and sets one more.
    pub fn upgrade(&self, namespace: &str, set: &str) -> String {
        format!(
            "helm upgrade {} {} --namespace {} --reuse-values --set {set}",
            self.release,
            self.reference(),
            crate::shell::quote(namespace)
        )
    }

    pub fn uninstall(&self, namespace: &str) -> String {
        format!("helm uninstall {} --namespace {}", self.release, crate::shell::quote(namespace))
    }
}

/// The Helm install of RabbitMQ, as the lesson shows it (one option per line). The lessons and
/// the hints both use this text: there is one source.
pub fn helm_rabbitmq(namespace: &str) -> String {
    RABBITMQ_CHART.install(namespace)
}

/// The Helm install of Redis, pinned the same way as RabbitMQ's.
pub fn helm_redis(namespace: &str) -> String {
    REDIS_CHART.install(namespace)
}

/// A multi-line command on one line (for hints).
pub fn one_line(cmd: &str) -> String {
    cmd.replace(" \\\n  ", " ")
}

fn helm_for(app: &str, namespace: &str) -> String {
    one_line(&Chart::for_app(app).install(namespace))
}

/// Added to the hints of a cluster that is not there at all.
pub const NO_CLUSTER: &str =
    ". No cluster on this machine? Switch to the local track: T in the app (or --track local); S starts a private RabbitMQ and Redis";

/// The largest kubeconfig read (a real one is a few KiB).
pub const MAX_KUBECONFIG: u64 = 4 * 1024 * 1024;

/// Refuses what is not a plain file of reasonable size (`KUBECONFIG=/dev/zero` would be read
/// until memory runs out).
fn check_kubeconfig_files(p: &Probes) -> Result<(), Outcome> {
    let paths: Vec<std::path::PathBuf> = match &p.kubeconfig {
        Some(path) => vec![path.clone()],
        None => match std::env::var_os("KUBECONFIG") {
            Some(v) => std::env::split_paths(&v).filter(|p| !p.as_os_str().is_empty()).collect(),
            None => vec![],
        },
    };
    for path in paths {
        let Ok(meta) = std::fs::metadata(&path) else { continue };
        if !meta.is_file() {
            return Err(Outcome::fail(
                format!("the kubeconfig {} is not a regular file", path.display()),
                format!("point KUBECONFIG at the file Rancher Desktop writes (~/.kube/config){NO_CLUSTER}"),
            ));
        }
        if meta.len() > MAX_KUBECONFIG {
            return Err(Outcome::fail(
                format!("the kubeconfig {} is {} MiB, too big to be one", path.display(), meta.len() / 1024 / 1024),
                "point KUBECONFIG at the file Rancher Desktop writes (~/.kube/config)".to_string(),
            ));
        }
    }
    Ok(())
}

fn read_kubeconfig(p: &Probes) -> Result<Kubeconfig, Outcome> {
    check_kubeconfig_files(p)?;
    let res = match &p.kubeconfig {
        Some(path) => Kubeconfig::read_from(path),
        None => Kubeconfig::read(),
    };
    res.map_err(|e| {
        Outcome::fail(
            format!("cannot read the kubeconfig: {}", error_chain(&e)),
            format!("start Rancher Desktop (it writes ~/.kube/config with the rancher-desktop context), or point KUBECONFIG at a valid file{NO_CLUSTER}"),
        )
    })
}

/// A client for the selected context, for API calls: each read must come within 4 s.
pub async fn client(p: &Probes) -> Result<Client, Outcome> {
    client_with(p, Some(Duration::from_secs(4))).await
}

/// A client for port-forward streams: no read timeout, since a forwarded connection may rightly
/// stay silent for as long as its two ends like (an idle Redis connection, a worker waiting for
/// tasks). kube-rs leaves the timeout unset for exactly these streams; API calls made with this
/// client must bound themselves.
pub async fn stream_client(p: &Probes) -> Result<Client, Outcome> {
    client_with(p, None).await
}

async fn client_with(p: &Probes, read_timeout: Option<Duration>) -> Result<Client, Outcome> {
    crate::tls::ensure_provider();
    let kc = read_kubeconfig(p)?;
    let ctx = &p.cfg.kube_context;
    if !kc.contexts.iter().any(|c| &c.name == ctx) {
        return Err(missing_context(&kc, ctx));
    }
    let opts = KubeConfigOptions { context: Some(ctx.clone()), cluster: None, user: None };
    let mut config = kube::Config::from_custom_kubeconfig(kc, &opts).await.map_err(|e| {
        Outcome::fail(
            format!("context {ctx:?} is unusable: {}", error_chain(&e)),
            "check the cluster and user entries of this context in the kubeconfig",
        )
    })?;
    config.connect_timeout = Some(Duration::from_secs(3));
    config.read_timeout = read_timeout;
    Client::try_from(config)
        .map_err(|e| Outcome::fail(format!("cannot build a client for {ctx:?}: {}", error_chain(&e)), "check the kubeconfig"))
}

fn missing_context(kc: &Kubeconfig, ctx: &str) -> Outcome {
    let names: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
    let known = if names.is_empty() { "none".to_string() } else { names.join(", ") };
    Outcome::fail(
        format!("context {ctx:?} is not in the kubeconfig (contexts: {known})"),
        if ctx == "rancher-desktop" {
            format!(
                "start Rancher Desktop and wait for \"Kubernetes is running\"; it adds the rancher-desktop context (or pass --context NAME){NO_CLUSTER}"
            )
        } else {
            format!("choose one of the contexts listed with --context, or add {ctx:?}")
        },
    )
}

pub async fn context(p: &Probes) -> Outcome {
    let kc = match read_kubeconfig(p) {
        Ok(k) => k,
        Err(o) => return o,
    };
    let ctx = &p.cfg.kube_context;
    if !kc.contexts.iter().any(|c| &c.name == ctx) {
        return missing_context(&kc, ctx);
    }
    let current = kc.current_context.clone().unwrap_or_default();
    if &current == ctx {
        Outcome::pass(format!("context {ctx:?} exists and is current")).fact("kube_context", ctx.clone())
    } else if p.context_explicit {
        Outcome::pass(format!("context {ctx:?} exists (selected with --context; current is {current:?})")).fact("kube_context", ctx.clone())
    } else {
        Outcome::fail(
            format!("context {ctx:?} exists but the current context is {current:?}"),
            format!("run `kubectl config use-context {ctx}` so kubectl and mqlab look at the same cluster"),
        )
    }
}

fn unreachable(e: &kube::Error) -> Outcome {
    Outcome::fail(
        format!("the API server does not answer: {}", error_chain(e)),
        format!(
            "Rancher Desktop may still be starting (\"connection refused\"): wait until it shows \"Kubernetes is running\" and try again{NO_CLUSTER}"
        ),
    )
}

pub async fn api(p: &Probes) -> Outcome {
    let client = match client(p).await {
        Ok(c) => c,
        Err(o) => return o,
    };
    match client.apiserver_version().await {
        Ok(v) => Outcome::pass(format!("API server {} answers", v.git_version)).fact("kubernetes_version", v.git_version),
        Err(e) => unreachable(&e),
    }
}

pub async fn node_ready(p: &Probes) -> Outcome {
    let client = match client(p).await {
        Ok(c) => c,
        Err(o) => return o,
    };
    let nodes = match Api::<Node>::all(client).list(&ListParams::default()).await {
        Ok(n) => n,
        Err(e) => return unreachable(&e),
    };
    if nodes.items.is_empty() {
        return Outcome::fail(
            "the cluster has no nodes",
            "Rancher Desktop's node appears a minute after start; restart Kubernetes from its preferences if it never does",
        );
    }
    let mut ready = vec![];
    let mut not_ready = vec![];
    let mut version = String::new();
    for n in &nodes.items {
        let name = n.metadata.name.clone().unwrap_or_default();
        let status = n.status.as_ref();
        if let Some(info) = status.and_then(|s| s.node_info.as_ref()) {
            version = info.kubelet_version.clone();
        }
        let cond = status.and_then(|s| s.conditions.as_ref()).and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
        match cond {
            Some(c) if c.status == "True" => ready.push(name),
            Some(c) => not_ready.push(format!(
                "{name} ({}{})",
                c.reason.clone().unwrap_or_else(|| "NotReady".into()),
                c.message.as_ref().map(|m| format!(": {m}")).unwrap_or_default()
            )),
            None => not_ready.push(format!("{name} (no Ready condition yet)")),
        }
    }
    if not_ready.is_empty() {
        Outcome::pass(format!("{} Ready, {version}", ready.join(", "))).fact("node", ready.join(", ")).fact("k3s_version", version)
    } else {
        Outcome::fail(
            format!("not Ready: {}", not_ready.join("; ")),
            "the node is still starting or unhealthy: wait a minute; if it stays NotReady, restart Kubernetes in Rancher Desktop",
        )
    }
}

pub async fn namespace(p: &Probes) -> Outcome {
    let client = match client(p).await {
        Ok(c) => c,
        Err(o) => return o,
    };
    let ns = &p.cfg.namespace;
    match Api::<Namespace>::all(client).get_opt(ns).await {
        Ok(Some(n)) => {
            let phase = n.status.and_then(|s| s.phase).unwrap_or_else(|| "Active".into());
            if phase == "Active" {
                Outcome::pass(format!("namespace {ns} is Active"))
            } else {
                Outcome::fail(format!("namespace {ns} is {phase}"), "it is being deleted; wait, then create it again")
            }
        }
        Ok(None) => Outcome::fail(format!("namespace {ns} does not exist"), format!("kubectl create namespace {ns}")),
        Err(e) => unreachable(&e),
    }
}

/// What a pod's status says, in the learner's terms.
#[derive(Debug, PartialEq)]
pub enum PodVerdict {
    Ready {
        restarts: i32,
    },
    ImagePull {
        reason: String,
        image: String,
        message: String,
    },
    CrashLoop {
        restarts: i32,
        container: String,
    },
    Waiting {
        reason: String,
        message: String,
    },
    NotReady {
        phase: String,
        detail: String,
    },
    /// The pod has a deletion time: it is on its way out.
    Terminating {
        since: String,
    },
    /// A container was killed for memory (now or in its last run).
    OomKilled {
        restarts: i32,
        limit: Option<String>,
    },
}

/// Why an image does not pull, from the kubelet's words (the pod's Events, or the container's
/// waiting message).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullCause {
    /// The registry has no such image or tag.
    NotFound,
    /// Docker Hub's limit for anonymous pulls.
    RateLimited,
    /// The registry refused the credentials (or wants some).
    Unauthorized,
    /// The cluster's VM cannot reach the registry (DNS, network, proxy).
    NoNetwork,
    Unknown,
}

pub fn pull_cause(message: &str) -> PullCause {
    let m = message.to_ascii_lowercase();
    if m.contains("toomanyrequests") || m.contains("rate limit") || m.contains("429 too many requests") {
        PullCause::RateLimited
    } else if m.contains("no such host")
        || m.contains("i/o timeout")
        || m.contains("network is unreachable")
        || m.contains("connection refused")
        || m.contains("tls handshake timeout")
        || m.contains("temporary failure in name resolution")
    {
        PullCause::NoNetwork
    } else if m.contains("unauthorized") || m.contains("authentication required") || m.contains("denied") {
        PullCause::Unauthorized
    } else if m.contains("not found") || m.contains("manifest unknown") || m.contains("does not exist") {
        PullCause::NotFound
    } else {
        PullCause::Unknown
    }
}

/// `docker.io/bitnamilegacy/redis:8.2.1-debian-12-r0`, `bitnamilegacy/redis:8.2.1-debian-12-r0`
/// and `docker.io/library/…` spellings of one image compare equal.
fn same_image(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.trim_start_matches("docker.io/").trim_start_matches("registry-1.docker.io/").to_string();
    norm(a) == norm(b)
}

/// What to do about an image that does not pull, from the image and the kubelet's message (the
/// pod's Events): not found, a pull rate limit, no network, or refused credentials. It never
/// recommends the command that installed the image that just failed.
pub fn image_pull_hint(app: &str, image: &str, message: &str, namespace: &str) -> String {
    let chart = Chart::for_app(app);
    let pinned = same_image(image, &chart.image());
    let ns = crate::shell::quote(namespace);
    match pull_cause(message) {
        PullCause::RateLimited => {
            "Docker Hub's pull rate limit for anonymous pulls was reached (429 toomanyrequests): another repository does not help. Wait (the limit resets within hours) or sign in to Docker Hub on the cluster's VM, then delete the pod so it pulls again".to_string()
        }
        PullCause::NoNetwork => format!(
            "the cluster's VM cannot reach the registry (DNS or network): check this machine's network, VPN or proxy and Rancher Desktop's network settings, then let it pull again: kubectl delete pod -n {ns} -l app.kubernetes.io/name={app}"
        ),
        PullCause::Unauthorized => format!(
            "the registry refused to hand out {image} (unauthorized): the image is private or moved; check the name, or log in to the registry"
        ),
        PullCause::NotFound | PullCause::Unknown if pinned => format!(
            "{image} is the image the lesson pins, and it did not pull ({}). If the registry says it is gone, docker.io/bitnamilegacy no longer has it: the lesson's section \"If the image does not pull\" gives the way on; the same install again would fail the same way",
            if pull_cause(message) == PullCause::NotFound { "not found" } else { "see the event above" }
        ),
        PullCause::NotFound if image.contains("bitnamilegacy/") => format!(
            "{image} is not in docker.io/bitnamilegacy (the frozen legacy repository has no such tag): install the chart and tag the lesson pins: {}; {}",
            chart.uninstall(namespace),
            helm_for(app, namespace)
        ),
        PullCause::NotFound if image.contains("bitnami/") => format!(
            "Bitnami's free images moved to docker.io/bitnamilegacy in August 2025, so the chart's default image no longer exists. Install the pinned chart and image instead: {}; {}",
            chart.uninstall(namespace),
            helm_for(app, namespace)
        ),
        _ => format!("the image {image} does not pull: `kubectl describe pod -n {ns} -l app.kubernetes.io/name={app}` shows the kubelet's words"),
    }
}

/// One of a pod's Events, as `kubectl describe pod` lists them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodEvent {
    pub kind: String,
    pub reason: String,
    pub message: String,
    pub count: i32,
}

impl PodEvent {
    /// `Warning Failed (×3): Failed to pull image …`
    pub fn line(&self) -> String {
        let times = if self.count > 1 { format!(" (×{})", self.count) } else { String::new() };
        format!("{} {}{times}: {}", self.kind, self.reason, self.message.trim())
    }
}

/// A pod's Events, newest first (a failed read gives none: the verdict then stands on the
/// pod's status alone).
async fn pod_events(client: &Client, ns: &str, pod: &str) -> Vec<PodEvent> {
    use k8s_openapi::api::core::v1::Event;
    let lp = ListParams::default().fields(&format!("involvedObject.name={pod}"));
    let list = match tokio::time::timeout(Duration::from_secs(3), Api::<Event>::namespaced(client.clone(), ns).list(&lp)).await {
        Ok(Ok(l)) => l.items,
        _ => return vec![],
    };
    let when = |e: &Event| {
        e.last_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .or_else(|| e.event_time.as_ref().map(|t| t.0.to_string()))
            .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0.to_string()))
            .unwrap_or_default()
    };
    let mut items = list;
    items.sort_by_key(|e| std::cmp::Reverse(when(e)));
    items
        .into_iter()
        .map(|e| PodEvent {
            kind: e.type_.unwrap_or_else(|| "Normal".into()),
            reason: e.reason.unwrap_or_default(),
            message: e.message.unwrap_or_default(),
            count: e.count.unwrap_or(1),
        })
        .collect()
}

/// The newest Warning event whose reason is one of `reasons` (all Warnings when empty).
fn warning<'a>(events: &'a [PodEvent], reasons: &[&str]) -> Option<&'a PodEvent> {
    events.iter().find(|e| e.kind == "Warning" && (reasons.is_empty() || reasons.contains(&e.reason.as_str())))
}

/// Reads a pod's phase, conditions and container states.
pub fn pod_verdict(pod: &Pod) -> PodVerdict {
    if let Some(t) = &pod.metadata.deletion_timestamp {
        return PodVerdict::Terminating { since: t.0.to_string() };
    }
    let status = pod.status.clone().unwrap_or_default();
    let phase = status.phase.clone().unwrap_or_else(|| "Unknown".into());
    let containers = status.container_statuses.clone().unwrap_or_default();
    let init = status.init_container_statuses.clone().unwrap_or_default();
    let restarts: i32 = containers.iter().map(|c| c.restart_count).sum();
    let oom = |c: &k8s_openapi::api::core::v1::ContainerStatus| {
        let last = c.last_state.as_ref().and_then(|s| s.terminated.as_ref()).and_then(|t| t.reason.clone());
        let now = c.state.as_ref().and_then(|s| s.terminated.as_ref()).and_then(|t| t.reason.clone());
        last.as_deref() == Some("OOMKilled") || now.as_deref() == Some("OOMKilled")
    };
    if let Some(c) = init.iter().chain(containers.iter()).find(|c| oom(c)) {
        let limit = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.iter().find(|x| x.name == c.name))
            .and_then(|x| x.resources.as_ref())
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get("memory"))
            .map(|q| q.0.clone());
        return PodVerdict::OomKilled { restarts: c.restart_count, limit };
    }
    for c in init.iter().chain(containers.iter()) {
        if let Some(w) = c.state.as_ref().and_then(|s| s.waiting.as_ref()) {
            let reason = w.reason.clone().unwrap_or_default();
            let message = w.message.clone().unwrap_or_default();
            if matches!(reason.as_str(), "ImagePullBackOff" | "ErrImagePull" | "InvalidImageName") {
                return PodVerdict::ImagePull { reason, image: c.image.clone(), message };
            }
            if reason == "CrashLoopBackOff" {
                return PodVerdict::CrashLoop { restarts: c.restart_count, container: c.name.clone() };
            }
            if !reason.is_empty() && reason != "ContainerCreating" && reason != "PodInitializing" {
                return PodVerdict::Waiting { reason, message };
            }
        }
    }
    if phase == "Running" && crate::pods::ready_condition(pod) {
        return PodVerdict::Ready { restarts };
    }
    let detail = status
        .conditions
        .as_ref()
        .and_then(|cs| cs.iter().find(|c| c.status != "True" && c.message.is_some()))
        .and_then(|c| c.message.clone())
        .unwrap_or_else(|| {
            let n_ready = containers.iter().filter(|c| c.ready).count();
            format!("{n_ready}/{} containers ready", containers.len().max(1))
        });
    PodVerdict::NotReady { phase, detail }
}

fn pick_pod(pods: Vec<Pod>) -> Option<Pod> {
    // Prefer the master of a Redis install; otherwise the first pod by name.
    let mut pods = pods;
    pods.sort_by_key(|p| p.metadata.name.clone());
    let master = pods
        .iter()
        .position(|p| p.metadata.labels.as_ref().and_then(|l| l.get("app.kubernetes.io/component")).is_some_and(|c| c == "master"));
    match master {
        Some(i) => Some(pods.swap_remove(i)),
        None => pods.into_iter().next(),
    }
}

async fn find_pod(p: &Probes, app: &str) -> Result<(Client, Pod), Outcome> {
    let client = client(p).await?;
    let ns = &p.cfg.namespace;
    let lp = ListParams::default().labels(&format!("app.kubernetes.io/name={app}"));
    let pods = Api::<Pod>::namespaced(client.clone(), ns).list(&lp).await.map_err(|e| unreachable(&e))?;
    match pick_pod(pods.items) {
        Some(pod) => Ok((client, pod)),
        None => Err(Outcome::fail(
            format!("no pod labelled app.kubernetes.io/name={app} in namespace {ns}"),
            format!("install it: {}", helm_for(app, ns)),
        )),
    }
}

async fn last_log_lines(client: &Client, ns: &str, pod: &str, container: Option<String>, previous: bool, n: i64) -> Vec<String> {
    let lp = LogParams { tail_lines: Some(n), previous, container, ..Default::default() };
    match Api::<Pod>::namespaced(client.clone(), ns).logs(pod, &lp).await {
        Ok(text) => text.lines().map(str::to_string).collect(),
        Err(_) => vec![],
    }
}

/// Memory the VM lacks, in the scheduler's words: Rancher Desktop's VM is too small.
fn memory_hint(app: &str, namespace: &str) -> String {
    format!(
        "give Rancher Desktop's VM more memory (Preferences → Virtual Machine → Memory, 4 GB or more: K3s takes about 1.6 GB, RabbitMQ and Redis about 0.5 GB more), or ask for less: {}",
        Chart::for_app(app).upgrade(namespace, "resourcesPreset=nano")
    )
}

async fn pod_check(p: &Probes, app: &str) -> Outcome {
    let (client, pod) = match find_pod(p, app).await {
        Ok(x) => x,
        Err(o) => return o,
    };
    let name = pod.metadata.name.clone().unwrap_or_default();
    let ns = &p.cfg.namespace;
    let qns = crate::shell::quote(ns);
    let verdict = pod_verdict(&pod);
    let events = match verdict {
        PodVerdict::Ready { .. } => vec![],
        _ => pod_events(&client, ns, &name).await,
    };
    // The event that says why, quoted in the detail.
    let quoting = |e: Option<&PodEvent>| e.map(|e| format!("; event: {}", e.line())).unwrap_or_default();
    match verdict {
        PodVerdict::Ready { restarts } => {
            let r = if restarts > 0 { format!(", {restarts} restart(s)") } else { String::new() };
            Outcome::pass(format!("{name} Running and Ready{r}")).fact(&format!("{app}_pod"), name)
        }
        PodVerdict::ImagePull { reason, image, message } => {
            let why = events.iter().find(|e| e.kind == "Warning" && e.reason == "Failed" && pull_cause(&e.message) != PullCause::Unknown);
            let words = why.map(|e| e.message.clone()).unwrap_or(message);
            Outcome::fail(
                format!("{name}: {reason} for image {image}{}", quoting(why.or_else(|| warning(&events, &["Failed", "BackOff"])))),
                image_pull_hint(app, &image, &words, ns),
            )
        }
        PodVerdict::Terminating { since } => Outcome::fail(
            format!("{name} is being deleted (Terminating since {since})"),
            format!(
                "wait until it is gone (`kubectl get pods -n {qns} -w`); a pod on its way out does not serve, so install again afterwards if you uninstalled: {}",
                helm_for(app, ns),
            ),
        ),
        PodVerdict::OomKilled { restarts, limit } => Outcome::fail(
            format!(
                "{name}: killed for using too much memory (OOMKilled, exit code 137), {restarts} restart(s){}{}",
                limit.map(|l| format!("; its memory limit is {l}")).unwrap_or_default(),
                quoting(warning(&events, &["BackOff", "OOMKilling"]))
            ),
            format!(
                "the chart's resourcesPreset (micro: 384Mi for RabbitMQ) is too small here: {}; and give Rancher Desktop's VM 4 GB or more",
                Chart::for_app(app).upgrade(ns, "resourcesPreset=small")
            ),
        ),
        PodVerdict::CrashLoop { restarts, container } => {
            let lines = last_log_lines(&client, ns, &name, Some(container), true, 5).await;
            let tail = if lines.is_empty() { "no log from the last run".to_string() } else { lines.join(" | ") };
            Outcome::fail(
                format!(
                    "{name}: CrashLoopBackOff after {restarts} restart(s); last log: {tail}{}",
                    quoting(warning(&events, &["BackOff"]))
                ),
                format!(
                    "read the whole log with `kubectl logs {name} -n {qns} --previous`; a wrong value in the helm install is the usual cause"
                ),
            )
        }
        PodVerdict::Waiting { reason, message } => Outcome::fail(
            format!(
                "{name}: waiting ({reason}{}){}",
                if message.is_empty() { String::new() } else { format!(": {message}") },
                quoting(warning(&events, &[]))
            ),
            format!("`kubectl describe pod {name} -n {qns}` shows the events behind this"),
        ),
        PodVerdict::NotReady { phase, detail } => {
            let unschedulable = warning(&events, &["FailedScheduling"]);
            match unschedulable {
                Some(e) if e.message.contains("Insufficient memory") => Outcome::fail(
                    format!("{name}: {phase}, not scheduled: the node has too little memory{}", quoting(Some(e))),
                    memory_hint(app, ns),
                ),
                Some(e) => Outcome::fail(
                    format!("{name}: {phase}, not scheduled{}", quoting(Some(e))),
                    format!("the scheduler says why above; `kubectl describe pod {name} -n {qns}` shows the rest"),
                ),
                None => Outcome::fail(
                    format!("{name}: {phase}, not ready ({detail}){}", quoting(warning(&events, &[]))),
                    format!("it may still be starting: watch with `kubectl get pods -n {qns} -w`"),
                ),
            }
        }
    }
}

pub async fn rabbitmq_pod(p: &Probes) -> Outcome {
    pod_check(p, "rabbitmq").await
}

pub async fn redis_pod(p: &Probes) -> Outcome {
    pod_check(p, "redis").await
}

pub async fn rabbitmq_log(p: &Probes) -> Outcome {
    let (client, pod) = match find_pod(p, "rabbitmq").await {
        Ok(x) => x,
        Err(o) => return o,
    };
    let name = pod.metadata.name.clone().unwrap_or_default();
    let lines = last_log_lines(&client, &p.cfg.namespace, &name, None, false, 2000).await;
    // Bitnami's setup starts and stops the node once before the real start: the last
    // "Server startup complete" after the last "Starting RabbitMQ" is the one that counts.
    let real_start = lines.iter().rposition(|l| l.contains("** Starting RabbitMQ **")).unwrap_or(0);
    let complete = lines[real_start..].iter().rev().find(|l| l.contains("Server startup complete"));
    let errors = lines[real_start..].iter().filter(|l| l.contains("[error]") || l.contains("CRASH")).count();
    match complete {
        Some(line) => {
            let mut o = Outcome::pass(format!("{name}: {}", line.trim()));
            if errors > 0 {
                o.detail.push_str(&format!(" ({errors} error line(s) in the log)"));
            }
            o
        }
        None if lines.is_empty() => Outcome::fail(format!("{name} has no log yet"), "the container has not started: see kube.rabbitmq_pod"),
        None => Outcome::fail(
            format!("{name}: no \"Server startup complete\" in the log yet ({} lines read)", lines.len()),
            format!("RabbitMQ takes a minute to boot: follow it with `kubectl logs -f statefulset/rabbitmq -n {}`", p.cfg.namespace),
        ),
    }
}

pub async fn services(p: &Probes) -> Outcome {
    let client = match client(p).await {
        Ok(c) => c,
        Err(o) => return o,
    };
    let api = Api::<Service>::namespaced(client, &p.cfg.namespace);
    let mut missing = vec![];
    let mut found = vec![];
    for (svc, ports) in [("rabbitmq", &[5672, 15672][..]), ("redis-master", &[6379][..])] {
        match api.get_opt(svc).await {
            Err(e) => return unreachable(&e),
            Ok(None) => missing.push(format!("service {svc} is missing")),
            Ok(Some(s)) => {
                let have: Vec<i32> = s.spec.and_then(|s| s.ports).unwrap_or_default().iter().map(|p| p.port).collect();
                let lacking: Vec<String> = ports.iter().filter(|p| !have.contains(p)).map(|p| p.to_string()).collect();
                if lacking.is_empty() {
                    found.push(format!("{svc} ({})", ports.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")));
                } else {
                    missing.push(format!("service {svc} lacks port(s) {}", lacking.join(", ")));
                }
            }
        }
    }
    if missing.is_empty() {
        Outcome::pass(format!("services {}", found.join(", ")))
    } else {
        Outcome::fail(
            missing.join("; "),
            format!(
                "the Helm releases create these services: {} / {}",
                helm_for("rabbitmq", &p.cfg.namespace),
                helm_for("redis", &p.cfg.namespace)
            ),
        )
    }
}
