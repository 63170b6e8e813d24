//! Celery events on the `celeryev` topic exchange, as a Python worker sends them, so that
//! Flower, `celery events` and mqlab's own views see mqlab's worker like any other.

use std::sync::atomic::{AtomicU64, Ordering};

use lapin::options::{BasicPublishOptions, ExchangeDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, ExchangeKind};
use serde_json::{Map, Value, json};

use super::protocol::short;

pub const EXCHANGE: &str = "celeryev";

/// The Lamport clock every event and control reply carries.
#[derive(Debug, Default)]
pub struct Clock(AtomicU64);

impl Clock {
    pub fn tick(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed) + 1
    }
    pub fn now(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Declares `celeryev` (topic, durable), as Celery does before publishing.
pub async fn declare(ch: &Channel) -> lapin::Result<()> {
    ch.exchange_declare(
        short(EXCHANGE),
        ExchangeKind::Topic,
        ExchangeDeclareOptions { durable: true, ..Default::default() },
        FieldTable::default(),
    )
    .await
}

/// The 1, 5 and 15 minute load averages, two decimals (zeros where unknown): /proc on Linux,
/// sysinfo elsewhere (macOS).
pub fn loadavg() -> Vec<f64> {
    let round = |x: f64| (x * 100.0).round() / 100.0;
    #[cfg(target_os = "linux")]
    let l = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).filter_map(|x| x.parse::<f64>().ok()).map(round).collect())
        .unwrap_or_else(|| vec![0.0, 0.0, 0.0]);
    #[cfg(not(target_os = "linux"))]
    let l = {
        let l = sysinfo::System::load_average();
        vec![round(l.one), round(l.five), round(l.fifteen)]
    };
    l
}

/// Sends events for one worker.
#[derive(Clone)]
pub struct Dispatcher {
    pub channel: Channel,
    pub hostname: String,
    pub pid: u32,
}

impl Dispatcher {
    /// An event with the standard fields (`hostname`, `utcoffset`, `pid`, `clock`, `timestamp`,
    /// `type`).
    pub fn build(&self, clock: &Clock, kind: &str, fields: Value) -> Value {
        let mut ev: Map<String, Value> = fields.as_object().cloned().unwrap_or_default();
        ev.insert("hostname".into(), json!(self.hostname));
        ev.insert("utcoffset".into(), json!(0));
        ev.insert("pid".into(), json!(self.pid));
        ev.insert("clock".into(), json!(clock.tick()));
        ev.insert("timestamp".into(), json!(chrono::Utc::now().timestamp_micros() as f64 / 1e6));
        ev.insert("type".into(), json!(kind));
        Value::Object(ev)
    }

    /// Publishes one event (or a list) with routing key `rk`, transient, header `hostname`.
    async fn publish(&self, rk: &str, body: &Value) {
        let body = serde_json::to_vec(body).expect("event serializes");
        let mut headers = FieldTable::default();
        headers.insert(short("hostname"), AMQPValue::LongString(self.hostname.as_bytes().to_vec().into()));
        let props = BasicProperties::default()
            .with_content_type(short("application/json"))
            .with_content_encoding(short("utf-8"))
            .with_delivery_mode(1)
            .with_priority(0)
            .with_headers(headers);
        if let Err(e) = self.channel.basic_publish(short(EXCHANGE), short(rk), BasicPublishOptions::default(), &body, props).await {
            tracing::debug!("event {rk} not sent: {e}");
        }
    }

    /// Sends one event now, routing key = its type with dots for dashes (`worker.heartbeat`).
    pub async fn send(&self, clock: &Clock, kind: &str, fields: Value) {
        let ev = self.build(clock, kind, fields);
        self.publish(&kind.replace('-', "."), &ev).await;
    }

    /// Task events go through a buffer flushed as one `task.multi` list every 100 ms (or 200
    /// events), as Celery's prefork workers send them: one publish instead of three per task.
    pub fn task_buffer(&self) -> tokio::sync::mpsc::UnboundedSender<Value> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
        let me = self.clone();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(100);
                while batch.len() < 200 {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(ev)) => batch.push(ev),
                        _ => break,
                    }
                }
                me.publish("task.multi", &Value::Array(batch)).await;
            }
        });
        tx
    }
}

/// Fields of worker-online / worker-heartbeat / worker-offline.
pub fn worker_fields(active: usize, processed: u64) -> Value {
    json!({
        "freq": 2.0,
        "active": active,
        "processed": processed,
        "loadavg": loadavg(),
        "sw_ident": "mqlab",
        "sw_ver": env!("CARGO_PKG_VERSION"),
        "sw_sys": std::env::consts::OS.replace("linux", "Linux").replace("macos", "Darwin"),
    })
}

/// An event from any worker on the broker (mqlab's or Python's).
#[derive(Clone, Debug, PartialEq)]
pub struct CeleryEvent {
    pub kind: String,
    pub hostname: String,
    pub fields: Map<String, Value>,
}

impl CeleryEvent {
    pub fn str(&self, k: &str) -> Option<&str> {
        self.fields.get(k).and_then(Value::as_str)
    }

    pub fn time(&self) -> chrono::DateTime<chrono::Utc> {
        self.fields
            .get("timestamp")
            .and_then(Value::as_f64)
            .and_then(|t| chrono::DateTime::from_timestamp_micros((t * 1e6) as i64))
            .unwrap_or_else(chrono::Utc::now)
    }
}

/// Reads an event message: one object, or a list of them (`task.multi`, what prefork workers
/// send).
pub fn parse(body: &[u8]) -> Vec<CeleryEvent> {
    let one = |v: Value| -> Option<CeleryEvent> {
        let Value::Object(fields) = v else { return None };
        let kind = fields.get("type")?.as_str()?.to_string();
        let hostname = fields.get("hostname").and_then(Value::as_str).unwrap_or("").to_string();
        Some(CeleryEvent { kind, hostname, fields })
    };
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => items.into_iter().filter_map(one).collect(),
        Ok(v) => one(v).into_iter().collect(),
        Err(_) => vec![],
    }
}

/// Follows every event on the broker until the connection drops: an exclusive, server-named
/// queue bound to `celeryev` with `#` (works on RabbitMQ 3.x and 4.x).
pub async fn monitor(broker_url: &str, tx: tokio::sync::mpsc::UnboundedSender<CeleryEvent>) -> anyhow::Result<()> {
    use futures_util::StreamExt;
    use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
    let conn = super::broker::connect(broker_url, "mqlab events").await?;
    let ch = conn.create_channel().await?;
    declare(&ch).await?;
    let mut args = FieldTable::default();
    args.insert(short("x-message-ttl"), AMQPValue::LongInt(5000));
    let q = ch.queue_declare(short(""), QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() }, args).await?;
    let name = q.name().as_str().to_string();
    ch.queue_bind(short(&name), short(EXCHANGE), short("#"), QueueBindOptions::default(), FieldTable::default()).await?;
    let mut consumer = ch
        .basic_consume(
            short(&name),
            short("mqlab-events"),
            BasicConsumeOptions { no_ack: true, ..Default::default() },
            FieldTable::default(),
        )
        .await?;
    while let Some(d) = consumer.next().await {
        for ev in parse(&d?.data) {
            if tx.send(ev).is_err() {
                return Ok(());
            }
        }
    }
    anyhow::bail!("the event consumer was closed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_single_and_multi_events_as_captured() {
        let multi = br#"[{"hostname": "celery@vm", "utcoffset": 0.0, "pid": 6631, "clock": 22, "uuid": "bfb26af2", "name": "tasks.add", "args": "(1, 2)", "kwargs": "{}", "root_id": "bfb26af2", "parent_id": null, "retries": 0, "eta": null, "expires": null, "timestamp": 1795815333.4331408, "type": "task-received"}]"#;
        let evs = parse(multi);
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].kind, "task-received");
        assert_eq!(evs[0].str("uuid"), Some("bfb26af2"));
        assert_eq!(evs[0].time().timestamp(), 1795815333);
        let hb = br#"{"hostname": "celery@vm", "freq": 2.0, "active": 0, "processed": 4, "sw_ident": "py-celery", "sw_ver": "5.7.0", "timestamp": 1795815334.27, "type": "worker-heartbeat"}"#;
        assert_eq!(parse(hb)[0].hostname, "celery@vm");
        assert!(parse(b"not json").is_empty());
        assert!(parse(b"[1, {\"no\": \"type\"}]").is_empty());
    }
}
