//! The one integration-test binary (one link step instead of one per file). Every test here
//! drives the real `trigd` binary or the library's public API.

// Tests may unwrap: a panic is a test failure with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod aws;
mod aws_e2e;
mod cli;
mod crash;
mod daemon;
mod deploy;
mod destinations;
mod diagnostics;
mod functions;
mod harness;
mod instances;
mod intake;
mod replay;
mod sns_http;
mod sqs_reload;
mod sqs_trigger;
mod store;
mod supervision;
mod targets;
mod tidy;
mod triggers;
mod util;
