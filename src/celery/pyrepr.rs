//! Python `repr()` of JSON values, as Celery prints them in `argsrepr`, `kwargsrepr`, log lines and
//! events (`"('World',)"`, `"{'z': 1}"`, `"'Hello'"`, `"5.0"`).

use super::pyjson;
use serde_json::{Map, Value};

/// `repr()` of one value.
pub fn repr(v: &Value) -> String {
    let mut out = String::new();
    write_repr(&mut out, v);
    out
}

/// `repr(tuple(args))`: `()`, `(1,)`, `(1, 2)`.
pub fn repr_args(args: &[Value]) -> String {
    let mut out = String::from("(");
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_repr(&mut out, a);
    }
    if args.len() == 1 {
        out.push(',');
    }
    out.push(')');
    out
}

/// `repr(dict)` of keyword arguments.
pub fn repr_kwargs(kwargs: &Map<String, Value>) -> String {
    let mut out = String::new();
    write_dict(&mut out, kwargs);
    out
}

/// Python's `str()`: strings unquoted, everything else as `repr()`.
pub fn str_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => repr(other),
    }
}

/// Celery's `saferepr` keeps reprs at most 1024 characters.
pub fn truncate(mut s: String, max: usize) -> String {
    if s.chars().count() > max {
        let cut: String = s.chars().take(max.saturating_sub(3)).collect();
        s = cut + "...";
    }
    s
}

fn write_repr(out: &mut String, v: &Value) {
    if let Some(digits) = pyjson::big_int_digits(v) {
        out.push_str(digits);
        return;
    }
    if let Some(bytes) = pyjson::bytes_of(v) {
        out.push_str(&bytes_repr(&bytes));
        return;
    }
    if let Some(text) = pyjson::envelope(v).and_then(|(ty, val)| envelope_repr(ty, val)) {
        out.push_str(&text);
        return;
    }
    match v {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else if let Some(f) = n.as_f64() {
                out.push_str(&float_repr(f));
            }
        }
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_repr(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => write_dict(out, map),
    }
}

fn write_dict(out: &mut String, map: &Map<String, Value>) {
    out.push('{');
    for (i, (k, val)) in map.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_str(out, k);
        out.push_str(": ");
        write_repr(out, val);
    }
    out.push('}');
}

/// Python quotes with `'` unless the text holds a `'` and no `"`.
fn write_str(out: &mut String, s: &str) {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// The repr of the Python object a kombu envelope stands for: `datetime.datetime(2026, 1, 1, 9,
/// 30)`, `Decimal('1.5')`, `UUID('…')`. None when the value is not what kombu writes.
fn envelope_repr(ty: &str, val: &Value) -> Option<String> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
    fn clock(t: NaiveTime) -> String {
        let mut s = format!("{}, {}", t.hour(), t.minute());
        let micros = t.nanosecond() / 1000;
        if t.second() != 0 || micros != 0 {
            s += &format!(", {}", t.second());
        }
        if micros != 0 {
            s += &format!(", {micros}");
        }
        s
    }
    fn date(d: NaiveDate) -> String {
        use chrono::Datelike;
        format!("{}, {}, {}", d.year(), d.month(), d.day())
    }
    match (ty, val) {
        ("datetime", Value::String(s)) => {
            if let Ok(naive) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
                return Some(format!("datetime.datetime({}, {})", date(naive.date()), clock(naive.time())));
            }
            let aware = DateTime::parse_from_rfc3339(s).ok()?;
            let offset = aware.offset().local_minus_utc();
            let tz = if offset == 0 {
                "datetime.timezone.utc".to_string()
            } else {
                format!("datetime.timezone(datetime.timedelta({}))", timedelta(offset))
            };
            let local = aware.naive_local();
            Some(format!("datetime.datetime({}, {}, tzinfo={tz})", date(local.date()), clock(local.time())))
        }
        ("date", Value::String(s)) => Some(format!("datetime.date({})", date(NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?))),
        ("time", Value::String(s)) => Some(format!("datetime.time({})", clock(NaiveTime::parse_from_str(s, "%H:%M:%S%.f").ok()?))),
        ("decimal", Value::String(s)) => Some(format!("Decimal({})", repr(&Value::String(s.clone())))),
        ("uuid", Value::Object(m)) => {
            let hex = m.get("hex")?.as_str()?;
            if hex.len() != 32 || !hex.is_ascii() {
                return None;
            }
            Some(format!("UUID('{}-{}-{}-{}-{}')", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..]))
        }
        _ => None,
    }
}

/// `timedelta(...)` arguments for a UTC offset in seconds, as Python prints them.
fn timedelta(offset: i32) -> String {
    if offset < 0 {
        let secs = offset.rem_euclid(86_400);
        format!("days=-1, seconds={secs}")
    } else {
        format!("seconds={offset}")
    }
}

/// Python's repr of bytes: `b'abc'`, `b"it's"`, `b'\xc3\xa9'`.
fn bytes_repr(b: &[u8]) -> String {
    let quote = if b.contains(&b'\'') && !b.contains(&b'"') { '"' } else { '\'' };
    let mut out = format!("b{quote}");
    for &c in b {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            c if c as char == quote => {
                out.push('\\');
                out.push(quote);
            }
            0x20..=0x7e => out.push(c as char),
            c => out.push_str(&format!("\\x{c:02x}")),
        }
    }
    out.push(quote);
    out
}

/// Python's float repr: shortest round-trip digits, `5.0`, `1e+16`, `1e-05`, `inf`, `nan`.
pub fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-4..1e16).contains(&abs) {
        let s = format!("{f:e}");
        let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        let digits = if digits.len() < 2 { format!("0{digits}") } else { digits.to_string() };
        format!("{mant}e{sign}{digits}")
    } else {
        format!("{f:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reprs_match_python() {
        assert_eq!(repr_args(&[json!("World")]), "('World',)");
        assert_eq!(repr_args(&[json!(2), json!(2)]), "(2, 2)");
        assert_eq!(repr_args(&[]), "()");
        assert_eq!(repr_kwargs(json!({"z": 1}).as_object().unwrap()), "{'z': 1}");
        assert_eq!(repr(&json!("it's")), "\"it's\"");
        assert_eq!(repr(&json!("a'b\"c")), "'a\\'b\"c'");
        assert_eq!(repr(&json!([true, null, 1.5])), "[True, None, 1.5]");
        assert_eq!(float_repr(5.0), "5.0");
        assert_eq!(float_repr(1e16), "1e+16");
        assert_eq!(float_repr(0.00001), "1e-05");
        assert_eq!(float_repr(0.0001), "0.0001");
        assert_eq!(float_repr(-2.5e-7), "-2.5e-07");
        assert_eq!(str_of(&json!("x")), "x");
        assert_eq!(truncate("abcdef".into(), 5), "ab...");
    }

    #[test]
    fn kombu_types_and_big_ints_repr_as_python_objects() {
        let env = |t: &str, v: Value| json!({"__type__": t, "__value__": v});
        assert_eq!(repr(&env("datetime", json!("2026-01-01T09:30:00"))), "datetime.datetime(2026, 1, 1, 9, 30)");
        assert_eq!(
            repr(&env("datetime", json!("2026-01-01T09:30:05.000123+00:00"))),
            "datetime.datetime(2026, 1, 1, 9, 30, 5, 123, tzinfo=datetime.timezone.utc)"
        );
        assert_eq!(
            repr(&env("datetime", json!("2026-01-01T09:30:00-05:00"))),
            "datetime.datetime(2026, 1, 1, 9, 30, tzinfo=datetime.timezone(datetime.timedelta(days=-1, seconds=68400)))"
        );
        assert_eq!(repr(&env("date", json!("2026-11-28"))), "datetime.date(2026, 11, 28)");
        assert_eq!(repr(&env("time", json!("12:00:00"))), "datetime.time(12, 0)");
        assert_eq!(repr(&env("decimal", json!("1.10"))), "Decimal('1.10')");
        assert_eq!(repr(&env("uuid", json!({"hex": "0123456789abcdef0123456789abcdef"}))), "UUID('01234567-89ab-cdef-0123-456789abcdef')");
        assert_eq!(repr(&env("bytes", json!("it's \u{e9}\n"))), "b\"it's \\xc3\\xa9\\n\"");
        assert_eq!(repr_args(&[pyjson::from_str("123456789012345678901234").unwrap()]), "(123456789012345678901234,)");
    }
}
