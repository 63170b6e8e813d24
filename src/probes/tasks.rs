//! Task checks: a task goes through the broker to a worker and its result comes back through
//! Redis, exactly like `submit_task.py`.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::{Outcome, Probes};
use crate::celery::client::{Client, follow};
use crate::celery::protocol::{TaskMessage, TaskState};

async fn send_and_wait(p: &Probes, task: &str, args: Vec<Value>) -> Result<(crate::celery::ResultMeta, f64), Outcome> {
    let client = Client::connect_with_args(
        &p.cfg.broker_url,
        Some(&p.cfg.result_backend),
        &p.cfg.queue,
        p.cfg.result_expires,
        &p.cfg.queue_args(None),
    )
    .await
    .map_err(|e| Outcome::fail(format!("{e:#}"), "the broker and Redis must answer first: see amqp.login and redis.ping"))?
    .log_sent_ids(super::learner::SENT_LOG_KEY);
    let msg = TaskMessage::new(task, args, Map::new());
    let mut watcher = client.watch(std::slice::from_ref(&msg)).await.map_err(|e| Outcome::fail(format!("{e:#}"), "see redis.ping"))?;
    let start = std::time::Instant::now();
    client.publish(std::slice::from_ref(&msg)).await.map_err(|e| Outcome::fail(format!("{e:#}"), "see amqp.login"))?;
    let mut last = None;
    let done = follow(&mut watcher, Some(Duration::from_secs(10)), |m| last = Some(m.clone()))
        .await
        .map_err(|e| Outcome::fail(format!("{e:#}"), "see redis.ping"))?;
    let secs = start.elapsed().as_secs_f64();
    client.close().await;
    match (done, last) {
        (true, Some(m)) => Ok((m, secs)),
        _ => Err(Outcome::fail(
            format!("{task}[{}] was sent to queue {:?} but no worker finished it within 10 s", msg.id, p.cfg.queue),
            "start a worker and leave it running: `mqlab worker`, or `celery -A celery_app worker --loglevel=info`",
        )),
    }
}

pub async fn roundtrip(p: &Probes) -> Outcome {
    match send_and_wait(p, "tasks.add", vec![json!(42), json!(58)]).await {
        Err(o) => o,
        Ok((m, secs)) if m.status == TaskState::Success && m.result == json!(100) => {
            Outcome::pass(format!("tasks.add(42, 58) = 100 in {:.0} ms through queue {:?}", secs * 1000.0, p.cfg.queue))
                .fact("roundtrip_ms", format!("{:.0}", secs * 1000.0))
        }
        Ok((m, _)) => Outcome::fail(
            format!("tasks.add(42, 58) ended {} with {}", m.status, m.exception_text().unwrap_or_else(|| m.result.to_string())),
            "the worker on this queue does not run the curriculum's tasks.add: start `mqlab worker` or the celery_app.py worker",
        ),
    }
}

pub async fn failure(p: &Probes) -> Outcome {
    match send_and_wait(p, "tasks.divide", vec![json!(10), json!(0)]).await {
        Err(o) => o,
        Ok((m, _)) if m.status == TaskState::Failure && m.result.get("exc_type") == Some(&json!("ZeroDivisionError")) => {
            Outcome::pass("tasks.divide(10, 0) → FAILURE ZeroDivisionError('division by zero'), stored with its traceback")
        }
        Ok((m, _)) => Outcome::fail(
            format!("tasks.divide(10, 0) ended {} ({})", m.status, m.exception_text().unwrap_or_else(|| m.result.to_string())),
            "the worker does not have the curriculum's tasks.divide (Step 9.4): add it to celery_app.py or use `mqlab worker`",
        ),
    }
}
