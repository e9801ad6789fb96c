//! An organization that requires DPoP admits no cross-organization caller: Basic and
//! Bearer + `X-ORG-ID` credentials are Bearer tokens of another organization (DPoP-bound
//! ones cannot cross organizations), so they are refused with the DPoP challenge.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keygate::types::Role;
use reqwest::StatusCode;
use serde_json::json;

use crate::admin_helpers::Reply;
use crate::dpop_key::DpopKey;
use crate::helpers::{TestApp, spawn_app, spawn_app_with};

async fn me_at(app: &TestApp, org: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = app.client.get(app.url(&format!("/v1/{org}/user/me")));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    Reply::from(req.send().await.unwrap()).await
}

fn assert_dpop_challenge(r: &Reply) {
    r.expect_error(StatusCode::UNAUTHORIZED, "invalid_token");
    let challenge = r.header("www-authenticate").expect("challenge");
    assert!(challenge.starts_with("DPoP "), "{challenge}");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(
        challenge.contains("algs=\"ES256 ES384 ES512\""),
        "{challenge}"
    );
    assert!(r.message().contains("requires DPoP"), "{}", r.message());
}

#[tokio::test]
async fn cross_org_callers_are_refused_where_the_target_requires_dpop() {
    let app = spawn_app().await;
    let acme_owner = app.session(&app.create_org("acme").await).await;
    let visitor = app
        .session(&app.create_user("default", Role::Member).await)
        .await;
    app.post_as(
        &acme_owner.token,
        "/v1/acme/cross_org_grants",
        &json!({"source_org": "default", "user_id": visitor.creds.user_id, "role": "member"}),
    )
    .await
    .expect(StatusCode::CREATED);
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!(
            "default_{}:{}",
            visitor.creds.user_id, visitor.token
        ))
    );
    let bearer = format!("Bearer {}", visitor.token);
    let basic_form = [("authorization", basic.as_str())];
    let bearer_form = [("authorization", bearer.as_str()), ("x-org-id", "default")];

    // Granted, and acme does not require DPoP: both forms are admitted.
    for headers in [&basic_form[..], &bearer_form[..]] {
        me_at(&app, "acme", headers).await.expect(StatusCode::OK);
    }

    // acme requires DPoP: neither form gets in, grant or not.
    keygate::admin::set_dpop_policy(&app.state.storage, "acme", Some(true), None)
        .await
        .unwrap();
    // The CLI's change reaches a running node within the revocation window; at once here.
    app.state.directory.orgs_changed();
    for headers in [&basic_form[..], &bearer_form[..]] {
        assert_dpop_challenge(&me_at(&app, "acme", headers).await);
    }
    // The visitor's own organization does not require it: the same token works there.
    me_at(&app, "default", &[("authorization", &bearer)])
        .await
        .expect(StatusCode::OK);
    // At acme, its own users with DPoP-bound tokens are served.
    let acme = app.create_user("acme", Role::Member).await;
    let key = DpopKey::es256();
    let proof = key.proof(&app, "POST", "/v1/acme/user/signin_with_api_key", None);
    let res = app
        .client
        .post(app.url("/v1/acme/user/signin_with_api_key"))
        .header("x-api-key", &acme.api_key)
        .header("x-api-key-id", &acme.api_key_id)
        .header("x-user-id", &acme.user_id)
        .header("dpop", proof)
        .send()
        .await
        .unwrap();
    let signed_in = Reply::from(res).await;
    signed_in.expect(StatusCode::OK);
    let token = signed_in.str("id_token");
    let proof = key.proof(&app, "GET", "/v1/acme/user/me", Some(&token));
    me_at(
        &app,
        "acme",
        &[
            ("authorization", &format!("DPoP {token}")),
            ("dpop", &proof),
        ],
    )
    .await
    .expect(StatusCode::OK);
}

#[tokio::test]
async fn a_server_wide_dpop_requirement_holds_for_cross_org_callers_too() {
    // The server requires DPoP; `default` opts out, `acme` follows the server.
    let app = spawn_app_with(|s| s.dpop.required = true).await;
    keygate::admin::set_dpop_policy(&app.state.storage, "default", Some(false), None)
        .await
        .unwrap();
    // The CLI's change reaches a running node within the revocation window; at once here.
    app.state.directory.orgs_changed();
    app.create_org("acme").await;
    let visitor = app
        .session(&app.create_user("default", Role::Member).await)
        .await;
    let bearer = format!("Bearer {}", visitor.token);
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!(
            "default_{}:{}",
            visitor.creds.user_id, visitor.token
        ))
    );
    // Without the requirement this would be 403 `permission_denied` (no grant): the
    // requirement is checked first, whatever the grants say.
    for headers in [
        &[("authorization", basic.as_str())][..],
        &[("authorization", bearer.as_str()), ("x-org-id", "default")][..],
    ] {
        assert_dpop_challenge(&me_at(&app, "acme", headers).await);
    }
    me_at(&app, "default", &[("authorization", &bearer)])
        .await
        .expect(StatusCode::OK);
}
