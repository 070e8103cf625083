//! Validated field types shared by the events: a value of one of these types is valid, so
//! an event that exists never carries an empty id or a malformed email.

use std::{borrow::Cow, fmt};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// Why a field value was refused at construction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FieldError {
    /// A user id was empty or only white space.
    #[error("user id must not be empty or only white space")]
    EmptyUserId,
    /// A user id was longer than [`UserId::MAX_LEN`] characters.
    #[error("user id is {len} characters long, the limit is {max}", max = UserId::MAX_LEN)]
    UserIdTooLong {
        /// The length found, in characters.
        len: usize,
    },
    /// A login id was empty or only white space.
    #[error("login id must not be empty or only white space")]
    EmptyLoginId,
    /// A login id was longer than [`LoginId::MAX_LEN`] characters.
    #[error("login id is {len} characters long, the limit is {max}", max = LoginId::MAX_LEN)]
    LoginIdTooLong {
        /// The length found, in characters.
        len: usize,
    },
    /// An email address was not syntactically valid.
    #[error("invalid email address: {reason}")]
    InvalidEmail {
        /// What is wrong with it (the address itself is not repeated: it is personal data).
        reason: &'static str,
    },
    /// A timestamp was not RFC 3339.
    #[error("invalid RFC 3339 timestamp {found:?}: {reason}")]
    InvalidTimestamp {
        /// The text found.
        found: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// White space to Unicode (`char::is_whitespace`) or to JavaScript's `\s` (which adds the
/// byte order mark and leaves out U+0085): an id of only these is refused, as its schema
/// pattern says to every validator.
pub(crate) fn is_blank(c: char) -> bool {
    c.is_whitespace() || c == '\u{feff}'
}

/// The schema pattern of `is_blank`'s complement: one character that is not blank.
pub(crate) const NOT_ONLY_BLANK: &str =
    "[^\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff]";

/// Defines an id type: text that is not empty nor only white space and is at most
/// `MAX_LEN` characters (as the schema's `maxLength` counts them), kept as given.
macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident, $empty:ident, $too_long:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The longest id accepted, in characters.
            pub const MAX_LEN: usize = 128;

            /// Validates `id`.
            pub fn new(id: impl Into<String>) -> Result<$name, FieldError> {
                let id = id.into();
                if id.chars().all(is_blank) {
                    return Err(FieldError::$empty);
                }
                let len = id.chars().count();
                if len > Self::MAX_LEN {
                    return Err(FieldError::$too_long { len });
                }
                Ok($name(id))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = FieldError;
            fn try_from(value: String) -> Result<$name, FieldError> {
                $name::new(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }
            fn inline_schema() -> bool {
                true
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({
                    "type": "string",
                    "minLength": 1,
                    "maxLength": $name::MAX_LEN,
                    // Not only white space: the characters of `is_blank`, spelled out,
                    // since `\\s` means other sets in JavaScript, Python and Rust.
                    "pattern": NOT_ONLY_BLANK,
                })
            }
        }
    };
}

text_id!(
    /// A user's id in the product: not empty nor only white space, at most 128 characters
    /// (as the schema's `maxLength` counts them). It is kept as given.
    UserId,
    EmptyUserId,
    UserIdTooLong
);

text_id!(
    /// The id of one login, chosen by the producer: not empty nor only white space, at most
    /// 128 characters. It is kept as given.
    ///
    /// Consumers handle each login id once, so it must name the login, not the event: a
    /// login published twice (a retried request) keeps its id. It must also be unique
    /// across every producer of logins: two services numbering their logins from 1 would
    /// have one service's logins skipped as the other's duplicates. [`LoginId::random`]
    /// makes one.
    LoginId,
    EmptyLoginId,
    LoginIdTooLong
);

impl LoginId {
    /// A new random id: a UUID (version 4).
    pub fn random() -> LoginId {
        LoginId(uuid::Uuid::new_v4().to_string())
    }
}

/// A syntactically valid email address (RFC 5321 lengths, RFC 5322 dot-atom local part,
/// a DNS domain with at least two labels).
///
/// Its `Debug` form hides the address, so that it never reaches a log by accident.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    /// Validates `address`.
    pub fn new(address: impl Into<String>) -> Result<Email, FieldError> {
        let address = address.into();
        check_email(&address).map_err(|reason| FieldError::InvalidEmail { reason })?;
        Ok(Email(address))
    }

    /// The address as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The address in lower case, as mailing-list providers key their members.
    pub fn to_lowercase(&self) -> String {
        self.0.to_lowercase()
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Email(<redacted>)")
    }
}

impl TryFrom<String> for Email {
    type Error = FieldError;
    fn try_from(value: String) -> Result<Email, FieldError> {
        Email::new(value)
    }
}

impl From<Email> for String {
    fn from(value: Email) -> String {
        value.0
    }
}

impl JsonSchema for Email {
    fn schema_name() -> Cow<'static, str> {
        "Email".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "format": "email",
            "maxLength": 254,
            "pattern": email_pattern(),
        })
    }
}

/// `check_email` as far as a regular expression that JavaScript, Python and Java read alike
/// can say it: a dot-atom local part and two or more labels, the last not all digits, and
/// letters beyond ASCII where `is_printable_non_ascii` takes them (the excluded ones of
/// the Basic Multilingual Plane are worked out from it; beyond it, JavaScript without the
/// `u` flag sees only surrogate halves). Lengths in bytes are left to `maxLength` and the
/// description. The end is `$(?![\s\S])`: Python's and Java's `$` also match before a
/// final line break.
fn email_pattern() -> &'static str {
    static PATTERN: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let excluded = excluded_non_ascii_class();
        // What each part takes, as classes of what it does not: a negated class also takes
        // characters beyond the Basic Multilingual Plane.
        let local = format!("[^\\x00-\\x20\"(),.:;<>@\\[\\\\\\]\\x7f{excluded}]");
        let edge = format!("[^\\x00-\\x2f\\x3a-\\x40\\x5b-\\x60\\x7b-\\x7f{excluded}]");
        let inner = format!("[^\\x00-\\x2c\\x2e\\x2f\\x3a-\\x40\\x5b-\\x60\\x7b-\\x7f{excluded}]");
        // An ASCII label holds at most 63 characters (the lookahead refuses 64 in a row);
        // one beyond ASCII is measured as its A-label, which the description says. No count
        // of characters beyond ASCII: JavaScript counts a letter beyond the Basic
        // Multilingual Plane twice.
        let label = format!("(?![A-Za-z0-9-]{{64}}){edge}({inner}*{edge})?");
        format!("^{local}+(\\.{local}+)*@({label}\\.)+(?![0-9]+$){label}$(?![\\s\\S])")
    });
    &PATTERN
}

/// The characters of the Basic Multilingual Plane beyond ASCII that `is_printable_non_ascii`
/// refuses, as the ranges of a regular expression class (`\u0080-\u00a0\u00ad...`).
fn excluded_non_ascii_class() -> String {
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    for code in 0x80..=0xffff_u32 {
        let Some(c) = char::from_u32(code) else {
            continue; // surrogates
        };
        if is_printable_non_ascii(c) {
            continue;
        }
        match ranges.last_mut() {
            Some((_, end)) if *end + 1 == code => *end = code,
            _ => ranges.push((code, code)),
        }
    }
    ranges
        .iter()
        .map(|&(start, end)| match start == end {
            true => format!("\\u{start:04x}"),
            false => format!("\\u{start:04x}-\\u{end:04x}"),
        })
        .collect()
}

/// Checks the syntax of an email address; the error says what is wrong.
pub(crate) fn check_email(address: &str) -> Result<(), &'static str> {
    if address.len() > 254 {
        return Err("longer than 254 bytes");
    }
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Err("no '@'");
    };
    if local.is_empty() {
        return Err("empty local part");
    }
    if local.len() > 64 {
        return Err("local part longer than 64 bytes");
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err("misplaced '.' in the local part");
    }
    const LOCAL_SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~.";
    if !local.chars().all(|c| {
        c.is_ascii_alphanumeric() || LOCAL_SPECIALS.contains(c) || is_printable_non_ascii(c)
    }) {
        return Err("invalid character in the local part");
    }
    if domain.is_empty() {
        return Err("empty domain");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err("domain has no '.'");
    }
    if labels
        .last()
        .is_some_and(|last| !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("the last domain label is all digits (an IP address is no domain)");
    }
    for label in labels {
        // DNS holds 63 octets of a label: for one beyond ASCII, of its A-label (`xn--` and
        // its Punycode), which may be shorter than its UTF-8.
        let octets = if label.is_ascii() {
            label.len()
        } else {
            a_label_len(label)
        };
        if label.is_empty() || octets > 63 {
            return Err("empty or over-long domain label");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("domain label starts or ends with '-'");
        }
        if !label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || is_printable_non_ascii(c))
        {
            return Err("invalid character in the domain");
        }
    }
    Ok(())
}

/// A character beyond ASCII that an internationalised address may hold (RFC 6531): not
/// white space (U+00A0, U+3000), not a control (U+0085), not an invisible character
/// (zero-width spaces and joiners, direction marks and overrides, the byte order mark,
/// tags, variation selectors, the combining grapheme joiner, Hangul fillers, the blank
/// Braille pattern, shorthand format controls, musical formatting), which would make two
/// addresses look alike, and not a noncharacter (U+FFFE, U+FFFF and their kin).
/// The length of a label's A-label: `xn--` and the label's Punycode (RFC 3492 §6.3, the
/// encoder, counting what it would write). Exact for a label as registered (lower case,
/// NFC, mapped by UTS 46); compatibility forms (full-width letters, ligatures), which UTS
/// 46 maps first, are measured as written, which may be off either way.
fn a_label_len(label: &str) -> usize {
    const BASE: u64 = 36;
    const T_MIN: u64 = 1;
    const T_MAX: u64 = 26;
    const SKEW: u64 = 38;
    const DAMP: u64 = 700;
    let adapt = |delta: u64, n_points: u64, first: bool| {
        let mut delta = if first { delta / DAMP } else { delta / 2 };
        delta += delta / n_points;
        let mut k = 0;
        while delta > ((BASE - T_MIN) * T_MAX) / 2 {
            delta /= BASE - T_MIN;
            k += BASE;
        }
        k + (BASE - T_MIN + 1) * delta / (delta + SKEW)
    };
    let code_points: Vec<u64> = label.chars().map(|c| u64::from(c as u32)).collect();
    let n_basic = code_points.iter().filter(|&&c| c < 0x80).count() as u64;
    let mut written = n_basic + u64::from(n_basic > 0);
    let (mut n, mut delta, mut bias, mut handled) = (0x80_u64, 0_u64, 72_u64, n_basic);
    while (handled as usize) < code_points.len() {
        let Some(&m) = code_points.iter().filter(|&&c| c >= n).min() else {
            break;
        };
        delta += (m - n) * (handled + 1);
        n = m;
        for &c in &code_points {
            if c < n {
                delta += 1;
            }
            if c == n {
                let mut q = delta;
                let mut k = BASE;
                loop {
                    let t = if k <= bias {
                        T_MIN
                    } else if k >= bias + T_MAX {
                        T_MAX
                    } else {
                        k - bias
                    };
                    if q < t {
                        break;
                    }
                    written += 1;
                    q = (q - t) / (BASE - t);
                    k += BASE;
                }
                written += 1;
                bias = adapt(delta, handled + 1, handled == n_basic);
                delta = 0;
                handled += 1;
            }
        }
        delta += 1;
        n += 1;
    }
    usize::try_from(written + 4).unwrap_or(usize::MAX)
}

fn is_printable_non_ascii(c: char) -> bool {
    let invisible = matches!(
        c,
        '\u{ad}'
            | '\u{34f}'
            | '\u{61c}'
            | '\u{115f}'..='\u{1160}'
            | '\u{17b4}'..='\u{17b5}'
            | '\u{180b}'..='\u{180f}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{2800}'
            | '\u{3164}'
            | '\u{fe00}'..='\u{fe0f}'
            | '\u{feff}'
            | '\u{ffa0}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0000}'..='\u{e0fff}'
    );
    let noncharacter = matches!(c, '\u{fdd0}'..='\u{fdef}') || (u32::from(c) & 0xfffe) == 0xfffe;
    !c.is_ascii() && !c.is_whitespace() && !c.is_control() && !invisible && !noncharacter
}

impl std::str::FromStr for Timestamp {
    type Err = FieldError;
    fn from_str(text: &str) -> Result<Timestamp, FieldError> {
        Timestamp::parse(text)
    }
}

/// An RFC 3339 date-time, e.g. `2026-11-27T09:00:00Z` or `2026-11-27T10:00:00.250+01:00`.
///
/// Equality is of the text, as written; order is by instant, then by text, so that
/// `09:00:00.5Z` sorts after `09:00:00Z` and `10:00:00+01:00` next to `09:00:00Z`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Timestamp(String);

impl Timestamp {
    /// Validates `text`.
    pub fn parse(text: impl Into<String>) -> Result<Timestamp, FieldError> {
        let text = text.into();
        match check_rfc3339(&text) {
            Ok(()) => Ok(Timestamp(text)),
            Err(reason) => Err(FieldError::InvalidTimestamp {
                found: text,
                reason,
            }),
        }
    }

    /// The current time from the system clock, in UTC with whole seconds.
    pub fn now() -> Timestamp {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Timestamp::utc(secs.min(Timestamp::MAX_UNIX_SECONDS))
    }

    /// The last second RFC 3339 can write: 9999-12-31T23:59:59Z.
    pub const MAX_UNIX_SECONDS: u64 = 253_402_300_799;

    /// The UTC date-time `secs` seconds after the Unix epoch; past 9999-12-31T23:59:59Z
    /// (milliseconds given as seconds, say) is an error, since RFC 3339 has four digits
    /// for the year.
    pub fn from_unix_seconds(secs: u64) -> Result<Timestamp, FieldError> {
        if secs > Timestamp::MAX_UNIX_SECONDS {
            return Err(FieldError::InvalidTimestamp {
                found: format!("{secs} seconds after the Unix epoch"),
                reason: "after 9999-12-31T23:59:59Z, where RFC 3339 ends (milliseconds given as seconds?)",
            });
        }
        Ok(Timestamp::utc(secs))
    }

    /// The UTC date-time of `time`, to the millisecond (`2026-11-27T09:00:00.250Z`; no
    /// fraction when it is zero): what an outbox relay or an import sets as an event's
    /// time. (EventBridge keeps whole seconds of an event's `time`; a detail's timestamps
    /// keep what they are given.) Before the Unix epoch or past 9999-12-31T23:59:59Z is an
    /// error.
    pub fn from_system_time(time: std::time::SystemTime) -> Result<Timestamp, FieldError> {
        let invalid = |reason| FieldError::InvalidTimestamp {
            found: format!("{time:?}"),
            reason,
        };
        let since_epoch = time
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| invalid("before the Unix epoch"))?;
        if since_epoch.as_secs() > Timestamp::MAX_UNIX_SECONDS {
            return Err(invalid("after 9999-12-31T23:59:59Z, where RFC 3339 ends"));
        }
        let Timestamp(text) = Timestamp::utc(since_epoch.as_secs());
        Ok(match since_epoch.subsec_millis() {
            0 => Timestamp(text),
            millis => Timestamp(format!("{}.{millis:03}Z", text.trim_end_matches('Z'))),
        })
    }

    fn utc(secs: u64) -> Timestamp {
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        let (year, month, day) = civil_from_days(days);
        Timestamp(format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
            rem / 3600,
            rem / 60 % 60,
            rem % 60
        ))
    }

    /// The timestamp as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The instant: whole seconds since the Unix epoch in UTC, whether it is a leap second
    /// (`:60` counts as the second `:59` it follows, and sorts after all of it), and the
    /// fraction's digits without trailing zeros, which compare as text as they do as
    /// numbers.
    fn instant(&self) -> (i64, bool, &str) {
        let text = self.0.as_str();
        // The text was checked: these fields are digits.
        let field = |range: std::ops::Range<usize>| text[range].parse::<i64>().unwrap_or(0);
        let days = days_from_civil(field(0..4), field(5..7), field(8..10));
        let leap = field(17..19) == 60;
        let second = if leap { 59 } else { field(17..19) };
        let mut seconds = days * 86_400 + field(11..13) * 3600 + field(14..16) * 60 + second;
        let mut rest = &text[19..];
        let mut fraction = "";
        if let Some(digits) = rest.strip_prefix('.') {
            let n_digits = digits.bytes().take_while(u8::is_ascii_digit).count();
            fraction = digits[..n_digits].trim_end_matches('0');
            rest = &digits[n_digits..];
        }
        if let Some(sign @ (b'+' | b'-')) = rest.bytes().next() {
            let offset = field(text.len() - 5..text.len() - 3) * 3600
                + field(text.len() - 2..text.len()) * 60;
            seconds -= if sign == b'-' { -offset } else { offset };
        }
        (seconds, leap, fraction)
    }
}

impl Ord for Timestamp {
    fn cmp(&self, other: &Timestamp) -> std::cmp::Ordering {
        self.instant()
            .cmp(&other.instant())
            .then_with(|| self.0.cmp(&other.0))
    }
}

impl PartialOrd for Timestamp {
    fn partial_cmp(&self, other: &Timestamp) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (the inverse of
/// [`civil_from_days`]).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl TryFrom<String> for Timestamp {
    type Error = FieldError;
    fn try_from(value: String) -> Result<Timestamp, FieldError> {
        Timestamp::parse(value)
    }
}

impl From<Timestamp> for String {
    fn from(value: Timestamp) -> String {
        value.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl JsonSchema for Timestamp {
    fn schema_name() -> Cow<'static, str> {
        "Timestamp".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "format": "date-time",
            "pattern": RFC3339_PATTERN,
        })
    }
}

/// What `check_rfc3339` reads, for the schemas: `format: date-time` alone lets some
/// validators take a space for the `T`, or offsets without their colon, and others skip
/// formats altogether.
pub(crate) const RFC3339_PATTERN: &str = "^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$(?![\\s\\S])";

/// Howard Hinnant's days-to-civil conversion (proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Checks RFC 3339 `date-time` syntax and field ranges.
pub(crate) fn check_rfc3339(text: &str) -> Result<(), &'static str> {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        let slice = b.get(range)?;
        if !slice.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(slice.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
    };
    if b.len() < 20 {
        return Err("expected YYYY-MM-DDTHH:MM:SS then Z or an offset");
    }
    let (Some(year), Some(month), Some(day)) = (digits(0..4), digits(5..7), digits(8..10)) else {
        return Err("expected YYYY-MM-DD");
    };
    if b[4] != b'-' || b[7] != b'-' {
        return Err("expected YYYY-MM-DD");
    }
    if !matches!(b[10], b'T' | b't') {
        return Err("expected 'T' between date and time");
    }
    let (Some(hour), Some(minute), Some(second)) = (digits(11..13), digits(14..16), digits(17..19))
    else {
        return Err("expected HH:MM:SS");
    };
    if b[13] != b':' || b[16] != b':' {
        return Err("expected HH:MM:SS");
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err("month out of range"),
    };
    if day == 0 || day > days_in_month {
        return Err("day out of range");
    }
    if hour > 23 || minute > 59 || second > 60 {
        return Err("time of day out of range");
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let n_digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if n_digits == 0 {
            return Err("empty fraction of a second");
        }
        rest = &fraction[n_digits..];
    }
    // The offset east of UTC, in minutes.
    let offset: i64 = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2]
            if [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit()) =>
        {
            let offset_hours = i64::from(h1 - b'0') * 10 + i64::from(h2 - b'0');
            let offset_minutes = i64::from(m1 - b'0') * 10 + i64::from(m2 - b'0');
            if offset_hours > 23 || offset_minutes > 59 {
                return Err("offset out of range");
            }
            let offset = offset_hours * 60 + offset_minutes;
            if *sign == b'-' { -offset } else { offset }
        }
        _ => return Err("expected 'Z' or an offset like +01:00"),
    };
    // The instant must have a year of 1 to 9999 in UTC too: EventBridge's clients send
    // `Time` as seconds since the epoch, and the service reads those only as RFC 3339 can
    // write them. (Year 0000, or 0001-01-01T00:30:00+01:00, is refused with its request.)
    let utc_minutes_of_day = i64::from(hour * 60 + minute) - offset;
    if year == 0
        || (year, month, day) == (1, 1, 1) && utc_minutes_of_day < 0
        || (year, month, day) == (9999, 12, 31) && utc_minutes_of_day >= 24 * 60
    {
        return Err("outside the years 0001 to 9999 in UTC");
    }
    // RFC 3339 (5.7): a leap second ends a UTC day, and leap seconds are inserted only at
    // the end of a month, so :60 is 23:59:60 UTC on a month's last day. (Other times with
    // :60 do not exist, and EventBridge's clients refuse them.)
    if second == 60 {
        let utc_minutes = i64::from(hour * 60 + minute) - offset;
        // The UTC day is the local one, or the one before or after it.
        let last_day_in_utc = match utc_minutes.div_euclid(24 * 60) {
            0 => day == days_in_month,
            -1 => day == 1,
            1 => day + 1 == days_in_month,
            _ => false,
        };
        if utc_minutes.rem_euclid(24 * 60) != 24 * 60 - 1 || !last_day_in_utc {
            return Err("a leap second (:60) falls only at 23:59:60 UTC on a month's last day");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_labels_are_measured_as_dns_holds_them() {
        // RFC 3492 §7.1 (A) and (J): "xn--egbpdaj6bu4bxfgehfvwxn" and
        // "xn--ihqwcrb4cv8a8dqg056pqjye"; then the audit's label of 22 × 例.
        assert_eq!(
            super::a_label_len(
                "\u{644}\u{64a}\u{647}\u{645}\u{627}\u{628}\u{62a}\u{643}\u{644}\u{645}\u{648}\u{634}\u{639}\u{631}\u{628}\u{64a}\u{61f}"
            ),
            "xn--egbpdaj6bu4bxfgehfvwxn".len()
        );
        assert_eq!(
            super::a_label_len(
                "\u{4ed6}\u{4eec}\u{4e3a}\u{4ec0}\u{4e48}\u{4e0d}\u{8bf4}\u{4e2d}\u{6587}"
            ),
            "xn--ihqwcrb4cv8a8dqg056pqjye".len()
        );
        assert_eq!(super::a_label_len(&"例".repeat(22)), 28);
        // Basic code points count, with their delimiter: "bücher" is "xn--bcher-kva".
        assert_eq!(super::a_label_len("bücher"), "xn--bcher-kva".len());
        let email = |domain: String| super::check_email(&format!("ada@{domain}.cn"));
        assert_eq!(email("例".repeat(22)), Ok(()));
        assert_eq!(
            email("例".repeat(70)),
            Err("empty or over-long domain label")
        );
        assert_eq!(
            email("a".repeat(64)),
            Err("empty or over-long domain label")
        );
    }

    use super::*;

    #[track_caller]
    fn check_email_verdict(address: &str, expect: Result<(), &str>) {
        assert_eq!(check_email(address), expect, "{address}");
    }

    /// The length limit counts characters, as the schema's `maxLength` does.
    #[test]
    fn user_ids() {
        assert!(UserId::new("é".repeat(128)).is_ok());
        assert_eq!(
            UserId::new("é".repeat(129)).unwrap_err().to_string(),
            "user id is 129 characters long, the limit is 128"
        );
        assert!(matches!(UserId::new(" \t"), Err(FieldError::EmptyUserId)));
        assert_eq!(UserId::new(" u ").unwrap().as_str(), " u ");
    }

    #[test]
    fn emails() {
        check_email_verdict("ada@example.com", Ok(()));
        check_email_verdict("a.b+tag@mail.example.co.uk", Ok(()));
        check_email_verdict("ada@example", Err("domain has no '.'"));
        let all_digits = "the last domain label is all digits (an IP address is no domain)";
        check_email_verdict("ada@192.0.2.1", Err(all_digits));
        check_email_verdict("ada@example.123", Err(all_digits));
        check_email_verdict("ada@123.example", Ok(()));
        check_email_verdict("@example.com", Err("empty local part"));
        check_email_verdict("ada.example.com", Err("no '@'"));
        check_email_verdict("ada..b@example.com", Err("misplaced '.' in the local part"));
        check_email_verdict("ada@-x.com", Err("domain label starts or ends with '-'"));
        check_email_verdict(
            "a da@example.com",
            Err("invalid character in the local part"),
        );
        check_email_verdict("ada@exa_mple.com", Err("invalid character in the domain"));
        // Internationalised addresses, but nothing invisible or blank beyond ASCII.
        check_email_verdict("josé@exämple.com", Ok(()));
        check_email_verdict("用户@例子.广告", Ok(()));
        // Lengths are in bytes of UTF-8, as RFC 5321 counts them, not in characters.
        let local = "é".repeat(32);
        check_email_verdict(&format!("{local}@example.com"), Ok(()));
        check_email_verdict(
            &format!("{local}e@example.com"),
            Err("local part longer than 64 bytes"),
        );
        // Three labels of 21 characters (63 bytes) and one of 19: 249 bytes, 82 characters.
        let domain = format!("{0}.{0}.{0}.{1}", "例".repeat(21), "例".repeat(19));
        check_email_verdict(&format!("a@{domain}.cn"), Ok(()));
        check_email_verdict(&format!("ab@{domain}.cn"), Err("longer than 254 bytes"));
        for (address, reason) in [
            ("a\u{a0}b@c.com", "invalid character in the local part"),
            ("a\u{202e}@b.com", "invalid character in the local part"),
            ("a@b.com\u{85}", "invalid character in the domain"),
            ("a@b.com\u{200b}", "invalid character in the domain"),
            ("a@b.co\u{3000}m", "invalid character in the domain"),
            (
                "a\u{fe0f}@example.com",
                "invalid character in the local part",
            ),
            (
                "a\u{34f}@example.com",
                "invalid character in the local part",
            ),
            (
                "a\u{3164}@example.com",
                "invalid character in the local part",
            ),
            (
                "a\u{2800}@example.com",
                "invalid character in the local part",
            ),
            ("a@exa\u{1bca0}mple.com", "invalid character in the domain"),
            ("a@exa\u{1d173}mple.com", "invalid character in the domain"),
            ("a@example.com\u{ffff}", "invalid character in the domain"),
            ("a@exa\u{e0100}mple.com", "invalid character in the domain"),
        ] {
            check_email_verdict(address, Err(reason));
        }
    }

    #[test]
    fn timestamps() {
        for ok in [
            "2026-11-27T09:00:00Z",
            "2024-02-29T23:59:59.123456+05:30",
            "2026-01-01t00:00:00z",
            "2016-12-31T23:59:60Z",
            "2017-01-01T05:29:60.5+05:30",
            "2016-12-31T18:59:60-05:00",
            "2015-06-30T23:59:60Z",
            "0001-01-01T00:00:00Z",
            "0001-01-01T00:30:00-01:00",
            "9999-12-31T23:59:59Z",
            "9999-12-31T23:30:00+01:00",
        ] {
            assert_eq!(check_rfc3339(ok), Ok(()), "{ok}");
        }
        for (bad, reason) in [
            (
                "2026-11-27",
                "expected YYYY-MM-DDTHH:MM:SS then Z or an offset",
            ),
            ("2025-02-29T00:00:00Z", "day out of range"),
            ("2026-13-01T00:00:00Z", "month out of range"),
            ("2026-11-27 09:00:00Z", "expected 'T' between date and time"),
            (
                "2026-11-27T09:00:00",
                "expected YYYY-MM-DDTHH:MM:SS then Z or an offset",
            ),
            ("2026-11-27T09:00:00.Z", "empty fraction of a second"),
            (
                "2026-06-30T12:00:60Z",
                "a leap second (:60) falls only at 23:59:60 UTC on a month's last day",
            ),
            (
                "2026-11-27T23:59:60Z",
                "a leap second (:60) falls only at 23:59:60 UTC on a month's last day",
            ),
            (
                "2016-12-30T22:59:60-01:00",
                "a leap second (:60) falls only at 23:59:60 UTC on a month's last day",
            ),
            (
                "2016-12-31T23:59:60+01:00",
                "a leap second (:60) falls only at 23:59:60 UTC on a month's last day",
            ),
            (
                "2026-11-27T09:00:00+0100",
                "expected 'Z' or an offset like +01:00",
            ),
            // Instants that EventBridge's epoch seconds cannot carry.
            (
                "0000-01-01T00:00:00Z",
                "outside the years 0001 to 9999 in UTC",
            ),
            (
                "0001-01-01T00:30:00+01:00",
                "outside the years 0001 to 9999 in UTC",
            ),
            (
                "9999-12-31T23:30:00-01:00",
                "outside the years 0001 to 9999 in UTC",
            ),
        ] {
            assert_eq!(check_rfc3339(bad), Err(reason), "{bad}");
        }
    }

    #[test]
    fn unix_seconds_render_as_utc() {
        let utc = |secs| Timestamp::from_unix_seconds(secs).map(|t| t.as_str().to_owned());
        assert_eq!(utc(0).unwrap(), "1970-01-01T00:00:00Z");
        assert_eq!(utc(1_709_208_000).unwrap(), "2024-02-29T12:00:00Z");
        assert_eq!(utc(253_402_300_799).unwrap(), "9999-12-31T23:59:59Z");
        // Milliseconds given as seconds: year 57876, which RFC 3339 cannot write (it gave
        // a five-digit year that the type itself refuses).
        assert_eq!(
            utc(1_764_234_000_000).unwrap_err().to_string(),
            "invalid RFC 3339 timestamp \"1764234000000 seconds after the Unix epoch\": after \
             9999-12-31T23:59:59Z, where RFC 3339 ends (milliseconds given as seconds?)"
        );
    }

    #[test]
    fn timestamps_from_the_system_clock_keep_milliseconds() {
        use std::time::{Duration, UNIX_EPOCH};
        let at = |secs, millis| UNIX_EPOCH + Duration::from_millis(secs * 1000 + millis);
        let text = |time| Timestamp::from_system_time(time).map(|t| t.as_str().to_owned());
        assert_eq!(text(at(1_795_770_000, 0)).unwrap(), "2026-11-27T09:00:00Z");
        assert_eq!(
            text(at(1_795_770_000, 250)).unwrap(),
            "2026-11-27T09:00:00.250Z"
        );
        assert_eq!(text(at(0, 7)).unwrap(), "1970-01-01T00:00:00.007Z");
        assert!(text(UNIX_EPOCH - Duration::from_secs(1)).is_err());
        assert!(text(at(Timestamp::MAX_UNIX_SECONDS + 1, 0)).is_err());
        let parsed: Timestamp = "2026-11-27T09:00:00.250Z".parse().unwrap();
        assert_eq!(
            parsed,
            Timestamp::from_system_time(at(1_795_770_000, 250)).unwrap()
        );
        assert!("yesterday".parse::<Timestamp>().is_err());
    }

    #[test]
    fn timestamps_order_by_instant() {
        let t = |text: &str| Timestamp::parse(text).unwrap();
        let mut times = vec![
            t("2026-11-27T09:00:00.5Z"),
            t("2026-11-27T10:00:00+01:00"),
            t("2026-11-27T09:00:00.25Z"),
            t("2026-11-27T08:59:59.999-00:00"),
            t("2026-11-27T09:00:00Z"),
            t("2026-11-26T23:30:00-10:00"),
            t("2026-11-27T09:00:00.50Z"),
            t("2016-12-31T23:59:60Z"),
            t("2017-01-01T00:00:00Z"),
            t("2016-12-31T23:59:60.5Z"),
            t("2016-12-31T23:59:59.9Z"),
            t("2017-01-01T00:00:00.2Z"),
        ];
        times.sort();
        let texts: Vec<&str> = times.iter().map(Timestamp::as_str).collect();
        assert_eq!(
            texts,
            [
                "2016-12-31T23:59:59.9Z",
                // The leap second, and its half, come before the next day.
                "2016-12-31T23:59:60Z",
                "2016-12-31T23:59:60.5Z",
                "2017-01-01T00:00:00Z",
                "2017-01-01T00:00:00.2Z",
                "2026-11-27T08:59:59.999-00:00",
                "2026-11-27T09:00:00Z",
                "2026-11-27T10:00:00+01:00",
                "2026-11-27T09:00:00.25Z",
                "2026-11-27T09:00:00.50Z",
                "2026-11-27T09:00:00.5Z",
                "2026-11-26T23:30:00-10:00",
            ]
        );
        // Order agrees with equality: equal only when the texts are.
        assert_ne!(t("2026-11-27T09:00:00Z"), t("2026-11-27T10:00:00+01:00"));
        assert_eq!(
            t("2026-11-27T09:00:00Z").cmp(&t("2026-11-27T09:00:00Z")),
            std::cmp::Ordering::Equal
        );
        // The instant agrees with the clock's own conversion, across eras and leap years.
        for secs in [
            0,
            59,
            86_399,
            951_782_400,
            1_798_761_599,
            4_107_542_400,
            253_402_300_799,
        ] {
            assert_eq!(
                Timestamp::from_unix_seconds(secs).unwrap().instant(),
                (secs as i64, false, "")
            );
        }
    }

    #[test]
    fn email_debug_hides_the_address() {
        let email = Email::new("ada@example.com").unwrap();
        assert_eq!(format!("{email:?}"), "Email(<redacted>)");
    }
}
