//! A fake Kubernetes API server for the cluster checks: plain HTTP on 127.0.0.1, serving JSON in
//! the shape a real K3s (Rancher Desktop) cluster returns, in several states. Test-only.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    Healthy,
    NodeNotReady,
    NamespaceMissing,
    ImagePullBackOff,
    CrashLoop,
    /// RabbitMQ still booting: Bitnami's setup ran, the real start has not completed yet.
    RabbitStarting,
    /// The pinned legacy RabbitMQ image hits Docker Hub's anonymous pull limit.
    PullRateLimited,
    /// The VM cannot resolve the registry: Redis's pinned image does not pull.
    PullNoNetwork,
    /// The pinned legacy RabbitMQ image is gone from the registry.
    LegacyGone,
    /// RabbitMQ cannot be scheduled: the node has too little memory.
    PendingMemory,
    /// RabbitMQ was killed for memory and is backing off.
    OomKilled,
    /// The namespace exists and holds nothing (nothing installed yet).
    EmptyNamespace,
}

pub struct FakeKube {
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub requests: Arc<Mutex<Vec<String>>>,
    /// What can change while it runs (pod restarts, port-forward streams).
    pub live: Arc<Live>,
}

/// The changing part of the fake cluster: each app's pod generation (a new uid after a restart),
/// whether it is Ready, and the port-forward streams open to it.
pub struct Live {
    state: Mutex<std::collections::HashMap<String, (u32, bool)>>,
    /// Dropping every open port-forward stream of an app (its pod went away).
    drops: tokio::sync::broadcast::Sender<String>,
    /// Port-forward streams opened so far.
    pub streams: std::sync::atomic::AtomicU64,
    /// Where a pod's container port really is (the CI's RabbitMQ and Redis by default).
    pub upstream: Mutex<std::collections::HashMap<u16, u16>>,
}

impl Live {
    fn new() -> Live {
        Live {
            state: Mutex::new(Default::default()),
            drops: tokio::sync::broadcast::channel(16).0,
            streams: Default::default(),
            upstream: Mutex::new(Default::default()),
        }
    }

    /// (generation, ready) of an app's pod.
    fn pod_state(&self, app: &str) -> (u32, bool) {
        *self.state.lock().unwrap().get(app).unwrap_or(&(0, true))
    }

    /// The pod of `app` ("rabbitmq", "redis") goes away as on a restart: its streams are cut and
    /// it is not Ready; `ready_again` brings a new pod (a new uid) up.
    pub fn restart(&self, app: &str) {
        let mut st = self.state.lock().unwrap();
        let e = st.entry(app.to_string()).or_insert((0, true));
        *e = (e.0 + 1, false);
        drop(st);
        let _ = self.drops.send(app.to_string());
    }

    pub fn ready_again(&self, app: &str) {
        self.state.lock().unwrap().entry(app.to_string()).or_insert((0, true)).1 = true;
    }
}

impl FakeKube {
    /// Starts a server for `scenario` on its own thread and runtime.
    pub fn start(scenario: Scenario) -> FakeKube {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(vec![]));
        let log = requests.clone();
        let live = Arc::new(Live::new());
        let shared = live.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((sock, _)) = listener.accept().await else { return };
                    let log = log.clone();
                    tokio::spawn(serve(sock, scenario, log, shared.clone()));
                }
            });
        });
        FakeKube { port, dir: tempfile::tempdir().unwrap(), requests, live }
    }

    /// A kubeconfig whose `rancher-desktop` context points here (current unless told otherwise).
    pub fn kubeconfig(&self, current: &str) -> PathBuf {
        kubeconfig_for(&self.dir, &format!("http://127.0.0.1:{}", self.port), current, &["rancher-desktop", "docker-desktop"])
    }
}

/// A kubeconfig at `dir/config` with the given contexts, all pointing at `server`.
pub fn kubeconfig_for(dir: &tempfile::TempDir, server: &str, current: &str, contexts: &[&str]) -> PathBuf {
    let path = dir.path().join(format!("config-{}", contexts.join("-")));
    let mut f = std::fs::File::create(&path).unwrap();
    writeln!(f, "apiVersion: v1\nkind: Config\ncurrent-context: {current}\nclusters:").unwrap();
    for c in contexts {
        writeln!(f, "- name: {c}\n  cluster:\n    server: {server}").unwrap();
    }
    writeln!(f, "contexts:").unwrap();
    for c in contexts {
        writeln!(f, "- name: {c}\n  context:\n    cluster: {c}\n    user: {c}").unwrap();
    }
    writeln!(f, "users:").unwrap();
    for c in contexts {
        writeln!(f, "- name: {c}\n  user:\n    token: fake-token-{c}").unwrap();
    }
    path
}

async fn serve(mut sock: tokio::net::TcpStream, scenario: Scenario, log: Arc<Mutex<Vec<String>>>, live: Arc<Live>) {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        buf.drain(..head_end);
        let target = head.split_whitespace().nth(1).unwrap_or("/").to_string();
        log.lock().unwrap().push(target.clone());
        if target.contains("/portforward") && head.to_ascii_lowercase().contains("upgrade: websocket") {
            return port_forward(sock, scenario, &head, &target, live).await;
        }
        let (status, ctype, body) = route(scenario, &target, &live);
        let reason = if status == 200 { "OK" } else { "Not Found" };
        let resp = format!("HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n", body.len());
        if sock.write_all(resp.as_bytes()).await.is_err() || sock.write_all(body.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn not_found(kind: &str, name: &str) -> (u16, &'static str, String) {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("{kind} \"{name}\" not found"), "reason": "NotFound",
        "details": {"name": name, "kind": kind}, "code": 404});
    (404, "application/json", body.to_string())
}

fn ok(v: Value) -> (u16, &'static str, String) {
    (200, "application/json", v.to_string())
}

fn route(s: Scenario, target: &str, live: &Live) -> (u16, &'static str, String) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = percent_decode(query);
    match path {
        "/version" => {
            ok(json!({"major": "1", "minor": "33", "gitVersion": "v1.33.4+k3s1", "gitCommit": "9d6f1a0b", "gitTreeState": "clean",
            "buildDate": "2025-08-28T18:42:01Z", "goVersion": "go1.24.6", "compiler": "gc", "platform": "linux/arm64"}))
        }
        "/api" => ok(
            json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "192.168.5.15:6443"}]}),
        ),
        "/apis" => ok(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})),
        "/api/v1" => ok(json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
            {"name": "nodes", "singularName": "node", "namespaced": false, "kind": "Node", "verbs": ["get", "list", "watch"], "shortNames": ["no"]},
            {"name": "namespaces", "singularName": "namespace", "namespaced": false, "kind": "Namespace", "verbs": ["get", "list", "watch"], "shortNames": ["ns"]},
            {"name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod", "verbs": ["get", "list", "watch"], "shortNames": ["po"]},
            {"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]},
            {"name": "services", "singularName": "service", "namespaced": true, "kind": "Service", "verbs": ["get", "list", "watch"], "shortNames": ["svc"]},
            {"name": "events", "singularName": "event", "namespaced": true, "kind": "Event", "verbs": ["create", "delete", "get", "list", "watch"], "shortNames": ["ev"]}]})),
        "/api/v1/nodes" => ok(json!({"kind": "NodeList", "apiVersion": "v1", "metadata": {"resourceVersion": "4711"}, "items": [node(s)]})),
        "/api/v1/namespaces" => ok(json!({"kind": "NamespaceList", "apiVersion": "v1", "metadata": {"resourceVersion": "4711"},
            "items": namespaces(s)})),
        p if p.starts_with("/api/v1/namespaces/") => {
            let rest: Vec<&str> = p["/api/v1/namespaces/".len()..].split('/').collect();
            match rest.as_slice() {
                [ns] => match namespaces(s).into_iter().find(|n| n["metadata"]["name"] == *ns) {
                    Some(n) => ok(n),
                    None => not_found("namespaces", ns),
                },
                _ if rest[0] != "messaging" || s == Scenario::NamespaceMissing => match rest.as_slice() {
                    [_, "pods"] => ok(json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "4711"}, "items": []})),
                    [_, kind, name, ..] => not_found(kind, name),
                    _ => not_found("namespaces", rest[0]),
                },
                [_, "pods"] => {
                    let selector = query.split('&').find_map(|kv| kv.strip_prefix("labelSelector=")).unwrap_or("");
                    let items: Vec<Value> = pods(s, live).into_iter().filter(|p| matches_selector(p, selector)).collect();
                    ok(json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "4711"}, "items": items}))
                }
                [_, "pods", name] => match pods(s, live).into_iter().find(|p| p["metadata"]["name"] == *name) {
                    Some(p) => ok(p),
                    None => not_found("pods", name),
                },
                [_, "pods", name, "log"] => {
                    let previous = query.contains("previous=true");
                    (200, "text/plain", pod_log(s, name, previous))
                }
                [_, "services"] => {
                    ok(json!({"kind": "ServiceList", "apiVersion": "v1", "metadata": {"resourceVersion": "4711"}, "items": services(s)}))
                }
                [_, "events"] => {
                    let field = query.split('&').find_map(|kv| kv.strip_prefix("fieldSelector=")).unwrap_or("");
                    let name = field.split(',').find_map(|t| t.strip_prefix("involvedObject.name=")).unwrap_or("");
                    let items: Vec<Value> =
                        events(s).into_iter().filter(|e| name.is_empty() || e["involvedObject"]["name"] == name).collect();
                    ok(json!({"kind": "EventList", "apiVersion": "v1", "metadata": {"resourceVersion": "4711"}, "items": items}))
                }
                [_, "services", name] => match services(s).into_iter().find(|v| v["metadata"]["name"] == *name) {
                    Some(v) => ok(v),
                    None => not_found("services", name),
                },
                _ => not_found("resource", p),
            }
        }
        _ => not_found("path", path),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).to_string()
}

fn matches_selector(pod: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| match term.split_once('=') {
        Some((k, v)) => pod["metadata"]["labels"][k] == v,
        None => true,
    })
}

fn node(s: Scenario) -> Value {
    let ready = if s == Scenario::NodeNotReady {
        json!({"type": "Ready", "status": "False", "lastHeartbeatTime": "2026-11-27T09:00:00Z", "lastTransitionTime": "2026-11-27T09:00:00Z",
            "reason": "KubeletNotReady", "message": "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized"})
    } else {
        json!({"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-11-27T09:00:00Z", "lastTransitionTime": "2026-11-20T08:00:00Z",
            "reason": "KubeletReady", "message": "kubelet is posting ready status"})
    };
    json!({"kind": "Node", "apiVersion": "v1",
        "metadata": {"name": "lima-rancher-desktop", "uid": "5c1e2f4e-8d0b-4e7a-9d51-1b7c8a9d2e10", "resourceVersion": "4700",
            "creationTimestamp": "2026-11-20T08:00:00Z",
            "labels": {"kubernetes.io/hostname": "lima-rancher-desktop", "kubernetes.io/os": "linux", "node-role.kubernetes.io/control-plane": "true", "node-role.kubernetes.io/master": "true"}},
        "spec": {"podCIDR": "10.42.0.0/24", "podCIDRs": ["10.42.0.0/24"], "providerID": "k3s://lima-rancher-desktop"},
        "status": {
            "capacity": {"cpu": "2", "memory": "4005240Ki", "pods": "110"},
            "allocatable": {"cpu": "2", "memory": "4005240Ki", "pods": "110"},
            "conditions": [
                {"type": "MemoryPressure", "status": "False", "lastHeartbeatTime": "2026-11-27T09:00:00Z", "lastTransitionTime": "2026-11-20T08:00:00Z", "reason": "KubeletHasSufficientMemory", "message": "kubelet has sufficient memory available"},
                {"type": "DiskPressure", "status": "False", "lastHeartbeatTime": "2026-11-27T09:00:00Z", "lastTransitionTime": "2026-11-20T08:00:00Z", "reason": "KubeletHasNoDiskPressure", "message": "kubelet has no disk pressure"},
                ready],
            "addresses": [{"type": "InternalIP", "address": "192.168.5.15"}, {"type": "Hostname", "address": "lima-rancher-desktop"}],
            "nodeInfo": {"machineID": "a1b2", "systemUUID": "c3d4", "bootID": "e5f6", "kernelVersion": "6.6.14-0-virt", "osImage": "Alpine Linux v3.19",
                "containerRuntimeVersion": "containerd://1.7.27-k3s1", "kubeletVersion": "v1.33.4+k3s1", "kubeProxyVersion": "v1.33.4+k3s1",
                "operatingSystem": "linux", "architecture": "arm64"}}})
}

fn namespaces(s: Scenario) -> Vec<Value> {
    let ns = |name: &str| {
        json!({"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": name, "uid": format!("uid-{name}"), "resourceVersion": "10",
        "creationTimestamp": "2026-11-20T08:00:00Z", "labels": {"kubernetes.io/metadata.name": name}},
        "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
    };
    let mut v = vec![ns("default"), ns("kube-system")];
    if s != Scenario::NamespaceMissing {
        v.push(ns("messaging"));
    }
    v
}

#[allow(clippy::too_many_arguments)] // a pod's fields, named at each call in the scenarios
fn pod(name: &str, app: &str, component: Option<&str>, image: &str, state: Value, ready: bool, restarts: i32, phase: &str) -> Value {
    let mut labels = json!({"app.kubernetes.io/instance": app, "app.kubernetes.io/managed-by": "Helm", "app.kubernetes.io/name": app,
        "app.kubernetes.io/version": if app == "rabbitmq" { "4.1.3" } else { "8.2.1" }, "helm.sh/chart": if app == "rabbitmq" { "rabbitmq-16.0.16" } else { "redis-22.0.7" },
        "controller-revision-hash": format!("{app}-7d9c6b5f8"), "statefulset.kubernetes.io/pod-name": name});
    if let Some(c) = component {
        labels["app.kubernetes.io/component"] = json!(c);
    }
    let status_ready = if ready { "True" } else { "False" };
    json!({"kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": name, "generateName": format!("{}-", name.trim_end_matches("-0")), "namespace": "messaging", "uid": format!("uid-{name}"),
            "resourceVersion": "4600", "creationTimestamp": "2026-11-27T08:50:00Z", "labels": labels,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": name.trim_end_matches("-0"), "uid": format!("uid-sts-{app}"), "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"containers": [{"name": app, "image": image, "ports": if app == "rabbitmq" {
                json!([{"name": "amqp", "containerPort": 5672, "protocol": "TCP"}, {"name": "dist", "containerPort": 25672, "protocol": "TCP"},
                    {"name": "stats", "containerPort": 15672, "protocol": "TCP"}, {"name": "epmd", "containerPort": 4369, "protocol": "TCP"},
                    {"name": "metrics", "containerPort": 9419, "protocol": "TCP"}])
            } else {
                json!([{"name": "redis", "containerPort": 6379, "protocol": "TCP"}])
            }}],
            "restartPolicy": "Always", "nodeName": "lima-rancher-desktop", "serviceAccountName": app},
        "status": {"phase": phase,
            "conditions": [
                {"type": "PodReadyToStartContainers", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-11-27T08:50:03Z"},
                {"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-11-27T08:50:01Z"},
                {"type": "Ready", "status": status_ready, "lastProbeTime": null, "lastTransitionTime": "2026-11-27T08:51:00Z",
                    "reason": if ready { Value::Null } else { json!("ContainersNotReady") },
                    "message": if ready { Value::Null } else { json!(format!("containers with unready status: [{app}]")) }},
                {"type": "ContainersReady", "status": status_ready, "lastProbeTime": null, "lastTransitionTime": "2026-11-27T08:51:00Z"},
                {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-11-27T08:50:00Z"}],
            "hostIP": "192.168.5.15", "podIP": "10.42.0.23", "startTime": "2026-11-27T08:50:00Z", "qosClass": "Burstable",
            "containerStatuses": [{"name": app, "state": state, "lastState": {}, "ready": ready, "restartCount": restarts,
                "image": image, "imageID": if ready { format!("{image}@sha256:0f3c") } else { String::new() }, "started": ready}]}})
}

fn pods(s: Scenario, live: &Live) -> Vec<Value> {
    if s == Scenario::EmptyNamespace {
        return vec![];
    }
    let running = json!({"running": {"startedAt": "2026-11-27T08:50:05Z"}});
    let rabbit_image = "docker.io/bitnamilegacy/rabbitmq:4.1.3-debian-12-r1";
    let redis_image = "docker.io/bitnamilegacy/redis:8.2.1-debian-12-r0";
    let rabbit = match s {
        Scenario::ImagePullBackOff => pod(
            "rabbitmq-0",
            "rabbitmq",
            None,
            "docker.io/bitnami/rabbitmq:4.1.3-debian-12-r1",
            json!({"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"docker.io/bitnami/rabbitmq:4.1.3-debian-12-r1\": ErrImagePull: failed to pull and unpack image \"docker.io/bitnami/rabbitmq:4.1.3-debian-12-r1\": failed to resolve reference: docker.io/bitnami/rabbitmq:4.1.3-debian-12-r1: not found"}}),
            false,
            0,
            "Pending",
        ),
        Scenario::CrashLoop => pod(
            "rabbitmq-0",
            "rabbitmq",
            None,
            rabbit_image,
            json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 2m40s restarting failed container=rabbitmq pod=rabbitmq-0_messaging(uid-rabbitmq-0)"}}),
            false,
            5,
            "Running",
        ),
        Scenario::RabbitStarting => pod("rabbitmq-0", "rabbitmq", None, rabbit_image, running.clone(), false, 0, "Running"),
        Scenario::PullRateLimited | Scenario::LegacyGone => pod(
            "rabbitmq-0",
            "rabbitmq",
            None,
            rabbit_image,
            json!({"waiting": {"reason": "ImagePullBackOff", "message": format!("Back-off pulling image \"{rabbit_image}\"")}}),
            false,
            0,
            "Pending",
        ),
        Scenario::PendingMemory => {
            let mut p = pod("rabbitmq-0", "rabbitmq", None, rabbit_image, running.clone(), false, 0, "Pending");
            p["status"] = json!({"phase": "Pending", "qosClass": "Burstable", "conditions": [
                {"type": "PodScheduled", "status": "False", "lastProbeTime": null, "lastTransitionTime": "2026-11-27T08:50:00Z",
                 "reason": "Unschedulable", "message": "0/1 nodes are available: 1 Insufficient memory. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."}]});
            p
        }
        Scenario::OomKilled => {
            let mut p = pod(
                "rabbitmq-0",
                "rabbitmq",
                None,
                rabbit_image,
                json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 1m20s restarting failed container=rabbitmq pod=rabbitmq-0_messaging(uid-rabbitmq-0)"}}),
                false,
                3,
                "Running",
            );
            p["status"]["containerStatuses"][0]["lastState"] = json!({"terminated": {"exitCode": 137, "reason": "OOMKilled",
                "startedAt": "2026-11-27T08:58:01Z", "finishedAt": "2026-11-27T08:58:40Z", "containerID": "containerd://5e1f"}});
            p["spec"]["containers"][0]["resources"] = json!({"limits": {"cpu": "375m", "memory": "384Mi", "ephemeral-storage": "2Gi"},
                "requests": {"cpu": "250m", "memory": "256Mi", "ephemeral-storage": "50Mi"}});
            p
        }
        _ => {
            let (generation, ready) = live.pod_state("rabbitmq");
            regenerate(pod("rabbitmq-0", "rabbitmq", None, rabbit_image, running.clone(), ready, 0, "Running"), generation)
        }
    };
    let redis = match s {
        Scenario::ImagePullBackOff => pod(
            "redis-master-0",
            "redis",
            Some("master"),
            "docker.io/bitnami/redis:8.2.1-debian-12-r0",
            json!({"waiting": {"reason": "ErrImagePull", "message": "failed to pull and unpack image \"docker.io/bitnami/redis:8.2.1-debian-12-r0\": not found"}}),
            false,
            0,
            "Pending",
        ),
        Scenario::PullNoNetwork => pod(
            "redis-master-0",
            "redis",
            Some("master"),
            redis_image,
            json!({"waiting": {"reason": "ErrImagePull", "message": "rpc error: code = Unknown desc = failed to pull and unpack image"}}),
            false,
            0,
            "Pending",
        ),
        _ => {
            let (generation, ready) = live.pod_state("redis");
            regenerate(pod("redis-master-0", "redis", Some("master"), redis_image, running, ready, 0, "Running"), generation)
        }
    };
    vec![rabbit, redis]
}

/// The pods' Events as the API serves them (core/v1, what `kubectl describe pod` lists).
fn events(s: Scenario) -> Vec<Value> {
    let ev = |pod: &str, n: u32, kind: &str, reason: &str, source: &str, message: &str, count: u32, last: &str| {
        json!({"kind": "Event", "apiVersion": "v1",
            "metadata": {"name": format!("{pod}.18{n:014x}"), "namespace": "messaging", "uid": format!("uid-ev-{pod}-{n}"),
                "resourceVersion": format!("{}", 4800 + n), "creationTimestamp": "2026-11-27T08:50:00Z"},
            "involvedObject": {"kind": "Pod", "namespace": "messaging", "name": pod, "uid": format!("uid-{pod}"), "apiVersion": "v1",
                "resourceVersion": "4600", "fieldPath": if source == "kubelet" { json!(format!("spec.containers{{{}}}", pod.split('-').next().unwrap_or(""))) } else { Value::Null }},
            "reason": reason, "message": message, "source": {"component": source, "host": "lima-rancher-desktop"},
            "firstTimestamp": "2026-11-27T08:50:02Z", "lastTimestamp": last, "count": count, "type": kind,
            "eventTime": null, "reportingComponent": source, "reportingInstance": "lima-rancher-desktop"})
    };
    let scheduled = |pod: &str| {
        ev(
            pod,
            1,
            "Normal",
            "Scheduled",
            "default-scheduler",
            &format!("Successfully assigned messaging/{pod} to lima-rancher-desktop"),
            1,
            "2026-11-27T08:50:00Z",
        )
    };
    let pulling = |pod: &str, image: &str| {
        ev(pod, 2, "Normal", "Pulling", "kubelet", &format!("Pulling image \"{image}\""), 3, "2026-11-27T08:52:10Z")
    };
    let failed = |pod: &str, n: u32, message: String| ev(pod, n, "Warning", "Failed", "kubelet", &message, 3, "2026-11-27T08:52:11Z");
    let legacy_rabbit = "docker.io/bitnamilegacy/rabbitmq:4.1.3-debian-12-r1";
    let legacy_redis = "docker.io/bitnamilegacy/redis:8.2.1-debian-12-r0";
    match s {
        Scenario::ImagePullBackOff => vec![
            scheduled("rabbitmq-0"),
            pulling("rabbitmq-0", "docker.io/bitnami/rabbitmq:4.1.3-debian-12-r1"),
            failed("rabbitmq-0", 3, "Failed to pull image \"docker.io/bitnami/rabbitmq:4.1.3-debian-12-r1\": rpc error: code = NotFound desc = failed to pull and unpack image \"docker.io/bitnami/rabbitmq:4.1.3-debian-12-r1\": failed to resolve reference \"docker.io/bitnami/rabbitmq:4.1.3-debian-12-r1\": docker.io/bitnami/rabbitmq:4.1.3-debian-12-r1: not found".into()),
            ev("rabbitmq-0", 4, "Warning", "Failed", "kubelet", "Error: ErrImagePull", 3, "2026-11-27T08:52:11Z"),
            ev("rabbitmq-0", 5, "Normal", "BackOff", "kubelet", "Back-off pulling image \"docker.io/bitnami/rabbitmq:4.1.3-debian-12-r1\"", 9, "2026-11-27T08:54:00Z"),
            ev("rabbitmq-0", 6, "Warning", "Failed", "kubelet", "Error: ImagePullBackOff", 9, "2026-11-27T08:54:00Z"),
            scheduled("redis-master-0"),
            failed("redis-master-0", 3, "Failed to pull image \"docker.io/bitnami/redis:8.2.1-debian-12-r0\": rpc error: code = NotFound desc = failed to pull and unpack image \"docker.io/bitnami/redis:8.2.1-debian-12-r0\": failed to resolve reference \"docker.io/bitnami/redis:8.2.1-debian-12-r0\": docker.io/bitnami/redis:8.2.1-debian-12-r0: not found".into()),
        ],
        Scenario::PullRateLimited => vec![
            scheduled("rabbitmq-0"),
            pulling("rabbitmq-0", legacy_rabbit),
            failed("rabbitmq-0", 3, format!("Failed to pull image \"{legacy_rabbit}\": rpc error: code = Unknown desc = failed to pull and unpack image \"{legacy_rabbit}\": failed to copy: httpReadSeeker: failed open: unexpected status code https://registry-1.docker.io/v2/bitnamilegacy/rabbitmq/manifests/sha256:4b1c: 429 Too Many Requests - Server message: toomanyrequests: You have reached your unauthenticated pull rate limit. https://www.docker.com/increase-rate-limit")),
            ev("rabbitmq-0", 4, "Warning", "Failed", "kubelet", "Error: ErrImagePull", 3, "2026-11-27T08:52:11Z"),
        ],
        Scenario::LegacyGone => vec![
            scheduled("rabbitmq-0"),
            failed("rabbitmq-0", 3, format!("Failed to pull image \"{legacy_rabbit}\": rpc error: code = NotFound desc = failed to pull and unpack image \"{legacy_rabbit}\": failed to resolve reference \"{legacy_rabbit}\": {legacy_rabbit}: not found")),
        ],
        Scenario::PullNoNetwork => vec![
            scheduled("redis-master-0"),
            pulling("redis-master-0", legacy_redis),
            failed("redis-master-0", 3, format!("Failed to pull image \"{legacy_redis}\": rpc error: code = Unknown desc = failed to pull and unpack image \"{legacy_redis}\": failed to resolve reference \"{legacy_redis}\": failed to do request: Head \"https://registry-1.docker.io/v2/bitnamilegacy/redis/manifests/8.2.1-debian-12-r0\": dial tcp: lookup registry-1.docker.io on 10.0.2.3:53: no such host")),
        ],
        Scenario::PendingMemory => vec![ev(
            "rabbitmq-0",
            1,
            "Warning",
            "FailedScheduling",
            "default-scheduler",
            "0/1 nodes are available: 1 Insufficient memory. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.",
            4,
            "2026-11-27T08:55:00Z",
        )],
        Scenario::OomKilled => vec![
            scheduled("rabbitmq-0"),
            ev("rabbitmq-0", 2, "Normal", "Pulled", "kubelet", &format!("Container image \"{legacy_rabbit}\" already present on machine"), 4, "2026-11-27T08:58:00Z"),
            ev("rabbitmq-0", 3, "Warning", "BackOff", "kubelet", "Back-off restarting failed container rabbitmq in pod rabbitmq-0_messaging(uid-rabbitmq-0)", 7, "2026-11-27T08:59:00Z"),
        ],
        _ => vec![],
    }
}

fn pod_log(s: Scenario, name: &str, previous: bool) -> String {
    if name.starts_with("redis") {
        return "1:M 27 Nov 2026 08:50:06.120 * Server initialized\n1:M 27 Nov 2026 08:50:06.121 * Ready to accept connections tcp\n"
            .into();
    }
    let setup = "rabbitmq 08:50:05.10 INFO  ==> ** Starting RabbitMQ setup **\n\
        rabbitmq 08:50:05.30 INFO  ==> Initializing RabbitMQ...\n\
        2026-11-27 08:50:15.101 [info] <0.9.0> Server startup complete; 0 plugins started.\n\
        rabbitmq 08:50:20.44 INFO  ==> ** RabbitMQ setup finished! **\n\
        rabbitmq 08:50:20.47 INFO  ==> ** Starting RabbitMQ **\n\
        2026-11-27 08:50:21.552 [info] <0.230.0> Running boot step rabbit_looking_glass defined by app rabbit\n";
    match s {
        Scenario::CrashLoop if previous => "2026-11-27 09:01:02.101 [error] <0.230.0> Failed to start Ranch listener {acceptor,{0,0,0,0,0,0,0,0},5672} in ranch_tcp:listen\n\
            2026-11-27 09:01:02.102 [error] <0.229.0> CRASH REPORT Process <0.229.0> with 0 neighbours exited with reason: eaddrinuse\n\
            BOOT FAILED\n===========\nERROR: could not bind to distribution port 25672, it is in use by another node: rabbit@rabbitmq-0\n".into(),
        Scenario::CrashLoop => String::new(),
        Scenario::RabbitStarting => setup.into(),
        _ => format!("{setup}2026-11-27 08:50:31.010 [info] <0.717.0> Management plugin: HTTP (non-TLS) listener started on port 15672\n\
            2026-11-27 08:50:31.200 [info] <0.9.0> Server startup complete; 5 plugins started.\n\
            2026-11-27 08:50:31.200 [info] <0.9.0>  * rabbitmq_prometheus\n"),
    }
}

fn services(s: Scenario) -> Vec<Value> {
    if s == Scenario::EmptyNamespace {
        return vec![];
    }
    let svc = |name: &str, app: &str, ports: Value| {
        json!({"kind": "Service", "apiVersion": "v1",
        "metadata": {"name": name, "namespace": "messaging", "uid": format!("uid-svc-{name}"), "resourceVersion": "4500", "creationTimestamp": "2026-11-27T08:50:00Z",
            "labels": {"app.kubernetes.io/name": app, "app.kubernetes.io/instance": app, "app.kubernetes.io/managed-by": "Helm"}},
        "spec": {"type": "ClusterIP", "clusterIP": "10.43.12.34", "clusterIPs": ["10.43.12.34"], "ports": ports,
            "selector": {"app.kubernetes.io/name": app, "app.kubernetes.io/instance": app}, "sessionAffinity": "None", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "internalTrafficPolicy": "Cluster"},
        "status": {"loadBalancer": {}}})
    };
    vec![
        svc(
            "rabbitmq",
            "rabbitmq",
            json!([
            {"name": "amqp", "protocol": "TCP", "port": 5672, "targetPort": "amqp"},
            {"name": "epmd", "protocol": "TCP", "port": 4369, "targetPort": "epmd"},
            {"name": "dist", "protocol": "TCP", "port": 25672, "targetPort": "dist"},
            {"name": "http-stats", "protocol": "TCP", "port": 15672, "targetPort": "stats"}]),
        ),
        svc("redis-master", "redis", json!([{"name": "tcp-redis", "protocol": "TCP", "port": 6379, "targetPort": "redis"}])),
    ]
}

/// A pod after `generation` restarts: a new uid (a StatefulSet pod keeps its name).
fn regenerate(mut pod: Value, generation: u32) -> Value {
    if generation > 0 {
        let uid = format!("{}-{generation}", pod["metadata"]["uid"].as_str().unwrap_or("uid"));
        pod["metadata"]["uid"] = json!(uid);
    }
    pod
}

/// The port-forward subresource as the API server serves it to kube-rs and kubectl over
/// WebSocket (`v4.channel.k8s.io`): for each port, a data channel (2i) and an error channel
/// (2i+1), each opened by a frame carrying the port number (little-endian), then frames whose
/// first byte is the channel. The bytes go to the CI's real service behind that container port.
async fn port_forward(mut sock: tokio::net::TcpStream, s: Scenario, head: &str, target: &str, live: Arc<Live>) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let header = |name: &str| {
        head.lines().find_map(|l| l.split_once(':').filter(|(k, _)| k.trim().eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_string()))
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let pod_name = path.trim_end_matches("/portforward").rsplit('/').next().unwrap_or("").to_string();
    let app = if pod_name.starts_with("redis") { "redis" } else { "rabbitmq" };
    let pod = pods(s, &live).into_iter().find(|p| p["metadata"]["name"] == pod_name.as_str());
    let (generation, ready) = live.pod_state(app);
    let Some(pod) = pod.filter(|_| ready) else {
        let (status, _, body) = not_found("pods", &pod_name);
        let _ = sock
            .write_all(
                format!("HTTP/1.1 {status} Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len())
                    .as_bytes(),
            )
            .await;
        return;
    };
    let _ = pod;
    let ports: Vec<u16> = percent_decode(query)
        .split('&')
        .find_map(|kv| kv.strip_prefix("ports="))
        .map(|v| v.split(',').filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default();
    let (Some(key), Some(&port)) = (header("sec-websocket-key"), ports.first()) else { return };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let resp = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n"
    );
    if sock.write_all(resp.as_bytes()).await.is_err() {
        return;
    }
    let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(sock, tokio_tungstenite::tungstenite::protocol::Role::Server, None).await;
    let (mut tx, mut rx) = ws.split();
    let [lo, hi] = port.to_le_bytes();
    if tx.send(Message::binary(vec![0, lo, hi])).await.is_err() || tx.send(Message::binary(vec![1, lo, hi])).await.is_err() {
        return;
    }
    live.streams.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let real = live.upstream.lock().unwrap().get(&port).copied().unwrap_or(port);
    let upstream = match tokio::net::TcpStream::connect(("127.0.0.1", real)).await {
        Ok(u) => u,
        Err(e) => {
            let mut msg = vec![1u8];
            msg.extend(
                format!("error forwarding port {port} to pod {pod_name}, uid : failed to connect to localhost:{port}: {e}").into_bytes(),
            );
            let _ = tx.send(Message::binary(msg)).await;
            let _ = tx.send(Message::Close(None)).await;
            return;
        }
    };
    let (mut ur, mut uw) = upstream.into_split();
    let mut drops = live.drops.subscribe();
    let to_pod = async {
        while let Some(Ok(m)) = rx.next().await {
            match m {
                Message::Binary(b) if b.len() > 1 && b[0] == 0 => {
                    #[allow(clippy::collapsible_match)] // the write is awaited: it cannot be a guard
                    if uw.write_all(&b[1..]).await.is_err() {
                        break;
                    }
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = uw.shutdown().await;
    };
    let from_pod = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match ur.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut frame = Vec::with_capacity(n + 1);
                    frame.push(0u8);
                    frame.extend_from_slice(&buf[..n]);
                    if tx.send(Message::binary(frame)).await.is_err() {
                        return tx;
                    }
                }
            }
        }
        tx
    };
    let dropped = async {
        loop {
            match drops.recv().await {
                Ok(a) if a == app => return,
                Ok(_) => {}
                Err(_) => return std::future::pending().await,
            }
        }
    };
    let _ = generation;
    tokio::select! {
        // The pod went away: the stream ends without a goodbye, as when the kubelet's goes.
        _ = dropped => {}
        _ = to_pod => {}
        mut tx = from_pod => { let _ = tx.send(Message::Close(None)).await; }
    }
}

/// A stand-in for the chart's management API behind a forward: answers as the cluster's node
/// (overview, whoami, the built-in exchanges without bindings); anything else is Not Found.
#[allow(dead_code)]
pub fn cluster_management_stub() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{BufRead, BufReader, Write};
        for sock in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(sock.try_clone().unwrap());
                let mut sock = sock;
                loop {
                    let mut first = String::new();
                    if reader.read_line(&mut first).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut line = String::new();
                    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                        line.clear();
                    }
                    let body = if first.contains("/bindings/source") {
                        json!([])
                    } else if first.contains("/api/exchanges/") {
                        json!([{"name": "", "type": "direct"}, {"name": "amq.direct", "type": "direct"},
                            {"name": "amq.fanout", "type": "fanout"}, {"name": "amq.topic", "type": "topic"}])
                    } else if first.contains("/api/whoami") {
                        json!({"name": "admin", "tags": ["administrator"], "is_internal_user": true})
                    } else if first.contains("/api/overview") {
                        json!({"management_version": "4.1.3", "rabbitmq_version": "4.1.3", "erlang_version": "27.3.4.1",
                            "node": "rabbit@rabbitmq-0.rabbitmq-headless.messaging.svc.cluster.local", "cluster_name": "rabbit@rabbitmq-0.rabbitmq-headless.messaging.svc.cluster.local"})
                    } else {
                        json!({"error": "Object Not Found", "reason": "Not Found"})
                    }
                    .to_string();
                    let status = if body.contains("Not Found") { "404 Not Found" } else { "200 OK" };
                    let resp =
                        format!("HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len());
                    if sock.write_all(resp.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// The cluster as a learner reaches it through port-forwards: the fake API (every pod Ready),
/// the pods' AMQP and Redis ports carried to this machine's test RabbitMQ and Redis, the
/// management port to `cluster_management_stub`, and a config file on the cluster track naming
/// the services on their usual local ports (the forwards move them where those are taken).
pub struct ForwardedCluster {
    pub fake: FakeKube,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    /// Rancher Desktop's context current (`fake.kubeconfig(other)` rewrites the same file).
    pub kubeconfig: PathBuf,
}

impl ForwardedCluster {
    /// `broker_url` and `result_backend` as the config file gives them (`localhost:5672`,
    /// `localhost:6379`: the forwards' defaults), e.g. with a vhost or a Redis db of the test's.
    pub fn start(broker_url: &str, result_backend: &str) -> ForwardedCluster {
        let fake = FakeKube::start(Scenario::Healthy);
        let stub = cluster_management_stub();
        let amqp_real = super::broker_addr().rsplit(':').next().unwrap().parse::<u16>().unwrap();
        fake.live.upstream.lock().unwrap().extend([(5672, amqp_real), (15672, stub)]);
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "broker_url = \"{broker_url}\"\nresult_backend = \"{result_backend}\"\nmanagement_url = \"http://guest:guest@localhost:15672\"\ntrack = \"k3s\"\n"
            ),
        )
        .unwrap();
        let kubeconfig = fake.kubeconfig("rancher-desktop");
        ForwardedCluster { fake, dir, config, kubeconfig }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The pod's management port carried to this machine's management API instead of the
    /// stand-in: everything a lesson does there (queues, bindings, publishes) really happens.
    pub fn with_real_management(self) -> ForwardedCluster {
        let real = super::management().rsplit(':').next().unwrap().trim_end_matches('/').parse::<u16>().unwrap();
        self.fake.live.upstream.lock().unwrap().insert(15672, real);
        self
    }

    /// `mqlab` with this cluster's config and kubeconfig (Rancher Desktop's context current),
    /// no service variables, a data dir of its own.
    pub fn mqlab(&self) -> std::process::Command {
        let mut c = super::bare_mqlab(&self.data());
        c.env("MQLAB_CONFIG", &self.config).env("KUBECONFIG", &self.kubeconfig);
        c
    }
}
