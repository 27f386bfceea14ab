//! trigd: a self-hosted, EventBridge-compatible event-trigger router.
//!
//! Every module, by layer (ARCHITECTURE.md has the map; `tests/it/tidy.rs` keeps arrows
//! pointing down):
//!
//! * Core, pure: [`pattern`] (event patterns: parsing, the compiled matcher over all rules,
//!   explanations), [`schedule`] (`rate`/`cron`/`at`, next fires in a time zone, the timer),
//!   [`transform`] (the four input options), [`rules`] (the validated model: rules, targets,
//!   sources, functions, ARNs), [`event`] (EventBridge envelopes and stable ids), [`route`]
//!   (an event's deliveries, payloads rendered), [`outcome`] (what an attempt came to, in
//!   EventBridge's error codes).
//! * [`config`]: rule files, test files and trigd.yaml, read with positions into the model;
//!   every problem at `file:line:column`.
//! * Services: [`aws`] (SDK clients, AWS error codes), [`functions`] (local Lambda handlers:
//!   environments, the Runtime API, the Invoke API), [`metrics`], [`archive`] (the event
//!   archive), [`sd_notify`].
//! * [`targets`]: where deliveries go, one module per kind.
//! * [`delivery`]: the outbox, the retry policy, the dispatcher, destinations, dead letters.
//! * [`intake`]: the one door every source's events go through in the daemon: routed (pure,
//!   [`route`], in the core), stored in one commit, dead-lettered when unrenderable, archived
//!   and counted.
//! * The listener's shell, [`server`], and the offline [`tools`]: [`dry_run`] (`trigd match`),
//!   [`rule_tests`] (`trigd test`), [`next`], [`schema`], [`replay`] and [`diff`].
//! * [`sources`]: SQS, SNS over HTTP, and their decoding; the HTTP API listener of the
//!   functions' `api` triggers.
//! * [`daemon`]: `trigd run`: start, supervision, reload, bounded stop.

#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

// The tools keep their paths at the crate root (`trigd::dry_run`, ...).
pub use tools::{diff, dry_run, next, replay, rule_tests, schema};

pub mod archive;
pub(crate) mod aws;
pub mod config;
pub mod daemon;
pub mod delivery;
pub mod deploy;
pub mod event;
pub mod functions;
pub mod intake;
pub mod lambda_events;
pub mod metrics;
pub mod outcome;
pub mod pattern;
pub mod route;
pub mod rules;
pub mod schedule;
pub(crate) mod sd_notify;
pub mod server;
pub mod sources;
pub mod targets;
pub mod tools;
pub mod transform;
