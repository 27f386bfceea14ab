//! The one integration-test binary (one link step instead of one per file). Every test here
//! drives the real `trigd` binary or the library's public API.

mod cli;
mod diagnostics;
mod replay;
mod targets;
mod util;
