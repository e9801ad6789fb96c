//! The authorization endpoint: what gets an error page, what goes back to the client,
//! signing in first, the consent page and its form (CSRF, hidden fields checked again).

use keygate::types::Role;
use reqwest::StatusCode;

use super::{
    Pkce, authorize, consent_page, decide, hidden_fields, location, post_consent, public_client,
    query, request, sign_in,
};
use crate::helpers::spawn_app;

/// Asserts an error page: `status`, HTML, no redirect, the pages' headers.
async fn assert_page(res: reqwest::Response, status: StatusCode, says: &str) {
    assert_eq!(res.status(), status, "{res:?}");
    assert!(res.headers().get("location").is_none(), "{res:?}");
    let headers = res.headers();
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(headers["cache-control"], "no-store");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    let html = res.text().await.unwrap();
    assert!(html.contains(says), "{says}: {html}");
}

#[tokio::test]
async fn an_unknown_client_or_a_wrong_redirect_uri_gets_an_error_page_never_a_redirect() {
    let app = spawn_app().await;
    let client = public_client(&app).await;
    let person = sign_in(&app, "default", &app.owner.user_id).await;
    let pkce = Pkce::new();
    let other = |k: &str, v: &str| {
        let mut params = request(&client, &pkce, &[]);
        params.retain(|(name, _)| name != k);
        if !v.is_empty() {
            params.push((k.to_owned(), v.to_owned()));
        }
        params
    };
    let twice = |k: &str| {
        let mut params = request(&client, &pkce, &[]);
        let value = params.iter().find(|(n, _)| n == k).unwrap().1.clone();
        params.push((k.to_owned(), value));
        params
    };
    let cases = [
        (
            "unknown client",
            other("client_id", "cli_nobody"),
            "Unknown client",
        ),
        ("no client", other("client_id", ""), "client_id"),
        ("client twice", twice("client_id"), "more than once"),
        ("no redirect_uri", other("redirect_uri", ""), "redirect_uri"),
        (
            "redirect_uri twice",
            twice("redirect_uri"),
            "more than once",
        ),
        (
            "another URI",
            other("redirect_uri", "https://attacker.example/cb"),
            "not one this application registered",
        ),
        // Exact string match: no prefix, suffix, case or query variant.
        (
            "a longer path",
            other("redirect_uri", "https://agent.example/cb/x"),
            "registered",
        ),
        (
            "a query added",
            other("redirect_uri", "https://agent.example/cb?x=1"),
            "registered",
        ),
        (
            "another case",
            other("redirect_uri", "https://AGENT.example/cb"),
            "registered",
        ),
        (
            "a prefix",
            other("redirect_uri", "https://agent.example/c"),
            "registered",
        ),
    ];
    for (name, params, says) in cases {
        for who in [None, Some(&person)] {
            let res = authorize(&app, "default", who, &params).await;
            assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{name}");
            assert_page(res, StatusCode::BAD_REQUEST, says).await;
        }
    }
    // The consent form is held to the same rules (hidden fields are never trusted).
    let mut fields =
        hidden_fields(&consent_page(&app, "default", &person, &request(&client, &pkce, &[])).await);
    for (name, value) in &mut fields {
        if name == "redirect_uri" {
            *value = "https://attacker.example/cb".into();
        }
    }
    fields.push(("decision".into(), "approve".into()));
    let res = post_consent(&app, "default", Some(&person), &fields).await;
    assert_page(res, StatusCode::BAD_REQUEST, "registered").await;

    let res = authorize(&app, "nope", Some(&person), &request(&client, &pkce, &[])).await;
    assert_page(res, StatusCode::NOT_FOUND, "organization").await;
}

#[tokio::test]
async fn errors_after_the_redirect_uri_go_back_to_the_client_with_state_and_iss() {
    let app = spawn_app().await;
    let client = public_client(&app).await;
    let person = sign_in(&app, "default", &app.owner.user_id).await;
    let pkce = Pkce::new();
    let issuer = format!("{}/v1/default", app.address);
    let without = |k: &str| {
        let mut params = request(&client, &pkce, &[]);
        params.retain(|(name, _)| name != k);
        params
    };
    let mut state_twice = request(&client, &pkce, &[]);
    state_twice.push(("state".into(), "other".into()));
    let cases = [
        (
            "no response_type",
            without("response_type"),
            "invalid_request",
        ),
        (
            "implicit",
            request(&client, &pkce, &[("response_type", "token")]),
            "unsupported_response_type",
        ),
        ("no PKCE", without("code_challenge"), "invalid_request"),
        (
            "plain PKCE",
            request(&client, &pkce, &[("code_challenge_method", "plain")]),
            "invalid_request",
        ),
        (
            "no PKCE method (plain)",
            without("code_challenge_method"),
            "invalid_request",
        ),
        (
            "a challenge that no S256 makes",
            request(&client, &pkce, &[("code_challenge", "too-short")]),
            "invalid_request",
        ),
        ("state twice", state_twice, "invalid_request"),
        (
            "dpop_jkt malformed",
            request(&client, &pkce, &[("dpop_jkt", "not-a-thumbprint")]),
            "invalid_request",
        ),
        (
            "prompt none",
            request(&client, &pkce, &[("prompt", "none")]),
            "invalid_request",
        ),
        (
            "scope with a quote",
            request(&client, &pkce, &[("scope", "keys:read bad\"scope")]),
            "invalid_scope",
        ),
    ];
    for (name, params, error) in cases {
        for who in [None, Some(&person)] {
            let res = authorize(&app, "default", who, &params).await;
            let to = location(&res);
            assert_eq!(
                to.as_str().split('?').next(),
                Some(client.redirect_uri.as_str()),
                "{name}"
            );
            let back = query(&to);
            assert_eq!(back["error"], error, "{name}: {back:?}");
            assert!(!back["error_description"].is_empty(), "{name}");
            assert_eq!(back["iss"], issuer, "{name}");
            if name == "state twice" {
                assert_eq!(back.get("state"), None);
            } else {
                assert_eq!(back["state"], "st-8f3a", "{name}");
            }
            assert!(!back.contains_key("code"), "{name}");
        }
    }
}

#[tokio::test]
async fn a_person_not_signed_in_is_sent_to_sign_in_and_back() {
    let app = spawn_app().await;
    let client = public_client(&app).await;
    let pkce = Pkce::new();
    let params = request(&client, &pkce, &[("scope", "keys:read")]);
    let res = authorize(&app, "default", None, &params).await;
    let to = location(&res);
    assert_eq!(to.path(), "/v1/default/login");
    assert_eq!(res.headers()["cache-control"], "no-store");
    let return_to = query(&to)["return_to"].clone();
    assert!(
        keygate::people::return_to::ReturnTo::parse("default", &return_to).is_some(),
        "the sign-in page takes it back: {return_to}"
    );
    let back = url::Url::parse("http://keygate.invalid")
        .unwrap()
        .join(&return_to)
        .unwrap();
    assert_eq!(back.path(), "/v1/default/oauth/authorize");
    let mut returned: Vec<(String, String)> = back.query_pairs().into_owned().collect();
    let mut sent = params.clone();
    returned.sort();
    sent.sort();
    assert_eq!(returned, sent, "the request comes back whole");
    // Once signed in, the same URL shows the consent page.
    let person = sign_in(&app, "default", &app.owner.user_id).await;
    consent_page(&app, "default", &person, &returned).await;
    // A consent form posted without a browser session goes to sign in too, not further.
    let mut fields = returned.clone();
    fields.push(("decision".into(), "approve".into()));
    let res = post_consent(&app, "default", None, &fields).await;
    assert_eq!(location(&res).path(), "/v1/default/login");
}

#[tokio::test]
async fn the_consent_page_names_the_client_the_person_and_what_is_asked() {
    let app = spawn_app().await;
    let client = public_client(&app).await;
    let person = sign_in(&app, "default", &app.owner.user_id).await;
    let pkce = Pkce::new();
    let params = request(&client, &pkce, &[("scope", "keys:read audit:read")]);
    let res = authorize(&app, "default", Some(&person), &params).await;
    assert_eq!(res.status(), StatusCode::OK);
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    // The form's answer is a redirect to the client: form-action must allow its origin.
    assert!(
        csp.contains("form-action 'self' https://agent.example"),
        "{csp}"
    );
    assert_eq!(res.headers()["cache-control"], "no-store");
    let html = res.text().await.unwrap();
    assert!(html.contains("Agent none"), "the client's name: {html}");
    assert!(html.contains("Signed in as <strong>owner@"), "{html}");
    assert!(html.contains("See API keys") && html.contains("<code>keys:read</code>"));
    assert!(html.contains("Read the audit log"));
    assert!(html.contains(r#"<form method="post" action="/v1/default/oauth/authorize">"#));
    assert!(html.contains(r#"<button type="submit" name="decision" value="approve""#));
    assert!(html.contains(r#"<button type="submit" name="decision" value="deny""#));
    let fields = hidden_fields(&html);
    assert!(fields.contains(&("csrf".into(), person.csrf.clone())));
    for pair in &params {
        assert!(fields.contains(pair), "{pair:?} is posted back");
    }
}

#[tokio::test]
async fn a_denial_goes_back_as_access_denied_and_is_audited() {
    let app = spawn_app().await;
    let client = public_client(&app).await;
    let person = sign_in(&app, "default", &app.owner.user_id).await;
    let pkce = Pkce::new();
    let back = decide(
        &app,
        "default",
        &person,
        &request(&client, &pkce, &[]),
        "deny",
    )
    .await;
    assert_eq!(back["error"], "access_denied");
    assert_eq!(back["state"], "st-8f3a");
    assert_eq!(back["iss"], format!("{}/v1/default", app.address));
    assert!(!back.contains_key("code"));
    let events = app.audit_events("default").await;
    let denied = events
        .iter()
        .find(|e| e.action == "authorization.denied")
        .expect("audited");
    assert_eq!(
        denied.actor_user_id.as_deref(),
        Some(person.user_id.as_str())
    );
    assert_eq!(denied.target_id.as_deref(), Some(client.id.as_str()));
    // A decision that is neither is refused too.
    let back = decide(
        &app,
        "default",
        &person,
        &request(&client, &pkce, &[]),
        "maybe",
    )
    .await;
    assert_eq!(back["error"], "invalid_request");
}

#[tokio::test]
async fn a_consent_form_without_its_csrf_token_is_refused_with_no_redirect() {
    let app = spawn_app().await;
    let client = public_client(&app).await;
    let person = sign_in(&app, "default", &app.owner.user_id).await;
    let other = sign_in(&app, "default", &app.owner.user_id).await;
    let pkce = Pkce::new();
    let params = request(&client, &pkce, &[]);
    let fields = hidden_fields(&consent_page(&app, "default", &person, &params).await);
    let with_csrf = |csrf: Option<&str>| {
        let mut fields: Vec<(String, String)> = fields
            .iter()
            .filter(|(n, _)| n != "csrf")
            .cloned()
            .collect();
        if let Some(csrf) = csrf {
            fields.push(("csrf".into(), csrf.to_owned()));
        }
        fields.push(("decision".into(), "approve".into()));
        fields
    };
    let wrong = format!("{}x", person.csrf);
    for (name, fields) in [
        ("missing", with_csrf(None)),
        ("empty", with_csrf(Some(""))),
        ("wrong", with_csrf(Some(&wrong))),
        ("another browser session's", with_csrf(Some(&other.csrf))),
    ] {
        let res = post_consent(&app, "default", Some(&person), &fields).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{name}");
        assert_page(res, StatusCode::FORBIDDEN, "cannot be used").await;
    }
    // Nothing was approved: the right token still gets the page's decision through.
    let res = post_consent(
        &app,
        "default",
        Some(&person),
        &with_csrf(Some(&person.csrf)),
    )
    .await;
    assert!(query(&location(&res)).contains_key("code"));
}

#[tokio::test]
async fn a_person_approves_only_scopes_their_role_can_use_and_registered_resources() {
    let app = spawn_app().await;
    let client = public_client(&app).await;
    let member = app.create_user("default", Role::Member).await;
    let person = sign_in(&app, "default", &member.user_id).await;
    let pkce = Pkce::new();
    let cases = [
        (
            "beyond the role",
            vec![("scope", "keys:read audit:read")],
            "invalid_scope",
        ),
        (
            "not keygate's",
            vec![("scope", "mcp:tools")],
            "invalid_scope",
        ),
        (
            "an unregistered resource",
            vec![("resource", "https://mcp.example.com/mcp")],
            "invalid_target",
        ),
        ("not a URI", vec![("resource", "mcp")], "invalid_target"),
    ];
    for (name, extra, error) in cases {
        let res = authorize(
            &app,
            "default",
            Some(&person),
            &request(&client, &pkce, &extra),
        )
        .await;
        let back = query(&location(&res));
        assert_eq!(back["error"], error, "{name}: {back:?}");
        assert_eq!(back["state"], "st-8f3a");
    }
    // Within the role: the page.
    let html = consent_page(
        &app,
        "default",
        &person,
        &request(&client, &pkce, &[("scope", "keys:read keys:write")]),
    )
    .await;
    assert!(html.contains("<code>keys:write</code>"));
}
