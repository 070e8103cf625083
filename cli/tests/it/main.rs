//! Integration tests of the `eventfork` binary, one binary with a module per command.

mod pattern;
mod rules;
mod schemas;
