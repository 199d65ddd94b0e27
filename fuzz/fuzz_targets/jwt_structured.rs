//! JWT header and claims decoding (`jwt::verify::<AccessClaims>`) on structured
//! tokens, with the gateway's real `KeySet` and access `Rules`.
//!
//! The fuzz input (via `arbitrary`) describes a header (raw bytes, or JSON fields: `alg`, `kid`,
//! `typ`, key-carrying and other extra fields), a payload (raw bytes, or the access claims each
//! good, absent, another value or a JSON value of any type, plus extra and duplicate keys), how
//! each segment is encoded, and the signature: genuinely signed with our key over exactly this
//! header and payload, a corrupted genuine signature, another token's signature, or raw bytes.
//! So the decoder gets past base64, past JSON, and with real signatures past the signature check
//! into the claims' deserialization and validation.
//!
//! Beyond "never panics": whatever `verify` accepts must carry our signature over exactly its
//! own header and payload, our algorithm and `kid`, no key-carrying header field, and claims
//! that pass the access validation (audience, issuer, `exp`, `nbf`).
#![no_main]

use std::sync::atomic::{AtomicU64, Ordering};

use arbitrary::Arbitrary;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use portcullis::jwt::{self, AccessClaims};
use portcullis_fuzz::{check_accepted, fixture, now, sign, AUDIENCE, ISSUER};
use serde_json::Value;

/// Tokens accepted so far in this process: reported on stderr at each power of two, so that a
/// run's log shows the fuzzer does reach past the signature into claims validation.
static ACCEPTED: AtomicU64 = AtomicU64::new(0);

/// Any JSON value.
#[derive(Arbitrary, Debug)]
enum Json {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn value(&self, depth: u32) -> Value {
        if depth > 24 {
            return Value::Null;
        }
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Int(i) => Value::from(*i),
            Json::UInt(u) => Value::from(*u),
            Json::Float(f) => Value::from(*f),
            Json::Str(s) => Value::String(s.clone()),
            Json::Arr(a) => Value::Array(a.iter().map(|j| j.value(depth + 1)).collect()),
            Json::Obj(o) => Value::Object(
                o.iter()
                    .map(|(k, j)| (k.clone(), j.value(depth + 1)))
                    .collect(),
            ),
        }
    }
}

/// A string-valued field.
#[derive(Arbitrary, Debug)]
enum Text {
    Good,
    Absent,
    Str(String),
    Value(Json),
}

impl Text {
    fn value(&self, good: &str) -> Option<Value> {
        match self {
            Text::Good => Some(Value::from(good)),
            Text::Absent => None,
            Text::Str(s) => Some(Value::from(s.as_str())),
            Text::Value(j) => Some(j.value(0)),
        }
    }
}

/// A NumericDate field.
#[derive(Arbitrary, Debug)]
enum Time {
    Good,
    Absent,
    /// Now plus this many seconds.
    Offset(i32),
    /// Now plus this many seconds, as a float.
    FloatOffset(f32),
    Value(Json),
}

impl Time {
    fn value(&self, now: u64, good: i64) -> Option<Value> {
        let now = now as i64;
        match self {
            Time::Good => Some(Value::from(now + good)),
            Time::Absent => None,
            Time::Offset(o) => Some(Value::from(now + i64::from(*o))),
            Time::FloatOffset(o) => Some(Value::from(now as f64 + f64::from(*o))),
            Time::Value(j) => Some(j.value(0)),
        }
    }
}

/// The `aud` claim.
#[derive(Arbitrary, Debug)]
enum Aud {
    Good,
    Absent,
    Str(String),
    /// An array, each element the good audience or another string.
    List(Vec<Option<String>>),
    Value(Json),
}

#[derive(Arbitrary, Debug)]
enum Roles {
    Good,
    Absent,
    List(Vec<String>),
    Value(Json),
}

#[derive(Arbitrary, Debug)]
enum ClaimKey {
    Iss,
    Sub,
    UniqueName,
    Aud,
    Iat,
    Nbf,
    Exp,
    Jti,
    Sid,
    Roles,
    Other(String),
}

impl ClaimKey {
    fn name(&self) -> &str {
        match self {
            ClaimKey::Iss => "iss",
            ClaimKey::Sub => "sub",
            ClaimKey::UniqueName => "unique_name",
            ClaimKey::Aud => "aud",
            ClaimKey::Iat => "iat",
            ClaimKey::Nbf => "nbf",
            ClaimKey::Exp => "exp",
            ClaimKey::Jti => "jti",
            ClaimKey::Sid => "sid",
            ClaimKey::Roles => "roles",
            ClaimKey::Other(s) => s,
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Claims {
    iss: Text,
    sub: Text,
    unique_name: Text,
    aud: Aud,
    iat: Time,
    nbf: Time,
    exp: Time,
    jti: Text,
    sid: Text,
    roles: Roles,
    /// Appended after the others, so a registered name here is a duplicate key.
    extra: Vec<(ClaimKey, Json)>,
}

#[derive(Arbitrary, Debug)]
enum Payload {
    Raw(Vec<u8>),
    Claims(Claims),
}

impl Payload {
    fn bytes(&self, now: u64) -> Vec<u8> {
        let c = match self {
            Payload::Raw(b) => return b.clone(),
            Payload::Claims(c) => c,
        };
        let mut fields: Vec<(String, Option<Value>)> = vec![
            ("iss".into(), c.iss.value(ISSUER)),
            ("sub".into(), c.sub.value("alice")),
            ("unique_name".into(), c.unique_name.value("alice")),
            (
                "aud".into(),
                match &c.aud {
                    Aud::Good => Some(Value::from(AUDIENCE)),
                    Aud::Absent => None,
                    Aud::Str(s) => Some(Value::from(s.as_str())),
                    Aud::List(l) => Some(Value::Array(
                        l.iter()
                            .map(|s| Value::from(s.as_deref().unwrap_or(AUDIENCE)))
                            .collect(),
                    )),
                    Aud::Value(j) => Some(j.value(0)),
                },
            ),
            ("iat".into(), c.iat.value(now, 0)),
            ("nbf".into(), c.nbf.value(now, 0)),
            ("exp".into(), c.exp.value(now, 3600)),
            ("jti".into(), c.jti.value("8f7d3c2e-0000-4000-8000-000000000001")),
            ("sid".into(), c.sid.value("5b1e9a40-0000-4000-8000-000000000002")),
            (
                "roles".into(),
                match &c.roles {
                    Roles::Good => Some(serde_json::json!(["reader"])),
                    Roles::Absent => None,
                    Roles::List(l) => Some(Value::from(l.clone())),
                    Roles::Value(j) => Some(j.value(0)),
                },
            ),
        ];
        for (k, j) in &c.extra {
            fields.push((k.name().to_owned(), Some(j.value(0))));
        }
        object_text(&fields)
    }
}

/// A JSON object written out field by field, so that duplicate keys survive.
fn object_text(fields: &[(String, Option<Value>)]) -> Vec<u8> {
    let mut out = b"{".to_vec();
    let mut first = true;
    for (k, v) in fields {
        let Some(v) = v else { continue };
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend(serde_json::to_vec(&Value::from(k.as_str())).unwrap());
        out.push(b':');
        out.extend(serde_json::to_vec(v).unwrap());
    }
    out.push(b'}');
    out
}

#[derive(Arbitrary, Debug)]
enum AlgName {
    None,
    NoneUpper,
    HS256,
    HS512,
    RS256,
    RS384,
    RS512Lower,
    PS256,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

#[derive(Arbitrary, Debug)]
enum Alg {
    Good,
    Absent,
    Named(AlgName),
    Str(String),
    Value(Json),
}

#[derive(Arbitrary, Debug)]
enum Kid {
    Good,
    Absent,
    Lowercase,
    GoodWithSuffix(String),
    Str(String),
    Value(Json),
}

#[derive(Arbitrary, Debug)]
enum HeaderKey {
    Jwk,
    Jku,
    X5u,
    X5c,
    X5t,
    X5tS256,
    Cty,
    Crit,
    Typ,
    Alg,
    Kid,
    Enc,
    Other(String),
}

impl HeaderKey {
    fn name(&self) -> &str {
        match self {
            HeaderKey::Jwk => "jwk",
            HeaderKey::Jku => "jku",
            HeaderKey::X5u => "x5u",
            HeaderKey::X5c => "x5c",
            HeaderKey::X5t => "x5t",
            HeaderKey::X5tS256 => "x5t#S256",
            HeaderKey::Cty => "cty",
            HeaderKey::Crit => "crit",
            HeaderKey::Typ => "typ",
            HeaderKey::Alg => "alg",
            HeaderKey::Kid => "kid",
            HeaderKey::Enc => "enc",
            HeaderKey::Other(s) => s,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum HeaderSpec {
    Raw(Vec<u8>),
    Fields {
        alg: Alg,
        kid: Kid,
        typ: Text,
        /// Appended after the others: a registered name here is a duplicate key.
        extra: Vec<(HeaderKey, Json)>,
    },
}

impl HeaderSpec {
    fn bytes(&self) -> Vec<u8> {
        let (alg, kid, typ, extra) = match self {
            HeaderSpec::Raw(b) => return b.clone(),
            HeaderSpec::Fields {
                alg,
                kid,
                typ,
                extra,
            } => (alg, kid, typ, extra),
        };
        let good_kid = fixture().kid.as_str();
        let alg = match alg {
            Alg::Good => Some(Value::from("RS512")),
            Alg::Absent => None,
            Alg::Named(n) => Some(Value::from(match n {
                AlgName::None => "none",
                AlgName::NoneUpper => "NONE",
                AlgName::HS256 => "HS256",
                AlgName::HS512 => "HS512",
                AlgName::RS256 => "RS256",
                AlgName::RS384 => "RS384",
                AlgName::RS512Lower => "rs512",
                AlgName::PS256 => "PS256",
                AlgName::PS512 => "PS512",
                AlgName::ES256 => "ES256",
                AlgName::ES384 => "ES384",
                AlgName::EdDSA => "EdDSA",
            })),
            Alg::Str(s) => Some(Value::from(s.as_str())),
            Alg::Value(j) => Some(j.value(0)),
        };
        let kid = match kid {
            Kid::Good => Some(Value::from(good_kid)),
            Kid::Absent => None,
            Kid::Lowercase => Some(Value::from(good_kid.to_ascii_lowercase())),
            Kid::GoodWithSuffix(s) => Some(Value::from(format!("{good_kid}{s}"))),
            Kid::Str(s) => Some(Value::from(s.as_str())),
            Kid::Value(j) => Some(j.value(0)),
        };
        let mut fields = vec![
            ("typ".to_owned(), typ.value("JWT")),
            ("alg".to_owned(), alg),
            ("kid".to_owned(), kid),
        ];
        for (k, j) in extra {
            fields.push((k.name().to_owned(), Some(j.value(0))));
        }
        object_text(&fields)
    }
}

/// How a segment's bytes become text.
#[derive(Arbitrary, Debug)]
enum Encoding {
    UrlNoPad,
    UrlPad,
    Standard,
    StandardNoPad,
    /// The bytes themselves (lossily as UTF-8), not encoded at all.
    Verbatim,
}

impl Encoding {
    fn encode(&self, bytes: &[u8]) -> String {
        match self {
            Encoding::UrlNoPad => URL_SAFE_NO_PAD.encode(bytes),
            Encoding::UrlPad => URL_SAFE.encode(bytes),
            Encoding::Standard => STANDARD.encode(bytes),
            Encoding::StandardNoPad => STANDARD_NO_PAD.encode(bytes),
            Encoding::Verbatim => String::from_utf8_lossy(bytes).into_owned(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Signature {
    /// Signed with our key over exactly this header and payload.
    Good,
    /// A good signature with one byte changed.
    GoodFlipped { index: u16, xor: u8 },
    /// A good signature cut short.
    GoodTruncated(u16),
    /// A good signature, encoded another way.
    GoodEncoded(Encoding),
    /// The signature of the fixture's genuine token (valid, but over other content).
    Genuine,
    Raw(Vec<u8>, Encoding),
    Empty,
}

/// How the three segments are put together.
#[derive(Arbitrary, Debug)]
enum Layout {
    Normal,
    /// One more segment after the signature.
    ExtraSegment(String),
    /// No signature segment at all: `header.payload`.
    TwoSegments,
    Prefix(String),
    Suffix(String),
}

#[derive(Arbitrary, Debug)]
struct Input {
    header: HeaderSpec,
    header_encoding: Encoding,
    payload: Payload,
    payload_encoding: Encoding,
    signature: Signature,
    layout: Layout,
}

fuzz_target!(|input: Input| {
    let f = fixture();
    let before = now();
    let header = input.header_encoding.encode(&input.header.bytes());
    let payload = input.payload_encoding.encode(&input.payload.bytes(before));
    let message = format!("{header}.{payload}");
    let signature = match &input.signature {
        Signature::Good => sign(&message),
        Signature::GoodFlipped { index, xor } => {
            let mut raw = URL_SAFE_NO_PAD.decode(sign(&message)).unwrap();
            let at = usize::from(*index) % raw.len();
            raw[at] ^= (*xor).max(1);
            URL_SAFE_NO_PAD.encode(raw)
        }
        Signature::GoodTruncated(n) => {
            let raw = URL_SAFE_NO_PAD.decode(sign(&message)).unwrap();
            URL_SAFE_NO_PAD.encode(&raw[..usize::from(*n) % raw.len()])
        }
        Signature::GoodEncoded(e) => e.encode(&URL_SAFE_NO_PAD.decode(sign(&message)).unwrap()),
        Signature::Genuine => f.signature_b64.clone(),
        Signature::Raw(b, e) => e.encode(b),
        Signature::Empty => String::new(),
    };
    let token = match &input.layout {
        Layout::Normal => format!("{message}.{signature}"),
        Layout::ExtraSegment(s) => format!("{message}.{signature}.{s}"),
        Layout::TwoSegments => message.clone(),
        Layout::Prefix(s) => format!("{s}{message}.{signature}"),
        Layout::Suffix(s) => format!("{message}.{signature}{s}"),
    };

    let result = jwt::verify::<AccessClaims>(&f.keys, &f.rules, &token, before);
    let after = now();
    if let Ok(claims) = result {
        // Only our own signature over exactly this content can be accepted.
        let (signed, sig) = token.rsplit_once('.').expect("an accepted token has segments");
        assert_eq!(sig, sign(signed), "accepted a token without our signature: {token}");
        check_accepted(&token, &claims, before, after);
        let n = ACCEPTED.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            eprintln!("jwt_structured: {n} tokens accepted so far");
        }
    }
});
