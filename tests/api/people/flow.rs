//! Signing in with an emailed code: the way through, and each way it is refused.

use std::time::Duration;

use keygate::types::Role;
use reqwest::StatusCode;
use sea_orm::EntityTrait;
use serde_json::json;

use super::{Browser, ORG, add_person, mails_to, spawn_with_mail};

#[tokio::test]
async fn a_person_signs_in_with_the_mailed_code_and_goes_on_to_return_to() {
    let (app, sink) = spawn_with_mail().await;
    let alice = add_person(&app, ORG, "alice@example.com", Role::Member).await;
    let mut browser = Browser::new(&app);

    let login = browser.get("/v1/default/login").await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(login.html.contains(r#"<label for="email">"#));
    assert!(
        login.html.contains(
            r#"<input type="email" id="email" name="email" autocomplete="email" required"#
        )
    );
    assert!(
        login
            .html
            .contains(r#"<button type="submit" class="primary">"#)
    );
    assert!(browser.cookies.contains_key("keygate_login"));

    let return_to = "/v1/default/device?user_code=ABCD-EFGH";
    // Typed with capitals and spaces: the address is normalized.
    let code_page = browser
        .ask_code(ORG, "  Alice@Example.com ", Some(return_to))
        .await;
    assert!(
        code_page.html.contains(
            "If <strong>alice@example.com</strong> may sign in to default, we sent a code"
        ),
        "{}",
        code_page.html
    );
    assert!(code_page.html.contains(
        r#"name="code" autocomplete="one-time-code" inputmode="numeric" pattern="[0-9]{6}" maxlength="6" required"#
    ));
    assert_eq!(code_page.hidden("return_to"), return_to);

    let mail = sink.mail_to("alice@example.com").await;
    assert_eq!(
        mail.header("subject").as_deref(),
        Some("Your keygate sign-in code")
    );
    let code = mail.code();
    assert!(mail.body().contains("UTC (10 minutes"), "{}", mail.body());

    let done = browser.submit_code(ORG, &code_page, &code).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
    assert_eq!(done.location(), return_to);
    assert!(done.set_cookie("keygate_session").is_some());
    // The pre-login cookie has done its work.
    assert!(!browser.cookies.contains_key("keygate_login"));

    // `people::signed_in` knows the person now: the sign-in page says who it is, and with a
    // return_to it goes straight on.
    assert_eq!(
        browser.signed_in_as(ORG).await.as_deref(),
        Some("alice@example.com")
    );
    let again = browser
        .get("/v1/default/login?return_to=%2Fv1%2Fdefault%2Foauth%2Fauthorize%3Fx%3D1")
        .await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    assert_eq!(again.location(), "/v1/default/oauth/authorize?x=1");

    let events = app.audit_events(ORG).await;
    let actions: Vec<_> = events.iter().map(|e| e.action.as_str()).collect();
    assert!(actions.contains(&"login.code_sent"), "{actions:?}");
    let succeeded = events
        .iter()
        .find(|e| e.action == "login.succeeded")
        .unwrap();
    assert_eq!(succeeded.actor_user_id.as_deref(), Some(alice.id.as_str()));
    assert_eq!(succeeded.ip.as_deref(), Some("127.0.0.1"));
}

#[tokio::test]
async fn the_code_is_stored_only_as_a_digest() {
    let (app, sink) = spawn_with_mail().await;
    add_person(&app, ORG, "alice@example.com", Role::Member).await;
    let mut browser = Browser::new(&app);
    let page = browser.ask_code(ORG, "alice@example.com", None).await;
    let code = sink.mail_to("alice@example.com").await.code();
    let rows = entity::login_challenge::Entity::find()
        .all(&sea_orm::Database::connect(&app.db.url).await.unwrap())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.id, page.hidden("challenge"));
    let stored = format!("{row:?}");
    assert!(!stored.contains("alice@example.com"), "{stored}");
    assert_eq!(row.code_digest.len(), 64);
    let expected = app
        .state
        .pepper
        .digest("login_code", format!("{}\0{code}", row.id).as_bytes());
    assert_eq!(row.code_digest, expected);
    assert!(!row.code_digest.contains(&code));
    // Every table is in the dump, and it holds no cookie value in clear.
    let dump = app.db.dump().await;
    for value in browser.cookies.values() {
        assert!(!dump.contains(value.as_str()));
    }
}

#[tokio::test]
async fn wrong_codes_say_how_many_tries_are_left_and_the_fifth_ends_the_code() {
    let (app, sink) = spawn_with_mail().await;
    add_person(&app, ORG, "alice@example.com", Role::Member).await;
    let mut browser = Browser::new(&app);
    let page = browser.ask_code(ORG, "alice@example.com", None).await;
    let code = sink.mail_to("alice@example.com").await.code();
    let wrong = if code == "000000" { "111111" } else { "000000" };

    // Not six digits: said so, and not counted.
    for malformed in ["12345", "abcdef", "1234567", ""] {
        let again = browser.submit_code(ORG, &page, malformed).await;
        assert_eq!(again.status, StatusCode::BAD_REQUEST);
        assert!(
            again.html.contains("Enter the 6-digit code"),
            "{}",
            again.html
        );
    }
    for left in (1..=4).rev() {
        let again = browser.submit_code(ORG, &page, wrong).await;
        assert_eq!(again.status, StatusCode::BAD_REQUEST);
        let plural = if left == 1 { "" } else { "s" };
        assert!(
            again.html.contains(&format!(
                "That code is not right. You can try {left} more time{plural}."
            )),
            "{}",
            again.html
        );
        // The page keeps its form: the same challenge, a fresh try.
        assert_eq!(again.hidden("challenge"), page.hidden("challenge"));
        assert!(again.html.contains(r#"aria-invalid="true""#));
    }
    let fifth = browser.submit_code(ORG, &page, wrong).await;
    assert_eq!(fifth.status, StatusCode::BAD_REQUEST);
    assert!(
        fifth.html.contains("Too many wrong codes"),
        "{}",
        fifth.html
    );
    // The right code cannot bring it back.
    let late = browser.submit_code(ORG, &page, &code).await;
    assert_eq!(late.status, StatusCode::BAD_REQUEST);
    assert!(late.html.contains("Too many wrong codes"));
    assert!(late.set_cookie("keygate_session").is_none());
    assert_eq!(browser.signed_in_as(ORG).await, None);

    let failures: Vec<_> = app
        .audit_events(ORG)
        .await
        .into_iter()
        .filter(|e| e.action == "login.failed")
        .map(|e| e.reason.unwrap_or_default())
        .collect();
    assert_eq!(failures.iter().filter(|r| *r == "wrong_code").count(), 4);
    assert_eq!(
        failures
            .iter()
            .filter(|r| *r == "too_many_attempts")
            .count(),
        1
    );

    // A new code works.
    let page = browser.ask_code(ORG, "alice@example.com", None).await;
    let code = sink.mail_number("alice@example.com", 2).await.code();
    let done = browser.submit_code(ORG, &page, &code).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_code_expires_after_ten_minutes() {
    let (app, sink) = spawn_with_mail().await;
    add_person(&app, ORG, "alice@example.com", Role::Member).await;
    add_person(&app, ORG, "bob@example.com", Role::Member).await;

    // 9 minutes 59 seconds: still good.
    let mut bob = Browser::new(&app);
    let page = bob.ask_code(ORG, "bob@example.com", None).await;
    let code = sink.mail_to("bob@example.com").await.code();
    app.clock.advance(Duration::from_secs(599));
    let done = bob.submit_code(ORG, &page, &code).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);

    let mut alice = Browser::new(&app);
    let page = alice.ask_code(ORG, "alice@example.com", None).await;
    let code = sink.mail_to("alice@example.com").await.code();
    app.clock.advance(Duration::from_secs(600));
    let late = alice.submit_code(ORG, &page, &code).await;
    assert_eq!(late.status, StatusCode::BAD_REQUEST);
    assert!(late.html.contains("That code has expired"), "{}", late.html);
    assert!(late.html.contains("Ask for a new one"));
    assert!(late.set_cookie("keygate_session").is_none());
}

#[tokio::test]
async fn a_code_signs_in_once() {
    let (app, sink) = spawn_with_mail().await;
    add_person(&app, ORG, "alice@example.com", Role::Member).await;
    let mut browser = Browser::new(&app);
    let page = browser.ask_code(ORG, "alice@example.com", None).await;
    let code = sink.mail_to("alice@example.com").await.code();
    let fields = Browser::code_fields(&page, &code);
    let pre_login = browser.cookies.clone();
    let done = browser.submit_code(ORG, &page, &code).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);

    // Replayed from a copy of the browser as it was before (its pre-login cookie, no
    // session): refused.
    let mut replay = Browser::new(&app);
    replay.cookies = pre_login;
    let fields: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let again = replay.post("/v1/default/login/code", &fields).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert!(
        again.html.contains("That code was used already"),
        "{}",
        again.html
    );
    assert!(again.set_cookie("keygate_session").is_none());
    // The browser that signed in and clicks twice just goes on.
    browser.cookies.insert(
        "keygate_login".into(),
        replay.cookies["keygate_login"].clone(),
    );
    let twice = browser.post("/v1/default/login/code", &fields).await;
    assert_eq!(twice.status, StatusCode::SEE_OTHER);
    assert_eq!(twice.location(), "/v1/default/login");
}

#[tokio::test]
async fn a_code_only_works_in_the_browser_that_asked_for_it() {
    let (app, sink) = spawn_with_mail().await;
    add_person(&app, ORG, "alice@example.com", Role::Member).await;
    let mut asked = Browser::new(&app);
    let page = asked.ask_code(ORG, "alice@example.com", None).await;
    let code = sink.mail_to("alice@example.com").await.code();

    // Another browser with a pre-login cookie and CSRF token of its own, the challenge id
    // and the right code.
    let mut other = Browser::new(&app);
    let own = other.get("/v1/default/login").await;
    let mut fields = Browser::code_fields(&page, &code);
    for (k, v) in &mut fields {
        if k == "csrf" {
            *v = own.hidden("csrf");
        }
    }
    let fields: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let stolen = other.post("/v1/default/login/code", &fields).await;
    assert_eq!(stolen.status, StatusCode::BAD_REQUEST);
    assert!(
        stolen.html.contains("This sign-in has ended"),
        "{}",
        stolen.html
    );
    assert!(stolen.set_cookie("keygate_session").is_none());

    // That cost the real browser nothing, not even an attempt.
    let done = asked.submit_code(ORG, &page, &code).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn someone_who_is_not_a_user_gets_the_same_page_and_no_mail() {
    let (app, sink) = spawn_with_mail().await;
    add_person(&app, ORG, "alice@example.com", Role::Member).await;
    let disabled = add_person(&app, ORG, "dora@example.com", Role::Member).await;
    app.set_user_directly(&disabled.id, None, Some(true)).await;
    let other_org = app.create_org("acme").await;
    let _ = other_org;
    add_person(&app, "acme", "carol@example.com", Role::Member).await;

    let normalized = |page: &super::Page, email: &str| {
        page.html
            .replace(&page.hidden("challenge"), "CHALLENGE")
            .replace(&page.hidden("csrf"), "CSRF")
            .replace(email, "EMAIL")
    };
    let mut browser = Browser::new(&app);
    let user_page = browser.ask_code(ORG, "alice@example.com", None).await;
    let user_html = normalized(&user_page, "alice@example.com");
    let mut pages = Vec::new();
    for nobody in [
        "nobody@example.com",
        "dora@example.com",
        "carol@example.com",
    ] {
        let mut browser = Browser::new(&app);
        let page = browser.ask_code(ORG, nobody, None).await;
        assert_eq!(page.status, user_page.status);
        assert_eq!(normalized(&page, nobody), user_html);
        assert_eq!(
            page.headers.get("set-cookie").is_some(),
            user_page.headers.get("set-cookie").is_some()
        );
        // Its challenge takes attempts like any other, and no code is right.
        for code in ["000000", "123456"] {
            let again = browser.submit_code(ORG, &page, code).await;
            assert_eq!(again.status, StatusCode::BAD_REQUEST);
            assert!(again.html.contains("That code is not right"));
        }
        pages.push(page);
    }
    sink.mail_to("alice@example.com").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mails = sink.mails();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0].to, ["alice@example.com"]);
    assert_eq!(mails[0].from, "keygate@keygate.test");
}

#[tokio::test]
async fn logout_ends_the_browser_session() {
    let (app, sink) = spawn_with_mail().await;
    add_person(&app, ORG, "alice@example.com", Role::Member).await;
    let mut browser = Browser::new(&app);
    browser.sign_in(&sink, ORG, "alice@example.com").await;
    let session_cookie = browser.cookies["keygate_session"].clone();

    let signed_in = browser.get("/v1/default/login").await;
    let csrf = signed_in.hidden("csrf");
    assert!(
        signed_in
            .html
            .contains(r#"<form method="post" action="/v1/default/logout">"#)
    );
    let out = browser.post("/v1/default/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location(), "/v1/default/login");
    out.assert_protected();
    let cleared = out.set_cookie("keygate_session").unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(browser.signed_in_as(ORG).await, None);

    // The old cookie is worth nothing now, even if the browser kept it.
    let mut kept = Browser::new(&app);
    kept.cookies
        .insert("keygate_session".into(), session_cookie);
    assert_eq!(kept.signed_in_as(ORG).await, None);
    let events = app.audit_events(ORG).await;
    assert!(events.iter().any(|e| e.action == "logout"));

    // Reloading the sign-out address shows the sign-in page.
    let reload = browser.get("/v1/default/logout").await;
    assert_eq!(reload.status, StatusCode::SEE_OTHER);
    assert_eq!(reload.location(), "/v1/default/login");
}

#[tokio::test]
async fn a_disabled_or_deleted_users_browser_session_stops_working() {
    let (app, sink) = spawn_with_mail().await;
    let admin = app.create_user(ORG, Role::Admin).await;
    let token = app.signin(&admin).await["id_token"]
        .as_str()
        .unwrap()
        .to_owned();
    for (email, offboard) in [
        ("dora@example.com", "disable"),
        ("dan@example.com", "delete"),
    ] {
        let user = add_person(&app, ORG, email, Role::Member).await;
        let mut browser = Browser::new(&app);
        browser.sign_in(&sink, ORG, email).await;
        assert_eq!(browser.signed_in_as(ORG).await.as_deref(), Some(email));

        let url = app.url(&format!("/v1/default/users/{}", user.id));
        let request = match offboard {
            "disable" => app.client.patch(url).json(&json!({"disabled": true})),
            _ => app.client.delete(url),
        };
        let response = request.bearer_auth(&token).send().await.unwrap();
        assert!(
            response.status().is_success(),
            "{offboard}: {}",
            response.status()
        );

        assert_eq!(browser.signed_in_as(ORG).await, None, "{offboard}");
        // And no new code comes for them.
        let mut again = Browser::new(&app);
        again.ask_code(ORG, email, None).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(mails_to(&sink, "dora@example.com").len(), 1);
    assert_eq!(mails_to(&sink, "dan@example.com").len(), 1);
}

#[tokio::test]
async fn a_right_code_of_a_user_disabled_meanwhile_does_not_sign_in() {
    let (app, sink) = spawn_with_mail().await;
    let user = add_person(&app, ORG, "dora@example.com", Role::Member).await;
    let mut browser = Browser::new(&app);
    let page = browser.ask_code(ORG, "dora@example.com", None).await;
    let code = sink.mail_to("dora@example.com").await.code();
    app.set_user_directly(&user.id, None, Some(true)).await;
    let refused = browser.submit_code(ORG, &page, &code).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.html.contains("You cannot sign in"));
    assert!(refused.set_cookie("keygate_session").is_none());
}

#[tokio::test]
async fn a_session_of_one_organization_is_nothing_at_another() {
    let (app, sink) = spawn_with_mail().await;
    add_person(&app, ORG, "alice@example.com", Role::Member).await;
    app.create_org("acme").await;
    add_person(&app, "acme", "alice@example.com", Role::Member).await;
    let mut browser = Browser::new(&app);
    let done = browser.sign_in(&sink, ORG, "alice@example.com").await;
    let cookie = done.set_cookie("keygate_session").unwrap();
    assert!(cookie.contains("Path=/v1/default"), "{cookie}");
    // Even sent there by hand, it is not acme's.
    assert_eq!(browser.signed_in_as("acme").await, None);
}

#[tokio::test]
async fn signing_in_again_in_the_same_browser_ends_the_previous_session() {
    let (app, sink) = spawn_with_mail().await;
    add_person(&app, ORG, "alice@example.com", Role::Member).await;
    add_person(&app, ORG, "bob@example.com", Role::Member).await;
    // Two tabs of one browser asked for codes, for alice and for bob.
    let mut browser = Browser::new(&app);
    let alices_page = browser.ask_code(ORG, "alice@example.com", None).await;
    let bobs_page = browser.ask_code(ORG, "bob@example.com", None).await;
    let pre_login = browser.cookies["keygate_login"].clone();
    let code = sink.mail_to("alice@example.com").await.code();
    browser.submit_code(ORG, &alices_page, &code).await;
    let alices = browser.cookies["keygate_session"].clone();
    // Bob's tab answers with the pre-login cookie it was sent with.
    browser.cookies.insert("keygate_login".into(), pre_login);
    let code = sink.mail_to("bob@example.com").await.code();
    let done = browser.submit_code(ORG, &bobs_page, &code).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
    assert_eq!(
        browser.signed_in_as(ORG).await.as_deref(),
        Some("bob@example.com")
    );
    let mut old = Browser::new(&app);
    old.cookies.insert("keygate_session".into(), alices);
    assert_eq!(old.signed_in_as(ORG).await, None);
}
