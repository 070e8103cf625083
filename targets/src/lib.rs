//! The eventfork targets: one handler per reaction (analytics, mailing list, Slack), each a
//! plain async function over a typed batch, driven by a Lambda binary on AWS and by the
//! local runner on one machine.
#![warn(clippy::print_stdout, clippy::print_stderr)]
