//! Before the learner hits a wall (`mqlab check --preflight`, lesson 1): a Python that Celery 5.7
//! runs on, the cluster tools, the cluster VM's memory, who holds the ports the lessons use, and
//! the Celery of the learner's project venv. Each says what to do on this system.

use std::time::Duration;

use super::identity::{Identity, Service};
use super::{Outcome, Probes};
use crate::config::Track;

/// The checks of the preflight, in order, for a track.
pub fn ids(track: Track) -> Vec<&'static str> {
    match track {
        Track::K3s => vec!["preflight.python", "preflight.tools", "preflight.memory", "preflight.ports", "preflight.celery"],
        Track::Local => vec!["preflight.python", "preflight.ports", "preflight.celery"],
    }
}

/// `(major, minor)` of a version such as `Python 3.11.7` or `5.7.0 (collider)`.
pub fn version_of(text: &str) -> Option<(u32, u32)> {
    let word = text.split_whitespace().find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))?;
    let mut parts = word.split('.').map(|p| p.chars().take_while(char::is_ascii_digit).collect::<String>().parse::<u32>().ok());
    Some((parts.next()??, parts.next().flatten().unwrap_or(0)))
}

async fn output(program: &str, args: &[&str]) -> Option<String> {
    let run = tokio::process::Command::new(program).args(args).kill_on_drop(true).output();
    let out = tokio::time::timeout(Duration::from_secs(5), run).await.ok()?.ok()?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    out.status.success().then(|| text.trim().to_string())
}

fn python_remedy() -> &'static str {
    if cfg!(target_os = "macos") {
        "macOS's own python3 is 3.9: install a newer one with Homebrew (`brew install python@3.12`) or uv (`uv python install 3.12`), then make the venv with it (`python3.12 -m venv venv`)"
    } else {
        "install Python 3.10 or newer from your system's packages (Debian/Ubuntu: `sudo apt install python3 python3-venv`), or with uv (`uv python install 3.12`)"
    }
}

/// Python ≥ 3.10 (Celery 5.7's floor) with its venv module.
pub async fn python(_p: &Probes) -> Outcome {
    let Some(text) = output("python3", &["--version"]).await else {
        return Outcome::fail("no python3 on PATH", python_remedy());
    };
    match version_of(&text) {
        Some(v) if v >= (3, 10) => {
            if output("python3", &["-c", "import venv, ensurepip"]).await.is_none() {
                return Outcome::fail(
                    format!("{text}, but its venv module cannot make environments (ensurepip is missing)"),
                    if cfg!(target_os = "macos") { python_remedy() } else { "Debian/Ubuntu: `sudo apt install python3-venv`" },
                );
            }
            Outcome::pass(format!("{text}: Celery 5.7 runs on it")).fact("python", text)
        }
        Some(_) => Outcome::fail(
            format!(
                "{text}: Celery 5.7 needs Python 3.10 or newer (on 3.9 pip silently installs Celery 5.6, whose worker RabbitMQ 4.3 refuses)"
            ),
            python_remedy(),
        ),
        None => Outcome::fail(format!("python3 --version said {text:?}"), python_remedy()),
    }
}

/// kubectl and helm, for the cluster track.
pub async fn tools(_p: &Probes) -> Outcome {
    let kubectl = output("kubectl", &["version", "--client"]).await;
    let helm = output("helm", &["version", "--short"]).await;
    let missing: Vec<&str> = [("kubectl", &kubectl), ("helm", &helm)].iter().filter(|(_, v)| v.is_none()).map(|(n, _)| *n).collect();
    if missing.is_empty() {
        let first = |v: &Option<String>| v.as_deref().unwrap_or("").lines().next().unwrap_or("").to_string();
        return Outcome::pass(format!("kubectl ({}), helm {}", first(&kubectl), first(&helm)));
    }
    Outcome::fail(
        format!("not on PATH: {}", missing.join(", ")),
        "Rancher Desktop installs both (Preferences → Application → Environment: \"Automatic\" puts ~/.rd/bin on PATH); open a new terminal after it starts. Or install them yourself (`brew install kubectl helm`)",
    )
}

/// The memory the cluster's node offers (Rancher Desktop's VM): RabbitMQ and Redis need about
/// 0.5 GB beyond what K3s takes (about 1.6 GB), so 4 GB is the floor.
pub async fn memory(p: &Probes) -> Outcome {
    use k8s_openapi::api::core::v1::Node;
    use kube::api::{Api, ListParams};
    let client = match super::kube::client(p).await {
        Ok(c) => c,
        Err(o) => return o,
    };
    let nodes = match Api::<Node>::all(client).list(&ListParams::default()).await {
        Ok(n) => n.items,
        Err(e) => return Outcome::fail(format!("cannot list nodes: {}", super::error_chain(&e)), "see kube.api"),
    };
    let Some(n) = nodes.first() else { return Outcome::fail("the cluster has no node yet", "see kube.node_ready") };
    let name = n.metadata.name.clone().unwrap_or_default();
    let q = n.status.as_ref().and_then(|s| s.capacity.as_ref()).and_then(|c| c.get("memory")).map(|q| q.0.clone()).unwrap_or_default();
    let Some(bytes) = quantity_bytes(&q) else {
        return Outcome::fail(format!("node {name} reports memory {q:?}"), "look at `kubectl describe node`");
    };
    let gib = bytes as f64 / (1u64 << 30) as f64;
    // A 4 GB VM reports a little less to Kubernetes (the kernel keeps some).
    if gib >= 3.5 {
        Outcome::pass(format!("node {name} has {gib:.1} GiB of memory")).fact("node_memory_gib", format!("{gib:.1}"))
    } else {
        Outcome::fail(
            format!(
                "node {name} has {gib:.1} GiB of memory: K3s takes about 1.6 GB and RabbitMQ and Redis about 0.5 GB more, so their pods may stay Pending or be OOMKilled"
            ),
            "give the VM 4 GB or more: Rancher Desktop → Preferences → Virtual Machine → Memory, then let it restart",
        )
    }
}

/// `4005240Ki`, `4Gi`, `4G`, `4000000000` as bytes.
pub fn quantity_bytes(q: &str) -> Option<u64> {
    let digits: String = q.chars().take_while(|c| c.is_ascii_digit()).collect();
    let n: u64 = digits.parse().ok()?;
    let mult: u64 = match &q[digits.len()..] {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Who holds the ports the lessons use: free, mqlab's forwards, the cluster, or a server of this
/// machine (then mqlab's forwards take the next free port on the cluster track).
pub async fn ports(p: &Probes) -> Outcome {
    let mut said = vec![];
    let mut trouble = vec![];
    for s in [Service::Amqp, Service::Management, Service::Redis] {
        let url = match s {
            Service::Amqp => &p.cfg.broker_url,
            Service::Management => &p.cfg.management_url,
            Service::Redis => &p.cfg.result_backend,
        };
        let (host, port) = super::host_port(url, 0);
        let open = tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect((host.as_str(), port)))
            .await
            .is_ok_and(|r| r.is_ok());
        let what = match s {
            Service::Amqp => "AMQP",
            Service::Management => "management",
            Service::Redis => "Redis",
        };
        if !open {
            said.push(format!("{what} {port} free"));
            if p.track() == Track::Local {
                trouble.push(format!("nothing answers on {port} ({what})"));
            }
            continue;
        }
        match super::identity::of(p, s).await {
            Identity::Cluster(how) => said.push(format!("{what} {port}: the cluster, {how}")),
            Identity::Other(who) if p.track() == Track::K3s => {
                said.push(format!("{what} {port}: a server of this machine ({who}); mqlab's forwards will use the next free port"))
            }
            Identity::Other(who) => said.push(format!("{what} {port}: {who}")),
            Identity::Unknown => said.push(format!("{what} {port}: taken by something that is not {what}")),
        }
    }
    if trouble.is_empty() {
        Outcome::pass(said.join("; "))
    } else {
        Outcome::fail(said.join("; "), "start them: `mqlab sandbox up` (private copies), or your system's RabbitMQ and Redis")
    }
}

/// The Celery in the learner's project venv (`~/rabbitmq-celery-learning/venv`), against the
/// broker's RabbitMQ version.
pub async fn celery(p: &Probes) -> Outcome {
    let py = p.cfg.project_dir.join("venv/bin/python");
    let shown = crate::config::shell_path(&p.cfg.project_dir);
    if !py.exists() {
        return Outcome::skip(format!("no venv in {shown} yet (Step 5 makes it)"));
    }
    let Some(text) = output(&py.to_string_lossy(), &["-c", "import celery; print(celery.__version__)"]).await else {
        return Outcome::fail(format!("Celery is not installed in {shown}/venv"), "`pip install -r requirements.txt` there (Step 5)");
    };
    let ver = version_of(&text);
    let rabbit =
        super::rabbit::raw_overview(p).await.ok().and_then(|o| o.get("rabbitmq_version").and_then(|v| v.as_str()).map(str::to_string));
    match (ver, rabbit) {
        (Some(v), Some(r)) if v < (5, 7) && super::learner::refuses_old_celery(&r) => Outcome::fail(
            format!("Celery {text} in {shown}/venv, and the broker is RabbitMQ {r}: its worker loops on (541) INTERNAL_ERROR there"),
            "use Python 3.10 or newer for the venv and `pip install \"celery[redis]>=5.7\"`",
        ),
        (Some(v), _) if v < (5, 7) => Outcome::fail(
            format!("Celery {text} in {shown}/venv: the lessons are written for 5.7 (RabbitMQ 4.3 and newer refuse older ones)"),
            "`pip install -U \"celery[redis]>=5.7\"` in the venv (Python 3.10 or newer)",
        ),
        _ => Outcome::pass(format!("Celery {text} in {shown}/venv")).fact("python_celery", text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_quantities() {
        assert_eq!(version_of("Python 3.9.6"), Some((3, 9)));
        assert_eq!(version_of("Python 3.12.1"), Some((3, 12)));
        assert_eq!(version_of("5.7.0 (collider)"), Some((5, 7)));
        assert!(version_of("Python 3.9.6").unwrap() < (3, 10));
        assert_eq!(quantity_bytes("4005240Ki"), Some(4005240 * 1024));
        assert_eq!(quantity_bytes("4Gi"), Some(4 << 30));
        assert_eq!(quantity_bytes("2G"), Some(2_000_000_000));
        assert_eq!(quantity_bytes("lots"), None);
    }
}
