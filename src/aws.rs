//! AWS: one SDK configuration shared by every client (the standard credential chain, the
//! region from trigd.yaml, and an endpoint override, `endpoint_url` or `AWS_ENDPOINT_URL`, so
//! that tests run against a local emulator), and the one function that decides whether an
//! SDK error is worth retrying.
//!
//! Only this module, `targets/` and (later) `sources/` name `aws_sdk_*`.

use aws_config::{BehaviorVersion, Region};
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};

use crate::outcome::{ErrorCode, Outcome};

/// The AWS clients, built once.
#[derive(Debug, Clone)]
pub struct Aws {
    pub sqs: aws_sdk_sqs::Client,
    pub sns: aws_sdk_sns::Client,
    pub eventbridge: aws_sdk_eventbridge::Client,
    pub lambda: aws_sdk_lambda::Client,
}

impl Aws {
    /// Loads the shared configuration. Credentials are resolved lazily, on the first call that
    /// needs them; `AWS_ENDPOINT_URL` is honoured by the SDK itself when `endpoint_url` is
    /// not given.
    pub async fn new(region: &str, endpoint_url: Option<&str>) -> Aws {
        let mut loader =
            aws_config::defaults(BehaviorVersion::latest()).region(Region::new(region.to_owned()));
        if let Some(url) = endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let conf = loader.load().await;
        Aws {
            sqs: aws_sdk_sqs::Client::new(&conf),
            sns: aws_sdk_sns::Client::new(&conf),
            eventbridge: aws_sdk_eventbridge::Client::new(&conf),
            lambda: aws_sdk_lambda::Client::new(&conf),
        }
    }
}

/// Error codes AWS services use for "slow down".
const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "SlowDown",
    "ProvisionedThroughputExceededException",
];

/// Error codes for "not allowed".
const NO_PERMISSIONS: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
    "AuthorizationError",
    "KMSAccessDeniedException",
];

/// What an SDK error means for a delivery: throttling, 5xx, timeouts and network failures are
/// retried; a missing resource, missing permissions and invalid requests go to the dead letter.
/// The only place that reads AWS error codes.
pub(crate) fn classify<E>(err: &SdkError<E, HttpResponse>) -> Outcome
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let detail = aws_sdk_sqs::error::DisplayErrorContext(err).to_string();
    match err {
        SdkError::TimeoutError(_) => retry(ErrorCode::Timeout, detail),
        SdkError::DispatchFailure(_) => retry(ErrorCode::Network, detail),
        SdkError::ConstructionFailure(_) => fail(ErrorCode::InvalidParameter, detail),
        SdkError::ResponseError(ctx) => {
            if ctx.raw().status().is_server_error() {
                retry(ErrorCode::TargetError, detail)
            } else {
                retry(ErrorCode::Network, detail)
            }
        }
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            let code = err.code().unwrap_or_default();
            let message = match err.message() {
                Some(m) => format!("{code}: {m}"),
                None => code.to_owned(),
            };
            if THROTTLING.contains(&code) || status == 429 {
                retry(ErrorCode::Throttling, message)
            } else if status >= 500 {
                retry(ErrorCode::TargetError, message)
            } else if NO_PERMISSIONS.contains(&code) || status == 401 || status == 403 {
                fail(ErrorCode::NoPermissions, message)
            } else if status == 404
                || code.contains("NotFound")
                || code.contains("NonExistent")
                || code.contains("DoesNotExist")
            {
                fail(ErrorCode::NoResource, message)
            } else {
                fail(ErrorCode::InvalidParameter, message)
            }
        }
        _ => retry(ErrorCode::Network, detail),
    }
}

fn retry(code: ErrorCode, error: String) -> Outcome {
    Outcome::Retry {
        code,
        error,
        retry_after: None,
    }
}

fn fail(code: ErrorCode, error: String) -> Outcome {
    Outcome::Fail { code, error }
}
