//! The integration tests of the eventfork binary: one binary, one module per command.

mod publish;
mod schemas;
