//! Python's `decimal.Decimal` addition, for kombu's `decimal` values: exact on the digits, in the
//! default context (28 significant digits, rounding half to even), printed as `str(Decimal)` does.

use num_bigint::{BigInt, Sign};

/// The default context's precision.
const PRECISION: usize = 28;

/// A finite decimal: `coefficient × 10^exponent`, or one of the special values.
#[derive(Clone, Debug, PartialEq)]
enum Dec {
    Finite { coefficient: BigInt, exponent: i64 },
    Infinity { negative: bool },
    NaN,
}

fn parse(text: &str) -> Option<Dec> {
    let t = text.trim();
    let (negative, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let lower = body.to_ascii_lowercase();
    if lower == "infinity" || lower == "inf" {
        return Some(Dec::Infinity { negative });
    }
    if lower == "nan" || lower == "snan" {
        return Some(Dec::NaN);
    }
    let (mantissa, exp) = match lower.split_once('e') {
        Some((m, e)) => (m, e.parse::<i64>().ok()?),
        None => (lower.as_str(), 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = format!("{int}{frac}");
    let mut coefficient: BigInt = if digits.is_empty() { BigInt::from(0) } else { digits.parse().ok()? };
    if negative {
        coefficient = -coefficient;
    }
    Some(Dec::Finite { coefficient, exponent: exp - frac.len() as i64 })
}

/// Rounds to the context's precision, half to even.
fn round(coefficient: BigInt, exponent: i64) -> (BigInt, i64) {
    let digits = coefficient.magnitude().to_string();
    if digits.len() <= PRECISION {
        return (coefficient, exponent);
    }
    let drop = digits.len() - PRECISION;
    let ten = BigInt::from(10).pow(drop as u32);
    let magnitude = BigInt::from_biguint(Sign::Plus, coefficient.magnitude().clone());
    let (mut kept, rest) = (&magnitude / &ten, &magnitude % &ten);
    let twice = rest * 2;
    if twice > ten || (twice == ten && (&kept % 2u32) == BigInt::from(1)) {
        kept += 1;
    }
    let kept = if coefficient.sign() == Sign::Minus { -kept } else { kept };
    // 9.99…9 rounded up gains a digit: round once more.
    round(kept, exponent + drop as i64)
}

/// `str(Decimal)`: plain notation when the exponent is not positive and the number is not tiny,
/// scientific otherwise (`1E+2`, `1.5E-7`).
fn to_string(d: &Dec) -> String {
    match d {
        Dec::NaN => "NaN".into(),
        Dec::Infinity { negative } => if *negative { "-Infinity" } else { "Infinity" }.into(),
        Dec::Finite { coefficient, exponent } => {
            let sign = if coefficient.sign() == Sign::Minus { "-" } else { "" };
            let digits = coefficient.magnitude().to_string();
            let adjusted = exponent + digits.len() as i64 - 1;
            if *exponent <= 0 && adjusted >= -6 {
                if *exponent == 0 {
                    return format!("{sign}{digits}");
                }
                let point = digits.len() as i64 + exponent;
                if point > 0 {
                    let (a, b) = digits.split_at(point as usize);
                    format!("{sign}{a}.{b}")
                } else {
                    format!("{sign}0.{}{digits}", "0".repeat((-point) as usize))
                }
            } else {
                let (first, rest) = digits.split_at(1);
                let mantissa = if rest.is_empty() { first.to_string() } else { format!("{first}.{rest}") };
                format!("{sign}{mantissa}E{}{adjusted}", if adjusted >= 0 { "+" } else { "" })
            }
        }
    }
}

/// `Decimal(a) + Decimal(b)` on their texts; `Err` carries Python's exception (type, message).
pub fn add(a: &str, b: &str) -> Result<String, (&'static str, String)> {
    let invalid = |t: &str| ("decimal.InvalidOperation", format!("[<class 'decimal.ConversionSyntax'>] {t:?}"));
    let x = parse(a).ok_or_else(|| invalid(a))?;
    let y = parse(b).ok_or_else(|| invalid(b))?;
    let sum = match (x, y) {
        (Dec::NaN, _) | (_, Dec::NaN) => Dec::NaN,
        (Dec::Infinity { negative: p }, Dec::Infinity { negative: q }) if p != q => {
            return Err(("decimal.InvalidOperation", "[<class 'decimal.InvalidOperation'>]".into()));
        }
        (inf @ Dec::Infinity { .. }, _) | (_, inf @ Dec::Infinity { .. }) => inf,
        (Dec::Finite { coefficient: c1, exponent: e1 }, Dec::Finite { coefficient: c2, exponent: e2 }) => {
            let e = e1.min(e2);
            let scale = |c: BigInt, from: i64| c * BigInt::from(10).pow((from - e) as u32);
            let (coefficient, exponent) = round(scale(c1, e1) + scale(c2, e2), e);
            Dec::Finite { coefficient, exponent }
        }
    };
    Ok(to_string(&sum))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_as_python_prints_them() {
        // Each right side is what CPython's decimal module gives.
        for (a, b, sum) in [
            ("1.10", "2.2", "3.30"),
            ("0.1", "2", "2.1"),
            ("1E+2", "1", "101"),
            ("1E+2", "1E+2", "2E+2"),
            ("1.1", "-1.1", "0.0"),
            ("0.0000001", "0", "1E-7"),
            ("0.000001", "0", "0.000001"),
            ("1.0000000000000000000000000001", "1", "2.000000000000000000000000000"),
            ("9999999999999999999999999999.5", "0", "1.000000000000000000000000000E+28"),
            ("0.5", "0.00000000000000000000000000005", "0.5000000000000000000000000000"),
            ("Infinity", "1", "Infinity"),
            ("NaN", "1", "NaN"),
        ] {
            assert_eq!(add(a, b).unwrap(), sum, "{a} + {b}");
        }
        assert!(add("Infinity", "-Infinity").is_err());
        assert!(add("abc", "1").is_err());
    }
}
