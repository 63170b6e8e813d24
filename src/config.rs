//! Configuration: the curriculum's defaults, overridden by a config file, then by the environment,
//! then by command-line flags. URLs are validated up front and always shown masked.

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

pub const DEFAULT_BROKER: &str = "amqp://admin:admin123@localhost:5672//";
pub const DEFAULT_BACKEND: &str = "redis://localhost:6379/0";
pub const DEFAULT_MANAGEMENT: &str = "http://localhost:15672";
pub const DEFAULT_CONTEXT: &str = "rancher-desktop";
pub const DEFAULT_NAMESPACE: &str = "messaging";
/// The largest config file read: a few lines of TOML are expected.
const CONFIG_MAX: u64 = 1024 * 1024;

/// The learner's project folder, under their home directory: the curriculum's own (Step 5.2).
pub const DEFAULT_PROJECT_DIR: &str = "rabbitmq-celery-learning";
/// Results kept at most ten years (Redis refuses expiries past its own limits).
pub const MAX_RESULT_EXPIRES: u64 = 315_360_000;

/// Which path through the lessons the learner takes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Track {
    /// RabbitMQ and Redis on a local K3s cluster (Rancher Desktop), as the curriculum does.
    #[default]
    K3s,
    /// RabbitMQ and Redis running on this machine; no cluster.
    Local,
}

impl Track {
    pub fn as_str(self) -> &'static str {
        match self {
            Track::K3s => "k3s",
            Track::Local => "local",
        }
    }
}

/// The settings every command uses.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Config {
    pub broker_url: String,
    pub result_backend: String,
    pub management_url: String,
    pub kube_context: String,
    pub namespace: String,
    pub queue: String,
    pub result_expires: u64,
    /// Task queues are declared as priority queues with this many levels (Celery's
    /// `task_queue_max_priority`, RabbitMQ's `x-max-priority`); None: plain queues.
    pub queue_max_priority: Option<u8>,
    pub hello_seconds: f64,
    pub track: Track,
    /// The track was given by a flag, the environment or the config file (otherwise the one
    /// chosen in the app, kept with the progress, applies).
    #[serde(skip)]
    pub track_explicit: bool,
    pub data_dir: PathBuf,
    /// The learner's project folder (`~/rabbitmq-celery-learning`): where `mqlab init` and `I`
    /// write the Python project, LEARNINGS.md goes, and every lesson command `cd`s.
    pub project_dir: PathBuf,
}

/// The config file (`config.toml` in the user's config dir, or `MQLAB_CONFIG`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    broker_url: Option<String>,
    result_backend: Option<String>,
    management_url: Option<String>,
    kube_context: Option<String>,
    namespace: Option<String>,
    queue: Option<String>,
    result_expires: Option<u64>,
    queue_max_priority: Option<u8>,
    hello_seconds: Option<f64>,
    track: Option<Track>,
    project_dir: Option<PathBuf>,
}

/// Values given on the command line (highest precedence).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct Overrides {
    /// Broker URL [env: MQLAB_BROKER_URL or CELERY_BROKER_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub broker: Option<String>,
    /// Result backend URL [env: MQLAB_RESULT_BACKEND or CELERY_RESULT_BACKEND]
    #[arg(long, global = true, value_name = "URL")]
    pub result_backend: Option<String>,
    /// RabbitMQ management API URL [env: MQLAB_MANAGEMENT_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub management_url: Option<String>,
    /// Kubernetes context to check
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// Kubernetes namespace holding RabbitMQ and Redis
    #[arg(long, global = true)]
    pub namespace: Option<String>,
    /// Lesson track: k3s (the cluster path) or local (services on this machine)
    #[arg(long, global = true, value_enum)]
    pub track: Option<Track>,
}

impl Config {
    /// Loads from the real environment.
    pub fn load(over: &Overrides) -> anyhow::Result<Config> {
        Self::load_with(over, &|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// Loads with an injected environment (for tests).
    pub fn load_with(over: &Overrides, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Config> {
        let file_path = env("MQLAB_CONFIG").map(PathBuf::from).or_else(default_config_path);
        let file = match &file_path {
            Some(p) if p.exists() => {
                let text = crate::files::read_capped(p, CONFIG_MAX).with_context(|| format!("cannot read config file {}", p.display()))?;
                toml::from_str::<FileConfig>(&text).map_err(|e| anyhow::anyhow!("config file {}: {}", p.display(), e.message()))?
            }
            _ => FileConfig::default(),
        };
        let pick = |flag: &Option<String>, envs: &[&str], file: &Option<String>, default: &str| -> String {
            flag.clone().or_else(|| envs.iter().find_map(|k| env(k))).or_else(|| file.clone()).unwrap_or_else(|| default.to_string())
        };
        let data_dir = env("MQLAB_DATA_DIR").map(PathBuf::from).or_else(default_data_dir).unwrap_or_else(|| PathBuf::from(".mqlab"));
        let given = over
            .track
            .or_else(|| {
                env("MQLAB_TRACK").and_then(|t| match t.as_str() {
                    "local" => Some(Track::Local),
                    "k3s" => Some(Track::K3s),
                    _ => None,
                })
            })
            .or(file.track);
        let track = given.unwrap_or_default();
        // A running sandbox (`mqlab sandbox up`) comes before the config file.
        let sandbox = crate::sandbox::Sandbox::load(&data_dir);
        // Running port-forwards (`mqlab forward`, or F in the app) move the cluster's local
        // ports when theirs were taken; they apply to the config file's URLs and the defaults.
        let forwards = if sandbox.is_none() { crate::forward::Recorded::load(&data_dir) } else { None };
        let sb = |f: fn(&crate::sandbox::Sandbox) -> String, file: &Option<String>, default: &str| {
            sandbox
                .as_ref()
                .map(f)
                .or_else(|| forwards.as_ref().map(|r| r.apply(file.as_deref().unwrap_or(default))))
                .or_else(|| file.clone())
        };
        let cfg = Config {
            broker_url: pick(
                &over.broker,
                &["MQLAB_BROKER_URL", "CELERY_BROKER_URL"],
                &sb(|s| s.broker_url(), &file.broker_url, DEFAULT_BROKER),
                DEFAULT_BROKER,
            ),
            result_backend: pick(
                &over.result_backend,
                &["MQLAB_RESULT_BACKEND", "CELERY_RESULT_BACKEND"],
                &sb(|s| s.result_backend(), &file.result_backend, DEFAULT_BACKEND),
                DEFAULT_BACKEND,
            ),
            management_url: pick(
                &over.management_url,
                &["MQLAB_MANAGEMENT_URL"],
                &sb(|s| s.management_url(), &file.management_url, DEFAULT_MANAGEMENT),
                DEFAULT_MANAGEMENT,
            ),
            kube_context: pick(&over.context, &["MQLAB_KUBE_CONTEXT"], &file.kube_context, DEFAULT_CONTEXT),
            namespace: pick(&over.namespace, &["MQLAB_NAMESPACE"], &file.namespace, DEFAULT_NAMESPACE),
            queue: file.queue.clone().unwrap_or_else(|| "celery".into()),
            result_expires: file.result_expires.unwrap_or(3600),
            queue_max_priority: match env("MQLAB_QUEUE_MAX_PRIORITY") {
                Some(raw) => Some(
                    raw.trim()
                        .parse()
                        .map_err(|_| anyhow::anyhow!("MQLAB_QUEUE_MAX_PRIORITY must be a number from 1 to 255, got {raw:?}"))?,
                ),
                None => file.queue_max_priority,
            },
            hello_seconds: file.hello_seconds.unwrap_or(2.0),
            track,
            track_explicit: given.is_some(),
            data_dir,
            project_dir: env("MQLAB_PROJECT_DIR")
                .map(PathBuf::from)
                .or(file.project_dir.clone())
                .map(|p| expand_home(&p))
                .unwrap_or_else(|| home_dir().join(DEFAULT_PROJECT_DIR)),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        check_url("broker", &self.broker_url, &["amqp", "amqps", "pyamqp"])?;
        if self.result_backend.starts_with("rediss:") {
            bail!(
                "invalid result backend URL {:?}: rediss:// (Redis over TLS) is not supported; give a redis:// URL (a port-forward or localhost needs no TLS)",
                mask_url(&self.result_backend)
            );
        }
        check_url("result backend", &self.result_backend, &["redis"])?;
        check_url("management", &self.management_url, &["http", "https"])?;
        let ns = &self.namespace;
        let label_ok = !ns.is_empty()
            && ns.len() <= 63
            && ns.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !ns.starts_with('-')
            && !ns.ends_with('-');
        if !label_ok {
            bail!(
                "invalid namespace {ns:?}: a Kubernetes namespace is 1 to 63 lowercase letters, digits and '-', starting and ending with a letter or digit"
            );
        }
        if self.result_expires > MAX_RESULT_EXPIRES {
            bail!("result_expires must be at most {MAX_RESULT_EXPIRES} seconds (10 years), got {}", self.result_expires);
        }
        check_queue_list(&self.queue).map_err(|e| anyhow::anyhow!("queue in the config file: {e}"))?;
        if self.queue_max_priority == Some(0) {
            bail!("queue_max_priority must be from 1 to 255 (RabbitMQ's x-max-priority), got 0");
        }
        if !(0.0..=3600.0).contains(&self.hello_seconds) {
            bail!("hello_seconds must be between 0 and 3600, got {}", self.hello_seconds);
        }
        Ok(())
    }

    /// The arguments task queues are declared with: a `--max-priority` flag's value when given,
    /// else the configured one.
    pub fn queue_args(&self, max_priority_flag: Option<u8>) -> crate::celery::broker::QueueArgs {
        crate::celery::broker::QueueArgs { max_priority: max_priority_flag.or(self.queue_max_priority) }
    }

    /// Management API base URL without credentials, and the user and password to log in with:
    /// those in the management URL, else the broker's.
    pub fn management_login(&self) -> (String, String, String) {
        let m = url::Url::parse(&self.management_url).expect("validated");
        let b = url::Url::parse(&self.broker_url).expect("validated");
        let (user, pass) = if !m.username().is_empty() {
            (m.username().to_string(), m.password().unwrap_or("").to_string())
        } else if !b.username().is_empty() {
            (b.username().to_string(), b.password().unwrap_or("").to_string())
        } else {
            ("guest".into(), "guest".into())
        };
        // Userinfo is percent-encoded, not form-encoded: a literal `+` is a plus, not a space.
        let decode = |s: String| {
            url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or(s)
        };
        let mut base = m.clone();
        let _ = base.set_username("");
        let _ = base.set_password(None);
        (base.as_str().trim_end_matches('/').to_string(), decode(user), decode(pass))
    }

    pub fn config_path() -> Option<PathBuf> {
        default_config_path()
    }
}

/// The user's home directory (`.` when there is none).
pub fn home_dir() -> PathBuf {
    directories::BaseDirs::new().map(|d| d.home_dir().to_path_buf()).unwrap_or_else(|| PathBuf::from("."))
}

/// `~/x` as `$HOME/x`.
fn expand_home(p: &std::path::Path) -> PathBuf {
    match p.strip_prefix("~") {
        Ok(rest) => home_dir().join(rest),
        Err(_) => p.to_path_buf(),
    }
}

/// A path as a shell word that means the same for the learner: `~/rabbitmq-celery-learning`
/// under the home directory (the tilde left unquoted, so the shell expands it), otherwise the
/// path quoted.
pub fn shell_path(p: &std::path::Path) -> String {
    match p.strip_prefix(home_dir()) {
        Ok(rest) if !rest.as_os_str().is_empty() => format!("~/{}", crate::shell::quote(&rest.to_string_lossy())),
        _ => crate::shell::quote(&p.to_string_lossy()),
    }
}

fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("", "", "mqlab")
}

fn default_config_path() -> Option<PathBuf> {
    project_dirs().map(|d| d.config_dir().join("config.toml"))
}

fn default_data_dir() -> Option<PathBuf> {
    project_dirs().map(|d| d.data_dir().to_path_buf())
}

fn check_url(what: &str, raw: &str, schemes: &[&str]) -> anyhow::Result<()> {
    let masked = mask_url(raw);
    let u = url::Url::parse(raw).map_err(|e| anyhow::anyhow!("invalid {what} URL {masked:?}: {e}"))?;
    if !schemes.contains(&u.scheme()) {
        bail!("invalid {what} URL {masked:?}: scheme {:?} is not one of {}", u.scheme(), schemes.join(", "));
    }
    if u.host_str().is_none_or(str::is_empty) {
        bail!("invalid {what} URL {masked:?}: no host");
    }
    Ok(())
}

/// Hides the password in a URL the way Celery prints it: `amqp://admin:**@localhost:5672//`.
pub use crate::redact::mask_url;

/// Replaces every password of the given URLs found in `text` with `**`.
pub fn scrub(text: &str, urls: &[&str]) -> String {
    let mut out = text.to_string();
    for raw in urls {
        if let Ok(u) = url::Url::parse(raw)
            && let Some(p) = u.password()
            && !p.is_empty()
        {
            out = out.replace(raw, &mask_url(raw));
            out = out.replace(&format!(":{p}@"), ":**@");
        }
    }
    out
}

/// A queue name as AMQP takes it: not empty, at most 255 bytes (a short string).
pub fn check_queue_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("a queue name cannot be empty: give one such as celery".into());
    }
    if name.len() > 255 {
        return Err(format!("a queue name is at most 255 bytes (AMQP's limit), this one has {}", name.len()));
    }
    Ok(())
}

/// A worker's queues, `a,b`: at least one name, each a queue name.
pub fn check_queue_list(list: &str) -> Result<(), String> {
    let names: Vec<&str> = list.split(',').map(str::trim).filter(|q| !q.is_empty()).collect();
    if names.is_empty() {
        return Err("a queue name cannot be empty: give one such as celery".into());
    }
    names.into_iter().try_for_each(check_queue_name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// An environment of its own: the data dir is one no test machine has, so no sandbox
    /// record (or anything else of the machine's) is read.
    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let mut map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        map.entry("MQLAB_DATA_DIR".into()).or_insert_with(|| "/nonexistent/mqlab-test-data".into());
        move |k| map.get(k).cloned()
    }

    #[test]
    fn masks_like_celery() {
        assert_eq!(mask_url("amqp://admin:admin123@localhost:5672//"), "amqp://admin:**@localhost:5672//");
        assert_eq!(mask_url("redis://:secret@localhost:6379/0"), "redis://:**@localhost:6379/0");
        assert_eq!(mask_url("redis://localhost:6379/0"), "redis://localhost:6379/0");
        assert_eq!(mask_url("amqp://user@host//"), "amqp://user@host//");
        assert_eq!(mask_url("amqp://a:p@ss@host/v"), "amqp://a:**@host/v");
        assert_eq!(
            scrub("url amqp://admin:admin123@h// and :admin123@", &["amqp://admin:admin123@h//"]),
            "url amqp://admin:**@h// and :**@"
        );
    }

    #[test]
    fn precedence_is_flag_env_file_default() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "broker_url = \"amqp://f:f@filehost//\"\nnamespace = \"fromfile\"\n").unwrap();
        let f = file.to_str().unwrap();
        let cfg = Config::load_with(&Overrides::default(), &env_of(&[("MQLAB_CONFIG", f)])).unwrap();
        assert_eq!(cfg.broker_url, "amqp://f:f@filehost//");
        assert_eq!(cfg.namespace, "fromfile");
        assert_eq!(cfg.result_backend, DEFAULT_BACKEND);
        let cfg = Config::load_with(&Overrides::default(), &env_of(&[("MQLAB_CONFIG", f), ("CELERY_BROKER_URL", "amqp://c@celeryenv//")]))
            .unwrap();
        assert_eq!(cfg.broker_url, "amqp://c@celeryenv//");
        let cfg = Config::load_with(
            &Overrides::default(),
            &env_of(&[("MQLAB_CONFIG", f), ("CELERY_BROKER_URL", "amqp://c@celeryenv//"), ("MQLAB_BROKER_URL", "amqp://m@mqlabenv//")]),
        )
        .unwrap();
        assert_eq!(cfg.broker_url, "amqp://m@mqlabenv//");
        let over = Overrides { broker: Some("amqp://flag@flaghost//".into()), ..Default::default() };
        let cfg = Config::load_with(&over, &env_of(&[("MQLAB_CONFIG", f), ("MQLAB_BROKER_URL", "amqp://m@mqlabenv//")])).unwrap();
        assert_eq!(cfg.broker_url, "amqp://flag@flaghost//");
    }

    #[test]
    fn defaults_are_the_curriculum_s() {
        let cfg = Config::load_with(&Overrides::default(), &env_of(&[("MQLAB_CONFIG", "/nonexistent/x.toml")])).unwrap();
        assert_eq!(cfg.broker_url, DEFAULT_BROKER);
        assert_eq!(cfg.management_url, DEFAULT_MANAGEMENT);
        assert_eq!(cfg.kube_context, "rancher-desktop");
        assert_eq!(cfg.namespace, "messaging");
        assert_eq!(cfg.result_expires, 3600);
        let (base, user, pass) = cfg.management_login();
        assert_eq!((base.as_str(), user.as_str(), pass.as_str()), ("http://localhost:15672", "admin", "admin123"));
    }

    /// A literal `+` in a login is a plus (userinfo is percent-encoded, not a form); `%2B` and
    /// `%20` decode as usual.
    #[test]
    fn a_plus_in_a_password_stays_a_plus() {
        let env = [("MQLAB_CONFIG", "/nonexistent/x.toml"), ("MQLAB_BROKER_URL", "amqp://ad+min:pa+ss%20w%2Bd@localhost:5672//")];
        let cfg = Config::load_with(&Overrides::default(), &env_of(&env)).unwrap();
        let (_, user, pass) = cfg.management_login();
        assert_eq!((user.as_str(), pass.as_str()), ("ad+min", "pa+ss w+d"));
    }

    #[test]
    fn malformed_urls_are_one_line_errors_without_passwords() {
        let over = Overrides { broker: Some("amqp://admin:topsecret@".into()), ..Default::default() };
        let e = Config::load_with(&over, &env_of(&[("MQLAB_CONFIG", "/nonexistent")])).unwrap_err().to_string();
        assert!(!e.contains("topsecret") && !e.contains('\n'), "{e}");
        let over = Overrides { result_backend: Some("mongodb://x".into()), ..Default::default() };
        let e = Config::load_with(&over, &env_of(&[("MQLAB_CONFIG", "/nonexistent")])).unwrap_err().to_string();
        assert!(e.contains("result backend") && e.contains("redis"), "{e}");
        let over = Overrides { result_backend: Some("rediss://:pw-secret@redis.example:6380/0".into()), ..Default::default() };
        let e = Config::load_with(&over, &env_of(&[("MQLAB_CONFIG", "/nonexistent")])).unwrap_err().to_string();
        assert!(e.contains("not supported") && e.contains("redis://") && !e.contains("pw-secret"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "brokr = 1\n").unwrap();
        let e = Config::load_with(&Overrides::default(), &env_of(&[("MQLAB_CONFIG", file.to_str().unwrap())])).unwrap_err().to_string();
        assert!(e.contains("unknown field"), "{e}");
    }
}
