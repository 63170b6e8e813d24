//! Python `repr()` of JSON values, as Celery prints them in `argsrepr`, `kwargsrepr`, log lines and
//! events (`"('World',)"`, `"{'z': 1}"`, `"'Hello'"`, `"5.0"`).

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
}
