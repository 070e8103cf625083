//! Integration tests of the `eventfork` binary.

mod rules;
mod schemas;
mod support;
