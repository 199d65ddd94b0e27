//! JWT header and claims decoding (`jwt::verify::<AccessClaims>`) on arbitrary
//! strings, with the gateway's real `KeySet` and access `Rules`.
//!
//! Each input is tried as a whole token, and spliced into a genuine signed token in place of
//! its header, its payload and its signature segment (a real token with one part mutated):
//! with our header and `kid` a mutated payload reaches the signature check, and a mutated
//! signature is checked against real content. Beyond "never panics": whatever is accepted must
//! be exactly the genuine token, since no one else holds the key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::jwt::{self, AccessClaims};
use portcullis_fuzz::{check_accepted, fixture, now};

fn try_token(token: &str) {
    let f = fixture();
    let before = now();
    let result = jwt::verify::<AccessClaims>(&f.keys, &f.rules, token, before);
    let after = now();
    if let Ok(claims) = result {
        assert_eq!(token, f.token, "accepted a token that we did not sign");
        check_accepted(token, &claims, before, after);
    }
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let s = String::from_utf8_lossy(data);
    try_token(&s);
    try_token(&format!("{}.{}.{}", s, f.payload_b64, f.signature_b64));
    try_token(&format!("{}.{}.{}", f.header_b64, s, f.signature_b64));
    try_token(&format!("{}.{}.{}", f.header_b64, f.payload_b64, s));
});
