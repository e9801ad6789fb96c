//! The `authorization_code` grant: each rule and its violation (PKCE, expiry, client,
//! redirect URI, single use and the revocation a reuse brings, the race), and DPoP.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;

use super::{
    Client, Pkce, approve, exchange, exchange_raw, oauth_error, public_client, refresh, register,
    request, sign_in,
};
use crate::dpop_key::DpopKey;
use crate::helpers::{claims_of, error_code, json, spawn_app};

const TOKEN: &str = "/v1/default/oauth/token";

#[tokio::test]
async fn the_verifier_must_be_the_challenges_and_well_formed() {
    let app = spawn_app().await;
    let client = public_client(&app).await;
    let person = sign_in(&app, "default", &app.owner.user_id).await;
    let pkce = Pkce::new();
    let code = approve(&app, "default", &person, &request(&client, &pkce, &[])).await;
    let another = Pkce::new();
    let cases = [
        (
            "another verifier",
            another.verifier.clone(),
            "invalid_grant",
        ),
        // `plain` would send the challenge itself as the verifier.
        (
            "the challenge itself",
            pkce.challenge.clone(),
            "invalid_grant",
        ),
        ("too short", "a".repeat(42), "invalid_request"),
        ("too long", "a".repeat(129), "invalid_request"),
        (
            "outside the alphabet",
            format!("{}+/", "a".repeat(50)),
            "invalid_request",
        ),
        ("missing", String::new(), "invalid_request"),
    ];
    for (name, verifier, error) in cases {
        let (status, body) = json(
            exchange_raw(
                &app,
                "default",
                &client,
                &code,
                "x",
                &[("code_verifier", &verifier)],
                None,
            )
            .await,
        )
        .await;
        assert_eq!(
            (status, oauth_error(&body)),
            (StatusCode::BAD_REQUEST, error),
            "{name}: {body}"
        );
    }
    for (name, field) in [("no code", "code"), ("no redirect_uri", "redirect_uri")] {
        let (status, body) = exchange(
            &app,
            "default",
            &client,
            &code,
            &pkce.verifier,
            &[(field, "")],
        )
        .await;
        assert_eq!(
            (status, oauth_error(&body)),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{name}"
        );
    }
    // Failed attempts did not use the code: its own client with the right verifier can.
    let (status, body) = exchange(&app, "default", &client, &code, &pkce.verifier, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_code_lives_60_seconds_for_its_client_and_redirect_uri_only() {
    let app = spawn_app().await;
    let client = public_client(&app).await;
    let thief = register(&app, &app.owner, "none", "https://thief.example/cb").await;
    let person = sign_in(&app, "default", &app.owner.user_id).await;

    let pkce = Pkce::new();
    let code = approve(&app, "default", &person, &request(&client, &pkce, &[])).await;
    // Another client, even with the right verifier and redirect URI.
    let (status, body) = exchange(
        &app,
        "default",
        &thief,
        &code,
        &pkce.verifier,
        &[("redirect_uri", &client.redirect_uri)],
    )
    .await;
    assert_eq!(
        (status, oauth_error(&body)),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    // An API key client.
    let (status, body) = json(
        app.client
            .post(app.url(TOKEN))
            .basic_auth(&app.owner.api_key_id, Some(&app.owner.api_key))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("code_verifier", pkce.verifier.as_str()),
                ("redirect_uri", client.redirect_uri.as_str()),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, oauth_error(&body)),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    // Another redirect URI than the authorization request's.
    let (status, body) = exchange(
        &app,
        "default",
        &client,
        &code,
        &pkce.verifier,
        &[("redirect_uri", "https://agent.example/cb/")],
    )
    .await;
    assert_eq!(
        (status, oauth_error(&body)),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    // Another organization's token endpoint does not know the code.
    app.create_org("acme").await;
    let (status, body) = exchange(&app, "acme", &client, &code, &pkce.verifier, &[]).await;
    assert!(status.is_client_error(), "{body}");
    // Unknown and malformed codes.
    for bogus in ["ac_", "nope", &format!("ac_{}", "A".repeat(43))] {
        let (status, body) = exchange(&app, "default", &client, bogus, &pkce.verifier, &[]).await;
        assert_eq!(
            (status, oauth_error(&body)),
            (StatusCode::BAD_REQUEST, "invalid_grant"),
            "{bogus}"
        );
    }
    // None of that used the code: 59 seconds later it still works.
    app.clock.advance(Duration::from_secs(59));
    let (status, body) = exchange(&app, "default", &client, &code, &pkce.verifier, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // 61 seconds after its approval a code is expired.
    let pkce = Pkce::new();
    let code = approve(&app, "default", &person, &request(&client, &pkce, &[])).await;
    app.clock.advance(Duration::from_secs(61));
    let (status, body) = exchange(&app, "default", &client, &code, &pkce.verifier, &[]).await;
    assert_eq!(
        (status, oauth_error(&body)),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
}

#[tokio::test]
async fn a_second_use_of_a_code_is_refused_and_revokes_what_the_first_issued() {
    let app = spawn_app().await;
    let client = public_client(&app).await;
    let person = sign_in(&app, "default", &app.owner.user_id).await;
    let pkce = Pkce::new();
    let code = approve(&app, "default", &person, &request(&client, &pkce, &[])).await;
    let (status, first) = exchange(&app, "default", &client, &code, &pkce.verifier, &[]).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let access = first["access_token"].as_str().unwrap();
    assert_eq!(
        json(app.me("default", access).await).await.0,
        StatusCode::OK
    );

    let (status, again) = exchange(&app, "default", &client, &code, &pkce.verifier, &[]).await;
    assert_eq!(
        (status, oauth_error(&again)),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    // The session the code opened is over: its refresh token at once, its access token
    // within the revocation window.
    let (status, body) = refresh(
        &app,
        "default",
        Some(&client),
        first["refresh_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(
        (status, oauth_error(&body)),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    app.clock.advance(Duration::from_secs(6));
    let (status, body) = json(app.me("default", access).await).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNAUTHORIZED, "invalid_token")
    );
    let events = app.audit_events("default").await;
    let reuse = events
        .iter()
        .find(|e| e.action == "authorization_code.reused")
        .expect("audited");
    assert_eq!(
        reuse.target_id.as_ref(),
        first["session_id"].as_str().map(str::to_owned).as_ref()
    );
    assert_eq!(reuse.outcome, "failure");
    // A third use is refused the same way.
    let (status, body) = exchange(&app, "default", &client, &code, &pkce.verifier, &[]).await;
    assert_eq!(
        (status, oauth_error(&body)),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
}

#[tokio::test]
async fn of_concurrent_exchanges_of_one_code_exactly_one_succeeds() {
    const ROUNDS: usize = 20;
    const RACERS: usize = 2;
    let app = Arc::new(spawn_app().await);
    let client = public_client(&app).await;
    let person = sign_in(&app, "default", &app.owner.user_id).await;
    for round in 0..ROUNDS {
        let pkce = Pkce::new();
        let code = approve(&app, "default", &person, &request(&client, &pkce, &[])).await;
        let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
        let racers: Vec<_> = (0..RACERS)
            .map(|_| {
                let (app, client, code, verifier, barrier) = (
                    app.clone(),
                    client.clone(),
                    code.clone(),
                    pkce.verifier.clone(),
                    barrier.clone(),
                );
                tokio::spawn(async move {
                    barrier.wait().await;
                    exchange(&app, "default", &client, &code, &verifier, &[]).await
                })
            })
            .collect();
        let mut won = Vec::new();
        for racer in racers {
            let (status, body) = racer.await.unwrap();
            match status {
                StatusCode::OK => won.push(body),
                _ => assert_eq!(oauth_error(&body), "invalid_grant", "round {round}: {body}"),
            }
        }
        assert_eq!(won.len(), 1, "round {round}: exactly one exchange succeeds");
        // The loser was a second use: the winner's session is revoked, whichever came first.
        let (status, body) = refresh(
            &app,
            "default",
            Some(&client),
            won[0]["refresh_token"].as_str().unwrap(),
        )
        .await;
        assert_eq!(
            (status, oauth_error(&body)),
            (StatusCode::BAD_REQUEST, "invalid_grant"),
            "round {round}"
        );
    }
}

async fn exchange_with_proof(
    app: &crate::helpers::TestApp,
    client: &Client,
    code: &str,
    verifier: &str,
    key: Option<&DpopKey>,
) -> (StatusCode, serde_json::Value) {
    let proof = key.map(|k| k.proof(app, "POST", TOKEN, None));
    json(
        exchange_raw(
            app,
            "default",
            client,
            code,
            verifier,
            &[],
            proof.as_deref(),
        )
        .await,
    )
    .await
}

#[tokio::test]
async fn a_proof_binds_the_tokens_and_dpop_jkt_binds_the_code_to_its_key() {
    let app = spawn_app().await;
    let client = public_client(&app).await;
    let person = sign_in(&app, "default", &app.owner.user_id).await;
    let key = DpopKey::es256();
    let other = DpopKey::es256();

    // Without dpop_jkt: a proof at the token request binds the tokens, as at other grants.
    let pkce = Pkce::new();
    let code = approve(&app, "default", &person, &request(&client, &pkce, &[])).await;
    let (status, body) =
        exchange_with_proof(&app, &client, &code, &pkce.verifier, Some(&key)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    assert_eq!(
        claims_of(body["access_token"].as_str().unwrap())["cnf"]["jkt"],
        key.thumbprint().as_str()
    );
    // Its refresh needs a proof by the same key.
    let (status, err) = refresh(
        &app,
        "default",
        Some(&client),
        body["refresh_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(
        (status, oauth_error(&err)),
        (StatusCode::BAD_REQUEST, "invalid_dpop_proof")
    );

    // With dpop_jkt (RFC 9449 §10): only a proof by that key redeems the code.
    let pkce = Pkce::new();
    let thumbprint = key.thumbprint();
    let code = approve(
        &app,
        "default",
        &person,
        &request(&client, &pkce, &[("dpop_jkt", &thumbprint)]),
    )
    .await;
    for (name, proof_key) in [("no proof", None), ("another key", Some(&other))] {
        let (status, err) =
            exchange_with_proof(&app, &client, &code, &pkce.verifier, proof_key).await;
        assert_eq!(
            (status, oauth_error(&err)),
            (StatusCode::BAD_REQUEST, "invalid_dpop_proof"),
            "{name}"
        );
    }
    let (status, body) =
        exchange_with_proof(&app, &client, &code, &pkce.verifier, Some(&key)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        claims_of(body["access_token"].as_str().unwrap())["cnf"]["jkt"],
        thumbprint.as_str()
    );
}

#[tokio::test]
async fn an_organization_that_requires_dpop_refuses_an_unbound_exchange() {
    let app = spawn_app().await;
    let client = public_client(&app).await;
    keygate::admin::set_dpop_policy(&app.state.storage, "default", Some(true), None)
        .await
        .unwrap();
    app.state.directory.orgs_changed();
    let person = sign_in(&app, "default", &app.owner.user_id).await;
    let pkce = Pkce::new();
    let code = approve(&app, "default", &person, &request(&client, &pkce, &[])).await;
    let (status, err) = exchange_with_proof(&app, &client, &code, &pkce.verifier, None).await;
    assert_eq!(
        (status, oauth_error(&err)),
        (StatusCode::BAD_REQUEST, "invalid_dpop_proof")
    );
    let key = DpopKey::es256();
    let (status, body) =
        exchange_with_proof(&app, &client, &code, &pkce.verifier, Some(&key)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "DPoP");
}
