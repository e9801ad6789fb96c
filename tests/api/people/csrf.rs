//! Every form of the sign-in pages carries a CSRF token, and a post without the right one
//! (missing, wrong, another browser's, or with no cookie to check it against) is refused
//! with a clear 403 page and changes nothing.

use keygate::types::Role;
use reqwest::StatusCode;

use super::{Browser, ORG, Page, add_person, mails_to, spawn_with_mail};

/// A form's fields, as posted.
type Fields = Vec<(String, String)>;

/// The forged variants of a form: (what, the browser that sends it, its fields).
fn forgeries(
    browser: &Browser,
    stranger: &Browser,
    fields: &[(String, String)],
) -> Vec<(&'static str, Browser, Fields)> {
    let with_csrf = |csrf: Option<&str>| -> Fields {
        fields
            .iter()
            .filter(|(k, _)| k != "csrf")
            .cloned()
            .chain(csrf.map(|c| ("csrf".to_owned(), c.to_owned())))
            .collect()
    };
    let copy = |cookies: &std::collections::BTreeMap<String, String>, b: &Browser| {
        let mut copy = Browser::new_like(b);
        copy.cookies = cookies.clone();
        copy
    };
    let real = fields
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.clone())
        .unwrap();
    let mut flipped = real.clone().into_bytes();
    flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).unwrap();
    vec![
        (
            "no csrf field",
            copy(&browser.cookies, browser),
            with_csrf(None),
        ),
        (
            "an empty csrf",
            copy(&browser.cookies, browser),
            with_csrf(Some("")),
        ),
        (
            "a wrong csrf",
            copy(&browser.cookies, browser),
            with_csrf(Some(&flipped)),
        ),
        (
            "the right csrf without the cookie",
            copy(&Default::default(), browser),
            with_csrf(Some(&real)),
        ),
        (
            "the right csrf with another browser's cookie",
            copy(&stranger.cookies, browser),
            with_csrf(Some(&real)),
        ),
    ]
}

async fn post(browser: &mut Browser, path: &str, fields: &[(String, String)]) -> Page {
    let fields: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    browser.post(path, &fields).await
}

fn assert_refused(page: &Page, what: &str) {
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{what}: {}", page.html);
    page.assert_protected();
    assert!(page.html.contains("This form has expired"), "{what}");
    assert!(page.html.contains(r#"href="/v1/default/login"#), "{what}");
    assert!(page.set_cookie("keygate_session").is_none(), "{what}");
}

#[tokio::test]
async fn the_email_form_needs_this_browsers_csrf_token() {
    let (app, sink) = spawn_with_mail().await;
    add_person(&app, ORG, "alice@example.com", Role::Member).await;
    let mut browser = Browser::new(&app);
    let login = browser.get("/v1/default/login").await;
    let mut stranger = Browser::new(&app);
    stranger.get("/v1/default/login").await;
    let fields = vec![
        ("email".to_owned(), "alice@example.com".to_owned()),
        ("csrf".to_owned(), login.hidden("csrf")),
        ("return_to".to_owned(), String::new()),
    ];
    for (what, mut forger, fields) in forgeries(&browser, &stranger, &fields) {
        let page = post(&mut forger, "/v1/default/login", &fields).await;
        assert_refused(&page, what);
    }
    // No challenge was made, no mail sent; the real form still works.
    let page = post(&mut browser, "/v1/default/login", &fields).await;
    assert_eq!(page.status, StatusCode::OK);
    sink.mail_to("alice@example.com").await;
    assert_eq!(mails_to(&sink, "alice@example.com").len(), 1);
}

#[tokio::test]
async fn the_code_form_needs_this_browsers_csrf_token() {
    let (app, sink) = spawn_with_mail().await;
    add_person(&app, ORG, "alice@example.com", Role::Member).await;
    let mut browser = Browser::new(&app);
    let page = browser.ask_code(ORG, "alice@example.com", None).await;
    let code = sink.mail_to("alice@example.com").await.code();
    let mut stranger = Browser::new(&app);
    stranger.get("/v1/default/login").await;
    let fields = Browser::code_fields(&page, &code);
    for (what, mut forger, fields) in forgeries(&browser, &stranger, &fields) {
        let refused = post(&mut forger, "/v1/default/login/code", &fields).await;
        assert_refused(&refused, what);
    }
    // Nothing was consumed or counted: the real browser signs in with the same code.
    let done = post(&mut browser, "/v1/default/login/code", &fields).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
}

#[tokio::test]
async fn the_sign_out_form_needs_the_sessions_csrf_token() {
    let (app, sink) = spawn_with_mail().await;
    add_person(&app, ORG, "alice@example.com", Role::Member).await;
    let mut browser = Browser::new(&app);
    browser.sign_in(&sink, ORG, "alice@example.com").await;
    let signed_in = browser.get("/v1/default/login").await;
    let csrf = signed_in.hidden("csrf");
    let mut other = Browser::new(&app);
    other.sign_in(&sink, ORG, "alice@example.com").await;
    let others_csrf = other.get("/v1/default/login").await.hidden("csrf");
    // The pre-login token of the same browser is not the session's.
    let mut fresh = Browser::new(&app);
    let pre_login_csrf = fresh.get("/v1/default/login").await.hidden("csrf");

    for (what, fields) in [
        ("no csrf field", vec![]),
        ("an empty csrf", vec![("csrf", "")]),
        ("a wrong csrf", vec![("csrf", "0123abcd")]),
        (
            "another session's csrf",
            vec![("csrf", others_csrf.as_str())],
        ),
        ("a pre-login csrf", vec![("csrf", pre_login_csrf.as_str())]),
    ] {
        let page = browser.post("/v1/default/logout", &fields).await;
        assert_refused(&page, what);
        assert_eq!(
            browser.signed_in_as(ORG).await.as_deref(),
            Some("alice@example.com"),
            "{what}"
        );
    }
    let out = browser.post("/v1/default/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(browser.signed_in_as(ORG).await, None);
    // The other browser's session is its own.
    assert_eq!(
        other.signed_in_as(ORG).await.as_deref(),
        Some("alice@example.com")
    );
}

#[tokio::test]
async fn the_csrf_token_is_bound_to_the_pre_login_cookie() {
    let (app, _sink) = spawn_with_mail().await;
    let mut browser = Browser::new(&app);
    let first = browser.get("/v1/default/login").await;
    // The same browser keeps its cookie and token across page loads (two tabs both work).
    let second = browser.get("/v1/default/login").await;
    assert_eq!(first.hidden("csrf"), second.hidden("csrf"));
    // Another browser gets another one, and a malformed cookie is replaced.
    let mut other = Browser::new(&app);
    assert_ne!(
        other.get("/v1/default/login").await.hidden("csrf"),
        first.hidden("csrf")
    );
    let mut odd = Browser::new(&app);
    odd.cookies
        .insert("keygate_login".into(), "lb_short".into());
    let page = odd.get("/v1/default/login").await;
    assert_ne!(odd.cookies["keygate_login"], "lb_short");
    assert!(page.set_cookie("keygate_login").is_some());
}
