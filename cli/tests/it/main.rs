//! Integration tests of the `eventfork` binary, one binary with a module per command.

mod catalog;
mod demo;
mod fanout;
mod local;
mod pattern;
mod publish;
mod replay;
mod rules;
mod schemas;
mod support;
