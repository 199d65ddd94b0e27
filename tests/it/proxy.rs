//! SPEC §3: forwarding, header rewriting, streaming bodies, upstream failures.

use std::time::Duration;

use http::Request;

use crate::support::upstream::{pattern_body, pattern_sha256, MockUpstream};
use crate::support::{
    captured_logs, gateway, tls_client, Options, TestGateway, ALICE, PUBLIC_AND_API,
};

#[tokio::test]
async fn identity_reaches_the_upstream_and_spoofed_identity_does_not() {
    let (upstream, gw) = gateway(Options::default()).await;
    let tokens = gw.login(ALICE).await;
    let (_, claims) = crate::support::decode_parts(&tokens.access);

    let req = Request::get("/api/items?page=2")
        .header("authorization", format!("Bearer {}", tokens.access))
        .header("x-auth-user", "root")
        .header("X-Auth-Roles", "admin")
        .header("x-auth-session", "forged")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-request-id", "client-id-42")
        .header("connection", "x-drop-me")
        .header("x-drop-me", "1")
        .header("x-kept", "yes")
        .body(crate::support::empty())
        .unwrap();
    let reply = gw.send(req).await;
    assert_eq!(reply.status, 200, "{}", reply.text());

    let got = upstream.last();
    let h = |name: &str| {
        got.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(
        got.uri.path_and_query().unwrap().as_str(),
        "/api/items?page=2"
    );
    assert_eq!(h("x-auth-user").as_deref(), Some(ALICE.0));
    assert_eq!(h("x-auth-roles").as_deref(), Some("user"));
    assert_eq!(h("x-auth-session").as_deref(), claims["sid"].as_str());
    assert_eq!(got.headers.get_all("x-auth-user").iter().count(), 1);
    assert_eq!(
        h("x-forwarded-for").as_deref(),
        Some("127.0.0.1"),
        "an untrusted client's X-Forwarded-For is replaced, not appended to"
    );
    assert_eq!(h("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(
        h("x-forwarded-host"),
        Some(format!("localhost:{}", gw.addr.port()))
    );
    assert_eq!(
        h("host"),
        Some(format!("localhost:{}", gw.addr.port())),
        "preserve_host"
    );
    assert_eq!(h("x-request-id").as_deref(), Some("client-id-42"));
    assert_eq!(h("x-drop-me"), None, "named in Connection");
    assert_eq!(h("x-kept").as_deref(), Some("yes"));
    assert!(
        h("authorization").is_some(),
        "forward_authorization defaults to true"
    );

    // The response: hop-by-hop headers gone, request id and token lifetime added.
    assert_eq!(reply.header("x-hop"), None);
    assert_eq!(reply.header("x-request-id"), Some("client-id-42"));
    let left: u64 = reply.header("x-token-expires-in").unwrap().parse().unwrap();
    assert!((890..=900).contains(&left), "{left}");
}

#[tokio::test]
async fn strip_prefix_and_forward_authorization_off() {
    let routes = "[[routes]]\nname = \"svc\"\npath_prefix = \"/svc\"\nstrip_prefix = true\n\
                  preserve_host = false\nforward_authorization = false\n\
                  upstreams = [\"http://{upstream}/base\"]\n";
    let (upstream, gw) = gateway(Options::with_routes(routes)).await;
    let tokens = gw.login(ALICE).await;
    assert_eq!(
        gw.get("/svc/a/b?q=1", Some(&tokens.access)).await.status,
        200
    );
    let got = upstream.last();
    assert_eq!(got.uri.path_and_query().unwrap().as_str(), "/base/a/b?q=1");
    assert!(got.headers.get("authorization").is_none());
    assert_eq!(
        got.headers["host"].to_str().unwrap(),
        upstream.addr.to_string()
    );
    assert_eq!(gw.get("/svcx", Some(&tokens.access)).await.status, 404);
}

#[tokio::test]
async fn twenty_megabytes_stream_each_way_intact() {
    const SIZE: usize = 20 * 1024 * 1024;
    let (_upstream, gw) = gateway(Options::default()).await;
    let tokens = gw.login(ALICE).await;

    let req = Request::post("/upload")
        .header("authorization", format!("Bearer {}", tokens.access))
        .body(pattern_body(SIZE))
        .unwrap();
    let reply = gw.send(req).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let json = reply.json();
    assert_eq!(json["len"], SIZE);
    assert_eq!(json["sha256"], pattern_sha256(SIZE));

    let reply = gw
        .get(&format!("/download/{SIZE}"), Some(&tokens.access))
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body.len(), SIZE);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &reply.body);
    assert_eq!(
        crate::support::upstream::hex(digest.as_ref()),
        pattern_sha256(SIZE)
    );
}

#[tokio::test]
async fn http2_is_negotiated_with_alpn() {
    let (upstream, gw) = gateway(Options::default()).await;
    let tokens = gw.login(ALICE).await;
    let h2 = tls_client(true);
    let req = Request::get("/h2")
        .header("authorization", format!("Bearer {}", tokens.access))
        .body(crate::support::empty())
        .unwrap();
    let reply = crate::support::send_with(&h2, &gw, req).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.version, http::Version::HTTP_2);
    assert_eq!(upstream.last().headers["x-auth-user"], ALICE.0);
    assert_eq!(
        upstream.last().headers["host"].to_str().unwrap(),
        format!("localhost:{}", gw.addr.port()),
        "the :authority becomes Host"
    );
}

#[tokio::test]
async fn a_dead_upstream_is_502_and_a_slow_one_504() {
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
        // dropped here: nothing listens on that port any more
    };
    let gw = TestGateway::start(dead, Options::default()).await;
    let tokens = gw.login(ALICE).await;
    let reply = gw.get("/x", Some(&tokens.access)).await;
    assert_eq!(reply.status, 502);
    assert_eq!(reply.json()["error"], "bad_gateway");
    let connect = portcullis::metrics::UpstreamError {
        route: "api".into(),
        kind: "connect",
    };
    assert_eq!(
        gw.shared
            .metrics
            .upstream_errors
            .get_or_create(&connect)
            .get(),
        1
    );

    let routes = "[[routes]]\nname = \"api\"\npath_prefix = \"/\"\ntimeout = \"1s\"\n\
                  upstreams = [\"http://{upstream}\"]\n";
    let (_upstream, gw) = gateway(Options::with_routes(routes)).await;
    let tokens = gw.login(ALICE).await;
    let started = std::time::Instant::now();
    let reply = gw.get("/slow", Some(&tokens.access)).await;
    assert_eq!(reply.status, 504);
    assert_eq!(reply.json()["error"], "gateway_timeout");
    let timeout = portcullis::metrics::UpstreamError {
        route: "api".into(),
        kind: "timeout",
    };
    assert_eq!(
        gw.shared
            .metrics
            .upstream_errors
            .get_or_create(&timeout)
            .get(),
        1
    );
    assert!(
        started.elapsed() < Duration::from_millis(2900),
        "did not wait for the upstream"
    );
}

/// The access-log line of the request with id `request_id`.
fn access_line(logs: &std::sync::Mutex<Vec<u8>>, request_id: &str) -> String {
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    let needle = format!("request_id=\"{request_id}\"");
    text.lines()
        .find(|l| l.contains(" access: ") && l.contains(&needle))
        .unwrap_or_else(|| panic!("no access line for {request_id} in\n{text}"))
        .to_owned()
}

#[tokio::test]
async fn the_access_log_names_the_upstream_a_request_went_to() {
    let logs = captured_logs();
    let (upstream, gw) = gateway(Options::default()).await;
    let tokens = gw.login(ALICE).await;
    let send = |id: &'static str, bearer: Option<&str>| {
        let mut req = Request::get("/x").header("x-request-id", id);
        if let Some(token) = bearer {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        gw.send(req.body(crate::support::empty()).unwrap())
    };

    assert_eq!(
        send("log-forwarded", Some(&tokens.access)).await.status,
        200
    );
    let line = access_line(&logs, "log-forwarded");
    assert!(line.contains("status=200"), "{line}");
    assert!(
        line.contains(&format!("upstream=\"{}\"", upstream.addr)),
        "{line}"
    );

    // Answered by the gateway itself: no upstream field.
    assert_eq!(send("log-refused", None).await.status, 401);
    let line = access_line(&logs, "log-refused");
    assert!(line.contains("status=401"), "{line}");
    assert!(!line.contains("upstream="), "{line}");

    // An upstream that did not answer is named too: it is the one to look at.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let gw = TestGateway::start(dead, Options::default()).await;
    let tokens = gw.login(ALICE).await;
    let req = Request::get("/x")
        .header("x-request-id", "log-dead-upstream")
        .header("authorization", format!("Bearer {}", tokens.access))
        .body(crate::support::empty())
        .unwrap();
    assert_eq!(gw.send(req).await.status, 502);
    let line = access_line(&logs, "log-dead-upstream");
    assert!(line.contains(&format!("upstream=\"{dead}\"")), "{line}");
}

#[tokio::test]
async fn unsafe_paths_never_reach_a_route() {
    let (upstream, gw) = gateway(Options::with_routes(PUBLIC_AND_API)).await;
    for path in [
        "/public/../private",
        "/public/%2e%2e/private",
        "/public/%2E%2E/private",
        "/public%2f..%2fprivate",
        "/public/..%2fprivate",
        "//public/x",
        "/public//x",
        "/public/./x",
    ] {
        let reply = gw.get(path, None).await;
        assert_eq!(reply.status, 400, "{path}");
    }
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn tls_false_serves_plain_http() {
    use http_body_util::BodyExt;
    let (upstream, gw) = gateway(Options {
        server: "tls = false",
        ..Options::default()
    })
    .await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let form = format!(
        "grant_type=password&username={}&password={}",
        ALICE.0, ALICE.1
    );
    let req = Request::post(format!(
        "http://127.0.0.1:{}/api/oauth2/token",
        gw.addr.port()
    ))
    .header("content-type", "application/x-www-form-urlencoded")
    .body(http_body_util::Full::new(bytes::Bytes::from(form)))
    .unwrap();
    let response = client.request(req).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let req = Request::get(format!("http://127.0.0.1:{}/x", gw.addr.port()))
        .header(
            "authorization",
            format!("Bearer {}", json["access_token"].as_str().unwrap()),
        )
        .body(http_body_util::Full::default())
        .unwrap();
    assert_eq!(client.request(req).await.unwrap().status(), 200);
    assert_eq!(upstream.last().headers["x-forwarded-proto"], "http");
}

#[tokio::test]
async fn upstreams_alternate_and_a_dead_one_is_skipped() {
    let a = MockUpstream::start().await;
    let b = MockUpstream::start().await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let routes = format!(
        "[[routes]]\nname = \"api\"\npath_prefix = \"/\"\n\
         upstreams = [\"http://{}\", \"http://{dead}\", \"http://{}\"]\n",
        a.addr, b.addr
    );
    let (_unused, gw) = gateway(Options {
        routes,
        ..Options::default()
    })
    .await;
    let tokens = gw.login(ALICE).await;
    for _ in 0..9 {
        let reply = gw.get("/x", Some(&tokens.access)).await;
        assert_eq!(
            reply.status, 200,
            "a bodiless request is retried past the dead upstream"
        );
    }
    assert_eq!(a.count() + b.count(), 9);
    assert!(
        a.count() >= 3 && b.count() >= 3,
        "a={} b={}",
        a.count(),
        b.count()
    );

    // A request with a body cannot be replayed: it is never sent to the dead upstream twice in a
    // row, because the dead one is skipped for the cooldown.
    for _ in 0..4 {
        let req = Request::post("/upload")
            .header("authorization", format!("Bearer {}", tokens.access))
            .body(crate::support::full("data"))
            .unwrap();
        assert_eq!(gw.send(req).await.status, 200);
    }
}

#[tokio::test]
async fn https_upstreams_are_verified_against_upstream_ca() {
    let (upstream, ca_pem) = MockUpstream::start_tls_with_own_ca().await;
    let port = upstream.addr.port();
    let routes = format!(
        "[[routes]]\nname = \"private\"\npath_prefix = \"/private\"\n\
         upstreams = [\"https://localhost:{port}\"]\nupstream_ca = \"upstream-ca.pem\"\n\n\
         [[routes]]\nname = \"private-h2\"\npath_prefix = \"/h2\"\n\
         upstream_protocol = \"http2\"\n\
         upstreams = [\"https://localhost:{port}\"]\nupstream_ca = \"upstream-ca.pem\"\n\n\
         [[routes]]\nname = \"system\"\npath_prefix = \"/system\"\n\
         upstreams = [\"https://localhost:{port}\"]\n\n\
         [[routes]]\nname = \"system-h2\"\npath_prefix = \"/sys-h2\"\n\
         upstream_protocol = \"http2\"\nupstreams = [\"https://localhost:{port}\"]\n"
    );
    let (_unused, gw) = gateway(Options {
        routes,
        files: vec![("upstream-ca.pem", ca_pem)],
        ..Options::default()
    })
    .await;
    let tokens = gw.login(ALICE).await;
    let reply = gw.get("/private/x", Some(&tokens.access)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(upstream.last().headers["x-auth-user"], ALICE.0);
    assert_eq!(upstream.count(), 1);
    // HTTP/2 over TLS to the same upstream: the client's host travels as :authority.
    let reply = gw.get("/h2/x", Some(&tokens.access)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let got = upstream.last();
    assert_eq!(got.uri.path(), "/h2/x");
    assert_eq!(
        got.uri.authority().map(|a| a.as_str().to_owned()),
        Some(format!("localhost:{}", gw.addr.port())),
        "preserve_host over HTTP/2 is the :authority"
    );
    assert_eq!(upstream.count(), 2);
    // The same upstream is not trusted by the system roots, over either protocol.
    assert_eq!(gw.get("/system/x", Some(&tokens.access)).await.status, 502);
    assert_eq!(gw.get("/sys-h2/x", Some(&tokens.access)).await.status, 502);
    assert_eq!(upstream.count(), 2);
}

/// The shape of a gRPC call: HTTP/2 end to end (h2c to the upstream), `te: trailers` passed on,
/// and the upstream's trailers delivered to the client.
#[tokio::test]
async fn http2_upstreams_carry_trailers_like_grpc() {
    let routes =
        "[[routes]]\nname = \"grpc\"\npath_prefix = \"/\"\nupstream_protocol = \"http2\"\n\
                  upstreams = [\"http://{upstream}\"]\n";
    let (upstream, gw) = gateway(Options {
        routes: routes.to_owned(),
        ..Options::default()
    })
    .await;
    let tokens = gw.login(ALICE).await;
    let h2 = tls_client(true);
    let req = Request::post("/trailers")
        .header("authorization", format!("Bearer {}", tokens.access))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(crate::support::full("request"))
        .unwrap();
    let reply = crate::support::send_with(&h2, &gw, req).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "streamed reply");
    let trailers = reply.trailers.expect("trailers reach the client");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["grpc-message"], "fine");
    let got = upstream.last();
    assert_eq!(
        got.headers["te"], "trailers",
        "gRPC servers need te: trailers"
    );
    assert_eq!(got.headers["x-auth-user"], ALICE.0);
}
