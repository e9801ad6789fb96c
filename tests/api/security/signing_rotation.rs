//! Signing keys are published before they sign: after a rotation the JWKS lists the new
//! key at once, tokens keep carrying the old `kid` until the new key's activation time
//! (at least the JWKS `Cache-Control: max-age` later) has passed on keygate's clock, then
//! carry the new one; tokens of the old key keep verifying.

use std::time::Duration;

use keygate::signing_keys::{self, KeyState};
use reqwest::StatusCode;

use crate::helpers::{TestApp, json, spawn_app};

fn kid_of(token: &str) -> String {
    josekit::jwt::decode_header(token)
        .unwrap()
        .claim("kid")
        .and_then(|v| v.as_str())
        .unwrap()
        .to_owned()
}

async fn token(app: &TestApp) -> String {
    app.signin(&app.owner).await["id_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The JWKS's kids and its `Cache-Control: max-age`.
async fn jwks(app: &TestApp) -> (Vec<String>, u64) {
    let res = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    let cache = res.headers()["cache-control"].to_str().unwrap().to_owned();
    let max_age = cache
        .split(',')
        .find_map(|d| d.trim().strip_prefix("max-age="))
        .expect("a max-age")
        .parse()
        .unwrap();
    let (status, body) = json(res).await;
    assert_eq!(status, StatusCode::OK);
    let kids = body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    (kids, max_age)
}

async fn status_of_me(app: &TestApp, token: &str) -> StatusCode {
    json(app.me("default", token).await).await.0
}

#[tokio::test]
async fn a_rotated_key_is_published_at_once_and_signs_only_after_the_jwks_cache_lifetime() {
    let app = spawn_app().await;
    let before = token(&app).await;
    let old_kid = kid_of(&before);

    let settings = &app.state.settings;
    let rotated_at = app.now();
    let rotation = signing_keys::rotate(
        &app.state.storage,
        &app.state.kek,
        settings.tokens.alg,
        rotated_at,
        settings.tokens.access_ttl + settings.tokens.leeway,
    )
    .await
    .unwrap();
    let new_kid = rotation.key.kid.clone();

    // Every node reloads within a second: the JWKS lists both keys from then on.
    app.clock.advance(signing_keys::MAX_AGE);
    let (kids, max_age) = jwks(&app).await;
    assert!(
        kids.contains(&old_kid) && kids.contains(&new_kid),
        "{kids:?}"
    );
    // It signs only once every JWKS copy cached before the rotation has expired.
    let activates_at = rotation.key.activated_at;
    assert!(
        activates_at >= rotated_at + chrono::Duration::seconds(max_age as i64),
        "activation at {activates_at}, rotation at {rotated_at}, max-age {max_age}"
    );
    let records = keygate::storage::signing_keys::all(&app.state.storage)
        .await
        .unwrap();
    let states = signing_keys::states(&records, app.now());
    let state_of = |kid: &str| states[records.iter().position(|r| r.kid == kid).unwrap()];
    assert_eq!(state_of(&new_kid), KeyState::Published);
    assert_eq!(state_of(&old_kid), KeyState::Active);

    // Meanwhile the old key signs.
    let during = token(&app).await;
    assert_eq!(kid_of(&during), old_kid, "the new key signs too early");
    let until_just_before = (activates_at - app.now()).to_std().unwrap() - Duration::from_secs(1);
    app.clock.advance(until_just_before);
    let last_old = token(&app).await;
    assert_eq!(kid_of(&last_old), old_kid, "the new key signs too early");

    // Once the activation time has passed on keygate's clock, the new key signs (no
    // explicit reload: the node notices the activation time itself).
    app.clock.advance(Duration::from_secs(1));
    let after = token(&app).await;
    assert_eq!(kid_of(&after), new_kid);
    let (kids, _) = jwks(&app).await;
    assert!(kids.contains(&old_kid) && kids.contains(&new_kid));
    let records = keygate::storage::signing_keys::all(&app.state.storage)
        .await
        .unwrap();
    let states = signing_keys::states(&records, app.now());
    let state_of = |kid: &str| states[records.iter().position(|r| r.kid == kid).unwrap()];
    assert_eq!(state_of(&new_kid), KeyState::Active);
    assert_eq!(state_of(&old_kid), KeyState::Retiring);

    // Every token keeps verifying, the old key's included.
    for t in [&before, &during, &last_old, &after] {
        assert_eq!(status_of_me(&app, t).await, StatusCode::OK);
    }

    // The old key leaves the JWKS once the last token it signed has expired.
    let lifetime = settings.tokens.access_ttl + settings.tokens.leeway;
    app.clock.advance(lifetime + Duration::from_secs(1));
    let (kids, _) = jwks(&app).await;
    assert_eq!(kids, vec![new_kid.clone()]);
    let records = keygate::storage::signing_keys::all(&app.state.storage)
        .await
        .unwrap();
    let states = signing_keys::states(&records, app.now());
    let state_of = |kid: &str| states[records.iter().position(|r| r.kid == kid).unwrap()];
    assert_eq!(state_of(&old_kid), KeyState::Retired);
}
