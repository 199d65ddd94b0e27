//! `[log]`.

use std::collections::HashSet;

use super::Checker;
use crate::config::defaults as d;
use crate::config::raw;
use crate::config::{AccessField, LogConfig, LogFormat};

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
        access_fields: access_fields(c, raw.access_fields.as_deref().unwrap_or_default()),
    }
}

/// `log.access_fields`: each name known and listed once; empty means every field.
fn access_fields(c: &mut Checker, names: &[String]) -> std::sync::Arc<[AccessField]> {
    let mut fields = Vec::with_capacity(names.len());
    let mut seen = HashSet::new();
    for (i, name) in names.iter().enumerate() {
        let key = format!("{}[{i}]", d::LOG_ACCESS_FIELDS.key);
        let Some(field) = AccessField::ALL.into_iter().find(|f| f.name() == name) else {
            let problem = match crate::config::keys::closest(name, &AccessField::NAMES) {
                Some(close) => format!("{name:?}: no such field; did you mean `{close}`?"),
                None => format!(
                    "{name:?}: no such field (known: {})",
                    AccessField::NAMES.join(", ")
                ),
            };
            c.issue(key, problem);
            continue;
        };
        if !seen.insert(field) {
            c.issue(key, format!("{name:?} is listed twice"));
            continue;
        }
        fields.push(field);
    }
    if fields.is_empty() {
        fields.extend(AccessField::ALL);
    }
    fields.into()
}
