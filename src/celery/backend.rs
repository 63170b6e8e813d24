//! Celery's Redis result backend: `celery-task-meta-<id>` keys written with
//! `MULTI; SETEX key ttl json; PUBLISH key json; EXEC`, read with GET, waited on with SUBSCRIBE.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use futures_util::StreamExt;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::protocol::{TaskState, iso};
use super::pyjson;
use super::tasks::TaskError;

pub const KEY_PREFIX: &str = "celery-task-meta-";

/// One result stored as Celery does, atomically: keep a stored SUCCESS, else SETEX (or SET
/// when results never expire) and PUBLISH on the key's channel. Errors come back as text.
const STORE_SCRIPT: &str = r#"
local cur = redis.pcall('GET', KEYS[1])
if type(cur) == 'table' and cur['err'] then return 'ERR ' .. cur['err'] end
if cur then
  local ok, m = pcall(cjson.decode, cur)
  if ok and type(m) == 'table' and m['status'] == 'SUCCESS' then return 'KEPT' end
end
local r
if tonumber(ARGV[2]) > 0 then r = redis.pcall('SETEX', KEYS[1], ARGV[2], ARGV[1]) else r = redis.pcall('SET', KEYS[1], ARGV[1]) end
if type(r) == 'table' and r['err'] then return 'ERR ' .. r['err'] end
redis.call('PUBLISH', KEYS[1], ARGV[1])
return 'OK'
"#;

/// A stored result, field for field as Celery writes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResultMeta {
    pub status: TaskState,
    #[serde(default)]
    pub result: Value,
    #[serde(default)]
    pub traceback: Option<String>,
    #[serde(default)]
    pub children: Vec<Value>,
    #[serde(default)]
    pub date_done: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// With `result_extended` (Celery's setting): the task's name, arguments, worker, retries
    /// and queue, stored with each state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kwargs: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    pub task_id: String,
}

/// What `result_extended` adds to a stored state.
#[derive(Clone, Debug, Default)]
pub struct Extended {
    pub name: String,
    pub args: Value,
    pub kwargs: Value,
    pub worker: String,
    pub retries: i64,
    pub queue: String,
}

impl ResultMeta {
    /// The task's place among others, as Celery stores it with every state: its group, its
    /// parent (the task before it in a chain, or the one that linked it), and the tasks it sent
    /// (`[[id, null], null]` each).
    pub fn with_links(mut self, group_id: Option<&str>, parent_id: Option<&str>, children: &[String]) -> Self {
        self.group_id = group_id.map(str::to_string);
        self.parent_id = parent_id.map(str::to_string);
        self.children = children.iter().map(|id| serde_json::json!([[id, null], null])).collect();
        self
    }

    /// Adds the `result_extended` fields, when given.
    pub fn with_extended(mut self, ext: Option<&Extended>) -> Self {
        if let Some(e) = ext {
            self.name = Some(e.name.clone());
            self.args = Some(e.args.clone());
            self.kwargs = Some(e.kwargs.clone());
            self.worker = Some(e.worker.clone());
            self.retries = Some(e.retries);
            self.queue = Some(e.queue.clone());
        }
        self
    }

    fn new(task_id: &str, status: TaskState, result: Value, traceback: Option<String>) -> Self {
        ResultMeta {
            status,
            result,
            traceback,
            children: vec![],
            date_done: status.is_ready().then(|| iso(Utc::now())),
            task_id: task_id.to_string(),
            group_id: None,
            parent_id: None,
            name: None,
            args: None,
            kwargs: None,
            worker: None,
            retries: None,
            queue: None,
        }
    }

    pub fn started(task_id: &str, pid: u32, hostname: &str) -> Self {
        Self::new(task_id, TaskState::Started, json!({"pid": pid, "hostname": hostname}), None)
    }

    pub fn success(task_id: &str, result: Value) -> Self {
        Self::new(task_id, TaskState::Success, result, None)
    }

    pub fn failure(task_id: &str, err: &TaskError) -> Self {
        Self::new(task_id, TaskState::Failure, err.to_result(), err.traceback.clone())
    }

    /// RETRY with the exception that caused it (`date_done` stays null: not a ready state).
    pub fn retry(task_id: &str, err: &TaskError) -> Self {
        Self::new(task_id, TaskState::Retry, err.to_result(), err.traceback.clone())
    }

    pub fn revoked(task_id: &str, reason: &str) -> Self {
        Self::new(
            task_id,
            TaskState::Revoked,
            json!({"exc_type": "TaskRevokedError", "exc_message": [reason], "exc_module": "celery.exceptions"}),
            None,
        )
    }

    /// The exception of a FAILURE as `Type: message`.
    pub fn exception_text(&self) -> Option<String> {
        if !matches!(self.status, TaskState::Failure | TaskState::Revoked | TaskState::Retry) {
            return None;
        }
        let ty = self.result.get("exc_type").and_then(Value::as_str).unwrap_or("Exception");
        let msg = match self.result.get("exc_message") {
            Some(Value::Array(a)) if a.len() == 1 => super::pyrepr::str_of(&a[0]),
            Some(Value::Array(a)) => super::pyrepr::repr_args(a),
            Some(other) => super::pyrepr::str_of(other),
            None => String::new(),
        };
        Some(format!("{ty}: {msg}"))
    }
}

/// What a store did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreOutcome {
    Stored,
    /// A SUCCESS was already stored for this id (a redelivered message); it was kept.
    KeptSuccess,
}

/// Records one chord header result, as Celery's Redis backend does (the same keys, members and
/// claim, so header tasks may run on Python and mqlab workers alike): the result joins the
/// sorted set `.j` once per task and header index, and when every result is in, one worker
/// claims the right to send the body (`.c`).
const CHORD_PART_SCRIPT: &str = r#"
local jkey, tkey, skey, dkey, gkey, ckey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local tid, value, score = ARGV[1], ARGV[2], ARGV[3]
local expires, group_expires, claim_expires, token = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
if redis.call('GET', ckey) == 'done' then return {-1, 0, 0, 0} end
local member = tid .. ':' .. score
if redis.call('SISMEMBER', dkey, member) == 0 then
  redis.call('ZADD', jkey, score, value)
  redis.call('SADD', dkey, member)
end
local ready = redis.call('ZCOUNT', jkey, '-inf', '+inf')
if expires > 0 then
  for _, k in ipairs({jkey, tkey, skey, dkey}) do redis.call('EXPIRE', k, expires) end
  if group_expires > 0 then redis.call('EXPIRE', gkey, group_expires) end
end
local diff = redis.call('GET', tkey)
local size = redis.call('GET', skey)
local claimed = 0
if size and ready == tonumber(size) + tonumber(diff or 0) then
  if redis.call('SET', ckey, token, 'NX', 'EX', claim_expires) then claimed = 1 end
end
return {ready, tonumber(diff or 0), tonumber(size or 0), claimed}
"#;

/// Keeps the claim to send a chord's body while sending it.
const CHORD_CLAIM_SCRIPT: &str = r#"
local ckey, skey, token, expires = KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2])
if redis.call('GET', ckey) == token then return redis.call('EXPIRE', ckey, expires) end
if not redis.call('GET', ckey) and redis.call('EXISTS', skey) == 1 then
  return redis.call('SET', ckey, token, 'EX', expires, 'NX') and 1 or 0
end
return 0
"#;

/// After the body is sent: the chord's keys go, and a marker stops late duplicates.
const CHORD_CLEANUP_SCRIPT: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
  if tonumber(ARGV[2]) > 0 then redis.call('SET', KEYS[1], 'done', 'EX', tonumber(ARGV[2])) end
  return 1
end
return 0
"#;

/// What recording a chord part found.
#[derive(Debug, PartialEq, Eq)]
pub enum ChordPart {
    /// The chord was already completed (a late duplicate).
    Done,
    /// Results so far; not complete, or another worker claimed the body.
    Waiting,
    /// Every header result is in and this worker sends the body; the results in header order.
    Complete { results: Vec<Value>, token: String },
}

/// How long a claim to send a chord's body lasts (Celery: twice its join timeout of 5 s).
const CHORD_CLAIM_SECS: u64 = 10;

/// A Redis result backend connection (reconnects on its own after an outage).
#[derive(Clone)]
pub struct ResultBackend {
    conn: ConnectionManager,
    client: redis::Client,
    expires: u64,
}

impl ResultBackend {
    /// Connects to `redis://host:port/db`. `expires` is `result_expires` in seconds (0 = never).
    pub async fn connect(url: &str, expires: u64) -> anyhow::Result<Self> {
        use redis::IntoConnectionInfo;
        // TCP_NODELAY (redis-rs leaves Nagle on): a result's write must not wait for the ack of
        // the one before it.
        let info = url
            .into_connection_info()
            .with_context(|| "invalid Redis URL".to_string())?
            .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
        let client = redis::Client::open(info).with_context(|| "invalid Redis URL".to_string())?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(3)))
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(2);
        let conn = tokio::time::timeout(Duration::from_secs(5), client.get_connection_manager_with_config(config))
            .await
            .map_err(|_| anyhow::anyhow!("timed out connecting to Redis"))?
            .context("cannot connect to Redis")?;
        // A Redis that wants a password the URL does not give accepts the connection and
        // refuses every command: say so now, once, rather than at each result.
        let mut probe = conn.clone();
        if let Err(e) = redis::cmd("PING").query_async::<String>(&mut probe).await {
            let hint = if e.code() == Some("NOAUTH") {
                "Redis wants a password (NOAUTH): give it in the URL, redis://:PASSWORD@HOST:PORT/DB"
            } else {
                "Redis does not answer PING"
            };
            return Err(anyhow::Error::new(e).context(hint));
        }
        Ok(ResultBackend { conn, client, expires })
    }

    /// Whether a Redis error means "Redis is away for now" (worth waiting for) rather than "this
    /// command cannot succeed" (a key of another type, a refused login, a bad argument).
    pub fn is_outage(e: &redis::RedisError) -> bool {
        if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout() {
            return true;
        }
        matches!(e.code(), Some("LOADING" | "BUSY" | "MASTERDOWN" | "TRYAGAIN" | "CLUSTERDOWN" | "READONLY"))
    }

    /// Whether a write Redis refused may succeed when tried again, once an operator or Redis
    /// itself mends the cause: the outages of [`is_outage`](Self::is_outage), and a Redis that
    /// asks for a password it did not ask for before (NOAUTH, WRONGPASS), is full (OOM under
    /// `maxmemory` with `noeviction`), cannot persist (MISCONF) or lacks replicas (NOREPLICAS).
    /// What is left (a key of another type, a value too large, a bad argument) is refused for good.
    pub fn is_retryable(e: &redis::RedisError) -> bool {
        Self::is_outage(e) || e.code().is_some_and(Self::retryable_code)
    }

    /// [`is_retryable`](Self::is_retryable) for an error code (the first word of Redis's reply).
    pub fn retryable_code(code: &str) -> bool {
        matches!(
            code,
            "LOADING"
                | "BUSY"
                | "MASTERDOWN"
                | "TRYAGAIN"
                | "CLUSTERDOWN"
                | "READONLY"
                | "NOAUTH"
                | "WRONGPASS"
                | "OOM"
                | "MISCONF"
                | "NOREPLICAS"
        )
    }

    pub fn key(task_id: &str) -> String {
        format!("{KEY_PREFIX}{task_id}")
    }

    /// Stores a state as Celery does: a stored SUCCESS is never overwritten; the write is
    /// `MULTI; SETEX; PUBLISH; EXEC` so that clients waiting on the channel see it at once.
    pub async fn store(&self, meta: &ResultMeta) -> redis::RedisResult<StoreOutcome> {
        let key = Self::key(&meta.task_id);
        let mut conn = self.conn.clone();
        let current: Option<String> = conn.get(&key).await?;
        if let Some(cur) = current
            && pyjson::from_str::<ResultMeta>(&cur).is_ok_and(|m| m.status == TaskState::Success)
        {
            return Ok(StoreOutcome::KeptSuccess);
        }
        let value = pyjson::to_string(meta).expect("result meta serializes");
        let mut pipe = redis::pipe();
        pipe.atomic();
        if self.expires > 0 {
            pipe.cmd("SETEX").arg(&key).arg(self.expires).arg(&value).ignore();
        } else {
            pipe.cmd("SET").arg(&key).arg(&value).ignore();
        }
        pipe.cmd("PUBLISH").arg(&key).arg(&value).ignore();
        pipe.query_async::<()>(&mut conn).await?;
        Ok(StoreOutcome::Stored)
    }

    /// Stores many states in one round trip, each as `store` does (a stored SUCCESS is never
    /// overwritten; SETEX then PUBLISH), by a script per result so that one result's error (a
    /// key of another type) fails that result only. Ok(per result: Ok(outcome) or Err(reason)).
    pub async fn store_many<'a>(
        &self,
        metas: impl IntoIterator<Item = &'a ResultMeta>,
    ) -> redis::RedisResult<Vec<Result<StoreOutcome, String>>> {
        let mut pipe = redis::pipe();
        for meta in metas {
            let value = pyjson::to_string(meta).expect("result meta serializes");
            pipe.cmd("EVAL").arg(STORE_SCRIPT).arg(1).arg(Self::key(&meta.task_id)).arg(value).arg(self.expires);
        }
        let mut conn = self.conn.clone();
        // Each reply on its own (an error for one result, NOAUTH or OOM for all of them), each
        // error as `CODE detail` so that the caller can tell a refusal for now from one for good.
        pipe.ignore_errors();
        let replies: Vec<redis::RedisResult<String>> = pipe.query_async(&mut conn).await?;
        Ok(replies
            .into_iter()
            .map(|r| match r {
                Ok(r) => match r.as_str() {
                    "OK" => Ok(StoreOutcome::Stored),
                    "KEPT" => Ok(StoreOutcome::KeptSuccess),
                    other => Err(other.trim_start_matches("ERR ").to_string()),
                },
                Err(e) => Err(match e.code() {
                    Some(code) => format!("{code} {}", e.detail().unwrap_or_default()).trim_end().to_string(),
                    None => e.to_string(),
                }),
            })
            .collect())
    }

    /// Notes task ids in a sorted set `key` (scored by time, the newest `keep` kept, expiring
    /// after a week), so a reader can tell the tasks this client sent from anyone else's.
    pub async fn mark_sent(&self, key: &str, ids: &[String], keep: usize) -> redis::RedisResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        let mut pipe = redis::pipe();
        for chunk in ids.chunks(1000) {
            let members: Vec<(f64, &str)> = chunk.iter().map(|id| (now, id.as_str())).collect();
            pipe.zadd_multiple(key, &members).ignore();
        }
        pipe.cmd("ZREMRANGEBYRANK").arg(key).arg(0).arg(-(keep as i64) - 1).ignore();
        pipe.expire(key, 7 * 24 * 3600).ignore();
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn).await
    }

    /// The keys of a group's chord state: `celery-taskset-meta-<gid>` with `suffix`.
    pub fn group_key(group_id: &str, suffix: &str) -> String {
        format!("celery-taskset-meta-{group_id}{suffix}")
    }

    /// Records one header task's final state for its chord (Celery's `on_chord_part_return`).
    pub async fn chord_part(
        &self,
        group_id: &str,
        task_id: &str,
        group_index: Option<i64>,
        state: TaskState,
        result: &Value,
    ) -> redis::RedisResult<ChordPart> {
        let g = |s: &str| Self::group_key(group_id, s);
        let encoded = pyjson::to_string(&serde_json::json!([1, task_id, state.as_str(), result])).expect("serializes");
        let score = group_index.map(|i| i.to_string()).unwrap_or_else(|| "+inf".into());
        let token = uuid::Uuid::new_v4().simple().to_string();
        let mut conn = self.conn.clone();
        let (ready, diff, size, claimed): (i64, i64, i64, i64) = redis::cmd("EVAL")
            .arg(CHORD_PART_SCRIPT)
            .arg(6)
            .arg(&[g(".j"), g(".t"), g(".s"), g(".d"), g(""), g(".c")])
            .arg(task_id)
            .arg(encoded)
            .arg(score)
            .arg(self.expires)
            .arg(self.expires)
            .arg(CHORD_CLAIM_SECS)
            .arg(&token)
            .query_async(&mut conn)
            .await?;
        if ready == -1 {
            return Ok(ChordPart::Done);
        }
        if claimed == 0 || size == 0 || ready != size + diff {
            return Ok(ChordPart::Waiting);
        }
        let members: Vec<String> = redis::cmd("ZRANGE").arg(g(".j")).arg(0).arg(-1).query_async(&mut conn).await?;
        let results = members.iter().filter_map(|m| pyjson::from_str::<Value>(m).ok()).collect();
        Ok(ChordPart::Complete { results, token })
    }

    /// Extends this worker's claim on sending the body; false when it was lost.
    pub async fn chord_keep_claim(&self, group_id: &str, token: &str) -> redis::RedisResult<bool> {
        let mut conn = self.conn.clone();
        let kept: i64 = redis::cmd("EVAL")
            .arg(CHORD_CLAIM_SCRIPT)
            .arg(2)
            .arg(Self::group_key(group_id, ".c"))
            .arg(Self::group_key(group_id, ".s"))
            .arg(token)
            .arg(CHORD_CLAIM_SECS)
            .query_async(&mut conn)
            .await?;
        Ok(kept == 1)
    }

    /// Removes the chord's state once its body is sent (or its failure recorded).
    pub async fn chord_cleanup(&self, group_id: &str, token: &str) -> redis::RedisResult<bool> {
        let g = |s: &str| Self::group_key(group_id, s);
        let mut conn = self.conn.clone();
        let done: i64 = redis::cmd("EVAL")
            .arg(CHORD_CLEANUP_SCRIPT)
            .arg(5)
            .arg(&[g(".c"), g(".j"), g(".t"), g(".s"), g(".d")])
            .arg(token)
            .arg((CHORD_CLAIM_SECS * 2).max(300))
            .query_async(&mut conn)
            .await?;
        Ok(done == 1)
    }

    /// Reads a result; a missing key is PENDING, as in Celery.
    pub async fn get(&self, task_id: &str) -> anyhow::Result<ResultMeta> {
        let mut conn = self.conn.clone();
        let raw: Option<String> = conn.get(Self::key(task_id)).await?;
        match raw {
            None => Ok(ResultMeta::new(task_id, TaskState::Pending, Value::Null, None)),
            Some(raw) => pyjson::from_str(&raw).with_context(|| format!("result of {task_id} is not Celery JSON")),
        }
    }

    /// Reads several results at once (MGET).
    pub async fn get_many(&self, ids: &[String]) -> anyhow::Result<Vec<ResultMeta>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let mut conn = self.conn.clone();
        let keys: Vec<String> = ids.iter().map(|i| Self::key(i)).collect();
        let raws: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
        ids.iter()
            .zip(raws)
            .map(|(id, raw)| match raw {
                None => Ok(ResultMeta::new(id, TaskState::Pending, Value::Null, None)),
                Some(raw) => pyjson::from_str(&raw).with_context(|| format!("result of {id} is not Celery JSON")),
            })
            .collect()
    }

    /// Subscribes to the result channels of `ids`. Call this before publishing the tasks, as
    /// Celery's `send_task` does, so that no state change is missed.
    pub async fn watch(&self, ids: &[String]) -> anyhow::Result<ResultWatcher> {
        let mut pubsub = self.client.get_async_pubsub().await.context("cannot subscribe to Redis")?;
        for chunk in ids.chunks(1000) {
            let keys: Vec<String> = chunk.iter().map(|i| Self::key(i)).collect();
            pubsub.subscribe(keys).await?;
        }
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        // The forwarder (and with it the subscription's connection) ends with the watcher: when
        // the watcher is dropped (aborted), or its receiver is gone.
        let forwarder = tokio::spawn(async move {
            let mut stream = pubsub.into_on_message();
            loop {
                let msg = tokio::select! {
                    m = stream.next() => m,
                    _ = tx.closed() => break,
                };
                let Some(msg) = msg else { break };
                let Ok(payload) = msg.get_payload::<String>() else {
                    continue;
                };
                if let Ok(meta) = pyjson::from_str::<ResultMeta>(&payload)
                    && tx.send(meta).is_err()
                {
                    break;
                }
            }
        });
        let mut w = ResultWatcher { rx, backend: self.clone(), pending: ids.iter().cloned().collect(), forwarder, snapshot: None };
        // What is stored already, read right after subscribing (so before the caller publishes):
        // everything later comes through the subscription, in order.
        w.snapshot = Some(w.read_stored().await?);
        Ok(w)
    }
}

/// State changes of a set of tasks, from Redis pub/sub.
pub struct ResultWatcher {
    rx: tokio::sync::mpsc::UnboundedReceiver<ResultMeta>,
    backend: ResultBackend,
    pending: HashSet<String>,
    forwarder: tokio::task::JoinHandle<()>,
    /// The states stored when the subscription began, handed out by the first `poll_once`.
    snapshot: Option<Vec<ResultMeta>>,
}

impl Drop for ResultWatcher {
    fn drop(&mut self) {
        self.forwarder.abort();
    }
}

impl ResultWatcher {
    /// One GET of everything still pending (what Celery does once before draining pub/sub), so a
    /// result stored before the subscription is seen too.
    pub async fn poll_once(&mut self) -> anyhow::Result<Vec<ResultMeta>> {
        if let Some(s) = self.snapshot.take() {
            return Ok(s);
        }
        self.read_stored().await
    }

    async fn read_stored(&mut self) -> anyhow::Result<Vec<ResultMeta>> {
        let ids: Vec<String> = self.pending.iter().cloned().collect();
        let mut out = vec![];
        for chunk in ids.chunks(1000) {
            for meta in self.backend.get_many(chunk).await? {
                if meta.status != TaskState::Pending {
                    if meta.status.is_ready() {
                        self.pending.remove(&meta.task_id);
                    }
                    out.push(meta);
                }
            }
        }
        Ok(out)
    }

    /// The next state change, or None when the subscription ended.
    pub async fn next(&mut self) -> Option<ResultMeta> {
        let meta = self.rx.recv().await?;
        if meta.status.is_ready() {
            self.pending.remove(&meta.task_id);
        }
        Some(meta)
    }

    /// How many watched tasks have not reached a ready state.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_serializes_like_celery() {
        let m = ResultMeta::success("abc", json!(4));
        let v: Value = serde_json::to_value(&m).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 6, "{keys:?}");
        assert_eq!(v["status"], "SUCCESS");
        assert!(v["date_done"].as_str().unwrap().ends_with("+00:00"));
        let s = ResultMeta::started("abc", 12, "celery@h");
        let v: Value = serde_json::to_value(&s).unwrap();
        assert_eq!(v["result"], json!({"pid": 12, "hostname": "celery@h"}));
        assert_eq!(v["date_done"], Value::Null);
        let parsed: ResultMeta = serde_json::from_str(r#"{"status": "FAILURE", "result": {"exc_type": "ZeroDivisionError", "exc_message": ["division by zero"], "exc_module": "builtins"}, "traceback": "T", "children": [], "date_done": "2026-11-27T21:35:28.777366", "task_id": "f0"}"#).unwrap();
        assert_eq!(parsed.exception_text().unwrap(), "ZeroDivisionError: division by zero");
    }
}
