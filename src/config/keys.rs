//! Unknown keys, all at once: which keys of a parsed TOML table `raw.rs` has no field for, each
//! with the known key it most resembles.
//!
//! `raw.rs` refuses an unknown key (`deny_unknown_fields`), but serde stops at the first one.
//! When it does, `Config::parse` asks this module for every unknown key, takes them out of the
//! table and validates the rest, so that `portcullis check` shows every problem in one run. The
//! known keys are read from the `raw` types' own `Deserialize` impls (the field list serde
//! passes to `deserialize_struct`), so there is no second list to keep in step.

use serde::de::{self, Deserialize, Deserializer, Visitor};

use super::raw;
use super::ConfigIssue;

/// Removes from `table` every key the `raw` types have no field for, and returns one issue per
/// removed key: unknown top-level keys first, then by section (`toml::Table` sorts its keys).
pub(super) fn strip_unknown(table: &mut toml::Table) -> Vec<ConfigIssue> {
    let mut issues = Vec::new();
    strip(table, "", fields::<raw::Root>(), &mut issues);
    for (section, value) in table.iter_mut() {
        let known = section_fields(section);
        match value {
            toml::Value::Table(t) => strip(t, section, known, &mut issues),
            toml::Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    if let toml::Value::Table(t) = item {
                        strip(t, &format!("{section}[{i}]"), known, &mut issues);
                    }
                }
            }
            // A wrong type is the deserializer's to report.
            _ => {}
        }
    }
    issues
}

/// The top-level keys that are tables (`[server]`), not arrays of tables (`[[routes]]`): the
/// sections whose keys the environment can set.
pub(super) fn table_sections() -> impl Iterator<Item = &'static str> {
    fields::<raw::Root>()
        .iter()
        .copied()
        .filter(|s| !ARRAYS_OF_TABLES.contains(s))
}

/// The top-level keys that are arrays of tables.
pub(super) const ARRAYS_OF_TABLES: &[&str] = &["users", "routes"];

/// Whether `value` deserializes as key `key` of table section `section`: `Err` with serde's
/// reason when it does not (e.g. `invalid type: string "x", expected i64`).
pub(super) fn fits(section: &str, key: &str, value: &toml::Value) -> Result<(), String> {
    fn fits_in<T: serde::de::DeserializeOwned>(
        key: &str,
        value: &toml::Value,
    ) -> Result<(), String> {
        let mut one = toml::Table::new();
        one.insert(key.to_owned(), value.clone());
        T::deserialize(one)
            .map(drop)
            .map_err(|e| e.message().to_owned())
    }
    match section {
        "server" => fits_in::<raw::Server>(key, value),
        "admin" => fits_in::<raw::Admin>(key, value),
        "endpoints" => fits_in::<raw::Endpoints>(key, value),
        "tokens" => fits_in::<raw::Tokens>(key, value),
        "store" => fits_in::<raw::Store>(key, value),
        "login" => fits_in::<raw::Login>(key, value),
        "log" => fits_in::<raw::Log>(key, value),
        _ => Err(format!("{section} is not a table section")),
    }
}

/// The fields of the `raw` type of top-level key `section`.
pub(super) fn section_fields(section: &str) -> &'static [&'static str] {
    match section {
        "server" => fields::<raw::Server>(),
        "admin" => fields::<raw::Admin>(),
        "endpoints" => fields::<raw::Endpoints>(),
        "tokens" => fields::<raw::Tokens>(),
        "store" => fields::<raw::Store>(),
        "login" => fields::<raw::Login>(),
        "log" => fields::<raw::Log>(),
        "users" => fields::<raw::User>(),
        "routes" => fields::<raw::Route>(),
        _ => &[],
    }
}

fn strip(
    table: &mut toml::Table,
    prefix: &str,
    known: &'static [&'static str],
    issues: &mut Vec<ConfigIssue>,
) {
    let unknown: Vec<String> = table
        .keys()
        .filter(|k| !known.contains(&k.as_str()))
        .cloned()
        .collect();
    for key in unknown {
        table.remove(&key);
        let dotted = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        let problem = match closest(&key, known) {
            Some(close) => format!("unknown key; did you mean `{close}`?"),
            None => "unknown key".to_owned(),
        };
        issues.push(ConfigIssue::new(dotted, problem));
    }
}

/// The known key most like `key`, if one is close: Jaro-Winkler similarity (which weighs a
/// shared beginning, as in `listen_addr` → `listen`) of at least 0.8.
pub(super) fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(key, k), *k))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

/// The field names of struct `T`, as its derived `Deserialize` tells the deserializer.
fn fields<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let mut probe = FieldProbe(None);
    // The probe always answers with an error; the field list is what it saw on the way.
    let _ = T::deserialize(&mut probe);
    probe.0.unwrap_or_default()
}

/// A deserializer that records the field list of the struct asked of it, and deserializes
/// nothing.
#[derive(Debug)]
struct FieldProbe(Option<&'static [&'static str]>);

impl<'de> Deserializer<'de> for &mut FieldProbe {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("a field probe deserializes nothing"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0 = Some(fields);
        self.deserialize_any(visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unknown(text: &str) -> Vec<String> {
        let mut table: toml::Table = toml::from_str(text).unwrap();
        strip_unknown(&mut table)
            .into_iter()
            .map(|i| format!("{}: {}", i.key, i.problem))
            .collect()
    }

    #[test]
    fn every_section_of_the_root_has_its_fields() {
        let root = fields::<raw::Root>();
        assert!(
            root.contains(&"server") && root.contains(&"routes"),
            "{root:?}"
        );
        for section in root {
            assert!(
                !section_fields(section).is_empty(),
                "{section} has no field list"
            );
        }
        assert!(fields::<raw::Route>().contains(&"upstreams"));
        let tables: Vec<&str> = table_sections().collect();
        assert_eq!(
            tables,
            [
                "server",
                "admin",
                "endpoints",
                "tokens",
                "store",
                "login",
                "log"
            ]
        );
    }

    #[test]
    fn a_value_fits_a_key_of_its_type_only() {
        let int = toml::Value::Integer(5);
        let text = toml::Value::String("5".to_owned());
        assert_eq!(fits("server", "max_connections", &int), Ok(()));
        assert!(fits("server", "max_connections", &text)
            .unwrap_err()
            .contains("expected i64"));
        assert_eq!(fits("tokens", "issuer", &text), Ok(()));
        assert!(fits("tokens", "issuer", &int).is_err());
        assert!(fits("routes", "name", &text).is_err());
    }

    #[test]
    fn every_unknown_key_is_named_with_a_close_known_one() {
        let found = unknown(
            r#"
            colour = 1
            [server]
            listen_addr = "0.0.0.0:1"
            tls_cer = "x"
            listen = "0.0.0.0:2"
            [tokens]
            acces_ttl = "1m"
            [[routes]]
            upstreams = ["http://127.0.0.1:1"]
            [[routes]]
            upstream = ["http://127.0.0.1:1"]
            zzz = 1
            "#,
        );
        assert_eq!(
            found,
            [
                "colour: unknown key",
                "routes[1].upstream: unknown key; did you mean `upstreams`?",
                "routes[1].zzz: unknown key",
                "server.listen_addr: unknown key; did you mean `listen`?",
                "server.tls_cer: unknown key; did you mean `tls_cert`?",
                "tokens.acces_ttl: unknown key; did you mean `access_ttl`?",
            ]
        );
        assert!(unknown("[server]\nlisten = \"0.0.0.0:1\"\n").is_empty());
    }
}
