//! Asking for codes is throttled per email address (5 per 15 minutes by default) and per
//! client IP (30 per 15 minutes): past it, 429 with a clear page and `Retry-After`, and no
//! mail. Someone who is not a user is throttled exactly the same.

use std::time::Duration;

use keygate::housekeeping::run_once;
use keygate::types::Role;
use reqwest::StatusCode;

use super::{Browser, ORG, Page, add_person, mails_to, spawn_with_mail, spawn_with_mail_and};

async fn ask(browser: &mut Browser, email: &str) -> Page {
    let login = browser.get("/v1/default/login").await;
    browser
        .post(
            "/v1/default/login",
            &[
                ("email", email),
                ("csrf", &login.hidden("csrf")),
                ("return_to", ""),
            ],
        )
        .await
}

fn assert_throttled(page: &Page, retry_after: u64) {
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS, "{}", page.html);
    page.assert_protected();
    assert!(
        page.html.contains("Too many sign-in codes"),
        "{}",
        page.html
    );
    let seconds: u64 = page.header("retry-after").unwrap().parse().unwrap();
    assert!(
        (retry_after.saturating_sub(2)..=retry_after).contains(&seconds),
        "Retry-After {seconds}, expected about {retry_after}"
    );
}

#[tokio::test]
async fn an_email_gets_five_codes_per_fifteen_minutes() {
    let (app, sink) = spawn_with_mail().await;
    add_person(&app, ORG, "alice@example.com", Role::Member).await;
    let mut browser = Browser::new(&app);
    for _ in 0..5 {
        assert_eq!(
            ask(&mut browser, "alice@example.com").await.status,
            StatusCode::OK
        );
        app.clock.advance(Duration::from_secs(60));
    }
    sink.mail_number("alice@example.com", 5).await;
    // The sixth, 5 minutes after the first: wait until the first leaves the window.
    let sixth = ask(&mut browser, "alice@example.com").await;
    assert_throttled(&sixth, 600);
    assert!(sixth.html.contains("Wait 10 minutes"), "{}", sixth.html);
    // Another address is not held up, nor is the same address at another organization.
    add_person(&app, ORG, "bob@example.com", Role::Member).await;
    assert_eq!(
        ask(&mut browser, "bob@example.com").await.status,
        StatusCode::OK
    );

    // A refused request did not count: once the first code left the window, one more.
    app.clock.advance(Duration::from_secs(600));
    assert_eq!(
        ask(&mut browser, "alice@example.com").await.status,
        StatusCode::OK
    );
    assert_throttled(&ask(&mut browser, "alice@example.com").await, 60);
    sink.mail_number("alice@example.com", 6).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(mails_to(&sink, "alice@example.com").len(), 6);
}

#[tokio::test]
async fn someone_who_is_not_a_user_is_throttled_the_same() {
    let (app, _sink) = spawn_with_mail().await;
    let mut browser = Browser::new(&app);
    for _ in 0..5 {
        assert_eq!(
            ask(&mut browser, "nobody@example.com").await.status,
            StatusCode::OK
        );
    }
    assert_throttled(&ask(&mut browser, "nobody@example.com").await, 900);
}

#[tokio::test]
async fn a_client_ip_gets_its_own_limit_across_addresses_and_organizations() {
    let (app, sink) = spawn_with_mail_and(|s| s.login.codes_per_ip = 3).await;
    add_person(&app, ORG, "alice@example.com", Role::Member).await;
    app.create_org("acme").await;
    let mut browser = Browser::new(&app);
    assert_eq!(
        ask(&mut browser, "a@example.com").await.status,
        StatusCode::OK
    );
    assert_eq!(
        ask(&mut browser, "b@example.com").await.status,
        StatusCode::OK
    );
    let login = browser.get("/v1/acme/login").await;
    let acme = browser
        .post(
            "/v1/acme/login",
            &[("email", "c@example.com"), ("csrf", &login.hidden("csrf"))],
        )
        .await;
    assert_eq!(acme.status, StatusCode::OK);
    // The fourth from this IP, for a real user: refused, and no mail.
    assert_throttled(&ask(&mut browser, "alice@example.com").await, 900);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sink.mails().is_empty());
    app.clock.advance(Duration::from_secs(15 * 60));
    assert_eq!(
        ask(&mut browser, "alice@example.com").await.status,
        StatusCode::OK
    );
    sink.mail_to("alice@example.com").await;
}

#[tokio::test]
async fn housekeeping_keeps_challenges_while_they_count_and_then_deletes_them() {
    let (app, sink) = spawn_with_mail().await;
    add_person(&app, ORG, "alice@example.com", Role::Member).await;
    let mut browser = Browser::new(&app);
    for _ in 0..5 {
        assert_eq!(
            ask(&mut browser, "alice@example.com").await.status,
            StatusCode::OK
        );
    }
    sink.mail_number("alice@example.com", 5).await;
    // Expired (10 minutes) but still in the window: kept, and still counted.
    app.clock.advance(Duration::from_secs(11 * 60));
    let purged = run_once(&app.state, app.now()).await.unwrap();
    assert_eq!(purged.login_challenges, 0);
    assert_throttled(&ask(&mut browser, "alice@example.com").await, 240);
    // Out of the window too: deleted.
    app.clock.advance(Duration::from_secs(15 * 60));
    let purged = run_once(&app.state, app.now()).await.unwrap();
    assert_eq!(purged.login_challenges, 5);
}
