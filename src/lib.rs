//! portcullis: a reverse-proxy authentication gateway.
//!
//! It terminates TLS, serves its own OAuth 2.0 token endpoint (password and refresh grants,
//! wire-compatible with the seed vendor API), checks the access token on every proxied request
//! and answers `401` with a `WWW-Authenticate: Bearer` challenge when it is missing or bad.
//!
//! # Layout
//!
//! - `clock`: the one wall clock (adjustable in tests).
//! - `certs`: the crypto provider, certificate and key loading, and the certificate resolver a
//!   reload feeds.
//! - `config`: the TOML file → a validated `Config` (every problem reported with its key).
//! - `state`: `Shared` (process lifetime: sessions, certificate resolver) and `Snapshot` (one
//!   configuration generation: routes, users, keys), swapped atomically on reload.
//! - `server`: one accept loop for the gateway and admin listeners, per-connection TLS and
//!   HTTP/1.1 or HTTP/2 (by ALPN), head and idle deadlines, lingering close, signals.
//! - `canonical`: the one canonical form of a path and a host.
//! - `front`: the front door: each request made canonical once (path, host, client address).
//! - `gateway`: the infallible service that runs the request phases.
//! - `reject`: every gateway-made error response, mapped in one table.
//! - `route`: host + longest-prefix matching on the canonical path and host.
//! - `jwt`: the token format shared by minting and checking: key sets and `kid`s, claims,
//!   verification.
//! - `auth`: bearer parsing, the `Verifier` (verification and the verified-token cache),
//!   revocation check, roles.
//! - `token`: the token, logout, revocation and introspection endpoints, discovery; minting.
//! - `session`: the session stores (in-memory, embedded redb, Redis with revocation fan-out:
//!   rotation, reuse detection, revocation) and the local deny list.
//! - `login`: users, argon2id password verification on a bounded pool, throttling.
//! - `proxy`: forwarding with streamed bodies, header rewriting, upstream errors.
//! - `admin`: `/healthz`, `/readyz`, `/metrics`, `/openapi.json` and session administration
//!   on the admin listener;
//!   `metrics`: the registry.
//! - `run`: the process lifecycle for `serve`, `demo` and the test fixture: runtime, binding
//!   the listeners once (`state::ListenerSettings`), signals, the reload loop, the drain.
//! - `keygen`, `init`, `demo`, `cli`: key generation and the command line (`portcullis bench`,
//!   the load harness, is the binary's: `src/main.rs`, `src/bench/`).
//!
//! # Request lifecycle
//!
//! request id → front door (canonical path and host, client address) → the gateway's own
//! endpoint (token, logout, ...), else route match →
//! authenticate (bearer, cached or checked signature and claims, deny list) → authorize (roles) → rewrite the
//! upstream request → forward → rewrite the response → access log.

mod admin;
pub mod auth;
mod body;
pub mod canonical;
pub mod certs;
pub mod cli;
pub mod clock;
pub mod config;
mod ctx;
mod demo;
mod front;
mod gateway;
pub mod init;
pub mod jwt;
pub mod keygen;
pub mod login;
pub mod metrics;
pub mod proxy;
mod reject;
pub mod reload;
mod route;
pub mod run;
pub mod server;
pub mod session;
pub mod state;
mod telemetry;
pub mod token;
