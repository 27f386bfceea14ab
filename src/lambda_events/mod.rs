//! The shapes Lambda hands a function and takes back when a trigger invokes it (API Gateway's
//! proxy payloads, SQS, S3 and SNS records), and the route keys of an HTTP API. Pure: no IO,
//! no clock; what a shape needs of the moment (request id, time) comes in as an argument.

pub mod api;
pub mod route_key;
pub mod s3;
pub mod sns;
pub mod sqs;

pub use route_key::{RouteKey, RouteKeyError, Segment};
