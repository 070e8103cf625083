//! Integration tests of the targets crate.
