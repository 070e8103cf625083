//! Integration tests of the event catalogue.

mod envelope;
mod registry;
mod validation;

use std::path::PathBuf;

/// Reads a fixture from `events-schema/tests/data`.
fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
