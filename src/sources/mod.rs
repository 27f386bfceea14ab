//! Sources: where events come from besides the HTTP listener. Each turns what it receives into
//! EventBridge events and hands them to the [`crate::intake::Intake`], as every source does,
//! which stores their deliveries durably before the source acknowledges anything.

pub mod api;
pub mod decode;
pub mod pollers;
pub mod schedule;
pub mod sns_http;
pub mod sns_verify;
pub mod sqs;
pub mod sqs_trigger;
