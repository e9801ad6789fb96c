//! Cross-organization access over HTTP (README, "Cross-organization access"): grants, `Authorization: Basic
//! base64({org}_{user_id}:{token})`, Bearer + `X-ORG-ID`, role capping, audit in both
//! organizations, the separate rate limit, and every malformed Basic header.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keygate::types::Role;
use reqwest::StatusCode;
use serde_json::json;

use crate::admin_helpers::{Reply, Session};
use crate::dpop_flow::bound_token;
use crate::dpop_key::DpopKey;
use crate::helpers::{TestApp, spawn_app, spawn_app_with};

fn basic(org: &str, user_id: &str, token: &str) -> String {
    format!(
        "Basic {}",
        STANDARD.encode(format!("{org}_{user_id}:{token}"))
    )
}

/// `acme`, its owner's session, and a member of `default` with a session.
async fn two_orgs(app: &TestApp) -> (Session, Session) {
    let acme_owner = app.session(&app.create_org("acme").await).await;
    let visitor = app
        .session(&app.create_user("default", Role::Member).await)
        .await;
    (acme_owner, visitor)
}

async fn grant(app: &TestApp, by: &Session, body: serde_json::Value) -> String {
    let r = app
        .post_as(&by.token, "/v1/acme/cross_org_grants", &body)
        .await;
    r.expect(StatusCode::CREATED);
    r.str("id")
}

#[tokio::test]
async fn basic_same_org_is_plain_access() {
    let app = spawn_app().await;
    let me = app.session(&app.owner.clone()).await;
    let r = app
        .me_with(
            "default",
            &[(
                "authorization",
                &basic("default", &me.creds.user_id, &me.token),
            )],
        )
        .await;
    r.expect(StatusCode::OK);
    assert_eq!(r.body["user_id"], me.creds.user_id.as_str());
    assert_eq!(r.body["org"], "default");
    assert_eq!(r.body["home_org"], "default");
    assert_eq!(r.body["role"], "owner");
    assert_eq!(r.body["auth_method"], "basic");
}

#[tokio::test]
async fn basic_cross_org_needs_a_grant_and_gets_the_granted_role() {
    let app = spawn_app().await;
    let (acme_owner, visitor) = two_orgs(&app).await;
    let header = basic("default", &visitor.creds.user_id, &visitor.token);

    // No grant: the credential is good, the access is not.
    app.me_with("acme", &[("authorization", &header)])
        .await
        .expect_error(StatusCode::FORBIDDEN, "permission_denied");

    // A grant naming the user.
    let id = grant(
        &app,
        &acme_owner,
        json!({"source_org": "default", "user_id": visitor.creds.user_id, "role": "member"}),
    )
    .await;
    let r = app.me_with("acme", &[("authorization", &header)]).await;
    r.expect(StatusCode::OK);
    assert_eq!(r.body["user_id"], visitor.creds.user_id.as_str());
    assert_eq!(r.body["org"], "acme");
    assert_eq!(r.body["home_org"], "default");
    assert_eq!(r.body["role"], "member");
    assert_eq!(r.body["auth_method"], "basic_cross_org");

    // Another user of `default` is not covered by it.
    let other = app
        .session(&app.create_user("default", Role::Member).await)
        .await;
    let other_header = basic("default", &other.creds.user_id, &other.token);
    app.me_with("acme", &[("authorization", &other_header)])
        .await
        .expect_error(StatusCode::FORBIDDEN, "permission_denied");

    // Revoked: refused at once on this node.
    app.delete_as(
        &acme_owner.token,
        &format!("/v1/acme/cross_org_grants/{id}"),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    app.me_with("acme", &[("authorization", &header)])
        .await
        .expect_error(StatusCode::FORBIDDEN, "permission_denied");
    // Revoking again changes nothing.
    app.delete_as(
        &acme_owner.token,
        &format!("/v1/acme/cross_org_grants/{id}"),
    )
    .await
    .expect(StatusCode::NO_CONTENT);

    // A grant for the whole organization covers every user of it.
    grant(
        &app,
        &acme_owner,
        json!({"source_org": "default", "role": "service"}),
    )
    .await;
    for h in [&header, &other_header] {
        let r = app.me_with("acme", &[("authorization", h)]).await;
        r.expect(StatusCode::OK);
        assert_eq!(r.body["role"], "service");
    }
}

#[tokio::test]
async fn a_user_grant_wins_over_the_org_wide_one_and_grants_expire() {
    let app = spawn_app().await;
    let (acme_owner, visitor) = two_orgs(&app).await;
    let header = basic("default", &visitor.creds.user_id, &visitor.token);
    grant(
        &app,
        &acme_owner,
        json!({"source_org": "default", "role": "service"}),
    )
    .await;
    let expires = (app.now() + chrono::Duration::minutes(1)).to_rfc3339();
    grant(
        &app,
        &acme_owner,
        json!({"source_org": "default", "user_id": visitor.creds.user_id, "role": "admin", "expires_at": expires}),
    )
    .await;
    let r = app.me_with("acme", &[("authorization", &header)]).await;
    r.expect(StatusCode::OK);
    assert_eq!(r.body["role"], "admin");

    // Past its expiry (and the 5 s every node may lag), the user grant is gone and the
    // org-wide one applies again.
    app.clock.advance(Duration::from_secs(66));
    tokio::time::sleep(Duration::from_millis(4100)).await;
    let fresh = app.session(&visitor.creds).await;
    let header = basic("default", &visitor.creds.user_id, &fresh.token);
    let r = app.me_with("acme", &[("authorization", &header)]).await;
    r.expect(StatusCode::OK);
    assert_eq!(r.body["role"], "service");
}

#[tokio::test]
async fn an_expired_grant_lets_nobody_in() {
    let app = spawn_app().await;
    let (acme_owner, visitor) = two_orgs(&app).await;
    let expires = (app.now() + chrono::Duration::seconds(30)).to_rfc3339();
    grant(
        &app,
        &acme_owner,
        json!({"source_org": "default", "user_id": visitor.creds.user_id, "role": "member", "expires_at": expires}),
    )
    .await;
    app.clock.advance(Duration::from_secs(31));
    let header = basic("default", &visitor.creds.user_id, &visitor.token);
    app.me_with("acme", &[("authorization", &header)])
        .await
        .expect_error(StatusCode::FORBIDDEN, "permission_denied");
    // And it is no longer listed.
    let list = app
        .get_as(&acme_owner.token, "/v1/acme/cross_org_grants")
        .await;
    list.expect(StatusCode::OK);
    assert_eq!(
        list.body["data"].as_array().unwrap().len(),
        0,
        "{}",
        list.body
    );
}

#[tokio::test]
async fn malformed_basic_headers_are_401_with_a_basic_challenge() {
    let app = spawn_app().await;
    let me = app.session(&app.owner.clone()).await;
    let user = me.creds.user_id.as_str();
    let b64 = |s: &[u8]| format!("Basic {}", STANDARD.encode(s));
    let cases: Vec<(&str, String)> = vec![
        ("not base64", "Basic !!!not-base64!!!".into()),
        (
            "base64 without padding",
            format!(
                "Basic {}",
                STANDARD
                    .encode(format!("default_{user}:{}", me.token))
                    .trim_end_matches('=')
                    .to_owned()
                    + "x"
            ),
        ),
        ("no colon", b64(format!("default_{user}").as_bytes())),
        (
            "no underscore",
            b64(format!("default{user}:{}", me.token).as_bytes()),
        ),
        ("empty org", b64(format!("_{user}:{}", me.token).as_bytes())),
        (
            "empty user",
            b64(format!("default_:{}", me.token).as_bytes()),
        ),
        ("empty token", b64(format!("default_{user}:").as_bytes())),
        (
            "not a slug",
            b64(format!("De.fault_{user}:{}", me.token).as_bytes()),
        ),
        ("not UTF-8", b64(b"default_usr\xff\xfe:abc")),
        ("empty credential", "Basic ".into()),
        (
            "over-long",
            b64(format!("default_{user}:{}", "a".repeat(9_000)).as_bytes()),
        ),
        (
            "a token that is not a token",
            b64(format!("default_{user}:not a token").as_bytes()),
        ),
        (
            "the token of someone else",
            basic("default", "usr_someoneelse0000000000000", &me.token),
        ),
    ];
    for (name, header) in &cases {
        let r = app.me_with("default", &[("authorization", header)]).await;
        r.expect_error(StatusCode::UNAUTHORIZED, "invalid_token");
        assert_eq!(
            r.header("www-authenticate").as_deref(),
            Some("Basic realm=\"keygate\""),
            "{name}"
        );
    }
    // The server keeps serving.
    app.me_with(
        "default",
        &[("authorization", &basic("default", user, &me.token))],
    )
    .await
    .expect(StatusCode::OK);
}

#[tokio::test]
async fn x_org_id_with_bearer_follows_the_same_rule() {
    let app = spawn_app().await;
    let (acme_owner, visitor) = two_orgs(&app).await;
    let bearer = format!("Bearer {}", visitor.token);

    // Agreeing with the token, without a grant: refused; with one: admitted.
    app.me_with(
        "acme",
        &[("authorization", &bearer), ("x-org-id", "default")],
    )
    .await
    .expect_error(StatusCode::FORBIDDEN, "permission_denied");
    grant(
        &app,
        &acme_owner,
        json!({"source_org": "default", "user_id": visitor.creds.user_id, "role": "member"}),
    )
    .await;
    let r = app
        .me_with(
            "acme",
            &[("authorization", &bearer), ("x-org-id", "default")],
        )
        .await;
    r.expect(StatusCode::OK);
    assert_eq!(r.body["auth_method"], "bearer_cross_org");
    assert_eq!(r.body["home_org"], "default");
    assert_eq!(r.body["org"], "acme");

    // Disagreeing with the token's organization: 401, whichever organization it names.
    for x_org in ["acme", "other"] {
        app.me_with("acme", &[("authorization", &bearer), ("x-org-id", x_org)])
            .await
            .expect_error(StatusCode::UNAUTHORIZED, "invalid_token");
    }
    // Without X-ORG-ID the token of `default` is simply not a token of `acme`.
    app.me_with("acme", &[("authorization", &bearer)])
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "invalid_token");
    // A malformed X-ORG-ID.
    app.me_with(
        "acme",
        &[("authorization", &bearer), ("x-org-id", "Not A Slug")],
    )
    .await
    .expect_error(StatusCode::UNAUTHORIZED, "invalid_token");
    // Same organization everywhere: plain access.
    let r = app
        .me_with(
            "default",
            &[("authorization", &bearer), ("x-org-id", "default")],
        )
        .await;
    r.expect(StatusCode::OK);
    assert_eq!(r.body["auth_method"], "bearer");
}

#[tokio::test]
async fn a_dpop_bound_token_is_refused_through_basic_and_across_orgs() {
    let app = spawn_app().await;
    let key = DpopKey::es256();
    let token = bound_token(&app, &key).await;
    let owner = app.owner.user_id.clone();
    let r = app
        .me_with(
            "default",
            &[("authorization", &basic("default", &owner, &token))],
        )
        .await;
    r.expect_error(StatusCode::UNAUTHORIZED, "invalid_token");
    assert_eq!(
        r.header("www-authenticate").as_deref(),
        Some("Basic realm=\"keygate\"")
    );

    // As DPoP with X-ORG-ID at another organization: refused before any grant is asked.
    app.create_org("acme").await;
    let proof = key.proof(&app, "GET", "/v1/acme/user/me", Some(&token));
    app.me_with(
        "acme",
        &[
            ("authorization", &format!("DPoP {token}")),
            ("dpop", &proof),
            ("x-org-id", "default"),
        ],
    )
    .await
    .expect_error(StatusCode::UNAUTHORIZED, "invalid_token");
}

#[tokio::test]
async fn a_granted_member_cannot_use_admin_endpoints_an_admin_grant_can() {
    let app = spawn_app().await;
    let (acme_owner, visitor) = two_orgs(&app).await;
    let header = basic("default", &visitor.creds.user_id, &visitor.token);
    let id = grant(
        &app,
        &acme_owner,
        json!({"source_org": "default", "user_id": visitor.creds.user_id, "role": "member"}),
    )
    .await;
    let call = |path: &'static str| {
        let header = header.clone();
        let app = &app;
        async move {
            Reply::from(
                app.client
                    .get(app.url(path))
                    .header("authorization", header)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    call("/v1/acme/audit_events")
        .await
        .expect_error(StatusCode::FORBIDDEN, "permission_denied");
    call("/v1/acme/cross_org_grants")
        .await
        .expect_error(StatusCode::FORBIDDEN, "permission_denied");
    let r = Reply::from(
        app.client
            .post(app.url("/v1/acme/users"))
            .header("authorization", &header)
            .json(&json!({"email": "sneaky@acme.test", "role": "admin"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.expect_error(StatusCode::FORBIDDEN, "permission_denied");
    // As a member it sees only itself among acme's users: nobody, since it is not one.
    let users = call("/v1/acme/users").await;
    users.expect(StatusCode::OK);
    assert_eq!(users.body["data"].as_array().unwrap().len(), 0);

    // Replaced by an admin grant (which only an owner can make), the same user may.
    app.delete_as(
        &acme_owner.token,
        &format!("/v1/acme/cross_org_grants/{id}"),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    grant(
        &app,
        &acme_owner,
        json!({"source_org": "default", "user_id": visitor.creds.user_id, "role": "admin"}),
    )
    .await;
    call("/v1/acme/audit_events").await.expect(StatusCode::OK);
}

#[tokio::test]
async fn only_owners_and_admins_grant_and_only_owners_above_member() {
    let app = spawn_app().await;
    let (acme_owner, visitor) = two_orgs(&app).await;
    let acme_admin = app
        .session(&app.create_user("acme", Role::Admin).await)
        .await;
    let acme_member = app
        .session(&app.create_user("acme", Role::Member).await)
        .await;
    let body = |role: &str| json!({"source_org": "default", "user_id": visitor.creds.user_id, "role": role});
    let path = "/v1/acme/cross_org_grants";

    app.post_as(&acme_member.token, path, &body("member"))
        .await
        .expect_error(StatusCode::FORBIDDEN, "permission_denied");
    app.post_as(&acme_admin.token, path, &body("admin"))
        .await
        .expect_error(StatusCode::FORBIDDEN, "permission_denied");
    let admin_made = app.post_as(&acme_admin.token, path, &body("member")).await;
    admin_made.expect(StatusCode::CREATED);
    assert_eq!(admin_made.body["source_org"], "default");
    assert_eq!(admin_made.body["org"], "acme");
    assert_eq!(
        admin_made.body["created_by"],
        acme_admin.creds.user_id.as_str()
    );
    assert!(admin_made.str("id").starts_with("cog_"));
    app.post_as(&acme_owner.token, path, &body("admin"))
        .await
        .expect(StatusCode::CREATED);

    // An admin cannot end an admin grant either.
    let owner_grants = app.get_as(&acme_owner.token, path).await;
    let admin_grant = owner_grants.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["role"] == "admin")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.delete_as(&acme_admin.token, &format!("{path}/{admin_grant}"))
        .await
        .expect_error(StatusCode::FORBIDDEN, "permission_denied");

    // Invalid grants.
    for (bad, code, status) in [
        (body("owner"), "invalid_request", StatusCode::BAD_REQUEST),
        (
            json!({"source_org": "acme", "role": "member"}),
            "invalid_request",
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"source_org": "nowhere", "role": "member"}),
            "unknown_organization",
            StatusCode::NOT_FOUND,
        ),
        (
            json!({"source_org": "default", "user_id": acme_member.creds.user_id, "role": "member"}),
            "not_found",
            StatusCode::NOT_FOUND,
        ),
        (
            json!({"source_org": "default", "role": "member", "expires_at": "2001-01-01T00:00:00Z"}),
            "invalid_request",
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"source_org": "default", "role": "member", "extra": 1}),
            "invalid_request",
            StatusCode::BAD_REQUEST,
        ),
    ] {
        app.post_as(&acme_owner.token, path, &bad)
            .await
            .expect_error(status, code);
    }
    app.get_as(&acme_owner.token, &format!("{path}/cog_doesnotexist"))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn cross_org_requests_are_audited_in_both_organizations() {
    let app = spawn_app().await;
    let (acme_owner, visitor) = two_orgs(&app).await;
    let header = basic("default", &visitor.creds.user_id, &visitor.token);
    let denied = app.me_with("acme", &[("authorization", &header)]).await;
    grant(
        &app,
        &acme_owner,
        json!({"source_org": "default", "user_id": visitor.creds.user_id, "role": "member"}),
    )
    .await;
    let admitted = app.me_with("acme", &[("authorization", &header)]).await;
    admitted.expect(StatusCode::OK);
    let acme_id = keygate::admin::find_org(&app.state.storage, "acme")
        .await
        .unwrap()
        .id;
    for org in ["acme", "default"] {
        let events: Vec<_> = app
            .audit_events(org)
            .await
            .into_iter()
            .filter(|e| e.action == "cross_org.access")
            .collect();
        assert_eq!(events.len(), 2, "{org}: {events:?}");
        let ok = events
            .iter()
            .find(|e| e.request_id.as_deref() == Some(admitted.request_id().as_str()))
            .unwrap();
        assert_eq!(ok.outcome, "success");
        assert_eq!(
            ok.actor_user_id.as_deref(),
            Some(visitor.creds.user_id.as_str())
        );
        assert_eq!(
            ok.actor_key_id.as_deref(),
            Some(visitor.creds.api_key_id.as_str())
        );
        assert_eq!(ok.target_id.as_deref(), Some(acme_id.as_str()));
        let no = events
            .iter()
            .find(|e| e.request_id.as_deref() == Some(denied.request_id().as_str()))
            .unwrap();
        assert_eq!(no.outcome, "failure");
        assert_eq!(no.reason.as_deref(), Some("permission_denied"));
    }
}

#[tokio::test]
async fn cross_org_traffic_has_its_own_rate_limit_per_source_user() {
    let app = spawn_app_with(|s| {
        s.cross_org.rate_per_second = 1;
        s.cross_org.burst = 3;
    })
    .await;
    let (acme_owner, visitor) = two_orgs(&app).await;
    grant(
        &app,
        &acme_owner,
        json!({"source_org": "default", "role": "member"}),
    )
    .await;
    let header = basic("default", &visitor.creds.user_id, &visitor.token);
    // The limiter runs on the application's clock, which stands still here: exactly the
    // burst goes through.
    let mut replies = Vec::new();
    for _ in 0..6 {
        replies.push(app.me_with("acme", &[("authorization", &header)]).await);
    }
    let statuses: Vec<StatusCode> = replies.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS,
        ]
    );
    for reply in &replies[3..] {
        reply.expect_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    }
    // A second later the allowance has grown by the rate (one request), not more.
    app.clock.advance(Duration::from_secs(1));
    app.me_with("acme", &[("authorization", &header)])
        .await
        .expect(StatusCode::OK);
    app.me_with("acme", &[("authorization", &header)])
        .await
        .expect_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    // Three seconds later, the whole burst again.
    app.clock.advance(Duration::from_secs(3));
    for _ in 0..3 {
        app.me_with("acme", &[("authorization", &header)])
            .await
            .expect(StatusCode::OK);
    }
    app.me_with("acme", &[("authorization", &header)])
        .await
        .expect_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");

    // Another source user has an allowance of its own, and same-org traffic is not limited.
    let other = app
        .session(&app.create_user("default", Role::Member).await)
        .await;
    app.me_with(
        "acme",
        &[(
            "authorization",
            &basic("default", &other.creds.user_id, &other.token),
        )],
    )
    .await
    .expect(StatusCode::OK);
    for _ in 0..6 {
        app.me_with(
            "default",
            &[(
                "authorization",
                &basic("default", &visitor.creds.user_id, &visitor.token),
            )],
        )
        .await
        .expect(StatusCode::OK);
    }
}
