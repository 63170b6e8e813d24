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

pub fn loadavg() -> Vec<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).filter_map(|x| x.parse::<f64>().ok()).map(|x| (x * 100.0).round() / 100.0).collect())
        .unwrap_or_else(|| vec![0.0, 0.0, 0.0])
}

/// Sends events for one worker.
#[derive(Clone)]
pub struct Dispatcher {
    pub channel: Channel,
    pub hostname: String,
    pub pid: u32,
}

impl Dispatcher {
    /// Builds an event with the standard fields (`hostname`, `utcoffset`, `pid`, `clock`,
    /// `timestamp`, `type`) and publishes it with routing key `type` with dots for dashes.
    pub async fn send(&self, clock: &Clock, kind: &str, fields: Value) {
        let mut ev: Map<String, Value> = fields.as_object().cloned().unwrap_or_default();
        ev.insert("hostname".into(), json!(self.hostname));
        ev.insert("utcoffset".into(), json!(0));
        ev.insert("pid".into(), json!(self.pid));
        ev.insert("clock".into(), json!(clock.tick()));
        ev.insert("timestamp".into(), json!(chrono::Utc::now().timestamp_micros() as f64 / 1e6));
        ev.insert("type".into(), json!(kind));
        let body = serde_json::to_vec(&ev).expect("event serializes");
        let mut headers = FieldTable::default();
        headers.insert(short("hostname"), AMQPValue::LongString(self.hostname.as_bytes().to_vec().into()));
        let props = BasicProperties::default()
            .with_content_type(short("application/json"))
            .with_content_encoding(short("utf-8"))
            .with_delivery_mode(1)
            .with_priority(0)
            .with_headers(headers);
        let rk = kind.replace('-', ".");
        if let Err(e) = self.channel.basic_publish(short(EXCHANGE), short(&rk), BasicPublishOptions::default(), &body, props).await {
            tracing::debug!("event {kind} not sent: {e}");
        }
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
