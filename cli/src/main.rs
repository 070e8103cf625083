//! `eventfork`: the command line of eventfork. A thin shell: arguments → a library call →
//! output. Data goes to stdout, diagnostics to stderr prefixed `eventfork:`.
//!
//! Exit status: 0 success, 1 a clean "no" (no match, an event its schema refuses, a failed
//! check), 2 a failure, 130 `publish` (or `replay`'s waiting) stopped by Ctrl-C.

// The doc comments of this crate are clap's --help text, where `<placeholder>` is the
// convention; rustdoc would read them as HTML tags.
#![allow(rustdoc::invalid_html_tags)]

use std::{io, process::ExitCode};

use clap::{Parser, Subcommand};

/// Writes a line to stderr, ignoring a failed write: a closed or full stderr (`2>&1 |
/// head`, `2>/dev/full`) must not turn a command's verdict into a panic (`eprintln!`
/// panics when it cannot write), and there is nowhere left to say it failed.
macro_rules! stderr {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// Like [`stderr!`], without the line end.
macro_rules! stderr_part {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
    }};
}

mod aws;
mod catalog;
mod demo;
mod handlers;
mod input;
mod local;
mod output;
mod pattern;
mod publish;
mod replay;
mod rules;
mod schemas;
mod sink;

/// Event-driven background processing on Amazon EventBridge.
#[derive(Debug, Parser)]
#[command(name = "eventfork", version, about, long_about = None)]
#[command(after_long_help = EXIT_STATUS)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

const EXIT_STATUS: &str = "\
Exit status:
  0  success
  1  a clean \"no\": a pattern that does not match, an event its schema refuses
     (schemas validate), a failed check
  2  a failure: bad usage, unreadable or malformed input (a pattern or event that is
     not valid), an AWS or network error
  130  publish stopped by Ctrl-C (after printing the results of what was in flight),
       or replay's waiting stopped by it (the replay goes on)";

#[derive(Debug, Subcommand)]
enum Command {
    /// Export and check the event schemas of the EventBridge Schema Registry.
    #[command(subcommand, visible_alias = "schema")]
    Schemas(schemas::Command),
    /// Test EventBridge event patterns offline and show how they compile.
    #[command(subcommand)]
    Pattern(pattern::Command),
    /// Match events against rule sets; render, check and lint the rules of template.yaml.
    #[command(subcommand)]
    Rules(rules::Command),
    // The help text is the doc comment of `publish::Args`.
    Publish(publish::Args),
    // The help text is the doc comment of `replay::Args`.
    Replay(replay::Args),
    /// Run the local bus: template.yaml's rules, queues and handlers on this machine.
    #[command(subcommand)]
    Local(local::Command),
}

/// What a command concluded, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Everything asked for was done and every answer was "yes".
    Success,
    /// The command ran, and the answer is a clean "no".
    No,
    /// Ctrl-C stopped the command, which said where (exit status 130, as for SIGINT).
    Interrupted,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Schemas(command) => schemas::run(command),
        Command::Pattern(command) => pattern::run(command),
        Command::Rules(command) => rules::run(command),
        Command::Publish(args) => publish::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Local(command) => local::run(command),
    };
    match result {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::No) => ExitCode::from(1),
        Ok(Outcome::Interrupted) => ExitCode::from(130),
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            stderr!("eventfork: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// A closed stdout (`eventfork … | head`) ends the command quietly, as grep does.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// `n` and the noun for it: "1 request", "3 requests".
pub(crate) fn count(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}
