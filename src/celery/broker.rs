//! AMQP connection and the entities Celery declares.

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};

use super::protocol::short;
use crate::redact::mask_url;

/// Connection failures, told apart so callers can say what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("login refused by the broker at {url}: check the user name and password")]
    AccessRefused { url: String },
    #[error("virtual host refused by the broker at {url}: {detail}")]
    VhostRefused { url: String, detail: String },
    #[error("cannot reach the broker at {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("timed out connecting to the broker at {url}")]
    Timeout { url: String },
    #[error("invalid broker URL: {0}")]
    InvalidUrl(String),
}

impl ConnectError {
    /// Errors that trying again will not mend.
    pub fn is_permanent(&self) -> bool {
        matches!(self, ConnectError::AccessRefused { .. } | ConnectError::VhostRefused { .. } | ConnectError::InvalidUrl(_))
    }
}

/// Turns a Celery broker URL (`amqp://`, `pyamqp://`, vhost `//`) into one lapin reads.
pub fn amqp_uri(url: &str) -> Result<String, ConnectError> {
    let parsed = url::Url::parse(url).map_err(|e| ConnectError::InvalidUrl(format!("{}: {e}", mask_url(url))))?;
    let scheme = match parsed.scheme() {
        "amqp" | "pyamqp" | "py-amqp" | "librabbitmq" => "amqp",
        "amqps" => "amqps",
        other => {
            return Err(ConnectError::InvalidUrl(format!("scheme {other:?} is not AMQP (use amqp://)")));
        }
    };
    let rest = &url[url.find("://").map(|i| i + 3).unwrap_or(0)..];
    let mut out = format!("{scheme}://{rest}");
    // `amqp://host/` names the empty vhost in the AMQP URI spec; Celery means "/".
    if parsed.path() == "/" {
        out.push('/');
    }
    Ok(out)
}

/// Connects with a timeout, classifying failures.
pub async fn connect(url: &str, name: &str) -> Result<Connection, ConnectError> {
    let uri = amqp_uri(url)?;
    let masked = mask_url(url);
    let props = ConnectionProperties::default().with_connection_name(name.as_bytes().to_vec().into());
    match tokio::time::timeout(Duration::from_secs(5), Connection::connect(&uri, props)).await {
        Err(_) => Err(ConnectError::Timeout { url: masked }),
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(classify(&e.to_string(), masked)),
    }
}

fn classify(detail: &str, url: String) -> ConnectError {
    let lower = detail.to_ascii_lowercase();
    if lower.contains("access_refused") || lower.contains("access-refused") || lower.contains("login") || lower.contains("auth") {
        ConnectError::AccessRefused { url }
    } else if lower.contains("not_allowed") || lower.contains("vhost") {
        ConnectError::VhostRefused { url, detail: detail.to_string() }
    } else {
        ConnectError::Unreachable { url, detail: detail.to_string() }
    }
}

/// The broker's 406: a declaration that does not match what exists (the channel is closed).
pub fn is_precondition_failed(e: &lapin::Error) -> bool {
    use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
    matches!(e.kind(), lapin::ErrorKind::ProtocolError(a) if matches!(a.kind(), AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED)))
}

/// The arguments task queues are declared with, from configuration: Celery's
/// `task_queue_max_priority` (`x-max-priority`, 1–255) makes them priority queues.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueArgs {
    pub max_priority: Option<u8>,
}

impl QueueArgs {
    /// The AMQP table; the integer type is the one py-amqp writes for a Python int (`I`), so a
    /// queue declared by Celery with the same setting is equivalent.
    pub fn table(&self) -> FieldTable {
        let mut t = FieldTable::default();
        if let Some(p) = self.max_priority {
            t.insert(short("x-max-priority"), lapin::types::AMQPValue::LongInt(i32::from(p)));
        }
        t
    }

    /// As Celery's `inspect active_queues` shows them (`queue_arguments`).
    pub fn to_json(&self) -> serde_json::Value {
        match self.max_priority {
            Some(p) => serde_json::json!({"x-max-priority": p}),
            None => serde_json::Value::Null,
        }
    }
}

/// Declares what Celery declares for a task queue named `queue`: a durable direct exchange of the
/// same name, the durable queue (with the configured arguments), and the binding with routing
/// key = queue name.
pub async fn declare_task_queue(ch: &Channel, queue: &str, args: &QueueArgs) -> lapin::Result<()> {
    ch.exchange_declare(
        short(queue),
        ExchangeKind::Direct,
        ExchangeDeclareOptions { durable: true, ..Default::default() },
        FieldTable::default(),
    )
    .await?;
    ch.queue_declare(short(queue), QueueDeclareOptions { durable: true, ..Default::default() }, args.table()).await?;
    ch.queue_bind(short(queue), short(queue), short(queue), QueueBindOptions::default(), FieldTable::default()).await?;
    Ok(())
}

/// What `declare_or_use` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Declared {
    /// Declared as Celery declares it (or it was already so).
    AsCelery,
    /// It exists with other arguments (say x-max-priority, or a quorum queue's x-queue-type) and
    /// is used as it is; the broker's words for the difference.
    Existing(String),
}

/// Declares a task queue as Celery does, on a channel of its own: a queue that exists with
/// other arguments makes the broker close the declaring channel (406), and is then used as it
/// is (a passive declare), as a Celery client or worker with matching settings would.
pub async fn declare_or_use(conn: &lapin::Connection, queue: &str, args: &QueueArgs) -> lapin::Result<Declared> {
    let setup = conn.create_channel().await?;
    let found = match declare_task_queue(&setup, queue, args).await {
        Ok(()) => Declared::AsCelery,
        Err(e) if is_precondition_failed(&e) => {
            let again = conn.create_channel().await?;
            again.queue_declare(short(queue), QueueDeclareOptions { passive: true, ..Default::default() }, FieldTable::default()).await?;
            let _ = again.close(200, short("declared")).await;
            let reason = match e.kind() {
                lapin::ErrorKind::ProtocolError(amqp) => amqp.get_message().to_string(),
                _ => e.to_string(),
            };
            return Ok(Declared::Existing(reason));
        }
        Err(e) => return Err(e),
    };
    let _ = setup.close(200, short("declared")).await;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn celery_urls_become_amqp_uris() {
        assert_eq!(amqp_uri("amqp://admin:admin123@localhost:5672//").unwrap(), "amqp://admin:admin123@localhost:5672//");
        assert_eq!(amqp_uri("pyamqp://guest@localhost/").unwrap(), "amqp://guest@localhost//");
        assert_eq!(amqp_uri("amqp://h:5672/lab").unwrap(), "amqp://h:5672/lab");
        assert!(amqp_uri("redis://localhost").unwrap_err().to_string().contains("not AMQP"));
        assert!(classify("ACCESS_REFUSED - Login was refused", "u".into()).is_permanent());
        assert!(!classify("Connection refused (os error 111)", "u".into()).is_permanent());
    }
}
