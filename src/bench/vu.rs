//! One virtual user: its own connection, its own session. It logs in, then calls the path with
//! its access token as fast as the server answers; on `401` it refreshes, and when the refresh
//! fails it logs in again. A broken connection is replaced (and counted as an error).
//!
//! Owns the request loop and its bookkeeping; the connection mechanics are `target.rs`, the
//! numbers `report.rs`. Tokens and the password never reach a log or a message.

use std::convert::Infallible;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, RETRY_AFTER};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::Response;
use serde::Deserialize;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::report::{Latencies, Live, Tally};
use super::target::Sender;
use super::{BenchError, Plan, Refusal};

/// A token endpoint answer larger than this is not a token response.
const MAX_TOKEN_RESPONSE: usize = 64 * 1024;

#[derive(Debug)]
pub(crate) struct VirtualUser {
    plan: Arc<Plan>,
    live: Arc<Live>,
    latencies: Arc<Latencies>,
    /// This user's number, which picks its latency stripe.
    index: usize,
    sender: Option<Sender>,
    /// Whether the current connection has answered a request: a connection closed after that
    /// is a keep-alive limit, not an error.
    served: bool,
    /// Failures in a row, for the back-off before the next attempt.
    failures: u32,
    tokens: Option<Tokens>,
    tally: Tally,
}

impl VirtualUser {
    pub(crate) fn new(
        plan: Arc<Plan>,
        live: Arc<Live>,
        latencies: Arc<Latencies>,
        index: usize,
    ) -> Self {
        Self {
            plan,
            live,
            latencies,
            index,
            sender: None,
            served: false,
            failures: 0,
            tokens: None,
            tally: Tally::default(),
        }
    }

    /// Connects and logs in (any failure ends the whole run), reports ready, waits for the
    /// start signal carrying the deadline, then loads the server until that deadline.
    pub(crate) async fn run(
        mut self,
        ready_tx: mpsc::Sender<()>,
        mut start_rx: watch::Receiver<Option<Instant>>,
    ) -> Result<Tally, BenchError> {
        self.set_up().await?;
        let _ = ready_tx.send(()).await;
        drop(ready_tx);
        let Ok(deadline) = start_rx
            .wait_for(Option::is_some)
            .await
            .map(|start| start.unwrap_or_else(Instant::now))
        else {
            return Ok(self.tally);
        };
        // At the deadline the request in flight is dropped uncounted; everything counted so
        // far is in `self.tally`, which the loop only updates between awaits.
        match tokio::time::timeout_at(deadline, self.drive()).await {
            Ok(Err(fatal)) => Err(fatal),
            Ok(Ok(never)) => match never {},
            Err(_deadline) => Ok(self.tally),
        }
    }

    async fn set_up(&mut self) -> Result<(), BenchError> {
        let target = &self.plan.target;
        let sender = target.connect().await.map_err(|e| BenchError::Connect {
            url: target.url().to_owned(),
            source: e,
        })?;
        self.sender = Some(sender);
        // A busy gateway answers `503` or `429 temporarily_unavailable` + `Retry-After`: wait and
        // ask again (the set-up timeout in `mod.rs` bounds this).
        while self.tokens.is_none() {
            let req = self.plan.target.token(self.plan.login_form.clone());
            let answer = self
                .token_exchange(req)
                .await
                .map_err(|e| BenchError::LoginFailed {
                    user: self.plan.user.clone(),
                    source: e,
                })?;
            self.accept_login(&answer).await?;
        }
        Ok(())
    }

    async fn drive(&mut self) -> Result<Infallible, BenchError> {
        loop {
            if self.failures > 0 {
                // 10 ms, 20 ms, … up to 1 s while the server keeps failing.
                let shift = (self.failures - 1).min(7);
                tokio::time::sleep(Duration::from_millis(10 << shift).min(Duration::from_secs(1)))
                    .await;
            }
            if self.sender.is_none() {
                match self.plan.target.connect().await {
                    Ok(sender) => {
                        self.sender = Some(sender);
                        self.served = false;
                    }
                    Err(_) => {
                        self.count_error();
                        continue;
                    }
                }
            }
            match &self.tokens {
                None => self.log_in().await?,
                Some(tokens) => {
                    let req = self.plan.target.call(&tokens.bearer);
                    self.call(req).await?;
                }
            }
        }
    }

    /// One proxied call; on `401`, a refresh.
    async fn call(&mut self, req: Request<Full<Bytes>>) -> Result<(), BenchError> {
        if let Err(e) = self.ready().await {
            self.failed(&e);
            return Ok(());
        }
        let started = Instant::now();
        let result = match self.send(req).await {
            Ok(response) => {
                let status = response.status();
                drain(response.into_body()).await.map(|()| status)
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(status) => {
                self.latencies.record(self.index, started.elapsed());
                self.tally.record(status);
                self.live.requests.fetch_add(1, Ordering::Relaxed);
                self.succeeded();
                if status == StatusCode::UNAUTHORIZED {
                    self.refresh().await?;
                }
            }
            Err(e) => self.failed(&e),
        }
        Ok(())
    }

    async fn log_in(&mut self) -> Result<(), BenchError> {
        let req = self.plan.target.token(self.plan.login_form.clone());
        match self.token_exchange(req).await {
            Ok(answer) => self.accept_login(&answer).await,
            Err(e) => {
                self.failed(&e);
                Ok(())
            }
        }
    }

    /// A login answer: tokens; a pause when the gateway is busy (after `Retry-After`, at most
    /// 5 s; the caller then asks again); or the end of the run (wrong password, locked out,
    /// wrong URL).
    async fn accept_login(&mut self, answer: &TokenAnswer) -> Result<(), BenchError> {
        match answer.status {
            StatusCode::OK => {
                self.tokens = Some(Tokens::parse(&answer.body, &self.plan)?);
                self.tally.logins += 1;
                Ok(())
            }
            _ if answer.is_busy() => {
                tokio::time::sleep(answer.retry_after()).await;
                Ok(())
            }
            status => Err(BenchError::LoginRefused {
                user: self.plan.user.clone(),
                refusal: Refusal::new(status, &answer.body),
            }),
        }
    }

    /// Trades the refresh token for a new pair; if the server refuses, the next turn logs in.
    /// If the request itself fails, the old pair stays and the next `401` tries again.
    async fn refresh(&mut self) -> Result<(), BenchError> {
        let Some(refresh) = self.tokens.as_ref().and_then(|t| t.refresh.as_deref()) else {
            self.tokens = None;
            return Ok(());
        };
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "refresh_token")
            .append_pair("refresh_token", refresh)
            .finish();
        let req = self.plan.target.token(Bytes::from(form));
        match self.token_exchange(req).await {
            Ok(answer) if answer.status == StatusCode::OK => {
                self.tokens = Some(Tokens::parse(&answer.body, &self.plan)?);
                self.tally.refreshes += 1;
            }
            Ok(_) => self.tokens = None,
            Err(e) => self.failed(&e),
        }
        Ok(())
    }

    /// Sends a token request and reads the whole (small) answer.
    async fn token_exchange(
        &mut self,
        req: Request<Full<Bytes>>,
    ) -> Result<TokenAnswer, RequestError> {
        self.ready().await?;
        let response = self.send(req).await?;
        let status = response.status();
        let retry_after = response.headers().get(RETRY_AFTER).cloned();
        let body = collect(response.into_body()).await?;
        self.succeeded();
        Ok(TokenAnswer {
            status,
            retry_after,
            body,
        })
    }

    async fn ready(&mut self) -> Result<(), RequestError> {
        let sender = self.sender.as_mut().ok_or(RequestError::NotConnected)?;
        sender.ready().await.map_err(RequestError::Closed)
    }

    async fn send(
        &mut self,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, RequestError> {
        let sender = self.sender.as_mut().ok_or(RequestError::NotConnected)?;
        sender.send(req).await.map_err(RequestError::Send)
    }

    fn succeeded(&mut self) {
        self.served = true;
        self.failures = 0;
    }

    /// Drops the connection after a failed request. Counts an error unless the server closed a
    /// connection that had already served (a keep-alive limit, e.g. nginx's
    /// `keepalive_requests`).
    fn failed(&mut self, error: &RequestError) {
        let clean_close = matches!(error, RequestError::Closed(_)) && self.served;
        self.sender = None;
        if !clean_close {
            self.count_error();
        }
    }

    fn count_error(&mut self) {
        self.tally.errors += 1;
        self.failures = self.failures.saturating_add(1);
        self.live.errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// Reads a body to its end, keeping nothing.
async fn drain(mut body: Incoming) -> Result<(), RequestError> {
    while let Some(frame) = body.frame().await {
        frame.map_err(RequestError::Body)?;
    }
    Ok(())
}

async fn collect(mut body: Incoming) -> Result<Bytes, RequestError> {
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.map_err(RequestError::Body)?.into_data() {
            if buf.len() + data.len() > MAX_TOKEN_RESPONSE {
                return Err(RequestError::TooLarge);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(buf))
}

/// What the token endpoint answered.
#[derive(Debug)]
struct TokenAnswer {
    status: StatusCode,
    retry_after: Option<HeaderValue>,
    body: Bytes,
}

impl TokenAnswer {
    /// Whether the gateway asks to come back shortly: `503` (its hashing queue is full, or the
    /// session store is down), or `429 temporarily_unavailable` (too many logins in flight from
    /// this client address, as all virtual users share one). A `429 invalid_grant` is a lockout
    /// and ends the run.
    fn is_busy(&self) -> bool {
        #[derive(Deserialize)]
        struct Error<'a> {
            #[serde(borrow)]
            error: std::borrow::Cow<'a, str>,
        }
        match self.status {
            StatusCode::SERVICE_UNAVAILABLE => true,
            StatusCode::TOO_MANY_REQUESTS => serde_json::from_slice::<Error<'_>>(&self.body)
                .is_ok_and(|e| e.error == "temporarily_unavailable"),
            _ => false,
        }
    }

    /// How long to wait before asking again: `Retry-After` in seconds (an HTTP date counts as
    /// 1 s), at least 50 ms and at most 5 s so that a run never sleeps through its window.
    fn retry_after(&self) -> Duration {
        let secs = self
            .retry_after
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(1);
        Duration::from_secs(secs).clamp(Duration::from_millis(50), Duration::from_secs(5))
    }
}

/// Why a request got no complete answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RequestError {
    #[error("not connected")]
    NotConnected,
    #[error("the connection closed")]
    Closed(#[source] hyper::Error),
    #[error("the request failed")]
    Send(#[source] hyper::Error),
    #[error("reading the response failed")]
    Body(#[source] hyper::Error),
    #[error("the token endpoint's answer is larger than {MAX_TOKEN_RESPONSE} bytes")]
    TooLarge,
}

/// A virtual user's current token pair. Never printed.
struct Tokens {
    /// `Bearer <access token>`, built once per token and cloned (a reference count) per call.
    bearer: HeaderValue,
    refresh: Option<String>,
}

impl Tokens {
    fn parse(body: &[u8], plan: &Plan) -> Result<Self, BenchError> {
        #[derive(Deserialize)]
        struct Answer {
            access_token: String,
            refresh_token: Option<String>,
        }
        let not_tokens = |source| BenchError::NotTokens {
            uri: plan.target.token_uri().to_string(),
            source,
        };
        let answer: Answer = serde_json::from_slice(body).map_err(|e| not_tokens(Some(e)))?;
        let mut bearer = HeaderValue::try_from(format!("Bearer {}", answer.access_token))
            .map_err(|_| not_tokens(None))?;
        bearer.set_sensitive(true);
        Ok(Self {
            bearer,
            refresh: answer.refresh_token,
        })
    }
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tokens(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_bounded() {
        let answer = |value: Option<&'static str>| TokenAnswer {
            status: StatusCode::SERVICE_UNAVAILABLE,
            retry_after: value.map(HeaderValue::from_static),
            body: Bytes::new(),
        };
        assert_eq!(answer(Some("2")).retry_after(), Duration::from_secs(2));
        assert_eq!(answer(Some("0")).retry_after(), Duration::from_millis(50));
        assert_eq!(answer(Some("900")).retry_after(), Duration::from_secs(5));
        assert_eq!(answer(None).retry_after(), Duration::from_secs(1));
        let date = answer(Some("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(date.retry_after(), Duration::from_secs(1));
    }

    #[test]
    fn busy_is_503_or_429_temporarily_unavailable_but_not_a_lockout() {
        let answer = |status: u16, body: &'static str| TokenAnswer {
            status: StatusCode::from_u16(status).unwrap(),
            retry_after: None,
            body: Bytes::from_static(body.as_bytes()),
        };
        assert!(answer(503, "").is_busy());
        assert!(answer(429, r#"{"error":"temporarily_unavailable"}"#).is_busy());
        assert!(!answer(429, r#"{"error":"invalid_grant"}"#).is_busy());
        assert!(!answer(429, "slow down").is_busy());
        assert!(!answer(400, r#"{"error":"temporarily_unavailable"}"#).is_busy());
    }
}
