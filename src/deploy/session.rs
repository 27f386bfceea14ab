//! One `trigd deploy` run, from the loaded rules to the outcome: the checks made before any
//! call to AWS, then (in the SDK's async world) the account, the desired and actual states,
//! the plan, and, when asked and allowed, the apply and the re-plan that verifies it. Printing
//! and exit codes are the caller's (`main.rs`).

use super::desired::{self, Context, Desired};
use super::package::{self, PackageError};
use super::plan::{self, Plan};
use super::remote::{self, Clients, RemoteError};
use super::source::RuleSources;
use crate::rules::RuleSet;

/// What was asked, besides the context.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Apply the plan (otherwise only plan).
    pub apply: bool,
    pub skip_undeployable: bool,
    pub adopt: bool,
    pub update_secrets: bool,
    /// Overrides the SDK's region chain.
    pub region: Option<String>,
}

/// How a run ended.
#[derive(Debug)]
pub enum Outcome {
    /// Refused before any call to AWS: the findings (errors or undeployable features).
    Refused(Desired),
    /// The plan (with `apply`, one that could not or need not be applied: errors, conflicts, or
    /// no changes).
    Planned(Plan),
    /// Applied: the plan, the write calls made, and what still differs after (empty when all
    /// went as planned).
    Applied {
        plan: Plan,
        writes: usize,
        remaining: Plan,
    },
}

/// Why a run failed (rather than ended with an outcome).
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("packaging function {function}")]
    Package {
        function: String,
        #[source]
        source: PackageError,
    },
    #[error(transparent)]
    Remote(#[from] RemoteError),
}

/// The local functions' code and layers, zipped.
pub fn packages(
    set: &RuleSet,
) -> Result<std::collections::BTreeMap<String, package::Package>, SessionError> {
    let mut out = std::collections::BTreeMap::new();
    for f in &set.functions {
        let dirs = std::iter::once((f.name.clone(), &f.code)).chain(
            f.layers
                .iter()
                .enumerate()
                .map(|(i, dir)| (desired::layer_package(&f.name, i), dir)),
        );
        for (key, dir) in dirs {
            let p = package::package(dir).map_err(|source| SessionError::Package {
                function: f.name.clone(),
                source,
            })?;
            out.insert(key, p);
        }
    }
    Ok(out)
}

/// Runs deploy for `set` in the context `ctx` makes of a region and an account.
pub async fn run(
    set: &RuleSet,
    sources: &RuleSources,
    ctx: impl Fn(String, String) -> Context,
    opts: &Options,
    now: impl Fn() -> chrono::DateTime<chrono::Utc>,
) -> Result<Outcome, SessionError> {
    // Checked before any call: what cannot be deployed, ranges, names.
    let offline = desired::build(
        set,
        sources,
        &ctx("us-east-1".to_owned(), "123456789012".to_owned()),
    );
    if opts.apply && offline.blocks(opts.skip_undeployable) {
        return Ok(Outcome::Refused(offline));
    }
    let (clients, region) = Clients::load(opts.region.as_deref()).await?;
    let account = clients.account().await?;
    let ctx = ctx(region, account);
    let wanted = desired::build(set, sources, &ctx);
    let actual = remote::read(&clients, &ctx, &wanted.resources).await?;
    let mut the_plan = plan::diff_with(&wanted, &actual, now(), opts.adopt);
    if opts.update_secrets {
        plan::resend_secrets(&mut the_plan, &wanted);
    }
    if !opts.apply || the_plan.has_errors(opts.skip_undeployable) || !the_plan.has_changes() {
        return Ok(Outcome::Planned(the_plan));
    }
    remote::apply(&clients, &ctx, &the_plan).await?;
    let writes = clients.writes();
    // Re-planned: what AWS holds now must match; a difference is reported, not retried.
    let after = remote::read(&clients, &ctx, &wanted.resources).await?;
    let remaining = plan::diff(&wanted, &after, now());
    Ok(Outcome::Applied {
        plan: the_plan,
        writes,
        remaining,
    })
}
