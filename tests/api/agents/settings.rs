//! `GET/PATCH /v1/{org}/settings` and `keygate org update`: off by default, changed by
//! owners only (and the operator), audited.

use keygate::types::Role;
use reqwest::StatusCode;
use serde_json::json;

use super::{patch_settings, token_of};
use crate::cli::keygate_json;
use crate::helpers::{error_code, json, spawn_app};

#[tokio::test]
async fn everything_is_off_by_default_and_only_an_owner_turns_it_on() {
    let app = spawn_app().await;
    let owner = token_of(&app, &app.owner).await;
    let admin = token_of(&app, &app.create_user("default", Role::Admin).await).await;
    let member = token_of(&app, &app.create_user("default", Role::Member).await).await;

    let get = |token: String| {
        let req = app
            .client
            .get(app.url("/v1/default/settings"))
            .bearer_auth(token);
        async move { json(req.send().await.unwrap()).await }
    };
    let (status, body) = get(admin.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"direct_api_keys": false, "self_registration": false, "registration_approval": false})
    );
    let (status, body) = get(member.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // The attacker's side: a member and an admin try to open the organization up.
    for token in [&member, &admin] {
        let (status, body) = patch_settings(
            &app,
            "default",
            token,
            json!({"direct_api_keys": true, "self_registration": true}),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(error_code(&body), "permission_denied");
    }
    let (_, body) = get(owner.clone()).await;
    assert_eq!(body["direct_api_keys"], false, "nothing changed: {body}");

    let (status, body) = patch_settings(
        &app,
        "default",
        &owner,
        json!({"direct_api_keys": true, "registration_approval": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"direct_api_keys": true, "self_registration": false, "registration_approval": true})
    );
    // Fields left out stay as they are.
    let (_, body) =
        patch_settings(&app, "default", &owner, json!({"self_registration": true})).await;
    assert_eq!(
        body,
        json!({"direct_api_keys": true, "self_registration": true, "registration_approval": true})
    );

    for bad in [
        json!({"direct_api_key": true}),
        json!({"direct_api_keys": "yes"}),
    ] {
        let (status, body) = patch_settings(&app, "default", &owner, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(error_code(&body), "invalid_request");
    }

    let events = app.audit_events("default").await;
    let updated: Vec<_> = events
        .iter()
        .filter(|e| e.action == "org.settings_updated")
        .collect();
    let mut reasons: Vec<_> = updated.iter().map(|e| e.reason.as_deref()).collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            Some("direct_api_keys=true registration_approval=true"),
            Some("self_registration=true")
        ]
    );
    assert!(
        updated
            .iter()
            .all(|e| e.actor_user_id.as_deref() == Some(app.owner.user_id.as_str()))
    );
    let denied = events
        .iter()
        .filter(|e| {
            e.action == "permission.denied"
                && e.reason.as_deref() == Some("permission_denied:settings.write")
        })
        .count();
    assert_eq!(denied, 2, "{events:?}");
}

#[tokio::test]
async fn the_cli_turns_each_switch_on_and_off() {
    let app = spawn_app().await;
    let org = keygate_json(
        &app,
        &[
            "org",
            "update",
            "default",
            "--direct-api-keys",
            "true",
            "--self-registration",
            "true",
            "--registration-approval",
            "true",
            "--json",
        ],
    );
    assert_eq!(org["direct_api_keys"], true, "{org}");
    assert_eq!(org["self_registration"], true, "{org}");
    assert_eq!(org["registration_approval"], true, "{org}");
    let org = keygate_json(
        &app,
        &[
            "org",
            "update",
            "default",
            "--self-registration",
            "false",
            "--json",
        ],
    );
    assert_eq!(org["direct_api_keys"], true, "{org}");
    assert_eq!(org["self_registration"], false, "{org}");
    let out = crate::cli::keygate(
        &app,
        &["org", "update", "default", "--direct-api-keys", "maybe"],
    );
    assert!(!out.status.success());
}
