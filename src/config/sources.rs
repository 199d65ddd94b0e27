//! Where each value of a loaded configuration came from, for `portcullis check --explain`: the
//! file, a `PORTCULLIS_*` variable, a secret's `*_file`, or the default. Secrets are shown
//! redacted: a Redis URL without its password, a password hash not at all.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::{defaults, keys, Config, StoreConfig};

/// One key of a loaded configuration, where its value came from, and the value as `check
/// --explain` shows it (secrets redacted).
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Setting {
    pub key: String,
    pub source: Source,
    pub value: String,
}

/// Where a value came from.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum Source {
    /// The configuration file.
    File,
    /// This environment variable.
    Env(String),
    /// The file a `*_file` key names (a secret).
    SecretFile(PathBuf),
    /// Nowhere: the default.
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File => f.write_str("file"),
            Self::Env(var) => write!(f, "env {var}"),
            Self::SecretFile(path) => write!(f, "file {}", path.display()),
            Self::Default => f.write_str("default"),
        }
    }
}

const REDACTED: &str = "(redacted)";

/// The settings of `config`, as the table it was deserialized from had them: `table` after the
/// environment was laid over it, `origins` the keys the environment set, `base` the config
/// file's folder. Every key of the table sections that has a value or a default, in the order of
/// the `raw` types; then the password hash of each `[[users]]` table.
pub(super) fn settings(
    table: &toml::Table,
    origins: &BTreeMap<String, String>,
    base: &Path,
    config: &Config,
) -> Vec<Setting> {
    let mut out = Vec::new();
    for section in keys::table_sections() {
        let written = table.get(section).and_then(toml::Value::as_table);
        for key in keys::section_fields(section) {
            let dotted = format!("{section}.{key}");
            let value = written.and_then(|t| t.get(*key));
            match value {
                Some(value) => out.push(Setting {
                    source: origins
                        .get(&dotted)
                        .map_or(Source::File, |var| Source::Env(var.clone())),
                    value: shown(&dotted, value),
                    key: dotted.clone(),
                }),
                None => {
                    if let Some(default) = default_of(&dotted, config) {
                        out.push(Setting {
                            key: dotted.clone(),
                            source: Source::Default,
                            value: default,
                        });
                    }
                }
            }
            // `url_file` holds `url`: a key `x_file` beside a key `x` (not `users_file`).
            let secret = key
                .strip_suffix("_file")
                .filter(|stem| keys::section_fields(section).contains(stem))
                .and(dotted.strip_suffix("_file"));
            if let (Some(secret), Some(path)) = (secret, value.and_then(toml::Value::as_str)) {
                out.push(Setting {
                    key: secret.to_owned(),
                    source: Source::SecretFile(base.join(path)),
                    value: match &config.store {
                        StoreConfig::Redis { url, .. } if secret == "store.url" => redact_url(url),
                        _ => REDACTED.to_owned(),
                    },
                });
            }
        }
    }
    let users = table.get("users").and_then(toml::Value::as_array);
    for (i, user) in users.into_iter().flatten().enumerate() {
        let source = match user.get("password_hash_file").and_then(toml::Value::as_str) {
            Some(path) => Source::SecretFile(base.join(path)),
            None => Source::File,
        };
        out.push(Setting {
            key: format!("users[{i}].password_hash"),
            source,
            value: REDACTED.to_owned(),
        });
    }
    out
}

/// `value` of `key` as TOML writes it, a secret redacted.
fn shown(key: &str, value: &toml::Value) -> String {
    match (key, value) {
        ("store.url", toml::Value::String(url)) => redact_url(url),
        _ => value.to_string(),
    }
}

/// The default of `key` as TOML writes it, if it has one.
fn default_of(key: &str, config: &Config) -> Option<String> {
    // The issuer's default is `server.public_url` when that is set.
    if key == defaults::TOKENS_ISSUER.key {
        return Some(toml::Value::String(config.tokens.issuer.clone()).to_string());
    }
    let (_, value) = defaults::ALL.iter().find(|(k, _)| *k == key)?;
    Some(match value {
        defaults::Value::Str(s) => toml::Value::String((*s).to_owned()).to_string(),
        defaults::Value::Int(n) => n.to_string(),
        defaults::Value::Bool(b) => b.to_string(),
        defaults::Value::EmptyList => "[]".to_owned(),
    })
}

/// `url` quoted, without what may be a password: the user information's password (or all of
/// it, when it has no `:`) and the query (`redis+unix://…?pass=…`).
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return REDACTED.to_owned();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("***@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, _)) => format!("{path}?***"),
        None => tail.to_owned(),
    };
    toml::Value::String(format!("{scheme}://{authority}{tail}")).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_urls_are_shown_without_their_password() {
        assert_eq!(
            redact_url("rediss://app:hunter2@redis.internal:6380/1"),
            "\"rediss://app:***@redis.internal:6380/1\""
        );
        assert_eq!(redact_url("redis://:hunter2@h"), "\"redis://:***@h\"");
        assert_eq!(redact_url("redis://hunter2@h/0"), "\"redis://***@h/0\"");
        assert_eq!(redact_url("redis://h:6379/0"), "\"redis://h:6379/0\"");
        assert_eq!(
            redact_url("redis+unix:///run/redis.sock?db=1&pass=hunter2"),
            "\"redis+unix:///run/redis.sock?***\""
        );
        assert_eq!(redact_url("hunter2"), REDACTED);
    }
}
