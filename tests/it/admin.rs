//! Session administration on the admin listener, and `portcullis sessions` over it.

use std::process::Command;

use crate::support::child::ChildGateway;
use crate::support::upstream::MockUpstream;
use crate::support::{decode_parts, gateway, write_config, Options, TempDir, ALICE, BOB};

fn sid_of(access: &str) -> String {
    decode_parts(access).1["sid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn sessions_are_listed_and_revoked_one_by_one_or_per_user() {
    let (_upstream, gw) = gateway(Options::default()).await;
    let alice_1 = gw.login(ALICE).await;
    let alice_2 = gw.login(ALICE).await;
    let bob = gw.login(BOB).await;

    let all = gw.admin("GET", "/admin/sessions").await;
    assert_eq!(all.status, 200);
    assert_eq!(all.header("content-type"), Some("application/json"));
    let sessions = all.json()["sessions"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 3);
    let mut keys: Vec<_> = sessions[0].as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        ["created_at", "expires_at", "sid", "user"],
        "no token ids"
    );
    let alices = gw.admin("GET", "/admin/sessions?user=alice").await.json();
    let mut sids: Vec<_> = alices["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["sid"].as_str().unwrap().to_owned())
        .collect();
    sids.sort();
    let mut expected = vec![sid_of(&alice_1.access), sid_of(&alice_2.access)];
    expected.sort();
    assert_eq!(sids, expected);

    let path = format!("/admin/sessions/{}", sid_of(&bob.access));
    let revoked = gw.admin("DELETE", &path).await;
    assert_eq!(
        (revoked.status.as_u16(), revoked.json()["revoked"].clone()),
        (200, 1.into())
    );
    assert_eq!(gw.get("/hello", Some(&bob.access)).await.status, 401);
    gw.refresh(&bob.refresh)
        .await
        .assert_oauth_error(400, "invalid_grant");
    let again = gw.admin("DELETE", &path).await;
    assert_eq!(again.status, 404);
    assert_eq!(again.json()["error"], "not_found");

    let kicked = gw.admin("DELETE", "/admin/users/alice/sessions").await;
    assert_eq!(kicked.json()["revoked"], 2);
    for tokens in [&alice_1, &alice_2] {
        assert_eq!(gw.get("/hello", Some(&tokens.access)).await.status, 401);
    }
    let none = gw.admin("GET", "/admin/sessions").await.json();
    assert_eq!(none["sessions"].as_array().unwrap().len(), 0);
    let nobody = gw.admin("DELETE", "/admin/users/nobody/sessions").await;
    assert_eq!(nobody.json()["revoked"], 0);

    let wrong_method = gw.admin("POST", "/admin/sessions").await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.header("allow"), Some("GET"));
    assert_eq!(gw.admin("DELETE", "/admin/sessions/").await.status, 404);
}

/// The admin listener's refusals are the gateway's error bodies (`error` and
/// `error_description`, as the OpenAPI `Error` schema requires), not bodies of their own.
#[tokio::test]
async fn admin_refusals_carry_the_error_body_of_every_rejection() {
    let (_upstream, gw) = gateway(Options::default()).await;
    for (method, path, status, error) in [
        ("GET", "/nowhere", 404, "not_found"),
        ("DELETE", "/admin/sessions/unknown", 404, "not_found"),
        ("PUT", "/admin/sessions", 405, "method_not_allowed"),
        (
            "GET",
            "/admin/users/alice/sessions",
            405,
            "method_not_allowed",
        ),
    ] {
        let response = gw.admin(method, path).await;
        assert_eq!(response.status, status, "{method} {path}");
        assert_eq!(response.header("content-type"), Some("application/json"));
        let body = response.json();
        assert_eq!(body["error"], error, "{method} {path}");
        assert!(
            body["error_description"].is_string(),
            "{method} {path}: {body}"
        );
    }
}

#[tokio::test]
async fn the_sessions_command_lists_and_kicks_a_user_out() {
    let upstream = MockUpstream::start().await;
    let dir = TempDir::new();
    let config = write_config(dir.path(), upstream.addr, &Options::default());
    let gw = ChildGateway::start(&config);
    let alice = gw.login(ALICE).await;
    let bob = gw.login(BOB).await;
    let admin = format!("http://127.0.0.1:{}", gw.admin_port);
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .arg("sessions")
            .args(args)
            .args(["--admin", &admin])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (
            out.status.success(),
            text,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (ok, table, _) = run(&["list"]);
    assert!(ok);
    assert!(table.starts_with("SID"), "{table}");
    assert!(table.contains(&sid_of(&alice.access)) && table.contains(&sid_of(&bob.access)));
    let columns = |line: &str| -> Vec<usize> {
        let starts = line.match_indices("  ").map(|(i, _)| i);
        let mut at: Vec<usize> = starts
            .filter_map(|i| line[i..].find(|c: char| c != ' ').map(|j| i + j))
            .collect();
        at.dedup();
        at
    };
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(
        lines
            .iter()
            .all(|l| columns(l) == columns(lines[0]) && columns(l).len() == 3),
        "aligned columns: {table}"
    );

    // A configuration that only says where the admin listener is (its users file, keys and
    // certificate are elsewhere or missing) is enough.
    let only_admin = dir.path().join("only-admin.toml");
    std::fs::write(
        &only_admin,
        format!(
            "[admin]\nlisten = \"127.0.0.1:{}\"\n[login]\nusers_file = \"missing.toml\"\n",
            gw.admin_port
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["sessions", "list", "--user", "bob", "-c"])
        .arg(&only_admin)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(&sid_of(&bob.access)),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (ok, json, _) = run(&["list", "--user", "bob", "--json"]);
    assert!(ok);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["sessions"][0]["sid"], sid_of(&bob.access).as_str());
    assert_eq!(json["sessions"].as_array().unwrap().len(), 1);

    let (ok, out, _) = run(&["revoke", "--user", "alice"]);
    assert!(ok);
    assert!(out.contains(r#""revoked":1"#), "{out}");
    assert_eq!(gw.status_of_get(&alice.access).await, 401);
    assert_eq!(gw.status_of_get(&bob.access).await, 200);

    let (ok, _, err) = run(&["revoke", "--sid", "no-such-session"]);
    assert!(!ok);
    assert!(err.contains("404"), "{err}");
    let (ok, _, err) = run(&["revoke"]);
    assert!(!ok);
    assert!(err.contains("--sid"), "{err}");
}
