//! Celery's task message protocol (v2, and reading v1) over AMQP 0-9-1.
//!
//! A v2 message carries its metadata in AMQP headers and its body is the JSON array
//! `[args, kwargs, embed]`. Header values are encoded with the AMQP field types py-amqp reads
//! correctly: strings as long strings (`S`), integers as signed 32-bit (`I`) or 64-bit, booleans,
//! doubles, void for `None`, arrays and tables.

use std::fmt;

use chrono::{DateTime, Utc};
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{pyjson, pyrepr};

pub const JSON_CONTENT_TYPE: &str = "application/json";

/// Task states as Celery names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "UPPERCASE")]
pub enum TaskState {
    Pending,
    Received,
    Started,
    Retry,
    Success,
    Failure,
    Revoked,
    Rejected,
    Ignored,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "PENDING",
            TaskState::Received => "RECEIVED",
            TaskState::Started => "STARTED",
            TaskState::Retry => "RETRY",
            TaskState::Success => "SUCCESS",
            TaskState::Failure => "FAILURE",
            TaskState::Revoked => "REVOKED",
            TaskState::Rejected => "REJECTED",
            TaskState::Ignored => "IGNORED",
        }
    }

    pub fn parse(s: &str) -> Option<TaskState> {
        Some(match s {
            "PENDING" => TaskState::Pending,
            "RECEIVED" => TaskState::Received,
            "STARTED" => TaskState::Started,
            "RETRY" => TaskState::Retry,
            "SUCCESS" => TaskState::Success,
            "FAILURE" => TaskState::Failure,
            "REVOKED" => TaskState::Revoked,
            "REJECTED" => TaskState::Rejected,
            "IGNORED" => TaskState::Ignored,
            _ => return None,
        })
    }

    /// Celery's READY_STATES: a result that will not change any more.
    pub fn is_ready(self) -> bool {
        matches!(self, TaskState::Success | TaskState::Failure | TaskState::Revoked)
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `embed` part of the body: callbacks, errbacks, the rest of a chain and a chord.
/// Signatures are kept as JSON objects (`{"task", "args", "kwargs", "options", "subtask_type",
/// "immutable"}`) so nothing a Python client sends is lost.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Embed {
    #[serde(default)]
    pub callbacks: Option<Vec<Value>>,
    #[serde(default)]
    pub errbacks: Option<Vec<Value>>,
    #[serde(default)]
    pub chain: Option<Vec<Value>>,
    #[serde(default)]
    pub chord: Option<Value>,
}

/// A signature (`celery.canvas.Signature` as JSON).
pub fn signature(task: &str, args: Vec<Value>, kwargs: Map<String, Value>) -> Value {
    json!({"task": task, "args": args, "kwargs": kwargs, "options": {}, "subtask_type": null, "immutable": false})
}

/// One task message, as sent by `task.delay()` / `apply_async()` and as a worker receives it.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskMessage {
    pub id: String,
    pub task: String,
    pub args: Vec<Value>,
    pub kwargs: Map<String, Value>,
    pub embed: Embed,
    pub lang: String,
    pub shadow: Option<String>,
    pub eta: Option<DateTime<Utc>>,
    pub expires: Option<DateTime<Utc>>,
    pub group: Option<String>,
    pub group_index: Option<i64>,
    pub retries: i64,
    /// `[hard, soft]` in seconds, the order Celery sends.
    pub time_limit: Option<f64>,
    pub soft_time_limit: Option<f64>,
    pub root_id: String,
    pub parent_id: Option<String>,
    pub argsrepr: String,
    pub kwargsrepr: String,
    pub origin: String,
    pub ignore_result: Option<bool>,
    pub replaced_task_nesting: i64,
    pub stamped_headers: Option<Vec<String>>,
    pub stamps: Map<String, Value>,
    pub reply_to: String,
    pub priority: u8,
    /// Protocol version the message was read as (2 for every message mqlab sends).
    pub protocol: u8,
}

impl TaskMessage {
    /// A message like `task.delay(*args, **kwargs)` builds.
    pub fn new(task: impl Into<String>, args: Vec<Value>, kwargs: Map<String, Value>) -> Self {
        let id = uuid::Uuid::new_v4().to_string();
        let argsrepr = pyrepr::truncate(pyrepr::repr_args(&args), 1024);
        let kwargsrepr = pyrepr::truncate(pyrepr::repr_kwargs(&kwargs), 1024);
        TaskMessage {
            root_id: id.clone(),
            id,
            task: task.into(),
            args,
            kwargs,
            embed: Embed::default(),
            lang: "py".into(),
            shadow: None,
            eta: None,
            expires: None,
            group: None,
            group_index: None,
            retries: 0,
            time_limit: None,
            soft_time_limit: None,
            parent_id: None,
            argsrepr,
            kwargsrepr,
            origin: origin_nodename(),
            ignore_result: Some(false),
            replaced_task_nesting: 0,
            stamped_headers: None,
            stamps: Map::new(),
            reply_to: String::new(),
            priority: 0,
            protocol: 2,
        }
    }

    /// The JSON body `[args, kwargs, embed]`.
    pub fn body(&self) -> Vec<u8> {
        let body = json!([self.args, self.kwargs, self.embed]);
        pyjson::to_vec(&body).expect("JSON values always serialize")
    }

    /// The Celery headers as a JSON object (the form the management API and events show).
    pub fn headers_json(&self) -> Map<String, Value> {
        let mut h = Map::new();
        let opt = |s: &Option<String>| s.clone().map(Value::String).unwrap_or(Value::Null);
        let time = |t: &Option<DateTime<Utc>>| t.map(|t| Value::String(iso(t))).unwrap_or(Value::Null);
        let num = |f: Option<f64>| f.map(float_or_int).unwrap_or(Value::Null);
        h.insert("lang".into(), json!(self.lang));
        h.insert("task".into(), json!(self.task));
        h.insert("id".into(), json!(self.id));
        h.insert("shadow".into(), opt(&self.shadow));
        h.insert("eta".into(), time(&self.eta));
        h.insert("expires".into(), time(&self.expires));
        h.insert("group".into(), opt(&self.group));
        h.insert("group_index".into(), json!(self.group_index));
        h.insert("retries".into(), json!(self.retries));
        h.insert("timelimit".into(), json!([num(self.time_limit), num(self.soft_time_limit)]));
        h.insert("root_id".into(), json!(self.root_id));
        h.insert("parent_id".into(), opt(&self.parent_id));
        h.insert("argsrepr".into(), json!(self.argsrepr));
        h.insert("kwargsrepr".into(), json!(self.kwargsrepr));
        h.insert("origin".into(), json!(self.origin));
        h.insert("ignore_result".into(), json!(self.ignore_result.unwrap_or(false)));
        h.insert("replaced_task_nesting".into(), json!(self.replaced_task_nesting));
        h.insert("stamped_headers".into(), json!(self.stamped_headers));
        h.insert("stamps".into(), Value::Object(self.stamps.clone()));
        h
    }

    /// AMQP properties: content type and encoding, correlation id = task id, persistent delivery,
    /// priority, and the headers.
    pub fn properties(&self) -> BasicProperties {
        let mut headers = FieldTable::default();
        for (k, v) in self.headers_json() {
            headers.insert(short(&k), json_to_amqp(&v));
        }
        let mut props = BasicProperties::default()
            .with_content_type(short(JSON_CONTENT_TYPE))
            .with_content_encoding(short("utf-8"))
            .with_correlation_id(short(&self.id))
            .with_reply_to(short(&self.reply_to))
            .with_delivery_mode(2)
            .with_priority(self.priority)
            .with_headers(headers);
        if let Some(expires) = self.expires {
            let ms = (expires - Utc::now()).num_milliseconds().max(0);
            props = props.with_expiration(short(&ms.to_string()));
        }
        props
    }

    /// Reads a message from its AMQP properties and body (v2 when the `task` header is present,
    /// else v1).
    pub fn decode(props: &BasicProperties, body: &[u8]) -> Result<TaskMessage, DecodeError> {
        // Each header on its own: one nested too deep does not hide the task's id.
        let mut headers: Map<String, Value> = Map::new();
        let mut too_deep: Option<String> = None;
        if let Some(t) = props.headers().as_ref() {
            for (k, v) in t.inner() {
                match amqp_to_json_bounded(v, MAX_HEADER_DEPTH) {
                    Some(j) => {
                        headers.insert(k.to_string(), j);
                    }
                    None => too_deep = Some(k.to_string()),
                }
            }
        }
        let id_hint = headers
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| props.correlation_id().as_ref().map(|c| c.to_string()));
        let task_hint = headers.get("task").and_then(Value::as_str).map(str::to_string);
        let err = |kind: DecodeErrorKind| DecodeError { kind, task_id: id_hint.clone(), task: task_hint.clone() };
        if let Some(name) = too_deep {
            return Err(err(DecodeErrorKind::Header(format!("header {name:?} is nested deeper than {MAX_HEADER_DEPTH} levels"))));
        }

        let content_type = props.content_type().as_ref().map(|c| c.to_string());
        match content_type.as_deref() {
            None | Some(JSON_CONTENT_TYPE) => {}
            Some(other) => return Err(err(DecodeErrorKind::ContentType(other.to_string()))),
        }
        if let Some(enc) = props.content_encoding().as_ref() {
            let enc = enc.as_str().to_ascii_lowercase();
            if enc != "utf-8" && enc != "utf8" {
                return Err(err(DecodeErrorKind::ContentEncoding(enc)));
            }
        }
        // kombu's compression (task_compression): the body is compressed, the header names how.
        // Either way the body read is at most MAX_BODY_BYTES, and its values are counted (and
        // Python's limit on an integer's digits applied) before any is built.
        if body.len() > MAX_BODY_BYTES {
            return Err(err(DecodeErrorKind::Body(format!("the body is larger than {} MiB", MAX_BODY_BYTES / 1024 / 1024))));
        }
        let inflated;
        let body = match headers.get("compression").and_then(Value::as_str) {
            Some(kind) => {
                inflated = decompress(kind, body).map_err(|e| err(DecodeErrorKind::Body(e)))?;
                inflated.as_slice()
            }
            None => body,
        };
        let body: Value =
            pyjson::from_slice_bounded(body, pyjson::Bounds { max_values: MAX_BODY_VALUES }).map_err(|e| err(DecodeErrorKind::Json(e)))?;
        check_envelopes(&body).map_err(|e| err(DecodeErrorKind::Json(e)))?;
        let reply_to = props.reply_to().as_ref().map(|s| s.to_string()).unwrap_or_default();
        let priority = props.priority().unwrap_or(0);

        if headers.contains_key("task") {
            Self::decode_v2(&headers, body, reply_to, priority).map_err(err)
        } else {
            Self::decode_v1(body, reply_to, priority).map_err(err)
        }
    }

    fn decode_v2(h: &Map<String, Value>, body: Value, reply_to: String, priority: u8) -> Result<TaskMessage, DecodeErrorKind> {
        let task = req_str(h, "task")?;
        let id = req_str(h, "id")?;
        let Value::Array(mut parts) = body else {
            return Err(DecodeErrorKind::Body("body is not a JSON array [args, kwargs, embed]".into()));
        };
        if parts.len() < 2 || parts.len() > 3 {
            return Err(DecodeErrorKind::Body(format!("body has {} elements; expected [args, kwargs, embed]", parts.len())));
        }
        let embed = if parts.len() == 3 { parts.pop() } else { None };
        let kwargs = parts.pop().unwrap_or(Value::Null);
        let args = parts.pop().unwrap_or(Value::Null);
        let args = match args {
            Value::Array(a) => a,
            other => {
                return Err(DecodeErrorKind::Body(format!("args must be a list, got {}", type_name(&other))));
            }
        };
        let kwargs = match kwargs {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            other => {
                return Err(DecodeErrorKind::Body(format!("kwargs must be a dict, got {}", type_name(&other))));
            }
        };
        let embed = match embed {
            None | Some(Value::Null) => Embed::default(),
            Some(v @ Value::Object(_)) => serde_json::from_value(v).map_err(|e| DecodeErrorKind::Body(format!("embed: {e}")))?,
            Some(other) => {
                return Err(DecodeErrorKind::Body(format!("embed must be a dict, got {}", type_name(&other))));
            }
        };
        let (time_limit, soft_time_limit) = time_limits(h.get("timelimit"))?;
        let argsrepr = opt_str(h, "argsrepr")?.unwrap_or_else(|| pyrepr::repr_args(&args));
        let kwargsrepr = opt_str(h, "kwargsrepr")?.unwrap_or_else(|| pyrepr::repr_kwargs(&kwargs));
        Ok(TaskMessage {
            root_id: opt_str(h, "root_id")?.unwrap_or_else(|| id.clone()),
            id,
            task,
            args,
            kwargs,
            embed,
            lang: opt_str(h, "lang")?.unwrap_or_else(|| "py".into()),
            shadow: opt_str(h, "shadow")?,
            eta: opt_time(h, "eta")?,
            expires: opt_time(h, "expires")?,
            group: opt_str(h, "group")?,
            group_index: opt_int(h, "group_index")?,
            retries: opt_int(h, "retries")?.unwrap_or(0),
            time_limit,
            soft_time_limit,
            parent_id: opt_str(h, "parent_id")?,
            argsrepr,
            kwargsrepr,
            origin: opt_str(h, "origin")?.unwrap_or_default(),
            ignore_result: match h.get("ignore_result") {
                None | Some(Value::Null) => None,
                Some(Value::Bool(b)) => Some(*b),
                Some(other) => return Err(bad_header("ignore_result", "a boolean", other)),
            },
            replaced_task_nesting: opt_int(h, "replaced_task_nesting")?.unwrap_or(0),
            stamped_headers: match h.get("stamped_headers") {
                Some(Value::Array(a)) => Some(a.iter().filter_map(|v| v.as_str().map(String::from)).collect()),
                _ => None,
            },
            stamps: match h.get("stamps") {
                Some(Value::Object(m)) => m.clone(),
                _ => Map::new(),
            },
            reply_to,
            priority,
            protocol: 2,
        })
    }

    fn decode_v1(body: Value, reply_to: String, priority: u8) -> Result<TaskMessage, DecodeErrorKind> {
        let Value::Object(b) = body else {
            return Err(DecodeErrorKind::Body("no 'task' header (protocol 2) and the body is not a dict (protocol 1)".into()));
        };
        let task = req_str(&b, "task")?;
        let id = req_str(&b, "id")?;
        let args = match b.get("args") {
            None | Some(Value::Null) => vec![],
            Some(Value::Array(a)) => a.clone(),
            Some(other) => return Err(bad_header("args", "a list", other)),
        };
        let kwargs = match b.get("kwargs") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(other) => return Err(bad_header("kwargs", "a dict", other)),
        };
        let (time_limit, soft_time_limit) = time_limits(b.get("timelimit"))?;
        let list = |k: &str| match b.get(k) {
            Some(Value::Array(a)) => Some(a.clone()),
            _ => None,
        };
        let mut msg = TaskMessage::new(task, args, kwargs);
        msg.root_id = id.clone();
        msg.id = id;
        msg.embed = Embed {
            callbacks: list("callbacks"),
            errbacks: list("errbacks"),
            chain: None,
            chord: b.get("chord").filter(|c| !c.is_null()).cloned(),
        };
        msg.eta = opt_time(&b, "eta")?;
        msg.expires = opt_time(&b, "expires")?;
        msg.group = opt_str(&b, "group")?.or(opt_str(&b, "taskset")?);
        msg.retries = opt_int(&b, "retries")?.unwrap_or(0);
        msg.time_limit = time_limit;
        msg.soft_time_limit = soft_time_limit;
        msg.origin = String::new();
        msg.ignore_result = None;
        msg.reply_to = reply_to;
        msg.priority = priority;
        msg.protocol = 1;
        Ok(msg)
    }
}

/// Why a message could not be read. Carries the task id and name when they were readable, so a
/// worker can still store a FAILURE for it.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodeError {
    pub kind: DecodeErrorKind,
    pub task_id: Option<String>,
    pub task: Option<String>,
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DecodeErrorKind {
    #[error("content type {0:?} is not accepted (only application/json)")]
    ContentType(String),
    #[error("content encoding {0:?} is not accepted (only utf-8)")]
    ContentEncoding(String),
    #[error("body is not valid JSON: {0}")]
    Json(String),
    #[error("{0}")]
    Body(String),
    #[error("header {0:?} is missing")]
    MissingHeader(String),
    #[error("{0}")]
    Header(String),
    #[error("header {name:?} should be {expected}, got {got}")]
    BadHeader { name: String, expected: String, got: String },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)
    }
}

impl std::error::Error for DecodeError {}

fn type_name(v: &Value) -> &'static str {
    if pyjson::big_int_digits(v).is_some() {
        return "int";
    }
    if let Some(name) = pyjson::envelope(v).and_then(|(ty, _)| pyjson::envelope_type_name(ty)) {
        return name;
    }
    match v {
        Value::Null => "None",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// Python's type name of a JSON value (`int`, `str`, `NoneType`...), for error messages.
pub fn py_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        other => type_name(other),
    }
}

fn bad_header(name: &str, expected: &str, got: &Value) -> DecodeErrorKind {
    DecodeErrorKind::BadHeader {
        name: name.into(),
        expected: expected.into(),
        got: format!("{} {}", type_name(got), pyrepr::truncate(pyrepr::repr(got), 60)),
    }
}

fn req_str(h: &Map<String, Value>, k: &str) -> Result<String, DecodeErrorKind> {
    match h.get(k) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        None | Some(Value::Null) => Err(DecodeErrorKind::MissingHeader(k.into())),
        Some(other) => Err(bad_header(k, "a non-empty string", other)),
    }
}

fn opt_str(h: &Map<String, Value>, k: &str) -> Result<Option<String>, DecodeErrorKind> {
    match h.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(bad_header(k, "a string", other)),
    }
}

fn opt_int(h: &Map<String, Value>, k: &str) -> Result<Option<i64>, DecodeErrorKind> {
    match h.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .map(Some)
            .ok_or_else(|| bad_header(k, "an integer", &Value::Number(n.clone()))),
        Some(other) => Err(bad_header(k, "an integer", other)),
    }
}

fn opt_time(h: &Map<String, Value>, k: &str) -> Result<Option<DateTime<Utc>>, DecodeErrorKind> {
    match opt_str(h, k)? {
        None => Ok(None),
        Some(s) => parse_time(&s).map(Some).ok_or_else(|| bad_header(k, "an ISO-8601 time", &Value::String(s))),
    }
}

/// Accepts `2026-11-27T21:40:46.875699+00:00`, `...Z` and naive times (read as UTC, as Celery
/// 5.0-5.3 wrote them).
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|n| n.and_utc())
}

/// Celery's ISO format: microseconds and `+00:00`.
pub fn iso(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

fn time_limits(v: Option<&Value>) -> Result<(Option<f64>, Option<f64>), DecodeErrorKind> {
    let limit = |v: &Value| -> Result<Option<f64>, DecodeErrorKind> {
        match v {
            Value::Null => Ok(None),
            Value::Number(n) => Ok(n.as_f64()),
            other => Err(bad_header("timelimit", "[hard, soft] numbers or null", other)),
        }
    };
    match v {
        None | Some(Value::Null) => Ok((None, None)),
        Some(Value::Array(a)) if a.len() == 2 => Ok((limit(&a[0])?, limit(&a[1])?)),
        Some(other) => Err(bad_header("timelimit", "[hard, soft]", other)),
    }
}

fn float_or_int(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 2f64.powi(31) { json!(f as i64) } else { json!(f) }
}

/// Checks kombu's JSON envelopes `{"__type__": T, "__value__": V}`: they are kept as they came
/// (a task that returns one returns the same datetime or bytes); an unknown type is an error, as
/// in kombu.
pub fn check_envelopes(v: &Value) -> Result<(), String> {
    match v {
        Value::Array(items) => items.iter().try_for_each(check_envelopes),
        Value::Object(map) => {
            if map.len() == 2 && map.contains_key("__type__") && map.contains_key("__value__") {
                let ty = map.get("__type__").and_then(Value::as_str).unwrap_or("");
                match pyjson::envelope_type_name(ty) {
                    Some(_) => Ok(()),
                    None => Err(format!("unknown kombu JSON type {ty:?}")),
                }
            } else {
                map.values().try_for_each(check_envelopes)
            }
        }
        _ => Ok(()),
    }
}

pub(crate) fn short(s: &str) -> ShortString {
    ShortString::try_new(s.to_string()).unwrap_or_else(|_| {
        let mut t = s.to_string();
        while t.len() > 255 {
            t.pop();
        }
        ShortString::try_new(t).unwrap_or_default()
    })
}

/// JSON → AMQP field value, with the types py-amqp decodes faithfully.
pub fn json_to_amqp(v: &Value) -> AMQPValue {
    match v {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                match i32::try_from(i) {
                    Ok(i) => AMQPValue::LongInt(i),
                    Err(_) => AMQPValue::LongLongInt(i),
                }
            } else {
                AMQPValue::Double(n.as_f64().unwrap_or(0.0))
            }
        }
        Value::String(s) => AMQPValue::LongString(LongString::from(s.as_bytes().to_vec())),
        Value::Array(a) => {
            let mut arr = FieldArray::default();
            for item in a {
                arr.push(json_to_amqp(item));
            }
            AMQPValue::FieldArray(arr)
        }
        Value::Object(m) => {
            let mut t = FieldTable::default();
            for (k, v) in m {
                t.insert(short(k), json_to_amqp(v));
            }
            AMQPValue::FieldTable(t)
        }
    }
}

/// AMQP field value → JSON, accepting every integer width, floats and both string kinds.
/// The largest body a task message may have, as sent or once decompressed (RabbitMQ 4's own
/// default `max_message_size` is 16 MiB): a small message cannot become a huge one.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// The most JSON values (numbers, strings, literals, lists, dicts) a task message's body may
/// hold: each costs memory far beyond its bytes once built.
pub const MAX_BODY_VALUES: usize = 1_000_000;

/// The largest body a compressed one may expand to.
pub const MAX_INFLATED: u64 = MAX_BODY_BYTES as u64;

/// The most memory xz's dictionary may take (KiB); xz's own presets use at most 64 MiB.
const XZ_MEM_LIMIT_KB: u32 = 64 * 1024 + 1024;

/// Expands a body compressed as kombu does: `application/x-gzip` (zlib, kombu's `zlib`/`gzip`),
/// `application/x-bz2` (bzip2), `application/x-lzma` (xz/lzma), `application/x-brotli` (brotli)
/// and `application/zstd` (zstd).
pub fn decompress(kind: &str, body: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut out = Vec::new();
    let too_big = || format!("the body expands past {} MiB", MAX_INFLATED / 1024 / 1024);
    match kind {
        "application/x-gzip" | "zlib" | "gzip" => {
            flate2::read::ZlibDecoder::new(body).take(MAX_INFLATED + 1).read_to_end(&mut out).map_err(|e| format!("zlib: {e}"))?;
        }
        "application/x-bz2" | "bzip2" | "bzip" => {
            bzip2::read::BzDecoder::new(body).take(MAX_INFLATED + 1).read_to_end(&mut out).map_err(|e| format!("bzip2: {e}"))?;
        }
        "application/x-lzma" | "lzma" | "xz" => {
            // Streamed: at most the limit comes out, and a dictionary larger than xz's presets
            // use is refused before it is allocated.
            lzma_rust2::XzReader::new_mem_limit(body, true, XZ_MEM_LIMIT_KB)
                .take(MAX_INFLATED + 1)
                .read_to_end(&mut out)
                .map_err(|e| format!("xz: {e}"))?;
        }
        "application/x-brotli" | "brotli" => {
            brotli_decompressor::Decompressor::new(body, 4096)
                .take(MAX_INFLATED + 1)
                .read_to_end(&mut out)
                .map_err(|e| format!("brotli: {e}"))?;
        }
        "application/zstd" | "zstd" | "zstandard" => {
            ruzstd::decoding::StreamingDecoder::new(body)
                .map_err(|e| format!("zstd: {e}"))?
                .take(MAX_INFLATED + 1)
                .read_to_end(&mut out)
                .map_err(|e| format!("zstd: {e}"))?;
        }
        other => return Err(format!("compression {other:?} is not supported (zlib, bzip2, lzma, brotli and zstd are)")),
    }
    if out.len() as u64 > MAX_INFLATED {
        return Err(too_big());
    }
    Ok(out)
}

/// How deep a header value may nest (Celery's own headers nest two or three levels).
pub const MAX_HEADER_DEPTH: usize = 32;

/// Like `amqp_to_json`, or None when the value nests deeper than `depth` levels.
pub fn amqp_to_json_bounded(v: &AMQPValue, depth: usize) -> Option<Value> {
    match v {
        AMQPValue::FieldArray(a) => {
            let depth = depth.checked_sub(1)?;
            a.as_slice().iter().map(|x| amqp_to_json_bounded(x, depth)).collect::<Option<Vec<_>>>().map(Value::Array)
        }
        AMQPValue::FieldTable(t) => {
            let depth = depth.checked_sub(1)?;
            t.inner()
                .iter()
                .map(|(k, x)| amqp_to_json_bounded(x, depth).map(|j| (k.to_string(), j)))
                .collect::<Option<Map<_, _>>>()
                .map(Value::Object)
        }
        other => Some(amqp_to_json(other)),
    }
}

/// An AMQP value as JSON. Arrays and tables nested deeper than `MAX_HEADER_DEPTH` become null.
pub fn amqp_to_json(v: &AMQPValue) -> Value {
    match v {
        AMQPValue::FieldArray(_) | AMQPValue::FieldTable(_) => amqp_to_json_bounded(v, MAX_HEADER_DEPTH).unwrap_or(Value::Null),
        _ => amqp_scalar(v),
    }
}

fn amqp_scalar(v: &AMQPValue) -> Value {
    match v {
        AMQPValue::Boolean(b) => json!(b),
        AMQPValue::ShortShortInt(i) => json!(i),
        AMQPValue::ShortShortUInt(i) => json!(i),
        AMQPValue::ShortInt(i) => json!(i),
        AMQPValue::ShortUInt(i) => json!(i),
        AMQPValue::LongInt(i) => json!(i),
        AMQPValue::LongUInt(i) => json!(i),
        AMQPValue::LongLongInt(i) => json!(i),
        AMQPValue::Float(f) => json!(f),
        AMQPValue::Double(f) => json!(f),
        AMQPValue::DecimalValue(d) => json!(d.value as f64 / 10f64.powi(d.scale as i32)),
        AMQPValue::ShortString(s) => json!(s.as_str()),
        AMQPValue::LongString(s) => json!(String::from_utf8_lossy(s.as_bytes())),
        AMQPValue::FieldArray(_) | AMQPValue::FieldTable(_) => Value::Null,
        AMQPValue::Timestamp(t) => json!(t),
        AMQPValue::ByteArray(b) => json!(String::from_utf8_lossy(b.as_slice())),
        AMQPValue::Void => Value::Null,
    }
}

/// `gen<pid>@<hostname>`, the producer's node name as Celery writes it in `origin`.
pub fn origin_nodename() -> String {
    format!("gen{}@{}", std::process::id(), hostname())
}

pub fn hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// A message as the management API's "Get messages" shows it: properties, headers and payload.
pub fn describe(msg: &TaskMessage) -> Value {
    json!({
        "exchange": "",
        "routing_key": "celery",
        "properties": {
            "correlation_id": msg.id,
            "reply_to": msg.reply_to,
            "content_type": JSON_CONTENT_TYPE,
            "content_encoding": "utf-8",
            "delivery_mode": 2,
            "priority": msg.priority,
            "headers": msg.headers_json(),
        },
        "payload": String::from_utf8_lossy(&msg.body()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props_of(h: Value) -> BasicProperties {
        let mut t = FieldTable::default();
        for (k, v) in h.as_object().unwrap() {
            t.insert(short(k), json_to_amqp(v));
        }
        BasicProperties::default().with_content_type(short(JSON_CONTENT_TYPE)).with_headers(t)
    }

    #[test]
    fn round_trip_v2() {
        let mut m = TaskMessage::new("tasks.add", vec![json!(2), json!(2)], Map::new());
        m.time_limit = Some(30.0);
        m.soft_time_limit = Some(20.5);
        let props = m.properties();
        let back = TaskMessage::decode(&props, &m.body()).unwrap();
        assert_eq!(back.id, m.id);
        assert_eq!(back.args, vec![json!(2), json!(2)]);
        assert_eq!(back.argsrepr, "(2, 2)");
        assert_eq!(back.time_limit, Some(30.0));
        assert_eq!(back.soft_time_limit, Some(20.5));
        assert_eq!(back.protocol, 2);
        let h = props.headers().as_ref().unwrap().inner();
        assert!(matches!(h.get("retries"), Some(AMQPValue::LongInt(0))));
        assert!(matches!(h.get("task"), Some(AMQPValue::LongString(_))));
        assert!(matches!(h.get("eta"), Some(AMQPValue::Void)));
        assert_eq!(props.delivery_mode(), &Some(2));
        assert_eq!(props.correlation_id().as_ref().unwrap().as_str(), m.id);
    }

    #[test]
    fn reads_the_captured_celery_message() {
        let props = props_of(json!({"argsrepr": "('World',)", "eta": null, "expires": null, "group": null,
            "group_index": null, "id": "9e829131-9d4e-4ac3-bf80-5516742e448f", "ignore_result": false,
            "kwargsrepr": "{}", "lang": "py", "origin": "gen5385@vm", "parent_id": null,
            "replaced_task_nesting": 0, "retries": 0, "root_id": "9e829131-9d4e-4ac3-bf80-5516742e448f",
            "shadow": null, "stamped_headers": null, "stamps": {}, "task": "tasks.hello", "timelimit": [null, null]}));
        let body = br#"[["World"], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]"#;
        let m = TaskMessage::decode(&props, body).unwrap();
        assert_eq!(m.task, "tasks.hello");
        assert_eq!(m.args, vec![json!("World")]);
        assert_eq!(m.ignore_result, Some(false));
        assert_eq!(m.embed, Embed::default());
    }

    #[test]
    fn reads_signatures_floats_and_envelopes() {
        let props = props_of(json!({"task": "tasks.add", "id": "x1", "timelimit": [30.5, 20], "retries": 1.0}));
        let body = br#"[[{"__type__": "uuid", "__value__": {"hex": "abc"}}, 2], {"when": {"__type__": "datetime", "__value__": "2026-01-01T00:00:00"}}, {"callbacks": [{"task": "tasks.add", "args": [10], "kwargs": {}, "options": {}, "subtask_type": null, "immutable": false}], "errbacks": null, "chain": null, "chord": null}]"#;
        let m = TaskMessage::decode(&props, body).unwrap();
        assert_eq!(m.args[0], json!({"__type__": "uuid", "__value__": {"hex": "abc"}}), "envelopes are kept");
        assert_eq!(m.kwargs["when"], json!({"__type__": "datetime", "__value__": "2026-01-01T00:00:00"}));
        assert_eq!(m.time_limit, Some(30.5));
        assert_eq!(m.retries, 1);
        assert_eq!(m.embed.callbacks.as_ref().unwrap()[0]["args"], json!([10]));
    }

    #[test]
    fn reads_protocol_v1() {
        let props = BasicProperties::default().with_content_type(short(JSON_CONTENT_TYPE));
        let body = br#"{"task": "tasks.add", "id": "v1-id", "args": [1, 2], "kwargs": {}, "retries": 0, "eta": null, "utc": true, "timelimit": [null, null], "taskset": null, "chord": null}"#;
        let m = TaskMessage::decode(&props, body).unwrap();
        assert_eq!(m.protocol, 1);
        assert_eq!(m.id, "v1-id");
        assert_eq!(m.args, vec![json!(1), json!(2)]);
    }

    #[test]
    fn bad_messages_say_why_and_keep_the_id() {
        let props = props_of(json!({"task": "tasks.add", "id": "bad-1"}));
        let e = TaskMessage::decode(&props, b"{not json").unwrap_err();
        assert!(matches!(e.kind, DecodeErrorKind::Json(_)));
        assert_eq!(e.task_id.as_deref(), Some("bad-1"));
        let e = TaskMessage::decode(&props, br#"["a", {}, null]"#).unwrap_err();
        assert_eq!(e.to_string(), "args must be a list, got str");
        let props2 = props_of(json!({"task": "tasks.add", "id": "bad-2", "retries": "x"}));
        let e = TaskMessage::decode(&props2, br#"[[], {}, null]"#).unwrap_err();
        assert!(e.to_string().contains("retries"), "{e}");
        let props3 = props_of(json!({"task": "tasks.add"}));
        let e = TaskMessage::decode(&props3, br#"[[], {}, null]"#).unwrap_err();
        assert_eq!(e.to_string(), "header \"id\" is missing");
        let pickle = BasicProperties::default().with_content_type(short("application/x-python-serialize"));
        let e = TaskMessage::decode(&pickle, b"\x80\x04").unwrap_err();
        assert!(matches!(e.kind, DecodeErrorKind::ContentType(_)));
        let e = TaskMessage::decode(&props, br#"[[{"__type__": "pickle", "__value__": 1}], {}, null]"#).unwrap_err();
        assert!(e.to_string().contains("unknown kombu JSON type"));
    }

    #[test]
    fn times_parse_naive_and_offset() {
        assert!(parse_time("2026-11-27T21:40:46.875699+00:00").is_some());
        assert!(parse_time("2026-11-27T21:40:46.875699").is_some());
        assert!(parse_time("2026-11-27T21:40:46Z").is_some());
        assert!(parse_time("tomorrow").is_none());
    }

    #[test]
    fn a_compressed_body_cannot_expand_without_bound() {
        use std::io::Write;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1024 * 1024];
        for _ in 0..80 {
            z.write_all(&zeros).unwrap();
        }
        let bomb = z.finish().unwrap();
        assert!(bomb.len() < 200_000);
        let e = decompress("application/x-gzip", &bomb).unwrap_err();
        assert!(e.contains("expands past 16 MiB"), "{e}");
        assert!(decompress("application/x-snappy", b"x").unwrap_err().contains("not supported"));
    }
}
