//! The token request body parser (`token::grant::parse`) and the `Content-Type` sniffing
//! (`BodyKind::from_content_type`), on arbitrary bytes.
//!
//! Every input is parsed both as a form body and as a JSON body. Beyond "never panics", each
//! accepted grant is checked: its `Debug` output leaks neither password nor token, and writing
//! it back out as a form body and as a JSON body parses to the same grant.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use portcullis::token::grant::{self, BodyKind, Grant};

/// A grant as plain data, to compare.
#[derive(Debug, PartialEq)]
enum Plain {
    Password { username: String, password: String, short_term: bool },
    Refresh { token: String, short_term: bool },
}

fn plain(grant: &Grant) -> Plain {
    match grant {
        Grant::Password { username, password, short_term } => Plain::Password {
            username: username.clone(),
            password: password.clone(),
            short_term: *short_term,
        },
        Grant::Refresh { token, short_term } => Plain::Refresh {
            token: token.clone(),
            short_term: *short_term,
        },
    }
}

fn check(grant: &Grant) {
    let p = plain(grant);
    // Debug shows the user name only.
    let shown = format!("{grant:?}");
    let expected = match &p {
        Plain::Password { username, .. } => format!("Password {{ username: {username:?}, .. }}"),
        Plain::Refresh { .. } => "Refresh { .. }".to_owned(),
    };
    assert_eq!(shown, expected, "Debug of a grant shows more than the user name");

    // Required values are never empty.
    match &p {
        Plain::Password { username, password, .. } => {
            assert!(!username.is_empty() && !password.is_empty());
        }
        Plain::Refresh { token, .. } => assert!(!token.is_empty()),
    }

    // Round trip through both encodings, with the RFC 6749 names.
    let (pairs, short_term): (Vec<(&str, &str)>, bool) = match &p {
        Plain::Password { username, password, short_term } => (
            vec![("grant_type", "password"), ("username", username), ("password", password)],
            *short_term,
        ),
        Plain::Refresh { token, short_term } => (
            vec![("grant_type", "refresh_token"), ("refresh_token", token)],
            *short_term,
        ),
    };
    let short = if short_term { "true" } else { "false" };
    let mut form = form_urlencoded::Serializer::new(String::new());
    let mut json = serde_json::Map::new();
    for (k, v) in pairs.iter().copied().chain([("use_short_term_refresh", short)]) {
        form.append_pair(k, v);
        json.insert(k.to_owned(), serde_json::Value::String(v.to_owned()));
    }
    let form = Bytes::from(form.finish());
    let json = Bytes::from(serde_json::to_vec(&json).unwrap());
    let again = grant::parse(BodyKind::Form, &form).expect("re-encoded form body parses");
    assert_eq!(plain(&again), p, "form round trip differs");
    let again = grant::parse(BodyKind::Json, &json).expect("re-encoded JSON body parses");
    assert_eq!(plain(&again), p, "JSON round trip differs");
}

fuzz_target!(|data: &[u8]| {
    if let Some(kind) = BodyKind::from_content_type(Some(data)) {
        // Only the two media types are recognised, whatever the parameters.
        let essence = data.split(|b| *b == b';').next().unwrap().trim_ascii();
        let expected = match kind {
            BodyKind::Form => "application/x-www-form-urlencoded",
            BodyKind::Json => "application/json",
        };
        assert!(essence.eq_ignore_ascii_case(expected.as_bytes()));
    }

    let body = Bytes::copy_from_slice(data);
    for kind in [BodyKind::Form, BodyKind::Json] {
        if let Ok(grant) = grant::parse(kind, &body) {
            check(&grant);
        }
    }
});
