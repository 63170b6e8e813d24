//! Evidence of the learner's own Python: their Celery worker (its heartbeat says `py-celery`) and
//! results of tasks mqlab did not send (their `.delay()`). mqlab notes every task id it sends in
//! a Redis sorted set, so its own tasks never count.

use std::collections::HashSet;
use std::time::Duration;

use redis::AsyncCommands;
use serde_json::Value;

use super::{Outcome, Probes};

/// Where every mqlab sender (app, `mqlab submit`, the task checks) notes the ids it sent.
pub const SENT_LOG_KEY: &str = "mqlab:sent-task-ids";

/// At most this many result keys are read.
const MAX_KEYS: usize = 20_000;

/// The Python Celery workers on the broker (their heartbeats say `py-celery`), by hostname, with
/// their Celery version, seen within 4.5 s; None when the broker cannot be listened to.
async fn python_workers(p: &Probes) -> Option<Vec<(String, String)>> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let url = p.cfg.broker_url.clone();
    let monitor = tokio::spawn(async move { crate::celery::events::monitor(&url, tx).await });
    let mut found: Vec<(String, String)> = vec![];
    let _ = tokio::time::timeout(Duration::from_millis(4500), async {
        while let Some(ev) = rx.recv().await {
            if matches!(ev.kind.as_str(), "worker-heartbeat" | "worker-online")
                && ev.str("sw_ident") == Some("py-celery")
                && !found.iter().any(|(h, _)| *h == ev.hostname)
            {
                found.push((ev.hostname.clone(), ev.str("sw_ver").unwrap_or("").to_string()));
                return;
            }
        }
    })
    .await;
    let ended = monitor.is_finished() && found.is_empty();
    monitor.abort();
    (!ended).then_some(found)
}

/// The learner's own Celery app, running: their Python worker registers the tasks the lessons call
/// by name (asked over remote control, as `celery inspect registered` does).
pub async fn py_tasks(p: &Probes) -> Outcome {
    let Some(workers) = python_workers(p).await else {
        return Outcome::fail("cannot listen for worker heartbeats: the broker does not answer", "see amqp.login");
    };
    if workers.is_empty() {
        return Outcome::fail(
            "no Python Celery worker is on the broker (no heartbeat in 4.5 s)",
            "start yours in the project folder: `celery -A celery_app worker --loglevel=info`",
        );
    }
    let client = match crate::celery::client::Client::connect(&p.cfg.broker_url, None, &p.cfg.queue, p.cfg.result_expires).await {
        Ok(c) => c,
        Err(e) => return Outcome::fail(format!("{e:#}"), "see amqp.login"),
    };
    let replies = client.broadcast_gather("registered", serde_json::json!({"taskinfoitems": []}), Duration::from_secs(1)).await;
    client.close().await;
    let replies = match replies {
        Ok(r) => r,
        Err(e) => return Outcome::fail(format!("{e:#}"), "see amqp.login"),
    };
    let mut said = vec![];
    for (host, _) in &workers {
        let Some((_, reply)) = replies.iter().find(|(h, _)| h == host) else {
            said.push(format!("{host} did not answer"));
            continue;
        };
        let names: Vec<&str> = reply
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).filter_map(|t| t.split_whitespace().next()).collect())
            .unwrap_or_default();
        let missing: Vec<&str> = ["tasks.hello", "tasks.add"].into_iter().filter(|t| !names.contains(t)).collect();
        if missing.is_empty() {
            let extra = if names.contains(&"tasks.divide") { ", tasks.divide" } else { "" };
            return Outcome::pass(format!("your worker {host} registers tasks.hello, tasks.add{extra} (asked over remote control)"));
        }
        said.push(format!(
            "{host} registers {} but not {}",
            if names.is_empty() { "nothing".to_string() } else { names.join(", ") },
            missing.join(", ")
        ));
    }
    Outcome::fail(
        said.join("; "),
        "start the worker from your project folder, where celery_app.py defines the tasks: `celery -A celery_app worker --loglevel=info` (a worker started elsewhere, or with another -A, lacks them)",
    )
}

/// A Python Celery worker's heartbeat on the broker.
pub async fn py_worker(p: &Probes) -> Outcome {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let url = p.cfg.broker_url.clone();
    let monitor = tokio::spawn(async move { crate::celery::events::monitor(&url, tx).await });
    let mut others = vec![];
    let found = tokio::time::timeout(Duration::from_millis(4500), async {
        while let Some(ev) = rx.recv().await {
            if !matches!(ev.kind.as_str(), "worker-heartbeat" | "worker-online") {
                continue;
            }
            let ident = ev.str("sw_ident").unwrap_or("").to_string();
            let ver = ev.str("sw_ver").unwrap_or("").to_string();
            if ident == "py-celery" {
                return Some((ev.hostname.clone(), ver));
            }
            if !others.contains(&ev.hostname) {
                others.push(ev.hostname.clone());
            }
        }
        None
    })
    .await;
    let ended = monitor.is_finished();
    monitor.abort();
    match found {
        Ok(Some((host, ver))) => Outcome::pass(format!("your Python Celery worker {host} (Celery {ver}) sends heartbeats on the broker"))
            .fact("python_celery", ver),
        _ if ended => {
            Outcome::fail("cannot listen for worker heartbeats: the broker does not answer", "the broker must answer first: see amqp.login")
        }
        _ => {
            let seen = if others.is_empty() { String::new() } else { format!(" (seen: {}, not Python Celery)", others.join(", ")) };
            // On RabbitMQ 4.3 and newer, Celery older than 5.7 cannot start: say so when it is
            // the broker in use.
            let version: Option<String> = super::rabbit::raw_overview(p)
                .await
                .ok()
                .and_then(|o| o.get("rabbitmq_version").and_then(|v| v.as_str()).map(str::to_string));
            let hint = match version {
                Some(v) if refuses_old_celery(&v) => format!(
                    "this broker is RabbitMQ {v}, which refuses the queues Celery older than 5.7 declares: such a worker loops on \
                     (541) INTERNAL_ERROR. Use Python ≥ 3.10 and `pip install \"celery[redis]>=5.7\"`, then start it in the project \
                     folder: `celery -A celery_app worker --loglevel=info`"
                ),
                _ => "start yours in the project folder (`mqlab init` writes it): `celery -A celery_app worker --loglevel=info`. \
                      If it loops on (541) INTERNAL_ERROR, its Celery is older than 5.7 and RabbitMQ is 4.3 or newer: \
                      use Python ≥ 3.10 and `pip install \"celery[redis]>=5.7\"`"
                    .to_string(),
            };
            Outcome::fail(format!("no Python Celery worker sent a heartbeat in 4.5 s{seen}"), hint)
        }
    }
}

/// The learner's Celery application in their project folder: `celery_app.py` registering the
/// tasks the lessons call by name (read from the file: mqlab cannot import it).
pub fn project_app(p: &Probes) -> Outcome {
    let dir = &p.cfg.project_dir;
    let shown = crate::config::shell_path(dir);
    let path = dir.join("celery_app.py");
    let text = match crate::files::read_capped(&path, 1024 * 1024) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Outcome::fail(
                format!("no celery_app.py in {shown}"),
                "press I (or run `mqlab init`) to write the project there, or write celery_app.py as this lesson shows",
            );
        }
        Err(e) => return Outcome::fail(format!("cannot read {}: {e}", path.display()), "check the file"),
    };
    let named = |task: &str| text.contains(&format!("name='{task}'")) || text.contains(&format!("name=\"{task}\""));
    let wanted = ["tasks.hello", "tasks.add"];
    let missing: Vec<&str> = wanted.iter().copied().filter(|t| !named(t)).collect();
    if !text.contains("Celery(") {
        return Outcome::fail(format!("{shown}/celery_app.py creates no Celery app"), "it needs `app = Celery(...)` as this lesson shows");
    }
    if !missing.is_empty() {
        return Outcome::fail(
            format!("{shown}/celery_app.py registers no task named {}", missing.join(" or ")),
            "decorate the functions with @app.task(name='tasks.hello') and @app.task(name='tasks.add'), as this lesson shows",
        );
    }
    let extra = if named("tasks.divide") { " (and tasks.divide)" } else { "" };
    Outcome::pass(format!("{shown}/celery_app.py defines tasks.hello and tasks.add{extra}"))
}

/// RabbitMQ 4.3 and newer refuse transient non-exclusive queues and global QoS by default,
/// which Celery before 5.7 uses.
pub fn refuses_old_celery(version: &str) -> bool {
    let mut parts = version.split(|c: char| !c.is_ascii_digit()).filter_map(|p| p.parse::<u32>().ok());
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (4, 3)
}

/// Results stored in Redis for task ids mqlab never sent, newest reads first.
async fn foreign_results(p: &Probes) -> Result<Vec<(String, Value)>, Outcome> {
    stored_results(p, true).await
}

/// Results stored in Redis (only those of tasks mqlab never sent, with `foreign_only`), newest
/// reads first.
async fn stored_results(p: &Probes, foreign_only: bool) -> Result<Vec<(String, Value)>, Outcome> {
    let client = redis::Client::open(p.cfg.result_backend.as_str())
        .map_err(|e| Outcome::fail(format!("invalid Redis URL: {e}"), "use redis://host:port/db"))?;
    let cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(3)));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
        .map_err(|e| Outcome::fail(format!("cannot connect to Redis: {e}"), "Redis must answer first: see redis.ping"))?;
    let mut keys: Vec<String> = vec![];
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg("celery-task-meta-*")
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .map_err(|e| Outcome::fail(format!("cannot list results: {e}"), "see redis.ping"))?;
        keys.extend(batch);
        cursor = next;
        if cursor == 0 || keys.len() >= MAX_KEYS {
            break;
        }
    }
    let sent: HashSet<String> = if foreign_only { conn.zrange(SENT_LOG_KEY, 0, -1).await.unwrap_or_default() } else { HashSet::new() };
    let ids: Vec<String> =
        keys.iter().filter_map(|k| k.strip_prefix("celery-task-meta-")).filter(|id| !sent.contains(*id)).map(str::to_string).collect();
    let mut out = vec![];
    for chunk in ids.chunks(500) {
        let keys: Vec<String> = chunk.iter().map(|id| format!("celery-task-meta-{id}")).collect();
        let vals: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(&mut conn).await.unwrap_or_default();
        for (id, v) in chunk.iter().zip(vals) {
            if let Some(v) = v.and_then(|t| serde_json::from_str::<Value>(&t).ok()) {
                out.push((id.clone(), v));
            }
        }
    }
    out.sort_by(|a, b| b.1.get("date_done").and_then(Value::as_str).cmp(&a.1.get("date_done").and_then(Value::as_str)));
    Ok(out)
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// `tasks.add ×3, tasks.hello ×1` (the names a result carries with `result_extended`), and how
/// many carry none.
fn by_name(results: &[&(String, Value)]) -> (String, usize) {
    let mut names: std::collections::BTreeMap<&str, usize> = Default::default();
    let mut unnamed = 0;
    for (_, v) in results {
        match v.get("name").and_then(Value::as_str) {
            Some(n) => *names.entry(n).or_default() += 1,
            None => unnamed += 1,
        }
    }
    (names.iter().map(|(n, c)| format!("{n} ×{c}")).collect::<Vec<_>>().join(", "), unnamed)
}

/// What a list of results holds, in words: by task name where stored, and why not otherwise.
fn described(results: &[&(String, Value)], state: &str) -> String {
    let (named, unnamed) = by_name(results);
    let mut parts = vec![];
    if !named.is_empty() {
        parts.push(named);
    }
    if unnamed > 0 {
        parts.push(format!(
            "{unnamed} without a task name (stored without result_extended, so only \"not sent by mqlab\" tells them apart)"
        ));
    }
    format!("{} {state} result(s) of tasks mqlab did not send: {}", results.len(), parts.join("; "))
}

/// The learner's own `.delay()`: results of tasks mqlab did not send (it notes every id it
/// sends), counted by state and by task name (`mqlab init`'s project stores names with
/// `result_extended`).
pub async fn results(p: &Probes) -> Outcome {
    let found = match foreign_results(p).await {
        Ok(f) => f,
        Err(o) => return o,
    };
    let state = |s: &str| found.iter().filter(|(_, v)| v.get("status").and_then(Value::as_str) == Some(s)).collect::<Vec<_>>();
    let (ok, failed) = (state("SUCCESS"), state("FAILURE"));
    match ok.first() {
        Some((id, v)) => {
            let mut detail = format!(
                "{}, e.g. {}… = {}",
                described(&ok, "SUCCESS"),
                short(id),
                v.get("result").map(Value::to_string).unwrap_or_default()
            );
            if !failed.is_empty() {
                detail.push_str(&format!("; and {}", described(&failed, "FAILURE")));
            }
            Outcome::pass(detail).fact("learner_results", ok.len().to_string())
        }
        None => Outcome::fail(
            if failed.is_empty() {
                "no result in Redis comes from a task you sent yourself (tasks sent by mqlab do not count)".to_string()
            } else {
                format!("no SUCCESS yet among tasks you sent; {}", described(&failed, "FAILURE"))
            },
            "run your submit_task.py (`python submit_task.py`), which calls .delay() and .get()",
        ),
    }
}

/// A failure of one of the learner's own tasks, stored with its exception.
pub async fn failures(p: &Probes) -> Outcome {
    let found = match foreign_results(p).await {
        Ok(f) => f,
        Err(o) => return o,
    };
    let failed: Vec<&(String, Value)> = found.iter().filter(|(_, v)| v.get("status").and_then(Value::as_str) == Some("FAILURE")).collect();
    match failed.first() {
        Some((id, v)) => {
            let exc = v.pointer("/result/exc_type").and_then(Value::as_str).unwrap_or("an exception");
            Outcome::pass(format!("{}, e.g. {}… raised {exc}", described(&failed, "FAILURE"), short(id)))
        }
        None => Outcome::fail(
            "no FAILURE in Redis comes from a task you sent yourself",
            "send one that fails from Python, as Step 9.4 does: `divide.delay(10, 0)`, then catch the exception that .get() re-raises",
        ),
    }
}

/// Competing consumers (Step 7): one task's results stored by two workers or more, as
/// `result_extended` keeps each result's worker. Whoever sent the tasks (a burst from `mqlab
/// submit` counts): what is observed is the queue handing its messages to both workers.
pub async fn two_workers(p: &Probes) -> Outcome {
    let found = match stored_results(p, false).await {
        Ok(f) => f,
        Err(o) => return o,
    };
    // Task name → worker → results.
    let mut by: std::collections::BTreeMap<&str, std::collections::BTreeMap<&str, usize>> = Default::default();
    let mut unnamed = 0;
    for (_, v) in &found {
        if v.get("status").and_then(Value::as_str) != Some("SUCCESS") {
            continue;
        }
        match (v.get("name").and_then(Value::as_str), v.get("worker").and_then(Value::as_str)) {
            (Some(n), Some(w)) => *by.entry(n).or_default().entry(w).or_default() += 1,
            _ => unnamed += 1,
        }
    }
    let listed = |workers: &std::collections::BTreeMap<&str, usize>| {
        let mut v: Vec<(&&str, &usize)> = workers.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        v.iter().map(|(w, n)| format!("{w} ×{n}")).collect::<Vec<_>>().join(", ")
    };
    if let Some((name, workers)) = by.iter().filter(|(_, w)| w.len() >= 2).max_by_key(|(_, w)| w.values().sum::<usize>()) {
        return Outcome::pass(format!("{name} ran on {} workers sharing the queue: {}", workers.len(), listed(workers)))
            .fact("shared_by", workers.len().to_string());
    }
    let detail = match by.iter().max_by_key(|(_, w)| w.values().sum::<usize>()) {
        Some((name, workers)) => format!("every {name} result names one worker: {}", listed(workers)),
        None if unnamed > 0 => format!("{unnamed} result(s) without a worker's name (stored without result_extended)"),
        None => "no result in Redis yet".to_string(),
    };
    Outcome::fail(
        detail,
        "start a second worker beside your first (`celery -A celery_app worker --loglevel=info --concurrency=1 --prefetch-multiplier=1 -n second@%h`), then send a burst: `mqlab submit tasks.hello World --count 20 --wait`",
    )
}

/// Sender and worker must run the same code (Step 9, Experiment 5): a task of the learner's
/// stored as FAILURE NotRegistered (their worker started before the task was written), then the
/// same task's SUCCESS after it (the worker restarted with the new code). A NotRegistered
/// failure is stored without the task's name (Celery's worker never parsed the task), so the
/// name comes from the exception, as `.get()` shows it.
pub async fn unregistered(p: &Probes) -> Outcome {
    let found = match foreign_results(p).await {
        Ok(f) => f,
        Err(o) => return o,
    };
    let status = |v: &Value| v.get("status").and_then(Value::as_str).unwrap_or("").to_string();
    let date = |v: &Value| v.get("date_done").and_then(Value::as_str).unwrap_or("").to_string();
    let unknown: Vec<(String, String)> = found
        .iter()
        .filter(|(_, v)| status(v) == "FAILURE" && v.pointer("/result/exc_type").and_then(Value::as_str) == Some("NotRegistered"))
        .filter_map(|(_, v)| {
            let name = v
                .get("name")
                .and_then(Value::as_str)
                .or_else(|| v.pointer("/result/exc_message/0").and_then(Value::as_str))
                .map(|n| n.trim_matches('\'').to_string())?;
            Some((name, date(v)))
        })
        .collect();
    if unknown.is_empty() {
        return Outcome::fail(
            "no task of yours failed with NotRegistered: your worker knew every task you sent",
            "add multiply_task to celery_app.py while your worker runs, then call it (Step 9, Experiment 5)",
        );
    }
    let hhmm = |d: &str| d.get(11..16).unwrap_or(d).to_string();
    for (name, failed_at) in &unknown {
        if let Some((_, ok)) = found
            .iter()
            .find(|(_, v)| status(v) == "SUCCESS" && v.get("name").and_then(Value::as_str) == Some(name) && date(v) > *failed_at)
        {
            return Outcome::pass(format!(
                "{name} failed with NotRegistered at {} UTC (the worker did not know it yet), then succeeded at {} UTC with {} (the worker restarted with the new code)",
                hhmm(failed_at),
                hhmm(&date(ok)),
                ok.get("result").map(Value::to_string).unwrap_or_default()
            ))
            .fact("unregistered_task", name.clone());
        }
    }
    let (name, at) = &unknown[0];
    Outcome::fail(
        format!("{name} failed with NotRegistered at {} UTC, and has not succeeded since", hhmm(at)),
        "restart your worker (Ctrl-C, then the same command) so it imports the new task, then call it again",
    )
}

/// Routing (Step 9, Experiment 6): a task of the learner's that a worker took from a queue other
/// than the default one (`task_routes`), as the stored result says (`result_extended` keeps the
/// routing key it was delivered with). When there is none yet, what the broker shows of the
/// lesson's `math` queue says which step is missing.
pub async fn routed(p: &Probes) -> Outcome {
    let found = match foreign_results(p).await {
        Ok(f) => f,
        Err(o) => return o,
    };
    let default = p.cfg.queue.as_str();
    let routed: Vec<&(String, Value)> = found
        .iter()
        .filter(|(_, v)| v.get("status").and_then(Value::as_str) == Some("SUCCESS"))
        .filter(|(_, v)| v.get("queue").and_then(Value::as_str).is_some_and(|q| !q.is_empty() && q != default))
        .collect();
    if let Some((id, v)) = routed.first() {
        let queue = v.get("queue").and_then(Value::as_str).unwrap_or("");
        let name = v.get("name").and_then(Value::as_str).unwrap_or("a task");
        let worker = v.get("worker").and_then(Value::as_str).map(|w| format!(" by {w}")).unwrap_or_default();
        return Outcome::pass(format!(
            "{name} {}… ran from queue {queue}{worker}, not {default}: routed by its name ({} such result(s))",
            short(id),
            routed.len()
        ))
        .fact("routed_queue", queue.to_string());
    }
    let math = {
        let state = async {
            let conn = crate::celery::broker::connect(&p.cfg.broker_url, "mqlab check").await.ok()?;
            let s = crate::celery::broker::queue_state(&conn.create_channel().await.ok()?, "math").await.ok();
            let _ = tokio::time::timeout(Duration::from_secs(1), conn.close(200, "check done".into())).await;
            s
        };
        state.await
    };
    use crate::celery::broker::QueueState;
    let (detail, hint) = match math {
        None | Some(QueueState::Missing) => (
            "no result of yours ran from a queue other than the default one, and there is no queue math yet".to_string(),
            "add `app.conf.task_routes = {'tasks.add': {'queue': 'math'}}` to celery_app.py, start a worker with `-Q math`, then run `python submit_task.py`",
        ),
        Some(QueueState::Present { consumers: 0, ready }) => (
            format!("queue math exists with {ready} task(s) waiting, but no worker consumes it, and no result of yours came from it"),
            "start a worker for it in the project folder: `celery -A celery_app worker -Q math --loglevel=info -n math@%h --concurrency=1`",
        ),
        Some(QueueState::Present { .. }) => (
            "a worker consumes math, but no result of yours came from it yet".to_string(),
            "send tasks.add from Python with the routes in celery_app.py: `python submit_task.py` (mqlab submit does not read your routes)",
        ),
    };
    Outcome::fail(detail, hint)
}

#[cfg(test)]
mod tests {
    #[test]
    fn which_rabbitmq_refuses_old_celery() {
        for (v, refuses) in
            [("3.10.8", false), ("4.0.5", false), ("4.1.3", false), ("4.2.0", false), ("4.3.0", true), ("4.3.5", true), ("5.0.0", true)]
        {
            assert_eq!(super::refuses_old_celery(v), refuses, "{v}");
        }
    }
}
