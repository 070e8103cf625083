//! The integration tests of `router`, one module per concern.
