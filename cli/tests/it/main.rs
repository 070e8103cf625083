//! Integration tests of the `eventfork` binary.
mod local;
mod schemas;
