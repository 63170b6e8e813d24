//! The checks: cluster checks against a fake Kubernetes API in each state a learner meets,
//! broker and Redis checks against the real services (right and wrong credentials, service down),
//! task checks through a real worker.

mod common;

use common::Need;

use std::process::Command;

use common::fake_kube::{FakeKube, Scenario, kubeconfig_for};
use mqlab::config::{Config, Overrides, Track};
use mqlab::probes::{CheckResult, Probes, Status};

fn config(track: Track) -> Config {
    let dir = std::env::temp_dir();
    let over = Overrides { track: Some(track), ..Default::default() };
    let env = move |k: &str| match k {
        "MQLAB_CONFIG" => Some("/nonexistent/config.toml".to_string()),
        "MQLAB_DATA_DIR" => Some(dir.to_string_lossy().to_string()),
        "MQLAB_BROKER_URL" => Some(common::broker()),
        "MQLAB_RESULT_BACKEND" => Some(common::redis()),
        "MQLAB_MANAGEMENT_URL" => Some(common::management()),
        _ => None,
    };
    Config::load_with(&over, &env).unwrap()
}

fn probes_for(fake: &FakeKube, current: &str) -> Probes {
    let mut p = Probes::new(config(Track::K3s));
    p.kubeconfig = Some(fake.kubeconfig(current));
    p
}

const KUBE: &[&str] = &[
    "kube.context",
    "kube.api",
    "kube.node_ready",
    "kube.namespace",
    "kube.rabbitmq_pod",
    "kube.rabbitmq_log",
    "kube.redis_pod",
    "kube.services",
];

async fn run(p: &Probes) -> Vec<CheckResult> {
    p.run_many(KUBE).await
}

fn get<'a>(rs: &'a [CheckResult], id: &str) -> &'a CheckResult {
    rs.iter().find(|r| r.id == id).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn healthy_cluster_passes_everything() {
    let fake = FakeKube::start(Scenario::Healthy);
    let rs = run(&probes_for(&fake, "rancher-desktop")).await;
    for r in &rs {
        assert_eq!(r.status, Status::Pass, "{r:?}");
    }
    assert!(get(&rs, "kube.api").detail.contains("v1.33.4+k3s1"));
    assert_eq!(get(&rs, "kube.node_ready").detail, "lima-rancher-desktop Ready, v1.33.4+k3s1");
    assert_eq!(get(&rs, "kube.node_ready").facts["k3s_version"], "v1.33.4+k3s1");
    assert_eq!(get(&rs, "kube.rabbitmq_pod").detail, "rabbitmq-0 Running and Ready");
    assert_eq!(get(&rs, "kube.redis_pod").detail, "redis-master-0 Running and Ready");
    assert!(
        get(&rs, "kube.rabbitmq_log").detail.contains("Server startup complete; 5 plugins started."),
        "{:?}",
        get(&rs, "kube.rabbitmq_log")
    );
    assert_eq!(get(&rs, "kube.services").detail, "services rabbitmq (5672, 15672), redis-master (6379)");
    // Pods were found by their labels, not by name.
    let reqs = fake.requests.lock().unwrap().clone();
    assert!(reqs.iter().any(|r| r.contains("labelSelector=app.kubernetes.io%2Fname%3Drabbitmq")), "{reqs:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn node_not_ready_says_why() {
    let fake = FakeKube::start(Scenario::NodeNotReady);
    let rs = run(&probes_for(&fake, "rancher-desktop")).await;
    let r = get(&rs, "kube.node_ready");
    assert_eq!(r.status, Status::Fail);
    assert!(r.detail.contains("lima-rancher-desktop (KubeletNotReady: container runtime network not ready"), "{}", r.detail);
    assert!(r.hint.as_ref().unwrap().contains("wait a minute"));
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_namespace_gives_the_create_command_and_skips_the_rest() {
    let fake = FakeKube::start(Scenario::NamespaceMissing);
    let rs = run(&probes_for(&fake, "rancher-desktop")).await;
    let r = get(&rs, "kube.namespace");
    assert_eq!(r.status, Status::Fail);
    assert_eq!(r.detail, "namespace messaging does not exist");
    assert_eq!(r.hint.as_deref(), Some("kubectl create namespace messaging"));
    assert_eq!(get(&rs, "kube.rabbitmq_pod").status, Status::Skipped);
    assert_eq!(get(&rs, "kube.node_ready").status, Status::Pass);
}

#[tokio::test(flavor = "multi_thread")]
async fn image_pull_backoff_points_at_bitnamilegacy() {
    let fake = FakeKube::start(Scenario::ImagePullBackOff);
    let rs = run(&probes_for(&fake, "rancher-desktop")).await;
    let r = get(&rs, "kube.rabbitmq_pod");
    assert_eq!(r.status, Status::Fail);
    assert!(r.detail.starts_with("rabbitmq-0: ImagePullBackOff for image docker.io/bitnami/rabbitmq:4.1.3-debian-12-r1; event: Warning Failed (×3): Failed to pull image"), "{}", r.detail);
    assert!(r.detail.contains(": not found"), "the event that says why is quoted: {}", r.detail);
    let hint = r.hint.as_ref().unwrap();
    assert!(
        hint.contains("bitnamilegacy")
            && hint.contains("global.security.allowInsecureImages=true")
            && hint.contains("--version 16.0.14")
            && hint.contains("helm uninstall rabbitmq"),
        "{hint}"
    );
    let r = get(&rs, "kube.redis_pod");
    assert_eq!(r.status, Status::Fail);
    let hint = r.hint.as_ref().unwrap();
    assert!(r.detail.contains("ErrImagePull") && hint.contains("oci://registry-1.docker.io/bitnamicharts/redis --version 22.0.7"), "{r:?}");
    assert!(hint.contains("--set image.repository=bitnamilegacy/redis"), "{hint}");
    // The events were read for the failing pods, by the pod's name.
    let reqs = fake.requests.lock().unwrap().clone();
    assert!(reqs.iter().any(|q| q.contains("/events") && q.contains("involvedObject.name%3Drabbitmq-0")), "{reqs:?}");
}

/// Each cause of a failed pull, told from the pod's Events; the hint never recommends the
/// install whose image just failed.
#[tokio::test(flavor = "multi_thread")]
async fn pull_failures_are_told_apart_by_the_pods_events() {
    use mqlab::probes::kube::{helm_rabbitmq, helm_redis, one_line};
    let pinned_installs = [one_line(&helm_rabbitmq("messaging")), one_line(&helm_redis("messaging"))];
    for (scenario, id, in_detail, in_hint) in [
        (Scenario::PullRateLimited, "kube.rabbitmq_pod", "429 Too Many Requests", "rate limit for anonymous pulls"),
        (Scenario::PullNoNetwork, "kube.redis_pod", "no such host", "cannot reach the registry"),
        (Scenario::LegacyGone, "kube.rabbitmq_pod", "bitnamilegacy/rabbitmq:4.1.3-debian-12-r1: not found", "If the image does not pull"),
    ] {
        let fake = FakeKube::start(scenario);
        let rs = run(&probes_for(&fake, "rancher-desktop")).await;
        let r = get(&rs, id);
        assert_eq!(r.status, Status::Fail, "{scenario:?}: {r:?}");
        assert!(r.detail.contains("event: Warning Failed") && r.detail.contains(in_detail), "{scenario:?}: {}", r.detail);
        let hint = r.hint.as_deref().unwrap();
        assert!(hint.contains(in_hint), "{scenario:?}: {hint}");
        for install in &pinned_installs {
            assert!(!hint.contains(install.as_str()), "{scenario:?} recommends the command that just failed: {hint}");
        }
        assert!(!hint.contains("helm install"), "{scenario:?}: {hint}");
    }
}

/// A pod the scheduler cannot place for memory, and one killed for memory: the event that says
/// why is quoted, and the hint is about memory (the VM's, or the chart's preset), not waiting.
#[tokio::test(flavor = "multi_thread")]
async fn memory_trouble_quotes_the_scheduler_and_the_kill() {
    let fake = FakeKube::start(Scenario::PendingMemory);
    let rs = run(&probes_for(&fake, "rancher-desktop")).await;
    let r = get(&rs, "kube.rabbitmq_pod");
    assert_eq!(r.status, Status::Fail);
    assert!(
        r.detail.contains("too little memory")
            && r.detail.contains("FailedScheduling (×4): 0/1 nodes are available: 1 Insufficient memory"),
        "{}",
        r.detail
    );
    let hint = r.hint.as_deref().unwrap();
    assert!(
        hint.contains("Virtual Machine")
            && hint.contains("helm upgrade rabbitmq oci://registry-1.docker.io/bitnamicharts/rabbitmq --version 16.0.14"),
        "{hint}"
    );

    let fake = FakeKube::start(Scenario::OomKilled);
    let rs = run(&probes_for(&fake, "rancher-desktop")).await;
    let r = get(&rs, "kube.rabbitmq_pod");
    assert_eq!(r.status, Status::Fail);
    assert!(
        r.detail.contains("OOMKilled") && r.detail.contains("384Mi") && r.detail.contains("Back-off restarting failed container"),
        "{}",
        r.detail
    );
    assert!(r.hint.as_deref().unwrap().contains("--reuse-values --set resourcesPreset=small"), "{r:?}");
}

/// Nothing installed in the cluster, no forwards, and this machine's own RabbitMQ and Redis
/// answering on the configured ports: no check of the services passes on the cluster track, and
/// each says the answer is not the cluster's.
#[tokio::test(flavor = "multi_thread")]
async fn an_empty_namespace_with_local_services_answering_passes_no_service_check() {
    if !common::have(&[Need::Rabbitmq, Need::Management, Need::Redis]) {
        return;
    }
    let fake = FakeKube::start(Scenario::EmptyNamespace);
    let data = tempfile::tempdir().unwrap();
    let mut p = probes_for(&fake, "rancher-desktop");
    p.cfg.data_dir = data.path().to_path_buf();
    let course = mqlab::lessons::Course::embedded().unwrap();
    let mut ids = course.all_checks(Track::K3s);
    for extra in ["ports.local", "amqp.login", "mgmt.login", "mgmt.exchanges", "redis.ping", "tasks.roundtrip", "results.learner"] {
        if !ids.iter().any(|i| i == extra) {
            ids.push(extra.to_string());
        }
    }
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let rs = p.run_many(&refs).await;
    for r in &rs {
        if matches!(r.id.as_str(), "kube.context" | "kube.api" | "kube.node_ready" | "kube.namespace") {
            assert_eq!(r.status, Status::Pass, "the cluster itself is there: {r:?}");
            continue;
        }
        assert_ne!(r.status, Status::Pass, "{r:?}");
    }
    for id in ["ports.local", "amqp.login", "mgmt.login", "redis.ping", "results.learner"] {
        let r = get(&rs, id);
        assert!(r.detail.contains("is not the cluster's"), "{id}: {r:?}");
        let hint = r.hint.as_deref().unwrap();
        assert!(hint.contains("press F") && hint.contains("kubectl port-forward svc/"), "{id}: {hint}");
    }
    assert!(get(&rs, "kube.rabbitmq_pod").detail.contains("no pod labelled app.kubernetes.io/name=rabbitmq"), "{rs:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_loop_reports_restarts_and_the_last_log_lines() {
    let fake = FakeKube::start(Scenario::CrashLoop);
    let rs = run(&probes_for(&fake, "rancher-desktop")).await;
    let r = get(&rs, "kube.rabbitmq_pod");
    assert_eq!(r.status, Status::Fail);
    assert!(r.detail.starts_with("rabbitmq-0: CrashLoopBackOff after 5 restart(s); last log:"), "{}", r.detail);
    assert!(r.detail.contains("could not bind to distribution port 25672"), "{}", r.detail);
    assert!(r.hint.as_ref().unwrap().contains("kubectl logs rabbitmq-0 -n messaging --previous"));
    assert!(fake.requests.lock().unwrap().iter().any(|q| q.contains("/pods/rabbitmq-0/log") && q.contains("previous=true")));
    assert_eq!(get(&rs, "kube.rabbitmq_log").status, Status::Fail);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_booting_rabbitmq_is_not_taken_for_started() {
    // Bitnami's setup prints "Server startup complete" once before the real start.
    let fake = FakeKube::start(Scenario::RabbitStarting);
    let rs = run(&probes_for(&fake, "rancher-desktop")).await;
    let r = get(&rs, "kube.rabbitmq_log");
    assert_eq!(r.status, Status::Fail, "{r:?}");
    assert!(r.hint.as_ref().unwrap().contains("kubectl logs -f statefulset/rabbitmq -n messaging"));
    assert!(get(&rs, "kube.rabbitmq_pod").detail.contains("Running, not ready"), "{:?}", get(&rs, "kube.rabbitmq_pod"));
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_or_other_context() {
    let fake = FakeKube::start(Scenario::Healthy);
    let dir = tempfile::tempdir().unwrap();
    let mut p = Probes::new(config(Track::K3s));
    p.kubeconfig = Some(kubeconfig_for(&dir, &format!("http://127.0.0.1:{}", fake.port), "docker-desktop", &["docker-desktop"]));
    let rs = run(&p).await;
    let r = get(&rs, "kube.context");
    assert_eq!(r.status, Status::Fail);
    assert_eq!(r.detail, "context \"rancher-desktop\" is not in the kubeconfig (contexts: docker-desktop)");
    assert!(r.hint.as_ref().unwrap().contains("start Rancher Desktop"));
    assert!(rs.iter().filter(|r| r.id != "kube.context").all(|r| r.status == Status::Skipped));

    // The context exists but another one is current.
    let rs = run(&probes_for(&fake, "docker-desktop")).await;
    let r = get(&rs, "kube.context");
    assert_eq!(r.status, Status::Fail);
    assert_eq!(r.hint.as_deref(), Some("run `kubectl config use-context rancher-desktop` so kubectl and mqlab look at the same cluster"));
    // ...which is fine when chosen explicitly.
    let mut p = probes_for(&fake, "docker-desktop");
    p.context_explicit = true;
    assert_eq!(p.run("kube.context").await.status, Status::Pass);
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_api_and_broken_kubeconfig() {
    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut p = Probes::new(config(Track::K3s));
    p.kubeconfig = Some(kubeconfig_for(&dir, &format!("http://127.0.0.1:{closed}"), "rancher-desktop", &["rancher-desktop"]));
    let rs = run(&p).await;
    assert_eq!(get(&rs, "kube.context").status, Status::Pass);
    let r = get(&rs, "kube.api");
    assert_eq!(r.status, Status::Fail);
    assert!(r.detail.starts_with("the API server does not answer"), "{}", r.detail);
    assert!(r.hint.as_ref().unwrap().contains("Kubernetes is running"));
    assert_eq!(get(&rs, "kube.node_ready").status, Status::Skipped);

    let broken = dir.path().join("broken");
    std::fs::write(&broken, "apiVersion: v1\nkind: Config\nclusters: [this is: not valid\n").unwrap();
    p.kubeconfig = Some(broken);
    let r = p.run("kube.context").await;
    assert_eq!(r.status, Status::Fail);
    assert!(r.detail.starts_with("cannot read the kubeconfig"), "{}", r.detail);
    assert!(!r.detail.contains('\n'));
}

/// kubectl itself reads the fake as a real cluster: evidence that its JSON is realistic.
#[test]
fn kubectl_agrees_with_the_fake() {
    if !common::have(&[Need::Kubectl]) {
        return;
    }
    if Command::new("kubectl").arg("version").arg("--client").output().is_err() {
        panic!("kubectl is needed for this test (.ci/run installs it)");
    }
    let fake = FakeKube::start(Scenario::ImagePullBackOff);
    let cfg = fake.kubeconfig("rancher-desktop");
    let kubectl = |args: &[&str]| {
        let out = Command::new("kubectl").arg("--kubeconfig").arg(&cfg).args(args).output().unwrap();
        assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    // The fake does not render server-side tables, so read fields the way kubectl users do.
    let nodes = kubectl(&[
        "get",
        "nodes",
        "-o",
        "custom-columns=NAME:.metadata.name,READY:.status.conditions[?(@.type=='Ready')].status,VERSION:.status.nodeInfo.kubeletVersion",
    ]);
    assert!(nodes.contains("lima-rancher-desktop") && nodes.contains("True") && nodes.contains("v1.33.4+k3s1"), "{nodes}");
    let pods = kubectl(&[
        "get",
        "pods",
        "-n",
        "messaging",
        "-l",
        "app.kubernetes.io/name=rabbitmq",
        "-o",
        "custom-columns=NAME:.metadata.name,PHASE:.status.phase,WAITING:.status.containerStatuses[0].state.waiting.reason",
    ]);
    assert!(
        pods.contains("rabbitmq-0") && pods.contains("Pending") && pods.contains("ImagePullBackOff") && !pods.contains("redis"),
        "{pods}"
    );
    let svc = kubectl(&["get", "svc", "redis-master", "-n", "messaging", "-o", "jsonpath={.spec.ports[0].port}"]);
    assert_eq!(svc, "6379");
    let version = kubectl(&["version", "-o", "json"]);
    assert!(version.contains("v1.33.4+k3s1"), "{version}");
    let ns = kubectl(&["get", "namespace", "messaging", "-o", "jsonpath={.status.phase}"]);
    assert_eq!(ns, "Active");
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_and_redis_checks_against_the_real_services() {
    if !common::have(&[Need::Rabbitmq, Need::Management, Need::Redis]) {
        return;
    }
    let p = Probes::new(config(Track::Local));
    for id in ["amqp.login", "mgmt.login", "mgmt.exchanges", "redis.ping", "ports.local"] {
        let r = p.run(id).await;
        assert_eq!(r.status, Status::Pass, "{r:?}");
    }
    let r = p.run("mgmt.login").await;
    assert!(r.detail.contains("as guest: RabbitMQ"), "{}", r.detail);
    assert!(r.facts.contains_key("rabbitmq_version"));
    assert!(p.run("redis.ping").await.detail.starts_with("PING → PONG from Redis"));

    // Wrong credentials.
    let mut bad = config(Track::K3s);
    bad.broker_url = common::broker_as("admin", "admin123", "");
    let pb = Probes::new(bad);
    let r = pb.run("amqp.login").await;
    assert_eq!(r.status, Status::Fail);
    assert!(r.detail.contains("login refused") && !r.detail.contains("admin123"), "{}", r.detail);
    let r = pb.run("mgmt.login").await;
    assert_eq!(r.status, Status::Fail);
    assert!(r.detail.starts_with("login refused (401) for user \"admin\""), "{}", r.detail);
    assert!(r.hint.as_ref().unwrap().contains("admin / admin123"));

    // Services down (nothing listens on these ports).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut down = config(Track::K3s);
    down.broker_url = format!("amqp://guest:guest@127.0.0.1:{closed}//");
    down.management_url = format!("http://127.0.0.1:{closed}");
    down.result_backend = format!("redis://127.0.0.1:{closed}/0");
    let pd = Probes::new(down);
    for id in ["amqp.login", "mgmt.login", "redis.ping", "ports.local"] {
        let r = pd.run(id).await;
        assert_eq!(r.status, Status::Fail, "{r:?}");
        assert!(r.hint.as_ref().unwrap().contains("kubectl port-forward svc/"), "{id}: {r:?}");
    }
    let mut local_down = pd.cfg.clone();
    local_down.track = Track::Local;
    let r = Probes::new(local_down).run("redis.ping").await;
    assert!(r.hint.unwrap().contains("mqlab sandbox up"));
}

#[tokio::test(flavor = "multi_thread")]
async fn task_checks_go_through_a_real_worker() {
    if !common::have(&[Need::Rabbitmq, Need::Redis]) {
        return;
    }
    let q = common::queue("taskcheck");
    let mut cfg = config(Track::Local);
    cfg.queue = q.clone();
    let p = Probes::new(cfg);
    let r = p.run("mgmt.celery_queue").await;
    assert_eq!(r.status, Status::Fail);
    assert!(r.detail.contains("does not exist yet"), "{r:?}");

    let mut o = mqlab::celery::WorkerOptions::new(common::broker(), Some(common::redis()));
    o.queue = q.clone();
    let mut w = mqlab::celery::worker::spawn(o, None);
    let r = p.run("tasks.roundtrip").await;
    assert_eq!(r.status, Status::Pass, "{r:?}");
    assert!(r.detail.starts_with("tasks.add(42, 58) = 100 in"));
    let r = p.run("tasks.failure").await;
    assert_eq!(r.status, Status::Pass, "{r:?}");
    // The consumer is counted by the broker itself (AMQP), not by the management API's 5 s
    // sample: a worker that just said "ready" counts at once.
    let r = p.run("mgmt.celery_queue").await;
    assert_eq!(r.status, Status::Pass, "{r:?}");
    assert!(r.detail.contains("1 consumer(s)"), "{r:?}");
    let q2 = common::queue("taskcheck-fresh");
    let mut cfg2 = p.cfg.clone();
    cfg2.queue = q2.clone();
    let p2 = Probes::new(cfg2);
    let mut o = mqlab::celery::WorkerOptions::new(common::broker(), Some(common::redis()));
    o.queue = q2.clone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut w2 = mqlab::celery::worker::spawn(o, Some(tx));
    let ready = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while let Some(ev) = rx.recv().await {
            if matches!(ev, mqlab::celery::worker::WorkerEvent::Ready { .. }) {
                return std::time::Instant::now();
            }
        }
        panic!("the worker's events ended before it was ready");
    })
    .await
    .expect("the worker is ready within 20 s");
    let r = p2.run("mgmt.celery_queue").await;
    assert!(ready.elapsed() < std::time::Duration::from_secs(1), "the check answered within 1 s of ready");
    assert_eq!(r.status, Status::Pass, "within 1 s of ready: {r:?}");
    w2.stop(mqlab::celery::worker::StopMode::Warm);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), w2.wait()).await;
    common::cleanup(&q2).await;
    w.stop(mqlab::celery::worker::StopMode::Warm);
    w.wait().await.unwrap();
    common::cleanup(&q).await;
}

/// Pod verdicts read from real-shaped pods: a Terminating pod is not ready, an OOMKilled one says
/// so with its limit, and image pull hints follow the image's repository and the kubelet's words.
#[test]
fn sharper_pod_verdicts() {
    use k8s_openapi::api::core::v1::Pod;
    use mqlab::probes::kube::{PodVerdict, image_pull_hint, pod_verdict};
    let pod = |extra_meta: serde_json::Value, container: serde_json::Value, limit: Option<&str>| -> Pod {
        let mut meta = serde_json::json!({"name": "rabbitmq-0", "namespace": "messaging"});
        for (k, v) in extra_meta.as_object().unwrap() {
            meta[k] = v.clone();
        }
        let resources = match limit {
            Some(l) => serde_json::json!({"limits": {"memory": l}}),
            None => serde_json::json!({}),
        };
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"containers": [{"name": "rabbitmq", "image": "docker.io/bitnamilegacy/rabbitmq:4.1.3-debian-12-r1", "resources": resources}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}], "containerStatuses": [container]}
        }))
        .unwrap()
    };
    let running = serde_json::json!({"name": "rabbitmq", "image": "x", "imageID": "", "ready": true, "restartCount": 0,
        "state": {"running": {"startedAt": "2026-11-27T08:50:05Z"}}});
    assert!(matches!(pod_verdict(&pod(serde_json::json!({}), running.clone(), None)), PodVerdict::Ready { .. }));
    let deleting = pod(serde_json::json!({"deletionTimestamp": "2026-11-27T09:00:00Z", "deletionGracePeriodSeconds": 30}), running, None);
    assert!(matches!(pod_verdict(&deleting), PodVerdict::Terminating { .. }), "a Terminating pod never passes");
    let oom = serde_json::json!({"name": "rabbitmq", "image": "x", "imageID": "", "ready": true, "restartCount": 3,
        "state": {"running": {"startedAt": "2026-11-27T08:59:05Z"}},
        "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled", "startedAt": "2026-11-27T08:50:05Z", "finishedAt": "2026-11-27T08:59:00Z"}}});
    match pod_verdict(&pod(serde_json::json!({}), oom, Some("384Mi"))) {
        PodVerdict::OomKilled { restarts, limit } => assert_eq!((restarts, limit.as_deref()), (3, Some("384Mi"))),
        other => panic!("{other:?}"),
    }
    let not_found =
        image_pull_hint("rabbitmq", "docker.io/bitnami/rabbitmq:4.1.3-debian-12-r1", "failed to resolve reference: not found", "messaging");
    assert!(
        not_found.contains("moved to docker.io/bitnamilegacy") && not_found.contains("--set image.tag=4.1.3-debian-12-r1"),
        "{not_found}"
    );
    let legacy = image_pull_hint("rabbitmq", "docker.io/bitnamilegacy/rabbitmq:9.9.9", "not found", "messaging");
    assert!(legacy.contains("is not in docker.io/bitnamilegacy") && !legacy.contains("moved to"), "{legacy}");
    let limited = image_pull_hint(
        "redis",
        "docker.io/bitnami/redis:latest",
        "429 Too Many Requests - Server message: toomanyrequests: You have reached your pull rate limit",
        "messaging",
    );
    assert!(limited.contains("rate limit"), "{limited}");
    let auth = image_pull_hint(
        "redis",
        "registry.example/redis:8",
        "pull access denied, repository does not exist or may require authorization: unauthorized",
        "messaging",
    );
    assert!(auth.contains("unauthorized"), "{auth}");
}

/// One source for the install commands: the lessons, the hints and the README show exactly the
/// pinned OCI installs (chart version and legacy image), with the namespace templated.
#[test]
fn lessons_hints_and_readme_give_the_same_pinned_helm_commands() {
    use mqlab::probes::kube::{RABBITMQ_CHART, REDIS_CHART, helm_rabbitmq, helm_redis, image_pull_hint, one_line};
    let env = |k: &str| match k {
        "MQLAB_CONFIG" => Some("/nonexistent".to_string()),
        "MQLAB_DATA_DIR" => Some("/nonexistent-data".to_string()),
        "MQLAB_NAMESPACE" => Some("queues-lab".to_string()),
        _ => None,
    };
    let cfg = mqlab::config::Config::load_with(&Default::default(), &env).unwrap();
    let course = mqlab::lessons::Course::embedded().unwrap();
    let commands = |step: u32| course.lesson(step).unwrap().commands_with(mqlab::config::Track::K3s, &cfg);
    assert!(commands(2).iter().any(|c| c.contains(&helm_rabbitmq("queues-lab"))), "{:#?}", commands(2));
    assert!(commands(4).iter().any(|c| c.contains(&helm_redis("queues-lab"))), "{:#?}", commands(4));
    assert_eq!(
        one_line(&helm_rabbitmq("messaging")),
        "helm install rabbitmq oci://registry-1.docker.io/bitnamicharts/rabbitmq --version 16.0.14 --namespace messaging \
         --set image.repository=bitnamilegacy/rabbitmq --set image.tag=4.1.3-debian-12-r1 --set global.security.allowInsecureImages=true \
         --set auth.username=admin --set auth.password=admin123 --set persistence.enabled=false --set metrics.enabled=true"
    );
    assert_eq!(
        one_line(&helm_redis("messaging")),
        "helm install redis oci://registry-1.docker.io/bitnamicharts/redis --version 22.0.7 --namespace messaging \
         --set image.repository=bitnamilegacy/redis --set image.tag=8.2.1-debian-12-r0 --set global.security.allowInsecureImages=true \
         --set auth.enabled=false --set architecture=standalone --set master.persistence.enabled=false"
    );
    // No lesson or hint names the unpinned HTTP chart index any more, on either track.
    for l in &course.lessons {
        for track in [mqlab::config::Track::K3s, mqlab::config::Track::Local] {
            let text = mqlab::lessons::template::fill(&l.text(track), &cfg);
            assert!(!text.contains("bitnami/rabbitmq --") && !text.contains("bitnami/redis --"), "{}: {text}", l.file);
            assert!(!text.contains("helm repo add bitnami"), "{}", l.file);
            assert!(!text.contains("-n messaging") && !text.contains("namespace messaging"), "{}: namespace not templated", l.file);
        }
    }
    // Every helm line of the lessons (upgrade and uninstall included) takes the chart from the
    // one source.
    for l in &course.lessons {
        for c in l.commands_with(mqlab::config::Track::K3s, &cfg) {
            for line in c.lines().filter(|x| x.trim_start().starts_with("helm install") || x.trim_start().starts_with("helm upgrade")) {
                assert!(line.contains(&RABBITMQ_CHART.reference()) || line.contains(&REDIS_CHART.reference()), "{}: {line}", l.file);
            }
        }
    }
    // The README shows the same installs.
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for chart in [RABBITMQ_CHART, REDIS_CHART] {
        assert!(readme.contains(&chart.reference()), "README lacks {}", chart.reference());
        assert!(readme.contains(&format!("{}:{}", chart.image_repository, chart.image_tag)), "README lacks the {} image", chart.release);
    }
    // A hint never recommends the command whose image just failed to pull.
    for chart in [RABBITMQ_CHART, REDIS_CHART] {
        let hint = image_pull_hint(chart.release, &chart.image(), "failed to resolve reference: not found", "messaging");
        assert!(!hint.contains("helm install"), "{hint}");
    }
}

/// One crypto provider (ring) serves every TLS client: building them does not panic for want of
/// a provider, and no second provider is compiled in.
#[test]
fn tls_clients_build_with_the_one_provider() {
    mqlab::tls::ensure_provider();
    assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    reqwest::Client::builder().build().expect("reqwest builds its TLS config");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let cfg = kube::Config::new("https://127.0.0.1:1".parse().unwrap());
        kube::Client::try_from(cfg).expect("kube builds its TLS connector");
    });
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock")).unwrap();
    assert!(!lock.contains("name = \"aws-lc-rs\""), "a second, C-built provider is in the build");
}

/// A kubeconfig that is not a file, and an exec plugin that hangs: the cluster checks answer
/// within their timeout with a clear failure, instead of reading for ever or blocking.
#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_exec_plugin_or_a_device_as_kubeconfig_cannot_stall_the_checks() {
    let mut p = Probes::new(config(Track::K3s));
    p.kubeconfig = Some("/dev/zero".into());
    let t0 = std::time::Instant::now();
    let r = p.run("kube.context").await;
    assert_eq!(r.status, Status::Fail);
    assert!(r.detail.contains("not a regular file"), "{r:?}");
    assert!(t0.elapsed() < std::time::Duration::from_secs(2));

    let fake = FakeKube::start(Scenario::Healthy);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: rancher-desktop\nclusters:\n- name: rd\n  cluster:\n    server: http://127.0.0.1:{}\n\
             contexts:\n- name: rancher-desktop\n  context:\n    cluster: rd\n    user: slow\nusers:\n- name: slow\n  user:\n    exec:\n      \
             apiVersion: client.authentication.k8s.io/v1beta1\n      command: sh\n      args: [\"-c\", \"sleep 12; echo '{{}}'\"]\n      interactiveMode: Never\n",
            fake.port
        ),
    )
    .unwrap();
    let mut p = Probes::new(config(Track::K3s));
    p.kubeconfig = Some(path);
    let t0 = std::time::Instant::now();
    let r = p.run("kube.api").await;
    let took = t0.elapsed();
    println!("a 12 s exec plugin: kube.api answered {:?} after {:.1} s", r.status, took.as_secs_f64());
    assert_eq!(r.status, Status::Fail, "{r:?}");
    assert!(took < std::time::Duration::from_secs(8), "the 5 s timeout fired: {took:?}");
}

/// The preflight says what this machine has before the learner hits a wall: Python (this
/// machine's is 3.11), the cluster VM's memory from the node, and who holds the lessons' ports (on
/// the cluster track a local RabbitMQ on them is named, with what mqlab's forwards will do).
#[tokio::test(flavor = "multi_thread")]
async fn the_preflight_says_what_this_machine_has() {
    if !common::have(&[Need::Rabbitmq, Need::Management, Need::Redis]) {
        return;
    }
    let fake = FakeKube::start(Scenario::Healthy);
    let data = tempfile::tempdir().unwrap();
    let mut p = probes_for(&fake, "rancher-desktop");
    p.cfg.data_dir = data.path().to_path_buf();
    p.cfg.project_dir = data.path().join("no-project");
    let ids = mqlab::probes::preflight::ids(Track::K3s);
    let rs = p.run_many(&ids).await;
    let python = get(&rs, "preflight.python");
    assert_eq!(python.status, Status::Pass, "{python:?}");
    assert!(python.detail.starts_with("Python 3."), "{python:?}");
    let memory = get(&rs, "preflight.memory");
    assert_eq!(memory.status, Status::Pass, "{memory:?}");
    assert_eq!(memory.detail, "node lima-rancher-desktop has 3.8 GiB of memory");
    let ports = get(&rs, "preflight.ports");
    assert!(
        ports.detail.contains("a server of this machine (answers as node rabbit") && ports.detail.contains("next free port"),
        "{ports:?}"
    );
    assert_eq!(get(&rs, "preflight.celery").status, Status::Skipped, "no project venv yet");
    // The CLI runs the same, by track.
    let out = common::mqlab(data.path()).args(["check", "--preflight", "--track", "local"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("Preflight (track local)") && text.contains("preflight.python") && !text.contains("preflight.tools"),
        "{text}"
    );
}
