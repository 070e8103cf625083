//! The EventBridge event-pattern engine: parse and validate, compile many patterns into one
//! matcher, match event bytes. It uses only std and serde_json: no AWS crates, no async
//! runtime, no I/O.
//!
//! The pipeline has one type per stage:
//!
//! * [`Pattern::parse`] reads and validates pattern text; a [`Pattern`] is always valid.
//!   Errors ([`PatternError`]) carry the JSONPath of the offending part and EventBridge's
//!   own wording.
//! * [`MatcherBuilder`] holds the limits and the rules; [`MatcherBuilder::build`] checks the
//!   limits ([`BuildError`]) and compiles a [`Matcher`].
//! * [`Matcher::matches`] takes event bytes and returns the ids of the matching rules.
//!
//! ```
//! use router::pattern::{Matcher, Pattern, RuleId};
//!
//! let mut builder = Matcher::builder();
//! builder.add(
//!     RuleId::from("signup-mail"),
//!     Pattern::parse(r#"{"detail-type": ["UserSignedUp"], "detail": {"email": [{"suffix": ".com"}]}}"#)?,
//! );
//! builder.add(
//!     RuleId::from("big-orders"),
//!     Pattern::parse(r#"{"detail": {"total": [{"numeric": [">=", 100]}]}}"#)?,
//! );
//! let matcher = builder.build()?;
//!
//! let event = br#"{"detail-type": "UserSignedUp", "detail": {"email": "ana@example.com"}}"#;
//! let hits = matcher.matches(event)?;
//! assert_eq!(hits, [&RuleId::from("signup-mail")]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The semantics follow EventBridge event buses exactly as pinned down by the conformance
//! corpus (`router/tests/data/conformance`); docs/PATTERNS.md is the reference by example.

mod check;
mod compile;
mod consistency;
mod flatten;
mod json;
mod matcher;
mod number;
mod parse;
mod text;

#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod wide_tests;

pub use compile::BuildError;
pub use flatten::EventError;
// For the CLI, not the API: it may change in any release.
#[doc(hidden)]
pub use json::compact_json;
pub use matcher::{Matcher, MatcherBuilder, RuleId};
pub use number::Number;
pub use parse::{
    AnythingBut, AnythingButKind, Cidr, Comparison, Condition, Literal, Numeric, Pattern,
    PatternError, Wildcard,
};
