//! Numbers compared by value, the way EventBridge does (corpus §4.1, §4.6): two numbers are
//! equal when their text is identical or when both are *exactly* the same float64. A number
//! whose written decimal is not the float64 it parses to (`9007199254740993`,
//! `0.30000000000000001`, `1e400`) only ever equals its own text.

use std::fmt;

/// A JSON number from a pattern, with its text kept as written.
#[derive(Debug, Clone)]
pub struct Number {
    text: Box<str>,
    value: Option<f64>,
}

impl Number {
    /// Wraps JSON number text (already checked against the JSON grammar).
    pub(crate) fn from_json_text(text: &str) -> Number {
        Number {
            text: text.into(),
            value: exact_f64(text),
        }
    }

    /// The number as written in the pattern.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The float64 this number is exactly equal to, or `None` when the written decimal has
    /// no exact float64 (it then only matches its own text).
    pub fn as_f64(&self) -> Option<f64> {
        self.value
    }

    /// The key under which equal numbers meet.
    pub(crate) fn key(&self) -> NumberKey {
        NumberKey::of(&self.text, self.value)
    }
}

impl PartialEq for Number {
    fn eq(&self, other: &Number) -> bool {
        self.key() == other.key()
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Numbers with equal keys are equal (corpus §4.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum NumberKey {
    /// The bits of an exactly representable value, with -0 folded into 0.
    Exact(u64),
    /// The text of a number that has no exact float64.
    Text(Box<str>),
}

impl fmt::Display for NumberKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NumberKey::Exact(bits) => {
                // The shortest digits that read back to the same float64. Like JSON.stringify,
                // with an exponent outside 1e-6..1e21, where `1e300` would otherwise be
                // written as 301 digits and `1e-300` with 300 zeros.
                let value = f64::from_bits(*bits);
                if value != 0.0 && !(1e-6..1e21).contains(&value.abs()) {
                    write!(f, "{value:e}")
                } else {
                    write!(f, "{value}")
                }
            }
            NumberKey::Text(text) => write!(f, "{text} (text)"),
        }
    }
}

impl NumberKey {
    pub(crate) fn of(text: &str, value: Option<f64>) -> NumberKey {
        NumberKey::of_ascii(text.as_bytes(), value)
    }

    /// [`NumberKey::of`] number text scanned from an event (ASCII), which is only read
    /// when the number has no exact float64.
    #[inline]
    pub(crate) fn of_ascii(text: &[u8], value: Option<f64>) -> NumberKey {
        match value {
            Some(v) => NumberKey::Exact(if v == 0.0 { 0 } else { v.to_bits() }),
            None => NumberKey::Text(String::from_utf8_lossy(text).into()),
        }
    }
}

/// Parses JSON number text to the float64 it denotes exactly, or `None` when there is none.
///
/// "Exactly" follows event-ruler: the written decimal must equal the decimal that the
/// float64 prints as (the shortest round-trip form, with at least two significant digits as
/// Java prints them), so `5e-324` is not exact (it prints as `4.9E-324`) while `0.10` is.
pub(crate) fn exact_f64(text: &str) -> Option<f64> {
    exact_f64_ascii(text.as_bytes())
}

/// [`exact_f64`] of number text as scanned from an event (ASCII, or no number at all).
pub(crate) fn exact_f64_ascii(text: &[u8]) -> Option<f64> {
    match short_decimal(text) {
        Some(value) => Some(value),
        None => exact_f64_general(std::str::from_utf8(text).ok()?),
    }
}

/// Powers of ten that a float64 holds exactly, enough for 15 digits after the point.
const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// The common case, without the general parser: a plain decimal (no exponent) of at most 15
/// digits. Its digits form an integer below 2^53 and its scale a power of ten that a
/// float64 holds exactly, so one division rounds correctly (Clinger's fast path), and at
/// most 15 digits always survive the round trip (see [`exact_f64_general`]).
fn short_decimal(bytes: &[u8]) -> Option<f64> {
    let (negative, body) = match bytes.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, bytes),
    };
    let mut mantissa = 0u64;
    let mut n_digits = 0usize;
    let mut scale: Option<usize> = None;
    for &b in body {
        match b {
            b'0'..=b'9' if n_digits < 15 => {
                mantissa = mantissa * 10 + u64::from(b - b'0');
                n_digits += 1;
                if let Some(k) = &mut scale {
                    *k += 1;
                }
            }
            b'.' if scale.is_none() => scale = Some(0),
            _ => return None,
        }
    }
    if n_digits == 0 {
        return None;
    }
    if mantissa == 0 {
        return Some(0.0);
    }
    let value = mantissa as f64 / POW10[scale.unwrap_or(0)];
    Some(if negative { -value } else { value })
}

fn exact_f64_general(text: &str) -> Option<f64> {
    let value: f64 = text.parse().ok()?;
    if !value.is_finite() {
        return None;
    }
    // Fast path: at most 15 significant digits always survive the round trip through a
    // normal float64 (DBL_DIG), so the written decimal is the printed one.
    let n_digits = text
        .bytes()
        .take_while(|b| !matches!(b, b'e' | b'E'))
        .filter(u8::is_ascii_digit)
        .count();
    if n_digits <= 15 && value.abs() >= f64::MIN_POSITIVE {
        return Some(value);
    }
    let written = Decimal::parse(text)?;
    if value == 0.0 {
        return written.digits.is_empty().then_some(0.0);
    }
    let mut printed = Decimal::parse(&format!("{:e}", value.abs()))?;
    if printed.digits.len() == 1 {
        printed = Decimal::parse(&format!("{:.1e}", value.abs()))?;
    }
    (printed.digits == written.digits && printed.exponent == written.exponent).then_some(value)
}

/// A decimal as significant digits (no leading or trailing zeros) and the exponent of the
/// first digit. The sign is ignored: callers compare magnitudes of same-signed values.
#[derive(Debug, PartialEq)]
struct Decimal {
    digits: Vec<u8>,
    exponent: i64,
}

impl Decimal {
    fn parse(text: &str) -> Option<Decimal> {
        let text = text.strip_prefix('-').unwrap_or(text);
        let (mantissa, exp) = match text.find(['e', 'E']) {
            Some(i) => (&text[..i], text[i + 1..].parse::<i64>().ok()?),
            None => (text, 0),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let all: Vec<u8> = int.bytes().chain(frac.bytes()).collect();
        let Some(first) = all.iter().position(|&b| b != b'0') else {
            return Some(Decimal {
                digits: Vec::new(),
                exponent: 0,
            });
        };
        let last = all
            .iter()
            .rposition(|&b| b != b'0')
            .expect("a nonzero digit exists");
        // An exponent at the end of `i64` has no float64 anyway: `None`, not an overflow.
        let exponent = exp
            .checked_add(i64::try_from(int.len()).ok()?)?
            .checked_sub(i64::try_from(first).ok()?)?;
        Some(Decimal {
            digits: all[first..=last].to_vec(),
            exponent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expect: Option<f64>) {
        assert_eq!(exact_f64(text), expect, "{text}");
    }

    #[test]
    fn exact_numbers() {
        check("300", Some(300.0));
        check("300.0", Some(300.0));
        check("3e2", Some(300.0));
        check("3.018e2", Some(301.8));
        check("0.10", Some(0.1));
        check("-0", Some(0.0));
        check("-0.0e5", Some(0.0));
        check("1e22", Some(1e22));
        check("-1.5", Some(-1.5));
        check("1e-310", Some(1e-310));
    }

    /// Exponents at the ends of `i64` round to zero or overflow to infinity: no exact
    /// float64, and no overflow on the way (debug builds would panic).
    #[test]
    fn extreme_exponents() {
        check("0.01e-9223372036854775808", None);
        check("1e-9223372036854775808", None);
        check("0.5e9223372036854775807", None);
        check("0e-9223372036854775808", Some(0.0));
        check("1e-99999999999999999999", None);
    }

    #[test]
    fn inexact_numbers() {
        check("0.30000000000000001", None);
        check("9007199254740993", None);
        check("12345678901234567890", None);
        check("1e400", None);
        check("2.0e422", None);
        check("1E-325", None);
        check("5e-324", None);
    }

    /// The fast path for short plain decimals gives what the general one gives, bit for
    /// bit, and declines whatever it cannot decide.
    #[test]
    fn short_decimals_agree_with_the_general_path() {
        let mut texts: Vec<String> = ["0", "-0", "0.0", "-0.000", "1", "-1", "0.1", "0.10"]
            .map(String::from)
            .into();
        texts
            .extend(["123456789012345", "1234567890123456", "0.000000000000001"].map(String::from));
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let n_digits = 1 + (state % 17) as usize;
            let digits: String = (0..n_digits)
                .map(|i| char::from(b'0' + ((state >> (i * 3 % 60)) % 10) as u8))
                .collect();
            let point = (state >> 40) as usize % (n_digits + 1);
            let sign = if state & 1 == 0 { "" } else { "-" };
            let text = if point == 0 || point == n_digits {
                format!("{sign}{digits}")
            } else {
                format!("{sign}{}.{}", &digits[..point], &digits[point..])
            };
            texts.push(text);
        }
        let mut decided = 0;
        for text in &texts {
            let general = exact_f64_general(text);
            if let Some(fast) = short_decimal(text.as_bytes()) {
                decided += 1;
                assert_eq!(Some(fast.to_bits()), general.map(f64::to_bits), "{text}");
            }
            assert_eq!(
                exact_f64(text).map(f64::to_bits),
                general.map(f64::to_bits),
                "{text}"
            );
        }
        assert!(decided > texts.len() / 2, "{decided} of {}", texts.len());
    }

    #[test]
    fn equal_keys() {
        let a = Number::from_json_text("300");
        let b = Number::from_json_text("3.00e2");
        assert_eq!(a.key(), b.key());
        let c = Number::from_json_text("9007199254740993");
        let d = Number::from_json_text("9007199254740992");
        assert_ne!(c.key(), d.key());
    }
}
