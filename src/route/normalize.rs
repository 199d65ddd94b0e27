//! Path safety (SPEC §3): a path that could be matched one way and forwarded another is refused.
//!
//! Rather than normalise (and risk disagreeing with the upstream about what the normal form is),
//! the gateway refuses paths holding dot segments, percent-encoded `.`, `/` or `\`, a literal
//! `\`, or an empty segment (`//`). What is matched is then exactly what is forwarded.
//! Input is attacker-controlled and this must not panic.

/// `Ok(())` when `path` (without query) is safe to route and forward as it is.
pub fn check(path: &str) -> Result<(), super::RouteError> {
    let bad = || Err(super::RouteError::BadPath);
    if !path.starts_with('/') {
        return bad();
    }
    let bytes = path.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        match b {
            b'\\' => return bad(),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).unwrap_or_default();
                if hex.eq_ignore_ascii_case(b"2e")
                    || hex.eq_ignore_ascii_case(b"2f")
                    || hex.eq_ignore_ascii_case(b"5c")
                {
                    return bad();
                }
            }
            _ => {}
        }
    }
    // Skip the leading '/'; every segment after it must be non-empty and not '.' or '..',
    // except that a trailing '/' (an empty last segment) is fine.
    let segments: Vec<&str> = path[1..].split('/').collect();
    let last = segments.len() - 1;
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." | ".." => return bad(),
            "" if i != last => return bad(),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_paths_pass() {
        for p in [
            "/",
            "/api",
            "/api/",
            "/api/v1/users",
            "/a.b/c..d/.e",
            "/x%20y",
        ] {
            assert!(check(p).is_ok(), "{p}");
        }
    }

    #[test]
    fn traversal_and_encoded_separators_are_refused() {
        for p in [
            "/public/../private",
            "/public/./x",
            "/..",
            "/a/..",
            "/public/%2e%2e/private",
            "/public/%2E%2e/private",
            "/public%2fprivate",
            "/public%5Cprivate",
            "/public\\..\\private",
            "//private",
            "/public//private",
            "",
            "*",
        ] {
            assert!(check(p).is_err(), "{p}");
        }
    }
}
