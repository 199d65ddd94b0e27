//! SPEC §4.4: the admin listener's health endpoints and metrics, moved by exactly the traffic
//! a scripted cycle sends.

use std::collections::HashMap;

use crate::support::{gateway, Options, TestGateway, ALICE};

pub(crate) async fn admin_get(gw: &TestGateway, path: &str) -> (u16, String, String) {
    let reply = gw.admin("GET", path).await;
    let content_type = reply.header("content-type").unwrap_or_default().to_owned();
    (reply.status.as_u16(), content_type, reply.text())
}

/// `name{labels} value` lines of a Prometheus text scrape.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

#[tokio::test]
async fn health_and_metrics_after_a_scripted_cycle() {
    let (_upstream, gw) = gateway(Options::default()).await;
    assert_eq!(admin_get(&gw, "/healthz").await.0, 200);
    assert_eq!(admin_get(&gw, "/readyz").await.0, 200);

    let tokens = gw.login(ALICE).await; // password +1
    assert_eq!(gw.get("/x", Some(&tokens.access)).await.status, 200); // api 200
    assert_eq!(gw.get("/x", Some(&tokens.access)).await.status, 200); // api 200
    assert_eq!(gw.get("/x", None).await.status, 401); // missing
    assert_eq!(gw.get("/x", Some(&tokens.refresh)).await.status, 401); // wrong_audience
    let _ = gw
        .token("grant_type=password&username=alice&password=nope")
        .await; // invalid_grant
    let _ = gw.token("grant_type=client_credentials").await; // unsupported_grant_type
    let fresh = crate::support::Tokens::from(&gw.refresh(&tokens.refresh).await); // refresh +1
    assert_eq!(gw.logout(&fresh.access).await.status, 200);
    assert_eq!(gw.get("/x", Some(&fresh.access)).await.status, 401); // revoked

    let (status, content_type, text) = admin_get(&gw, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let s = samples(&text);
    let value = |k: &str| {
        s.get(k)
            .copied()
            .unwrap_or_else(|| panic!("{k} missing in\n{text}"))
    };
    assert_eq!(
        value("portcullis_requests_total{route=\"api\",status=\"200\"}"),
        2.0
    );
    assert_eq!(
        value("portcullis_requests_total{route=\"api\",status=\"401\"}"),
        3.0
    );
    assert_eq!(
        value("portcullis_auth_failures_total{reason=\"missing\"}"),
        1.0
    );
    assert_eq!(
        value("portcullis_auth_failures_total{reason=\"wrong_audience\"}"),
        1.0
    );
    assert_eq!(
        value("portcullis_auth_failures_total{reason=\"revoked\"}"),
        1.0
    );
    assert_eq!(
        value("portcullis_tokens_issued_total{grant=\"password\"}"),
        1.0
    );
    assert_eq!(
        value("portcullis_tokens_issued_total{grant=\"refresh_token\"}"),
        1.0
    );
    assert_eq!(
        value("portcullis_token_errors_total{error=\"invalid_grant\"}"),
        1.0
    );
    assert_eq!(
        value("portcullis_token_errors_total{error=\"unsupported_grant_type\"}"),
        1.0
    );
    assert_eq!(
        value("portcullis_request_duration_seconds_count{route=\"api\"}"),
        5.0
    );
    assert_eq!(
        value("portcullis_active_sessions"),
        0.0,
        "the only session was logged out"
    );
    assert!(value("portcullis_open_connections") >= 1.0);
}

/// The families operators alert on: the build, the process (from `/proc`), reloads by result
/// and the last good one, and the gateway's own endpoints and unrouted requests under route
/// labels of their own.
#[tokio::test]
async fn operator_metrics_after_reloads_and_token_traffic() {
    let (_upstream, gw) = gateway(Options::with_routes(
        "[[routes]]\nname = \"api\"\npath_prefix = \"/api/v1\"\nupstreams = [\"http://{upstream}\"]\n",
    ))
    .await;
    let started = gw.shared.clock.unix();
    let _tokens = gw.login(ALICE).await;
    assert_eq!(gw.get("/nowhere", None).await.status, 404);
    gw.reload(&Options::with_routes(
        "[[routes]]\nname = \"api\"\npath_prefix = \"/api/v2\"\nupstreams = [\"http://{upstream}\"]\n",
    ))
    .unwrap();
    let bad = Options {
        server: "max_connections = 0",
        ..Options::default()
    };
    assert!(gw.reload(&bad).is_err());

    let (status, _, text) = admin_get(&gw, "/metrics").await;
    assert_eq!(status, 200);
    let values = samples(&text);
    let value = |name: &str| {
        *values
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing from:\n{text}"))
    };
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        value(&format!("portcullis_build_info{{version=\"{version}\"}}")),
        1.0
    );
    assert!(value("process_cpu_seconds_total") > 0.0);
    assert!(value("process_resident_memory_bytes") > 1e6);
    assert!(value("process_open_fds") >= 3.0);
    assert!(value("process_max_fds") >= value("process_open_fds"));
    let start = value("process_start_time_seconds");
    assert!(start > 1.7e9 && start <= started as f64 + 1.0, "{start}");
    assert_eq!(
        value("portcullis_config_reloads_total{result=\"success\"}"),
        1.0
    );
    assert_eq!(
        value("portcullis_config_reloads_total{result=\"failure\"}"),
        1.0
    );
    assert!(value("portcullis_config_last_reload_success_timestamp_seconds") >= started as f64);
    assert_eq!(
        value("portcullis_requests_total{route=\"token\",status=\"200\"}"),
        1.0
    );
    assert_eq!(
        value("portcullis_requests_total{route=\"unmatched\",status=\"404\"}"),
        1.0
    );
}

/// The cache, lockout, login-queue and upstream-health families, moved by exactly the traffic
/// that should move them: a token checked twice (one miss, then one hit), a run of bad
/// passwords (one lockout), one request to each upstream of a route whose second upstream
/// refuses connections (it leaves the rotation), and a reload that drops that route.
#[tokio::test]
async fn cache_lockout_queue_and_upstream_health_metrics() {
    let routes =
        "[[routes]]\nname = \"api\"\npath_prefix = \"/\"\nupstreams = [\"http://{upstream}\"]\n\n\
                  [[routes]]\nname = \"pair\"\npath_prefix = \"/pair\"\nauth = \"public\"\n\
                  upstreams = [\"http://{upstream}\", \"http://127.0.0.1:1/base\"]\n";
    let (upstream, gw) = gateway(Options {
        login: "max_failures = 2",
        ..Options::with_routes(routes)
    })
    .await;
    let tokens = gw.login(ALICE).await;
    for _ in 0..2 {
        assert_eq!(gw.get("/x", Some(&tokens.access)).await.status, 200);
    }
    for _ in 0..2 {
        let _ = gw
            .token("grant_type=password&username=alice&password=nope")
            .await;
    }
    // Round robin: one of the two goes to the dead upstream first and is retried on the other.
    for _ in 0..2 {
        assert_eq!(gw.get("/pair/x", None).await.status, 200);
    }

    let (_, _, text) = admin_get(&gw, "/metrics").await;
    let values = samples(&text);
    let value = |name: &str| {
        *values
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing from:\n{text}"))
    };
    assert_eq!(value("portcullis_token_cache_total{result=\"miss\"}"), 1.0);
    assert_eq!(value("portcullis_token_cache_total{result=\"hit\"}"), 1.0);
    let lockouts = ["user", "address"]
        .map(|kind| {
            let name = format!("portcullis_login_lockouts_total{{kind=\"{kind}\"}}");
            values.get(&name).copied().unwrap_or(0.0)
        })
        .iter()
        .sum::<f64>();
    assert_eq!(lockouts, 1.0, "{text}");
    assert_eq!(value("portcullis_login_queue_depth"), 0.0);
    let up = format!(
        "portcullis_upstream_up{{route=\"pair\",upstream=\"http://{}\"}}",
        upstream.addr
    );
    assert_eq!(value(&up), 1.0);
    let down = "portcullis_upstream_up{route=\"pair\",upstream=\"http://127.0.0.1:1/base\"}";
    assert_eq!(value(down), 0.0);

    // Only the routes in force are reported; the counters go on across the reload.
    gw.reload(&Options::default()).unwrap();
    for _ in 0..2 {
        assert_eq!(gw.get("/x", Some(&tokens.access)).await.status, 200);
    }
    let (_, _, text) = admin_get(&gw, "/metrics").await;
    let health = text
        .lines()
        .filter(|l| l.starts_with("portcullis_upstream_up{"));
    let health: Vec<&str> = health.collect();
    assert_eq!(health.len(), 1, "only the route in force: {health:?}");
    assert!(health[0].contains("route=\"api\""), "{health:?}");
    let values = samples(&text);
    let value = |name: &str| values.get(name).copied().unwrap_or(f64::NAN);
    assert_eq!(value("portcullis_token_cache_total{result=\"miss\"}"), 2.0);
    assert_eq!(value("portcullis_token_cache_total{result=\"hit\"}"), 2.0);
}

/// Every metric the Grafana dashboard in `deploy/` plots is in a live scrape, after a cycle
/// that moves each family: a login, a proxied call, a refused token, a bad password that
/// locks, an upstream that refuses connections, a reload.
#[tokio::test]
async fn every_metric_the_dashboard_plots_is_in_a_live_scrape() {
    let routes =
        "[[routes]]\nname = \"api\"\npath_prefix = \"/\"\nupstreams = [\"http://{upstream}\"]\n\n\
                  [[routes]]\nname = \"dead\"\npath_prefix = \"/dead\"\nauth = \"public\"\n\
                  upstreams = [\"http://127.0.0.1:1\"]\n";
    let (_upstream, gw) = gateway(Options {
        // The one bad password locks.
        login: "max_failures = 1",
        ..Options::with_routes(routes)
    })
    .await;
    let tokens = gw.login(ALICE).await;
    assert_eq!(gw.get("/x", Some(&tokens.access)).await.status, 200);
    assert_eq!(gw.get("/x", None).await.status, 401);
    let _ = gw
        .token("grant_type=password&username=alice&password=nope")
        .await;
    assert_eq!(gw.get("/dead/x", None).await.status, 502);
    gw.reload(&Options::with_routes(routes)).unwrap();
    let (_, _, text) = admin_get(&gw, "/metrics").await;
    let scraped: std::collections::HashSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split([' ', '{']).next())
        .collect();

    let dashboard: serde_json::Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/grafana-dashboard.json"
    )))
    .unwrap();
    let mut plotted = std::collections::BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let words = expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
            plotted.extend(
                words.filter(|w| w.starts_with("portcullis_") || w.starts_with("process_")),
            );
        }
    }
    assert!(plotted.len() >= 15, "{plotted:?}");
    let missing: Vec<_> = plotted.iter().filter(|m| !scraped.contains(**m)).collect();
    assert!(missing.is_empty(), "not in the scrape: {missing:?}\n{text}");
}
