//! `[store]`.

use std::path::PathBuf;

use super::Checker;
use crate::config::defaults as d;
use crate::config::raw;
use crate::config::StoreConfig;

pub(super) fn store(c: &mut Checker, raw: raw::Store) -> StoreConfig {
    match raw.kind.as_deref().unwrap_or(d::STORE_KIND.default) {
        "embedded" => {
            if raw.url.is_some()
                || raw.url_file.is_some()
                || raw.key_prefix.is_some()
                || raw.ca.is_some()
            {
                c.issue("store.url", "only used with kind = \"redis\"");
            }
            let path = raw.path.unwrap_or_else(|| d::STORE_PATH.default.to_owned());
            StoreConfig::Embedded {
                path: c.path(&path),
            }
        }
        "memory" => {
            c.notice(
                "store.kind",
                "\"memory\": sessions are lost on restart; use \"embedded\" in production",
            );
            StoreConfig::Memory
        }
        "redis" => {
            if raw.path.is_some() {
                c.issue("store.path", "only used with kind = \"embedded\"");
            }
            let issues = c.issue_count();
            let url = match c.secret("store.url", raw.url, raw.url_file) {
                None if c.issue_count() > issues => String::new(),
                None => {
                    c.issue("store.url", "required with kind = \"redis\"");
                    String::new()
                }
                Some(url) => {
                    // The message never repeats the URL: it may hold a password.
                    if redis::Client::open(url.as_str()).is_err() {
                        c.issue(
                            "store.url",
                            "not a Redis URL (redis://[:password@]host[:port][/db] or rediss://…)",
                        );
                    }
                    url
                }
            };
            let ca = raw.ca.map(|ca| {
                if !url.starts_with("rediss://") {
                    c.issue("store.ca", "only used with a rediss:// URL");
                }
                let ca = c.path(&ca);
                if !ca.is_file() {
                    c.issue(
                        "store.ca",
                        format!("{} is not a readable file", ca.display()),
                    );
                }
                ca
            });
            StoreConfig::Redis {
                url,
                key_prefix: raw
                    .key_prefix
                    .unwrap_or_else(|| d::STORE_KEY_PREFIX.default.to_owned()),
                ca,
            }
        }
        other => {
            c.issue(
                "store.kind",
                format!("{other:?}: expected \"embedded\", \"redis\" or \"memory\""),
            );
            StoreConfig::Embedded {
                path: PathBuf::new(),
            }
        }
    }
}
