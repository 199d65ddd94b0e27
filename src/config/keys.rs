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

/// The fields of the `raw` type of top-level key `section`.
fn section_fields(section: &str) -> &'static [&'static str] {
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
pub(super) fn closest(key: &str, known: &[&'static str]) -> Option<&'static str> {
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
