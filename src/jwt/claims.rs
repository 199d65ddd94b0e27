//! The JWT claim sets of SPEC §1.2, as serde structs.
//!
//! Fields other than the registered ones default when absent, so that a token of the wrong kind
//! (a refresh token presented as an access token) decodes and is then refused for its audience,
//! with that reason, rather than as "malformed".

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

pub const ACCESS_AUDIENCE: &str = "access";
pub const REFRESH_AUDIENCE: &str = "refresh";

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    #[serde(default)]
    pub unique_name: String,
    pub aud: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    #[serde(default)]
    pub jti: String,
    pub sid: String,
    #[serde(default)]
    pub roles: Vec<String>,
}

/// The access claims as a proxied request's check reads them, borrowed from the decoded
/// payload where they need no unescaping: [`AccessClaims`] without its allocations. The same
/// claims are required, with the same types.
#[derive(Debug, Deserialize)]
pub struct AccessView<'a> {
    #[serde(borrow)]
    pub iss: Cow<'a, str>,
    #[serde(borrow)]
    pub sub: Cow<'a, str>,
    #[serde(borrow)]
    pub aud: Cow<'a, str>,
    pub nbf: u64,
    pub exp: u64,
    #[serde(borrow)]
    pub sid: Cow<'a, str>,
    #[serde(default)]
    pub roles: Vec<String>,
    // Not read, but held to the types `AccessClaims` gives them.
    #[serde(default, borrow, rename = "unique_name")]
    _unique_name: Cow<'a, str>,
    #[serde(rename = "iat")]
    _iat: u64,
    #[serde(default, borrow, rename = "jti")]
    _jti: Cow<'a, str>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct RefreshClaims {
    pub iss: String,
    pub sub: String,
    #[serde(default)]
    pub unique_name: String,
    pub aud: String,
    #[serde(default)]
    pub token_id: String,
    /// `"True"` or `"False"`, strings as in the seed API.
    #[serde(default)]
    pub short_term_expiration: String,
    pub sid: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
}

/// The registered claims `crate::jwt::verify` checks itself, against the time it is given.
pub trait Registered {
    fn iss(&self) -> &str;
    fn aud(&self) -> &str;
    fn exp(&self) -> u64;
    fn nbf(&self) -> u64;
}

macro_rules! registered {
    ($claims:ty) => {
        impl Registered for $claims {
            fn iss(&self) -> &str {
                &self.iss
            }
            fn aud(&self) -> &str {
                &self.aud
            }
            fn exp(&self) -> u64 {
                self.exp
            }
            fn nbf(&self) -> u64 {
                self.nbf
            }
        }
    };
}

registered!(AccessClaims);
registered!(AccessView<'_>);
registered!(RefreshClaims);

impl RefreshClaims {
    pub fn is_short_term(&self) -> bool {
        self.short_term_expiration.eq_ignore_ascii_case("true")
    }
}
