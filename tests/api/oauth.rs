//! The OAuth endpoints over real HTTP: both client authentication methods, both grants,
//! rotation with reuse detection, revocation, introspection and metadata.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keygate::types::Role;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{Credentials, TestApp, claims_of, json, spawn_app, spawn_app_with};
use crate::me::assert_rejected;

/// (name, client authentication, form fields, expected error code)
type Case<'a> = (&'a str, Auth<'a>, Vec<(&'a str, &'a str)>, &'a str);

/// How a request authenticates the client.
#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Basic(&'a Credentials),
    Post(&'a Credentials),
}

async fn post_form(
    app: &TestApp,
    endpoint: &str,
    auth: Auth<'_>,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let mut fields: Vec<(String, String)> = form
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let mut req = app
        .client
        .post(app.url(&format!("/v1/default/oauth/{endpoint}")));
    match auth {
        Auth::None => {}
        Auth::Basic(c) => req = req.basic_auth(&c.api_key_id, Some(&c.api_key)),
        Auth::Post(c) => {
            fields.push(("client_id".into(), c.api_key_id.clone()));
            fields.push(("client_secret".into(), c.api_key.clone()));
        }
    }
    req.form(&fields).send().await.unwrap()
}

async fn token(app: &TestApp, auth: Auth<'_>, form: &[(&str, &str)]) -> (StatusCode, Value) {
    json(post_form(app, "token", auth, form).await).await
}

fn oauth_error(body: &Value) -> &str {
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{body}"
    );
    body["error"].as_str().expect("error")
}

async fn client_credentials(app: &TestApp, c: &Credentials) -> Value {
    let (status, body) = token(app, Auth::Basic(c), &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn refresh(app: &TestApp, refresh_token: &str) -> (StatusCode, Value) {
    token(
        app,
        Auth::None,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

#[tokio::test]
async fn client_credentials_with_basic_and_post_returns_the_documented_body() {
    let app = spawn_app().await;
    let o = &app.owner;
    let res = post_form(
        &app,
        "token",
        Auth::Basic(o),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["pragma"], "no-cache");
    let (status, body) = json(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert!(body["refresh_token"].as_str().unwrap().starts_with("rt_"));
    assert!(body["session_id"].as_str().unwrap().starts_with("ses_"));
    let claims = claims_of(body["access_token"].as_str().unwrap());
    assert_eq!(claims["client_id"], o.api_key_id.as_str());
    assert_eq!(claims["sub"], o.user_id.as_str());
    assert_eq!(claims["scope"], body["scope"]);
    let (status, _) = json(
        app.me("default", body["access_token"].as_str().unwrap())
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = token(&app, Auth::Post(o), &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // RFC 6749 §2.3.1: the Basic user and password are form-urlencoded first; a client that
    // encodes characters it need not (here `_`) must still be understood.
    let id = o.api_key_id.replace('_', "%5F");
    let secret = o.api_key.replace('_', "%5F");
    let header = format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")));
    let res = app
        .client
        .post(app.url("/v1/default/oauth/token"))
        .header("authorization", header)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn token_endpoint_errors_follow_rfc_6749_section_5_2() {
    let app = spawn_app().await;
    let o = app.owner.clone();
    let member = app.create_user("default", Role::Member).await;
    let wrong = Credentials {
        api_key: member.api_key.clone(),
        ..o.clone()
    };

    // Bad client credentials: 401, and a Basic challenge when Basic was used.
    let res = post_form(
        &app,
        "token",
        Auth::Basic(&wrong),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(res.headers()["www-authenticate"], "Basic realm=\"keygate\"");
    let (status, body) = json(res).await;
    assert_eq!(
        (status, oauth_error(&body)),
        (StatusCode::UNAUTHORIZED, "invalid_client")
    );
    let res = post_form(
        &app,
        "token",
        Auth::Post(&wrong),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert!(!res.headers().contains_key("www-authenticate"));
    let (status, body) = json(res).await;
    assert_eq!(
        (status, oauth_error(&body)),
        (StatusCode::UNAUTHORIZED, "invalid_client")
    );
    let (status, body) = token(&app, Auth::None, &[("grant_type", "client_credentials")]).await;
    assert_eq!(
        (status, oauth_error(&body)),
        (StatusCode::UNAUTHORIZED, "invalid_client")
    );

    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        ("no grant_type", Auth::Basic(&o), vec![], "invalid_request"),
        ("unknown grant", Auth::Basic(&o), vec![("grant_type", "password")], "unsupported_grant_type"),
        ("both auth methods", Auth::Basic(&o), vec![("grant_type", "client_credentials"), ("client_id", &o.api_key_id), ("client_secret", &o.api_key)], "invalid_request"),
        ("unknown scope", Auth::Basic(&o), vec![("grant_type", "client_credentials"), ("scope", "root")], "invalid_scope"),
        ("unknown user", Auth::Basic(&o), vec![("grant_type", "client_credentials"), ("user_id", "usr_nobody")], "invalid_request"),
        ("member acts for owner", Auth::Basic(&member), vec![("grant_type", "client_credentials"), ("user_id", &o.user_id)], "unauthorized_client"),
        ("refresh without token", Auth::None, vec![("grant_type", "refresh_token")], "invalid_request"),
        ("unknown refresh token", Auth::None, vec![("grant_type", "refresh_token"), ("refresh_token", "rt_nope")], "invalid_grant"),
    ];
    for (name, auth, form, code) in cases {
        let (status, body) = token(&app, auth, &form).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {body}");
        assert_eq!(oauth_error(&body), code, "{name}");
    }

    // Duplicate parameters and other content types are invalid requests.
    let res = app
        .client
        .post(app.url("/v1/default/oauth/token"))
        .basic_auth(&o.api_key_id, Some(&o.api_key))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    let (status, body) = json(res).await;
    assert_eq!(
        (status, oauth_error(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    let res = app
        .client
        .post(app.url("/v1/default/oauth/token"))
        .basic_auth(&o.api_key_id, Some(&o.api_key))
        .json(&serde_json::json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    let (status, body) = json(res).await;
    assert_eq!(
        (status, oauth_error(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
}

#[tokio::test]
async fn scope_narrows_and_acting_yields_an_act_claim() {
    let app = spawn_app().await;
    let o = app.owner.clone();
    let member = app.create_user("default", Role::Member).await;
    let (status, body) = token(
        &app,
        Auth::Basic(&o),
        &[
            ("grant_type", "client_credentials"),
            ("scope", "keys:read users:read"),
            ("user_id", &member.user_id),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "keys:read users:read");
    let claims = claims_of(body["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], member.user_id.as_str());
    assert_eq!(claims["act"]["sub"], o.user_id.as_str());

    // Refresh may narrow further, never widen.
    let rt = body["refresh_token"].as_str().unwrap().to_owned();
    let (status, body) = token(
        &app,
        Auth::None,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("scope", "keys:write"),
        ],
    )
    .await;
    assert_eq!(
        (status, oauth_error(&body)),
        (StatusCode::BAD_REQUEST, "invalid_scope")
    );
    let (status, body) = token(
        &app,
        Auth::None,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("scope", "keys:read"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "keys:read");
}

#[tokio::test]
async fn bearer_refresh_tokens_rotate_and_a_reused_one_ends_the_session() {
    let app = spawn_app().await;
    let first = client_credentials(&app, &app.owner).await;
    let rt1 = first["refresh_token"].as_str().unwrap().to_owned();

    let (status, second) = refresh(&app, &rt1).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let rt2 = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rt1, rt2);
    assert_eq!(second["session_id"], first["session_id"]);
    let (status, third) = refresh(&app, &rt2).await;
    assert_eq!(status, StatusCode::OK, "{third}");
    let rt3 = third["refresh_token"].as_str().unwrap().to_owned();
    let access = third["access_token"].as_str().unwrap().to_owned();
    let (status, _) = json(app.me("default", &access).await).await;
    assert_eq!(status, StatusCode::OK);

    // Replaying the first token: the session ends, with every token of it.
    let (status, body) = refresh(&app, &rt1).await;
    assert_eq!(
        (status, oauth_error(&body)),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    let (status, body) = refresh(&app, &rt3).await;
    assert_eq!(
        (status, oauth_error(&body)),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    assert_rejected(&app, "default", &access, "invalid_token").await;
}

/// Concurrent refreshes of one Bearer refresh token on a multi-worker server, released
/// together by a barrier, round after round: exactly one wins; every loser presented a used
/// token, so the session is revoked and the winner's new refresh token is refused too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refreshes_of_one_token_succeed_exactly_once_and_end_the_session() {
    const ROUNDS: usize = 20;
    const RACERS: usize = 8;
    let app = spawn_app_with(|s| s.server.workers = Some(4)).await;
    let url = app.url("/v1/default/oauth/token");
    for round in 0..ROUNDS {
        let body = client_credentials(&app, &app.owner).await;
        let rt = body["refresh_token"].as_str().unwrap().to_owned();
        let access = body["access_token"].as_str().unwrap().to_owned();
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(RACERS));
        let racers: Vec<_> = (0..RACERS)
            .map(|_| {
                let (client, url, rt, barrier) =
                    (app.client.clone(), url.clone(), rt.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    let res = client
                        .post(url)
                        .form(&[("grant_type", "refresh_token"), ("refresh_token", &rt)])
                        .send()
                        .await
                        .unwrap();
                    json(res).await
                })
            })
            .collect();
        let mut results = Vec::new();
        for racer in racers {
            results.push(racer.await.unwrap());
        }
        let winners: Vec<&Value> = results
            .iter()
            .filter(|(s, _)| *s == StatusCode::OK)
            .map(|(_, body)| body)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        for (status, body) in results.iter().filter(|(s, _)| *s != StatusCode::OK) {
            assert_eq!(*status, StatusCode::BAD_REQUEST, "round {round}: {body}");
            assert_eq!(oauth_error(body), "invalid_grant", "round {round}");
        }
        // The losers presented a used token: the session is over, the winner's new refresh
        // token with it.
        let next = winners[0]["refresh_token"].as_str().unwrap();
        assert_ne!(next, rt);
        let (status, body) = refresh(&app, next).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "round {round}: the winner's refresh token outlived the revoked session: {body}"
        );
        assert_eq!(oauth_error(&body), "invalid_grant", "round {round}");
        let introspected = json(
            post_form(
                &app,
                "introspect",
                Auth::Basic(&app.owner),
                &[("token", &access)],
            )
            .await,
        )
        .await
        .1;
        assert_eq!(
            introspected,
            serde_json::json!({"active": false}),
            "round {round}: the session's access token is inactive"
        );
    }
}

#[tokio::test]
async fn refresh_checks_the_client_the_key_and_the_user() {
    let app = spawn_app().await;
    let member = app.create_user("default", Role::Member).await;
    let body = client_credentials(&app, &member).await;
    let rt = body["refresh_token"].as_str().unwrap().to_owned();

    // Another client may not use it (and a refresh that failed so does not consume it).
    let (status, body) = token(
        &app,
        Auth::Basic(&app.owner),
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
    )
    .await;
    assert_eq!(
        (status, oauth_error(&body)),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    // Its own client may.
    let (status, body) = token(
        &app,
        Auth::Basic(&member),
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rt = body["refresh_token"].as_str().unwrap().to_owned();

    let org = keygate::admin::find_org(&app.state.storage, "default")
        .await
        .unwrap();
    keygate::storage::users::set_disabled(
        &app.state.storage,
        &org.id,
        &member.user_id,
        true,
        app.now(),
    )
    .await
    .unwrap();
    let (status, body) = refresh(&app, &rt).await;
    assert_eq!(
        (status, oauth_error(&body)),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    keygate::storage::users::set_disabled(
        &app.state.storage,
        &org.id,
        &member.user_id,
        false,
        app.now(),
    )
    .await
    .unwrap();

    keygate::admin::revoke_key(
        &app.state.storage,
        app.clock.as_ref(),
        &org,
        &member.api_key_id,
    )
    .await
    .unwrap();
    let (status, body) = refresh(&app, &rt).await;
    assert_eq!(
        (status, oauth_error(&body)),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
}

async fn introspect(app: &TestApp, c: &Credentials, token: &str) -> Value {
    let (status, body) =
        json(post_form(app, "introspect", Auth::Basic(c), &[("token", token)]).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn introspection_reports_active_tokens_and_nothing_about_others() {
    let app = spawn_app().await;
    let o = app.owner.clone();
    let body = client_credentials(&app, &o).await;
    let access = body["access_token"].as_str().unwrap().to_owned();
    let rt = body["refresh_token"].as_str().unwrap().to_owned();

    let info = introspect(&app, &o, &access).await;
    assert_eq!(info["active"], true);
    assert_eq!(info["token_type"], "Bearer");
    assert_eq!(info["client_id"], o.api_key_id.as_str());
    assert_eq!(info["sub"], o.user_id.as_str());
    assert_eq!(info["sid"], body["session_id"]);
    assert_eq!(info["org"], "default");
    assert_eq!(info["iss"], format!("{}/v1/default", app.address).as_str());
    for field in ["scope", "exp", "iat", "aud", "jti"] {
        assert!(!info[field].is_null(), "{field} in {info}");
    }
    let info = introspect(&app, &o, &rt).await;
    assert_eq!(info["active"], true);
    assert_eq!(info["token_type"], "refresh_token");

    // Garbage and tokens of another organization are inactive, with no other field.
    let acme = app.create_org("acme").await;
    let acme_token = app.signin(&acme).await["id_token"]
        .as_str()
        .unwrap()
        .to_owned();
    for token in ["garbage", "rt_nope", acme_token.as_str()] {
        assert_eq!(
            introspect(&app, &o, token).await,
            serde_json::json!({"active": false})
        );
    }
    // Introspection needs client authentication.
    let (status, body) =
        json(post_form(&app, "introspect", Auth::None, &[("token", &access)]).await).await;
    assert_eq!(
        (status, oauth_error(&body)),
        (StatusCode::UNAUTHORIZED, "invalid_client")
    );

    // Expired.
    app.clock.advance(Duration::from_secs(16 * 60));
    assert_eq!(
        introspect(&app, &o, &access).await,
        serde_json::json!({"active": false})
    );
}

#[tokio::test]
async fn revocation_ends_access_tokens_and_sessions_of_the_clients_own_key_only() {
    let app = spawn_app().await;
    let o = app.owner.clone();
    let member = app.create_user("default", Role::Member).await;
    let body = client_credentials(&app, &o).await;
    let access = body["access_token"].as_str().unwrap().to_owned();

    // Another client cannot revoke it.
    let (status, body) =
        json(post_form(&app, "revoke", Auth::Basic(&member), &[("token", &access)]).await).await;
    assert_eq!(
        (status, oauth_error(&body)),
        (StatusCode::BAD_REQUEST, "unauthorized_client")
    );

    let res = post_form(
        &app,
        "revoke",
        Auth::Basic(&o),
        &[("token", &access), ("token_type_hint", "access_token")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(introspect(&app, &o, &access).await["active"], false);
    assert_rejected(&app, "default", &access, "invalid_token").await;

    // A refresh token ends its whole session.
    let body = client_credentials(&app, &o).await;
    let access = body["access_token"].as_str().unwrap().to_owned();
    let rt = body["refresh_token"].as_str().unwrap().to_owned();
    let res = post_form(&app, "revoke", Auth::Post(&o), &[("token", &rt)]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_rejected(&app, "default", &access, "invalid_token").await;
    let (status, body) = refresh(&app, &rt).await;
    assert_eq!(
        (status, oauth_error(&body)),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );

    // Unknown tokens: 200, as RFC 7009 §2.2 says.
    for token in ["garbage", "rt_unknown"] {
        let res = post_form(&app, "revoke", Auth::Basic(&o), &[("token", token)]).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn metadata_names_the_issuer_of_the_tokens_and_working_endpoints() {
    let app = spawn_app().await;
    let (status, a) = json(
        app.client
            .get(app.url("/v1/default/.well-known/oauth-authorization-server"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, b) = json(
        app.client
            .get(app.url("/.well-known/oauth-authorization-server/v1/default"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(a, b);
    let body = client_credentials(&app, &app.owner).await;
    assert_eq!(
        a["issuer"],
        claims_of(body["access_token"].as_str().unwrap())["iss"]
    );
    assert_eq!(
        a["dpop_signing_alg_values_supported"],
        serde_json::json!(["ES256", "ES384", "ES512"])
    );
    assert_eq!(
        a["grant_types_supported"],
        serde_json::json!([
            "client_credentials",
            "refresh_token",
            "authorization_code",
            "urn:ietf:params:oauth:grant-type:device_code",
            "urn:ietf:params:oauth:grant-type:token-exchange",
            "urn:ietf:params:oauth:grant-type:jwt-bearer"
        ])
    );
    assert_eq!(
        a["token_endpoint_auth_methods_supported"],
        serde_json::json!([
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "none"
        ])
    );
    let (status, jwks) = json(
        app.client
            .get(a["jwks_uri"].as_str().unwrap())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!jwks["keys"].as_array().unwrap().is_empty());
    // Each advertised endpoint is the real one: it answers a request without the
    // parameters it needs with its own RFC 6749 §5.2 error (not a 404 or 405).
    for (endpoint, status, error) in [
        ("token_endpoint", StatusCode::BAD_REQUEST, "invalid_request"),
        (
            "revocation_endpoint",
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            "introspection_endpoint",
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
    ] {
        let res = app
            .client
            .post(a[endpoint].as_str().unwrap())
            .form(&[("x", "y")])
            .send()
            .await
            .unwrap();
        let (got, body) = json(res).await;
        assert_eq!(
            (got, oauth_error(&body)),
            (status, error),
            "{endpoint}: {body}"
        );
        // The same request, authenticated, reaches the endpoint's own parameter check.
        let res = app
            .client
            .post(a[endpoint].as_str().unwrap())
            .basic_auth(&app.owner.api_key_id, Some(&app.owner.api_key))
            .form(&[("x", "y")])
            .send()
            .await
            .unwrap();
        let (got, body) = json(res).await;
        assert_eq!(
            (got, oauth_error(&body)),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{endpoint}: {body}"
        );
    }
    let res = app
        .client
        .get(app.url("/v1/nope/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}
