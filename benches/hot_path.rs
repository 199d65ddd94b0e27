//! criterion micro-benchmarks of the per-request and per-token work (issue 6):
//! access-token verification cold (signature checked) and cached, token issuance per algorithm,
//! routing, and request-header rewriting.
//!
//! Run with `cargo bench --bench hot_path` (add `-- verify` etc. to pick a group).

// A benchmark's setup fails by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::SystemTime;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use http::{HeaderMap, HeaderValue};
use jsonwebtoken::Algorithm;
use portcullis::auth::Identity;
use portcullis::config::Config;
use portcullis::proxy::Hop;
use portcullis::session::DenyList;
use portcullis::state::Snapshot;
use portcullis::token::issue::{self, PairRequest};

const ROUTES: usize = 20;

/// A snapshot signing with `algorithm`, with `ROUTES` routes, in a fresh temporary folder.
fn snapshot(algorithm: Algorithm, verified_cache: usize) -> Snapshot {
    let dir = std::env::temp_dir().join(format!("portcullis-crit-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let pem = portcullis::keygen::signing_key_pem_for(algorithm).unwrap();
    portcullis::keygen::write_private(&dir.join("signing.pem"), pem.as_bytes()).unwrap();
    let mut text = format!(
        "[server]\ntls = false\n[tokens]\nsigning_key = \"signing.pem\"\nalgorithm = \"{algorithm:?}\"\n\
         verified_cache = {verified_cache}\n[store]\nkind = \"memory\"\n"
    );
    for i in 0..ROUTES {
        text.push_str(&format!(
            "[[routes]]\nname = \"r{i}\"\nhost = \"api{}.example.com\"\npath_prefix = \"/v1/service{i}\"\n\
             upstreams = [\"http://127.0.0.1:{}\"]\n",
            i % 3,
            9000 + i
        ));
    }
    std::fs::write(dir.join("portcullis.toml"), text).unwrap();
    let snapshot = Snapshot::build(Config::load(&dir.join("portcullis.toml")).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    snapshot
}

fn pair(snapshot: &Snapshot) -> issue::TokenResponse {
    let roles = ["user".to_owned(), "admin".to_owned()];
    let req = PairRequest {
        user: "alice",
        roles: &roles,
        sid: "5f0c6c1e-8f5e-4a53-9d0e-2f7d3c1b9a77",
        token_id: "0b1f1e9e-3c1d-4c59-8a8e-52a3e7c4f0d2",
        short_term: false,
        session_start: portcullis::clock::Clock::system().unix(),
        now: SystemTime::now(),
    };
    let tokens = &snapshot.config.tokens;
    let refresh_at = issue::refresh_deadline(tokens, &req).unwrap();
    issue::mint(&snapshot.keys, tokens, &req, refresh_at).unwrap()
}

fn verification(c: &mut Criterion) {
    let deny = DenyList::default();
    let mut group = c.benchmark_group("verify");
    let cold = snapshot(Algorithm::RS512, 0);
    let token = pair(&cold).access_token;
    let now = portcullis::clock::Clock::system().unix();
    group.bench_function("rs512_cold", |b| {
        b.iter(|| cold.verifier.decode(&token, now).unwrap())
    });
    group.bench_function("rs512_cold_with_deny_list", |b| {
        b.iter(|| cold.verifier.verify_access(&deny, &token, now).unwrap())
    });
    let cached = snapshot(Algorithm::RS512, 10_000);
    let token = pair(&cached).access_token;
    cached.verifier.verify_access(&deny, &token, now).unwrap();
    group.bench_function("rs512_cached", |b| {
        b.iter(|| cached.verifier.verify_access(&deny, &token, now).unwrap())
    });
    // The same, from the request's headers: the bearer parsing (a syntax check of every byte
    // of the token) included.
    let mut headers = HeaderMap::new();
    let bearer = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
    headers.insert(http::header::AUTHORIZATION, bearer);
    group.bench_function("rs512_cached_from_headers", |b| {
        b.iter(|| cached.verifier.authenticate(&deny, &headers, now).unwrap())
    });
    group.finish();
}

fn issuance(c: &mut Criterion) {
    let mut group = c.benchmark_group("issue_pair");
    group.sample_size(20);
    for algorithm in [
        Algorithm::RS256,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ] {
        let snapshot = snapshot(algorithm, 0);
        group.bench_function(format!("{algorithm:?}"), |b| b.iter(|| pair(&snapshot)));
    }
    group.finish();
}

fn routing(c: &mut Criterion) {
    let snapshot = snapshot(Algorithm::EdDSA, 0);
    let mut group = c.benchmark_group("route");
    group.bench_function(format!("find_among_{ROUTES}"), |b| {
        b.iter(|| {
            snapshot
                .router
                .find(Some("api1.example.com"), "/v1/service19/users/42/orders")
                .unwrap()
        })
    });
    group.finish();
}

fn header_rewriting(c: &mut Criterion) {
    let snapshot = Arc::new(snapshot(Algorithm::EdDSA, 0));
    let request_id = HeaderValue::from_static("3f1d0c2e-5b8a-4e21-9c3f-7a6b5d4e3c2b");
    let host = HeaderValue::from_static("api1.example.com");
    let hop = Hop {
        peer: &HeaderValue::from_static("192.0.2.7"),
        trusted_peer: false,
        scheme: "https",
        host: Some(&host),
        request_id: &request_id,
        now: 0,
        worker: 0,
    };
    let route = &snapshot
        .router
        .find(Some("api1.example.com"), "/v1/service19/x")
        .unwrap()
        .config;
    let identity = Identity::new(
        "alice",
        vec!["user".into(), "admin".into()],
        "5f0c6c1e-8f5e-4a53-9d0e-2f7d3c1b9a77".into(),
        u64::MAX,
    );
    let mut request = HeaderMap::new();
    for (name, value) in [
        ("host", "api1.example.com"),
        ("user-agent", "wrk/4.2.0"),
        ("accept", "application/json"),
        ("accept-encoding", "gzip, deflate, br"),
        ("authorization", "Bearer eyJhbGciOiJSUzUxMiJ9.e30.c2ln"),
        ("connection", "keep-alive"),
        ("x-forwarded-for", "198.51.100.1"),
        ("x-auth-user", "mallory"),
        ("content-type", "application/json"),
        ("cookie", "a=b; c=d"),
    ] {
        request.insert(name, HeaderValue::from_static(value));
    }
    let mut group = c.benchmark_group("headers");
    group.bench_function("rewrite_request_10_headers", |b| {
        b.iter_batched_ref(
            || request.clone(),
            |headers| {
                portcullis::proxy::headers::rewrite_request(&hop, route, Some(&identity), headers)
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, verification, issuance, routing, header_rewriting);
criterion_main!(benches);
