//! `[log]`.

use super::Checker;
use crate::config::defaults as d;
use crate::config::raw;
use crate::config::{LogConfig, LogFormat};

pub(super) fn log(c: &mut Checker, raw: &raw::Log) -> LogConfig {
    let format = match raw.format.as_deref().unwrap_or(d::LOG_FORMAT.default) {
        "pretty" => LogFormat::Pretty,
        "json" => LogFormat::Json,
        other => {
            c.issue(
                "log.format",
                format!("{other:?}: expected \"pretty\" or \"json\""),
            );
            LogFormat::Pretty
        }
    };
    LogConfig {
        format,
        access_log: raw.access_log.unwrap_or(d::LOG_ACCESS_LOG.default),
    }
}
