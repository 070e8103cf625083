//! Integration tests of the event catalogue.
mod envelope;
