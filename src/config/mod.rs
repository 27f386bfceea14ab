//! Rule files: finding them, parsing them with positions, and validating them into a
//! [`RuleSet`](crate::rules::RuleSet), reporting every problem in every file at once.

pub mod diag;
pub mod environment;
pub mod function_file;
pub mod reader;
pub mod rule_file;
pub mod settings;
pub mod trigger_file;
pub mod yaml;

use std::path::{Path, PathBuf};

use diag::{Diagnostic, Diagnostics, Reporter};

use crate::rules::{RuleSet, Settings};

/// Why rules could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The directory or a file could not be read.
    #[error("cannot read {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The files were read and hold problems.
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// True for the files that hold rule tests rather than rules.
pub fn is_test_file(path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    name.ends_with(".test.yaml") || name.ends_with(".test.yml")
}

fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

/// Every YAML file under `root` (recursively, sorted, hidden directories skipped), or `root`
/// itself when it is a file.
pub fn yaml_files(root: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| LoadError::Io { path, source }
    };
    let meta = std::fs::metadata(root).map_err(io(root))?;
    if meta.is_file() {
        return Ok(vec![root.to_owned()]);
    }
    let mut out = Vec::new();
    let mut dirs = vec![root.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            let path = entry.path();
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            let ty = entry.file_type().map_err(io(&path))?;
            if ty.is_dir() && !hidden {
                dirs.push(path);
            } else if !ty.is_dir() && !hidden && is_yaml(&path) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The YAML files under `root` that `want` keeps, each with its text, in path order.
pub(crate) fn read_files(
    root: &Path,
    want: impl Fn(&Path) -> bool,
) -> Result<Vec<(PathBuf, String)>, LoadError> {
    yaml_files(root)?
        .into_iter()
        .filter(|p| want(p))
        .map(|path| match std::fs::read_to_string(&path) {
            Ok(text) => Ok((path, text)),
            Err(source) => Err(LoadError::Io { path, source }),
        })
        .collect()
}

/// Rule files: every YAML file but the rule tests and the daemon's settings.
pub(crate) fn is_rule_file(path: &Path) -> bool {
    !is_test_file(path) && !is_settings_file(path)
}

/// The daemon's settings file, when it sits among the rules, is not a rule file.
fn is_settings_file(path: &Path) -> bool {
    matches!(
        path.file_name().and_then(|n| n.to_str()),
        Some("trigd.yaml" | "trigd.yml")
    )
}

/// Loads and validates every rule file under `root`.
pub fn load_rules(root: &Path, settings: Settings) -> Result<RuleSet, LoadError> {
    let mut diags: Vec<Diagnostic> = Vec::new();
    let mut rules = Vec::new();
    let mut sources = Vec::new();
    let mut functions = Vec::new();
    let mut triggers = Vec::new();
    let mut function_refs = Vec::new();
    for (path, text) in read_files(root, is_rule_file)? {
        let shown = path.display().to_string();
        let mut r = Reporter::new(&shown, &mut diags);
        let contents = match yaml::parse(&text) {
            Ok(root) => {
                let dir = path.parent().unwrap_or(Path::new("."));
                rule_file::read(&mut r, &root, &settings.defaults, dir)
            }
            Err(e) => {
                r.error(e.pos, format!("invalid YAML: {}", e.message));
                continue;
            }
        };
        rules.extend(contents.rules);
        sources.extend(contents.sources);
        functions.extend(contents.functions);
        triggers.extend(contents.triggers);
        function_refs.extend(
            contents
                .function_refs
                .into_iter()
                .map(|f| (f, shown.clone())),
        );
    }
    check_unique(
        &mut diags,
        &functions,
        |f: &crate::rules::Function| (&f.name, &f.file, f.line, f.column),
        "function",
    );
    let names: Vec<&str> = functions.iter().map(|f| f.name.as_str()).collect();
    for (f, file) in function_refs {
        let (name, pos) = (&f.function, f.pos);
        if let Some(function) = functions.iter().find(|x| x.name == *name) {
            if !f.retry_given
                && let Some(t) = rules
                    .iter_mut()
                    .find(|r| r.name == f.rule)
                    .and_then(|r| r.targets.iter_mut().find(|t| t.id == f.target))
            {
                t.retry = function.retry;
            }
        } else {
            let hint = match diag::did_you_mean(name, &names) {
                Some(s) => format!("; did you mean `{s}`?"),
                None if names.is_empty() => {
                    "; declare it under `functions:` (for a function in AWS, write `lambda:`)"
                        .to_owned()
                }
                None => format!("; declared functions: {}", names.join(", ")),
            };
            diags.push(Diagnostic {
                file,
                line: pos.line,
                column: pos.column,
                message: format!(
                    "a target of this rule names function `{name}`, which is not declared{hint}"
                ),
            });
        }
    }
    check_unique(
        &mut diags,
        &rules,
        |r| (&r.name, &r.file, r.line, r.column),
        "rule",
    );
    check_unique(
        &mut diags,
        &sources,
        |s| (&s.name, &s.file, s.line, s.column),
        "source",
    );
    trigger_file::check(&mut diags, &triggers, &sources);
    if !diags.is_empty() {
        return Err(LoadError::Invalid(Diagnostics(diags)));
    }
    Ok(RuleSet::new(rules, sources, settings)
        .with_functions(functions)
        .with_triggers(triggers))
}

/// Names must be unique across files.
fn check_unique<T>(
    diags: &mut Vec<Diagnostic>,
    items: &[T],
    key: impl Fn(&T) -> (&String, &String, usize, usize),
    what: &str,
) {
    for (i, item) in items.iter().enumerate() {
        let (name, file, line, column) = key(item);
        if let Some(first) = items[..i].iter().find(|o| key(o).0 == name) {
            let (_, first_file, first_line, _) = key(first);
            diags.push(Diagnostic {
                file: file.clone(),
                line,
                column,
                message: format!(
                    "{what} name `{name}` is already used at {first_file}:{first_line}; names must be unique"
                ),
            });
        }
    }
}
