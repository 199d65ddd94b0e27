//! The one integration-test binary: a real gateway on 127.0.0.1:0, a real upstream, real TLS
//! (a rustls client) and real sockets. One file per SPEC section.

// A test fails by panicking: unwrap and expect are how its steps say so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod admin;
mod auth;
mod bench;
mod cli;
mod cluster;
mod deploy;
mod front_door;
mod grpc;
mod keys;
mod layering;
mod lifecycle;
mod limits;
mod logins;
mod logs;
mod metrics;
mod openapi;
mod proxy;
mod security;
mod sessions;
mod state;
mod token;
mod upgrade;
