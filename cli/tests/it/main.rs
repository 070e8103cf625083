//! Integration tests of the `eventfork` binary.

mod schemas;
mod support;
