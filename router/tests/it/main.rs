//! The integration tests of the router crate: one binary, one module per concern. Each
//! module needs the features of what it tests: `deploy` needs `aws` and `rules`, which
//! `cargo test --workspace` turns on (the CLI takes both) and `cargo test -p router` does
//! not (give `--features rules`).

#[cfg(feature = "aws")]
mod answers;
#[cfg(all(feature = "aws", feature = "rules"))]
mod deploy;
#[cfg(feature = "local")]
mod local;
#[cfg(feature = "aws")]
mod publish;
#[cfg(feature = "aws")]
mod replay;
