//! Parsing `Authorization: Bearer <token>` (RFC 6750 §2.1). Input is attacker-controlled.

use http::header::AUTHORIZATION;
use http::HeaderMap;

use super::{AuthError, InvalidReason};

/// Longest token accepted; a longer one is refused before any decoding work.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// The bearer token of `headers`.
///
/// No `Authorization` header, or one with another scheme, is `Missing` (the client did not
/// offer a bearer token). More than one header, an empty, oversized or non-token68 value is
/// `Malformed`. The scheme is case-insensitive.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, AuthError> {
    token68(bearer_candidate(headers)?)
}

/// What `headers` offer as a bearer token, before its syntax is looked at.
///
/// No `Authorization` header, or one with another scheme, is `Missing` (the client did not
/// offer a bearer token). More than one header, or an empty or oversized value, is
/// `Malformed`. The scheme is case-insensitive. The bytes are attacker input: use them only
/// to look up tokens verified before (which passed [`token68`] then), or through
/// [`token68`].
pub(super) fn bearer_candidate(headers: &HeaderMap) -> Result<&[u8], AuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(AuthError::Missing);
    };
    if values.next().is_some() {
        return Err(AuthError::Invalid(InvalidReason::Malformed));
    }
    let bytes = value.as_bytes();
    let Some((scheme, rest)) = split_scheme(bytes) else {
        return Err(AuthError::Missing);
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Err(AuthError::Missing);
    }
    let token = trim_spaces(rest);
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Err(AuthError::Invalid(InvalidReason::Malformed));
    }
    Ok(token)
}

/// `token` as text if every byte of it is a token68 character, else `Malformed`.
pub(super) fn token68(token: &[u8]) -> Result<&str, AuthError> {
    let token = token68_bytes(token)?;
    // token68 characters are ASCII, so this cannot fail; map it anyway rather than unwrap.
    std::str::from_utf8(token).map_err(|_| AuthError::Invalid(InvalidReason::Malformed))
}

/// `token` if every byte of it is a token68 character, else `Malformed`: [`token68`] for a
/// caller that needs no text.
pub(super) fn token68_bytes(token: &[u8]) -> Result<&[u8], AuthError> {
    if all_token68(token) {
        Ok(token)
    } else {
        Err(AuthError::Invalid(InvalidReason::Malformed))
    }
}

fn split_scheme(value: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = value.iter().position(|b| *b == b' ')?;
    Some((&value[..at], &value[at + 1..]))
}

fn trim_spaces(mut bytes: &[u8]) -> &[u8] {
    while let [b' ', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' '] = bytes {
        bytes = rest;
    }
    bytes
}

/// Whether every byte is a token68 character (RFC 7235): ALPHA / DIGIT / "-" / "." / "_" /
/// "~" / "+" / "/" and "=". Every byte is looked at, without a branch per byte, so that the
/// compiler vectorises the loop: an access token is ~700 bytes, checked on every request.
fn all_token68(bytes: &[u8]) -> bool {
    bytes.iter().fold(true, |ok, &b| ok & is_token68(b))
}

fn is_token68(b: u8) -> bool {
    // `b | 0x20` folds A–Z onto a–z and maps no other byte into a–z.
    let letter = (b | 0x20).wrapping_sub(b'a') < 26;
    let digit = b.wrapping_sub(b'0') < 10;
    letter
        | digit
        | (b == b'-')
        | (b == b'.')
        | (b == b'_')
        | (b == b'~')
        | (b == b'+')
        | (b == b'/')
        | (b == b'=')
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn token68_is_exactly_the_rfc_alphabet() {
        for b in 0..=u8::MAX {
            let rfc = b.is_ascii_alphanumeric()
                || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=');
            assert_eq!(is_token68(b), rfc, "byte {b:#04x}");
            assert_eq!(all_token68(&[b'a', b, b'z']), rfc, "byte {b:#04x}");
        }
        assert!(all_token68(b""));
    }

    fn parse(values: &[&str]) -> Result<String, AuthError> {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        bearer_token(&headers).map(str::to_owned)
    }

    #[test]
    fn scheme_is_case_insensitive() {
        assert_eq!(parse(&["Bearer a.b.c"]).unwrap(), "a.b.c");
        assert_eq!(parse(&["bearer a.b.c"]).unwrap(), "a.b.c");
        assert_eq!(parse(&["BEARER  a.b.c "]).unwrap(), "a.b.c");
    }

    #[test]
    fn other_schemes_and_absence_are_missing() {
        assert_eq!(parse(&[]), Err(AuthError::Missing));
        assert_eq!(parse(&["Basic dXNlcjpwYXNz"]), Err(AuthError::Missing));
        assert_eq!(parse(&["Bearer"]), Err(AuthError::Missing));
    }

    #[test]
    fn hostile_values_are_malformed() {
        let malformed = Err(AuthError::Invalid(InvalidReason::Malformed));
        assert_eq!(parse(&["Bearer "]), malformed);
        assert_eq!(parse(&["Bearer a b"]), malformed);
        assert_eq!(parse(&["Bearer a\"b"]), malformed);
        assert_eq!(parse(&["Bearer a.b.c", "Bearer d.e.f"]), malformed);
        assert_eq!(
            parse(&[&format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN + 1))]),
            malformed
        );
    }
}
