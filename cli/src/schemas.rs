//! `eventfork schemas export|validate`.

use std::{
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use clap::Subcommand;
use events_schema::registry::{self, Format};
use serde_json::Value;

use crate::Outcome;

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Write the registry schema of every event type.
    ///
    /// With --out DIR, one file per event type, DIR/<detail-type>.json; without it, one JSON
    /// object keyed by detail-type on stdout.
    ///
    /// Example: eventfork schemas export --format jsonschema-draft4 --out schemas/jsonschema-draft4/
    Export {
        /// The registry format: openapi3 or jsonschema-draft4.
        #[arg(long, default_value = "openapi3")]
        format: Format,
        /// Write one file per event type into this folder (created if missing).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Validate full EventBridge events (JSON Lines) against the catalogue.
    ///
    /// Prints one line per event line: `ok <detail-type>`, or `invalid: line N: <json path>:
    /// <reason>` (a key given twice in one object is such a reason; `invalid: line N: not
    /// JSON: …` when it is not JSON, `invalid: line N: the line is not UTF-8: …` when it is
    /// not UTF-8). Blank lines are skipped; N counts every input line. Exits 1 if any line
    /// is invalid, 2 if the input cannot be read.
    ///
    /// Example: eventfork schemas validate events.jsonl
    Validate {
        /// The JSON Lines file, or - for stdin.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

pub(crate) fn run(command: Command) -> Result<Outcome> {
    match command {
        Command::Export { format, out } => export(format, out),
        Command::Validate { file } => validate(&file),
    }
}

fn export(format: Format, out: Option<PathBuf>) -> Result<Outcome> {
    let schemas = registry::export_all(format);
    match out {
        Some(dir) => {
            crate::output::create_folder(&dir, "the output folder")?;
            for (detail_type, schema) in &schemas {
                let path = dir.join(format!("{detail_type}.json"));
                fs::write(&path, registry::to_pretty_string(schema))
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
        }
        None => {
            let all: serde_json::Map<String, Value> = schemas
                .into_iter()
                .map(|(name, schema)| (name.to_owned(), schema))
                .collect();
            let mut stdout = crate::output::stdout();
            stdout.write_all(registry::to_pretty_string(&Value::Object(all)).as_bytes())?;
        }
    }
    Ok(Outcome::Success)
}

fn validate(file: &Path) -> Result<Outcome> {
    let mut reader = crate::input::open(file)?;
    // A reader that stops early (`| head`) must not turn the verdict into a pass: the
    // rest is still checked, unprinted, and the exit status says what was found.
    let mut stdout = crate::output::Closable::new(io::BufWriter::new(crate::output::stdout()));
    let mut n_invalid = 0usize;
    let mut publish_lines = crate::input::PublishLines::default();
    crate::input::each_line(&mut reader, file, |line_number, text| {
        let text = match text {
            Ok(text) => text,
            Err(too_long) => {
                n_invalid += 1;
                writeln!(stdout, "invalid: line {line_number}: {too_long}")?;
                return Ok(());
            }
        };
        if text.trim_ascii().is_empty() {
            return Ok(());
        }
        // As publish says it: the encoding first, then the JSON.
        let not_utf8 = std::str::from_utf8(text).err();
        let verdict = match events_schema::strict::from_slice(text) {
            Err(_) if not_utf8.is_some() => Err(format!(
                "line {line_number}: the line is not UTF-8: invalid byte at offset {}",
                not_utf8.map_or(0, |error| error.valid_up_to())
            )),
            // A key given twice: JSON, but not an event to accept.
            Err(error) if error.is_data() => Err(format!(
                "line {line_number}: {}",
                crate::input::line_json_error(&String::from_utf8_lossy(text), &error)
            )),
            Err(error) => Err(format!(
                "line {line_number}: not JSON: {}",
                crate::input::line_json_error(&String::from_utf8_lossy(text), &error)
            )),
            Ok(event) => {
                if event.is_object() {
                    publish_lines.check(line_number, text);
                }
                events_schema::validate_envelope(&event)
                    .map(|t| t.detail_type())
                    .map_err(|violation| format!("line {line_number}: {violation}"))
            }
        };
        match verdict {
            Ok(detail_type) => writeln!(stdout, "ok {detail_type}")?,
            Err(reason) => {
                n_invalid += 1;
                writeln!(stdout, "invalid: {}", crate::input::one_line(&reason))?;
            }
        }
        Ok(())
    })?;
    stdout.flush()?;
    publish_lines.warn("schemas validate");
    Ok(if n_invalid == 0 {
        Outcome::Success
    } else {
        Outcome::No
    })
}
