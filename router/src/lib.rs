//! Routing for eventfork: the EventBridge event-pattern engine ([`pattern`]), and behind
//! features the Publisher (`aws`, on by default), the rule catalogue with its lint and the
//! template reader (`rules`), and the local bus (`local`, which takes `rules`).
#![warn(clippy::print_stdout, clippy::print_stderr)]
#![deny(missing_docs)]

#[cfg(feature = "rules")]
pub mod catalog;
#[cfg(feature = "rules")]
pub mod lint;
pub mod pattern;
#[cfg(feature = "rules")]
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
