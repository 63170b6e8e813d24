//! Cluster checks with kube-rs, against the user's kubeconfig (`$KUBECONFIG` or ~/.kube/config).

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use kube::api::{ListParams, LogParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};

use super::{Outcome, Probes, error_chain};

/// The RabbitMQ image that pulls today: Bitnami's free images moved to `bitnamilegacy` in 2025
/// (this tag answered on 2026-09-27), frozen there without updates; pinned so the command does
/// not drift when the chart's default tag moves on.
pub const RABBITMQ_IMAGE_REPOSITORY: &str = "bitnamilegacy/rabbitmq";
pub const RABBITMQ_IMAGE_TAG: &str = "4.1.3-debian-12-r1";

/// The Helm install of RabbitMQ, as the lesson shows it (one option per line). The lessons and
/// the hints both use this text: there is one source.
pub fn helm_rabbitmq(namespace: &str) -> String {
    format!(
        "helm install rabbitmq bitnami/rabbitmq --namespace {namespace} \\\n  \
         --set image.repository={RABBITMQ_IMAGE_REPOSITORY} \\\n  \
         --set image.tag={RABBITMQ_IMAGE_TAG} \\\n  \
         --set global.security.allowInsecureImages=true \\\n  \
         --set auth.username=admin --set auth.password=admin123 \\\n  \
         --set persistence.enabled=false \\\n  \
         --set metrics.enabled=true"
    )
}

/// The Helm install of Redis: its image is still in Bitnami's free catalogue, so the chart's own
/// image is used (no override to a frozen tag).
pub fn helm_redis(namespace: &str) -> String {
    format!(
        "helm install redis bitnami/redis --namespace {namespace} \\\n  \
         --set auth.enabled=false \\\n  \
         --set architecture=standalone \\\n  \
         --set master.persistence.enabled=false"
    )
}

/// A multi-line command on one line (for hints).
pub fn one_line(cmd: &str) -> String {
    cmd.replace(" \\\n  ", " ")
}

fn helm_for(app: &str, namespace: &str) -> String {
    one_line(&if app == "rabbitmq" { helm_rabbitmq(namespace) } else { helm_redis(namespace) })
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

/// A client for the selected context.
pub async fn client(p: &Probes) -> Result<Client, Outcome> {
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
    config.read_timeout = Some(Duration::from_secs(4));
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

/// What to do about an image that does not pull, from the image's repository and the kubelet's
/// message: not found, a pull rate limit, or refused credentials.
pub fn image_pull_hint(app: &str, image: &str, message: &str, namespace: &str) -> String {
    let m = message.to_ascii_lowercase();
    if m.contains("toomanyrequests") || m.contains("rate limit") {
        return "Docker Hub's pull rate limit for anonymous pulls was reached: wait (the limit resets within hours) or log in to Docker Hub in Rancher Desktop, then delete the pod so it pulls again".to_string();
    }
    if m.contains("unauthorized") || m.contains("authentication required") || m.contains("denied") {
        return format!(
            "the registry refused to hand out {image} (unauthorized): the image is private or moved; check the name, or log in to the registry"
        );
    }
    if image.contains("bitnamilegacy/") {
        return format!(
            "{image} is not in docker.io/bitnamilegacy (the frozen legacy repository has no such tag): install with the tag the lesson pins: helm uninstall {app} -n {namespace}; {}",
            helm_for(app, namespace)
        );
    }
    if app == "redis" && image.contains("bitnami/redis:") && !image.ends_with(":latest") {
        return format!(
            "Bitnami's free catalogue keeps only bitnami/redis:latest, which current charts use; this chart pins a tag that is gone. Update the chart list and reinstall: helm repo update; helm uninstall redis -n {namespace}; {}",
            helm_for(app, namespace)
        );
    }
    if image.contains("bitnami/") {
        return format!(
            "Bitnami's free images moved to docker.io/bitnamilegacy in August 2025, so the chart's default image no longer exists. Reinstall: helm uninstall {app} -n {namespace}; {}",
            helm_for(app, namespace)
        );
    }
    format!("the image {image} does not pull: `kubectl describe pod -n {namespace}` shows the kubelet's message; {message}")
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

async fn pod_check(p: &Probes, app: &str) -> Outcome {
    let (client, pod) = match find_pod(p, app).await {
        Ok(x) => x,
        Err(o) => return o,
    };
    let name = pod.metadata.name.clone().unwrap_or_default();
    match pod_verdict(&pod) {
        PodVerdict::Ready { restarts } => {
            let r = if restarts > 0 { format!(", {restarts} restart(s)") } else { String::new() };
            Outcome::pass(format!("{name} Running and Ready{r}")).fact(&format!("{app}_pod"), name)
        }
        PodVerdict::ImagePull { reason, image, message } => {
            Outcome::fail(format!("{name}: {reason} for image {image}"), image_pull_hint(app, &image, &message, &p.cfg.namespace))
        }
        PodVerdict::Terminating { since } => Outcome::fail(
            format!("{name} is being deleted (Terminating since {since})"),
            format!(
                "wait until it is gone (`kubectl get pods -n {ns} -w`); a pod on its way out does not serve, so install again afterwards if you uninstalled: {}",
                helm_for(app, &p.cfg.namespace),
                ns = p.cfg.namespace
            ),
        ),
        PodVerdict::OomKilled { restarts, limit } => Outcome::fail(
            format!(
                "{name}: killed for using too much memory (OOMKilled), {restarts} restart(s){}",
                limit.map(|l| format!("; its memory limit is {l}")).unwrap_or_default()
            ),
            format!(
                "the chart's resourcesPreset (micro: 384Mi for RabbitMQ) is too small here: helm upgrade {app} bitnami/{app} -n {} --reuse-values --set resourcesPreset=small; and give Rancher Desktop's VM 4 GB or more",
                p.cfg.namespace
            ),
        ),
        PodVerdict::CrashLoop { restarts, container } => {
            let lines = last_log_lines(&client, &p.cfg.namespace, &name, Some(container), true, 5).await;
            let tail = if lines.is_empty() { "no log from the last run".to_string() } else { lines.join(" | ") };
            Outcome::fail(
                format!("{name}: CrashLoopBackOff after {restarts} restart(s); last log: {tail}"),
                format!(
                    "read the whole log with `kubectl logs {name} -n {} --previous`; a wrong value in the helm install is the usual cause",
                    p.cfg.namespace
                ),
            )
        }
        PodVerdict::Waiting { reason, message } => Outcome::fail(
            format!("{name}: waiting ({reason}{})", if message.is_empty() { String::new() } else { format!(": {message}") }),
            format!("kubectl describe pod {name} -n {} shows the events behind this", p.cfg.namespace),
        ),
        PodVerdict::NotReady { phase, detail } => Outcome::fail(
            format!("{name}: {phase}, not ready ({detail})"),
            format!("it may still be starting: watch with `kubectl get pods -n {} -w`", p.cfg.namespace),
        ),
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
