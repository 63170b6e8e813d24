//! AMQP connection and the entities Celery declares.

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
/// The broker's reply codes, as lapin parses them.
pub use lapin::protocol::{AMQPErrorKind as AmqpCode, AMQPHardError, AMQPSoftError};
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
        Ok(Err(e)) => Err(classify(&e, masked)),
    }
}

/// What the broker said, by the AMQP reply code lapin parsed (never by the words of a message):
/// a login refused (403 ACCESS_REFUSED: lapin asks for `authentication_failure_close`, so the
/// broker says so instead of dropping the socket), a virtual host refused or missing (530
/// NOT_ALLOWED); anything else is the network's and worth trying again.
fn classify(e: &lapin::Error, url: String) -> ConnectError {
    match amqp_code(e) {
        Some(AmqpCode::Soft(AMQPSoftError::ACCESSREFUSED)) => ConnectError::AccessRefused { url },
        Some(AmqpCode::Hard(AMQPHardError::NOTALLOWED)) => ConnectError::VhostRefused { url, detail: e.to_string() },
        _ if matches!(e.kind(), lapin::ErrorKind::AuthProviderError(_)) => ConnectError::AccessRefused { url },
        _ => ConnectError::Unreachable { url, detail: e.to_string() },
    }
}

/// The AMQP reply code of a broker's error (a channel's soft error or the connection's hard
/// one), None for errors of the network or the client.
pub fn amqp_code(e: &lapin::Error) -> Option<AmqpCode> {
    match e.kind() {
        lapin::ErrorKind::ProtocolError(a) => Some(a.kind().clone()),
        _ => None,
    }
}

/// Whether the broker answered with this channel-level reply code (404 NOT_FOUND, 405
/// RESOURCE_LOCKED, 406 PRECONDITION_FAILED, …).
pub fn is_soft(e: &lapin::Error, code: AMQPSoftError) -> bool {
    amqp_code(e) == Some(AmqpCode::Soft(code))
}

/// The broker's 406: a declaration that does not match what exists (the channel is closed).
pub fn is_precondition_failed(e: &lapin::Error) -> bool {
    is_soft(e, AMQPSoftError::PRECONDITIONFAILED)
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

/// What a passive declare learns of a queue (it creates nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueState {
    /// No such queue (404 NOT_FOUND): the broker has closed the channel that asked.
    Missing,
    Present {
        ready: u32,
        consumers: u32,
    },
}

/// Asks the broker about `queue` on `ch` without declaring it. After `Missing` the channel is
/// closed (the broker's answer to a passive declare of nothing); other errors are returned.
pub async fn queue_state(ch: &Channel, queue: &str) -> lapin::Result<QueueState> {
    match ch.queue_declare(short(queue), QueueDeclareOptions { passive: true, ..Default::default() }, FieldTable::default()).await {
        Ok(q) => Ok(QueueState::Present { ready: q.message_count(), consumers: q.consumer_count() }),
        Err(e) if is_soft(&e, AMQPSoftError::NOTFOUND) => Ok(QueueState::Missing),
        Err(e) => Err(e),
    }
}

/// One reading of [`poll_queue`].
#[derive(Clone, Debug, PartialEq)]
pub enum Polled {
    Queue(QueueState),
    /// The broker cannot be reached or read, and why (the URL masked).
    Down(String),
}

/// Reads `queue` every 0.5 s over one connection with a passive declare (it creates nothing;
/// a new channel after the broker closes one on a missing queue), reconnecting every 2 s while
/// the broker is down, and hands each reading with its time to `on` until `on` says stop; then
/// closes the connection.
pub async fn poll_queue(
    broker_url: &str,
    queue: &str,
    name: &str,
    mut on: impl FnMut(Polled, chrono::DateTime<chrono::Utc>) -> std::ops::ControlFlow<()>,
) {
    use std::ops::ControlFlow::Break;
    loop {
        let conn = match connect(broker_url, name).await {
            Ok(c) => c,
            Err(e) => {
                if let Break(()) = on(Polled::Down(e.to_string()), chrono::Utc::now()) {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        let mut ch = None;
        let stop = loop {
            let c = match ch.take() {
                Some(c) => c,
                None => match conn.create_channel().await {
                    Ok(c) => c,
                    Err(e) => break on(Polled::Down(e.to_string()), chrono::Utc::now()),
                },
            };
            let (polled, keep) = match queue_state(&c, queue).await {
                Ok(s @ QueueState::Present { .. }) => (Polled::Queue(s), true),
                Ok(QueueState::Missing) => (Polled::Queue(QueueState::Missing), false),
                Err(e) => {
                    let down = on(Polled::Down(e.to_string()), chrono::Utc::now());
                    if down.is_break() {
                        break down;
                    }
                    // A channel error leaves the connection to try again; a lost connection ends it.
                    if conn.status().connected() {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                    break std::ops::ControlFlow::Continue(());
                }
            };
            if on(polled, chrono::Utc::now()).is_break() {
                break Break(());
            }
            if keep {
                ch = Some(c);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        if stop.is_break() {
            let _ = tokio::time::timeout(Duration::from_secs(1), conn.close(200, short("done"))).await;
            return;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
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
        let amqp = |kind| lapin::Error::from(lapin::ErrorKind::ProtocolError(lapin::protocol::AMQPError::new(kind, "x".into())));
        assert!(matches!(classify(&amqp(AmqpCode::Soft(AMQPSoftError::ACCESSREFUSED)), "u".into()), ConnectError::AccessRefused { .. }));
        assert!(matches!(classify(&amqp(AmqpCode::Hard(AMQPHardError::NOTALLOWED)), "u".into()), ConnectError::VhostRefused { .. }));
        // Words in a message decide nothing: a network error that mentions a login is retried.
        let io = lapin::Error::from(std::io::Error::other("ACCESS_REFUSED - Login was refused"));
        assert!(!classify(&io, "u".into()).is_permanent());
        let io = lapin::Error::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(!classify(&io, "u".into()).is_permanent());
    }
}
