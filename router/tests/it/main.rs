//! The integration tests of `router`, one module per concern.

#[cfg(feature = "local")]
mod local;
