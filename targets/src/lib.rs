//! The eventfork targets: one handler per reaction to a user event, each a plain async
//! function over a typed batch, driven by a Lambda binary on AWS and by the local runner
//! on one machine.
//!
//! - [`BatchDriver`] turns an SQS batch (whose bodies are EventBridge envelopes) into
//!   typed events ([`Decode`], [`UserEvent`]), runs a [`Handler`] on each record with
//!   bounded concurrency, suppresses duplicates through an [`IdempotencyStore`] keyed by
//!   the occurrence (the event's detail type and
//!   [`idempotency_key`](events_schema::Event::idempotency_key)), and answers with the
//!   partial batch failures.
//! - [`Analytics`] (Segment `track`), [`MailingList`] (Mailchimp add-or-update) and
//!   [`Slack`] (incoming webhook) are the handlers. Each is built from its config
//!   ([`AnalyticsConfig`], [`MailingListConfig`], [`SlackConfig`]), made from values or
//!   read from the environment, and an [`HttpClient`].
//! - [`lambda`] is the glue the `analytics`, `mailing-list` and `slack` binaries share.
//!
//! ```
//! use std::{sync::Arc, time::Duration};
//! use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
//! use targets::{BatchDriver, Deadline, HttpClient, MemoryStore, Slack, SlackConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let slack = Slack::new(
//!     SlackConfig::new("http://127.0.0.1:9/services/T000/B000/XXXX")?,
//!     HttpClient::new()?,
//! );
//! let driver = BatchDriver::new(slack, Arc::new(MemoryStore::default()));
//!
//! // One SQS record whose body is not an event: it fails alone, the batch does not.
//! let mut record = SqsMessage::default();
//! record.message_id = Some("059f36b4-87a3-44ab-83d2-661975830a7d".into());
//! record.body = Some("{}".into());
//! let mut batch = SqsEvent::default();
//! batch.records.push(record);
//!
//! let response = driver.run(batch, Deadline::after(Duration::from_secs(5))).await;
//! assert_eq!(response.batch_item_failures.len(), 1);
//! assert_eq!(
//!     response.batch_item_failures[0].item_identifier,
//!     "059f36b4-87a3-44ab-83d2-661975830a7d"
//! );
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod analytics;
mod aws_http;
mod batch;
mod config;
mod deadline;
mod error;
mod http;
mod idempotency;
pub mod lambda;
mod mailing_list;
mod slack;
mod visibility;

pub use analytics::{Analytics, AnalyticsConfig, SEGMENT_TRACK_URL};
pub use batch::{
    BatchDriver, BatchOptions, BatchReport, Decode, DecodeError, Handler, Outcome, RecordError,
    UserEvent,
};
pub use config::{ConfigError, Env, RuntimeConfig, Secret};
pub use deadline::Deadline;
pub use error::{HandlerError, error_chain};
pub use http::{ClientError, HttpClient, RetryPolicy};
pub use idempotency::{
    Claim, DynamoDbStore, IdempotencyKey, IdempotencyStore, MemoryStore, StoreError, StoreFuture,
};
pub use mailing_list::{MailingList, MailingListConfig, NewMemberStatus, subscriber_hash};
pub use slack::{Slack, SlackConfig};
pub use visibility::{
    Backoff, BackoffError, FAILURE_ATTRIBUTE, NotDelayed, NotParked, Park, ParkFuture,
    RECEIVE_COUNT_ATTRIBUTE, Retry, SOURCE_QUEUE_ATTRIBUTE, SqsVisibility, Visibility,
    VisibilityFuture,
};
