//! The four input options of a target, compiled, and the checks on `input_paths` names.

use std::borrow::Cow;

use serde_json::Value;
use thiserror::Error;

use super::template::RESERVED_NAMES;
use super::{JsonPath, PathError, RenderContext, RenderError, Template, TemplateError, Values};

/// Maximum number of `input_paths` entries.
pub const MAX_INPUT_PATHS: usize = 100;

/// Maximum length of a constant `input`, in characters of compact JSON.
pub const MAX_INPUT_CHARS: usize = 8192;

/// A problem with the `input_paths` names.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InputPathsError {
    /// More than [`MAX_INPUT_PATHS`] entries.
    #[error("input_paths has {count} entries: at most {MAX_INPUT_PATHS} are allowed, remove some")]
    TooMany {
        /// Number of entries given.
        count: usize,
    },
    /// A name that cannot be used.
    #[error("input_paths name {name:?}: {message}")]
    InvalidName {
        /// The name as written.
        name: String,
        /// Lowercase explanation that says what to write instead.
        message: String,
    },
}

/// A problem found while compiling a target's input options.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InputSpecError {
    /// A problem with the `input_paths` names.
    #[error(transparent)]
    InputPaths(#[from] InputPathsError),
    /// The JSONPath of an `input_paths` entry does not compile; offsets are in the path text.
    #[error("input_paths {name}: {source}")]
    Path {
        /// The entry's name.
        name: String,
        /// What is wrong with its path.
        source: PathError,
    },
    /// The `input_template` does not compile; offsets are in the template text.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// The constant `input` is too long.
    #[error(
        "input is {chars} characters long as compact JSON: \
         at most {MAX_INPUT_CHARS} are allowed, shorten it"
    )]
    InputTooLong {
        /// Its length in characters.
        chars: usize,
    },
}

/// Checks `input_paths` names: at most [`MAX_INPUT_PATHS`], each non-empty, made of the
/// placeholder characters `A-Z a-z 0-9 _ . -`, not a reserved variable, not starting with `AWS.`
/// (checked without regard to case, so `aws.` is rejected as well), and not repeated.
///
/// Returns every problem found, one per name at most.
pub fn validate_input_paths(names: &[&str]) -> Result<(), Vec<InputPathsError>> {
    let mut errors = Vec::new();
    if names.len() > MAX_INPUT_PATHS {
        errors.push(InputPathsError::TooMany { count: names.len() });
    }
    for (index, name) in names.iter().enumerate() {
        let duplicate = names.iter().take(index).any(|earlier| earlier == name);
        if let Some(message) = name_problem(name, duplicate) {
            errors.push(InputPathsError::InvalidName {
                name: (*name).to_owned(),
                message,
            });
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// What is wrong with one `input_paths` name, if anything.
fn name_problem(name: &str, duplicate: bool) -> Option<String> {
    if name.is_empty() {
        return Some(
            "name is empty: name the entry with letters, digits, _, - or . characters".to_owned(),
        );
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Some(format!(
            "name contains {c:?}: use only letters, digits, _, - and . so it can be written as <name>"
        ));
    }
    if RESERVED_NAMES.contains(&name) {
        return Some(format!(
            "{name} is a reserved variable: remove this entry and write <{name}> in the template directly"
        ));
    }
    if name
        .get(..4)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("aws."))
    {
        return Some("names starting with AWS. are reserved: choose another name".to_owned());
    }
    duplicate.then(|| "name is defined twice: keep one entry".to_owned())
}

/// The four input options of a target, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputSpec {
    /// The matched event, as received.
    WholeEvent,
    /// A constant: compact JSON text delivered verbatim.
    Constant(String),
    /// The part of the event a JSONPath selects, as compact JSON.
    Path(JsonPath),
    /// A template filled from named paths.
    Transformer {
        /// `input_paths`, in the order the template was compiled with.
        paths: Vec<(String, JsonPath)>,
        /// `input_template`, compiled with the names of `paths`.
        template: Template,
    },
}

impl InputSpec {
    /// A constant `input`, stored as compact JSON of at most [`MAX_INPUT_CHARS`] characters.
    pub fn constant(value: &Value) -> Result<InputSpec, InputSpecError> {
        let text = value.to_string();
        let chars = text.chars().count();
        if chars > MAX_INPUT_CHARS {
            return Err(InputSpecError::InputTooLong { chars });
        }
        Ok(InputSpec::Constant(text))
    }

    /// An `input_transformer` from `(name, path)` entries and the template text.
    ///
    /// Returns every problem found: name problems, each path that does not compile, and the
    /// template's first problem.
    pub fn transformer(
        input_paths: &[(&str, &str)],
        template: &str,
    ) -> Result<InputSpec, Vec<InputSpecError>> {
        let names: Vec<&str> = input_paths.iter().map(|(name, _)| *name).collect();
        let mut errors: Vec<InputSpecError> = validate_input_paths(&names)
            .err()
            .into_iter()
            .flatten()
            .map(InputSpecError::from)
            .collect();
        let mut paths = Vec::with_capacity(input_paths.len());
        for (name, text) in input_paths {
            match JsonPath::parse(text) {
                Ok(path) => paths.push(((*name).to_owned(), path)),
                Err(source) => errors.push(InputSpecError::Path {
                    name: (*name).to_owned(),
                    source,
                }),
            }
        }
        match Template::parse(template, &names) {
            Ok(template) if errors.is_empty() => Ok(InputSpec::Transformer { paths, template }),
            Ok(_) => Err(errors),
            Err(error) => {
                errors.push(error.into());
                Err(errors)
            }
        }
    }

    /// The exact text the target receives.
    ///
    /// `event_text` is the event's JSON text as received (sent verbatim for
    /// [`InputSpec::WholeEvent`], so key order and formatting are kept); `event` is the same
    /// event parsed.
    pub fn render(
        &self,
        event_text: &str,
        event: &Value,
        context: &RenderContext<'_>,
    ) -> Result<String, RenderError> {
        match self {
            InputSpec::WholeEvent => Ok(event_text.to_owned()),
            InputSpec::Constant(text) => Ok(text.clone()),
            InputSpec::Path(path) => path
                .select(event)
                .map(|value| serde_json::to_string(&value).unwrap_or_default())
                .ok_or_else(|| RenderError::MissingPath {
                    path: path.as_str().to_owned(),
                }),
            InputSpec::Transformer { paths, template } => {
                let selected: Vec<Option<Cow<'_, Value>>> =
                    paths.iter().map(|(_, path)| path.select(event)).collect();
                template.render(&Values {
                    paths: &selected,
                    event,
                    context: *context,
                })
            }
        }
    }
}
