//! The one canonical form of a request's path and host (SPEC §3, "One canonical request").
//!
//! The gateway decides on this form once, at the front door, and everything after uses it:
//! endpoint dispatch, routing, roles, metrics, logs and the request line the upstream receives.
//! So what was authorised is byte for byte what is forwarded, whatever the upstream's own
//! reading of escapes would have been.
//!
//! Paths: escapes of unreserved characters are decoded (RFC 3986 §6.2.2.2: `/%61dmin` is
//! `/admin`), other escapes get upper-case hex, characters not allowed raw in a path are
//! encoded. What cannot be made unambiguous is refused: dot segments in any spelling, empty
//! segments, encoded `/`, `\`, NUL or controls, `;` (Servlet containers cut path parameters:
//! `/pub/..;/x` is `/x` to Tomcat) and double-encoded escapes (`%252e`, read as `.` by an
//! upstream that decodes twice).
//!
//! Hosts: lower case, one trailing dot dropped, the port split off.
//!
//! Input is attacker-controlled; nothing here panics. This is a value module: routing
//! (`route`), the front door (`front`) and configuration checks (`config`) all use it.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::Ipv6Addr;

use http::HeaderValue;

/// What cannot be made canonical: the path or the host.
#[derive(Clone, Copy, Debug, Eq, PartialEq, thiserror::Error)]
pub enum Refused {
    #[error("unsafe path")]
    Path,
    #[error("missing, repeated or malformed host")]
    Host,
}

/// The canonical form of `path` (a request target's path, without query), borrowed when it is
/// already canonical.
pub fn canonical_path(path: &str) -> Result<Cow<'_, str>, Refused> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(Refused::Path);
    }
    // Fast path: nothing to rewrite, so only the segment checks remain.
    if bytes.iter().all(|&b| raw_class(b) == Raw::Keep) {
        check_segments(path)?;
        return Ok(Cow::Borrowed(path));
    }
    let mut out = String::with_capacity(path.len() + 8);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match raw_class(b) {
            Raw::Keep => out.push(char::from(b)),
            Raw::Refuse => return Err(Refused::Path),
            Raw::Encode => push_escape(&mut out, b),
            Raw::Escape => {
                let value = hex_pair(bytes.get(i + 1..i + 3)).ok_or(Refused::Path)?;
                match escaped_class(value) {
                    Escaped::Decode => out.push(char::from(value)),
                    Escaped::Keep => push_escape(&mut out, value),
                    Escaped::Refuse => return Err(Refused::Path),
                }
                i += 2;
            }
        }
        i += 1;
    }
    check_segments(&out)?;
    // `%25XX` in the result is an escape of an escape (`%252e`, or `%25%32e` once `%32` is
    // decoded), which an upstream that decodes twice reads as `.`: refused.
    let doubled = out
        .as_bytes()
        .windows(5)
        .any(|w| w.starts_with(b"%25") && hex_pair(Some(&w[3..])).is_some());
    if doubled {
        return Err(Refused::Path);
    }
    if out == path {
        return Ok(Cow::Borrowed(path));
    }
    Ok(Cow::Owned(out))
}

/// What a raw path byte needs.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Raw {
    /// Allowed as it is: unreserved, sub-delims but `;`, `:`, `@`, `/`.
    Keep,
    /// The start of an escape.
    Escape,
    /// Not allowed raw in a path (`"`, `<`, `{`, non-ASCII, ...): percent-encoded.
    Encode,
    /// `\`, `;` and controls: refused.
    Refuse,
}

fn raw_class(b: u8) -> Raw {
    match b {
        b'%' => Raw::Escape,
        b'\\' | b';' | 0x00..=0x20 | 0x7F => Raw::Refuse,
        b if is_unreserved(b) => Raw::Keep,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b'=' | b':' | b'@'
        | b'/' => Raw::Keep,
        _ => Raw::Encode,
    }
}

/// What an escaped byte needs.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Escaped {
    Decode,
    Keep,
    Refuse,
}

fn escaped_class(value: u8) -> Escaped {
    match value {
        v if is_unreserved(v) => Escaped::Decode,
        b'/' | b'\\' | b';' | 0x00..=0x1F | 0x7F => Escaped::Refuse,
        _ => Escaped::Keep,
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex_pair(pair: Option<&[u8]>) -> Option<u8> {
    let [hi, lo] = pair? else {
        return None;
    };
    let digit = |c: u8| char::from(c).to_digit(16);
    Some((digit(*hi)? * 16 + digit(*lo)?) as u8)
}

fn push_escape(out: &mut String, b: u8) {
    // Writing to a String cannot fail.
    let _ = write!(out, "%{b:02X}");
}

/// Every segment after the leading `/` is non-empty (a trailing `/` is fine) and not `.` or
/// `..`. Runs on the decoded form, so `%2e%2e` is caught as `..`.
fn check_segments(path: &str) -> Result<(), Refused> {
    let mut segments = path[1..].split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        match segment {
            "." | ".." => return Err(Refused::Path),
            "" if !last => return Err(Refused::Path),
            _ => {}
        }
    }
    Ok(())
}

/// A request's host, canonical: the name in lower case without a trailing dot (an IPv6
/// literal keeps its brackets), and the port as the client sent it. Kept as one header value,
/// `name[:port]`, as it is forwarded: for a `Host` header that is canonical already (the common
/// case) it shares the header's bytes, so nothing is copied.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Host {
    value: HeaderValue,
    name_len: usize,
}

impl Host {
    /// `name[:port]`, as it is forwarded (`Host`, `:authority`, `X-Forwarded-Host`).
    pub fn authority(&self) -> &str {
        // Only ASCII host characters are ever stored, so this never falls back.
        self.value.to_str().unwrap_or_default()
    }

    /// The host name, without port: what routes match on.
    pub fn name(&self) -> &str {
        self.authority().get(..self.name_len).unwrap_or_default()
    }

    pub fn port(&self) -> Option<u16> {
        self.authority()
            .get(self.name_len..)?
            .strip_prefix(':')
            .and_then(|p| p.parse().ok())
    }

    /// The canonical `name[:port]` as a header value.
    pub fn header_value(&self) -> &HeaderValue {
        &self.value
    }
}

/// The canonical form of a `Host` header; shares its bytes when it is canonical already.
pub fn canonical_host_header(value: &HeaderValue) -> Result<Host, Refused> {
    let raw = value.to_str().map_err(|_| Refused::Host)?;
    match already_canonical(raw) {
        Some(name_len) => Ok(Host {
            value: value.clone(),
            name_len,
        }),
        None => canonical_host(raw),
    }
}

/// `Some(name length)` when `raw` is a canonical reg-name host with an optional canonical port.
fn already_canonical(raw: &str) -> Option<usize> {
    let (name, port) = match raw.split_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (raw, None),
    };
    let name_ok = !name.is_empty()
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..")
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.' | b'_')
        });
    let port_ok = port.is_none_or(|p| {
        (1..=5).contains(&p.len())
            && p.bytes().all(|b| b.is_ascii_digit())
            && (p == "0" || !p.starts_with('0'))
            && p.parse::<u16>().is_ok()
    });
    (name_ok && port_ok).then_some(name.len())
}

/// The canonical form of a `Host` value or `:authority` (no user info: `a@b` is refused).
pub fn canonical_host(raw: &str) -> Result<Host, Refused> {
    let bad = Refused::Host;
    if let Some(name_len) = already_canonical(raw) {
        return Ok(Host {
            value: HeaderValue::from_str(raw).map_err(|_| bad)?,
            name_len,
        });
    }
    let (mut authority, port) = if let Some(rest) = raw.strip_prefix('[') {
        let (literal, after) = rest.split_once(']').ok_or(bad)?;
        let ip: Ipv6Addr = literal.parse().map_err(|_| bad)?;
        (format!("[{ip}]"), port_of(after.strip_prefix(':'), after)?)
    } else {
        let (name, port) = match raw.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (raw, None),
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        let valid = !name.is_empty()
            && name.split('.').all(|label| !label.is_empty())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if !valid {
            return Err(bad);
        }
        let port = match port {
            Some(p) => port_of(Some(p), p)?,
            None => None,
        };
        let mut authority = String::with_capacity(name.len() + 6);
        authority.extend(name.chars().map(|c| c.to_ascii_lowercase()));
        (authority, port)
    };
    let name_len = authority.len();
    if let Some(port) = port {
        let _ = write!(authority, ":{port}");
    }
    Ok(Host {
        value: HeaderValue::try_from(authority).map_err(|_| bad)?,
        name_len,
    })
}

/// `Some(digits)` → the port (empty → none); `None` with a non-empty `rest` → refused.
fn port_of(digits: Option<&str>, rest: &str) -> Result<Option<u16>, Refused> {
    match digits {
        None if rest.is_empty() => Ok(None),
        None => Err(Refused::Host),
        Some("") => Ok(None),
        Some(d) if d.len() <= 5 && d.bytes().all(|b| b.is_ascii_digit()) => {
            d.parse().map(Some).map_err(|_| Refused::Host)
        }
        Some(_) => Err(Refused::Host),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(p: &str) -> Result<String, Refused> {
        canonical_path(p).map(Cow::into_owned)
    }

    #[test]
    fn canonical_paths_are_borrowed() {
        for p in [
            "/",
            "/api",
            "/api/",
            "/a.b/c..d/.e",
            "/x%20y",
            "/a:b@c!$&'()*+,=",
            "/%C3%A9",
        ] {
            assert!(
                matches!(canonical_path(p), Ok(Cow::Borrowed(b)) if b == p),
                "{p}"
            );
        }
    }

    #[test]
    fn unreserved_escapes_are_decoded_and_hex_upper_cased() {
        assert_eq!(canon("/%61dmin/secret.txt").unwrap(), "/admin/secret.txt");
        assert_eq!(canon("/%61%64%6d%69%6e/x").unwrap(), "/admin/x");
        assert_eq!(canon("/caf%c3%a9").unwrap(), "/caf%C3%A9");
        assert_eq!(canon("/a%7Eb%2Dc%5f").unwrap(), "/a~b-c_");
        assert_eq!(canon("/100%25").unwrap(), "/100%25");
        assert_eq!(canon("/a%3fb").unwrap(), "/a%3Fb");
    }

    #[test]
    fn characters_not_allowed_raw_are_encoded() {
        assert_eq!(
            canon("/a\"b<c>{d}|^`").unwrap(),
            "/a%22b%3Cc%3E%7Bd%7D%7C%5E%60"
        );
        assert_eq!(canon("/caf\u{e9}").unwrap(), "/caf%C3%A9");
        assert_eq!(canon("/[x]").unwrap(), "/%5Bx%5D");
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        for p in [
            "",
            "*",
            "api",
            "/public/../private",
            "/public/./x",
            "/..",
            "/.",
            "/a/..",
            "/public/%2e%2e/private",
            "/public/%2E%2e/private",
            "/public/.%2e/private",
            "/pub/..;/priv/x",
            "/admin;x/secret",
            "/a%3Bb",
            "/pub/%252e%252e/priv/x",
            "/a/%2561dmin",
            "/%25%32e",
            "/%25%32%65",
            "/public%2fprivate",
            "/public%5Cprivate",
            "/public\\..\\private",
            "/x%00",
            "/x%0a",
            "/x%7f",
            "/x%",
            "/x%4",
            "/x%zz",
            "//private",
            "/public//private",
            "/a b",
        ] {
            assert_eq!(canon(p), Err(Refused::Path), "{p:?}");
        }
    }

    #[test]
    fn canonical_forms_are_fixed_points() {
        for p in [
            "/%61dmin",
            "/caf%c3%a9",
            "/a\"b",
            "/100%25",
            "/%7e/x/",
            "/é",
        ] {
            let once = canon(p).unwrap();
            assert!(matches!(canonical_path(&once), Ok(Cow::Borrowed(_))), "{p}");
        }
    }

    #[test]
    fn hosts_are_lower_case_without_trailing_dot_or_port() {
        let host = |s: &str| canonical_host(s).unwrap();
        assert_eq!(host("Secure.Test.").authority(), "secure.test");
        let h = host("SECURE.test:8443");
        assert_eq!(
            (h.name(), h.port(), h.authority()),
            ("secure.test", Some(8443), "secure.test:8443")
        );
        assert_eq!(host("127.0.0.1:80").authority(), "127.0.0.1:80");
        assert_eq!(host("[::1]:8443").authority(), "[::1]:8443");
        assert_eq!(host("[0:0::1]").name(), "[::1]");
        assert_eq!(host("example.com:").port(), None);
        assert_eq!(host("example.com:0080").authority(), "example.com:80");
        for (raw, canonical) in [
            ("secure.test", "secure.test"),
            ("a.b:8443", "a.b:8443"),
            ("Secure.Test.:443", "secure.test:443"),
            ("x:0080", "x:80"),
            ("[::1]:80", "[::1]:80"),
        ] {
            let header = canonical_host_header(&HeaderValue::from_static(raw)).unwrap();
            assert_eq!(header, host(raw), "{raw}");
            assert_eq!(header.authority(), canonical);
        }
        assert_eq!(already_canonical("a.b:8443"), Some(3));
        for not in [
            "A.b", "a.", ".a", "a..b", "a:", "a:0080", "a:99999", "[::1]", "a@b", "",
        ] {
            assert_eq!(already_canonical(not), None, "{not:?}");
        }
        for bad in [
            "", ".", "a..b", "x@y", "a/b", "a b", "a%2eb", "[::1", "[zz]", "h:99999", "h:1:2",
            "[::1]x",
        ] {
            assert_eq!(canonical_host(bad), Err(Refused::Host), "{bad:?}");
        }
    }
}
