//! Target input shaping: what a rule target receives for a matched event.
//!
//! A target receives the whole event (default), a constant (`input`), the part of the event a
//! JSONPath selects (`input_path`), or a filled template (`input_transformer`: `input_paths`
//! names JSONPaths, `input_template` uses them as `<name>` placeholders). Everything is compiled
//! once when rules load, into an [`InputSpec`]; compile errors carry byte offsets so the caller
//! can report `file:line:column`. [`InputSpec::render`] then runs per event and never panics.
//!
//! Semantics follow `aws-semantics.md` §2. Decisions where AWS behaviour is unverified:
//! - An `input_path` that selects nothing fails the delivery with [`RenderError::MissingPath`]
//!   (visible in metrics and the dead-letter queue) instead of sending an empty body.
//! - A JSON template that renders invalid JSON fails with [`RenderError::InvalidJson`] where AWS
//!   silently drops the event.
//! - `null` is written as `null` inside JSON strings and in free text, like numbers and booleans.
//! - See [`path`] for the JSONPath subset and [`template`] for placeholders and substitution.

pub mod input;
pub mod path;
pub mod template;

#[cfg(test)]
mod tests;

use thiserror::Error;

pub use input::{
    InputPathsError, InputSpec, InputSpecError, MAX_INPUT_CHARS, MAX_INPUT_PATHS,
    validate_input_paths,
};
pub use path::{JsonPath, MAX_PATH_CHARS, PathError};
pub use template::{MAX_TEMPLATE_CHARS, RESERVED_NAMES, Template, TemplateError, Values};

/// Per-rule facts available to templates as reserved variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderContext<'a> {
    /// `<aws.events.rule-name>`.
    pub rule_name: &'a str,
    /// `<aws.events.rule-arn>`.
    pub rule_arn: &'a str,
    /// `<aws.events.event.ingestion-time>`: when the router received the event (ISO-8601).
    pub ingestion_time: &'a str,
}

/// Why an event could not be shaped for a target; the delivery counts as failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RenderError {
    /// A JSON template produced invalid JSON (AWS silently drops such events).
    #[error("input_template produced invalid JSON at offset {offset} ({message}) near {excerpt:?}")]
    InvalidJson {
        /// What the JSON parser objected to.
        message: String,
        /// Byte offset of the problem in the rendered text.
        offset: usize,
        /// The rendered text around `offset`.
        excerpt: String,
    },
    /// `input_path` selected nothing in this event.
    #[error("input_path {path} selected nothing")]
    MissingPath {
        /// The path as written.
        path: String,
    },
    /// [`Values::paths`] does not hold one value per `input_paths` name (a caller bug).
    #[error("input_template needs {expected} input_paths values but {got} were given")]
    ValueCount {
        /// Number of names the template was compiled with.
        expected: usize,
        /// Number of values given.
        got: usize,
    },
}
