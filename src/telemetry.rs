//! Logging setup (`RUST_LOG`, pretty or JSON), fatal errors in the installed format, and error
//! rendering for logs.
//!
//! Tokens and passwords are never passed to a log macro anywhere in the crate; request types
//! that hold them implement `Debug` without them.

use std::error::Error;
use std::io::IsTerminal as _;
use std::sync::OnceLock;

use tracing::Level;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The format [`init`] installed, once it has.
static INSTALLED: OnceLock<LogFormat> = OnceLock::new();

/// Installs the global subscriber. `RUST_LOG` overrides the default `info` level.
pub(crate) fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal, never in files or container logs.
        .with_ansi(std::io::stderr().is_terminal());
    let installed = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    if installed.is_ok() {
        let _ = INSTALLED.set(format);
    }
}

/// Whether a fatal error should be reported through the log, as one JSON line: [`init`]
/// installed the JSON format, and `RUST_LOG` lets errors through (else it goes to stderr as
/// plain text rather than nowhere).
pub(crate) fn fatal_as_json() -> bool {
    INSTALLED.get() == Some(&LogFormat::Json) && tracing::enabled!(Level::ERROR)
}

/// Logs the error the process exits with: `error` is the error with its causes.
pub(crate) fn fatal(error: &str) {
    tracing::error!(error, "fatal error; exiting");
}

/// `error: cause: cause's cause`, for one log field or one config message.
pub(crate) fn error_chain(e: &dyn Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
