//! The `Authorization` header parser (`auth::bearer_token`).
//!
//! The input is split on `\n` (which no header value may contain) into one or more
//! `Authorization` values; values that `HeaderValue::from_bytes` refuses are skipped, as hyper
//! would never hand them over. Beyond "never panics", an accepted token must be what RFC 6750
//! allows: from the only `Authorization` header, with the `Bearer` scheme, non-empty, at most
//! `MAX_TOKEN_LEN` bytes, token68 characters only, and a part of the header value.
#![no_main]

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use portcullis::auth::{bearer_token, AuthError, MAX_TOKEN_LEN};

fn is_token68(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    // Unrelated headers around it must not matter.
    headers.append("x-forwarded-for", HeaderValue::from_static("192.0.2.1"));
    for piece in data.split(|b| *b == b'\n') {
        if let Ok(value) = HeaderValue::from_bytes(piece) {
            headers.append(AUTHORIZATION, value);
        }
    }
    headers.append("proxy-authorization", HeaderValue::from_static("Bearer not.this.one"));
    let count = headers.get_all(AUTHORIZATION).iter().count();

    match bearer_token(&headers) {
        Ok(token) => {
            assert_eq!(count, 1, "a token was taken from {count} Authorization headers");
            let value = headers.get(AUTHORIZATION).unwrap().as_bytes();
            assert!(value.len() > 7 && value[..7].eq_ignore_ascii_case(b"bearer "));
            assert!(!token.is_empty());
            assert!(token.len() <= MAX_TOKEN_LEN);
            assert!(token.bytes().all(is_token68), "token has a non-token68 byte: {token:?}");
            assert!(
                value.windows(token.len()).any(|w| w == token.as_bytes()),
                "token is not part of the header value"
            );
        }
        Err(AuthError::Missing) => assert!(count <= 1, "{count} headers reported as missing"),
        Err(_) => {}
    }
});
