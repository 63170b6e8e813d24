//! The worker's task registry and the built-in tasks of the curriculum: `tasks.hello`,
//! `tasks.add`, `tasks.divide`, plus `tasks.sleep`, `tasks.echo` and `tasks.fail` for the labs.
//! Arguments are bound the way Python binds them, and misuse raises the same `TypeError`s.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::protocol::py_type_name;
use super::pyrepr;
use super::{pydecimal, pyjson};
use num_bigint::BigInt;

/// An exception raised by a task, in the shape Celery stores it.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskError {
    pub exc_type: String,
    pub exc_module: String,
    pub args: Vec<Value>,
    pub traceback: Option<String>,
    /// The task asks to be retried after this long (Celery's `self.retry(countdown=...)`).
    pub retry_in: Option<Duration>,
}

impl TaskError {
    pub fn new(exc_type: &str, message: impl Into<String>) -> Self {
        TaskError {
            exc_type: exc_type.into(),
            exc_module: "builtins".into(),
            args: vec![Value::String(message.into())],
            traceback: None,
            retry_in: None,
        }
    }

    pub fn retry_after(mut self, d: Duration) -> Self {
        self.retry_in = Some(d);
        self
    }

    pub fn in_module(mut self, module: &str) -> Self {
        self.exc_module = module.into();
        self
    }

    /// `ZeroDivisionError('division by zero')`
    pub fn repr(&self) -> String {
        let inner: Vec<String> = self.args.iter().map(pyrepr::repr).collect();
        format!("{}({})", self.exc_type, inner.join(", "))
    }

    /// `division by zero` (Python's `str(exc)`)
    pub fn message(&self) -> String {
        match self.args.as_slice() {
            [] => String::new(),
            [one] => pyrepr::str_of(one),
            many => pyrepr::repr_args(many),
        }
    }

    /// `{"exc_type", "exc_message", "exc_module"}` as the Redis backend stores it.
    pub fn to_result(&self) -> Value {
        json!({"exc_type": self.exc_type, "exc_message": self.args, "exc_module": self.exc_module})
    }

    /// The exception a stored result holds (the inverse of `to_result`).
    pub fn from_result(v: &Value) -> Self {
        TaskError {
            exc_type: v["exc_type"].as_str().unwrap_or("Exception").to_string(),
            exc_module: v["exc_module"].as_str().unwrap_or("builtins").to_string(),
            args: v["exc_message"].as_array().cloned().unwrap_or_default(),
            traceback: None,
            retry_in: None,
        }
    }

    /// A traceback text in Python's layout, naming where in mqlab the exception was raised.
    pub fn traceback_text(&self, func: &str, line: &str) -> String {
        format!(
            "Traceback (most recent call last):\n  File \"mqlab worker\", in {func}\n    {line}\n{}: {}\n",
            self.exc_type,
            self.message()
        )
    }

    fn with_traceback(mut self, func: &str, line: &str) -> Self {
        self.traceback = Some(self.traceback_text(func, line));
        self
    }
}

impl std::fmt::Display for TaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.exc_type, self.message())
    }
}

pub type TaskFuture = Pin<Box<dyn Future<Output = Result<Value, TaskError>> + Send>>;
type TaskFn = dyn Fn(Vec<Value>, &TaskSettings) -> TaskFuture + Send + Sync;
type ComputeFn = dyn Fn(Vec<Value>, &TaskSettings) -> Result<Value, TaskError> + Send + Sync;

/// What a task's body is: something that waits (a timer) and runs on the async runtime, or a
/// computation, which runs on a thread of its own unless its arguments make it trivially cheap.
/// A computation never holds the runtime's threads: time limits, other tasks, heartbeats and
/// remote control keep their pace while it works.
enum Body {
    Waits(Arc<TaskFn>),
    Computes(Arc<ComputeFn>),
}

/// The largest string argument a computation may take on the runtime's own thread.
const CHEAP_TEXT: usize = 4096;

/// Arguments no built-in computation spends more than microseconds on: numbers of 64 bits,
/// booleans, None and short strings. Anything else (integers of thousands of digits, Decimals
/// far apart, lists, long texts) is computed off the runtime.
fn cheap(args: &[Value]) -> bool {
    args.iter().all(|a| match a {
        Value::Null | Value::Bool(_) | Value::Number(_) => true,
        Value::String(s) => s.len() <= CHEAP_TEXT,
        _ => false,
    })
}

/// Knobs the built-in tasks read.
#[derive(Clone, Debug)]
pub struct TaskSettings {
    /// How long `tasks.hello` works (the seed's `time.sleep(2)`).
    pub hello_delay: Duration,
    /// How many times the running request was retried already (its `retries` header).
    pub retries: i64,
}

impl Default for TaskSettings {
    fn default() -> Self {
        TaskSettings { hello_delay: Duration::from_secs(2), retries: 0 }
    }
}

/// One registered task.
pub struct TaskDef {
    pub name: &'static str,
    /// The Python function name used in `TypeError` messages (`add_task() missing ...`).
    pub func: &'static str,
    pub params: &'static [&'static str],
    pub doc: &'static str,
    body: Body,
}

impl TaskDef {
    /// Binds positional and keyword arguments to the parameters as Python would.
    pub fn bind(&self, args: &[Value], kwargs: &Map<String, Value>) -> Result<Vec<Value>, TaskError> {
        let n = self.params.len();
        if args.len() > n {
            let was = if args.len() == 1 { "was" } else { "were" };
            return Err(TaskError::new(
                "TypeError",
                format!("{}() takes {} positional argument{} but {} {was} given", self.func, n, plural(n), args.len()),
            ));
        }
        let mut bound: Vec<Option<Value>> = args.iter().cloned().map(Some).collect();
        bound.resize(n, None);
        for (k, v) in kwargs {
            match self.params.iter().position(|p| p == k) {
                None => {
                    return Err(TaskError::new("TypeError", format!("{}() got an unexpected keyword argument '{k}'", self.func)));
                }
                Some(i) if bound[i].is_some() => {
                    return Err(TaskError::new("TypeError", format!("{}() got multiple values for argument '{k}'", self.func)));
                }
                Some(i) => bound[i] = Some(v.clone()),
            }
        }
        let missing: Vec<String> = self.params.iter().zip(&bound).filter(|(_, b)| b.is_none()).map(|(p, _)| format!("'{p}'")).collect();
        if !missing.is_empty() {
            let list = match missing.as_slice() {
                [one] => one.clone(),
                [init @ .., last] => format!("{} and {last}", init.join(", ")),
                [] => unreachable!(),
            };
            return Err(TaskError::new(
                "TypeError",
                format!("{}() missing {} required positional argument{}: {list}", self.func, missing.len(), plural(missing.len())),
            ));
        }
        Ok(bound.into_iter().map(|b| b.unwrap_or(Value::Null)).collect())
    }

    /// Binds the arguments and runs the task.
    pub fn call(&self, args: &[Value], kwargs: &Map<String, Value>, settings: &TaskSettings) -> TaskFuture {
        match self.bind(args, kwargs) {
            Ok(bound) => match &self.body {
                Body::Waits(run) => run(bound, settings),
                Body::Computes(run) if cheap(&bound) => ready(run(bound, settings)),
                Body::Computes(run) => {
                    let (run, settings, func) = (run.clone(), settings.clone(), self.func);
                    // Started when first polled, so a time limit around this future counts from
                    // there; at the limit the future is dropped and the thread's result with it.
                    Box::pin(async move {
                        match tokio::task::spawn_blocking(move || run(bound, &settings)).await {
                            Ok(r) => r,
                            Err(e) => Err(TaskError::new("RuntimeError", format!("the task's computation stopped: {e}"))
                                .with_traceback(func, "(computation)")),
                        }
                    })
                }
            },
            Err(e) => {
                let e = e.with_traceback(self.func, "(argument binding)");
                Box::pin(async move { Err(e) })
            }
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The tasks a worker knows by name.
#[derive(Clone)]
pub struct Registry {
    tasks: BTreeMap<&'static str, Arc<TaskDef>>,
}

impl Registry {
    pub fn builtin() -> Self {
        let mut tasks = BTreeMap::new();
        for def in builtin_tasks() {
            tasks.insert(def.name, Arc::new(def));
        }
        Registry { tasks }
    }

    pub fn get(&self, name: &str) -> Option<Arc<TaskDef>> {
        self.tasks.get(name).cloned()
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.tasks.keys().copied().collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<TaskDef>> {
        self.tasks.values()
    }
}

/// A task whose body waits (on the runtime).
fn def(
    name: &'static str,
    func: &'static str,
    params: &'static [&'static str],
    doc: &'static str,
    run: impl Fn(Vec<Value>, &TaskSettings) -> TaskFuture + Send + Sync + 'static,
) -> TaskDef {
    TaskDef { name, func, params, doc, body: Body::Waits(Arc::new(run)) }
}

/// A task whose body computes (off the runtime unless its arguments are trivially cheap).
fn compute(
    name: &'static str,
    func: &'static str,
    params: &'static [&'static str],
    doc: &'static str,
    run: impl Fn(Vec<Value>, &TaskSettings) -> Result<Value, TaskError> + Send + Sync + 'static,
) -> TaskDef {
    TaskDef { name, func, params, doc, body: Body::Computes(Arc::new(run)) }
}

fn ready(r: Result<Value, TaskError>) -> TaskFuture {
    Box::pin(std::future::ready(r))
}

fn builtin_tasks() -> Vec<TaskDef> {
    vec![
        def("tasks.hello", "hello_task", &["name"], "Greets NAME after working for a while (2 s by default).", |a, s| {
            let delay = s.hello_delay;
            let name = pyrepr::str_of(&a[0]);
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                Ok(Value::String(format!("Hello, {name}! This message was processed by Celery.")))
            })
        }),
        compute("tasks.add", "add_task", &["x", "y"], "Returns x + y.", |a, _| {
            py_add(&a[0], &a[1]).map_err(|e| e.with_traceback("add_task", "result = x + y"))
        }),
        compute("tasks.divide", "divide_task", &["x", "y"], "Returns x / y; y = 0 raises ZeroDivisionError.", |a, _| {
            py_divide(&a[0], &a[1]).map_err(|e| e.with_traceback("divide_task", "result = x / y"))
        }),
        def("tasks.sleep", "sleep_task", &["seconds"], "Sleeps for the given seconds and returns them.", |a, _| {
            let secs = a[0].clone();
            Box::pin(async move {
                let s = as_number(&secs).ok_or_else(|| {
                    TaskError::new("TypeError", format!("'{}' object cannot be interpreted as a number", py_type_name(&secs)))
                        .with_traceback("sleep_task", "time.sleep(seconds)")
                })?;
                if !(0.0..=3600.0).contains(&s) {
                    return Err(TaskError::new("ValueError", "sleep length must be between 0 and 3600 seconds")
                        .with_traceback("sleep_task", "time.sleep(seconds)"));
                }
                tokio::time::sleep(Duration::from_secs_f64(s)).await;
                Ok(secs)
            })
        }),
        compute("tasks.echo", "echo_task", &["value"], "Returns its argument unchanged.", |mut a, _| Ok(a.swap_remove(0))),
        def(
            "tasks.flaky",
            "flaky_task",
            &["failures"],
            "Fails the first FAILURES attempts with ConnectionError and asks to be retried (0.2 s later); then succeeds.",
            |a, s| {
                let Some(failures) = a[0].as_i64() else {
                    let e = TaskError::new("TypeError", format!("failures must be an int, not {}", py_type_name(&a[0])));
                    return ready(Err(e.with_traceback("flaky_task", "if self.request.retries < failures")));
                };
                if s.retries < failures {
                    let e = TaskError::new("ConnectionError", format!("simulated failure {} of {failures}", s.retries + 1))
                        .with_traceback("flaky_task", "raise self.retry(exc=exc, countdown=0.2)")
                        .retry_after(Duration::from_millis(200));
                    return ready(Err(e));
                }
                ready(Ok(Value::String(format!("succeeded after {} retries", s.retries))))
            },
        ),
        compute("tasks.fail", "fail_task", &["message"], "Always raises RuntimeError(message).", |a, _| {
            Err(TaskError::new("RuntimeError", pyrepr::str_of(&a[0])).with_traceback("fail_task", "raise RuntimeError(message)"))
        }),
    ]
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

/// A JSON number as Python sees it: int (bool counts as int; no size bound) or float.
enum Num {
    Int(BigInt),
    Float(f64),
}

fn num(v: &Value) -> Option<Num> {
    match pyjson::as_int(v) {
        Some(i) => Some(Num::Int(i)),
        None => v.as_f64().map(Num::Float),
    }
}

fn unsupported(op: &str, x: &Value, y: &Value) -> TaskError {
    TaskError::new("TypeError", format!("unsupported operand type(s) for {op}: '{}' and '{}'", py_type_name(x), py_type_name(y)))
}

/// Python's `x + y` for JSON values: numbers (ints of any size), str + str, list + list,
/// bytes + bytes.
pub fn py_add(x: &Value, y: &Value) -> Result<Value, TaskError> {
    if let (Value::Number(a), Value::Number(b)) = (x, y)
        && let (Some(a), Some(b)) = (a.as_i64(), b.as_i64())
        && let Some(sum) = a.checked_add(b)
    {
        return Ok(json!(sum));
    }
    match (x, y) {
        (Value::String(a), Value::String(b)) => Ok(Value::String(format!("{a}{b}"))),
        (Value::Array(a), Value::Array(b)) => Ok(Value::Array(a.iter().chain(b).cloned().collect())),
        (Value::String(_), other) if !other.is_string() => {
            Err(TaskError::new("TypeError", format!("can only concatenate str (not \"{}\") to str", py_type_name(other))))
        }
        (Value::Array(_), other) => {
            Err(TaskError::new("TypeError", format!("can only concatenate list (not \"{}\") to list", py_type_name(other))))
        }
        _ => match (pyjson::bytes_of(x), pyjson::bytes_of(y)) {
            (Some(mut a), Some(b)) => {
                a.extend(b);
                Ok(pyjson::bytes_value(a))
            }
            (Some(_), None) => Err(TaskError::new("TypeError", format!("can't concat {} to bytes", py_type_name(y)))),
            _ => match (decimal_operand(x), decimal_operand(y)) {
                // Decimal + Decimal, Decimal + int (either side): a Decimal, exact.
                (Some((a, da)), Some((b, db))) if da || db => match pydecimal::add(&a, &b) {
                    Ok(sum) => Ok(json!({"__type__": "decimal", "__value__": sum})),
                    Err((exc, message)) => {
                        let (module, name) = exc.split_once('.').unwrap_or(("builtins", exc));
                        Err(TaskError::new(name, message).in_module(module))
                    }
                },
                _ => match (num(x), num(y)) {
                    (Some(Num::Int(a)), Some(Num::Int(b))) => Ok(pyjson::int_value(a + b)),
                    (Some(a), Some(b)) => Ok(json!(to_f64(a)? + to_f64(b)?)),
                    _ => Err(unsupported("+", x, y)),
                },
            },
        },
    }
}

/// An operand of Decimal arithmetic as decimal text: a kombu `decimal` (true) or an int (false).
fn decimal_operand(v: &Value) -> Option<(String, bool)> {
    match pyjson::envelope(v) {
        Some(("decimal", Value::String(s))) => Some((s.clone(), true)),
        _ => pyjson::as_int(v).map(|i| (i.to_string(), false)),
    }
}

/// Python's true division `x / y`: always a float; dividing by zero raises ZeroDivisionError.
pub fn py_divide(x: &Value, y: &Value) -> Result<Value, TaskError> {
    match (num(x), num(y)) {
        (Some(a), Some(b)) => {
            let (a, b) = (to_f64(a)?, to_f64(b)?);
            if b == 0.0 { Err(TaskError::new("ZeroDivisionError", "division by zero")) } else { Ok(json!(a / b)) }
        }
        _ => Err(unsupported("/", x, y)),
    }
}

/// Python's `float(n)`: an int beyond a float's range raises OverflowError.
fn to_f64(n: Num) -> Result<f64, TaskError> {
    match n {
        Num::Int(i) => pyjson::int_to_f64(&i).ok_or_else(|| TaskError::new("OverflowError", "int too large to convert to float")),
        Num::Float(f) => Ok(f),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(name: &str, args: Vec<Value>, kwargs: Value) -> Result<Value, TaskError> {
        let reg = Registry::builtin();
        let settings = TaskSettings { hello_delay: Duration::from_millis(1), retries: 0 };
        let fut = reg.get(name).unwrap().call(&args, kwargs.as_object().unwrap(), &settings);
        tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(fut)
    }

    #[test]
    fn seed_tasks_behave_like_python() {
        assert_eq!(run("tasks.add", vec![json!(42), json!(58)], json!({})).unwrap(), json!(100));
        assert_eq!(run("tasks.add", vec![json!(1.5)], json!({"y": 2})).unwrap(), json!(3.5));
        assert_eq!(run("tasks.add", vec![json!("a"), json!("b")], json!({})).unwrap(), json!("ab"));
        assert_eq!(run("tasks.divide", vec![json!(10), json!(4)], json!({})).unwrap(), json!(2.5));
        assert_eq!(run("tasks.divide", vec![json!(10), json!(2)], json!({})).unwrap(), json!(5.0));
        assert_eq!(
            run("tasks.hello", vec![json!("World")], json!({})).unwrap(),
            json!("Hello, World! This message was processed by Celery.")
        );
        let e = run("tasks.divide", vec![json!(10), json!(0)], json!({})).unwrap_err();
        assert_eq!(e.to_result(), json!({"exc_type": "ZeroDivisionError", "exc_message": ["division by zero"], "exc_module": "builtins"}));
        assert_eq!(e.repr(), "ZeroDivisionError('division by zero')");
        assert!(e.traceback.unwrap().ends_with("ZeroDivisionError: division by zero\n"));
    }

    #[test]
    fn ints_have_no_bound_and_bytes_concatenate() {
        let msg = |r: Result<Value, TaskError>| r.unwrap_err().to_string();
        let big = |t: &str| pyjson::from_str::<Value>(t).unwrap();
        let two62 = json!(1u64 << 62);
        assert_eq!(run("tasks.add", vec![two62.clone(), two62], json!({})).unwrap(), json!(1u64 << 63));
        assert_eq!(run("tasks.add", vec![big("100000000000000000000"), json!(1)], json!({})).unwrap(), big("100000000000000000001"));
        assert_eq!(run("tasks.add", vec![json!(i64::MIN), json!(-1)], json!({})).unwrap(), big("-9223372036854775809"));
        assert_eq!(run("tasks.divide", vec![big("100000000000000000000"), json!(4)], json!({})).unwrap(), json!(2.5e19));
        let huge = big(&format!("1{}", "0".repeat(400)));
        assert_eq!(msg(run("tasks.add", vec![huge, json!(0.5)], json!({}))), "OverflowError: int too large to convert to float");
        let bytes = |s: &str| json!({"__type__": "bytes", "__value__": s});
        assert_eq!(run("tasks.add", vec![bytes("ab"), bytes("c")], json!({})).unwrap(), bytes("abc"));
        assert_eq!(msg(run("tasks.add", vec![bytes("ab"), json!(1)], json!({}))), "TypeError: can't concat int to bytes");
        let b64 = json!({"__type__": "base64", "__value__": "/w=="});
        assert_eq!(run("tasks.add", vec![bytes("ab"), b64], json!({})).unwrap(), json!({"__type__": "base64", "__value__": "YWL/"}));
        let dec = |s: &str| json!({"__type__": "decimal", "__value__": s});
        assert_eq!(run("tasks.add", vec![dec("1.10"), dec("2.2")], json!({})).unwrap(), dec("3.30"));
        assert_eq!(run("tasks.add", vec![json!(1), dec("1.10")], json!({})).unwrap(), dec("2.10"));
        assert_eq!(
            msg(run("tasks.add", vec![dec("1.10"), json!(0.5)], json!({}))),
            "TypeError: unsupported operand type(s) for +: 'decimal.Decimal' and 'float'"
        );
        let when = json!({"__type__": "datetime", "__value__": "2026-01-01T00:00:00"});
        assert_eq!(run("tasks.echo", vec![when.clone()], json!({})).unwrap(), when);
        assert_eq!(
            msg(run("tasks.add", vec![when, json!(1)], json!({}))),
            "TypeError: unsupported operand type(s) for +: 'datetime.datetime' and 'int'"
        );
    }

    #[test]
    fn wrong_arguments_are_type_errors() {
        let msg = |r: Result<Value, TaskError>| r.unwrap_err().to_string();
        assert_eq!(
            msg(run("tasks.add", vec![json!(1), json!("x")], json!({}))),
            "TypeError: unsupported operand type(s) for +: 'int' and 'str'"
        );
        assert_eq!(msg(run("tasks.add", vec![json!(1)], json!({}))), "TypeError: add_task() missing 1 required positional argument: 'y'");
        assert_eq!(msg(run("tasks.add", vec![], json!({}))), "TypeError: add_task() missing 2 required positional arguments: 'x' and 'y'");
        assert_eq!(
            msg(run("tasks.add", vec![json!(1), json!(2), json!(3)], json!({}))),
            "TypeError: add_task() takes 2 positional arguments but 3 were given"
        );
        assert_eq!(
            msg(run("tasks.add", vec![json!(1), json!(2)], json!({"z": 1}))),
            "TypeError: add_task() got an unexpected keyword argument 'z'"
        );
        assert_eq!(msg(run("tasks.add", vec![json!(1)], json!({"x": 1}))), "TypeError: add_task() got multiple values for argument 'x'");
        assert_eq!(
            msg(run("tasks.add", vec![json!("a"), json!(1)], json!({}))),
            "TypeError: can only concatenate str (not \"int\") to str"
        );
    }
}
