//! The verification page `/v1/{org}/device`: sign-in first, the code form and the
//! confirmation (safe pages: escaped, never framed or cached), user codes typed any way,
//! CSRF on every post, wrong codes refused and throttled per session, person and IP.

use std::time::Duration;

use keygate::types::Role;
use reqwest::StatusCode;

use super::{assert_oauth_error, browser, no_redirects, poll, started, str_of};
use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn without_a_session_the_page_sends_the_person_to_sign_in_and_back() {
    let app = spawn_app().await;
    let elsewhere = app.create_org("elsewhere").await;
    let client = no_redirects();
    let res = client
        .get(app.url("/v1/default/device?user_code=BCDF-GHJK"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        res.headers()["location"],
        "/v1/default/login?return_to=%2Fv1%2Fdefault%2Fdevice%3Fuser_code%3DBCDF-GHJK"
    );
    let res = client
        .post(app.url("/v1/default/device"))
        .form(&[("user_code", "BCDF-GHJK"), ("action", "approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        res.headers()["location"],
        "/v1/default/login?return_to=%2Fv1%2Fdefault%2Fdevice"
    );
    // A session of another organization, or a made-up cookie, is no session here.
    let other = browser(&app, "elsewhere", &elsewhere.user_id).await;
    assert_eq!(
        other.get(&app, "/v1/default/device").await.status(),
        StatusCode::SEE_OTHER
    );
    for cookie in ["keygate_session=bs_forged", "keygate_session="] {
        let res = client
            .get(app.url("/v1/default/device"))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{cookie}");
    }
    let res = client
        .get(app.url("/v1/nosuchorg/device"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_form_and_the_confirmation_are_accessible_escaped_and_never_framed() {
    let app = spawn_app().await;
    let model = keygate::admin::find_org(&app.state.storage, "default")
        .await
        .unwrap();
    let created = keygate::admin::create_key(
        &app.state.storage,
        &app.state.pepper,
        app.clock.as_ref(),
        &app.state.settings.api_keys,
        &model,
        keygate::admin::NewKey {
            user_id: app.owner.user_id.clone(),
            name: "<script>alert(1)</script> agent".into(),
            duration: None,
            environment: keygate::types::Environment::Live,
            scopes: None,
            resource_scopes: None,
            public_jwks: None,
        },
    )
    .await
    .unwrap();
    let client = crate::helpers::Credentials {
        org: "default".into(),
        user_id: app.owner.user_id.clone(),
        api_key_id: created.key.id.clone(),
        api_key: created.secret.unwrap().expose().to_owned(),
    };
    let browser = browser(&app, "default", &app.owner.user_id).await;

    let res = browser.get(&app, "/v1/default/device").await;
    assert_eq!(res.status(), StatusCode::OK);
    let headers = res.headers().clone();
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let form = res.text().await.unwrap();
    for part in [
        "<label for=\"user_code\">",
        "name=\"user_code\"",
        "autocomplete=\"off\"",
        "autocapitalize=\"characters\"",
        &format!("name=\"csrf\" value=\"{}\"", browser.csrf),
        "owner@keygate.local",
    ] {
        assert!(form.contains(part), "{part} in {form}");
    }

    let codes = started(&app, &client, &[("scope", "keys:read")]).await;
    let user_code = str_of(&codes, "user_code");
    let (status, page) = browser.post(&app, &[("user_code", user_code)]).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(!page.contains("<script>"), "{page}");
    assert!(page.contains("alert(1)"), "{page}");
    for part in [
        user_code,
        created.key.id.as_str(),
        "<code>keys:read</code>",
        "value=\"approve\"",
        "value=\"deny\"",
        "<button",
        "keygate itself",
    ] {
        assert!(page.contains(part), "{part} in {page}");
    }
    assert!(!page.contains("<code>keys:write</code>"), "{page}");
}

#[tokio::test]
async fn user_codes_are_read_in_any_case_with_or_without_the_dash() {
    let app = spawn_app().await;
    let browser = browser(&app, "default", &app.owner.user_id).await;
    let codes = started(&app, &app.owner, &[]).await;
    let user_code = str_of(&codes, "user_code");
    let bare = user_code.replace('-', "");
    let spaced = format!(" {} {} ", &bare[..4], &bare[4..]).to_lowercase();
    for typed in [
        user_code.to_owned(),
        user_code.to_lowercase(),
        bare.clone(),
        bare.to_lowercase(),
        spaced.clone(),
    ] {
        let res = browser
            .get(
                &app,
                &format!(
                    "/v1/default/device?user_code={}",
                    url::form_urlencoded::byte_serialize(typed.as_bytes()).collect::<String>()
                ),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK, "{typed:?}");
        assert!(res.text().await.unwrap().contains(user_code), "{typed:?}");
        let (status, page) = browser.post(&app, &[("user_code", &typed)]).await;
        assert_eq!(status, StatusCode::OK, "{typed:?}: {page}");
    }
    browser.approve(&app, &spaced).await;
    let (status, body) = poll(&app, &app.owner, str_of(&codes, "device_code")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn every_post_needs_the_sessions_csrf_token() {
    let app = spawn_app().await;
    let admin = app.create_user("default", Role::Admin).await;
    let browser = browser(&app, "default", &app.owner.user_id).await;
    let other = super::browser(&app, "default", &admin.user_id).await;
    let codes = started(&app, &app.owner, &[]).await;
    let user_code = str_of(&codes, "user_code");
    for csrf in [None, Some(""), Some("nope"), Some(other.csrf.as_str())] {
        let mut fields = vec![("user_code", user_code), ("action", "approve")];
        if let Some(csrf) = csrf {
            fields.push(("csrf", csrf));
        }
        let res = browser.post_raw(&app, &fields).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{csrf:?}");
        assert_eq!(res.headers()["cache-control"], "no-store");
    }
    let (status, body) = poll(&app, &app.owner, str_of(&codes, "device_code")).await;
    assert_oauth_error(status, &body, "authorization_pending");
    let (status, page) = browser.decide(&app, user_code, "maybe").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
}

#[tokio::test]
async fn wrong_codes_are_refused_and_throttled_per_session_person_and_ip() {
    let app = spawn_app_with(|s| {
        s.device.user_code_failures = 3;
        s.device.user_code_failures_per_ip = 5;
    })
    .await;
    let second = app.create_user("default", Role::Member).await;
    let first = browser(&app, "default", &app.owner.user_id).await;
    let codes = started(&app, &app.owner, &[]).await;
    let user_code = str_of(&codes, "user_code").to_owned();
    let wrong = if user_code == "BBBB-BBBB" {
        "CCCC-CCCC"
    } else {
        "BBBB-BBBB"
    };

    // Not the shape of a code: said so, and not counted (it cannot be a guess).
    for _ in 0..5 {
        let (status, page) = first.post(&app, &[("user_code", "12345")]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(page.contains("8 letters"), "{page}");
    }
    // Right codes are not counted either.
    for _ in 0..5 {
        let (status, _) = first.post(&app, &[("user_code", &user_code)]).await;
        assert_eq!(status, StatusCode::OK);
    }
    for _ in 0..3 {
        let (status, page) = first.post(&app, &[("user_code", wrong)]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(page.contains("not valid"), "{page}");
        assert!(page.contains(&format!("value=\"{wrong}\"")), "{page}");
    }
    // Past the limit even the right code is refused, in every step that looks one up.
    let res = first
        .get(&app, &format!("/v1/default/device?user_code={user_code}"))
        .await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    let (status, _) = first.decide(&app, &user_code, "approve").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // A new session of the same person does not start afresh.
    let again = browser(&app, "default", &app.owner.user_id).await;
    let (status, _) = again.post(&app, &[("user_code", &user_code)]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);

    // Another person from the same IP: the IP has 2 wrong codes left.
    let other = browser(&app, "default", &second.user_id).await;
    for _ in 0..2 {
        let (status, _) = other.post(&app, &[("user_code", wrong)]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    let (status, _) = other.post(&app, &[("user_code", &user_code)]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);

    // The failures count for the window only.
    app.clock.advance(Duration::from_secs(15 * 60 + 1));
    let codes = started(&app, &app.owner, &[]).await;
    first.approve(&app, str_of(&codes, "user_code")).await;
    let (status, body) = poll(&app, &app.owner, str_of(&codes, "device_code")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn another_organizations_code_is_a_wrong_code() {
    let app = spawn_app().await;
    let elsewhere = app.create_org("elsewhere").await;
    let codes = started(&app, &elsewhere, &[]).await;
    let browser = browser(&app, "default", &app.owner.user_id).await;
    let (status, page) = browser
        .decide(&app, str_of(&codes, "user_code"), "approve")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    let (status, body) = poll(&app, &elsewhere, str_of(&codes, "device_code")).await;
    assert_oauth_error(status, &body, "authorization_pending");
}
