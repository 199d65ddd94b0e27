//! The request path canonicalisation (`canonical::canonical_path`): the one
//! path used for routing, roles, logs and the forwarded request line.
//!
//! The input bytes are read as UTF-8 (invalid sequences become U+FFFD, as a `&str` path can only
//! hold UTF-8). Beyond "never panics", an accepted path `c` must be:
//!
//! - a fixed point: `canonical_path(c)` is `Ok`, borrowed (no allocation) and equal to `c`;
//! - canonical: starts with `/`; holds only unreserved bytes, `! $ & ' ( ) * + , = : @`, `/` and
//!   `%XX` escapes with upper-case hex; no escape of an unreserved byte, of a control byte, of
//!   `/`, `\` or `;`, and no `%25XX` (double encoding); no `.`, `..` or empty segment except an
//!   empty last one;
//! - the same path: percent-decoding the input and `c` gives the same bytes, and decoding `c`
//!   does not create a `/` (so its segments are its decoded segments).
//!
//! And an input holding a literal `\`, `;` or control byte is refused.
#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use portcullis::canonical::canonical_path;

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_allowed_raw(b: u8) -> bool {
    is_unreserved(b) || b"!$&'()*+,=:@/".contains(&b)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes `s` (a `%` without two hex digits is kept as it is).
fn decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Asserts that `c` is in canonical form.
fn assert_canonical(c: &str) {
    let b = c.as_bytes();
    assert!(b.first() == Some(&b'/'), "does not start with '/': {c:?}");
    let mut i = 0;
    while i < b.len() {
        let byte = b[i];
        if byte == b'%' {
            let escape = b.get(i + 1..i + 3).unwrap_or_default();
            assert!(
                escape.len() == 2
                    && escape
                        .iter()
                        .all(|h| h.is_ascii_digit() || (b'A'..=b'F').contains(h)),
                "a '%' not followed by two upper-case hex digits: {c:?}"
            );
            let decoded = hex(escape[0]).unwrap() << 4 | hex(escape[1]).unwrap();
            assert!(!is_unreserved(decoded), "an escaped unreserved byte: {c:?}");
            assert!(
                !decoded.is_ascii_control() && !matches!(decoded, b'/' | b'\\' | b';'),
                "an escaped '/', '\\', ';' or control byte: {c:?}"
            );
            if decoded == b'%' {
                let next = b.get(i + 3..i + 5).unwrap_or_default();
                assert!(
                    !(next.len() == 2 && hex(next[0]).is_some() && hex(next[1]).is_some()),
                    "a double-encoded escape: {c:?}"
                );
            }
            i += 3;
        } else {
            assert!(
                is_allowed_raw(byte),
                "a raw byte {byte:#04x} that must be escaped: {c:?}"
            );
            i += 1;
        }
    }
    let segments: Vec<&str> = c[1..].split('/').collect();
    let last = segments.len() - 1;
    for (n, segment) in segments.iter().enumerate() {
        assert!(!matches!(*segment, "." | ".."), "a dot segment: {c:?}");
        assert!(!segment.is_empty() || n == last, "an empty segment: {c:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let result = canonical_path(&input);
    let forbidden_raw = input
        .bytes()
        .any(|b| b == b'\\' || b == b';' || b.is_ascii_control());
    let Ok(c) = result else { return };
    assert!(
        !forbidden_raw,
        "accepted a literal '\\', ';' or control byte: {input:?} -> {c:?}"
    );
    assert_canonical(&c);
    match canonical_path(&c) {
        Ok(Cow::Borrowed(again)) => assert_eq!(again, &*c, "not a fixed point: {input:?}"),
        Ok(Cow::Owned(again)) => {
            panic!("a canonical path was copied: {c:?} -> {again:?} (input {input:?})")
        }
        Err(e) => panic!("the canonical form is refused ({e}): {input:?} -> {c:?}"),
    }
    if let Cow::Borrowed(same) = &c {
        assert_eq!(*same, &*input, "borrowed, so unchanged");
    }
    assert_eq!(
        decode(&input),
        decode(&c),
        "canonicalisation changed the path's meaning: {input:?} -> {c:?}"
    );
    let decoded_segments = decode(&c).split(|b| *b == b'/').count();
    assert_eq!(
        decoded_segments,
        c.split('/').count(),
        "decoding creates a '/': {c:?}"
    );
});
