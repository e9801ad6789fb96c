//! Signing key rotation: old tokens keep verifying until they expire, new tokens carry the
//! new key, and the JWKS publishes both meanwhile.

use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::{claims_of, json, spawn_app};
use crate::me::assert_rejected;

fn kid_of(token: &str) -> String {
    josekit::jwt::decode_header(token)
        .unwrap()
        .claim("kid")
        .and_then(|v| v.as_str())
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn rotation_keeps_old_tokens_valid_until_they_expire() {
    let app = spawn_app().await;
    let before = app.signin(&app.owner).await["id_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let old_kid = kid_of(&before);
    assert_eq!(app.jwks().await["keys"].as_array().unwrap().len(), 1);

    // What `keygate signing-key rotate` does, then the reload every node does.
    let settings = &app.state.settings;
    let now = app.now();
    let new = keygate::signing_keys::rotate(
        &app.state.storage,
        &app.state.kek,
        settings.tokens.alg,
        now,
        settings.tokens.access_ttl + settings.tokens.leeway,
    )
    .await
    .unwrap()
    .key;
    // Published at once, signing after the JWKS cache lifetime (tests/api/security/
    // signing_rotation.rs follows the steps in between).
    app.clock.advance(keygate::signing_keys::ACTIVATION_DELAY);
    app.state.signing_keys.reload().await.unwrap();

    let kids: Vec<String> = app.jwks().await["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kids.len(), 2);
    assert!(kids.contains(&old_kid) && kids.contains(&new.kid));

    let (status, _) = json(app.me("default", &before).await).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a token signed before rotation still verifies"
    );
    let after = app.signin(&app.owner).await["id_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(kid_of(&after), new.kid);
    assert_ne!(claims_of(&after)["jti"], claims_of(&before)["jti"]);

    // Once every token of the old key has expired, the old key is gone.
    app.clock.advance(Duration::from_secs(15 * 60 + 30));
    app.state.signing_keys.reload().await.unwrap();
    let jwks = app.jwks().await;
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kid"], new.kid.as_str());
    assert_rejected(&app, "default", &before, "invalid_token").await;
}

#[tokio::test]
async fn a_rotation_done_elsewhere_reaches_this_node_within_a_second() {
    let app = spawn_app().await;
    let settings = &app.state.settings;
    let now = app.now();
    // Another node rotates and, once the key is active, signs with it.
    let new = keygate::signing_keys::rotate(
        &app.state.storage,
        &app.state.kek,
        settings.tokens.alg,
        now,
        settings.tokens.access_ttl,
    )
    .await
    .unwrap()
    .key;
    let records = keygate::storage::signing_keys::all(&app.state.storage)
        .await
        .unwrap();
    let later = new.activated_at;
    let other_node =
        keygate::keys::signing::KeySet::build(&records, &app.state.kek, later).unwrap();
    let this_node_token = app.signin(&app.owner).await["id_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut claims: keygate::tokens::AccessClaims =
        serde_json::from_value(claims_of(&this_node_token)).unwrap();
    claims.jti = "other-node".into();
    let token = keygate::tokens::issue(&other_node, &claims).unwrap();
    assert_eq!(kid_of(&token), new.kid);
    // Within a second of its last load the node does not go back to the database.
    assert_rejected(&app, "default", &token, "invalid_token").await;
    app.clock.advance(keygate::signing_keys::MAX_AGE);
    let (status, body) = json(app.me("default", &token).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
