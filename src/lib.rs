//! portcullis: a reverse-proxy authentication gateway.
//!
//! It terminates TLS, serves its own OAuth 2.0 token endpoint (password and refresh grants,
//! wire-compatible with the seed vendor API), checks the access token on every proxied request
//! and answers `401` with a `WWW-Authenticate: Bearer` challenge when it is missing or bad.
//!
//! # Layout
//!
//! Bottom up; a module imports only modules listed above it (CONTRIBUTING.md, checked by
//! `tests/it/layering.rs`).
//!
//! Values and formats:
//! - `clock`: the one wall clock (adjustable in tests). `body`: body types, the one JSON
//!   answer and `no_store`. `canonical`: the one canonical form of a path and a host.
//!   `keygen`: key and certificate generation.
//! - `config`: the TOML file → a validated `Config` (every problem reported with its key), the
//!   table of defaults, the `Endpoint` list.
//! - `telemetry`: logging, fatal errors in the log's format, the access line. `certs`: the crypto provider, certificate loading and the resolver
//!   a reload feeds. `jwt`: the token format shared by minting and checking (key sets and
//!   `kid`s, claims, verification against a given time). `metrics`: the registry.
//!
//! Stores and stages, each taking narrow arguments and returning an error of its own:
//! - `session`: the session stores (in-memory, embedded redb, Redis with revocation fan-out:
//!   rotation, reuse detection, revocation) and the local deny list. `login`: users, argon2id
//!   password verification on a bounded pool, throttling.
//! - `auth`: bearer parsing, the `Verifier` (verification and the verified-token cache),
//!   revocation check, roles. `route`: host + longest-prefix matching.
//! - `proxy`: forwarding for one `Hop`, with streamed bodies, header rewriting, upgrades and
//!   upstream errors. `token`: the token, logout, revocation and introspection endpoints and
//!   discovery, on a `TokenCtx` of parts; minting.
//! - `front`: the front door: each request made canonical once (path, host, client address).
//!
//! Composition:
//! - `state`: `Shared` (process lifetime: sessions, throttle, metrics, clock, certificate
//!   resolver, the `ListenerSettings` bound at start) and `Snapshot` (one configuration
//!   generation: routes, users, keys, verifier), swapped atomically on reload. `reject`: every
//!   error enum to one response table (HTTP and gRPC). `ctx`: the read-only `RequestCtx`, the
//!   `AccessRecord` the phases fill in, and `ConnState`.
//!
//! Services: `gateway`, the infallible service that runs the request phases; `admin`, the
//! admin listener's.
//!
//! Process: `server` (one accept loop for both listeners, TLS and HTTP/1.1 or HTTP/2 by ALPN,
//! head and idle deadlines, lingering close, signals), `reload`, `init`, `run` (the lifecycle
//! for `serve`, `demo` and the test fixture: runtime, bind, signals, reload loop, drain),
//! `demo`, `cli`. The load harness behind `portcullis bench` belongs to the binary
//! (`src/main.rs`, `src/bench/`), not to this library.
//!
//! # Request lifecycle
//!
//! request id → front door (canonical path and host, client address) → the gateway's own
//! endpoint (token, logout, ...), else route match →
//! authenticate (bearer, cached or checked signature and claims, deny list) → authorize
//! (roles) → rewrite the upstream request → forward → rewrite the response → access log.

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
