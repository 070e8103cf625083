//! Integration tests of the targets crate: the handlers against wiremock servers standing
//! in for Segment, Mailchimp and Slack, the batch driver, the DynamoDB idempotency store
//! against moto, retries delayed through SQS in moto, and the three binaries under a Lambda
//! Runtime API emulator.

mod analytics;
mod batch;
mod binaries;
mod dynamodb;
mod mailing_list;
mod slack;
mod support;
mod visibility;
