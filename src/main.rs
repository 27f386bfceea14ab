//! The `trigd` command line: parses arguments, calls the library, maps outcomes to exit codes.
//! Nothing else lives here.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};

use trigd::config::{self, LoadError};
use trigd::rules::{RuleSet, Settings};
use trigd::{dry_run, next, rule_tests, schema};

/// A self-hosted, EventBridge-compatible event-trigger router.
#[derive(Parser)]
#[command(name = "trigd", version, about, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate rule files: exit 0 when valid, 1 when problems were found, 2 on usage or I/O errors.
    Check {
        /// A directory of rule files (searched recursively), or one file.
        rules: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Dry-run an event: which rules match, why the others don't, and each target's payload.
    Match {
        rules: PathBuf,
        /// The event as a JSON file, or `-` for standard input.
        #[arg(long)]
        event: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Run the rule tests (`*.test.yaml`) beside the rules; exit 1 on any failure.
    Test { rules: PathBuf },
    /// Show the upcoming fires of schedule rules, in UTC.
    Next {
        rules: PathBuf,
        /// Only this rule.
        #[arg(long)]
        rule: Option<String>,
        /// How many fires per rule.
        #[arg(short = 'n', default_value_t = 5)]
        count: usize,
        /// Fires strictly after this instant (RFC 3339); default now. `rate` schedules are
        /// anchored here.
        #[arg(long)]
        after: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Print the JSON Schema of rule files (or of rule tests), for editors.
    Schema {
        #[arg(value_enum, default_value_t = SchemaKind::Rules)]
        kind: SchemaKind,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SchemaKind {
    Rules,
    Tests,
}

/// Exit statuses with a meaning.
const EXIT_FOUND_PROBLEMS: u8 = 1;
const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprintln!("trigd: error: {err:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Check { rules, format } => check(&rules, format),
        Command::Match {
            rules,
            event,
            format,
        } => match_event(&rules, &event, format),
        Command::Test { rules } => test(&rules),
        Command::Next {
            rules,
            rule,
            count,
            after,
            format,
        } => next_fires(&rules, rule.as_deref(), count, after.as_deref(), format),
        Command::Schema { kind } => {
            let s = match kind {
                SchemaKind::Rules => schema::rules(),
                SchemaKind::Tests => schema::tests(),
            };
            print(&format!("{}\n", serde_json::to_string_pretty(&s)?))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Loads rules; invalid rules are printed and turned into exit status 1.
fn load(rules: &Path, format: Format) -> anyhow::Result<Result<RuleSet, ExitCode>> {
    match config::load_rules(rules, Settings::default()) {
        Ok(set) => Ok(Ok(set)),
        Err(LoadError::Invalid(diags)) => {
            match format {
                Format::Json => print(&format!("{}\n", diags.to_json()))?,
                Format::Text => eprintln!("{diags}\n{} problem(s) found", diags.0.len()),
            }
            Ok(Err(ExitCode::from(EXIT_FOUND_PROBLEMS)))
        }
        Err(e @ LoadError::Io { .. }) => Err(e.into()),
    }
}

fn check(rules: &Path, format: Format) -> anyhow::Result<ExitCode> {
    let set = match load(rules, format)? {
        Ok(set) => set,
        Err(code) => return Ok(code),
    };
    // Rule tests are checked too, so that a test naming a renamed rule is caught.
    let tests = match rule_tests::load(rules, &set) {
        Ok(t) => t,
        Err(LoadError::Invalid(diags)) => {
            match format {
                Format::Json => print(&format!("{}\n", diags.to_json()))?,
                Format::Text => eprintln!("{diags}\n{} problem(s) found", diags.0.len()),
            }
            return Ok(ExitCode::from(EXIT_FOUND_PROBLEMS));
        }
        Err(e) => return Err(e.into()),
    };
    match format {
        Format::Json => print(&format!("{}\n", serde_json::json!({"errors": []})))?,
        Format::Text => {
            let schedules = set
                .rules
                .iter()
                .filter(|r| matches!(r.trigger, trigd::rules::Trigger::Schedule(_)))
                .count();
            print(&format!(
                "ok: {} rules ({} pattern, {} schedule), {} sources, {} tests\n",
                set.rules.len(),
                set.rules.len() - schedules,
                schedules,
                set.sources.len(),
                tests.len()
            ))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn read_input(path: &Path) -> anyhow::Result<String> {
    if path == Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the event from standard input")?;
        Ok(s)
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
    }
}

fn match_event(rules: &Path, event: &Path, format: Format) -> anyhow::Result<ExitCode> {
    let set = match load(rules, format)? {
        Ok(set) => set,
        Err(code) => return Ok(code),
    };
    let text = read_input(event)?;
    let report = dry_run::run(&set, &text, Utc::now())
        .with_context(|| format!("matching {}", event.display()))?;
    match format {
        Format::Json => print(&format!("{}\n", report.to_json()))?,
        Format::Text => print(&report.to_text())?,
    }
    Ok(ExitCode::SUCCESS)
}

fn test(rules: &Path) -> anyhow::Result<ExitCode> {
    let set = match load(rules, Format::Text)? {
        Ok(set) => set,
        Err(code) => return Ok(code),
    };
    let tests = match rule_tests::load(rules, &set) {
        Ok(t) => t,
        Err(LoadError::Invalid(diags)) => {
            eprintln!("{diags}\n{} problem(s) found", diags.0.len());
            return Ok(ExitCode::from(EXIT_FOUND_PROBLEMS));
        }
        Err(e) => return Err(e.into()),
    };
    let outcomes = rule_tests::run(&set, &tests, Utc::now());
    let color = std::io::stdout().is_terminal();
    let (ok, fail) = if color {
        ("\x1b[32mok\x1b[0m  ", "\x1b[31mFAIL\x1b[0m")
    } else {
        ("ok  ", "FAIL")
    };
    let mut out = String::new();
    let mut failed = 0;
    for o in &outcomes {
        if o.failures.is_empty() {
            out.push_str(&format!("{ok} {}\n", o.name));
        } else {
            failed += 1;
            out.push_str(&format!("{fail} {} ({}:{})\n", o.name, o.file, o.line));
            for f in &o.failures {
                out.push_str(&format!("      {f}\n"));
            }
        }
    }
    let uncovered = rule_tests::uncovered(&set, &tests);
    if !uncovered.is_empty() {
        out.push_str(&format!(
            "\nrules no test exercises: {}\n",
            uncovered.join(", ")
        ));
    }
    out.push_str(&format!(
        "\n{} passed, {failed} failed\n",
        outcomes.len() - failed
    ));
    print(&out)?;
    Ok(if failed > 0 {
        ExitCode::from(EXIT_FOUND_PROBLEMS)
    } else {
        ExitCode::SUCCESS
    })
}

fn next_fires(
    rules: &Path,
    only: Option<&str>,
    count: usize,
    after: Option<&str>,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let set = match load(rules, format)? {
        Ok(set) => set,
        Err(code) => return Ok(code),
    };
    let after: DateTime<Utc> = match after {
        Some(s) => DateTime::parse_from_rfc3339(s)
            .with_context(|| format!("--after {s:?} is not an RFC 3339 timestamp"))?
            .with_timezone(&Utc),
        None => Utc::now(),
    };
    if let Some(name) = only {
        if set.rule(name).is_none() {
            anyhow::bail!("no rule is named `{name}`");
        }
    }
    let previews = next::preview(&set, only, count, after);
    if only.is_some() && previews.is_empty() {
        anyhow::bail!("rule `{}` has no schedule", only.unwrap_or_default());
    }
    let text: String = match format {
        Format::Json => previews
            .iter()
            .map(|p| format!("{}\n", p.to_json()))
            .collect(),
        Format::Text => previews.iter().map(next::Preview::to_text).collect(),
    };
    print(&text)?;
    Ok(ExitCode::SUCCESS)
}
