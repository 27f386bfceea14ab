//! trigd: a self-hosted, EventBridge-compatible event-trigger router.
//!
//! Layout (see ARCHITECTURE.md for the whole map):
//! * [`pattern`]: event patterns: parsing with AWS's validation, the compiled matcher over all
//!   rules, explanations of non-matches.
//! * [`schedule`]: `rate`/`cron`/`at` expressions and their next fires in a time zone.
//! * [`transform`]: the four input options of a target (whole event, constant, JSONPath,
//!   input transformer), compiled once and rendered per event.
//! * [`config`]: rule files: discovery, a YAML tree with positions, validation with
//!   diagnostics at `file:line:column`.
//! * [`rules`]: the validated model every command runs on.
//! * [`route`]: routing, pure: an event becomes deliveries with their payloads rendered.
//! * [`intake`]: the one door every source's events go through in the daemon: routed, stored
//!   in one commit, dead-lettered when unrenderable, archived and counted.
//! * [`dry_run`], [`rule_tests`], [`next`], [`schema`]: the offline tools behind `trigd match`,
//!   `test`, `next` and `schema`.
//! * [`event`]: events in the EventBridge envelope.
//! * [`functions`]: local Lambda handlers: environments, the Runtime API, the Invoke API.
//! * [`replay`], [`diff`]: batch dry runs over recorded events (`trigd match --events`) and the
//!   semantic diff of two rule sets over them (`trigd diff`).

#![forbid(unsafe_code)]

pub mod archive;
pub mod aws;
pub mod config;
pub mod daemon;
pub mod delivery;
pub mod diff;
pub mod dry_run;
pub mod event;
pub mod functions;
pub mod intake;
pub mod metrics;
pub mod next;
pub mod pattern;
pub mod replay;
pub mod route;
pub mod rule_tests;
pub mod rules;
pub mod schedule;
pub mod schema;
pub mod sd_notify;
pub mod server;
pub mod sources;
pub mod targets;
pub mod transform;
