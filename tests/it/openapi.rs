//! The OpenAPI document (`docs/openapi.json`): served unchanged by the admin listener, OpenAPI
//! 3.1, every `$ref` resolves, and it documents every path the gateway and the admin listener
//! route, with the status a live request to it gets. `.ci/schemathesis.sh` checks the token,
//! logout and revoke operations in depth.

use http::Request;
use portcullis::config::Endpoint;
use serde_json::Value;

use crate::metrics::admin_get;
use crate::support::{empty, gateway, Options};

fn file() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every `"$ref"` string anywhere in `value`.
fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_served_document_is_the_file_and_covers_every_route() {
    let (_upstream, gw) = gateway(Options::default()).await;
    let (status, content_type, served) = admin_get(&gw, "/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "application/json");
    assert_eq!(served, file(), "the served document is docs/openapi.json");

    let doc: Value = serde_json::from_str(&served).expect("the document is JSON");
    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3.1."), "openapi: {version:?}");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));

    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("external $ref {r}"));
        assert!(doc.pointer(pointer).is_some(), "unresolved $ref {r}");
    }

    // Gateway listener: the configured endpoint paths, with the top-level servers, and the
    // status a bare request gets is one the operation documents.
    let e = gw.shared.snapshot().config.endpoints.clone();
    let gateway_ops = Endpoint::ALL.map(|endpoint| {
        let (method, status) = match endpoint {
            Endpoint::Token | Endpoint::Revoke => ("post", 400), // no Content-Type: invalid_request
            Endpoint::Logout | Endpoint::Introspect => ("post", 401), // no bearer token
            Endpoint::Jwks | Endpoint::Metadata => ("get", 200),
        };
        (e.path(endpoint), method, status)
    });
    for (path, method, expected) in gateway_ops {
        let item = &doc["paths"][path];
        assert!(
            item[method].is_object(),
            "{method} {path} is not documented"
        );
        assert!(
            item.get("servers").is_none(),
            "{path}: not on the admin listener"
        );
        let req = Request::builder()
            .method(method.to_uppercase().as_str())
            .uri(path)
            .body(empty())
            .unwrap();
        let reply = gw.send(req).await;
        assert_eq!(reply.status, expected, "{method} {path}: {}", reply.text());
        let code = reply.status.as_str();
        assert!(
            item[method]["responses"][code].is_object(),
            "{method} {path}: {code} is not documented"
        );
        // The method the endpoint refuses is documented as such (introspect checks the bearer
        // token first, so a bare request gets 401 whatever its method).
        let other = if method == "post" { "GET" } else { "POST" };
        if path != e.path(Endpoint::Introspect) {
            let req = Request::builder()
                .method(other)
                .uri(path)
                .body(empty())
                .unwrap();
            assert_eq!(gw.send(req).await.status, 405, "{other} {path}");
            assert!(item[method]["responses"]["405"].is_object(), "{path}: 405");
        }
    }
    let servers = doc["servers"].as_array().expect("top-level servers");
    assert!(servers[0]["description"]
        .as_str()
        .unwrap()
        .contains("server.listen"));

    // Admin listener: per-path servers naming `admin.listen`, and the path answers there.
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        let item = &doc["paths"][path];
        assert!(item["get"].is_object(), "GET {path} is not documented");
        let description = item["servers"][0]["description"]
            .as_str()
            .unwrap_or_default();
        assert!(
            description.contains("admin.listen"),
            "{path}: servers {:?}",
            item["servers"]
        );
        assert_eq!(admin_get(&gw, path).await.0, 200, "{path}");
        assert!(item["get"]["responses"]["200"].is_object());
    }
    for path in [
        "/admin/sessions",
        "/admin/sessions/{sid}",
        "/admin/users/{user}/sessions",
    ] {
        let description = doc["paths"][path]["servers"][0]["description"]
            .as_str()
            .unwrap_or_default();
        assert!(description.contains("admin.listen"), "{path}");
    }
}
