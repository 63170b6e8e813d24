//! Remote control (Celery's "pidbox" mailbox): the worker answers `celery status`, `celery
//! inspect …` and `celery control …` (and Flower) on the `celery.pidbox` fanout exchange,
//! replying on `reply.celery.pidbox` with the shapes Celery 5.7's worker replies with.

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
    /// Sends a worker heartbeat now (`control heartbeat`).
    fn heartbeat(&self);
    /// Task events on or off (`control enable_events` / `disable_events`); the reply.
    fn task_events(&self, on: bool) -> Value;
    /// A task type's rate limit (`control rate_limit`, "10/m"; empty or 0 removes it); the reply.
    fn rate_limit(&self, task: &str, rate: &Value) -> Value;
    /// A task type's default time limits in seconds (`control time_limit`); the reply.
    fn time_limit(&self, task: &str, soft: Option<f64>, hard: Option<f64>) -> Value;
    /// Grows (n > 0) or shrinks the pool (`control pool_grow` / `pool_shrink`); the reply.
    fn pool_resize(&self, n: i64) -> Value;
    /// Starts or stops consuming a queue (`control add_consumer` / `cancel_consumer`); the reply.
    fn consume(&self, queue: &str, add: bool) -> Value;
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
        "heartbeat" => {
            worker.heartbeat();
            Value::Null
        }
        "enable_events" => worker.task_events(true),
        "disable_events" => worker.task_events(false),
        "rate_limit" | "time_limit" | "pool_grow" | "pool_shrink" | "add_consumer" | "cancel_consumer" => {
            // Every argument is checked here, before the worker sees it; a bad one is an error
            // reply, as Celery's mailbox gives for an exception in a handler.
            let args = req.get("arguments").cloned().unwrap_or(Value::Null);
            let text = |k: &str| args.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            match method {
                "rate_limit" => worker.rate_limit(&text("task_name"), args.get("rate_limit").unwrap_or(&Value::Null)),
                "time_limit" => match (parse_time_limit(args.get("soft")), parse_time_limit(args.get("hard"))) {
                    (Ok(soft), Ok(hard)) => worker.time_limit(&text("task_name"), soft, hard),
                    (Err(e), _) | (_, Err(e)) => json!({"error": format!("Invalid time limit: {e}")}),
                },
                "pool_grow" | "pool_shrink" => match pool_step(args.get("n")) {
                    Ok(n) if method == "pool_grow" => worker.pool_resize(n),
                    Ok(n) => worker.pool_resize(-n),
                    Err(e) => json!({"error": e}),
                },
                _ => match queue_name(args.get("queue")) {
                    Ok(q) => worker.consume(q, method == "add_consumer"),
                    Err(e) => json!({"error": e}),
                },
            }
        }
        "report" => json!({"ok": format!("mqlab {} worker {}", env!("CARGO_PKG_VERSION"), worker.nodename())}),
        "shutdown" => {
            worker.shutdown();
            json!({"ok": "shutting down"})
        }
        other => json!({"error": format!("No such method: {other}")}),
    }
}

/// The largest step `pool_grow` / `pool_shrink` take at once.
pub const MAX_POOL_STEP: i64 = 10_000;

/// `n` of `pool_grow` / `pool_shrink`: a whole number from 1 to `MAX_POOL_STEP` (1 when absent).
fn pool_step(v: Option<&Value>) -> Result<i64, String> {
    let n = match v {
        None | Some(Value::Null) => return Ok(1),
        Some(v) => v.as_i64().or_else(|| v.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 1e15).map(|f| f as i64)),
    };
    match n {
        Some(n) if (1..=MAX_POOL_STEP).contains(&n) => Ok(n),
        _ => Err(format!(
            "ValueError('n must be a whole number from 1 to {MAX_POOL_STEP}, not {}')",
            v.map(Value::to_string).unwrap_or_default()
        )),
    }
}

/// The queue of `add_consumer` / `cancel_consumer`: a name AMQP can carry (1 to 255 bytes).
fn queue_name(v: Option<&Value>) -> Result<&str, String> {
    match v.and_then(Value::as_str) {
        Some(q) if !q.trim().is_empty() && q.len() <= 255 => Ok(q),
        Some(q) if q.trim().is_empty() => Err("ValueError('a queue name cannot be empty')".into()),
        Some(_) => Err("ValueError('a queue name is at most 255 bytes')".into()),
        None => Err("ValueError('no queue given')".into()),
    }
}

/// A time limit of `control time_limit`: none (null), or seconds from 0 to a year.
fn parse_time_limit(v: Option<&Value>) -> Result<Option<f64>, String> {
    let secs = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        Some(_) => None,
    };
    match secs {
        Some(s) if s.is_finite() && (0.0..=MAX_LIMIT_SECS).contains(&s) => Ok(Some(s)),
        _ => Err(format!(
            "ValueError('{} is not a number of seconds from 0 to {MAX_LIMIT_SECS}')",
            v.map(Value::to_string).unwrap_or_default()
        )),
    }
}

/// The longest time limit remote control may set: a year.
pub const MAX_LIMIT_SECS: f64 = 31_536_000.0;

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
        // A handler that panics is an error reply, not the end of remote control.
        let reply = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| answer(&req, worker.as_ref(), &clock)))
            .unwrap_or_else(|_| json!({"error": format!("{method} failed inside the worker")}));
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
