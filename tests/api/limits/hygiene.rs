//! Key hygiene: a key records where it was last used from (`last_used_ip`, sampled with
//! `last_used_at`), `GET /v1/{org}/api_keys?unused_since=` lists the keys not used since
//! then (never-used ones included), and `keygate key list --unused-since 30d` does the
//! same from the command line.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::Value;

use super::{advance, signin};
use crate::cli::keygate_json;
use crate::helpers::{spawn_app, spawn_app_with};

fn ids(items: &[Value]) -> BTreeSet<String> {
    items
        .iter()
        .map(|k| k["api_key_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_key_records_its_last_use_and_client_ip() {
    let app = spawn_app_with(|s| s.server.trusted_proxies = vec!["127.0.0.1".into()]).await;
    let owner = app.session(&app.owner).await;
    let path = format!("/v1/default/api_keys/{}", app.owner.api_key_id);
    let key = app.get_as(&owner.token, &path).await;
    let key = key.expect(StatusCode::OK);
    assert_eq!(key["last_used_ip"], "127.0.0.1");
    assert_eq!(key["last_used_at"].as_str().map(str::len), Some(20));

    // Behind a trusted proxy, the client's address is recorded.
    let other = app.create_key("default", &app.owner.user_id).await;
    let path = format!("/v1/default/api_keys/{}", other.api_key_id);
    let never = app.get_as(&owner.token, &path).await;
    assert!(never.expect(StatusCode::OK)["last_used_ip"].is_null());
    let signin_via = |xff: &'static str| {
        app.client
            .post(app.url("/v1/default/user/signin_with_api_key"))
            .header("x-api-key", &other.api_key)
            .header("x-api-key-id", &other.api_key_id)
            .header("x-user-id", &other.user_id)
            .header("x-forwarded-for", xff)
    };
    app.send(signin_via("203.0.113.7"))
        .await
        .expect(StatusCode::OK);
    let got = app.get_as(&owner.token, &path).await;
    assert_eq!(got.expect(StatusCode::OK)["last_used_ip"], "203.0.113.7");
    let first_use = got.body["last_used_at"].clone();
    advance(&app, 61);
    app.send(signin_via("198.51.100.1"))
        .await
        .expect(StatusCode::OK);
    let got = app.get_as(&owner.token, &path).await;
    assert_eq!(got.expect(StatusCode::OK)["last_used_ip"], "198.51.100.1");
    assert_ne!(got.body["last_used_at"], first_use);
}

#[tokio::test]
async fn unused_since_lists_stale_and_never_used_keys_only() {
    let app = spawn_app().await;
    let old = app.create_key("default", &app.owner.user_id).await;
    let never = app.create_key("default", &app.owner.user_id).await;
    let fresh = app.create_key("default", &app.owner.user_id).await;
    signin(&app, &old).await.expect(StatusCode::OK);
    advance(&app, 3 * 86_400);
    let cutoff = app.now() - chrono::Duration::days(1);
    signin(&app, &fresh).await.expect(StatusCode::OK);
    let owner = app.session(&app.owner).await; // the bootstrap key: used now

    let since = cutoff.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let listed = app
        .list_all(
            &owner.token,
            &format!("/v1/default/api_keys?unused_since={since}"),
            2,
        )
        .await;
    assert_eq!(
        ids(&listed),
        BTreeSet::from([old.api_key_id.clone(), never.api_key_id.clone()])
    );
    // Combined with the other filters.
    let listed = app
        .list_page(
            &owner.token,
            &format!(
                "/v1/default/api_keys?unused_since={since}&user_id={}&status=active",
                app.owner.user_id
            ),
        )
        .await;
    assert_eq!(listed.len(), 2);

    for bad in ["yesterday", "2026-13-01T00:00:00Z", "30d", ""] {
        app.get_as(
            &owner.token,
            &format!("/v1/default/api_keys?unused_since={bad}"),
        )
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
}

#[tokio::test]
async fn the_cli_lists_keys_unused_for_30_days() {
    let app = spawn_app().await;
    let never = app.create_key("default", &app.owner.user_id).await;
    signin(&app, &app.owner).await.expect(StatusCode::OK);
    let listed = keygate_json(
        &app,
        &[
            "key",
            "list",
            "--org",
            "default",
            "--unused-since",
            "30d",
            "--json",
        ],
    );
    let listed = listed.as_array().unwrap().clone();
    assert_eq!(ids(&listed), BTreeSet::from([never.api_key_id.clone()]));
    assert!(listed[0]["last_used_ip"].is_null());
    let all = keygate_json(&app, &["key", "list", "--org", "default", "--json"]);
    let used = all
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["api_key_id"] == app.owner.api_key_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(used["last_used_ip"], "127.0.0.1");
    let out = crate::cli::keygate(
        &app,
        &[
            "key",
            "list",
            "--org",
            "default",
            "--unused-since",
            "a while",
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--unused-since"));
}
