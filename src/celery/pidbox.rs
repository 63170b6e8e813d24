//! Remote control (Celery's "pidbox" mailbox): the worker answers `ping`, `hello`, `stats`,
//! `active`, `registered`, `clock` and `shutdown` sent by `celery status` / `celery inspect` /
//! Flower on the `celery.pidbox` fanout exchange, replying on `reply.celery.pidbox`.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, ExchangeKind};
use serde_json::{Value, json};

use super::events::Clock;
use super::protocol::{amqp_to_json, short};

pub const EXCHANGE: &str = "celery.pidbox";
pub const REPLY_EXCHANGE: &str = "reply.celery.pidbox";

/// What the handlers can see of the worker.
pub trait Inspect: Send + Sync {
    fn nodename(&self) -> &str;
    fn stats(&self) -> Value;
    fn active(&self) -> Value;
    fn registered(&self) -> Vec<String>;
    /// Flags tasks as revoked (and stops those running when `terminate`); the reply.
    fn revoke(&self, ids: &[String], terminate: bool, signal: &str) -> Value;
    fn revoked(&self) -> Vec<String>;
    /// Received and waiting for a slot (`inspect reserved`).
    fn reserved(&self) -> Value;
    /// Waiting for their ETA (`inspect scheduled`).
    fn scheduled(&self) -> Value;
    fn query_task(&self, ids: &[String]) -> Value;
    fn active_queues(&self) -> Value;
    fn conf(&self) -> Value;
    fn shutdown(&self);
}

/// `task_id` as Celery sends it: one id or a list of ids.
fn task_ids(args: &Value) -> Vec<String> {
    match args.get("task_id") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        _ => vec![],
    }
}

/// Declares the mailbox in the form that works on RabbitMQ 3.x and 4.x: a non-durable fanout
/// exchange and an exclusive, non-durable queue `<nodename>.celery.pidbox`.
pub async fn declare(ch: &Channel, nodename: &str) -> lapin::Result<String> {
    ch.exchange_declare(
        short(EXCHANGE),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions { durable: false, ..Default::default() },
        FieldTable::default(),
    )
    .await?;
    ch.exchange_declare(
        short(REPLY_EXCHANGE),
        ExchangeKind::Direct,
        ExchangeDeclareOptions { durable: false, ..Default::default() },
        FieldTable::default(),
    )
    .await?;
    let queue = format!("{nodename}.celery.pidbox");
    let mut args = FieldTable::default();
    args.insert(short("x-message-ttl"), AMQPValue::LongInt(300_000));
    args.insert(short("x-expires"), AMQPValue::LongInt(10_000));
    ch.queue_declare(short(&queue), QueueDeclareOptions { durable: false, exclusive: true, auto_delete: true, ..Default::default() }, args)
        .await?;
    ch.queue_bind(short(&queue), short(EXCHANGE), short(""), QueueBindOptions::default(), FieldTable::default()).await?;
    Ok(queue)
}

/// Whether a request is for this node (`destination` a list of node names, or none = all).
pub fn addressed_to(req: &Value, nodename: &str) -> bool {
    match req.get("destination") {
        Some(Value::Array(names)) => names.iter().any(|n| n.as_str() == Some(nodename)),
        _ => true,
    }
}

/// The reply to one request, or None when the method wants none.
pub fn answer(req: &Value, worker: &dyn Inspect, clock: &Clock) -> Value {
    let method = req.get("method").and_then(Value::as_str).unwrap_or("");
    match method {
        "ping" => json!({"ok": "pong"}),
        "hello" => {
            let revoked: serde_json::Map<String, Value> = worker.revoked().into_iter().map(|id| (id, json!(true))).collect();
            json!({"revoked": revoked, "clock": clock.now()})
        }
        "clock" => json!({"clock": clock.now()}),
        "stats" => worker.stats(),
        "active" => worker.active(),
        "reserved" => worker.reserved(),
        "scheduled" => worker.scheduled(),
        "active_queues" => worker.active_queues(),
        "conf" => worker.conf(),
        "query_task" => {
            let args = req.get("arguments").cloned().unwrap_or(Value::Null);
            let ids = match args.get("ids") {
                Some(Value::String(s)) => vec![s.clone()],
                Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
                _ => task_ids(&args),
            };
            worker.query_task(&ids)
        }
        "revoked" => json!(worker.revoked()),
        "revoke" | "terminate" => {
            let args = req.get("arguments").cloned().unwrap_or(Value::Null);
            let ids = task_ids(&args);
            if ids.is_empty() {
                return json!({"error": "no task_id given"});
            }
            let terminate = method == "terminate" || args.get("terminate").and_then(Value::as_bool).unwrap_or(false);
            let signal = args.get("signal").and_then(Value::as_str).unwrap_or("SIGTERM");
            worker.revoke(&ids, terminate, signal)
        }
        "registered" => json!(worker.registered()),
        "report" => json!({"ok": format!("mqlab {} worker {}", env!("CARGO_PKG_VERSION"), worker.nodename())}),
        "shutdown" => {
            worker.shutdown();
            json!({"ok": "shutting down"})
        }
        other => json!({"error": format!("No such method: {other}")}),
    }
}

/// Consumes the mailbox until the channel closes.
pub async fn serve(ch: Channel, queue: String, worker: Arc<dyn Inspect>, clock: Arc<Clock>) -> lapin::Result<()> {
    let mut consumer = ch
        .basic_consume(
            short(&queue),
            short(&format!("{queue}-consumer")),
            BasicConsumeOptions { no_ack: true, ..Default::default() },
            FieldTable::default(),
        )
        .await?;
    while let Some(delivery) = consumer.next().await {
        let d = delivery?;
        let Ok(req) = serde_json::from_slice::<Value>(&d.data) else {
            tracing::warn!("pidbox: ignored a control message that is not JSON");
            continue;
        };
        if !addressed_to(&req, worker.nodename()) {
            continue;
        }
        if let Some(headers) = d.properties.headers().as_ref()
            && let Some(exp) = headers.inner().get("expires").map(amqp_to_json).and_then(|v| v.as_f64())
            && exp > 0.0
            && exp < chrono::Utc::now().timestamp() as f64
        {
            // kombu: an `expires` of 0 (no timeout given, as AsyncResult.revoke() sends) never
            // expires.
            continue;
        }
        let method = req.get("method").and_then(Value::as_str).unwrap_or("?").to_string();
        let reply = answer(&req, worker.as_ref(), &clock);
        tracing::info!("pidbox: {method} from a control client");
        let Some(reply_to) = req.get("reply_to").filter(|r| r.is_object()) else { continue };
        let exchange = reply_to.get("exchange").and_then(Value::as_str).unwrap_or(REPLY_EXCHANGE);
        let rk = reply_to.get("routing_key").and_then(Value::as_str).unwrap_or("");
        let mut body = BTreeMap::new();
        body.insert(worker.nodename().to_string(), reply);
        let mut headers = FieldTable::default();
        if let Some(ticket) = req.get("ticket").and_then(Value::as_str) {
            headers.insert(short("ticket"), AMQPValue::LongString(ticket.as_bytes().to_vec().into()));
        }
        headers.insert(short("clock"), AMQPValue::LongInt(clock.tick() as i32));
        let props = BasicProperties::default()
            .with_content_type(short("application/json"))
            .with_content_encoding(short("utf-8"))
            .with_delivery_mode(1)
            .with_headers(headers);
        let payload = serde_json::to_vec(&body).expect("reply serializes");
        if let Err(e) = ch.basic_publish(short(exchange), short(rk), BasicPublishOptions::default(), &payload, props).await {
            tracing::warn!("pidbox: could not reply to {method}: {e}");
        }
    }
    Ok(())
}
