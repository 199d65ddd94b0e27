//! The token request body → `Grant` (SPEC §1.1). Input is attacker-controlled.
//!
//! Accepts `application/x-www-form-urlencoded` and `application/json` with the same keys, both
//! spellings of every parameter (the seed API's camelCase and RFC 6749's snake_case), and grant
//! type values compared case-insensitively with `_` removed. Unknown parameters are ignored
//! (RFC 6749 §3.2); a parameter given twice is refused.

use bytes::Bytes;

use super::OAuthError;

/// Largest accepted body; larger is `413`.
pub const MAX_BODY: usize = 16 * 1024;

/// A parsed token request. `Debug` never prints the password or the token.
pub enum Grant {
    Password {
        username: String,
        password: String,
        short_term: bool,
    },
    Refresh {
        token: String,
        short_term: bool,
    },
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Password { username, .. } => f
                .debug_struct("Password")
                .field("username", username)
                .finish_non_exhaustive(),
            Self::Refresh { .. } => f.debug_struct("Refresh").finish_non_exhaustive(),
        }
    }
}

/// The body's media type, from `Content-Type`.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum BodyKind {
    Form,
    Json,
}

impl BodyKind {
    /// `None` for a missing or unsupported content type.
    pub fn from_content_type(value: Option<&[u8]>) -> Option<Self> {
        let value = value?;
        let essence = value.split(|b| *b == b';').next().unwrap_or_default();
        let essence = essence.trim_ascii();
        if essence.eq_ignore_ascii_case(b"application/x-www-form-urlencoded") {
            Some(Self::Form)
        } else if essence.eq_ignore_ascii_case(b"application/json") {
            Some(Self::Json)
        } else {
            None
        }
    }
}

/// The parameters this endpoint knows, each under both of its names.
#[derive(Default)]
struct Params {
    grant_type: Option<String>,
    username: Option<String>,
    password: Option<String>,
    refresh_token: Option<String>,
    short_term: Option<String>,
}

impl Params {
    fn slot(&mut self, name: &str) -> Option<&mut Option<String>> {
        Some(match name {
            "grantType" | "grant_type" => &mut self.grant_type,
            "userName" | "username" => &mut self.username,
            "password" => &mut self.password,
            "refreshToken" | "refresh_token" => &mut self.refresh_token,
            "use_short_term_refresh" | "useShortTermRefresh" => &mut self.short_term,
            _ => return None,
        })
    }

    fn set(&mut self, name: &str, value: String) -> Result<(), OAuthError> {
        if let Some(slot) = self.slot(name) {
            if slot.is_some() {
                return Err(OAuthError::InvalidRequest(
                    "A parameter is given more than once",
                ));
            }
            *slot = Some(value);
        }
        Ok(())
    }
}

/// Parses a token request body of `kind`.
pub fn parse(kind: BodyKind, body: &Bytes) -> Result<Grant, OAuthError> {
    let mut params = Params::default();
    for (name, value) in fields(kind, body)? {
        params.set(&name, value)?;
    }
    into_grant(params)
}

/// The name/value pairs of a form or JSON object body. JSON values that are strings, booleans
/// or numbers become text; `null`, arrays and objects are skipped.
pub fn fields(kind: BodyKind, body: &[u8]) -> Result<Vec<(String, String)>, OAuthError> {
    match kind {
        BodyKind::Form => Ok(form_urlencoded::parse(body).into_owned().collect()),
        BodyKind::Json => {
            let object: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(body)
                    .map_err(|_| OAuthError::InvalidRequest("The body is not a JSON object"))?;
            let mut out = Vec::with_capacity(object.len());
            for (name, value) in object {
                let text = match value {
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Bool(b) => b.to_string(),
                    serde_json::Value::Number(n) => n.to_string(),
                    // Unknown parameters may hold anything (RFC 6749 §3.2); a known one given as
                    // an array or object then counts as missing.
                    _ => continue,
                };
                out.push((name, text));
            }
            Ok(out)
        }
    }
}

/// The one value of parameter `name`; `Ok(None)` if absent, an error if repeated.
pub fn single<'a>(
    fields: &'a [(String, String)],
    name: &str,
) -> Result<Option<&'a str>, OAuthError> {
    let mut values = fields
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str());
    let first = values.next();
    if values.next().is_some() {
        return Err(OAuthError::InvalidRequest(
            "A parameter is given more than once",
        ));
    }
    Ok(first)
}

fn into_grant(p: Params) -> Result<Grant, OAuthError> {
    let grant_type = p.grant_type.ok_or(OAuthError::InvalidRequest(
        "The grant_type parameter is required",
    ))?;
    let short_term = match p.short_term.as_deref() {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        Some(_) => {
            return Err(OAuthError::InvalidRequest(
                "use_short_term_refresh must be true or false",
            ))
        }
    };
    let normalized: String = grant_type
        .chars()
        .filter(|c| *c != '_')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    match normalized.as_str() {
        "password" => Ok(Grant::Password {
            username: non_empty(p.username, "The userName parameter is required")?,
            password: non_empty(p.password, "The password parameter is required")?,
            short_term,
        }),
        "refreshtoken" => Ok(Grant::Refresh {
            token: non_empty(p.refresh_token, "The refreshToken parameter is required")?,
            short_term,
        }),
        _ => Err(OAuthError::UnsupportedGrantType),
    }
}

fn non_empty(value: Option<String>, missing: &'static str) -> Result<String, OAuthError> {
    value
        .filter(|v| !v.is_empty())
        .ok_or(OAuthError::InvalidRequest(missing))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(body: &str) -> Result<Grant, OAuthError> {
        parse(BodyKind::Form, &Bytes::copy_from_slice(body.as_bytes()))
    }

    #[test]
    fn both_spellings_of_the_password_grant() {
        for body in [
            "grantType=Password&userName=alice&password=p%26w",
            "grant_type=password&username=alice&password=p%26w",
            "grant_type=PASSWORD&username=alice&password=p%26w&scope=ignored",
        ] {
            match form(body).unwrap() {
                Grant::Password {
                    username,
                    password,
                    short_term,
                } => {
                    assert_eq!((username.as_str(), password.as_str()), ("alice", "p&w"));
                    assert!(!short_term);
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn every_spelling_of_the_refresh_grant() {
        for grant in ["RefreshToken", "refresh_token", "Refresh_token"] {
            let body = format!("grant_type={grant}&refreshToken=x.y.z&use_short_term_refresh=true");
            match form(&body).unwrap() {
                Grant::Refresh { token, short_term } => {
                    assert_eq!(token, "x.y.z");
                    assert!(short_term);
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn json_bodies_use_the_same_keys() {
        let body = Bytes::from_static(
            br#"{"grant_type":"password","userName":"a","password":"b","useShortTermRefresh":true}"#,
        );
        assert!(matches!(
            parse(BodyKind::Json, &body).unwrap(),
            Grant::Password {
                short_term: true,
                ..
            }
        ));
        let bad = Bytes::from_static(b"[1,2]");
        assert!(matches!(
            parse(BodyKind::Json, &bad),
            Err(OAuthError::InvalidRequest(_))
        ));
    }

    #[test]
    fn errors_follow_rfc_6749() {
        assert!(matches!(
            form("userName=a&password=b"),
            Err(OAuthError::InvalidRequest(_))
        ));
        assert!(matches!(
            form("grant_type=password&password=b"),
            Err(OAuthError::InvalidRequest(_))
        ));
        assert!(matches!(
            form("grant_type=refresh_token"),
            Err(OAuthError::InvalidRequest(_))
        ));
        assert_eq!(
            form("grant_type=client_credentials").unwrap_err(),
            OAuthError::UnsupportedGrantType
        );
        assert!(matches!(
            form("grant_type=password&grantType=password&userName=a&password=b"),
            Err(OAuthError::InvalidRequest(_))
        ));
    }

    #[test]
    fn content_types() {
        let kind = |v: &str| BodyKind::from_content_type(Some(v.as_bytes()));
        assert_eq!(
            kind("application/x-www-form-urlencoded"),
            Some(BodyKind::Form)
        );
        assert_eq!(
            kind("Application/JSON; charset=utf-8"),
            Some(BodyKind::Json)
        );
        assert_eq!(kind("text/plain"), None);
        assert_eq!(BodyKind::from_content_type(None), None);
    }

    #[test]
    fn debug_hides_secrets() {
        let grant = form("grant_type=password&username=alice&password=hunter2").unwrap();
        assert!(!format!("{grant:?}").contains("hunter2"));
    }
}
