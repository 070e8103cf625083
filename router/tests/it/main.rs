//! The integration tests of the router crate: one binary, one module per concern.

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
