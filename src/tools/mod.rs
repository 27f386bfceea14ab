//! The offline tools: they read rule files and events and never touch the network, the outbox
//! or a target. `trigd match` ([`dry_run`]), `trigd test` ([`rule_tests`]), `trigd next`
//! ([`next`]), `trigd schema` ([`schema`]), `trigd match --events` ([`replay`]) and `trigd diff`
//! ([`diff`]). They use the core and `config`; nothing of the daemon uses them.

pub mod diff;
pub mod dry_run;
pub mod next;
pub mod replay;
pub mod rule_tests;
pub mod schema;
