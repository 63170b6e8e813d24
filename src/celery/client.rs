//! The submitter: publishes task messages exactly as `task.delay()` does and follows their
//! results through the Redis backend.

use std::time::{Duration, Instant};

use anyhow::Context;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{Channel, Connection};

use super::backend::{ResultBackend, ResultMeta, ResultWatcher};
use super::broker;
use super::protocol::{TaskMessage, TaskState, short};

/// A connection to the broker (and optionally the result backend) for sending tasks.
pub struct Client {
    conn: Connection,
    channel: Channel,
    queue: String,
    backend: Option<ResultBackend>,
    sent_log: Option<String>,
}

impl Client {
    /// Connects, declares the queue as Celery does before publishing, and turns on publisher
    /// confirms so that a returned `publish` means the broker has the messages.
    pub async fn connect(broker_url: &str, result_backend: Option<&str>, queue: &str, result_expires: u64) -> anyhow::Result<Client> {
        Self::connect_with_args(broker_url, result_backend, queue, result_expires, &broker::QueueArgs::default()).await
    }

    /// `connect`, declaring the queue with these arguments (a priority queue, say).
    pub async fn connect_with_args(
        broker_url: &str,
        result_backend: Option<&str>,
        queue: &str,
        result_expires: u64,
        args: &broker::QueueArgs,
    ) -> anyhow::Result<Client> {
        let backend = match result_backend {
            Some(url) => Some(
                ResultBackend::connect(url, result_expires)
                    .await
                    .with_context(|| format!("result backend {}", crate::redact::mask_url(url)))?,
            ),
            None => None,
        };
        let conn = broker::connect(broker_url, "mqlab submit").await?;
        // A queue that exists with other arguments (a priority queue) is used as it is.
        broker::declare_or_use(&conn, queue, args).await?;
        let channel = conn.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        Ok(Client { conn, channel, queue: queue.to_string(), backend, sent_log: None })
    }

    /// Notes the ids of every task published in this Redis sorted set (see
    /// `ResultBackend::mark_sent`), so that results of tasks sent by others can be told apart.
    pub fn log_sent_ids(mut self, key: &str) -> Self {
        self.sent_log = Some(key.to_string());
        self
    }

    pub fn backend(&self) -> Option<&ResultBackend> {
        self.backend.as_ref()
    }

    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// Subscribes to the results of these messages; do this before `publish`.
    pub async fn watch(&self, msgs: &[TaskMessage]) -> anyhow::Result<ResultWatcher> {
        let backend = self.backend.as_ref().context("no result backend configured")?;
        let ids: Vec<String> = msgs.iter().map(|m| m.id.clone()).collect();
        backend.watch(&ids).await
    }

    /// Publishes to the default exchange with routing key = queue name (what `delay()` does),
    /// pipelining and then awaiting the broker's confirms.
    pub async fn publish(&self, msgs: &[TaskMessage]) -> anyhow::Result<()> {
        if let (Some(key), Some(b)) = (&self.sent_log, &self.backend) {
            let ids: Vec<String> = msgs.iter().map(|m| m.id.clone()).collect();
            b.mark_sent(key, &ids, 100_000).await.context("cannot note the task ids in Redis")?;
        }
        // Publisher confirms in a sliding window: the publishes of a window go out together (their
        // frames pipelined, in order), and a window's confirms are awaited while the next is sent.
        let mut pending: Option<Vec<lapin::PublisherConfirm>> = None;
        for window in msgs.chunks(PUBLISH_WINDOW) {
            let bodies: Vec<Vec<u8>> = window.iter().map(TaskMessage::body).collect();
            let sends = window.iter().zip(&bodies).map(|(m, body)| {
                self.channel.basic_publish(short(""), short(&self.queue), BasicPublishOptions::default(), body, m.properties())
            });
            let previous = pending.take();
            let (sent, before) = tokio::join!(futures_util::future::join_all(sends), async {
                match previous {
                    Some(p) => confirmed(p).await,
                    None => Ok(()),
                }
            });
            before?;
            let mut confirms = Vec::with_capacity(sent.len());
            for c in sent {
                confirms.push(c.context("publish failed")?);
            }
            pending = Some(confirms);
        }
        if let Some(last) = pending {
            confirmed(last).await?;
        }
        Ok(())
    }

    /// Sends a remote-control command to every worker (Celery's `app.control.broadcast` without a
    /// reply), e.g. `revoke` with `{"task_id": id, "terminate": false}`.
    pub async fn broadcast(&self, method: &str, arguments: serde_json::Value) -> anyhow::Result<()> {
        self.send_control(method, arguments, None).await
    }

    /// Sends a remote-control command to every worker and gathers the replies that come within
    /// `wait` (Celery's `app.control.broadcast(..., reply=True)`, timeout 1 s by default): one
    /// (worker name, reply) per worker that answered. A worker that is not online receives
    /// nothing and does not answer.
    pub async fn broadcast_gather(
        &self,
        method: &str,
        arguments: serde_json::Value,
        wait: Duration,
    ) -> anyhow::Result<Vec<(String, serde_json::Value)>> {
        use futures_util::StreamExt;
        use lapin::options::{BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
        use lapin::types::FieldTable;
        let ticket = uuid::Uuid::new_v4().to_string();
        self.channel
            .exchange_declare(
                short(super::pidbox::REPLY_EXCHANGE),
                lapin::ExchangeKind::Direct,
                ExchangeDeclareOptions { durable: false, ..Default::default() },
                FieldTable::default(),
            )
            .await
            .context("declare the reply exchange")?;
        let q = self
            .channel
            .queue_declare(
                short(""),
                QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() },
                FieldTable::default(),
            )
            .await
            .context("declare a reply queue")?;
        self.channel
            .queue_bind(
                q.name().clone(),
                short(super::pidbox::REPLY_EXCHANGE),
                short(&ticket),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .context("bind the reply queue")?;
        let mut replies = self
            .channel
            .basic_consume(q.name().clone(), short(""), BasicConsumeOptions { no_ack: true, ..Default::default() }, FieldTable::default())
            .await
            .context("consume replies")?;
        self.send_control(method, arguments, Some(&ticket)).await?;
        let mut out = vec![];
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(Some(Ok(d))) = tokio::time::timeout_at(deadline, replies.next()).await {
            if let Ok(serde_json::Value::Object(m)) = serde_json::from_slice::<serde_json::Value>(&d.data) {
                out.extend(m);
            }
        }
        Ok(out)
    }

    async fn send_control(&self, method: &str, arguments: serde_json::Value, reply_ticket: Option<&str>) -> anyhow::Result<()> {
        use lapin::types::{AMQPValue, FieldTable};
        self.channel
            .exchange_declare(
                short(super::pidbox::EXCHANGE),
                lapin::ExchangeKind::Fanout,
                lapin::options::ExchangeDeclareOptions { durable: false, ..Default::default() },
                FieldTable::default(),
            )
            .await
            .context("declare the control exchange")?;
        let mut body = serde_json::json!({"method": method, "arguments": arguments, "destination": null, "pattern": null, "matcher": null});
        if let Some(ticket) = reply_ticket {
            body["reply_to"] = serde_json::json!({"exchange": super::pidbox::REPLY_EXCHANGE, "routing_key": ticket});
            body["ticket"] = serde_json::json!(ticket);
        }
        let expires = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0) + 30.0;
        let mut headers = FieldTable::default();
        headers.insert(short("clock"), AMQPValue::LongInt(1));
        headers.insert(short("expires"), AMQPValue::Double(expires));
        let props = lapin::BasicProperties::default()
            .with_content_type(short("application/json"))
            .with_content_encoding(short("utf-8"))
            .with_headers(headers);
        let confirm = self
            .channel
            .basic_publish(short(super::pidbox::EXCHANGE), short(""), BasicPublishOptions::default(), body.to_string().as_bytes(), props)
            .await
            .context("publish the control command")?;
        confirm.await.context("the broker did not confirm the control command")?;
        Ok(())
    }

    pub async fn close(self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.conn.close(200, short("bye"))).await;
    }
}

/// Messages published before their confirms are awaited (the sliding window of `publish`).
const PUBLISH_WINDOW: usize = 1000;

/// Awaits a window's publisher confirms; a nack is an error.
async fn confirmed(confirms: Vec<lapin::PublisherConfirm>) -> anyhow::Result<()> {
    for c in confirms {
        let confirmation = c.await.context("the broker did not confirm a message")?;
        if confirmation.is_nack() {
            anyhow::bail!("the broker refused a message (nack)");
        }
    }
    Ok(())
}

/// Waits until every watched task is ready or the deadline passes, calling `on_state` for every
/// state seen (STARTED, SUCCESS, FAILURE...).
pub async fn follow(watcher: &mut ResultWatcher, timeout: Option<Duration>, mut on_state: impl FnMut(&ResultMeta)) -> anyhow::Result<bool> {
    // Pub/sub and the first GET can both report a state: report each (task, state) once.
    // A state published before the first GET may arrive after it: once a task is ready, older
    // states of it are stale and dropped. A state is reported when it differs from the last one
    // reported for that task (so STARTED → RETRY → STARTED shows every step).
    let mut last: std::collections::HashMap<String, TaskState> = std::collections::HashMap::new();
    let mut report = |meta: &ResultMeta| {
        let prev = last.get(&meta.task_id).copied();
        if prev.is_some_and(|p| p.is_ready()) || prev == Some(meta.status) {
            return;
        }
        last.insert(meta.task_id.clone(), meta.status);
        on_state(meta);
    };
    for meta in watcher.poll_once().await? {
        report(&meta);
    }
    let deadline = timeout.map(|t| Instant::now() + t);
    while watcher.pending() > 0 {
        let next = match deadline {
            Some(d) => match tokio::time::timeout_at(d.into(), watcher.next()).await {
                Ok(n) => n,
                Err(_) => return Ok(false),
            },
            None => watcher.next().await,
        };
        match next {
            Some(meta) => report(&meta),
            None => anyhow::bail!("the Redis subscription ended"),
        }
    }
    Ok(true)
}
