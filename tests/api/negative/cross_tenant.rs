//! One organization's ids, tokens and clients used at another's endpoints: foreign ids are
//! 404 and change nothing, listing filters naming foreign ids match nothing, and foreign
//! refresh tokens and clients are refused at the token and revocation endpoints (RFC 6749
//! §5.2, RFC 7009 §2.1–2.2) without touching the tokens of their own organization.

use keygate::types::Role;
use reqwest::StatusCode;
use serde_json::json;

use super::{Client, client_credentials, expect_oauth_error, issuer_body, oauth, refresh};
use crate::admin_helpers::Session;
use crate::helpers::{Credentials, TestApp, spawn_app};

/// Organization A is `default` (its owner), B is `acme` (its owner and an admin).
async fn two_orgs(app: &TestApp) -> (Session, Credentials, Session) {
    let a_owner = app.session(&app.owner.clone()).await;
    let b_owner = app.create_org("acme").await;
    let b_admin = app
        .session(&app.create_user("acme", Role::Admin).await)
        .await;
    (a_owner, b_owner, b_admin)
}

#[tokio::test]
async fn another_orgs_grant_and_issuer_ids_are_not_found_and_stay_as_they_were() {
    let app = spawn_app().await;
    let (a_owner, b_owner, b_admin) = two_orgs(&app).await;
    let b_owner = app.session(&b_owner).await;

    // A lets B's users in as members, and trusts a provider.
    let grant = app
        .post_as(
            &a_owner.token,
            "/v1/default/cross_org_grants",
            &json!({"source_org": "acme", "role": "member"}),
        )
        .await;
    grant.expect(StatusCode::CREATED);
    let grant_id = grant.str("id");
    let issuer = app
        .post_as(
            &a_owner.token,
            "/v1/default/trusted_issuers",
            &issuer_body("https://idp-a.example"),
        )
        .await;
    issuer.expect(StatusCode::CREATED);
    let issuer_id = issuer.str("id");

    // B's owner and admin, each with every scope, name A's ids at B's paths.
    for b in [&b_owner, &b_admin] {
        for path in [
            format!("/v1/acme/cross_org_grants/{grant_id}"),
            format!("/v1/acme/trusted_issuers/{issuer_id}"),
        ] {
            app.get_as(&b.token, &path)
                .await
                .expect_error(StatusCode::NOT_FOUND, "not_found");
            let deleted = app.delete_as(&b.token, &path).await;
            if b.creds.user_id == b_admin.creds.user_id && path.contains("trusted_issuers") {
                // Only owners change providers: the admin is refused before any look-up.
                deleted.expect_error(StatusCode::FORBIDDEN, "permission_denied");
            } else {
                deleted.expect_error(StatusCode::NOT_FOUND, "not_found");
            }
        }
        for listing in ["/v1/acme/cross_org_grants", "/v1/acme/trusted_issuers"] {
            assert!(
                app.list_page(&b.token, listing).await.is_empty(),
                "{listing}"
            );
        }
    }

    // A's grant and provider are as they were, and the grant still lets B's users in.
    let grant_now = app
        .get_as(
            &a_owner.token,
            &format!("/v1/default/cross_org_grants/{grant_id}"),
        )
        .await;
    assert_eq!(
        grant_now.expect(StatusCode::OK),
        grant.expect(StatusCode::CREATED)
    );
    let issuer_now = app
        .get_as(
            &a_owner.token,
            &format!("/v1/default/trusted_issuers/{issuer_id}"),
        )
        .await;
    assert_eq!(
        issuer_now.expect(StatusCode::OK),
        issuer.expect(StatusCode::CREATED)
    );
    let visit = app
        .me_with(
            "default",
            &[
                ("authorization", &format!("Bearer {}", b_owner.token)),
                ("x-org-id", "acme"),
            ],
        )
        .await;
    assert_eq!(visit.expect(StatusCode::OK)["role"], "member");
}

#[tokio::test]
async fn listing_filters_naming_another_orgs_ids_match_nothing() {
    let app = spawn_app().await;
    let (a_owner, b_owner, _b_admin) = two_orgs(&app).await;
    let b_owner = app.session(&b_owner).await;
    let a_member = app.create_user("default", Role::Member).await;
    let a_session = app.session(&a_member).await;
    app.flush_audit().await;

    let filters = [
        format!("/api_keys?user_id={}", a_member.user_id),
        format!("/sessions?user_id={}", a_member.user_id),
        format!("/sessions?api_key_id={}", a_member.api_key_id),
        format!("/audit_events?actor={}", a_member.user_id),
        format!("/audit_events?actor={}", a_member.api_key_id),
        format!("/audit_events?target_id={}", a_member.user_id),
    ];
    for filter in &filters {
        // At A the filter finds the member's items: it means something.
        let at_a = app
            .list_page(&a_owner.token, &format!("/v1/default{filter}"))
            .await;
        assert!(!at_a.is_empty(), "{filter} at A");
        // At B it matches nothing (200, an empty page), whoever asks.
        let at_b = app
            .get_as(&b_owner.token, &format!("/v1/acme{filter}"))
            .await;
        let body = at_b.expect(StatusCode::OK);
        assert_eq!(body["data"], json!([]), "{filter} at B: {body}");
        assert!(body["next_cursor"].is_null(), "{body}");
    }

    // A member of B naming anyone else's id in a filter is refused (docs/admin-api.md).
    let b_member = app
        .session(&app.create_user("acme", Role::Member).await)
        .await;
    app.get_as(
        &b_member.token,
        &format!("/v1/acme/api_keys?user_id={}", a_member.user_id),
    )
    .await
    .expect_error(StatusCode::FORBIDDEN, "permission_denied");

    // A's objects by id at B's paths: 404, and nothing changes.
    for path in [
        format!("/v1/acme/users/{}", a_member.user_id),
        format!("/v1/acme/api_keys/{}", a_member.api_key_id),
    ] {
        app.get_as(&b_owner.token, &path)
            .await
            .expect_error(StatusCode::NOT_FOUND, "not_found");
    }
    for path in [
        format!("/v1/acme/users/{}", a_member.user_id),
        format!("/v1/acme/api_keys/{}", a_member.api_key_id),
        format!("/v1/acme/sessions/{}", a_session.session_id),
    ] {
        app.delete_as(&b_owner.token, &path)
            .await
            .expect_error(StatusCode::NOT_FOUND, "not_found");
    }
    app.patch_as(
        &b_owner.token,
        &format!("/v1/acme/users/{}", a_member.user_id),
        &json!({"disabled": true}),
    )
    .await
    .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.post_as(
        &b_owner.token,
        &format!("/v1/acme/api_keys/{}/rotate", a_member.api_key_id),
        &json!({}),
    )
    .await
    .expect_error(StatusCode::NOT_FOUND, "not_found");
    // A key for A's user, made at B: "not a user of this organization".
    app.post_as(
        &b_owner.token,
        "/v1/acme/api_keys",
        &json!({"name": "x", "user_id": a_member.user_id}),
    )
    .await
    .expect_error(StatusCode::NOT_FOUND, "not_found");

    // The member of A, their key and their session work as before.
    let (status, _) = crate::helpers::json(app.me("default", &a_session.token).await).await;
    assert_eq!(status, StatusCode::OK);
    refresh(&app, "default", &a_session.refresh_token)
        .await
        .expect(StatusCode::OK);
    app.session(&a_member).await;
    assert_eq!(
        app.list_page(
            &a_owner.token,
            &format!("/v1/default/api_keys?user_id={}", a_member.user_id)
        )
        .await
        .len(),
        1,
        "no key was rotated in"
    );
}

#[tokio::test]
async fn another_orgs_refresh_token_and_client_are_refused_at_the_token_endpoint() {
    let app = spawn_app().await;
    let (_a_owner, b_owner, _b_admin) = two_orgs(&app).await;
    let a = app.owner.clone();
    let issued = client_credentials(&app, &a, &[]).await;
    let a_access = issued["access_token"].as_str().unwrap().to_owned();
    let a_refresh = issued["refresh_token"].as_str().unwrap().to_owned();
    let refresh_form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", a_refresh.as_str()),
    ];

    // A's refresh token at B: unknown there (RFC 6749 §5.2 invalid_grant).
    expect_oauth_error(
        &refresh(&app, "acme", &a_refresh).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    expect_oauth_error(
        &oauth(
            &app,
            "acme",
            "token",
            Client::Basic(&b_owner),
            &refresh_form,
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    // A's client at B: not a client of B (invalid_client, 401; a Basic challenge when it
    // authenticated with Basic, RFC 6749 §5.2).
    for (form, grant) in [
        (
            vec![("grant_type", "client_credentials")],
            "client_credentials",
        ),
        (refresh_form.to_vec(), "refresh_token"),
    ] {
        let basic = oauth(&app, "acme", "token", Client::Basic(&a), &form).await;
        expect_oauth_error(&basic, StatusCode::UNAUTHORIZED, "invalid_client");
        assert_eq!(
            basic.header("www-authenticate").as_deref(),
            Some("Basic realm=\"keygate\""),
            "{grant}"
        );
        let post = oauth(&app, "acme", "token", Client::Post(&a), &form).await;
        expect_oauth_error(&post, StatusCode::UNAUTHORIZED, "invalid_client");
    }

    // Nothing was consumed or revoked: A's tokens still work at A.
    let (status, body) = crate::helpers::json(app.me("default", &a_access).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    refresh(&app, "default", &a_refresh)
        .await
        .expect(StatusCode::OK);
}

#[tokio::test]
async fn another_orgs_client_cannot_revoke_and_another_orgs_tokens_are_untouched() {
    let app = spawn_app().await;
    let (_a_owner, b_owner, _b_admin) = two_orgs(&app).await;
    let a = app.owner.clone();
    let issued = client_credentials(&app, &a, &[]).await;
    let a_access = issued["access_token"].as_str().unwrap().to_owned();
    let a_refresh = issued["refresh_token"].as_str().unwrap().to_owned();

    for token in [&a_refresh, &a_access] {
        // A's client at B's revocation endpoint: not a client of B.
        let reply = oauth(
            &app,
            "acme",
            "revoke",
            Client::Basic(&a),
            &[("token", token)],
        )
        .await;
        expect_oauth_error(&reply, StatusCode::UNAUTHORIZED, "invalid_client");
        // B's client at A's revocation endpoint: not a client of A.
        let reply = oauth(
            &app,
            "default",
            "revoke",
            Client::Basic(&b_owner),
            &[("token", token)],
        )
        .await;
        expect_oauth_error(&reply, StatusCode::UNAUTHORIZED, "invalid_client");
        // B's client at B: the token is not one of B's, which RFC 7009 §2.2 answers with 200
        // and no effect.
        let reply = oauth(
            &app,
            "acme",
            "revoke",
            Client::Post(&b_owner),
            &[("token", token)],
        )
        .await;
        reply.expect(StatusCode::OK);
    }

    // A's tokens still work at A.
    let (status, body) = crate::helpers::json(app.me("default", &a_access).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    refresh(&app, "default", &a_refresh)
        .await
        .expect(StatusCode::OK);
}
