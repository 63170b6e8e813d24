//! Lessons are templates: `{{broker_url}}`, `{{redis_port}}`… are filled with the live
//! configuration, so every command a lesson shows works as shown on the learner's track (the
//! sandbox's ports, a forwarded port, their own broker).
//!
//! Passwords: the curriculum's own (`admin123`) and RabbitMQ's default (`guest`) are public and
//! are shown in prose; any other password is never put on screen and shows as `****` (the
//! learner types their own).
//!
//! Shell code (```` ```sh ```` and ```` ```bash ```` blocks) is filled for the shell: every value
//! is quoted as one word, and no secret is ever spliced in: a command names the environment
//! variables mqlab sets when it runs it (`{{mgmt_auth}}` is
//! `"$MQLAB_MGMT_USER:$MQLAB_MGMT_PASSWORD"`), and the lesson data may not use the
//! password-bearing values there at all (`SECRET_VALUES`, checked by `Course::validate`).

use crate::config::Config;

/// Passwords printed in the curriculum and in RabbitMQ's documentation.
pub const PUBLIC_PASSWORDS: &[&str] = &["admin123", "guest"];

/// The names a lesson may use, with what each becomes.
pub fn values(cfg: &Config) -> Vec<(&'static str, String)> {
    values_with(cfg, false)
}

/// Like `fill`, with the real password everywhere: only for files written for the learner.
pub fn fill_revealed(text: &str, cfg: &Config) -> String {
    fill_with(text, values_with(cfg, true))
}

/// Values that carry a password: never in shell code.
pub const SECRET_VALUES: &[&str] = &["password", "broker_url", "backend_url"];

/// Values that are shell code already (quoted inside), spliced into shell code as they are.
const SHELL_CODE_VALUES: &[&str] = &["helm_rabbitmq", "helm_redis", "rabbitmq_chart", "redis_chart", "mgmt_auth", "project_dir"];

/// Whether a fence line opens shell code.
pub fn is_shell_fence(fence: &str) -> bool {
    let lang = fence.trim_start().trim_start_matches('`').split_whitespace().next().unwrap_or("");
    matches!(lang, "sh" | "bash" | "shell" | "zsh")
}

fn fill_with(text: &str, values: Vec<(&'static str, String)>) -> String {
    if !text.contains("{{") {
        return text.to_string();
    }
    let put = |line: &str, shell: bool| {
        let mut out = line.to_string();
        for (k, v) in &values {
            let key = format!("{{{{{k}}}}}");
            if !out.contains(&key) {
                continue;
            }
            let v = if shell && !SHELL_CODE_VALUES.contains(k) { crate::shell::quote(v) } else { v.clone() };
            out = out.replace(&key, &v);
        }
        out
    };
    let mut out = String::with_capacity(text.len());
    let mut fence: Option<bool> = None;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        if t.starts_with("```") {
            fence = match fence {
                None => Some(is_shell_fence(t)),
                Some(_) => None,
            };
            out.push_str(line);
            continue;
        }
        out.push_str(&put(line, fence == Some(true)));
    }
    out
}

fn values_with(cfg: &Config, reveal: bool) -> Vec<(&'static str, String)> {
    let broker = url::Url::parse(&cfg.broker_url).ok();
    let backend = url::Url::parse(&cfg.result_backend).ok();
    let mgmt = url::Url::parse(&cfg.management_url).ok();
    let (_, user, pass) = cfg.management_login();
    let shown_pass = if reveal || PUBLIC_PASSWORDS.contains(&pass.as_str()) { pass.clone() } else { "****".to_string() };
    let host = |u: &Option<url::Url>, d: &str| u.as_ref().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_else(|| d.to_string());
    let port = |u: &Option<url::Url>, d: u16| u.as_ref().and_then(|u| u.port_or_known_default()).unwrap_or(d).to_string();
    let broker_url = match &broker {
        Some(u) => {
            let mut u = u.clone();
            if !u.password().unwrap_or("").is_empty() {
                let _ = u.set_password(Some(&shown_pass));
            }
            u.to_string()
        }
        None => cfg.broker_url.clone(),
    };
    let vhost =
        broker.as_ref().map(|u| u.path().trim_start_matches('/').to_string()).filter(|v| !v.is_empty()).unwrap_or_else(|| "/".into());
    let mgmt_base = match &mgmt {
        Some(u) => format!("{}://{}:{}", u.scheme(), host(&mgmt, "localhost"), port(&mgmt, 15672)),
        None => cfg.management_url.clone(),
    };
    let redis_db =
        backend.as_ref().map(|u| u.path().trim_start_matches('/').to_string()).filter(|d| !d.is_empty()).unwrap_or_else(|| "0".into());
    let backend_url = match &backend {
        Some(u) if u.password().is_some() => {
            let mut u = u.clone();
            let p = u.password().unwrap_or("").to_string();
            if !reveal && !PUBLIC_PASSWORDS.contains(&p.as_str()) {
                let _ = u.set_password(Some("****"));
            }
            u.to_string()
        }
        _ => cfg.result_backend.clone(),
    };
    vec![
        ("broker_url", broker_url),
        ("amqp_host", host(&broker, "localhost")),
        ("amqp_port", port(&broker, 5672)),
        ("vhost_path", crate::probes::mgmt::segment(&vhost)),
        ("vhost", vhost),
        ("user", user),
        ("password", shown_pass),
        ("mgmt_url", mgmt_base),
        ("mgmt_port", port(&mgmt, 15672)),
        ("backend_url", backend_url),
        ("redis_host", host(&backend, "localhost")),
        ("redis_port", port(&backend, 6379)),
        ("redis_db", redis_db),
        ("queue", cfg.queue.clone()),
        ("namespace", cfg.namespace.clone()),
        ("context", cfg.kube_context.clone()),
        ("helm_rabbitmq", crate::probes::kube::helm_rabbitmq(&cfg.namespace)),
        ("helm_redis", crate::probes::kube::helm_redis(&cfg.namespace)),
        ("rabbitmq_chart", crate::probes::kube::RABBITMQ_CHART.reference()),
        ("redis_chart", crate::probes::kube::REDIS_CHART.reference()),
        ("rabbitmq_image", crate::probes::kube::RABBITMQ_CHART.image()),
        ("redis_image", crate::probes::kube::REDIS_CHART.image()),
        ("project_dir", crate::config::shell_path(&cfg.project_dir)),
        ("mgmt_auth", format!("\"${}:${}\"", crate::shell::MGMT_USER_VAR, crate::shell::MGMT_PASSWORD_VAR)),
    ]
}

/// Fills every `{{name}}` the lesson uses. Unknown names stay as written (the lesson tests
/// catch them).
pub fn fill(text: &str, cfg: &Config) -> String {
    fill_with(text, values(cfg))
}

/// Placeholders in `text` that `fill` does not know (those it leaves as written).
pub fn unknown(text: &str, cfg: &Config) -> Vec<String> {
    let filled = fill(text, cfg);
    let mut out = vec![];
    let mut rest = filled.as_str();
    while let Some(i) = rest.find("{{") {
        let after = &rest[i + 2..];
        match after.find("}}") {
            Some(j) => {
                out.push(after[..j].to_string());
                rest = &after[j + 2..];
            }
            None => break,
        }
    }
    out
}
