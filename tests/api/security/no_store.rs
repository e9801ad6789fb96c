//! Secrets are never cacheable: every response that carries a secret or a token (and every
//! other answer of an organization's API) has `Cache-Control: no-store`.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::admin_helpers::Reply;
use crate::helpers::spawn_app;

#[tokio::test]
async fn every_response_with_a_secret_or_a_token_is_no_store() {
    let app = spawn_app().await;
    let o = app.owner.clone();
    let boss = app.session(&o).await;
    let keys = "/v1/default/api_keys";

    let signin = app
        .signin_raw(
            "default",
            Some(&o.api_key),
            Some(&o.api_key_id),
            Some(&o.user_id),
        )
        .await;
    let signin = Reply::from(signin).await;
    let token = app
        .client
        .post(app.url("/v1/default/oauth/token"))
        .basic_auth(&o.api_key_id, Some(&o.api_key))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let token = Reply::from(token).await;
    let refresh = app
        .client
        .post(app.url("/v1/default/oauth/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                token.body["refresh_token"].as_str().unwrap(),
            ),
        ])
        .send()
        .await
        .unwrap();
    let refresh = Reply::from(refresh).await;
    let introspect = app
        .client
        .post(app.url("/v1/default/oauth/introspect"))
        .basic_auth(&o.api_key_id, Some(&o.api_key))
        .form(&[("token", boss.token.as_str())])
        .send()
        .await
        .unwrap();
    let introspect = Reply::from(introspect).await;

    let create = |idem: &'static str| {
        app.send(
            app.admin_request(Method::POST, keys, &boss.token)
                .header("idempotency-key", idem)
                .json(&json!({"name": "no-store"})),
        )
    };
    let created = create("no-store-1").await;
    let replayed = create("no-store-1").await;
    let id = created.str("api_key_id");
    let rotated = app
        .post_as(&boss.token, &format!("{keys}/{id}/rotate"), &json!({}))
        .await;
    let rotate_path = format!("{keys}/{}/rotate", rotated.str("api_key_id"));
    let rotate_again = |idem: &'static str| {
        app.send(
            app.admin_request(Method::POST, &rotate_path, &boss.token)
                .header("idempotency-key", idem)
                .json(&json!({})),
        )
    };
    let rotated_idem = rotate_again("no-store-2").await;
    let rotated_replay = rotate_again("no-store-2").await;
    let got = app.get_as(&boss.token, &format!("{keys}/{id}")).await;
    let failed_signin = Reply::from(
        app.signin_raw(
            "default",
            Some("nope"),
            Some(&o.api_key_id),
            Some(&o.user_id),
        )
        .await,
    )
    .await;

    #[rustfmt::skip]
    let table: Vec<(&str, &Reply, StatusCode)> = vec![
        ("sign-in", &signin, StatusCode::OK),
        ("token: client_credentials", &token, StatusCode::OK),
        ("token: refresh_token", &refresh, StatusCode::OK),
        ("introspection", &introspect, StatusCode::OK),
        ("key creation", &created, StatusCode::CREATED),
        ("key creation, idempotent replay", &replayed, StatusCode::CONFLICT),
        ("key rotation", &rotated, StatusCode::CREATED),
        ("key rotation with Idempotency-Key", &rotated_idem, StatusCode::CREATED),
        ("key rotation, idempotent replay", &rotated_replay, StatusCode::CONFLICT),
        ("key read", &got, StatusCode::OK),
        ("failed sign-in", &failed_signin, StatusCode::UNAUTHORIZED),
    ];
    for (name, reply, status) in table {
        assert_eq!(reply.status, status, "{name}: {}", reply.body);
        assert_eq!(
            reply.header("cache-control").as_deref(),
            Some("no-store"),
            "{name}"
        );
        assert_eq!(
            reply.header("pragma").as_deref(),
            Some("no-cache"),
            "{name}"
        );
    }
    // Public documents keep their own caching.
    let jwks = Reply::from(
        app.client
            .get(app.url("/v1/default/.well-known/jwks.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        jwks.header("cache-control").as_deref(),
        Some("public, max-age=60")
    );
}
