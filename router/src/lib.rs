//! Routing for eventfork: the EventBridge event-pattern engine ([`pattern`]), and behind
//! features the Publisher (`aws`, on by default) and the local bus (`local`).
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod pattern;
pub mod template;

#[cfg(feature = "local")]
pub mod local;
