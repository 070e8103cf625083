//! Routing for eventfork: the EventBridge event-pattern engine ([`pattern`]), and behind
//! features the Publisher (`aws`, on by default) and the local bus (`local`).
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod pattern;

#[cfg(feature = "aws")]
pub mod publish;
#[cfg(feature = "aws")]
pub use publish::{Entry, EventId, PublishError, Publisher, PublisherBuilder, Report};
