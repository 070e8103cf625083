//! `eventfork pattern test|explain`: try an event pattern offline.

use std::{
    io::{self, Write},
    path::{Path, PathBuf},
};

use anyhow::{Result, anyhow, bail};
use clap::{Args, Subcommand};
use router::pattern::{Matcher, Pattern, RuleId};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::{Outcome, input};

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Test an event pattern against an event, or a file of pattern/event cases.
    ///
    /// With --pattern and --event (either may be - for stdin), prints `match` or `no match`
    /// and exits 0 on a match, 1 on no match, 2 when the pattern or the event is invalid
    /// (the error, with the JSON path of the bad part, on stderr).
    ///
    /// With --cases FILE.jsonl, each line is a JSON object with "pattern" and "event", each
    /// either a JSON value or a string holding JSON text (so malformed text and exact number
    /// spellings reach the engine as written); other keys are ignored. Prints exactly one
    /// line per input line, in order: `match`, `no match` or `error: <message>` (line
    /// breaks that a message quotes are written as escapes, such as \n), and exits 0 once
    /// every line was evaluated (2 if the file cannot be read). A blank line, or one that
    /// is not such an object, gets an `error:` line too.
    ///
    /// Examples:
    ///   eventfork pattern test --pattern rule.json --event event.json
    ///   echo '{"detail-type":"UserSignedUp"}' | eventfork pattern test --pattern rule.json --event -
    ///   eventfork pattern test --cases cases.jsonl
    #[command(
        verbatim_doc_comment,
        override_usage = "eventfork pattern test --pattern <FILE> --event <FILE>\n       eventfork pattern test --cases <FILE.jsonl>"
    )]
    Test(TestArgs),
    /// Print the compiled matcher of one pattern: its field index and sub-rules.
    ///
    /// The output is for people, not a stable format: first the anchors of every field
    /// path (the conditions an event's value is looked up by), then each sub-rule (the
    /// pattern with its $or alternatives multiplied out) with its conditions, the anchor
    /// marked. Exits 0, or 2 when the pattern is invalid (the error, with its JSON path,
    /// on stderr).
    ///
    /// Example: eventfork pattern explain rule.json
    Explain {
        /// The pattern file (JSON), or - for stdin.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(Debug, Args)]
#[group(id = "input", required = true, multiple = true, args = ["pattern", "cases"])]
pub(crate) struct TestArgs {
    /// The event pattern (JSON), or - for stdin.
    #[arg(long, value_name = "FILE", requires = "event")]
    pattern: Option<PathBuf>,
    /// The event (JSON), or - for stdin.
    #[arg(long, value_name = "FILE", requires = "pattern")]
    event: Option<PathBuf>,
    /// A JSON Lines file of {"pattern": …, "event": …} cases, or - for stdin.
    #[arg(long, value_name = "FILE.jsonl", conflicts_with_all = ["pattern", "event"])]
    cases: Option<PathBuf>,
}

pub(crate) fn run(command: Command) -> Result<Outcome> {
    match command {
        Command::Test(TestArgs {
            cases: Some(cases), ..
        }) => test_cases(&cases),
        Command::Test(TestArgs {
            pattern: Some(pattern),
            event: Some(event),
            ..
        }) => test_one(&pattern, &event),
        Command::Test(_) => bail!("give --pattern and --event, or --cases"),
        Command::Explain { file } => explain(&file),
    }
}

/// One pattern in a matcher of its own, under the default limits.
fn compile(text: &str) -> Result<Matcher, String> {
    let pattern = Pattern::parse(text).map_err(|error| format!("invalid pattern at {error}"))?;
    let mut builder = Matcher::builder();
    builder.add(RuleId::from("pattern"), pattern);
    builder
        .build()
        .map_err(|error| format!("invalid pattern at {}: {}", error.path(), error.message()))
}

fn test_one(pattern: &Path, event: &Path) -> Result<Outcome> {
    if pattern == Path::new("-") && event == Path::new("-") {
        bail!("--pattern and --event cannot both read stdin");
    }
    let pattern_text = input::read_text(pattern)?;
    let event_text = input::read_text(event)?;
    let matcher = compile(&pattern_text).map_err(|e| anyhow!("{}: {e}", pattern.display()))?;
    let hits = matcher
        .matches(event_text.as_bytes())
        .map_err(|e| anyhow!("{}: invalid event: {e}", event.display()))?;
    let mut stdout = crate::output::stdout();
    if hits.is_empty() {
        writeln!(stdout, "no match")?;
        Ok(Outcome::No)
    } else {
        writeln!(stdout, "match")?;
        Ok(Outcome::Success)
    }
}

#[derive(Deserialize)]
struct CaseLine {
    pattern: Box<RawValue>,
    event: Box<RawValue>,
}

/// A JSON value as text, or the text a JSON string holds.
fn json_text(value: &RawValue) -> Result<String, String> {
    let raw = value.get();
    if raw.starts_with('"') {
        serde_json::from_str::<String>(raw).map_err(|e| e.to_string())
    } else {
        Ok(raw.to_owned())
    }
}

fn evaluate_case(line: &[u8]) -> String {
    let not_a_case = |why: &dyn std::fmt::Display| {
        let why = why.to_string();
        format!(
            "error: the line is not a JSON object with \"pattern\" and \"event\": {}",
            input::one_line(&why)
        )
    };
    let line = match std::str::from_utf8(line) {
        Ok(line) => line,
        Err(error) => {
            return not_a_case(&format_args!(
                "invalid UTF-8 at byte {}",
                error.valid_up_to()
            ));
        }
    };
    if line.trim_ascii().is_empty() {
        return not_a_case(&"the line is empty");
    }
    // serde would also read a struct from an array of its fields.
    if !line.trim_start().starts_with('{') {
        return not_a_case(&"it does not start with '{'");
    }
    let case: CaseLine = match serde_json::from_str(line) {
        Ok(case) => case,
        Err(error) => return not_a_case(&crate::input::line_json_error(line, &error)),
    };
    let result = (|| {
        let pattern = json_text(&case.pattern)?;
        let event = json_text(&case.event)?;
        let matcher = compile(&pattern)?;
        matcher
            .matches(event.as_bytes())
            .map(|hits| !hits.is_empty())
            .map_err(|error| format!("invalid event: {error}"))
    })();
    match result {
        Ok(true) => "match".to_owned(),
        Ok(false) => "no match".to_owned(),
        Err(message) => format!("error: {}", input::one_line(&message)),
    }
}

fn test_cases(path: &Path) -> Result<Outcome> {
    let mut reader = input::open(path)?;
    let mut stdout = io::BufWriter::new(crate::output::stdout());
    input::each_line(&mut reader, path, |_, case| {
        match case {
            Ok(case) => writeln!(stdout, "{}", evaluate_case(case))?,
            Err(too_long) => writeln!(stdout, "error: {too_long}")?,
        }
        Ok(())
    })?;
    stdout.flush()?;
    Ok(Outcome::Success)
}

fn explain(path: &Path) -> Result<Outcome> {
    let text = input::read_text(path)?;
    let matcher = compile(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let mut stdout = crate::output::stdout();
    stdout.write_all(matcher.explain().as_bytes())?;
    Ok(Outcome::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_take_values_or_text() {
        let check =
            |line: &str, expect: &str| assert_eq!(evaluate_case(line.as_bytes()), expect, "{line}");
        check(r#"{"pattern":{"a":[300]},"event":{"a":3e2}}"#, "match");
        check(
            r#"{"pattern":"{\"a\":[1]}","event":"{\"a\":2}"}"#,
            "no match",
        );
        check(
            r#"{"pattern":{"a":[]},"event":{}}"#,
            "error: invalid pattern at $.a: Empty arrays are not allowed",
        );
        check(
            r#"{"pattern":{"a":[1]},"event":"[1]"}"#,
            "error: invalid event: the event is not a JSON object: it starts as a JSON array at byte 0",
        );
        for line in [
            &b"nope"[..],
            br#"[{"a":["x"]},{"a":"x"}]"#,
            b"",
            b"\"a\xff\"",
        ] {
            let result = evaluate_case(line);
            assert!(
                result.starts_with("error: the line is not a JSON object"),
                "{line:?}: {result}"
            );
        }
        assert!(
            evaluate_case(b"{\"pattern\":{},\"event\":\"\xff\"}")
                .ends_with("invalid UTF-8 at byte 23")
        );
    }

    /// A message that quotes a key or value holding a line break stays on its line.
    #[test]
    fn a_case_gives_one_line_whatever_its_message_quotes() {
        for line in [
            r#"{"pattern":{"a\nb":"x"},"event":{}}"#,
            r#"{"pattern":{"a":[{"foo\rbar":1}]},"event":{}}"#,
            r#"{"pattern":{"a":[{"cidr":"1\u20280.0.0.0/8"}]},"event":{}}"#,
        ] {
            let result = evaluate_case(line.as_bytes());
            assert!(result.starts_with("error: invalid pattern"), "{result}");
            assert_eq!(result.lines().count(), 1, "{result:?}");
            assert!(!result.contains(['\u{2028}', '\r']), "{result:?}");
        }
    }
}
