//! Reading input files, where `-` means stdin.

use std::{
    fs::File,
    io::{self, BufRead, BufReader, Read},
    path::Path,
};

use anyhow::{Context, Result};

/// The longest line the commands that read JSON Lines take (`rules match`, `schemas
/// validate`, `pattern test --cases`): 16 MiB, 64 times the largest event EventBridge
/// takes. A longer line is that line's error, read past without being held: one endless
/// line (`--events /dev/zero`) aborted the process for want of memory.
pub(crate) const MAX_LINE_BYTES: usize = 16 << 20;

/// A line longer than [`MAX_LINE_BYTES`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct LineTooLong {
    /// Its length, line end included.
    length: usize,
}

impl std::fmt::Display for LineTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the line is {} bytes long, more than the {MAX_LINE_BYTES} bytes a line may have",
            self.length
        )
    }
}

/// Calls `each` with every line of `reader` and its number (from 1): the bytes without the
/// line end (`\n` or `\r\n`), and without a byte order mark on the first line, or
/// [`LineTooLong`]. Bytes, not `String`s: a line that is not UTF-8 is that line's
/// business, not the end of the file. `path` names the input in a read error.
pub(crate) fn each_line(
    reader: &mut dyn BufRead,
    path: &Path,
    mut each: impl FnMut(u64, Result<&[u8], LineTooLong>) -> Result<()>,
) -> Result<()> {
    let mut line = Vec::new();
    for line_number in 1.. {
        line.clear();
        // Room for the line end, which is not the line's.
        let n = read_line_within(reader, &mut line, MAX_LINE_BYTES + 2)
            .with_context(|| format!("cannot read line {line_number} of {}", path.display()))?;
        if n == 0 {
            break;
        }
        if line_number == 1 {
            refuse_utf16(&line, path)?;
        }
        let text = line_text(&line, line_number);
        if n > line.len() || text.len() > MAX_LINE_BYTES {
            each(line_number, Err(LineTooLong { length: n }))?;
        } else {
            each(line_number, Ok(text))?;
        }
    }
    Ok(())
}

/// A line as read (line end included) without its line end (`\n` or `\r\n`), and the first
/// line without a byte order mark.
pub(crate) fn line_text(line: &[u8], line_number: u64) -> &[u8] {
    let text = line.strip_suffix(b"\n").unwrap_or(line);
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    if line_number == 1 {
        strip_bom(text)
    } else {
        text
    }
}

/// Reads one line (line end included) into `line`, keeping at most `max` bytes of it and
/// skipping the rest to its end; answers the line's whole length, so that a caller sees
/// it was longer than `max` without holding it.
pub(crate) fn read_line_within(
    reader: &mut dyn BufRead,
    line: &mut Vec<u8>,
    max: usize,
) -> io::Result<usize> {
    // The usual line, found by `read_until`'s fast search for its end (a byte-at-a-time
    // search cost `rules match` a tenth of its speed at few rules).
    let room = max.saturating_sub(line.len());
    let n_read = reader.take(room as u64).read_until(b'\n', line)?;
    if n_read < room || line.ends_with(b"\n") {
        return Ok(n_read);
    }
    // Longer than `max`: the rest up to its end is counted, not kept.
    let mut n_total = n_read;
    loop {
        // As `read_until`: a read cut short by a signal is tried again.
        let buffer = match reader.fill_buf() {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            other => other?,
        };
        if buffer.is_empty() {
            return Ok(n_total);
        }
        let (taken, done) = match buffer.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buffer.len(), false),
        };
        reader.consume(taken);
        n_total += taken;
        if done {
            return Ok(n_total);
        }
    }
}

/// A file that starts with a UTF-16 byte order mark (what Windows PowerShell 5's `>` writes)
/// is refused as a whole, saying so: line by line it reads as lines that are not UTF-8 and
/// JSON that is not JSON, one error each.
pub(crate) fn refuse_utf16(start: &[u8], path: &Path) -> Result<()> {
    if start.starts_with(&[0xFF, 0xFE]) || start.starts_with(&[0xFE, 0xFF]) {
        anyhow::bail!(
            "{} is UTF-16 text (it starts with a UTF-16 byte order mark); eventfork reads \
             UTF-8: save it as UTF-8 (PowerShell: Out-File -Encoding utf8)",
            path.display()
        );
    }
    Ok(())
}

/// Opens `path` for buffered reading; `-` is stdin.
pub(crate) fn open(path: &Path) -> Result<Box<dyn BufRead + Send>> {
    if path == Path::new("-") {
        return Ok(Box::new(BufReader::new(io::stdin())));
    }
    let file = File::open(path).with_context(|| {
        // JSON given where a file name goes: say what is expected.
        let text = path.to_string_lossy();
        let hint = if text.trim_start().starts_with(['{', '[']) {
            " (this takes a file name, not JSON text: write the JSON to a file, or give - and pipe it in)"
        } else {
            ""
        };
        format!("cannot open {}{hint}", path.display())
    })?;
    Ok(Box::new(BufReader::new(file)))
}

/// The whole of `path` (`-`: stdin) as text, without a byte order mark; bytes that are
/// not UTF-8 are an error naming their offset (from 0, as the engine's messages count).
pub(crate) fn read_text(path: &Path) -> Result<String> {
    let mut bytes = Vec::new();
    open(path)?
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    refuse_utf16(&bytes, path)?;
    let bom = bytes.len() - strip_bom(&bytes).len();
    bytes.drain(..bom);
    String::from_utf8(bytes).map_err(|error| {
        let error = error.utf8_error();
        anyhow::anyhow!(
            "{} is not UTF-8 text: invalid byte at offset {}",
            path.display(),
            error.valid_up_to()
        )
    })
}

/// The whole file at `path` as text, as it is (a byte order mark kept, for commands that
/// write the file back); bytes that are not UTF-8 are an error naming their offset, where
/// `fs::read_to_string` says only that some byte is not.
pub(crate) fn read_file_text(path: &Path) -> io::Result<String> {
    let bytes = std::fs::read(path)?;
    String::from_utf8(bytes).map_err(|error| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "not UTF-8 text: invalid byte at offset {}",
                error.utf8_error().valid_up_to()
            ),
        )
    })
}

/// `bytes` without a leading UTF-8 byte order mark, which some editors write at the start
/// of a file (JSON allows a reader to ignore it).
pub(crate) fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes)
}

/// A JSON error of one input line, placed by column: serde_json says "at line 1 column
/// N", which reads as the file's first line beside the file's own line number. A line that
/// starts with a byte order mark (files joined with `cat`) is said to.
pub(crate) fn line_json_error(line: &str, error: &serde_json::Error) -> String {
    if line.starts_with('\u{feff}') {
        return "the line starts with a byte order mark (U+FEFF; files joined with cat \
                keep the second file's): remove it"
            .to_owned();
    }
    let text = error.to_string();
    let place = format!(" at line {} column {}", error.line(), error.column());
    let Some(message) = text.strip_suffix(&place).filter(|_| error.line() == 1) else {
        return text;
    };
    // serde_json's words for half a surrogate pair (`"\ud800"`) do not say what is wrong.
    let surrogate = message.starts_with("lone leading surrogate")
        || (message.starts_with("unexpected end of hex escape") && has_surrogate_escape(line));
    let message = if surrogate {
        "a lone surrogate escape (\\uD800 to \\uDFFF not in a high-low pair is no character)"
    } else {
        message
    };
    format!("{message} at column {}", error.column())
}

/// Whether `line` holds a `\u` escape of a UTF-16 surrogate (`\uD800` to `\uDFFF`).
fn has_surrogate_escape(line: &str) -> bool {
    line.as_bytes().windows(4).any(|w| {
        w[0] == b'\\'
            && w[1] == b'u'
            && matches!(w[2], b'd' | b'D')
            && matches!(w[3], b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F')
    })
}

/// `text` fit for one output line: control characters (newlines, carriage returns, C1
/// controls) and Unicode line and paragraph separators are written as escapes, so that a
/// message quoting an input never splits the line-per-input output that tools diff.
pub(crate) fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    let breaks = |c: char| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}');
    if !text.contains(breaks) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if breaks(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Half a surrogate pair is named as such (found by an audit: "unexpected end of hex
    /// escape" for a `\ud800` before the closing quote).
    #[test]
    fn a_lone_surrogate_is_named() {
        for line in [
            r#"{"a":"\ud800"}"#,
            r#"{"a":"\uDC00"}"#,
            r#"{"a":"\ud800\u0041"}"#,
        ] {
            let error = serde_json::from_str::<serde_json::Value>(line).unwrap_err();
            let message = line_json_error(line, &error);
            assert!(
                message.starts_with("a lone surrogate escape (\\uD800 to \\uDFFF"),
                "{line}: {message}"
            );
        }
        let line = r#"{"a":"\u00zz"}"#;
        let error = serde_json::from_str::<serde_json::Value>(line).unwrap_err();
        assert_eq!(line_json_error(line, &error), "invalid escape at column 12");
    }

    /// Lines up to `max` bytes are kept whole; a longer one keeps its first `max` bytes,
    /// is skipped to its end, and answers its whole length; the next line reads as usual.
    #[test]
    fn lines_are_read_within_their_limit() {
        let text = b"abc\nabcdefgh\nabcd\nxy";
        let mut reader = io::BufReader::with_capacity(3, &text[..]);
        let mut read = |max| {
            let mut line = Vec::new();
            let n = read_line_within(&mut reader, &mut line, max).unwrap();
            (n, String::from_utf8(line).unwrap())
        };
        assert_eq!(read(5), (4, "abc\n".to_owned()));
        assert_eq!(read(5), (9, "abcde".to_owned()));
        assert_eq!(read(5), (5, "abcd\n".to_owned()));
        assert_eq!(read(5), (2, "xy".to_owned()));
        assert_eq!(read(5), (0, String::new()));
    }

    #[test]
    fn one_line_escapes_every_line_break() {
        assert_eq!(one_line("plain \"text\" é"), "plain \"text\" é");
        assert_eq!(
            one_line("a\nb\r\nc\u{b}\u{c}\u{1c}\u{85}\u{2028}\u{2029}\t\u{7f}"),
            "a\\nb\\r\\nc\\u{b}\\u{c}\\u{1c}\\u{85}\\u{2028}\\u{2029}\\t\\u{7f}"
        );
        // Python's str.splitlines, the strictest common reader, sees one line.
        let escaped = one_line("x\u{1d}\u{1e}\u{85}y");
        assert!(!escaped.chars().any(|c| c.is_control()));
    }
}

/// Looks among the first event lines of a command that takes whole EventBridge events
/// (`rules match`, `schemas validate`) for one without a `"source"`, as `publish` lines
/// have none: given such a file, `rules match` matches no rule that names the source,
/// silently, and `schemas validate` calls every line invalid for fields it does not
/// explain. The first lines tell (a wrong format is wrong from the start), the rest go
/// unchecked.
#[derive(Debug, Default)]
pub(crate) struct PublishLines {
    /// The first line without a `"source"`.
    first: Option<u64>,
}

impl PublishLines {
    /// How many of the first lines are looked at.
    const LINES: u64 = 100;

    /// Looks at the event of line `line_number`, which the caller has read as a JSON
    /// object: a line that is no JSON at all gets its own error, and no word about its
    /// source. A byte search, as `rules match` reads events without parsing them into
    /// values: a `"source"` anywhere counts.
    pub(crate) fn check(&mut self, line_number: u64, event: &[u8]) {
        if self.first.is_none()
            && line_number <= Self::LINES
            && event.starts_with(b"{")
            && !event.windows(8).any(|w| w == b"\"source\"")
        {
            self.first = Some(line_number);
        }
    }

    /// Prints the warning on stderr, once, if a line without a `"source"` was seen;
    /// `command` is the command that reads the events, e.g. `rules match`.
    pub(crate) fn warn(&self, command: &str) {
        if let Some(line_number) = self.first {
            stderr!(
                "eventfork: warning: the event of line {line_number} has no \"source\": \
                 {command} takes whole EventBridge events (source, detail-type, detail, ...) \
                 as rules see them, not `publish` lines, to which publish adds the source"
            );
        }
    }
}
