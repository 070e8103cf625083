//! A small JSON reader that keeps what serde_json's `Value` loses: the exact text of every
//! number and every occurrence of a duplicate key, in document order. Patterns are read with
//! it (corpus §3.1: the last duplicate wins, and numbers compare by their written text), and
//! so are events in the reference interpreter. The matcher's hot path has its own flattener
//! in `flatten.rs` that shares the scanning helpers below.

use std::fmt;

/// A parsed JSON value. Numbers keep their text; objects keep every member in order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

/// A JSON syntax error: what was wrong and the byte offset where it was noticed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub(crate) message: String,
    pub(crate) offset: usize,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.message, self.offset)
    }
}

/// Parses one JSON document; text after it (other than whitespace) is an error.
pub(crate) fn parse(text: &[u8], max_depth: usize) -> Result<Json, SyntaxError> {
    let mut reader = Reader {
        bytes: text,
        pos: 0,
        max_depth,
    };
    reader.skip_ws();
    let value = reader.value(0)?;
    reader.skip_ws();
    if reader.pos != text.len() {
        return Err(reader.error("unexpected text after the JSON value"));
    }
    Ok(value)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    max_depth: usize,
}

impl Reader<'_> {
    fn error(&self, message: &str) -> SyntaxError {
        SyntaxError {
            message: message.to_owned(),
            offset: self.pos,
        }
    }

    fn too_deep(&self) -> SyntaxError {
        let message = format!(
            "nesting is deeper than {} levels, the most a pattern is read to (whatever max_nesting allows)",
            self.max_depth
        );
        self.error(&message)
    }

    fn skip_ws(&mut self) {
        self.pos = skip_ws(self.bytes, self.pos);
    }

    fn value(&mut self, depth: usize) -> Result<Json, SyntaxError> {
        match self.bytes.get(self.pos) {
            None => Err(self.error("unexpected end of input, expected a value")),
            Some(b'{') => {
                if depth >= self.max_depth {
                    return Err(self.too_deep());
                }
                self.pos += 1;
                let mut members = Vec::new();
                self.skip_ws();
                if self.bytes.get(self.pos) == Some(&b'}') {
                    self.pos += 1;
                    return Ok(Json::Object(members));
                }
                loop {
                    self.skip_ws();
                    if self.bytes.get(self.pos) != Some(&b'"') {
                        return Err(self.error("expected a double-quoted field name"));
                    }
                    let key = self.string()?;
                    self.skip_ws();
                    if self.bytes.get(self.pos) != Some(&b':') {
                        return Err(self.error("expected ':' after a field name"));
                    }
                    self.pos += 1;
                    self.skip_ws();
                    let value = self.value(depth + 1)?;
                    members.push((key, value));
                    self.skip_ws();
                    match self.bytes.get(self.pos) {
                        Some(b',') => self.pos += 1,
                        Some(b'}') => {
                            self.pos += 1;
                            return Ok(Json::Object(members));
                        }
                        None => return Err(self.error("unexpected end of input in an object")),
                        Some(_) => return Err(self.error("expected ',' or '}' in an object")),
                    }
                }
            }
            Some(b'[') => {
                if depth >= self.max_depth {
                    return Err(self.too_deep());
                }
                self.pos += 1;
                let mut elements = Vec::new();
                self.skip_ws();
                if self.bytes.get(self.pos) == Some(&b']') {
                    self.pos += 1;
                    return Ok(Json::Array(elements));
                }
                loop {
                    self.skip_ws();
                    elements.push(self.value(depth + 1)?);
                    self.skip_ws();
                    match self.bytes.get(self.pos) {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(Json::Array(elements));
                        }
                        None => return Err(self.error("unexpected end of input in an array")),
                        Some(_) => return Err(self.error("expected ',' or ']' in an array")),
                    }
                }
            }
            Some(b'"') => Ok(Json::String(self.string()?)),
            Some(b't') => self.literal(b"true", Json::Bool(true)),
            Some(b'f') => self.literal(b"false", Json::Bool(false)),
            Some(b'n') => self.literal(b"null", Json::Null),
            Some(b'-' | b'0'..=b'9') => {
                let end = scan_number(self.bytes, self.pos).map_err(|offset| SyntaxError {
                    message: "malformed number".to_owned(),
                    offset,
                })?;
                let text = std::str::from_utf8(&self.bytes[self.pos..end])
                    .expect("a scanned number is ASCII");
                self.pos = end;
                Ok(Json::Number(text.to_owned()))
            }
            Some(_) => Err(self.error("unexpected character, expected a value")),
        }
    }

    fn literal(&mut self, word: &[u8], value: Json) -> Result<Json, SyntaxError> {
        if self.bytes[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.error("unrecognized token"))
        }
    }

    fn string(&mut self) -> Result<String, SyntaxError> {
        let (end, has_escape) =
            scan_string(self.bytes, self.pos).map_err(|(offset, message)| SyntaxError {
                message: message.to_owned(),
                offset,
            })?;
        let raw = &self.bytes[self.pos + 1..end - 1];
        self.pos = end;
        let mut out = Vec::with_capacity(raw.len());
        if has_escape {
            unescape_into(raw, &mut out);
        } else {
            out.extend_from_slice(raw);
        }
        // Cannot fail (the scan checked the UTF-8 and unescaping writes characters); an
        // error all the same rather than a panic.
        String::from_utf8(out).map_err(|_| SyntaxError {
            message: "invalid UTF-8 in a string".to_owned(),
            offset: end,
        })
    }
}

/// Returns the first position at or after `pos` that is not JSON whitespace.
#[inline]
pub(crate) fn skip_ws(bytes: &[u8], mut pos: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\r' | b'\t') = bytes.get(pos) {
        pos += 1;
    }
    pos
}

/// Scans the string starting at the quote at `start`. Returns the position just past the
/// closing quote and whether the string holds any escape. Escapes and UTF-8 are validated
/// here, so [`unescape_into`] cannot fail and the string's bytes are UTF-8 (outside strings
/// JSON is ASCII, so a document whose strings all pass is UTF-8 throughout).
#[inline]
pub(crate) fn scan_string(
    bytes: &[u8],
    start: usize,
) -> Result<(usize, bool), (usize, &'static str)> {
    // The usual string, plain ASCII without escapes, ends at its first special byte: found
    // here, inlined; anything else goes on in the full scan from that byte.
    let mut pos = start + 1;
    while let Some(chunk) = bytes.get(pos..pos + 8) {
        let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let special = special_bytes(word);
        if special != 0 {
            pos += (special.trailing_zeros() / 8) as usize;
            if bytes[pos] == b'"' {
                return Ok((pos + 1, false));
            }
            break;
        }
        pos += 8;
    }
    scan_string_in_full(bytes, pos)
}

/// [`scan_string`] for any string (escapes, multi-byte characters, errors, the last bytes
/// of the input), going on from `pos`, before which the string holds only plain bytes.
#[inline(never)]
fn scan_string_in_full(
    bytes: &[u8],
    mut pos: usize,
) -> Result<(usize, bool), (usize, &'static str)> {
    let mut has_escape = false;
    loop {
        // Skip eight ordinary bytes at a time (no quote, no backslash, no control byte, no
        // byte of a multi-byte character), then jump to the first special one.
        while let Some(chunk) = bytes.get(pos..pos + 8) {
            let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
            let special = special_bytes(word);
            if special != 0 {
                pos += (special.trailing_zeros() / 8) as usize;
                break;
            }
            pos += 8;
        }
        match bytes.get(pos) {
            None => return Err((pos, "unexpected end of input in a string")),
            Some(b'"') => return Ok((pos + 1, has_escape)),
            Some(b'\\') => {
                has_escape = true;
                match bytes.get(pos + 1) {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => pos += 2,
                    Some(b'u') => {
                        let hex = bytes
                            .get(pos + 2..pos + 6)
                            .ok_or((pos, "truncated \\u escape"))?;
                        if !hex.iter().all(u8::is_ascii_hexdigit) {
                            return Err((pos, "invalid \\u escape"));
                        }
                        pos += 6;
                    }
                    _ => return Err((pos, "invalid escape in a string")),
                }
            }
            Some(0..=0x1f) => return Err((pos, "control character in a string")),
            Some(&lead @ 0x80..) => {
                let width = match lead {
                    0xc2..=0xdf => 2,
                    0xe0..=0xef => 3,
                    0xf0..=0xf4 => 4,
                    _ => 0,
                };
                // The standard check catches overlong forms and surrogates.
                match bytes.get(pos..pos + width).map(std::str::from_utf8) {
                    Some(Ok(_)) if width > 0 => pos += width,
                    None if width > 0
                        && std::str::from_utf8(&bytes[pos..])
                            .is_err_and(|e| e.error_len().is_none()) =>
                    {
                        return Err((bytes.len(), "unexpected end of input in a string"));
                    }
                    _ => return Err((pos, "invalid UTF-8 in a string")),
                }
            }
            Some(_) => pos += 1,
        }
    }
}

/// The high bit of each byte of `word` that may be `"`, `\\`, below 0x20 or above 0x7f.
/// The lowest set bit is exact: flags can be spurious only above a true one, where a borrow
/// ran on, so `trailing_zeros() / 8` is the first special byte.
#[inline]
fn special_bytes(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // A byte's high bit ends up set when it is a quote or a backslash (zero after the
    // xor, so the subtraction wraps), below 0x20 (likewise), or from 0x80 up (its xor
    // with the quote is above 0x80, except for 0xa2, whose xor with the backslash is).
    // A borrow only leaves a byte that wrapped, so it can flag bytes above a true
    // special byte, never below.
    ((word ^ (ONES * u64::from(b'"'))).wrapping_sub(ONES)
        | (word ^ (ONES * u64::from(b'\\'))).wrapping_sub(ONES)
        | word.wrapping_sub(ONES * 0x20))
        & HIGHS
}

fn hex4(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0, |acc, b| {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => b - b'A' + 10,
        };
        acc * 16 + u32::from(digit)
    })
}

/// Decodes the escapes of a string body already checked by [`scan_string`]. A lone UTF-16
/// surrogate becomes U+FFFD, as in most JSON readers.
pub(crate) fn unescape_into(raw: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let c = raw[i + 1];
        i += 2;
        let ch = match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            _ => {
                let first = hex4(&raw[i..i + 4]);
                i += 4;
                if (0xD800..0xDC00).contains(&first)
                    && raw.get(i) == Some(&b'\\')
                    && raw.get(i + 1) == Some(&b'u')
                {
                    let second = hex4(&raw[i + 2..i + 6]);
                    if (0xDC00..0xE000).contains(&second) {
                        i += 6;
                        let code = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                        char::from_u32(code).unwrap_or('\u{FFFD}')
                    } else {
                        '\u{FFFD}'
                    }
                } else {
                    char::from_u32(first).unwrap_or('\u{FFFD}')
                }
            }
        };
        let mut buf = [0; 4];
        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
    }
}

/// Scans a JSON number starting at `start`; returns the position after it, or the offset
/// of the first bad byte.
#[inline]
pub(crate) fn scan_number(bytes: &[u8], start: usize) -> Result<usize, usize> {
    let mut pos = start;
    if bytes.get(pos) == Some(&b'-') {
        pos += 1;
    }
    match bytes.get(pos) {
        Some(b'0') => pos += 1,
        Some(b'1'..=b'9') => {
            while let Some(b'0'..=b'9') = bytes.get(pos) {
                pos += 1;
            }
        }
        _ => return Err(pos),
    }
    if bytes.get(pos) == Some(&b'.') {
        pos += 1;
        if !matches!(bytes.get(pos), Some(b'0'..=b'9')) {
            return Err(pos);
        }
        while let Some(b'0'..=b'9') = bytes.get(pos) {
            pos += 1;
        }
    }
    if let Some(b'e' | b'E') = bytes.get(pos) {
        pos += 1;
        if let Some(b'+' | b'-') = bytes.get(pos) {
            pos += 1;
        }
        if !matches!(bytes.get(pos), Some(b'0'..=b'9')) {
            return Err(pos);
        }
        while let Some(b'0'..=b'9') = bytes.get(pos) {
            pos += 1;
        }
    }
    Ok(pos)
}

/// Writes `s` as a JSON string literal.
pub(crate) fn write_string(out: &mut String, s: &str) {
    write_quoted(out, s, |c| (c as u32) < 0x20);
}

/// Writes `s` as a JSON string literal for people to read on a terminal: like
/// [`write_string`], but hidden characters are escaped too (`\u202e`), so that a key or a
/// value can neither start a new line nor reorder or recolour the text around it.
pub(crate) fn write_visible_string(out: &mut String, s: &str) {
    write_quoted(out, s, is_hidden);
}

/// Compact JSON text, such as `Pattern::to_json` writes, with its hidden characters
/// escaped. Outside strings compact JSON holds none of them, and inside a string the
/// escape means the same character, so the text still reads as the same JSON.
pub(crate) fn unhide(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if is_hidden(c) {
            write_escape(&mut out, c);
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether a terminal would show `c` other than as itself: the control characters (C0,
/// DEL and C1, where escape sequences start), the line and paragraph separators, and the
/// bidirectional formatting characters, which reorder the text around them
/// (CVE-2021-42574).
pub(crate) fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

fn write_quoted(out: &mut String, s: &str, escape: impl Fn(char) -> bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if escape(c) => write_escape(out, c),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `\u` and four hex digits: every character escaped here is in the Basic Multilingual
/// Plane.
fn write_escape(out: &mut String, c: char) {
    use fmt::Write;
    let _ = write!(out, "\\u{:04x}", c as u32);
}

impl Json {
    /// Renders compact JSON, keeping number text and duplicate keys.
    pub(crate) fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(n) => out.push_str(n),
            Json::String(s) => write_string(out, s),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Json::Object(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_string(out, k);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}

/// JSON text without the white space between its tokens: strings and numbers stay exactly
/// as written (escapes included), so a pattern kept as text loses nothing but layout.
///
/// EventBridge counts a pattern's characters as it is sent; a pattern written across
/// indented lines in a file is measured in this form, as CloudFormation sends an
/// `EventPattern` object. Meant for text already read as JSON: in text that is not, white
/// space between two numbers (`[1 2]`) would join them.
///
/// ```
/// assert_eq!(
///     router::pattern::compact_json("{\n  \"a b\": [ 1.50 ,\n \"x\\\" y\" ]\n}"),
///     r#"{"a b":[1.50,"x\" y"]}"#
/// );
/// ```
pub fn compact_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The word test finds the first special byte exactly, whatever follows it: words
    /// drawn from bytes at the edges of each class, against a byte-by-byte scan.
    #[test]
    fn special_bytes_finds_the_first_special_byte() {
        let edges = [
            0x00, 0x01, 0x1f, 0x20, 0x21, b'"', 0x23, 0x5b, b'\\', 0x5d, b'a', 0x7e, 0x7f, 0x80,
            0x81, 0x9f, 0xa0, 0xc2, 0xfe, 0xff,
        ];
        let naive = |bytes: &[u8; 8]| {
            bytes
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || !(0x20..0x80).contains(&b))
                .unwrap_or(8)
        };
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..400_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut bytes = [0u8; 8];
            for (i, b) in bytes.iter_mut().enumerate() {
                let pick = (state >> (i * 8)) as usize;
                // Mostly ordinary bytes, so that specials come one, two or three at a time.
                *b = if pick.is_multiple_of(3) {
                    edges[(pick >> 2) % edges.len()]
                } else {
                    b'a' + (pick % 26) as u8
                };
            }
            let special = special_bytes(u64::from_le_bytes(bytes));
            let found = if special == 0 {
                8
            } else {
                (special.trailing_zeros() / 8) as usize
            };
            assert_eq!(found, naive(&bytes), "{bytes:02x?}");
        }
    }

    #[test]
    fn keeps_number_text_and_duplicate_keys() {
        let json = parse(br#"{"a": 3.0e2, "a": [1, "x\u00e9"]}"#, 64).unwrap();
        let mut out = String::new();
        json.write(&mut out);
        assert_eq!(out, r#"{"a":3.0e2,"a":[1,"xé"]}"#);
    }

    #[test]
    fn rejects_malformed_text() {
        for text in [
            "", "{", "{\"a\"}", "[1,]", "01", "1.", "-", "\"\\x\"", "{} x", "tru", "\"a",
        ] {
            assert!(parse(text.as_bytes(), 64).is_err(), "{text:?}");
        }
    }

    #[test]
    fn scans_long_strings_with_every_special_byte() {
        for special in ["\\\"", "\\\\", "\\n", "\\u0041"] {
            for at in 0..20 {
                let text = format!("\"{}{special}{}\"", "a".repeat(at), "é".repeat(at % 7));
                let (end, escaped) = scan_string(text.as_bytes(), 0).unwrap();
                assert_eq!((end, escaped), (text.len(), true), "{text}");
            }
        }
        assert!(scan_string(b"\"aaaaaaaaaaaa\x01aaaa\"", 0).is_err());
        assert!(scan_string(b"\"aaaaaaaaaaaaaaaaaaaa", 0).is_err());
    }

    /// The word-at-a-time scan finds the same first special byte as a byte-by-byte one,
    /// wherever it sits in a word and whatever bytes follow it (borrows included).
    #[test]
    fn scan_string_agrees_with_a_byte_scan() {
        fn naive(bytes: &[u8]) -> Result<usize, usize> {
            let mut pos = 1;
            while let Some(&b) = bytes.get(pos) {
                match b {
                    b'"' => return Ok(pos + 1),
                    b'\\' => pos += 2,
                    0..=0x1f => return Err(pos),
                    _ => pos += 1,
                }
            }
            Err(pos)
        }
        // Past the scan, the string's body must be UTF-8; the first bad byte is the error.
        fn naive_utf8(bytes: &[u8]) -> Result<usize, usize> {
            let end = naive(bytes)?;
            std::str::from_utf8(&bytes[1..end - 1])
                .map(|_| end)
                .map_err(|e| 1 + e.valid_up_to())
        }
        let fillers: [&[u8]; 4] = [b"a", b"\x00", b"\x01", "\u{e9}".as_bytes()];
        for special in [b'"', b'\\', 0x00, 0x01, 0x1f, b'\n'] {
            for at in 0..24 {
                for after in fillers {
                    let mut text = vec![b'"'];
                    text.extend(std::iter::repeat_n(b'b', at));
                    text.push(special);
                    if special == b'\\' {
                        text.push(b'n');
                    }
                    text.extend(after.iter().cycle().take(9));
                    text.push(b'"');
                    let ours = scan_string(&text, 0)
                        .map(|(end, _)| end)
                        .map_err(|(at, _)| at);
                    assert_eq!(ours, naive_utf8(&text), "{text:?}");
                }
            }
        }
    }

    /// The inline path and the full scan agree on where a string ends and whether it has
    /// an escape, whatever its length and wherever the escape sits.
    #[test]
    fn scan_string_tells_escapes_at_any_length() {
        for len in 0..40 {
            let plain = format!("\"{}\",", "p".repeat(len));
            assert_eq!(
                scan_string(plain.as_bytes(), 0),
                Ok((len + 2, false)),
                "{plain}"
            );
            for at in 0..len {
                let mut escaped = plain.clone().into_bytes();
                escaped.splice(1 + at..2 + at, *b"\\n");
                assert_eq!(
                    scan_string(&escaped, 0),
                    Ok((len + 3, true)),
                    "{}",
                    String::from_utf8_lossy(&escaped)
                );
            }
        }
    }

    #[test]
    fn limits_depth() {
        assert!(parse(b"[[[1]]]", 3).is_ok());
        assert!(parse(b"[[[[1]]]]", 3).is_err());
    }

    #[test]
    fn decodes_surrogate_pairs() {
        let json = parse(br#""\ud83d\ude00 \ud800""#, 4).unwrap();
        assert_eq!(json, Json::String("\u{1F600} \u{FFFD}".to_owned()));
    }
}
