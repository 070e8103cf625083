//! Routing for eventfork: the EventBridge event-pattern engine ([`pattern`]), and behind
//! features the Publisher (`aws`, on by default) and the local bus (`local`).
#![warn(clippy::print_stdout, clippy::print_stderr)]
#![deny(missing_docs)]

pub mod catalog;
pub mod lint;
pub mod pattern;
pub mod template;

pub use pattern::{
    BuildError, Condition, EventError, Matcher, MatcherBuilder, Pattern, PatternError, RuleId,
};

#[cfg(feature = "aws")]
pub mod publish;
#[cfg(feature = "aws")]
pub mod replay;
/// The EventBridge SDK the Publisher is built on, for
/// [`PublisherBuilder::build_from_conf`]: a configuration made with this one is of the
/// version the Publisher takes.
#[cfg(feature = "aws")]
pub use aws_sdk_eventbridge;
#[cfg(feature = "aws")]
pub use publish::{Entry, EventId, PublishError, Publisher, PublisherBuilder, Report};

#[cfg(feature = "local")]
pub mod local;
#[cfg(feature = "local")]
pub use local::{BusConfig, Consumer, Consumers, LocalBus, LocalEvent};
