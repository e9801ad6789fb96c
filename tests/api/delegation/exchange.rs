//! Token exchange (RFC 8693): chains with nested `act`, narrowing, `exp`, `may_act`, the
//! depth limit, DPoP-bound subjects, and every refused subject token.

use std::time::Duration;

use keygate::types::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{
    ACCESS_TOKEN, EXCHANGE, exchange, exchange_with, introspect, me, oauth_error, token_proof,
};
use crate::dpop_flow::bound_token;
use crate::dpop_key::DpopKey;
use crate::helpers::{claims_of, spawn_app, spawn_app_with};
use crate::resources::{FILES, MCP, cc, register};

#[tokio::test]
async fn one_hop_and_two_hop_chains_nest_act_in_the_token_me_introspection_and_audit() {
    let app = spawn_app().await;
    let person = app.session(&app.owner).await;
    let assistant = app.create_user("default", Role::Member).await;
    let coder = app.create_user("default", Role::Service).await;

    // Hop 1: the assistant exchanges the person's token.
    let one = exchange(&app, &assistant, &person.token, &[]).await;
    let claims = claims_of(&one);
    assert_eq!(claims["sub"], app.owner.user_id.as_str());
    assert_eq!(claims["act"], json!({"sub": assistant.user_id}));
    assert_eq!(claims["client_id"], assistant.api_key_id.as_str());
    assert_ne!(claims["sid"], person.session_id.as_str());

    // Hop 2: the coding agent exchanges the assistant's token.
    let two = exchange(&app, &coder, &one, &[]).await;
    let chain = json!({"sub": coder.user_id, "act": {"sub": assistant.user_id}});
    let claims = claims_of(&two);
    assert_eq!(claims["sub"], app.owner.user_id.as_str());
    assert_eq!(claims["act"], chain);

    // The person's identity, the chain shown where it is read.
    let (status, body) = me(&app, &two).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user_id"], app.owner.user_id.as_str());
    assert_eq!(body["act"], chain);
    let (_, body) = me(&app, &one).await;
    assert_eq!(body["act"], json!({"sub": assistant.user_id}));
    let info = introspect(&app, &app.owner, &two).await;
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["act"], chain);
    assert_eq!(info["sub"], app.owner.user_id.as_str());

    let events = app.audit_events("default").await;
    let exchanges: Vec<_> = events
        .iter()
        .filter(|e| e.action == "token.exchange.succeeded")
        .collect();
    assert_eq!(exchanges.len(), 2);
    let last = exchanges
        .iter()
        .find(|e| e.actor_user_id.as_deref() == Some(coder.user_id.as_str()))
        .unwrap();
    assert_eq!(last.target_id.as_deref(), Some(app.owner.user_id.as_str()));
    assert_eq!(
        last.actor_key_id.as_deref(),
        Some(coder.api_key_id.as_str())
    );
    let act: Value = serde_json::from_str(last.act.as_deref().unwrap()).unwrap();
    assert_eq!(act, chain);
    // The admin API shows it too.
    let listed = app
        .get_as(&person.token, "/v1/default/audit_events?limit=200")
        .await;
    let data = listed.expect(StatusCode::OK)["data"]
        .as_array()
        .unwrap()
        .clone();
    assert!(data.iter().any(|e| e["act"] == chain), "{data:?}");
    // The exchanged session names the session it came from.
    let sessions = app
        .get_as(&person.token, "/v1/default/sessions?limit=200")
        .await;
    let sessions = sessions.expect(StatusCode::OK)["data"]
        .as_array()
        .unwrap()
        .clone();
    let hop1 = sessions
        .iter()
        .find(|s| s["session_id"] == claims_of(&one)["sid"])
        .unwrap();
    assert_eq!(hop1["parent_session_id"], person.session_id.as_str());
    assert_eq!(hop1["actor_user_id"], assistant.user_id.as_str());
}

#[tokio::test]
async fn an_actor_token_names_the_current_actor() {
    let app = spawn_app().await;
    let person = app.session(&app.owner).await;
    let agent = app.create_user("default", Role::Member).await;
    let tool = app.create_user("default", Role::Service).await;
    let tool_token = app.session(&tool).await.token;
    let token = exchange(
        &app,
        &agent,
        &person.token,
        &[
            ("actor_token", &tool_token),
            ("actor_token_type", ACCESS_TOKEN),
        ],
    )
    .await;
    assert_eq!(claims_of(&token)["act"], json!({"sub": tool.user_id}));
    // An actor token needs its type, and both must be access tokens.
    for (extra, why) in [
        (
            vec![("actor_token", tool_token.as_str())],
            "no actor_token_type",
        ),
        (
            vec![
                ("actor_token", tool_token.as_str()),
                ("actor_token_type", "urn:ietf:params:oauth:token-type:jwt"),
            ],
            "a type keygate does not exchange",
        ),
        (
            vec![
                ("actor_token", "garbage"),
                ("actor_token_type", ACCESS_TOKEN),
            ],
            "garbage",
        ),
    ] {
        let (status, body) = exchange_with(&app, &agent, &person.token, &extra, None).await;
        let code = if why == "garbage" {
            "invalid_grant"
        } else {
            "invalid_request"
        };
        oauth_error(status, &body, StatusCode::BAD_REQUEST, code);
    }
}

#[tokio::test]
async fn scope_and_audience_narrow_and_never_widen() {
    let app = spawn_app().await;
    register(&app, &app.owner, MCP, &["mcp:tools", "mcp:admin"], None).await;
    register(&app, &app.owner, FILES, &["files:read"], None).await;
    let agent = app.create_user("default", Role::Member).await;
    let (status, body) = cc(&app, &app.owner, &[MCP], Some("mcp:tools")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mcp_only = body["access_token"].as_str().unwrap().to_owned();
    let (status, body) = cc(&app, &app.owner, &[MCP, FILES], None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let both = body["access_token"].as_str().unwrap().to_owned();

    // Narrowing: one of two resources (as `resource` or as `audience`), fewer scopes.
    for name in ["resource", "audience"] {
        let token = exchange(&app, &agent, &both, &[(name, MCP), ("scope", "mcp:tools")]).await;
        let claims = claims_of(&token);
        assert_eq!(claims["aud"], MCP);
        assert_eq!(claims["scope"], "mcp:tools");
    }
    // No resource named: the subject token's audience and scope.
    let same = claims_of(&exchange(&app, &agent, &mcp_only, &[]).await);
    assert_eq!(
        (same["aud"].clone(), same["scope"].clone()),
        (json!(MCP), json!("mcp:tools"))
    );

    // Widening is refused.
    for (extra, code) in [
        (vec![("scope", "mcp:admin")], "invalid_scope"),
        (vec![("scope", "mcp:tools keys:write")], "invalid_scope"),
        (vec![("resource", FILES)], "invalid_target"),
        (vec![("audience", FILES)], "invalid_target"),
        (
            vec![("resource", "https://unknown.example/api")],
            "invalid_target",
        ),
    ] {
        let (status, body) = exchange_with(&app, &agent, &mcp_only, &extra, None).await;
        oauth_error(status, &body, StatusCode::BAD_REQUEST, code);
    }

    // A token for keygate itself narrows its scopes and gains no resource.
    let key = app
        .create_scoped_key("default", &app.owner.user_id, &["keys:read", "users:read"])
        .await;
    let own = app.session(&key).await.token;
    let narrowed = exchange(&app, &agent, &own, &[("scope", "keys:read")]).await;
    assert_eq!(claims_of(&narrowed)["scope"], "keys:read");
    for (extra, code) in [
        (vec![("scope", "keys:write")], "invalid_scope"),
        (vec![("resource", MCP)], "invalid_target"),
    ] {
        let (status, body) = exchange_with(&app, &agent, &own, &extra, None).await;
        oauth_error(status, &body, StatusCode::BAD_REQUEST, code);
    }
    // The narrowed token cannot be exchanged back up.
    let (status, body) =
        exchange_with(&app, &agent, &narrowed, &[("scope", "users:read")], None).await;
    oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_scope");
}

#[tokio::test]
async fn the_exchanged_token_never_outlives_the_subject_token() {
    let app = spawn_app().await;
    let person = app.session(&app.owner).await;
    let subject_exp = claims_of(&person.token)["exp"].as_i64().unwrap();
    app.clock.advance(Duration::from_secs(10 * 60));
    let agent = app.create_user("default", Role::Member).await;
    let (status, body) = exchange_with(&app, &agent, &person.token, &[], None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(claims_of(token)["exp"].as_i64().unwrap(), subject_exp);
    assert!(body["expires_in"].as_i64().unwrap() <= 5 * 60, "{body}");
    // Past the subject token's end, the exchanged token is refused.
    app.clock.advance(Duration::from_secs(6 * 60));
    let (status, _) = me(&app, token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn may_act_names_the_only_actor_that_may_exchange_a_token() {
    let app = spawn_app().await;
    let person = app.session(&app.owner).await;
    let trusted = app.create_user("default", Role::Member).await;
    let other = app.create_user("default", Role::Member).await;
    // The person narrows its own token for one agent: no actor is added.
    let handed = exchange(
        &app,
        &app.owner,
        &person.token,
        &[("may_act", &trusted.user_id)],
    )
    .await;
    let claims = claims_of(&handed);
    assert_eq!(claims["may_act"], json!({"sub": trusted.user_id}));
    assert!(claims.get("act").is_none(), "{claims}");

    let (status, body) = exchange_with(&app, &other, &handed, &[], None).await;
    oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    // Nor through an actor token of the other user, presented by the trusted client.
    let other_token = app.session(&other).await.token;
    let (status, body) = exchange_with(
        &app,
        &trusted,
        &handed,
        &[
            ("actor_token", &other_token),
            ("actor_token_type", ACCESS_TOKEN),
        ],
        None,
    )
    .await;
    oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    let token = exchange(&app, &trusted, &handed, &[]).await;
    assert_eq!(claims_of(&token)["act"], json!({"sub": trusted.user_id}));
}

#[tokio::test]
async fn the_chain_is_limited_to_max_delegation_depth() {
    let app = spawn_app_with(|s| s.tokens.max_delegation_depth = 2).await;
    let person = app.session(&app.owner).await;
    let agents = [
        app.create_user("default", Role::Member).await,
        app.create_user("default", Role::Member).await,
        app.create_user("default", Role::Member).await,
    ];
    let one = exchange(&app, &agents[0], &person.token, &[]).await;
    let two = exchange(&app, &agents[1], &one, &[]).await;
    assert_eq!(
        claims_of(&two)["act"],
        json!({"sub": agents[1].user_id, "act": {"sub": agents[0].user_id}})
    );
    let (status, body) = exchange_with(&app, &agents[2], &two, &[], None).await;
    oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("2 actors"),
        "{body}"
    );
    // The default is 4.
    let app = spawn_app().await;
    assert_eq!(app.state.settings.tokens.max_delegation_depth, 4);
}

#[tokio::test]
async fn a_dpop_bound_subject_needs_a_proof_of_its_key_and_stays_bound() {
    let app = spawn_app().await;
    let key = DpopKey::es256();
    let bound = bound_token(&app, &key).await;
    let agent = app.create_user("default", Role::Member).await;

    // No proof, or a proof of another key: refused. Never a bearer token.
    for proof in [None, Some(token_proof(&app, &DpopKey::es256()))] {
        let (status, body) = exchange_with(&app, &agent, &bound, &[], proof).await;
        oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_dpop_proof");
    }
    let (status, body) =
        exchange_with(&app, &agent, &bound, &[], Some(token_proof(&app, &key))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(claims_of(token)["cnf"]["jkt"], key.thumbprint().as_str());
    // Presented as a Bearer token it is refused.
    let (status, _) = me(&app, token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // An unbound subject exchanged with a proof: the new token is bound to that key.
    let person = app.session(&app.owner).await;
    let other = DpopKey::es256();
    let (status, body) = exchange_with(
        &app,
        &agent,
        &person.token,
        &[],
        Some(token_proof(&app, &other)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        claims_of(body["access_token"].as_str().unwrap())["cnf"]["jkt"],
        other.thumbprint().as_str()
    );
}

#[tokio::test]
async fn bad_expired_foreign_and_malformed_subject_tokens_are_refused() {
    let app = spawn_app().await;
    let agent = app.create_user("default", Role::Member).await;
    let person = app.session(&app.owner).await;
    let other_org = app.create_org("other").await;
    let foreign = app.session(&other_org).await.token;
    let garbage = "eyJhbGciOiJFUzI1NiJ9.e30.c2ln";

    for (subject, why) in [
        (foreign.as_str(), "a token of another organization"),
        (garbage, "garbage"),
        ("not-a-jwt", "not a JWT"),
    ] {
        let (status, body) = exchange_with(&app, &agent, subject, &[], None).await;
        assert_eq!(body["error"], "invalid_grant", "{why}: {body}");
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}");
    }

    // Missing or mistyped parameters.
    let send = |form: Vec<(&'static str, String)>| {
        let req = app
            .client
            .post(app.url("/v1/default/oauth/token"))
            .basic_auth(&agent.api_key_id, Some(&agent.api_key))
            .form(&form);
        async move { crate::helpers::json(req.send().await.unwrap()).await }
    };
    let t = person.token.clone();
    for form in [
        vec![("grant_type", EXCHANGE.to_owned())],
        vec![
            ("grant_type", EXCHANGE.to_owned()),
            ("subject_token", t.clone()),
        ],
        vec![
            ("grant_type", EXCHANGE.to_owned()),
            ("subject_token", t.clone()),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:id_token".into(),
            ),
        ],
        vec![
            ("grant_type", EXCHANGE.to_owned()),
            ("subject_token", t.clone()),
            ("subject_token_type", ACCESS_TOKEN.into()),
            (
                "requested_token_type",
                "urn:ietf:params:oauth:token-type:refresh_token".into(),
            ),
        ],
    ] {
        let (status, body) = send(form).await;
        oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_request");
    }
    // No client authentication.
    let (status, body) = crate::helpers::json(
        app.client
            .post(app.url("/v1/default/oauth/token"))
            .form(&[
                ("grant_type", EXCHANGE),
                ("subject_token", &t),
                ("subject_token_type", ACCESS_TOKEN),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    oauth_error(status, &body, StatusCode::UNAUTHORIZED, "invalid_client");

    // Expired: past `exp` and the leeway.
    app.clock.advance(Duration::from_secs(16 * 60));
    let (status, body) = exchange_with(&app, &agent, &t, &[], None).await;
    oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");

    // A revoked access token (RFC 7009).
    let fresh = app.session(&app.owner).await.token;
    let res = app
        .client
        .post(app.url("/v1/default/oauth/revoke"))
        .basic_auth(&app.owner.api_key_id, Some(&app.owner.api_key))
        .form(&[("token", fresh.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let (status, body) = exchange_with(&app, &agent, &fresh, &[], None).await;
    oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
}
