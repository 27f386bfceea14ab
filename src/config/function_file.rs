//! Validation of a rule file's `functions:`: local Lambda handlers, into
//! [`crate::rules::Function`], every problem at its position.
//!
//! Paths (`code`, `layers`) are relative to the file that names them, so a rules directory
//! can be moved or cloned anywhere; they are checked here, at `trigd check`, rather than at
//! the first invocation.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::diag::{Reporter, did_you_mean};
use super::reader::{self, Fields};
use super::yaml::{Kind, Node};
use crate::rules::{FUNCTION_RETRY, Function, FunctionRuntime, RetryPolicy};

/// Keys of a function.
pub const FUNCTION_KEYS: &[&str] = &[
    "runtime",
    "handler",
    "code",
    "layers",
    "timeout",
    "memory",
    "concurrency",
    "environment",
    "description",
    "interpreter",
    "max_retry_attempts",
    "max_event_age",
    "triggers",
];

/// Runtimes named in messages (any `python3.N` and `nodejsN.x` is accepted).
const KNOWN_RUNTIMES: &[&str] = &[
    "python3.9",
    "python3.10",
    "python3.11",
    "python3.12",
    "python3.13",
    "python3.14",
    "nodejs18.x",
    "nodejs20.x",
    "nodejs22.x",
    "nodejs24.x",
    "provided.al2023",
    "provided.al2",
];

/// Variables Lambda reserves: a function may not set them (Lambda refuses them too).
const RESERVED: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];

/// Lambda's limit on a function's variables: 4 KB, names and values together.
const ENVIRONMENT_LIMIT: usize = 4 * 1024;

/// A file's functions and their triggers.
#[derive(Debug, Default)]
pub struct Functions {
    pub functions: Vec<Function>,
    pub triggers: super::trigger_file::Triggers,
}

/// Reads `functions:`, a mapping of names to functions. `dir` is the rule file's directory.
pub fn read(r: &mut Reporter<'_>, node: &Node, dir: &Path) -> Functions {
    let mut out = Functions::default();
    let Kind::Map(entries) = &node.kind else {
        r.error(
            node.pos,
            format!(
                "`functions` must be a mapping of function names to functions, got {}",
                node.type_name()
            ),
        );
        return out;
    };
    for (k, v) in entries {
        let Some(function) = read_function(r, k, v, dir) else {
            continue;
        };
        let triggers = match &v.kind {
            Kind::Map(fields) => fields
                .iter()
                .find(|(k, _)| k.as_str() == Some("triggers"))
                .map(|(_, t)| super::trigger_file::read(r, t, &function)),
            _ => None,
        };
        if let Some(t) = triggers {
            out.triggers.triggers.extend(t.triggers);
            out.triggers.rules.extend(t.rules);
        }
        out.functions.push(function);
    }
    out
}

fn read_function(r: &mut Reporter<'_>, key: &Node, node: &Node, dir: &Path) -> Option<Function> {
    let before = r.count();
    let name = super::rule_file::check_name(r, key, "function name");
    let f = Fields::new(r, node, "a function", FUNCTION_KEYS)?;
    let runtime = match f.get("runtime") {
        Some(n) => runtime(r, n),
        None => {
            r.error(
                node.pos,
                "a function needs a `runtime`, e.g. `runtime: python3.12`",
            );
            None
        }
    };
    let code = match f.get("code") {
        Some(n) => directory(r, n, dir, "`code`"),
        None => {
            r.error(
                node.pos,
                "a function needs `code`: the directory of its handler, relative to this file",
            );
            None
        }
    };
    let layers = match f.get("layers") {
        None => Some(Vec::new()),
        Some(n) => layers(r, n, dir),
    };
    let handler = match (&runtime, f.get("handler")) {
        (Some(FunctionRuntime::Provided(_)), None) => Some(String::new()),
        (Some(FunctionRuntime::Provided(_)), Some(n)) => {
            reader::string(r, n, "`handler`").map(str::to_owned)
        }
        (_, Some(n)) => reader::nonempty(r, n, "`handler`").map(str::to_owned),
        (_, None) => {
            r.error(
                node.pos,
                "a function needs a `handler`, e.g. `handler: app.lambda_handler`",
            );
            None
        }
    };
    if let (Some(rt), Some(h), Some(code)) = (&runtime, &handler, &code) {
        let at = f
            .get("handler")
            .or(f.get("code"))
            .map_or(node.pos, |n| n.pos);
        if let Err(message) = check_handler(rt, h, code, layers.as_deref().unwrap_or(&[])) {
            r.error(at, message);
        }
    }
    let timeout = match f.get("timeout") {
        None => Some(Duration::from_secs(3)),
        Some(n) => reader::duration_within(
            r,
            n,
            "`timeout`",
            Duration::from_secs(1),
            Duration::from_secs(900),
        ),
    };
    let memory = match f.get("memory") {
        None => Some(128),
        Some(n) => reader::integer(r, n, "`memory` (MB)", 128..=10_240).map(|m| m as u32),
    };
    let concurrency = match f.get("concurrency") {
        None => Some(10),
        Some(n) => reader::integer(r, n, "`concurrency`", 1..=1_000).map(|c| c as u32),
    };
    let environment = match f.get("environment") {
        None => Some(Vec::new()),
        Some(n) => environment(r, n),
    };
    let description = match f.get("description") {
        None => Some(None),
        Some(n) => reader::string(r, n, "`description`").map(|s| Some(s.to_owned())),
    };
    let interpreter = match f.get("interpreter") {
        None => Some(None),
        // A path (with a `/`) is relative to this file, as `code` is; a bare name is looked
        // up on PATH.
        Some(n) => reader::nonempty(r, n, "`interpreter`").map(|s| {
            let p = PathBuf::from(s);
            Some(if s.contains('/') && p.is_relative() {
                std::path::absolute(dir.join(&p)).unwrap_or(p)
            } else {
                p
            })
        }),
    };
    if let (Some(k), Some(FunctionRuntime::Provided(_))) = (f.key_node("interpreter"), &runtime) {
        r.error(
            k.pos,
            "`interpreter` applies to python and nodejs runtimes; a provided runtime runs code/bootstrap",
        );
    }
    let max_attempts = match f.get("max_retry_attempts") {
        None => Some(FUNCTION_RETRY.max_attempts),
        Some(n) => reader::integer(r, n, "`max_retry_attempts`", 0..=2).map(|m| m as u32),
    };
    let max_event_age = match f.get("max_event_age") {
        None => Some(FUNCTION_RETRY.max_event_age),
        Some(n) => reader::duration_within(
            r,
            n,
            "`max_event_age`",
            Duration::from_secs(60),
            Duration::from_secs(6 * 3600),
        ),
    };
    if r.count() != before {
        return None;
    }
    Some(Function {
        name: name?,
        runtime: runtime?,
        handler: handler?,
        code: code?,
        layers: layers?,
        timeout: timeout?,
        memory_mb: memory?,
        concurrency: concurrency?,
        environment: environment?,
        description: description?,
        interpreter: interpreter?,
        retry: RetryPolicy {
            max_attempts: max_attempts?,
            max_event_age: max_event_age?,
        },
        file: r.file().to_owned(),
        line: key.pos.line,
        column: key.pos.column,
    })
}

fn runtime(r: &mut Reporter<'_>, node: &Node) -> Option<FunctionRuntime> {
    let id = reader::nonempty(r, node, "`runtime`")?;
    match FunctionRuntime::parse(id) {
        Some(rt) => Some(rt),
        None => {
            let hint = match did_you_mean(id, KNOWN_RUNTIMES) {
                Some(s) => format!("did you mean `{s}`?"),
                None => "use python3.x, nodejsNN.x, provided.al2023 or provided.al2".to_owned(),
            };
            r.error(node.pos, format!("unknown runtime `{id}`; {hint}"));
            None
        }
    }
}

/// A directory that exists, relative to `dir`; returned absolute.
fn directory(r: &mut Reporter<'_>, node: &Node, dir: &Path, what: &str) -> Option<PathBuf> {
    let written = reader::nonempty(r, node, what)?;
    let path = dir.join(written);
    let path = std::path::absolute(&path).unwrap_or(path);
    if !path.is_dir() {
        r.error(
            node.pos,
            format!(
                "{what} `{written}` is not a directory (looked for {}); paths are relative to this file",
                path.display()
            ),
        );
        return None;
    }
    Some(path)
}

fn layers(r: &mut Reporter<'_>, node: &Node, dir: &Path) -> Option<Vec<PathBuf>> {
    let Kind::Seq(items) = &node.kind else {
        r.error(
            node.pos,
            format!(
                "`layers` must be a list of directories, got {}",
                node.type_name()
            ),
        );
        return None;
    };
    if items.len() > 5 {
        r.error(node.pos, "a function has at most 5 layers, as on Lambda");
        return None;
    }
    let before = r.count();
    let out: Vec<PathBuf> = items
        .iter()
        .filter_map(|i| directory(r, i, dir, "each layer"))
        .collect();
    (r.count() == before).then_some(out)
}

fn environment(r: &mut Reporter<'_>, node: &Node) -> Option<Vec<(String, String)>> {
    let vars = reader::string_map(r, node, "`environment`")?;
    let before = r.count();
    let key_pos = |name: &str| match &node.kind {
        Kind::Map(entries) => entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(name))
            .map_or(node.pos, |(k, _)| k.pos),
        _ => node.pos,
    };
    for (k, _) in &vars {
        let valid = k.len() >= 2
            && k.starts_with(|c: char| c.is_ascii_alphabetic())
            && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            r.error(
                key_pos(k),
                format!("variable name `{k}` must start with a letter and hold at least two letters, digits or `_`"),
            );
        } else if RESERVED.contains(&k.as_str()) {
            r.error(
                key_pos(k),
                format!("`{k}` is set by the runtime (Lambda reserves it); choose another name"),
            );
        }
    }
    let size: usize = vars.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > ENVIRONMENT_LIMIT {
        r.error(
            node.pos,
            format!("the variables take {size} bytes; Lambda allows 4 KB (4,096 bytes)"),
        );
    }
    (r.count() == before).then_some(vars)
}

/// Checks that the handler names a file the runtime will find.
fn check_handler(
    runtime: &FunctionRuntime,
    handler: &str,
    code: &Path,
    layers: &[PathBuf],
) -> Result<(), String> {
    match runtime {
        FunctionRuntime::Provided(_) => {
            let bootstrap = code.join("bootstrap");
            if bootstrap.is_file() {
                Ok(())
            } else {
                Err(format!(
                    "a `{}` function runs `bootstrap` from its code directory, and {} does not exist",
                    runtime.id(),
                    bootstrap.display()
                ))
            }
        }
        FunctionRuntime::Python(_) => {
            let (module, _) = split_handler(handler).ok_or_else(|| {
                format!("handler `{handler}` must be `module.function`, e.g. `app.lambda_handler`")
            })?;
            let rel = module.replace(['.', '/'], std::path::MAIN_SEPARATOR_STR);
            let roots =
                std::iter::once(code.to_owned()).chain(layers.iter().map(|l| l.join("python")));
            for root in roots {
                let base = root.join(&rel);
                if base.with_extension("py").is_file() || base.join("__init__.py").is_file() {
                    return Ok(());
                }
            }
            Err(format!(
                "handler `{handler}`: no module `{module}` in {} (looked for {rel}.py)",
                code.display()
            ))
        }
        FunctionRuntime::Node(_) => {
            let (file, _) = split_handler(handler).ok_or_else(|| {
                format!("handler `{handler}` must be `file.export`, e.g. `index.handler`")
            })?;
            let base = code.join(file);
            let found = ["js", "mjs", "cjs"]
                .iter()
                .any(|ext| base.with_extension(ext).is_file());
            if found {
                Ok(())
            } else {
                Err(format!(
                    "handler `{handler}`: no {file}.js, {file}.mjs or {file}.cjs in {}",
                    code.display()
                ))
            }
        }
    }
}

/// `module.function` split at the last dot (Python: `pkg.mod.fn`) or, for Node, at the first
/// dot after the last `/` (`dir/index.handler`).
fn split_handler(handler: &str) -> Option<(&str, &str)> {
    let (module, function) = handler.rsplit_once('.')?;
    (!module.is_empty() && !function.is_empty()).then_some((module, function))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtimes_are_lambdas_identifiers() {
        assert_eq!(
            FunctionRuntime::parse("python3.12"),
            Some(FunctionRuntime::Python("3.12".into()))
        );
        assert_eq!(
            FunctionRuntime::parse("nodejs20.x"),
            Some(FunctionRuntime::Node("20".into()))
        );
        assert_eq!(
            FunctionRuntime::parse("provided.al2023").map(|r| r.id()),
            Some("provided.al2023".to_owned())
        );
        for bad in [
            "python3",
            "python3.",
            "python2.7",
            "nodejs20",
            "node20.x",
            "java21",
        ] {
            assert_eq!(FunctionRuntime::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn handlers_split_at_the_last_dot() {
        assert_eq!(split_handler("app.handler"), Some(("app", "handler")));
        assert_eq!(split_handler("pkg.mod.fn"), Some(("pkg.mod", "fn")));
        assert_eq!(split_handler("handler"), None);
        assert_eq!(split_handler(".handler"), None);
    }
}
