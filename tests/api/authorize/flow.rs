//! The whole flow with a public and a confidential client, sessions of browser clients and
//! their refresh, protected resources, metadata.

use std::time::Duration;

use keygate::types::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{
    Pkce, approve, authorize, exchange, oauth_error, public_client, query, refresh, register,
    request, sign_in, token_of, tokens,
};
use crate::helpers::{claims_of, error_code, json, spawn_app};

#[tokio::test]
async fn a_public_client_gets_tokens_for_the_person_who_approved() {
    let app = spawn_app().await;
    let client = public_client(&app).await;
    let member = app.create_user("default", Role::Member).await;
    let person = sign_in(&app, "default", &member.user_id).await;
    let pkce = Pkce::new();
    let params = request(&client, &pkce, &[("scope", "keys:read")]);
    let back = super::decide(&app, "default", &person, &params, "approve").await;
    let issuer = format!("{}/v1/default", app.address);
    assert_eq!(back["state"], "st-8f3a", "state comes back unchanged");
    assert_eq!(back["iss"], issuer, "RFC 9207");
    let code = &back["code"];
    assert!(code.starts_with("ac_") && code.len() >= 46, "{code}");

    let res = super::exchange_raw(&app, "default", &client, code, &pkce.verifier, &[], None).await;
    assert_eq!(res.headers()["cache-control"], "no-store");
    let (status, body) = json(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "keys:read");
    assert_eq!(body["expires_in"], 900);
    assert!(body["refresh_token"].as_str().unwrap().starts_with("rt_"));
    let claims = claims_of(body["access_token"].as_str().unwrap());
    assert_eq!(
        claims["sub"],
        member.user_id.as_str(),
        "the person, not the client"
    );
    assert_eq!(claims["client_id"], client.id.as_str());
    assert_eq!(claims["iss"], issuer);
    assert_eq!(claims["sid"], body["session_id"]);
    assert!(claims.get("act").is_none());
    let (status, me) = json(
        app.me("default", body["access_token"].as_str().unwrap())
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["user_id"], member.user_id.as_str());

    // The session's client is the browser client.
    let owner_token = token_of(&app, &app.owner).await;
    let (_, sessions) = json(
        app.client
            .get(app.url(&format!("/v1/default/sessions?user_id={}", member.user_id)))
            .bearer_auth(&owner_token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let session = sessions["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["session_id"] == body["session_id"])
        .expect("listed");
    assert_eq!(session["api_key_id"], client.id.as_str());

    // Refresh: the client names itself; its tokens rotate as any Bearer refresh token.
    let rt = body["refresh_token"].as_str().unwrap();
    let (status, err) = refresh(&app, "default", None, rt).await;
    assert_eq!(
        (status, oauth_error(&err)),
        (StatusCode::UNAUTHORIZED, "invalid_client")
    );
    let other = register(&app, &app.owner, "none", "https://other.example/cb").await;
    let (status, err) = refresh(&app, "default", Some(&other), rt).await;
    assert_eq!(
        (status, oauth_error(&err)),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    let (status, err) = json(
        app.client
            .post(app.url("/v1/default/oauth/token"))
            .basic_auth(&app.owner.api_key_id, Some(&app.owner.api_key))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", rt)])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, oauth_error(&err)),
        (StatusCode::BAD_REQUEST, "invalid_grant"),
        "an API key client cannot refresh a browser client's session"
    );
    let (status, refreshed) = refresh(&app, "default", Some(&client), rt).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert_ne!(refreshed["refresh_token"], body["refresh_token"]);
    assert_eq!(refreshed["session_id"], body["session_id"]);
    let claims = claims_of(refreshed["access_token"].as_str().unwrap());
    assert_eq!(claims["client_id"], client.id.as_str());
    assert_eq!(claims["sub"], member.user_id.as_str());

    let actions: Vec<String> = app
        .audit_events("default")
        .await
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert!(actions.iter().any(|a| a == "authorization.approved"));
    assert!(
        actions
            .iter()
            .any(|a| a == "token.authorization_code.succeeded")
    );
}

#[tokio::test]
async fn a_confidential_client_authenticates_at_the_exchange_and_the_refresh() {
    let app = spawn_app().await;
    let client = register(
        &app,
        &app.owner,
        "client_secret_basic",
        "https://app.example/cb",
    )
    .await;
    let secret = client.secret.clone().expect("a secret");
    let person = sign_in(&app, "default", &app.owner.user_id).await;
    for (name, presented) in [
        ("no secret", None),
        ("a wrong secret", Some(format!("{secret}x"))),
    ] {
        let pkce = Pkce::new();
        let code = approve(&app, "default", &person, &request(&client, &pkce, &[])).await;
        let pretender = super::Client {
            secret: presented,
            ..client.clone()
        };
        let (status, body) =
            exchange(&app, "default", &pretender, &code, &pkce.verifier, &[]).await;
        assert_eq!(
            (status, oauth_error(&body)),
            (StatusCode::UNAUTHORIZED, "invalid_client"),
            "{name}"
        );
        // The code was not used up by a client that failed to authenticate.
        let (status, body) = exchange(&app, "default", &client, &code, &pkce.verifier, &[]).await;
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
    }
    let body = tokens(&app, &client, &person).await;
    let rt = body["refresh_token"].as_str().unwrap();
    let public_form = super::Client {
        secret: None,
        ..client.clone()
    };
    let (status, err) = refresh(&app, "default", Some(&public_form), rt).await;
    assert_eq!(
        (status, oauth_error(&err)),
        (StatusCode::UNAUTHORIZED, "invalid_client")
    );
    let (status, refreshed) = refresh(&app, "default", Some(&client), rt).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
}

#[tokio::test]
async fn a_disabled_person_gets_no_tokens_and_their_session_no_refresh() {
    let app = spawn_app().await;
    let client = public_client(&app).await;
    let member = app.create_user("default", Role::Member).await;
    let person = sign_in(&app, "default", &member.user_id).await;
    let body = tokens(&app, &client, &person).await;
    // A code approved before the person was disabled (by another node: no session ended,
    // no cache cleared) opens no session: the commit reads the user again.
    let pkce = Pkce::new();
    let code = approve(&app, "default", &person, &request(&client, &pkce, &[])).await;
    app.set_user_directly(&member.user_id, None, Some(true))
        .await;
    let (status, err) = exchange(&app, "default", &client, &code, &pkce.verifier, &[]).await;
    assert_eq!(
        (status, oauth_error(&err)),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    // The refresh of the earlier session re-checks the user as stored now.
    let (status, err) = refresh(
        &app,
        "default",
        Some(&client),
        body["refresh_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(
        (status, oauth_error(&err)),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    // Enabled again: the session refreshes (nothing ended it).
    app.set_user_directly(&member.user_id, None, Some(false))
        .await;
    let (status, ok) = refresh(
        &app,
        "default",
        Some(&client),
        body["refresh_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{ok}");
    // Disabled through the admin API: the session ends and the access token stops working.
    let owner_token = token_of(&app, &app.owner).await;
    let res = app
        .client
        .patch(app.url(&format!("/v1/default/users/{}", member.user_id)))
        .bearer_auth(&owner_token)
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{res:?}");
    let (status, err) = refresh(
        &app,
        "default",
        Some(&client),
        ok["refresh_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(
        (status, oauth_error(&err)),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    app.clock.advance(Duration::from_secs(6));
    let (status, err) = json(
        app.me("default", ok["access_token"].as_str().unwrap())
            .await,
    )
    .await;
    assert_eq!(
        (status, error_code(&err)),
        (StatusCode::UNAUTHORIZED, "invalid_token")
    );
}

#[tokio::test]
async fn resources_the_person_approved_are_the_tokens_audience() {
    let app = spawn_app().await;
    let owner_token = token_of(&app, &app.owner).await;
    let (status, resource) = json(
        app.client
            .post(app.url("/v1/default/resources"))
            .bearer_auth(&owner_token)
            .json(&json!({
                "uri": "https://mcp.example.com/mcp",
                "name": "Files MCP",
                "scopes": ["mcp:tools", "files:read"],
            }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{resource}");
    let client = public_client(&app).await;
    let member = app.create_user("default", Role::Member).await;
    let person = sign_in(&app, "default", &member.user_id).await;
    let pkce = Pkce::new();
    let uri = "https://MCP.example.com:443/mcp";
    // A scope the resource does not define: refused.
    let res = authorize(
        &app,
        "default",
        Some(&person),
        &request(&client, &pkce, &[("resource", uri), ("scope", "mcp:admin")]),
    )
    .await;
    assert_eq!(query(&super::location(&res))["error"], "invalid_scope");
    // No scope: every scope of the resource; the page names the resource.
    let params = request(&client, &pkce, &[("resource", uri)]);
    let html = super::consent_page(&app, "default", &person, &params).await;
    assert!(html.contains("Files MCP") && html.contains("https://mcp.example.com/mcp"));
    assert!(html.contains("<code>files:read</code>") && html.contains("<code>mcp:tools</code>"));
    let code = approve(&app, "default", &person, &params).await;
    let (status, body) = exchange(&app, "default", &client, &code, &pkce.verifier, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "files:read mcp:tools");
    let claims = claims_of(body["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], "https://mcp.example.com/mcp");
    assert_eq!(claims["sub"], member.user_id.as_str());
    // A refresh narrows, never widens.
    let (status, refreshed) = json(
        app.client
            .post(app.url("/v1/default/oauth/token"))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", body["refresh_token"].as_str().unwrap()),
                ("client_id", client.id.as_str()),
                ("scope", "mcp:tools"),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert_eq!(refreshed["scope"], "mcp:tools");
}

#[tokio::test]
async fn the_metadata_advertises_the_authorization_endpoint_and_its_rules() {
    let app = spawn_app().await;
    let (status, meta) = json(
        app.client
            .get(app.url("/v1/default/.well-known/oauth-authorization-server"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let issuer = format!("{}/v1/default", app.address);
    assert_eq!(
        meta["authorization_endpoint"],
        format!("{issuer}/oauth/authorize")
    );
    assert_eq!(meta["response_types_supported"], json!(["code"]));
    assert_eq!(meta["response_modes_supported"], json!(["query"]));
    assert_eq!(meta["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(meta["authorization_response_iss_parameter_supported"], true);
    let grants: Vec<Value> = meta["grant_types_supported"].as_array().unwrap().clone();
    assert!(grants.contains(&json!("authorization_code")));
    // The advertised endpoint is the real one: a request naming no client gets its page.
    let res = super::browser()
        .get(meta["authorization_endpoint"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("client_id"));
}

#[tokio::test]
async fn a_browser_client_revokes_its_own_tokens_and_no_one_elses() {
    let app = spawn_app().await;
    let client = public_client(&app).await;
    let other = register(&app, &app.owner, "none", "https://other.example/cb").await;
    let person = sign_in(&app, "default", &app.owner.user_id).await;
    let body = tokens(&app, &client, &person).await;
    let revoke = |token: String, client_id: Option<String>| {
        let app = &app;
        async move {
            let mut req = app.client.post(app.url("/v1/default/oauth/revoke"));
            let mut form = vec![("token", token)];
            match client_id {
                Some(id) => form.push(("client_id", id)),
                None => req = req.basic_auth(&app.owner.api_key_id, Some(&app.owner.api_key)),
            }
            req.form(&form).send().await.unwrap()
        }
    };
    let rt = body["refresh_token"].as_str().unwrap().to_owned();
    let access = body["access_token"].as_str().unwrap().to_owned();
    for (name, client_id) in [
        ("another browser client", Some(other.id.clone())),
        ("an API key", None),
    ] {
        for token in [&rt, &access] {
            let (status, err) = json(revoke(token.clone(), client_id.clone()).await).await;
            assert_eq!(
                (status, oauth_error(&err)),
                (StatusCode::BAD_REQUEST, "unauthorized_client"),
                "{name}"
            );
        }
    }
    let res = revoke(access.clone(), Some(client.id.clone())).await;
    assert_eq!(res.status(), StatusCode::OK);
    let (status, _) = json(app.me("default", &access).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let res = revoke(rt.clone(), Some(client.id.clone())).await;
    assert_eq!(res.status(), StatusCode::OK);
    let (status, err) = refresh(&app, "default", Some(&client), &rt).await;
    assert_eq!(
        (status, oauth_error(&err)),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
}

#[tokio::test]
async fn a_session_whose_client_is_gone_refreshes_no_more() {
    let app = spawn_app().await;
    let client = public_client(&app).await;
    let person = sign_in(&app, "default", &app.owner.user_id).await;
    let body = tokens(&app, &client, &person).await;
    let rt = body["refresh_token"].as_str().unwrap();
    let introspect = || async {
        json(
            app.client
                .post(app.url("/v1/default/oauth/introspect"))
                .basic_auth(&app.owner.api_key_id, Some(&app.owner.api_key))
                .form(&[("token", rt)])
                .send()
                .await
                .unwrap(),
        )
        .await
        .1
    };
    let active = introspect().await;
    assert_eq!(active["active"], true, "{active}");
    assert_eq!(active["client_id"], client.id.as_str());
    assert_eq!(active["sub"], app.owner.user_id.as_str());
    // The client's row removed behind the API's back (its sessions were not ended): the
    // session's refresh re-checks its client, and introspection answers as the refresh would.
    {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        let db = sea_orm::Database::connect(&app.db.url).await.unwrap();
        entity::client::Entity::delete_many()
            .filter(entity::client::Column::Id.eq(client.id.as_str()))
            .exec(&db)
            .await
            .unwrap();
        db.close().await.ok();
    }
    assert_eq!(introspect().await, json!({"active": false}));
    // The client itself no longer identifies.
    let (status, err) = refresh(&app, "default", Some(&client), rt).await;
    assert_eq!(
        (status, oauth_error(&err)),
        (StatusCode::UNAUTHORIZED, "invalid_client")
    );
}

/// An MCP client known by its Client ID Metadata Document: the consent page names it and
/// where its document is served; its loopback redirect URI takes any port; it exchanges the
/// code and refreshes with its URL as `client_id`.
#[tokio::test]
async fn a_metadata_document_client_goes_through_the_whole_flow() {
    use crate::clients::{Answer, DocServer, document};
    let app = spawn_app().await;
    let server = DocServer::start(Answer::json(&json!({}))).await;
    let url = server.url("/oauth/client.json");
    server.set(Answer::json(&document(&url)));
    let client = super::Client {
        id: url.clone(),
        secret: None,
        redirect_uri: "http://127.0.0.1:49152/callback".into(),
    };
    let person = sign_in(&app, "default", &app.owner.user_id).await;
    let pkce = Pkce::new();
    let params = request(&client, &pkce, &[("scope", "keys:read")]);
    let html = super::consent_page(&app, "default", &person, &params).await;
    assert!(html.contains("Example MCP client"), "{html}");
    assert!(
        html.contains("<span class=\"mono\">127.0.0.1</span>"),
        "the document's host: {html}"
    );
    let code = approve(&app, "default", &person, &params).await;
    let (status, body) = exchange(&app, "default", &client, &code, &pkce.verifier, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        claims_of(body["access_token"].as_str().unwrap())["client_id"],
        url.as_str()
    );
    let (status, refreshed) = refresh(
        &app,
        "default",
        Some(&client),
        body["refresh_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    // A redirect URI the document does not list is refused with a page.
    let elsewhere = super::Client {
        redirect_uri: "https://elsewhere.example/cb".into(),
        ..client.clone()
    };
    let res = authorize(
        &app,
        "default",
        Some(&person),
        &request(&elsewhere, &pkce, &[]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.headers().get("location").is_none());
}

/// A sign-in that continues to an authorization request may be answered, through that
/// request, by a redirect to the client at once (a remembered consent), and browsers check
/// the code form's `form-action` against every redirect that answers it: the code page lets
/// the form reach that client's redirect origin, and nothing else.
#[tokio::test]
async fn a_sign_in_that_continues_to_an_authorization_request_lets_its_form_reach_the_client() {
    use crate::people::{Browser, add_person, spawn_with_mail};
    let (app, _sink) = spawn_with_mail().await;
    add_person(&app, "default", "ann@example.com", Role::Member).await;
    let client = public_client(&app).await;
    let authorize_path = |params: &[(String, String)]| {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        format!("/v1/default/oauth/authorize?{query}")
    };
    let form_action = |page: &crate::people::Page| {
        let csp = page.header("content-security-policy").unwrap_or_default();
        csp.split(';')
            .map(str::trim)
            .find(|d| d.starts_with("form-action"))
            .unwrap_or_default()
            .to_owned()
    };
    let params = request(&client, &Pkce::new(), &[]);
    let page = Browser::new(&app)
        .ask_code("default", "ann@example.com", Some(&authorize_path(&params)))
        .await;
    assert_eq!(
        form_action(&page),
        "form-action 'self' https://agent.example"
    );

    // A redirect URI the client did not register, a client keygate does not know, another
    // page of keygate: the form may post to keygate only.
    let foreign: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| match k.as_str() {
            "redirect_uri" => (k.clone(), "https://attacker.example/cb".to_owned()),
            _ => (k.clone(), v.clone()),
        })
        .collect();
    let unknown: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| match k.as_str() {
            "client_id" => (k.clone(), "cli_unknown0000000000000000".to_owned()),
            _ => (k.clone(), v.clone()),
        })
        .collect();
    for to in [
        authorize_path(&foreign),
        authorize_path(&unknown),
        "/v1/default/device".to_owned(),
    ] {
        let page = Browser::new(&app)
            .ask_code("default", "ann@example.com", Some(&to))
            .await;
        assert_eq!(form_action(&page), "form-action 'self'", "{to}");
    }
}
