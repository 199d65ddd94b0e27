//! `Rejection`: every response the gateway makes up itself instead of forwarding, and the one
//! place where each error family maps to a status, a JSON body and its headers.
//!
//! The `From` impls below are the table of SPEC §1.1, §2 and §3; each `match` is exhaustive
//! (no `_` arm) so a new error variant cannot slip through unmapped. Each row names its HTTP
//! status and its gRPC status together, so a gRPC client gets the answer the row means. The
//! admin listener's refusals are rows of the same table. Internal detail never reaches the
//! body: `cause` goes to the access log only.

use std::borrow::Cow;
use std::fmt::Display;

use http::header::{ALLOW, CONNECTION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};
use serde::Serialize;

use crate::auth::AuthError;
use crate::body::{self, Body};
use crate::proxy::ProxyError;
use crate::route::RouteError;
use crate::session::StoreError;
use crate::token::{OAuthError, TokenError};

const REALM: &str = "Bearer realm=\"portcullis\"";

/// A response the gateway generates, with what the access log should say about it.
#[derive(Clone, Debug)]
pub(crate) struct Rejection {
    pub status: StatusCode,
    /// What a gRPC client is told instead (`grpc-status`).
    pub grpc: Grpc,
    /// The JSON body's `error`.
    pub error: &'static str,
    pub description: Cow<'static, str>,
    /// `WWW-Authenticate`, for 401 and 403.
    pub challenge: Option<Challenge>,
    pub retry_after: Option<u32>,
    pub allow: Option<&'static str>,
    /// Token endpoint responses carry `Cache-Control: no-store`.
    pub no_store: bool,
    /// Ask HTTP/1 clients to close the connection after this response.
    pub close: bool,
    /// Internal detail for the log; never sent.
    pub cause: Option<Box<str>>,
}

/// The `WWW-Authenticate` challenges of SPEC §2.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum Challenge {
    /// No credentials: `Bearer realm="portcullis"`.
    Bare,
    /// `error="invalid_token"` with this description.
    InvalidToken(&'static str),
    InsufficientScope,
}

impl Challenge {
    pub(crate) fn header_value(self) -> String {
        match self {
            Self::Bare => REALM.to_owned(),
            Self::InvalidToken(description) => {
                format!("{REALM}, error=\"invalid_token\", error_description=\"{description}\"")
            }
            Self::InsufficientScope => format!("{REALM}, error=\"insufficient_scope\""),
        }
    }
}

/// The gRPC status codes the table uses (gRPC's `statuscodes.md`), each named where HTTP's
/// mapping to gRPC (`http-grpc-status-mapping.md`) or the meaning of the row puts it.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[repr(u16)]
pub(crate) enum Grpc {
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    Unauthenticated = 16,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: &'a str,
}

impl Rejection {
    fn new(
        status: StatusCode,
        grpc: Grpc,
        error: &'static str,
        description: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            grpc,
            error,
            description: description.into(),
            challenge: None,
            retry_after: None,
            allow: None,
            no_store: false,
            close: false,
            cause: None,
        }
    }

    pub(crate) fn method_not_allowed(allow: &'static str) -> Self {
        Self {
            allow: Some(allow),
            ..Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                Grpc::Internal,
                "method_not_allowed",
                "This endpoint does not accept that method",
            )
        }
    }

    /// A failure that is our fault (a panicked blocking task, a key that cannot sign).
    pub(crate) fn internal(cause: impl Display) -> Self {
        Self {
            cause: Some(cause.to_string().into()),
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                Grpc::Internal,
                "server_error",
                "Internal error",
            )
        }
    }

    /// `404 not_found` for a resource that is not there (the admin listener's unknown session).
    pub(crate) fn not_found(description: &'static str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            Grpc::Unimplemented,
            "not_found",
            description,
        )
    }

    /// `403 forbidden` from the admin listener, for a `Host` that is not its own (DNS
    /// rebinding).
    pub(crate) fn foreign_host() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            Grpc::PermissionDenied,
            "forbidden",
            "This Host is not the admin listener's; add it to admin.allowed_hosts",
        )
    }

    pub(crate) fn into_response(self) -> Response<Body> {
        let json = serde_json::to_vec(&ErrorBody {
            error: self.error,
            error_description: &self.description,
        })
        .unwrap_or_default();
        let mut response = body::json(self.status, json);
        let headers = response.headers_mut();
        if let Some(challenge) =
            (self.challenge).and_then(|c| HeaderValue::try_from(c.header_value()).ok())
        {
            headers.insert(WWW_AUTHENTICATE, challenge);
        }
        if let Some(secs) = self.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(allow) = self.allow {
            headers.insert(ALLOW, HeaderValue::from_static(allow));
        }
        if self.close {
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        if self.no_store {
            body::no_store(&mut response);
        }
        response
    }
}

impl Rejection {
    /// The rejection as a gRPC "trailers-only" response: HTTP 200 with `grpc-status` and
    /// `grpc-message`, as gRPC clients expect (and as Envoy answers gRPC requests). The status
    /// is the row's `grpc`; the `WWW-Authenticate` challenge is kept.
    pub(crate) fn into_grpc_response(self) -> Response<Body> {
        let code = self.grpc as u16;
        let mut response = Response::new(body::empty());
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert("grpc-status", HeaderValue::from(code));
        // grpc-message is percent-encoded; our descriptions are plain ASCII without '%'.
        if let Ok(message) = HeaderValue::from_str(&self.description) {
            headers.insert("grpc-message", message);
        }
        if let Some(challenge) =
            (self.challenge).and_then(|c| HeaderValue::try_from(c.header_value()).ok())
        {
            headers.insert(WWW_AUTHENTICATE, challenge);
        }
        if let Some(secs) = self.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<AuthError> for Rejection {
    fn from(e: AuthError) -> Self {
        let invalid = |description: &'static str| Rejection {
            challenge: Some(Challenge::InvalidToken(description)),
            cause: Some(e.to_string().into()),
            ..Rejection::new(
                StatusCode::UNAUTHORIZED,
                Grpc::Unauthenticated,
                "invalid_token",
                description,
            )
        };
        match e {
            AuthError::Missing => Rejection {
                challenge: Some(Challenge::Bare),
                ..Rejection::new(
                    StatusCode::UNAUTHORIZED,
                    Grpc::Unauthenticated,
                    "unauthorized",
                    "A bearer token is required",
                )
            },
            AuthError::Expired => invalid("The access token expired"),
            AuthError::Invalid(reason) => invalid(reason.description()),
            AuthError::InsufficientScope => Rejection {
                challenge: Some(Challenge::InsufficientScope),
                ..Rejection::new(
                    StatusCode::FORBIDDEN,
                    Grpc::PermissionDenied,
                    "insufficient_scope",
                    "The access token lacks a role this resource requires",
                )
            },
        }
    }
}

impl From<OAuthError> for Rejection {
    fn from(e: OAuthError) -> Self {
        let (status, grpc, error, description): (_, _, _, Cow<'static, str>) = match e {
            OAuthError::InvalidRequest(d) => (
                StatusCode::BAD_REQUEST,
                Grpc::InvalidArgument,
                "invalid_request",
                d.into(),
            ),
            OAuthError::UnsupportedGrantType => (
                StatusCode::BAD_REQUEST,
                Grpc::InvalidArgument,
                "unsupported_grant_type",
                "The grant type is not supported; use password or refresh_token".into(),
            ),
            OAuthError::InvalidGrant(d) => (
                StatusCode::BAD_REQUEST,
                Grpc::InvalidArgument,
                "invalid_grant",
                d.into(),
            ),
            OAuthError::BodyTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                Grpc::Internal,
                "invalid_request",
                "The request body is larger than 16 KiB".into(),
            ),
            OAuthError::BodyTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                Grpc::Internal,
                "invalid_request",
                "The request body did not arrive in time".into(),
            ),
            OAuthError::TooManyFailures { retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                Grpc::ResourceExhausted,
                "invalid_grant",
                format!("Too many failed logins; try again in {retry_after} seconds").into(),
            ),
            OAuthError::TooManyLogins => (
                StatusCode::TOO_MANY_REQUESTS,
                Grpc::ResourceExhausted,
                "temporarily_unavailable",
                "Too many logins in progress for this user or client; try again shortly".into(),
            ),
        };
        let retry_after = match e {
            OAuthError::TooManyFailures { retry_after } => {
                Some(u32::try_from(retry_after).unwrap_or(u32::MAX))
            }
            OAuthError::TooManyLogins => Some(1),
            OAuthError::InvalidRequest(_)
            | OAuthError::UnsupportedGrantType
            | OAuthError::InvalidGrant(_)
            | OAuthError::BodyTooLarge
            | OAuthError::BodyTimeout => None,
        };
        Rejection {
            retry_after,
            no_store: true,
            close: matches!(e, OAuthError::BodyTooLarge | OAuthError::BodyTimeout),
            ..Rejection::new(status, grpc, error, description)
        }
    }
}

impl From<TokenError> for Rejection {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::OAuth(e) => e.into(),
            TokenError::Auth(e) => e.into(),
            TokenError::MethodNotAllowed(allow) => Rejection::method_not_allowed(allow),
            TokenError::Busy(e) => e.into(),
            TokenError::Store(e) => e.into(),
            TokenError::Mint(e) => Rejection::internal(e),
            TokenError::Task(e) => Rejection::internal(e),
        }
    }
}

impl From<ProxyError> for Rejection {
    fn from(e: ProxyError) -> Self {
        let (status, grpc, error, description) = match &e {
            ProxyError::Connect(_) => (
                StatusCode::BAD_GATEWAY,
                Grpc::Unavailable,
                "bad_gateway",
                "The upstream service could not be reached",
            ),
            ProxyError::Upstream(_) => (
                StatusCode::BAD_GATEWAY,
                Grpc::Unavailable,
                "bad_gateway",
                "The upstream service failed to respond",
            ),
            ProxyError::Target(_) => (
                StatusCode::BAD_REQUEST,
                Grpc::InvalidArgument,
                "invalid_request",
                "The request target cannot be forwarded",
            ),
            ProxyError::Timeout => (
                StatusCode::GATEWAY_TIMEOUT,
                Grpc::DeadlineExceeded,
                "gateway_timeout",
                "The upstream service did not respond in time",
            ),
            ProxyError::Downstream(_) => (
                StatusCode::BAD_REQUEST,
                Grpc::InvalidArgument,
                "invalid_request",
                "The request body is malformed",
            ),
        };
        Rejection {
            close: matches!(e, ProxyError::Downstream(_) | ProxyError::Target(_)),
            cause: Some(crate::telemetry::error_chain(&e).into()),
            ..Rejection::new(status, grpc, error, description)
        }
    }
}

impl From<RouteError> for Rejection {
    fn from(e: RouteError) -> Self {
        match e {
            RouteError::NotFound => Rejection::not_found("No route matches this request"),
            RouteError::BadPath => Rejection {
                close: true,
                ..Rejection::new(
                    StatusCode::BAD_REQUEST,
                    Grpc::InvalidArgument,
                    "invalid_request",
                    "The request path is ambiguous: a dot or empty segment, ';', '\\', an \
                     encoded '/', '\\', ';' or control character, or a double-encoded escape",
                )
            },
            RouteError::BadHost => Rejection {
                close: true,
                ..Rejection::new(
                    StatusCode::BAD_REQUEST,
                    Grpc::InvalidArgument,
                    "invalid_request",
                    "The request's host is missing, repeated, malformed, or differs from \
                     :authority",
                )
            },
        }
    }
}

impl From<crate::login::Busy> for Rejection {
    fn from(_: crate::login::Busy) -> Self {
        Rejection {
            retry_after: Some(1),
            no_store: true,
            ..Rejection::new(
                StatusCode::SERVICE_UNAVAILABLE,
                Grpc::Unavailable,
                "temporarily_unavailable",
                "Too many logins in progress; try again shortly",
            )
        }
    }
}

impl From<StoreError> for Rejection {
    fn from(e: StoreError) -> Self {
        Rejection {
            retry_after: Some(1),
            no_store: true,
            cause: Some(crate::telemetry::error_chain(&e).into()),
            ..Rejection::new(
                StatusCode::SERVICE_UNAVAILABLE,
                Grpc::Unavailable,
                "temporarily_unavailable",
                "The session store is unavailable; try again shortly",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;
    use crate::auth::InvalidReason;

    async fn render(r: Rejection) -> (StatusCode, Option<String>, serde_json::Value) {
        let response = r.into_response();
        let status = response.status();
        let challenge = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, challenge, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn missing_token_is_a_bare_challenge() {
        let (status, challenge, body) = render(AuthError::Missing.into()).await;
        assert_eq!(status, 401);
        assert_eq!(challenge.as_deref(), Some("Bearer realm=\"portcullis\""));
        assert_eq!(body["error"], "unauthorized");
    }

    #[tokio::test]
    async fn expired_token_says_so() {
        let (status, challenge, body) = render(AuthError::Expired.into()).await;
        assert_eq!(status, 401);
        assert_eq!(
            challenge.as_deref(),
            Some(
                "Bearer realm=\"portcullis\", error=\"invalid_token\", \
                 error_description=\"The access token expired\""
            )
        );
        assert_eq!(body["error"], "invalid_token");
        assert_eq!(body["error_description"], "The access token expired");
    }

    #[tokio::test]
    async fn invalid_token_is_401_invalid_token() {
        for reason in [
            InvalidReason::Signature,
            InvalidReason::Audience,
            InvalidReason::Revoked,
        ] {
            let (status, challenge, body) = render(AuthError::Invalid(reason).into()).await;
            assert_eq!(status, 401);
            let challenge = challenge.unwrap();
            assert!(challenge.starts_with("Bearer realm=\"portcullis\", error=\"invalid_token\""));
            assert!(challenge.contains(reason.description()));
            assert_eq!(body["error"], "invalid_token");
        }
    }

    #[tokio::test]
    async fn missing_role_is_403_insufficient_scope() {
        let (status, challenge, body) = render(AuthError::InsufficientScope.into()).await;
        assert_eq!(status, 403);
        assert_eq!(
            challenge.as_deref(),
            Some("Bearer realm=\"portcullis\", error=\"insufficient_scope\"")
        );
        assert_eq!(body["error"], "insufficient_scope");
    }

    #[tokio::test]
    async fn token_endpoint_errors_are_400_with_rfc_6749_codes() {
        let cases = [
            (OAuthError::InvalidRequest("x"), 400, "invalid_request"),
            (
                OAuthError::UnsupportedGrantType,
                400,
                "unsupported_grant_type",
            ),
            (OAuthError::BAD_CREDENTIALS, 400, "invalid_grant"),
            (OAuthError::BAD_REFRESH, 400, "invalid_grant"),
            (OAuthError::BodyTooLarge, 413, "invalid_request"),
            (OAuthError::BodyTimeout, 408, "invalid_request"),
            (
                OAuthError::TooManyFailures { retry_after: 7 },
                429,
                "invalid_grant",
            ),
            (OAuthError::TooManyLogins, 429, "temporarily_unavailable"),
        ];
        for (e, status, code) in cases {
            let (s, challenge, body) = render(e.into()).await;
            assert_eq!((s.as_u16(), body["error"].as_str()), (status, Some(code)));
            assert!(challenge.is_none());
        }
        let response =
            Rejection::from(OAuthError::TooManyFailures { retry_after: 7 }).into_response();
        assert_eq!(response.headers()[RETRY_AFTER], "7");
        let response = Rejection::from(OAuthError::TooManyLogins).into_response();
        assert_eq!(response.headers()[RETRY_AFTER], "1");
        assert_eq!(response.headers()[http::header::CACHE_CONTROL], "no-store");
    }

    #[tokio::test]
    async fn token_handler_errors_map_to_their_families_rows() {
        let cases: [(TokenError, u16, &str); 5] = [
            (OAuthError::BAD_REFRESH.into(), 400, "invalid_grant"),
            (AuthError::Missing.into(), 401, "unauthorized"),
            (
                TokenError::MethodNotAllowed("GET, HEAD"),
                405,
                "method_not_allowed",
            ),
            (crate::login::Busy.into(), 503, "temporarily_unavailable"),
            (
                crate::token::issue::MintError::OutOfRange.into(),
                500,
                "server_error",
            ),
        ];
        for (e, status, code) in cases {
            let (s, _, body) = render(e.into()).await;
            assert_eq!((s.as_u16(), body["error"].as_str()), (status, Some(code)));
        }
        let rejection = Rejection::from(TokenError::MethodNotAllowed("GET, HEAD"));
        assert_eq!(rejection.into_response().headers()[ALLOW], "GET, HEAD");
        let internal =
            Rejection::from(TokenError::from(crate::token::issue::MintError::OutOfRange));
        assert!(internal.cause.is_some(), "the cause goes to the log");
        assert_eq!(internal.description, "Internal error");
    }

    #[tokio::test]
    async fn upstream_failures_are_502_and_504() {
        let (status, _, body) = render(ProxyError::Timeout.into()).await;
        assert_eq!(
            (status.as_u16(), body["error"].as_str()),
            (504, Some("gateway_timeout"))
        );
    }

    #[tokio::test]
    async fn front_door_refusals_are_400_and_close() {
        for e in [RouteError::BadPath, RouteError::BadHost] {
            let rejection = Rejection::from(e);
            assert!(rejection.close, "{e:?}");
            let (s, _, body) = render(rejection).await;
            assert_eq!(
                (s.as_u16(), body["error"].as_str()),
                (400, Some("invalid_request"))
            );
        }
    }

    #[tokio::test]
    async fn a_malformed_client_body_is_400_not_502() {
        let e = ProxyError::Downstream(std::io::Error::other("bad chunk").into());
        let rejection = Rejection::from(e);
        assert!(rejection.close);
        let (status, _, body) = render(rejection).await;
        assert_eq!(
            (status.as_u16(), body["error"].as_str()),
            (400, Some("invalid_request"))
        );
    }

    /// One row of the table as a client sees it: status, gRPC status, `error`, and the
    /// headers that vary by row.
    #[derive(Debug, PartialEq)]
    struct Row {
        status: u16,
        grpc: String,
        error: String,
        challenge: bool,
        retry_after: Option<String>,
        allow: Option<String>,
        no_store: bool,
        close: bool,
    }

    #[allow(clippy::too_many_arguments)]
    fn row(
        status: u16,
        grpc: &str,
        error: &str,
        challenge: bool,
        retry_after: Option<&str>,
        allow: Option<&str>,
        no_store: bool,
        close: bool,
    ) -> Row {
        Row {
            status,
            grpc: grpc.to_owned(),
            error: error.to_owned(),
            challenge,
            retry_after: retry_after.map(str::to_owned),
            allow: allow.map(str::to_owned),
            no_store,
            close,
        }
    }

    async fn seen(r: Rejection) -> Row {
        let grpc = r.clone().into_grpc_response();
        let grpc_status = grpc.headers()["grpc-status"].to_str().unwrap().to_owned();
        assert_eq!(grpc.status(), 200, "gRPC rejections are trailers-only 200s");
        let response = r.into_response();
        let h = response.headers().clone();
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert!(body["error_description"].is_string(), "{body}");
        assert_eq!(h[CONTENT_TYPE], "application/json");
        let header = |name| h.get(name).map(|v| v.to_str().unwrap().to_owned());
        Row {
            status,
            grpc: grpc_status,
            error: body["error"].as_str().unwrap().to_owned(),
            challenge: h.contains_key(WWW_AUTHENTICATE),
            retry_after: header(RETRY_AFTER),
            allow: header(ALLOW),
            no_store: header(http::header::CACHE_CONTROL).as_deref() == Some("no-store"),
            close: header(CONNECTION).as_deref() == Some("close"),
        }
    }

    /// Every row of the table, pinned: a change to any status, gRPC code or header of a
    /// rejection shows here.
    #[tokio::test]
    async fn every_row_of_the_table_is_pinned() {
        let failure = || std::io::Error::other("x").into();
        let f = false;
        let t = true;
        let cases: Vec<(Rejection, Row)> = vec![
            (
                AuthError::Missing.into(),
                row(401, "16", "unauthorized", t, None, None, f, f),
            ),
            (
                AuthError::Expired.into(),
                row(401, "16", "invalid_token", t, None, None, f, f),
            ),
            (
                AuthError::Invalid(InvalidReason::Revoked).into(),
                row(401, "16", "invalid_token", t, None, None, f, f),
            ),
            (
                AuthError::InsufficientScope.into(),
                row(403, "7", "insufficient_scope", t, None, None, f, f),
            ),
            (
                OAuthError::InvalidRequest("x").into(),
                row(400, "3", "invalid_request", f, None, None, t, f),
            ),
            (
                OAuthError::UnsupportedGrantType.into(),
                row(400, "3", "unsupported_grant_type", f, None, None, t, f),
            ),
            (
                OAuthError::BAD_CREDENTIALS.into(),
                row(400, "3", "invalid_grant", f, None, None, t, f),
            ),
            (
                OAuthError::BodyTooLarge.into(),
                row(413, "13", "invalid_request", f, None, None, t, t),
            ),
            (
                OAuthError::BodyTimeout.into(),
                row(408, "13", "invalid_request", f, None, None, t, t),
            ),
            (
                OAuthError::TooManyFailures { retry_after: 7 }.into(),
                row(429, "8", "invalid_grant", f, Some("7"), None, t, f),
            ),
            (
                OAuthError::TooManyLogins.into(),
                row(
                    429,
                    "8",
                    "temporarily_unavailable",
                    f,
                    Some("1"),
                    None,
                    t,
                    f,
                ),
            ),
            (
                ProxyError::Connect(failure()).into(),
                row(502, "14", "bad_gateway", f, None, None, f, f),
            ),
            (
                ProxyError::Upstream(failure()).into(),
                row(502, "14", "bad_gateway", f, None, None, f, f),
            ),
            (
                ProxyError::Downstream(failure()).into(),
                row(400, "3", "invalid_request", f, None, None, f, t),
            ),
            (
                ProxyError::Target(http::Uri::try_from("\\x").map(|_| ()).unwrap_err().into())
                    .into(),
                row(400, "3", "invalid_request", f, None, None, f, t),
            ),
            (
                ProxyError::Timeout.into(),
                row(504, "4", "gateway_timeout", f, None, None, f, f),
            ),
            (
                RouteError::NotFound.into(),
                row(404, "12", "not_found", f, None, None, f, f),
            ),
            (
                RouteError::BadPath.into(),
                row(400, "3", "invalid_request", f, None, None, f, t),
            ),
            (
                RouteError::BadHost.into(),
                row(400, "3", "invalid_request", f, None, None, f, t),
            ),
            (
                crate::login::Busy.into(),
                row(
                    503,
                    "14",
                    "temporarily_unavailable",
                    f,
                    Some("1"),
                    None,
                    t,
                    f,
                ),
            ),
            (
                StoreError::Commit.into(),
                row(
                    503,
                    "14",
                    "temporarily_unavailable",
                    f,
                    Some("1"),
                    None,
                    t,
                    f,
                ),
            ),
            (
                Rejection::method_not_allowed("GET, HEAD"),
                row(
                    405,
                    "13",
                    "method_not_allowed",
                    f,
                    None,
                    Some("GET, HEAD"),
                    f,
                    f,
                ),
            ),
            (
                Rejection::internal("x"),
                row(500, "13", "server_error", f, None, None, f, f),
            ),
            (
                Rejection::not_found("x"),
                row(404, "12", "not_found", f, None, None, f, f),
            ),
            (
                Rejection::foreign_host(),
                row(403, "7", "forbidden", f, None, None, f, f),
            ),
        ];
        for (rejection, want) in cases {
            let what = format!("{rejection:?}");
            assert_eq!(seen(rejection).await, want, "{what}");
        }
    }

    #[tokio::test]
    async fn method_not_allowed_names_the_method() {
        let response = Rejection::method_not_allowed("POST").into_response();
        assert_eq!(response.status(), 405);
        assert_eq!(response.headers()[ALLOW], "POST");
    }
}
