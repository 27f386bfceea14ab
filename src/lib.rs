//! trigd: a self-hosted, EventBridge-compatible event-trigger router.
//!
//! Layout:
//! * [`pattern`]: event patterns: parsing, the compiled matcher, explanations.

#![forbid(unsafe_code)]

pub mod pattern;
