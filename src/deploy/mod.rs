//! `trigd deploy` and `trigd export`: the same rule files on AWS's managed engine
//! (EventBridge rules and targets on one bus, EventBridge Scheduler schedules), applied
//! idempotently, or written as a CloudFormation/SAM template.
//!
//! A room of its own: it reads the validated model ([`crate::rules`]) and the rule files
//! ([`crate::config`]); nothing depends on it.
//!
//! * [`source`]: what the model drops and deploy needs (patterns as written, target
//!   positions), read again from the rule files.
//! * [`desired`] (pure): the rule set as AWS resources in AWS's field names, normalised, plus
//!   every finding (undeployable features at `file:line:column`, quotas, ranges).
//! * [`plan`] (pure): desired against actual, field by field; its text and JSON forms.
//! * [`remote`]: reads what AWS holds (owned resources and same-named conflicts) through the
//!   SDK, and applies a plan: upserts in dependency order, then deletions (targets first).
//! * [`package`]: a local function's code directory as a deterministic zip.
//! * [`session`]: one `trigd deploy` run, from the rules to its outcome.
//! * [`export`] (pure): the deterministic CloudFormation or SAM template.

pub mod desired;
pub mod export;
pub mod package;
pub mod plan;
pub mod remote;
pub mod session;
pub mod source;

pub use desired::{Context, Desired, Finding, Severity};
pub use plan::{Actual, Plan};
pub use source::{Origin, RuleSources};

/// The kinds of resources deploy manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// An EventBridge rule with its targets.
    Rule,
    /// An EventBridge Scheduler schedule.
    Schedule,
    /// A statement in a Lambda function's resource policy that lets EventBridge invoke it for
    /// one rule; named `SID@FUNCTION_ARN`.
    Permission,
    /// This deployment's statement in an SQS queue's policy (targets and dead-letter queues):
    /// EventBridge may send to it from the rules listed; named by the queue's ARN.
    QueuePolicy,
    /// The same in an SNS topic's policy; named by the topic's ARN.
    TopicPolicy,
    /// An EventBridge connection (the authorisation of an `http` target); found by its name's
    /// prefix, as connections cannot be tagged.
    Connection,
    /// An EventBridge API destination (the endpoint of an `http` target), named as its
    /// connection.
    ApiDestination,
    /// A Lambda layer made from a function's layer directory, named with the deployment's
    /// prefix (layers cannot be tagged); compared by its latest version's code.
    Layer,
    /// A Lambda function made from a local function, tagged like rules.
    Function,
    /// An SQS event-source mapping of such a function (an `sqs` trigger); named
    /// `FUNCTION@QUEUE_ARN`, owned with its function.
    EventSourceMapping,
    /// An SNS subscription of such a function to a topic (an `sns` trigger); named
    /// `FUNCTION@TOPIC_ARN`, owned with its function.
    Subscription,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Rule => "rule",
            Kind::Schedule => "schedule",
            Kind::Permission => "permission",
            Kind::QueuePolicy => "queue policy",
            Kind::TopicPolicy => "topic policy",
            Kind::Connection => "connection",
            Kind::ApiDestination => "api destination",
            Kind::Layer => "layer",
            Kind::Function => "function",
            Kind::EventSourceMapping => "event-source mapping",
            Kind::Subscription => "subscription",
        }
    }
}

/// One resource, desired or read: its fields in AWS's names, normalised (JSON held as parsed
/// values, defaults filled in), so that equal means "no change".
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub kind: Kind,
    pub name: String,
    pub spec: serde_json::Value,
    /// Where it is written (desired resources).
    pub origin: Option<Origin>,
}

#[cfg(test)]
mod tests;
