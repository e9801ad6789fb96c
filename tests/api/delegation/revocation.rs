//! A revoked link anywhere in a delegation chain ends the tokens exchanged from it: the
//! subject's session, the actor's key, the actor token's session, a user offboarded; on
//! this node at once, on another within the revocation window.

use std::time::Duration;

use keygate::types::Role;
use reqwest::StatusCode;

use super::{ACCESS_TOKEN, exchange, exchange_with, introspect, me, oauth_error};
use crate::helpers::{claims_of, spawn_app};

#[tokio::test]
async fn revoking_the_subjects_session_ends_every_token_exchanged_from_it() {
    let app = spawn_app().await;
    let person = app.session(&app.owner).await;
    let admin = app.session(&app.owner).await;
    let assistant = app.create_user("default", Role::Member).await;
    let coder = app.create_user("default", Role::Member).await;
    let one = exchange(&app, &assistant, &person.token, &[]).await;
    let two = exchange(&app, &coder, &one, &[]).await;
    for token in [&one, &two] {
        assert_eq!(me(&app, token).await.0, StatusCode::OK);
    }

    app.delete_as(
        &admin.token,
        &format!("/v1/default/sessions/{}", person.session_id),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    for token in [&one, &two] {
        assert_eq!(me(&app, token).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(introspect(&app, &app.owner, token).await["active"], false);
        // Nor can it be exchanged again.
        let (status, body) = exchange_with(&app, &coder, token, &[], None).await;
        oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    }
}

#[tokio::test]
async fn a_revocation_made_on_another_node_is_seen_within_the_window() {
    let app = spawn_app().await;
    let person = app.session(&app.owner).await;
    let assistant = app.create_user("default", Role::Member).await;
    let one = exchange(&app, &assistant, &person.token, &[]).await;
    assert_eq!(me(&app, &one).await.0, StatusCode::OK);
    // Another node ends the subject's session: this node's cache does not know.
    let org = keygate::admin::find_org(&app.state.storage, "default")
        .await
        .unwrap();
    assert!(
        keygate::storage::sessions::revoke(
            &app.state.storage,
            &org.id,
            &person.session_id,
            app.now()
        )
        .await
        .unwrap()
    );
    app.clock
        .advance(keygate::auth::revocation::STALENESS + Duration::from_secs(1));
    assert_eq!(me(&app, &one).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn revoking_the_actors_key_ends_the_exchanged_token() {
    let app = spawn_app().await;
    let person = app.session(&app.owner).await;
    let admin = app.session(&app.owner).await;
    let assistant = app.create_user("default", Role::Member).await;
    let one = exchange(&app, &assistant, &person.token, &[]).await;
    assert_eq!(me(&app, &one).await.0, StatusCode::OK);
    app.delete_as(
        &admin.token,
        &format!("/v1/default/api_keys/{}", assistant.api_key_id),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    assert_eq!(me(&app, &one).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(introspect(&app, &app.owner, &one).await["active"], false);
    // The person's own token is untouched.
    assert_eq!(me(&app, &person.token).await.0, StatusCode::OK);
}

#[tokio::test]
async fn ending_the_actor_tokens_session_or_offboarding_the_actor_ends_the_exchanged_token() {
    let app = spawn_app().await;
    let person = app.session(&app.owner).await;
    let admin = app.session(&app.owner).await;
    let agent = app.create_user("default", Role::Member).await;
    let tool = app.create_user("default", Role::Service).await;
    let tool_session = app.session(&tool).await;
    let with_actor = |token: String| {
        let app = &app;
        let agent = &agent;
        let person = &person;
        async move {
            exchange(
                app,
                agent,
                &person.token,
                &[("actor_token", &token), ("actor_token_type", ACCESS_TOKEN)],
            )
            .await
        }
    };
    let token = with_actor(tool_session.token.clone()).await;
    assert_eq!(claims_of(&token)["act"]["sub"], tool.user_id.as_str());
    assert_eq!(me(&app, &token).await.0, StatusCode::OK);
    app.delete_as(
        &admin.token,
        &format!("/v1/default/sessions/{}", tool_session.session_id),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    assert_eq!(me(&app, &token).await.0, StatusCode::UNAUTHORIZED);

    // Disabling the actor ends the sessions it acts in.
    let fresh = app.session(&tool).await;
    let token = with_actor(fresh.token.clone()).await;
    assert_eq!(me(&app, &token).await.0, StatusCode::OK);
    app.patch_as(
        &admin.token,
        &format!("/v1/default/users/{}", tool.user_id),
        &serde_json::json!({"disabled": true}),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(me(&app, &token).await.0, StatusCode::UNAUTHORIZED);
}
