//! `return_to` is a path of the organization's pages or nothing: no open redirect, before
//! or after signing in.

use keygate::types::Role;
use reqwest::StatusCode;

use super::{Browser, ORG, add_person, spawn_with_mail, spawn_with_mail_and};

const FOREIGN: [&str; 10] = [
    "https://evil.example/",
    "//evil.example/v1/default/login",
    "/\\evil.example",
    "/v1/default/..//evil.example",
    "/v1/default/../other/login",
    "/v1/default/%2e%2e/other/login",
    "/v1/acme/oauth/authorize",
    "/v1/defaultx/login",
    "javascript:alert(1)",
    "/v1/default/x\r\nSet-Cookie: a=b",
];

#[tokio::test]
async fn a_return_to_outside_the_organization_is_never_followed() {
    let (app, sink) = spawn_with_mail_and(|s| s.login.codes_per_email = 100).await;
    add_person(&app, ORG, "alice@example.com", Role::Member).await;
    app.create_org("acme").await;
    let mut browser = Browser::new(&app);
    for foreign in FOREIGN {
        // Before signing in, the form does not carry it on.
        let page = browser
            .ask_code(ORG, "alice@example.com", Some(foreign))
            .await;
        assert_eq!(page.hidden("return_to"), "", "{foreign:?}");
        // Even posted by hand with the code, it is replaced by the sign-in page.
        let code = sink
            .mail_number(
                "alice@example.com",
                super::mails_to(&sink, "alice@example.com").len() + 1,
            )
            .await
            .code();
        let mut fields = Browser::code_fields(&page, &code);
        for (k, v) in &mut fields {
            if k == "return_to" {
                *v = foreign.to_owned();
            }
        }
        let fields: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let done = browser.post("/v1/default/login/code", &fields).await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{foreign:?}");
        assert_eq!(done.location(), "/v1/default/login", "{foreign:?}");

        // Signed in, the sign-in page shows who is signed in instead of following it.
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("return_to", foreign)
            .finish();
        let page = browser.get(&format!("/v1/default/login?{query}")).await;
        assert_eq!(page.status, StatusCode::OK, "{foreign:?}");
        assert!(page.html.contains("You are signed in as"));
        let csrf = page.hidden("csrf");
        browser.post("/v1/default/logout", &[("csrf", &csrf)]).await;
    }
}

#[tokio::test]
async fn a_return_to_of_the_organization_is_followed_with_its_query() {
    let (app, sink) = spawn_with_mail().await;
    add_person(&app, ORG, "alice@example.com", Role::Member).await;
    let mut browser = Browser::new(&app);
    let to = "/v1/default/oauth/authorize?client_id=c&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&state=x&scope=a+b";
    let page = browser.ask_code(ORG, "alice@example.com", Some(to)).await;
    assert_eq!(page.hidden("return_to"), to);
    // The code page's "start again" link keeps it too.
    assert!(
        page.html
            .contains("/v1/default/login?return_to=%2Fv1%2Fdefault%2Foauth%2Fauthorize%3F")
    );
    let code = sink.mail_to("alice@example.com").await.code();
    let done = browser.submit_code(ORG, &page, &code).await;
    assert_eq!(done.location(), to);
}
