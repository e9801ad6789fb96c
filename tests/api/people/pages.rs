//! Every sign-in page and redirect carries the protective headers (CSP with
//! `frame-ancestors 'none'`, no-store, nosniff, no referrer), and the cookies their
//! attributes: `HttpOnly`, `SameSite=Lax`, the organization's path, `Secure` on https.

use keygate::types::Role;
use reqwest::StatusCode;

use super::{Browser, ORG, Page, add_person, spawn_with_mail, spawn_with_mail_and};
use crate::helpers::spawn_app_with;

fn assert_cookie(line: &str, secure: bool) {
    let attributes: Vec<String> = line
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    assert!(attributes.contains(&"httponly".into()), "{line}");
    assert!(attributes.contains(&"samesite=lax".into()), "{line}");
    assert!(attributes.contains(&"path=/v1/default".into()), "{line}");
    assert_eq!(attributes.contains(&"secure".into()), secure, "{line}");
    assert!(
        !attributes.iter().any(|a| a.starts_with("domain")),
        "{line}"
    );
}

#[tokio::test]
async fn every_page_and_redirect_is_protected() {
    let (app, sink) = spawn_with_mail().await;
    add_person(&app, ORG, "alice@example.com", Role::Member).await;
    let mut pages: Vec<(&str, Page)> = Vec::new();
    let mut browser = Browser::new(&app);

    let login = browser.get("/v1/default/login").await;
    let csrf = login.hidden("csrf");
    pages.push(("login", login));
    pages.push((
        "bad email",
        browser
            .post(
                "/v1/default/login",
                &[("email", "not an email"), ("csrf", &csrf)],
            )
            .await,
    ));
    pages.push((
        "forbidden",
        browser
            .post("/v1/default/login", &[("email", "a@b.example")])
            .await,
    ));
    let code_page = browser.ask_code(ORG, "alice@example.com", None).await;
    let code = sink.mail_to("alice@example.com").await.code();
    pages.push((
        "wrong code",
        browser.submit_code(ORG, &code_page, "000001").await,
    ));
    pages.push((
        "unknown challenge",
        browser
            .post(
                "/v1/default/login/code",
                &[
                    ("csrf", &code_page.hidden("csrf")),
                    ("challenge", "lgc_x"),
                    ("code", "123456"),
                ],
            )
            .await,
    ));
    let signed_in = browser.submit_code(ORG, &code_page, &code).await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER);
    pages.push(("signed in redirect", signed_in));
    let me = browser.get("/v1/default/login").await;
    let csrf = me.hidden("csrf");
    pages.push(("signed in page", me));
    pages.push((
        "reload of /login/code",
        browser.get("/v1/default/login/code").await,
    ));
    pages.push((
        "sign out",
        browser.post("/v1/default/logout", &[("csrf", &csrf)]).await,
    ));
    pages.push((
        "unknown organization",
        browser.get("/v1/nowhere/login").await,
    ));
    pages.push((
        "malformed organization",
        browser.get("/v1/NO_WAY/login").await,
    ));
    for _ in 0..5 {
        browser.ask_code(ORG, "bob@example.com", None).await;
    }
    let login = browser.get("/v1/default/login").await;
    pages.push((
        "throttled",
        browser
            .post(
                "/v1/default/login",
                &[
                    ("email", "bob@example.com"),
                    ("csrf", &login.hidden("csrf")),
                ],
            )
            .await,
    ));

    let expected = [
        ("login", 200),
        ("bad email", 400),
        ("forbidden", 403),
        ("wrong code", 400),
        ("unknown challenge", 400),
        ("signed in redirect", 303),
        ("signed in page", 200),
        ("reload of /login/code", 303),
        ("sign out", 303),
        ("unknown organization", 404),
        ("malformed organization", 404),
        ("throttled", 429),
    ];
    assert_eq!(pages.len(), expected.len());
    for ((name, page), (expected_name, status)) in pages.iter().zip(expected) {
        assert_eq!(*name, expected_name);
        assert_eq!(page.status.as_u16(), status, "{name}: {}", page.html);
        page.assert_protected();
        if page.status != StatusCode::SEE_OTHER {
            assert!(
                page.html
                    .contains(r#"<link rel="stylesheet" href="/assets/keygate.css">"#)
            );
            assert!(!page.html.contains("<script"), "{name}");
        }
    }
    let bad_email = &pages[1].1;
    assert!(bad_email.html.contains("Enter your email address"));
    assert!(bad_email.html.contains(r#"value="not an email""#));
}

#[tokio::test]
async fn cookies_are_http_only_same_site_lax_and_scoped_to_the_organization() {
    let (app, sink) = spawn_with_mail().await;
    add_person(&app, ORG, "alice@example.com", Role::Member).await;
    let mut browser = Browser::new(&app);
    let login = browser.get("/v1/default/login").await;
    let pre_login = login.set_cookie("keygate_login").unwrap();
    assert_cookie(&pre_login, false);
    assert!(pre_login.contains("Max-Age=3600"), "{pre_login}");
    let done = browser.sign_in(&sink, ORG, "alice@example.com").await;
    let session = done.set_cookie("keygate_session").unwrap();
    assert_cookie(&session, false);
    assert!(session.contains("Max-Age=43200"), "{session}");
    // The pre-login cookie is deleted with the same attributes it was set with.
    let cleared = done.set_cookie("keygate_login").unwrap();
    assert_cookie(&cleared, false);
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
}

#[tokio::test]
async fn cookies_are_secure_when_keygate_is_served_over_https() {
    let (app, sink) = spawn_with_mail_and(|s| {
        s.server.public_url = Some("https://keygate.example".into());
    })
    .await;
    add_person(&app, ORG, "alice@example.com", Role::Member).await;
    let mut browser = Browser::new(&app);
    let login = browser.get("/v1/default/login").await;
    assert_cookie(&login.set_cookie("keygate_login").unwrap(), true);
    let done = browser.sign_in(&sink, ORG, "alice@example.com").await;
    assert_cookie(&done.set_cookie("keygate_session").unwrap(), true);
}

#[tokio::test]
async fn without_smtp_a_public_server_refuses_email_sign_in() {
    let app = spawn_app_with(|s| {
        s.server.public_url = Some("https://keygate.example".into());
    })
    .await;
    let mut browser = Browser::new(&app);
    let page = browser.get("/v1/default/login").await;
    assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE);
    page.assert_protected();
    assert!(
        page.html.contains("Email sign-in is not configured"),
        "{}",
        page.html
    );
    assert!(page.set_cookie("keygate_login").is_none());
    let post = browser
        .post("/v1/default/login", &[("email", "owner@keygate.local")])
        .await;
    assert_eq!(post.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!app.state.mailer.available());
}
