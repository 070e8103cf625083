//! The typed event catalogue of eventfork.
//!
//! This crate is the contract between every producer and every consumer: the events
//! ([`UserSignedUp`], [`UserLoggedIn`]), the [`Event`] trait that ties a Rust type to its
//! EventBridge `source` and `detail-type`, the generic EventBridge [`Envelope`], the
//! [`catalogue`] of every event type, validation of arbitrary JSON against it, and the
//! schemas handed to the EventBridge Schema Registry ([`registry`]).
//!
//! It has no AWS SDK, no async runtime and no I/O beyond the operating system's random
//! source, read for new login ids ([`LoginId::random`]): bytes and values in, types out.
//!
//! ```
//! use events_schema::{Envelope, Event, UserSignedUp, Plan, SignupMethod};
//!
//! let event = UserSignedUp::builder("user-42", "ada@example.com")?
//!     .display_name("Ada Lovelace")
//!     .plan(Plan::Pro)
//!     .signup_method(SignupMethod::Google)
//!     .marketing_consent(true)
//!     .build();
//! assert_eq!(UserSignedUp::DETAIL_TYPE, "UserSignedUp");
//!
//! // What arrives from EventBridge is an envelope around the detail.
//! let json = serde_json::json!({
//!     "version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
//!     "detail-type": "UserSignedUp", "source": "com.eventfork.users",
//!     "account": "111122223333", "time": "2026-11-27T09:00:00Z", "region": "us-east-1",
//!     "resources": [], "detail": serde_json::to_value(&event)?,
//! });
//! let envelope: Envelope<UserSignedUp> = serde_json::from_value(json)?;
//! assert_eq!(envelope.detail.email.as_str(), "ada@example.com");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod catalogue;
mod envelope;
mod fields;
pub mod registry;
pub mod strict;
mod users;
mod validate;

pub use catalogue::{EventType, catalogue, find, validate_envelope, validate_received};
pub use envelope::{Envelope, Event, RawEnvelope};
pub use fields::{Email, FieldError, LoginId, Timestamp, UserId};
pub use users::{
    LoginMethod, Plan, SignupMethod, UserLoggedIn, UserLoggedInBuilder, UserSignedUp,
    UserSignedUpBuilder,
};
pub use validate::Violation;

/// The EventBridge `source` of every event this crate defines.
pub const SOURCE: &str = "com.eventfork.users";
