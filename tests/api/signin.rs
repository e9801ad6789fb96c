//! `POST /v1/{org}/user/signin_with_api_key`: the success body and every failure.

use std::time::Duration;

use keygate::types::Role;
use reqwest::StatusCode;

use crate::helpers::{claims_of, error_code, json, spawn_app};

/// (name, org in the path, x-api-key, x-api-key-id, x-user-id, expected status, expected code)
type Case<'a> = (
    &'a str,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    StatusCode,
    &'a str,
);

#[tokio::test]
async fn signin_returns_the_documented_body_and_no_store_headers() {
    let app = spawn_app().await;
    let o = &app.owner;
    let res = app
        .signin_raw(
            &o.org,
            Some(&o.api_key),
            Some(&o.api_key_id),
            Some(&o.user_id),
        )
        .await;
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["pragma"], "no-cache");
    assert!(res.headers().contains_key("x-request-id"));
    let (status, body) = json(res).await;
    assert_eq!(status, StatusCode::OK);

    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    let expires_at = chrono::DateTime::parse_from_rfc3339(body["expires_at"].as_str().unwrap())
        .expect("expires_at is RFC 3339");
    assert_eq!(expires_at.timestamp(), app.now().timestamp() + 900);
    assert!(body["refresh_token"].as_str().unwrap().starts_with("rt_"));
    let session_id = body["session_id"].as_str().unwrap();
    assert!(session_id.starts_with("ses_"));
    assert_eq!(
        body["scope"],
        "audit:read clients:read clients:write keys:read keys:write resources:read resources:write sessions:write users:read users:write"
    );
    let claims = claims_of(body["id_token"].as_str().unwrap());
    assert_eq!(claims["sid"], session_id);
    assert_eq!(claims["sub"], o.user_id.as_str());

    // The ignored compatibility header changes nothing.
    let res = app
        .client
        .post(app.url("/v1/default/user/signin_with_api_key"))
        .header("x-api-key", &o.api_key)
        .header("x-api-key-id", &o.api_key_id)
        .header("x-user-id", &o.user_id)
        .header("x-mongo-cluster-name", "whatever")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn every_malformed_or_wrong_credential_fails_with_its_code_and_is_audited() {
    let app = spawn_app().await;
    let o = app.owner.clone();
    let other = app.create_user("default", Role::Member).await;
    let acme = app.create_org("acme").await;
    let mut bad_checksum = o.api_key.clone();
    let last = bad_checksum.pop().unwrap();
    bad_checksum.push(if last == 'a' { 'b' } else { 'a' });
    let wellformed_unknown =
        keygate::keys::api_key::PlainApiKey::generate(keygate::types::Environment::Live);

    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        ("no x-api-key", "default", None, Some(&o.api_key_id), Some(&o.user_id), StatusCode::BAD_REQUEST, "missing_api_key"),
        ("no x-api-key-id", "default", Some(&o.api_key), None, Some(&o.user_id), StatusCode::BAD_REQUEST, "missing_api_key"),
        ("empty x-api-key", "default", Some(""), Some(&o.api_key_id), Some(&o.user_id), StatusCode::BAD_REQUEST, "missing_api_key"),
        ("no x-user-id", "default", Some(&o.api_key), Some(&o.api_key_id), None, StatusCode::BAD_REQUEST, "missing_user_id"),
        ("unknown organization", "nope", Some(&o.api_key), Some(&o.api_key_id), Some(&o.user_id), StatusCode::NOT_FOUND, "unknown_organization"),
        ("impossible slug", "No_Org", Some(&o.api_key), Some(&o.api_key_id), Some(&o.user_id), StatusCode::NOT_FOUND, "unknown_organization"),
        ("bad checksum", "default", Some(&bad_checksum), Some(&o.api_key_id), Some(&o.user_id), StatusCode::UNAUTHORIZED, "invalid_api_key"),
        ("not a key at all", "default", Some("hunter2"), Some(&o.api_key_id), Some(&o.user_id), StatusCode::UNAUTHORIZED, "invalid_api_key"),
        ("unknown secret", "default", Some(wellformed_unknown.expose()), Some(&o.api_key_id), Some(&o.user_id), StatusCode::UNAUTHORIZED, "invalid_api_key"),
        ("unknown key id", "default", Some(&o.api_key), Some("key_000000000000000000000000"), Some(&o.user_id), StatusCode::UNAUTHORIZED, "invalid_api_key"),
        ("malformed key id", "default", Some(&o.api_key), Some("not-a-key-id"), Some(&o.user_id), StatusCode::UNAUTHORIZED, "invalid_api_key"),
        ("secret of another key", "default", Some(&other.api_key), Some(&o.api_key_id), Some(&o.user_id), StatusCode::UNAUTHORIZED, "invalid_api_key"),
        ("key of org acme used at default", "default", Some(&acme.api_key), Some(&acme.api_key_id), Some(&acme.user_id), StatusCode::UNAUTHORIZED, "invalid_api_key"),
        ("key of default used at acme", "acme", Some(&o.api_key), Some(&o.api_key_id), Some(&o.user_id), StatusCode::UNAUTHORIZED, "invalid_api_key"),
        ("unknown user", "default", Some(&o.api_key), Some(&o.api_key_id), Some("usr_000000000000000000000000"), StatusCode::UNAUTHORIZED, "invalid_api_key"),
        ("user of another org", "default", Some(&o.api_key), Some(&o.api_key_id), Some(&acme.user_id), StatusCode::UNAUTHORIZED, "invalid_api_key"),
    ];
    for (name, org, key, id, user, status, code) in &cases {
        let (got, body) = json(app.signin_raw(org, *key, *id, *user).await).await;
        assert_eq!(got, *status, "{name}: {body}");
        assert_eq!(error_code(&body), *code, "{name}");
    }

    // A failure is stored only when it names a key of the organization (then with that
    // key's id, verified); the others are counted, not stored (docs/security.md).
    let events = app.audit_events("default").await;
    let failures: Vec<_> = events
        .iter()
        .filter(|e| e.action == "signin.failed")
        .collect();
    let tied_to_a_key = [
        "unknown secret",
        "secret of another key",
        "unknown user",
        "user of another org",
    ];
    assert_eq!(failures.len(), tied_to_a_key.len(), "{events:#?}");
    for e in &failures {
        assert_eq!(e.outcome, "failure");
        assert!(e.reason.is_some());
        assert!(e.request_id.is_some());
        assert_eq!(e.ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(e.actor_key_id.as_deref(), Some(o.api_key_id.as_str()));
    }
    let dump = format!("{events:?}");
    for secret in [&o.api_key, &other.api_key, &acme.api_key, &bad_checksum] {
        assert!(!dump.contains(secret.as_str()));
    }
    let unrecorded = app
        .state
        .audit
        .counters()
        .unrecorded_failures
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(unrecorded as usize, cases.len() - tied_to_a_key.len());

    // The server keeps serving.
    app.signin(&o).await;
    let events = app.audit_events("default").await;
    let ok = events
        .iter()
        .find(|e| e.action == "signin.succeeded")
        .expect("success audited");
    assert_eq!(ok.outcome, "success");
    assert_eq!(ok.actor_key_id.as_deref(), Some(o.api_key_id.as_str()));
    assert_eq!(ok.actor_user_id.as_deref(), Some(o.user_id.as_str()));
}

#[tokio::test]
async fn revoked_and_expired_keys_fail_with_their_own_codes_but_only_with_the_right_secret() {
    let app = spawn_app().await;
    let o = app.owner.clone();

    let revoked = app.create_key("default", &o.user_id).await;
    app.signin(&revoked).await;
    let org = keygate::admin::find_org(&app.state.storage, "default")
        .await
        .unwrap();
    keygate::admin::revoke_key(
        &app.state.storage,
        app.clock.as_ref(),
        &org,
        &revoked.api_key_id,
    )
    .await
    .unwrap();
    let (status, body) = json(
        app.signin_raw(
            "default",
            Some(&revoked.api_key),
            Some(&revoked.api_key_id),
            Some(&o.user_id),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "revoked_api_key");
    // Without the secret, a revoked key is just an invalid credential.
    let (status, body) = json(
        app.signin_raw(
            "default",
            Some(&o.api_key),
            Some(&revoked.api_key_id),
            Some(&o.user_id),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "invalid_api_key");

    let short = app
        .create_key_for("default", &o.user_id, Some(Duration::from_secs(3600)))
        .await;
    app.signin(&short).await;
    app.clock.advance(Duration::from_secs(3600));
    let (status, body) = json(
        app.signin_raw(
            "default",
            Some(&short.api_key),
            Some(&short.api_key_id),
            Some(&o.user_id),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "expired_api_key");

    let reasons: Vec<_> = app
        .audit_events("default")
        .await
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    assert!(reasons.contains(&"revoked_api_key".to_owned()));
    assert!(reasons.contains(&"expired_api_key".to_owned()));
}

#[tokio::test]
async fn a_disabled_user_cannot_sign_in() {
    let app = spawn_app().await;
    let member = app.create_user("default", Role::Member).await;
    app.signin(&member).await;
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
    let (status, body) = json(
        app.signin_raw(
            "default",
            Some(&member.api_key),
            Some(&member.api_key_id),
            Some(&member.user_id),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "invalid_api_key");
}

#[tokio::test]
async fn acting_for_another_user_needs_an_owner_or_admin_and_yields_an_act_claim() {
    let app = spawn_app().await;
    let owner = app.owner.clone();
    let admin = app.create_user("default", Role::Admin).await;
    let member = app.create_user("default", Role::Member).await;
    let service = app.create_user("default", Role::Service).await;

    // The owner acts for a member: the token is the member's, with the owner as `act`.
    let body = app.signin_as(&owner, &member.user_id).await;
    let claims = claims_of(body["id_token"].as_str().unwrap());
    assert_eq!(claims["sub"], member.user_id.as_str());
    assert_eq!(claims["act"]["sub"], owner.user_id.as_str());
    assert_eq!(claims["client_id"], owner.api_key_id.as_str());
    let (status, me) = json(app.me("default", body["id_token"].as_str().unwrap()).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["user_id"], member.user_id.as_str());
    assert_eq!(me["act"]["sub"], owner.user_id.as_str());

    // An admin acts for a service account and for another admin, never for the owner.
    app.signin_as(&admin, &service.user_id).await;
    let (status, body) = json(
        app.signin_raw(
            "default",
            Some(&admin.api_key),
            Some(&admin.api_key_id),
            Some(&owner.user_id),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(&body), "permission_denied");

    // Members and service accounts act only as themselves.
    for who in [&member, &service] {
        let (status, body) = json(
            app.signin_raw(
                "default",
                Some(&who.api_key),
                Some(&who.api_key_id),
                Some(&owner.user_id),
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(error_code(&body), "permission_denied");
    }
    // Signing in as oneself carries no `act`.
    let claims = claims_of(app.signin(&member).await["id_token"].as_str().unwrap());
    assert!(claims.get("act").is_none());
}
