//! Logging setup (`RUST_LOG`, pretty or JSON), fatal errors in the installed format, the access
//! log's line, and error rendering for logs.
//!
//! Tokens and passwords are never passed to a log macro anywhere in the crate; request types
//! that hold them implement `Debug` without them. The access line carries the request's path
//! without its query, and of its headers only the user agent (cut to [`MAX_USER_AGENT`] bytes).
//!
//! # The access line
//!
//! One line per request, target `access`, written when the response body has been sent to its
//! end (or when it is dropped unsent: the client went away), so that `bytes_out` is what went
//! out. `duration_ms` is, as before, the time until the response head was ready (the same
//! instant as `portcullis_request_duration_seconds`). `log.access_fields` chooses the fields
//! and their order; since `tracing`'s macros fix both at compile time, the line has a callsite
//! of its own here, declaring every field, and each line records the chosen ones in order.

use std::error::Error;
use std::io::IsTerminal as _;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, LazyLock, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Method, Version};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt as _;
use tracing::field::{display, Field, FieldSet, Value};
use tracing::{Level, Metadata};
use tracing_core::callsite::{DefaultCallsite, Identifier};
use tracing_core::Kind;
use tracing_subscriber::EnvFilter;

use crate::body::{Body, Inbound};
use crate::canonical::Host;
use crate::config::{AccessField, LogFormat};

/// The format [`init`] installed, once it has.
static INSTALLED: OnceLock<LogFormat> = OnceLock::new();

/// Installs the global subscriber. `RUST_LOG` overrides the default `info` level.
pub(crate) fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal, never in files or container logs.
        .with_ansi(std::io::stderr().is_terminal());
    let installed = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    if installed.is_ok() {
        let _ = INSTALLED.set(format);
    }
}

/// Whether a fatal error should be reported through the log, as one JSON line: [`init`]
/// installed the JSON format, and `RUST_LOG` lets errors through (else it goes to stderr as
/// plain text rather than nowhere).
pub(crate) fn fatal_as_json() -> bool {
    INSTALLED.get() == Some(&LogFormat::Json) && tracing::enabled!(Level::ERROR)
}

/// Logs the error the process exits with: `error` is the error with its causes.
pub(crate) fn fatal(error: &str) {
    tracing::error!(error, "fatal error; exiting");
}

/// `error: cause: cause's cause`, for one log field or one config message.
pub(crate) fn error_chain(e: &dyn Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The longest user agent the access log writes, in bytes; the rest is cut.
pub(crate) const MAX_USER_AGENT: usize = 256;

/// What the access line says of the request itself, taken as it arrived at the front door
/// (the path canonical once admitted; as sent when refused).
#[derive(Debug)]
pub(crate) struct RequestLine {
    pub method: Method,
    /// Without the query.
    pub path: String,
    /// Attacker-controlled; written cut to [`MAX_USER_AGENT`] bytes, escaped by the formatter.
    pub user_agent: Option<HeaderValue>,
    pub protocol: &'static str,
    /// The request body, whose bytes read so far are `bytes_in`.
    pub body: Inbound,
}

/// One request's access line, complete but for `bytes_out`; [`logged`] writes it.
#[derive(Debug)]
pub(crate) struct AccessLine {
    /// Which fields to write, in order (`log.access_fields`).
    pub fields: Arc<[AccessField]>,
    pub request: RequestLine,
    pub status: u16,
    /// Until the response head was ready.
    pub duration_ms: f64,
    pub user: Option<Arc<str>>,
    pub route: Option<Arc<str>>,
    pub upstream: Option<http::uri::Authority>,
    pub request_id: HeaderValue,
    pub peer: SocketAddr,
    /// After trusted proxies.
    pub client: IpAddr,
    /// The canonical host; its name (without port) is written.
    pub host: Option<Host>,
    pub tls_version: Option<&'static str>,
    /// Why the gateway refused or failed the request, for the operator only.
    pub cause: Option<Box<str>>,
}

/// The access line's name of an HTTP version.
pub(crate) fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

/// The access line's callsite: target `access`, level INFO, every field of
/// [`AccessField::NAMES`] (so `AccessField as usize` is also the index of its `Field`).
static ACCESS_CALLSITE: DefaultCallsite = DefaultCallsite::new(&ACCESS_META);
static ACCESS_META: Metadata<'static> = Metadata::new(
    "access",
    "access",
    Level::INFO,
    Some(file!()),
    Some(line!()),
    Some(module_path!()),
    FieldSet::new(&AccessField::NAMES, Identifier(&ACCESS_CALLSITE)),
    Kind::EVENT,
);
/// The callsite's fields, by `AccessField as usize`.
static ACCESS_KEYS: LazyLock<Vec<Field>> = LazyLock::new(|| ACCESS_META.fields().iter().collect());

/// `value`, if there is one, as a field value.
fn some<'a>(value: &'a Option<&str>) -> Option<&'a dyn Value> {
    value.as_ref().map(|v| v as &dyn Value)
}

impl AccessLine {
    /// Writes the line, `bytes_out` being the response body bytes sent.
    fn write(&self, bytes_out: u64) {
        if Level::INFO > tracing::level_filters::LevelFilter::current()
            || ACCESS_CALLSITE.interest().is_never()
            || !tracing::dispatcher::get_default(|d| d.enabled(&ACCESS_META))
        {
            return;
        }
        let request = &self.request;
        let method = display(&request.method);
        let path = request.path.as_str();
        let status = u64::from(self.status);
        let user = self.user.as_deref().unwrap_or("-");
        let route = self.route.as_deref().unwrap_or("-");
        let upstream = self.upstream.as_ref().map(http::uri::Authority::as_str);
        let request_id = self.request_id.to_str().unwrap_or("-");
        let peer = display(&self.peer);
        let client = display(&self.client);
        let bytes_in = request.body.bytes_read();
        let user_agent = request.user_agent.as_ref().map(|v| {
            let bytes = v.as_bytes();
            String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_USER_AGENT)])
        });
        let user_agent = user_agent.as_deref();
        let host = self.host.as_ref().map(Host::name);
        let cause = self.cause.as_deref();
        // By `AccessField as usize`; `None`: the field has no value for this request.
        let values: [Option<&dyn Value>; AccessField::ALL.len()] = [
            Some(&method),
            Some(&path),
            Some(&status),
            Some(&self.duration_ms),
            Some(&user),
            Some(&route),
            some(&upstream),
            Some(&request_id),
            Some(&peer),
            Some(&client),
            Some(&bytes_in),
            Some(&bytes_out),
            some(&user_agent),
            some(&host),
            Some(&request.protocol),
            some(&self.tls_version),
            some(&cause),
        ];
        let keys = &*ACCESS_KEYS;
        // Formatters visit the values in the order given: the chosen fields first, in the
        // configured order; every other slot stays empty.
        let mut ordered: [(&Field, Option<&dyn Value>); AccessField::ALL.len()] =
            std::array::from_fn(|i| (&keys[i], None));
        for (slot, field) in ordered.iter_mut().zip(self.fields.iter()) {
            *slot = (&keys[*field as usize], values[*field as usize]);
        }
        tracing_core::Event::dispatch(&ACCESS_META, &ACCESS_META.fields().value_set(&ordered));
    }
}

/// `body`, counting the bytes it sends; writes `line` when it has ended or is dropped.
pub(crate) fn logged(body: Body, line: AccessLine) -> Body {
    Logged {
        inner: body,
        sent: 0,
        line: Some(line),
    }
    .boxed()
}

/// A response body that writes its request's access line once it is done.
#[derive(Debug)]
struct Logged {
    inner: Body,
    sent: u64,
    /// Taken when written.
    line: Option<AccessLine>,
}

impl Logged {
    fn finish(&mut self) {
        if let Some(line) = self.line.take() {
            line.write(self.sent);
        }
    }
}

impl http_body::Body for Logged {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                self.sent += frame.data_ref().map_or(0, |d| d.len() as u64);
                // Written before the last frame goes out, so it precedes the client's
                // knowing that the response is complete.
                if self.inner.is_end_stream() {
                    self.finish();
                }
            }
            Poll::Ready(None | Some(Err(_))) => self.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_are_named_as_the_access_log_writes_them() {
        assert_eq!(protocol(Version::HTTP_11), "HTTP/1.1");
        assert_eq!(protocol(Version::HTTP_10), "HTTP/1.0");
        assert_eq!(protocol(Version::HTTP_2), "HTTP/2");
    }

    #[test]
    fn every_access_field_has_its_callsite_field() {
        for field in AccessField::ALL {
            assert_eq!(ACCESS_KEYS[field as usize].name(), field.name());
        }
    }
}
