//! The environment over the file: `PORTCULLIS_<SECTION>_<KEY>` sets `<section>.<key>` (SPEC
//! §4.2), laid over the parsed TOML table before it is deserialized, so a value from the
//! environment is checked exactly like one from the file.
//!
//! Names are matched ignoring case against the keys `keys.rs` reads from the `raw` types, so
//! every key of a table section can be set and there is no second list. Arrays of tables
//! (`[[users]]`, `[[routes]]`) are the file's alone. A value is taken as the TOML value it
//! spells when that fits the key's type (`false`, `8`, `["10.0.0.0/8"]`), else as a string,
//! else, for a list key, as a comma-separated list (`10.0.0.0/8,192.168.0.0/16`); so strings are
//! written bare, without TOML quotes. A `PORTCULLIS_*` variable that names no key is never an
//! error, only a notice.

use std::collections::BTreeMap;

use super::keys;
use super::ConfigIssue;

/// The variables portcullis, its load harness or its tests read themselves (after
/// `PORTCULLIS_`): no notice for these.
const OWN: &[&str] = &[
    "CONFIG",
    "BENCH_PASSWORD",
    "BENCH_SECS",
    "ALLOC_PEER",
    "DHAT_FILE",
    "REQUIRE_REDIS",
    "REQUIRE_PYJWT",
];

/// What laying the environment over a table did.
#[derive(Debug, Default)]
pub(super) struct Overlay {
    /// Each key set from the environment (`tokens.access_ttl`) and the variable that set it.
    pub(super) origins: BTreeMap<String, String>,
    /// Values that fit no type of their key, each named by key and variable.
    pub(super) issues: Vec<ConfigIssue>,
    /// `PORTCULLIS_*` variables that name no key.
    pub(super) notices: Vec<ConfigIssue>,
}

impl Overlay {
    /// `issue` with its key followed by the variable that set it, if one did:
    /// `tokens.access_ttl (from PORTCULLIS_TOKENS_ACCESS_TTL)`.
    pub(super) fn attribute(&self, mut issue: ConfigIssue) -> ConfigIssue {
        if let Some(var) = self.origins.get(&issue.key) {
            issue.key = format!("{} (from {var})", issue.key);
        }
        issue
    }
}

/// Sets in `table` every key that a `PORTCULLIS_*` variable of `env` names; `env` may hold
/// other variables, which are passed over.
pub(super) fn overlay(table: &mut toml::Table, env: &[(String, String)]) -> Overlay {
    let mut out = Overlay::default();
    let mut env: Vec<&(String, String)> = env.iter().collect();
    env.sort();
    for (var, text) in env {
        let upper = var.to_ascii_uppercase();
        let Some(rest) = upper.strip_prefix("PORTCULLIS_") else {
            continue;
        };
        if OWN.contains(&rest) {
            continue;
        }
        let Some((section, key)) = key_of(&rest.to_ascii_lowercase()) else {
            out.notices
                .push(ConfigIssue::new(var.clone(), unknown(rest)));
            continue;
        };
        let dotted = format!("{section}.{key}");
        if let Some(first) = out.origins.get(&dotted) {
            out.issues.push(ConfigIssue::new(
                format!("{dotted} (from {var})"),
                format!("also set by {first}; set it once"),
            ));
            continue;
        }
        out.origins.insert(dotted.clone(), var.clone());
        let value = match value_of(section, key, text) {
            Ok(value) => value,
            Err(problem) => {
                out.issues
                    .push(ConfigIssue::new(format!("{dotted} (from {var})"), problem));
                continue;
            }
        };
        let entry = table
            .entry(section)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        // A section that is not a table in the file is the deserializer's to report.
        if let Some(section) = entry.as_table_mut() {
            section.insert(key.to_owned(), value);
        }
    }
    out
}

/// The section and key `name` (lower case, after `portcullis_`) names, if any.
fn key_of(name: &str) -> Option<(&'static str, &'static str)> {
    keys::table_sections().find_map(|section| {
        let key = name.strip_prefix(section)?.strip_prefix('_')?;
        let known = keys::section_fields(section);
        known.iter().find(|k| **k == key).map(|k| (section, *k))
    })
}

/// Why the variable whose name is `PORTCULLIS_{rest}` sets nothing.
fn unknown(rest: &str) -> String {
    let lower = rest.to_ascii_lowercase();
    if let Some(array) = keys::ARRAYS_OF_TABLES
        .iter()
        .find(|a| lower.starts_with(&format!("{a}_")))
    {
        return format!(
            "names no configuration key and was ignored: [[{array}]] is only set in the file"
        );
    }
    let every: Vec<String> = keys::table_sections()
        .flat_map(|s| {
            keys::section_fields(s)
                .iter()
                .map(move |k| format!("{s}_{k}").to_ascii_uppercase())
        })
        .collect();
    let every: Vec<&str> = every.iter().map(String::as_str).collect();
    match keys::closest(rest, &every) {
        Some(close) => {
            format!("names no configuration key and was ignored; did you mean PORTCULLIS_{close}?")
        }
        None => "names no configuration key and was ignored".to_owned(),
    }
}

/// The TOML value `text` stands for as `section.key`: the value it spells if that fits,
/// else the string, else (for a list key) the comma-separated list.
fn value_of(section: &str, key: &str, text: &str) -> Result<toml::Value, String> {
    if let Some(value) = spelt(text) {
        if !value.is_str() && keys::fits(section, key, &value).is_ok() {
            return Ok(value);
        }
    }
    let string = toml::Value::String(text.to_owned());
    let Err(problem) = keys::fits(section, key, &string) else {
        return Ok(string);
    };
    let list = toml::Value::Array(
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| toml::Value::String(s.to_owned()))
            .collect(),
    );
    if keys::fits(section, key, &list).is_ok() {
        return Ok(list);
    }
    Err(problem)
}

/// The TOML value `text` spells on its own (`8`, `true`, `["a"]`), if it is one.
fn spelt(text: &str) -> Option<toml::Value> {
    if text.contains(['\n', '\r']) {
        return None;
    }
    let mut doc: toml::Table = toml::from_str(&format!("v = {text}")).ok()?;
    doc.remove("v")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn over(text: &str, vars: &[(&str, &str)]) -> (toml::Table, Overlay) {
        let mut table: toml::Table = toml::from_str(text).unwrap();
        let overlay = overlay(&mut table, &env(vars));
        (table, overlay)
    }

    #[test]
    fn a_variable_sets_its_key_over_the_file_whatever_its_case() {
        let (table, o) = over(
            "[tokens]\naccess_ttl = \"15m\"\n",
            &[
                ("PORTCULLIS_TOKENS_ACCESS_TTL", "2m"),
                ("portcullis_store_url_file", "/run/secrets/url"),
                ("HOME", "/root"),
            ],
        );
        assert_eq!(table["tokens"]["access_ttl"].as_str(), Some("2m"));
        assert_eq!(
            table["store"]["url_file"].as_str(),
            Some("/run/secrets/url")
        );
        assert_eq!(
            o.origins.get("tokens.access_ttl").map(String::as_str),
            Some("PORTCULLIS_TOKENS_ACCESS_TTL")
        );
        assert!(o.issues.is_empty() && o.notices.is_empty(), "{o:?}");
    }

    #[test]
    fn values_are_typed_by_their_key() {
        let (table, o) = over(
            "",
            &[
                ("PORTCULLIS_SERVER_MAX_CONNECTIONS", "64"),
                ("PORTCULLIS_LOG_ACCESS_LOG", "false"),
                ("PORTCULLIS_TOKENS_ISSUER", "123"),
                (
                    "PORTCULLIS_SERVER_TRUSTED_PROXIES",
                    "10.0.0.0/8, 192.168.0.0/16",
                ),
                ("PORTCULLIS_ADMIN_ALLOWED_HOSTS", "[\"gw.internal\"]"),
                ("PORTCULLIS_TOKENS_VERIFY_KEYS", ""),
            ],
        );
        assert!(o.issues.is_empty(), "{:?}", o.issues);
        assert_eq!(table["server"]["max_connections"].as_integer(), Some(64));
        assert_eq!(table["log"]["access_log"].as_bool(), Some(false));
        assert_eq!(table["tokens"]["issuer"].as_str(), Some("123"));
        let list = |v: &toml::Value| -> Vec<String> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(
            list(&table["server"]["trusted_proxies"]),
            ["10.0.0.0/8", "192.168.0.0/16"]
        );
        assert_eq!(list(&table["admin"]["allowed_hosts"]), ["gw.internal"]);
        assert!(list(&table["tokens"]["verify_keys"]).is_empty());
    }

    #[test]
    fn a_value_of_the_wrong_type_is_named_by_key_and_variable() {
        let (_, o) = over("", &[("PORTCULLIS_SERVER_MAX_CONNECTIONS", "lots")]);
        assert_eq!(o.issues.len(), 1, "{:?}", o.issues);
        assert_eq!(
            o.issues[0].key,
            "server.max_connections (from PORTCULLIS_SERVER_MAX_CONNECTIONS)"
        );
        assert!(
            o.issues[0].problem.contains("expected i64"),
            "{:?}",
            o.issues
        );
    }

    #[test]
    fn a_variable_that_names_no_key_is_a_notice() {
        let (table, o) = over(
            "",
            &[
                ("PORTCULLIS_CONFIG", "/etc/portcullis/portcullis.toml"),
                ("PORTCULLIS_FOO", "1"),
                ("PORTCULLIS_TOKENS_ACCES_TTL", "1m"),
                ("PORTCULLIS_USERS_NAME", "x"),
            ],
        );
        assert!(table.is_empty() && o.issues.is_empty(), "{table:?} {o:?}");
        let notes: Vec<String> = o.notices.iter().map(ToString::to_string).collect();
        assert_eq!(
            notes,
            [
                "PORTCULLIS_FOO: names no configuration key and was ignored",
                "PORTCULLIS_TOKENS_ACCES_TTL: names no configuration key and was ignored; \
                 did you mean PORTCULLIS_TOKENS_ACCESS_TTL?",
                "PORTCULLIS_USERS_NAME: names no configuration key and was ignored: \
                 [[users]] is only set in the file",
            ]
        );
    }

    #[test]
    fn one_key_set_by_two_variables_is_refused() {
        let (_, o) = over(
            "",
            &[
                ("PORTCULLIS_LOG_FORMAT", "json"),
                ("portcullis_log_format", "pretty"),
            ],
        );
        assert_eq!(o.issues.len(), 1, "{:?}", o.issues);
        assert!(o.issues[0].key.starts_with("log.format (from "));
    }
}
