//! Browser clients in the device flow: a registered confidential client, a public one (its
//! pending requests limited per IP), and `keygate-cli`, the built-in public client of
//! `keygate login`: each gets the person's tokens once, only for itself, within what the
//! client and the person's role allow; `keygate-cli` can do nothing but the device flow.

use keygate::types::Role;
use reqwest::StatusCode;
use serde_json::Value;

use super::{GRANT, assert_oauth_error, browser, str_of};
use crate::authorize::{Client, Pkce, public_client, refresh, register, request};
use crate::helpers::{TestApp, claims_of, json, spawn_app, spawn_app_with};

fn keygate_cli() -> Client {
    Client {
        id: "keygate-cli".into(),
        secret: None,
        redirect_uri: String::new(),
    }
}

/// A POST as `client` (Basic with its secret, else `client_id` in the form).
async fn post_as(
    app: &TestApp,
    client: &Client,
    path: &str,
    form: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut form: Vec<(&str, &str)> = form.to_vec();
    let mut req = app.client.post(app.url(path));
    match &client.secret {
        Some(secret) => req = req.basic_auth(&client.id, Some(secret)),
        None => form.push(("client_id", &client.id)),
    }
    json(req.form(&form).send().await.unwrap()).await
}

async fn ask(app: &TestApp, client: &Client, form: &[(&str, &str)]) -> (StatusCode, Value) {
    post_as(app, client, "/v1/default/oauth/device_authorization", form).await
}

async fn poll_as(app: &TestApp, client: &Client, device_code: &str) -> (StatusCode, Value) {
    post_as(
        app,
        client,
        "/v1/default/oauth/token",
        &[("grant_type", GRANT), ("device_code", device_code)],
    )
    .await
}

/// Asks as `client`, has `approver` approve, collects the tokens.
async fn approved(app: &TestApp, client: &Client, approver: &str, form: &[(&str, &str)]) -> Value {
    let (status, codes) = ask(app, client, form).await;
    assert_eq!(status, StatusCode::OK, "{codes}");
    browser(app, "default", approver)
        .await
        .approve(app, str_of(&codes, "user_code"))
        .await;
    let (status, tokens) = poll_as(app, client, str_of(&codes, "device_code")).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    tokens
}

#[tokio::test]
async fn a_registered_client_gets_the_persons_tokens_once_and_only_for_itself() {
    let app = spawn_app().await;
    let member = app.create_user("default", Role::Member).await;
    let confidential = register(
        &app,
        &app.owner,
        "client_secret_basic",
        "https://agent.example/cb",
    )
    .await;
    let other = public_client(&app).await;

    let (status, codes) = ask(&app, &confidential, &[("scope", "keys:read audit:read")]).await;
    assert_eq!(status, StatusCode::OK, "{codes}");
    let user_code = str_of(&codes, "user_code");
    let device_code = str_of(&codes, "device_code");
    let person = browser(&app, "default", &member.user_id).await;
    let page = person
        .get(&app, &format!("/v1/default/device?user_code={user_code}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains(&confidential.id), "{page}");
    assert!(page.contains("Agent client_secret_basic"), "{page}");
    assert!(page.contains("registered with this organization"), "{page}");
    // A member cannot grant the audit log: the page and the token say keys:read only.
    assert!(page.contains("<code>keys:read</code>"), "{page}");
    assert!(!page.contains("<code>audit:read</code>"), "{page}");
    person.approve(&app, user_code).await;

    // Someone else's code: another browser client, an API key, an unauthenticated caller.
    let (status, body) = poll_as(&app, &other, device_code).await;
    assert_oauth_error(status, &body, "invalid_grant");
    let (status, body) = super::poll(&app, &app.owner, device_code).await;
    assert_oauth_error(status, &body, "invalid_grant");
    let mut no_secret = confidential.clone();
    no_secret.secret = None;
    let (status, body) = poll_as(&app, &no_secret, device_code).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_client");

    let (status, tokens) = poll_as(&app, &confidential, device_code).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["scope"], "keys:read");
    let claims = claims_of(str_of(&tokens, "access_token"));
    assert_eq!(claims["sub"], member.user_id.as_str());
    assert_eq!(claims["client_id"], confidential.id.as_str());
    let (status, body) = poll_as(&app, &confidential, device_code).await;
    assert_oauth_error(status, &body, "invalid_grant");
    // Its session refreshes for that client only.
    let rt = str_of(&tokens, "refresh_token");
    let (status, body) = refresh(&app, "default", Some(&other), rt).await;
    assert_oauth_error(status, &body, "invalid_grant");
    let (status, body) = refresh(&app, "default", Some(&confidential), rt).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        claims_of(str_of(&body, "access_token"))["sub"],
        member.user_id.as_str()
    );
    // A scope that is not keygate's needs its resource; a registered limit is kept.
    let (status, body) = ask(&app, &confidential, &[("scope", "mcp:tools")]).await;
    assert_oauth_error(status, &body, "invalid_scope");
}

#[tokio::test]
async fn public_clients_hold_a_few_pending_requests_per_ip() {
    let app = spawn_app_with(|s| s.device.pending_per_ip = 2).await;
    let public = public_client(&app).await;
    let mut codes = Vec::new();
    for _ in 0..2 {
        let (status, body) = ask(&app, &public, &[]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        codes.push(body);
    }
    for client in [&public, &keygate_cli()] {
        let res = app
            .client
            .post(app.url("/v1/default/oauth/device_authorization"))
            .form(&[("client_id", client.id.as_str())])
            .send()
            .await
            .unwrap();
        let retry: u64 = res.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=600).contains(&retry), "{retry}");
        let (status, body) = json(res).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        assert_eq!(body["error"], "rate_limited");
    }
    // A client that authenticates is not limited by where it asks from.
    let confidential = register(
        &app,
        &app.owner,
        "client_secret_basic",
        "https://agent.example/cb",
    )
    .await;
    for _ in 0..3 {
        let (status, body) = ask(&app, &confidential, &[]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // A request decided is no longer pending: room for another.
    let (status, _) = browser(&app, "default", &app.owner.user_id)
        .await
        .decide(&app, str_of(&codes[0], "user_code"), "deny")
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = ask(&app, &public, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn keygate_cli_is_a_public_client_of_every_organization_for_the_device_flow_only() {
    let app = spawn_app().await;
    let member = app.create_user("default", Role::Member).await;
    let cli = keygate_cli();

    // Asked for nothing: no scope, a token that only says who the person is.
    let tokens = approved(&app, &cli, &member.user_id, &[]).await;
    assert_eq!(tokens["scope"], "");
    let claims = claims_of(str_of(&tokens, "access_token"));
    assert_eq!(claims["client_id"], "keygate-cli");
    assert_eq!(claims["sub"], member.user_id.as_str());
    let (status, me) = json(app.me("default", str_of(&tokens, "access_token")).await).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    // Asked for every scope: an owner grants them all.
    let every: std::collections::BTreeSet<&str> =
        keygate::types::KNOWN_SCOPES.iter().copied().collect();
    let every = every.into_iter().collect::<Vec<&str>>().join(" ");
    let tokens = approved(&app, &cli, &app.owner.user_id, &[("scope", &every)]).await;
    assert_eq!(tokens["scope"], every);
    let (status, body) = refresh(
        &app,
        "default",
        Some(&cli),
        str_of(&tokens, "refresh_token"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Known to every organization, and the page says what it is.
    let elsewhere = app.create_org("elsewhere").await;
    let (status, codes) =
        post_as(&app, &cli, "/v1/elsewhere/oauth/device_authorization", &[]).await;
    assert_eq!(status, StatusCode::OK, "{codes}");
    let page = browser(&app, "elsewhere", &elsewhere.user_id)
        .await
        .get(
            &app,
            &format!(
                "/v1/elsewhere/device?user_code={}",
                str_of(&codes, "user_code")
            ),
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("keygate login (command line)"), "{page}");

    // Public: a secret or an assertion is refused.
    let mut with_secret = cli.clone();
    with_secret.secret = Some("cs_whatever".into());
    let (status, body) = ask(&app, &with_secret, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_client");
    // No redirect URI: the authorization endpoint shows an error page, never a redirect.
    let pkce = Pkce::new();
    let mut as_browser = cli.clone();
    as_browser.redirect_uri = "http://127.0.0.1:9/cb".into();
    let query = request(&as_browser, &pkce, &[]);
    let res = super::no_redirects()
        .get(app.url("/v1/default/oauth/authorize"))
        .query(&query)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.headers().get("location").is_none());
}
