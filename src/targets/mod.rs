//! Targets: where deliveries go. One module per kind, one outcome type for all of them, so the
//! dispatcher decides retries and dead letters without knowing the kinds.

/// One attempt at one delivery, as a target sees it.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// The idempotency key (see [`crate::delivery::delivery_id`]).
    pub delivery_id: &'a str,
    pub rule: &'a str,
    /// The target's id within the rule.
    pub target: &'a str,
    pub event_id: &'a str,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The exact text to send.
    pub payload: &'a str,
    /// The event's JSON text (EventBridge targets take its source and detail-type).
    pub event: &'a str,
    /// Keep what the target printed (a command's output) in [`Outcome::Delivered`], for the
    /// log (`log_output: true`, or debug logging).
    pub keep_output: bool,
}

pub use crate::outcome::{ErrorCode, MAX_RESPONSE, Outcome, Output, Response};

pub mod command;
pub mod eventbridge;
pub mod function;
pub mod http;
pub mod lambda;
pub mod log;
pub mod sns;
pub mod sqs;

use crate::rules::TargetKind;

/// Why [`Targets::new`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TargetsError {
    /// The shared HTTP client could not be built (e.g. the TLS roots could not be loaded).
    #[error("cannot build the HTTP client")]
    HttpClient(#[source] http::ClientError),
}

/// The clients every delivery shares, built once: one pooled HTTP client for all `http`
/// targets, so connections to a target are reused across deliveries.
#[derive(Debug, Clone)]
pub struct Targets {
    /// Pooled, redirects off, user agent set (see [`http`]).
    http: http::Client,
    /// AWS clients, when the daemon's rules use AWS targets.
    aws: Option<crate::aws::Aws>,
    /// The local functions, for `function` targets.
    functions: Option<std::sync::Arc<crate::functions::Host>>,
}

impl Targets {
    /// `http` targets go through the proxies the environment names (`HTTPS_PROXY`, ...).
    pub fn new() -> Result<Targets, TargetsError> {
        Targets::with_proxies(http::Proxies::from_env())
    }

    /// `http` targets go through `proxies`.
    pub fn with_proxies(proxies: http::Proxies) -> Result<Targets, TargetsError> {
        Ok(Targets {
            http: http::client(proxies).map_err(TargetsError::HttpClient)?,
            aws: None,
            functions: None,
        })
    }

    /// Sends an event to an SQS dead-letter queue (see [`sqs::send_dead_letter`]).
    pub async fn send_dead_letter(
        &self,
        queue_url: &str,
        event: &str,
        attributes: &sqs::DeadLetterAttributes<'_>,
    ) -> Result<(), String> {
        match &self.aws {
            Some(aws) => sqs::send_dead_letter(&aws.sqs, queue_url, event, attributes).await,
            None => Err("no AWS clients: trigd was started without AWS configuration".to_owned()),
        }
    }

    /// Adds the local functions that `function` targets invoke.
    pub fn with_functions(mut self, host: std::sync::Arc<crate::functions::Host>) -> Targets {
        self.functions = Some(host);
        self
    }

    /// Adds the AWS clients that AWS targets use.
    pub fn with_aws(mut self, aws: crate::aws::Aws) -> Targets {
        self.aws = Some(aws);
        self
    }

    /// One attempt at one delivery. Never panics; every failure is an [`Outcome`], so the
    /// dispatcher decides retries and dead letters from the outcome alone.
    ///
    /// The AWS SDK's and the command's futures are boxed: inline, they made this future (and
    /// every attempt task) about 18 KiB, copied in full at each attempt; the `http` target's,
    /// the hot path at about 1.3 KiB, stays inline.
    pub async fn deliver(&self, kind: &TargetKind, attempt: &Attempt<'_>) -> Outcome {
        match kind {
            TargetKind::Http {
                url,
                method,
                headers,
                timeout,
            } => {
                let request = http::Request {
                    url,
                    method,
                    headers,
                    timeout: *timeout,
                };
                http::deliver(&self.http, &request, attempt).await
            }
            TargetKind::Command {
                argv,
                timeout,
                cwd,
                env,
                on_success,
                ..
            } => {
                let command = command::Invocation {
                    argv,
                    timeout: *timeout,
                    cwd: cwd.as_deref(),
                    env,
                    capture: on_success.is_some(),
                };
                Box::pin(command::deliver(&command, attempt)).await
            }
            TargetKind::Log => log::deliver(attempt),
            TargetKind::Function {
                name, on_success, ..
            } => match &self.functions {
                Some(host) => {
                    Box::pin(function::deliver(host, name, on_success.is_some(), attempt)).await
                }
                None => Outcome::Fail {
                    code: ErrorCode::InvalidParameter,
                    error: "local functions are not running in this process".to_owned(),
                },
            },
            TargetKind::Sqs {
                queue_url,
                message_group_id,
            } => match &self.aws {
                Some(aws) => {
                    Box::pin(sqs::deliver(
                        &aws.sqs,
                        queue_url,
                        message_group_id.as_deref(),
                        attempt,
                    ))
                    .await
                }
                None => no_aws(),
            },
            TargetKind::Sns { topic_arn, subject } => match &self.aws {
                Some(aws) => {
                    Box::pin(sns::deliver(
                        &aws.sns,
                        topic_arn,
                        subject.as_deref(),
                        attempt,
                    ))
                    .await
                }
                None => no_aws(),
            },
            TargetKind::EventBridge {
                bus,
                source,
                detail_type,
            } => match &self.aws {
                Some(aws) => {
                    Box::pin(eventbridge::deliver(
                        &aws.eventbridge,
                        bus,
                        source.as_deref(),
                        detail_type.as_deref(),
                        attempt,
                    ))
                    .await
                }
                None => no_aws(),
            },
            TargetKind::Lambda {
                function,
                invocation_type,
                on_success,
                ..
            } => match &self.aws {
                Some(aws) => {
                    let capture = on_success.is_some();
                    Box::pin(lambda::deliver(
                        &aws.lambda,
                        function,
                        *invocation_type,
                        capture,
                        attempt,
                    ))
                    .await
                }
                None => no_aws(),
            },
        }
    }
}

fn no_aws() -> Outcome {
    Outcome::Fail {
        code: ErrorCode::InvalidParameter,
        error: "no AWS clients: trigd was started without AWS configuration".to_owned(),
    }
}

/// What EventBridge's `TARGET_ARN` says for a target: its AWS ARN, or its address.
pub fn target_arn(kind: &TargetKind, settings: &crate::rules::Settings) -> String {
    match kind {
        TargetKind::Lambda { function, .. } if function.starts_with("arn:") => function.clone(),
        TargetKind::Lambda { function, .. } => format!(
            "arn:aws:lambda:{}:{}:function:{function}",
            settings.region, settings.account
        ),
        TargetKind::Sqs { queue_url, .. } => crate::rules::queue_arn(queue_url, &settings.region),
        TargetKind::Sns { topic_arn, .. } => topic_arn.clone(),
        TargetKind::EventBridge { bus, .. } if bus.starts_with("arn:") => bus.clone(),
        TargetKind::EventBridge { bus, .. } => format!(
            "arn:aws:events:{}:{}:event-bus/{bus}",
            settings.region, settings.account
        ),
        TargetKind::Http { url, .. } => url.as_str().to_owned(),
        TargetKind::Command { argv, .. } => {
            format!(
                "command:{}",
                argv.first().map(String::as_str).unwrap_or_default()
            )
        }
        TargetKind::Log => "log".to_owned(),
        TargetKind::Function { name, .. } => {
            crate::functions::function_arn(&settings.region, &settings.account, name)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_attempt_future_stays_small() {
        // Each attempt task holds this future; see `Targets::deliver`.
        let targets = super::Targets::with_proxies(super::http::Proxies::none()).unwrap();
        let attempt = super::Attempt {
            delivery_id: "d",
            rule: "r",
            target: "t",
            event_id: "e",
            attempt: 1,
            payload: "{}",
            event: "{}",
            keep_output: false,
        };
        let future = targets.deliver(&crate::rules::TargetKind::Log, &attempt);
        let size = std::mem::size_of_val(&future);
        assert!(size <= 4096, "{size} bytes");
    }
}
