//! JSON as kombu writes Python values, read and written without loss.
//!
//! - **Integers of any size.** Python's `int` has no bound and kombu writes `10**20` as the digits
//!   `100000000000000000000`; serde_json's numbers stop at 64 bits (it would read a float,
//!   `1e+20`). Such an integer is held in a [`Value`] as `{"\u0000int": "<digits>"}` (a key no
//!   Python client writes) between [`from_slice`] and [`to_vec`], which write it back as the bare
//!   digits.
//! - **kombu's typed envelopes** `{"__type__": T, "__value__": V}` (datetime, date, time, decimal,
//!   uuid, bytes) stay as they came, so a task that returns its argument returns the same
//!   datetime or bytes to the Python client; [`envelope`] tells their Python type.

use num_bigint::BigInt;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Map, Value};
use std::borrow::Cow;

/// The key of a big integer's holder object.
pub const BIG_INT_KEY: &str = "\u{0}int";
/// The holder's opening as serde_json writes it.
const BIG_INT_OPEN: &[u8] = br#"{"\u0000int":""#;

/// Parses JSON, keeping integers beyond 64 bits exact.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> serde_json::Result<T> {
    serde_json::from_slice(&mark_big_ints(bytes, None).unwrap_or(Cow::Borrowed(bytes)))
}

/// CPython's limit on the digits of an integer read from text (`sys.int_max_str_digits`).
pub const MAX_INT_DIGITS: usize = 4300;

/// What [`from_slice_bounded`] refuses before it builds anything.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// The most values (numbers, strings, literals, lists and dicts, keys included) in the text.
    pub max_values: usize,
}

/// [`from_slice`] for text from outside: more than `bounds.max_values` values, or an integer of
/// more than [`MAX_INT_DIGITS`] digits (Python's `ValueError`), is refused by the scan that
/// marks big integers, before any value is built.
pub fn from_slice_bounded<T: DeserializeOwned>(bytes: &[u8], bounds: Bounds) -> Result<T, String> {
    let marked = mark_big_ints(bytes, Some(bounds))?;
    serde_json::from_slice(&marked).map_err(|e| e.to_string())
}

/// [`from_slice`] for text.
pub fn from_str<T: DeserializeOwned>(text: &str) -> serde_json::Result<T> {
    from_slice(text.as_bytes())
}

/// Serializes to JSON, writing held big integers back as bare digits.
pub fn to_vec<T: Serialize + ?Sized>(v: &T) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(v).map(unmark_big_ints)
}

/// [`to_vec`] as text.
pub fn to_string<T: Serialize + ?Sized>(v: &T) -> serde_json::Result<String> {
    to_vec(v).map(|b| String::from_utf8(b).expect("serde_json writes UTF-8"))
}

/// [`to_string`] pretty-printed.
pub fn to_string_pretty<T: Serialize + ?Sized>(v: &T) -> serde_json::Result<String> {
    serde_json::to_vec_pretty(v).map(|b| String::from_utf8(unmark_big_ints(b)).expect("serde_json writes UTF-8"))
}

/// The digits of a held big integer.
pub fn big_int_digits(v: &Value) -> Option<&str> {
    match v {
        Value::Object(m) if m.len() == 1 => m.get(BIG_INT_KEY).and_then(Value::as_str),
        _ => None,
    }
}

/// A Python int (bool included, as in Python) as a big integer.
pub fn as_int(v: &Value) -> Option<BigInt> {
    match v {
        Value::Bool(b) => Some(BigInt::from(*b as u8)),
        Value::Number(n) => n.as_i64().map(BigInt::from).or_else(|| n.as_u64().map(BigInt::from)),
        other => big_int_digits(other).and_then(|d| d.parse().ok()),
    }
}

/// An integer as a JSON value: a plain number when it fits 64 bits, a held big integer beyond.
pub fn int_value(n: BigInt) -> Value {
    if let Ok(i) = i64::try_from(&n) {
        return Value::Number(i.into());
    }
    if let Ok(u) = u64::try_from(&n) {
        return Value::Number(u.into());
    }
    let mut m = Map::new();
    m.insert(BIG_INT_KEY.to_string(), Value::String(n.to_string()));
    Value::Object(m)
}

/// An integer as a float, as Python's `float(n)` (None when too large: OverflowError).
pub fn int_to_f64(n: &BigInt) -> Option<f64> {
    let f: f64 = n.to_string().parse().ok()?;
    f.is_finite().then_some(f)
}

/// A kombu envelope's type and value: `("datetime", "2026-01-01T00:00:00")`.
pub fn envelope(v: &Value) -> Option<(&str, &Value)> {
    match v {
        Value::Object(m) if m.len() == 2 => Some((m.get("__type__")?.as_str()?, m.get("__value__")?)),
        _ => None,
    }
}

/// The bytes a kombu envelope holds: `bytes` (UTF-8 text) or `base64` (anything else).
pub fn bytes_of(v: &Value) -> Option<Vec<u8>> {
    use base64::Engine;
    match envelope(v)? {
        ("bytes", Value::String(s)) => Some(s.as_bytes().to_vec()),
        ("base64", Value::String(s)) => base64::engine::general_purpose::STANDARD.decode(s).ok(),
        _ => None,
    }
}

/// Bytes as kombu writes them: `bytes` when they are UTF-8 text, `base64` otherwise.
pub fn bytes_value(b: Vec<u8>) -> Value {
    use base64::Engine;
    match String::from_utf8(b) {
        Ok(text) => serde_json::json!({"__type__": "bytes", "__value__": text}),
        Err(e) => serde_json::json!({"__type__": "base64", "__value__": base64::engine::general_purpose::STANDARD.encode(e.into_bytes())}),
    }
}

/// Python's type name of a kombu envelope's type (`datetime.datetime`, `bytes`...).
pub fn envelope_type_name(ty: &str) -> Option<&'static str> {
    Some(match ty {
        "datetime" => "datetime.datetime",
        "date" => "datetime.date",
        "time" => "datetime.time",
        "decimal" => "decimal.Decimal",
        "uuid" => "UUID",
        "bytes" | "base64" => "bytes",
        _ => return None,
    })
}

/// Replaces each integer literal beyond 64 bits with its holder object (borrowed when none);
/// with `bounds`, counts the values on the way and refuses too many, or too long an integer.
fn mark_big_ints(bytes: &[u8], bounds: Option<Bounds>) -> Result<Cow<'_, [u8]>, String> {
    let mut out: Option<Vec<u8>> = None;
    let (mut last, mut i) = (0, 0);
    let (max_values, max_digits) = match bounds {
        Some(b) => (b.max_values, MAX_INT_DIGITS),
        None => (usize::MAX, usize::MAX),
    };
    let mut values = 0usize;
    while i < bytes.len() {
        // Every value starts with one of these bytes outside a string: `"`, a digit or `-`,
        // `[`, `{`, and the first letter of true, false, null (NaN, Infinity).
        if matches!(bytes[i], b'"' | b'-' | b'0'..=b'9' | b'[' | b'{' | b't' | b'f' | b'n' | b'N' | b'I') {
            values += 1;
            if values > max_values {
                return Err(format!("more than {max_values} values"));
            }
        }
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() {
                    match bytes[i] {
                        b'\\' => i += 2,
                        b'"' => {
                            i += 1;
                            break;
                        }
                        _ => i += 1,
                    }
                }
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                i += 1;
                while i < bytes.len() && matches!(bytes[i], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-') {
                    i += 1;
                }
                let token = &bytes[start..i];
                let digits = token.len() - (token[0] == b'-') as usize;
                if digits > max_digits && token.iter().all(|b| b.is_ascii_digit() || *b == b'-') {
                    return Err(format!(
                        "Exceeds the limit ({max_digits} digits) for integer string conversion: value has {digits} digits; use sys.set_int_max_str_digits() to increase the limit"
                    ));
                }
                if is_big_int(token) {
                    let o = out.get_or_insert_with(|| Vec::with_capacity(bytes.len() + 32));
                    o.extend_from_slice(&bytes[last..start]);
                    o.extend_from_slice(BIG_INT_OPEN);
                    o.extend_from_slice(token);
                    o.extend_from_slice(b"\"}");
                    last = i;
                }
            }
            _ => i += 1,
        }
    }
    Ok(match out {
        Some(mut o) => {
            o.extend_from_slice(&bytes[last..]);
            Cow::Owned(o)
        }
        None => Cow::Borrowed(bytes),
    })
}

/// A well-formed JSON integer (no fraction, no exponent) that fits neither i64 nor u64.
fn is_big_int(token: &[u8]) -> bool {
    let digits = token.strip_prefix(b"-").unwrap_or(token);
    if digits.len() < 19 || !digits.iter().all(u8::is_ascii_digit) || digits[0] == b'0' {
        return false;
    }
    let text = std::str::from_utf8(token).unwrap_or("");
    text.parse::<i64>().is_err() && text.parse::<u64>().is_err()
}

/// Writes each holder object back as its digits (compact or pretty-printed JSON).
fn unmark_big_ints(bytes: Vec<u8>) -> Vec<u8> {
    const KEY: &[u8] = br#""\u0000int""#;
    if !bytes.windows(KEY.len()).any(|w| w == KEY) {
        return bytes;
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'{'
            && let Some((digits, end)) = holder_at(&bytes, i)
        {
            out.extend_from_slice(digits);
            i = end;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// At `{`: `{ "\u0000int" : "<digits>" }` with any whitespace → the digits and the end.
fn holder_at(bytes: &[u8], start: usize) -> Option<(&[u8], usize)> {
    let ws = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    let expect = |i: usize, lit: &[u8]| bytes[i..].starts_with(lit).then_some(i + lit.len());
    let i = expect(ws(start + 1), br#""\u0000int""#)?;
    let i = expect(ws(i), b":")?;
    let from = expect(ws(i), b"\"")?;
    let len = bytes[from..].iter().take_while(|b| b.is_ascii_digit() || **b == b'-').count();
    let i = expect(from + len, b"\"")?;
    let end = expect(ws(i), b"}")?;
    (len > 0).then_some((&bytes[from..from + len], end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn big_integers_survive_a_round_trip() {
        let text = r#"[100000000000000000000, -99999999999999999999999, 18446744073709551615, 9223372036854775807, "123456789012345678901234", 1.5e300, {"k": [340282366920938463463374607431768211456]}]"#;
        let v: Value = from_str(text).unwrap();
        assert_eq!(big_int_digits(&v[0]), Some("100000000000000000000"));
        assert_eq!(big_int_digits(&v[1]), Some("-99999999999999999999999"));
        assert_eq!(v[2], json!(u64::MAX), "u64 fits a plain number");
        assert_eq!(v[3], json!(i64::MAX));
        assert_eq!(v[4], json!("123456789012345678901234"), "digits in a string stay a string");
        let pretty = to_string_pretty(&v).unwrap();
        assert!(pretty.contains("[\n      340282366920938463463374607431768211456\n    ]") && !pretty.contains("u0000"), "{pretty}");
        assert_eq!(
            to_string(&v).unwrap(),
            r#"[100000000000000000000,-99999999999999999999999,18446744073709551615,9223372036854775807,"123456789012345678901234",1.5e+300,{"k":[340282366920938463463374607431768211456]}]"#
        );
    }

    #[test]
    fn strings_that_look_like_holders_stay_strings() {
        let v = json!([r#"{"\u0000int":"5"}"#, "a\"b 123456789012345678901234"]);
        let text = to_string(&v).unwrap();
        assert_eq!(from_str::<Value>(&text).unwrap(), v);
    }

    #[test]
    fn bounded_parsing_refuses_before_building() {
        let b = Bounds { max_values: 5 };
        assert_eq!(
            from_slice_bounded::<Value>(br#"[[1, "a", true], {"k": null}]"#, Bounds { max_values: 8 }).unwrap()[1]["k"],
            Value::Null
        );
        let e = from_slice_bounded::<Value>(b"[0,0,0,0,0,0]", b).unwrap_err();
        assert!(e.contains("more than 5 values"), "{e}");
        let at_limit = "9".repeat(MAX_INT_DIGITS);
        let v: Value = from_slice_bounded(format!("[{at_limit}]").as_bytes(), b).unwrap();
        assert_eq!(big_int_digits(&v[0]).map(str::len), Some(MAX_INT_DIGITS));
        let e = from_slice_bounded::<Value>(format!("[-{at_limit}1]").as_bytes(), b).unwrap_err();
        assert!(e.starts_with("Exceeds the limit (4300 digits) for integer string conversion: value has 4301 digits"), "{e}");
        // Digits inside a string, and long floats, are not integers.
        assert!(from_slice_bounded::<Value>(format!("[\"{at_limit}1\"]").as_bytes(), b).is_ok());
    }

    #[test]
    fn integers_as_python_sees_them() {
        let big = as_int(&from_str::<Value>("100000000000000000000").unwrap()).unwrap();
        assert_eq!(int_value(big.clone() + 1), from_str::<Value>("100000000000000000001").unwrap());
        assert_eq!(int_value(BigInt::from(1u64 << 62) * 2), json!(1u64 << 63));
        assert_eq!(as_int(&json!(true)), Some(BigInt::from(1)));
        assert_eq!(int_to_f64(&big), Some(1e20));
        assert_eq!(int_to_f64(&(BigInt::from(10).pow(400))), None);
    }
}
