//! The mail itself, over real SMTP through lettre: who it is from and to, what it says, and
//! that `smtp://` never sends in clear when the server cannot do STARTTLS.

use std::time::Duration;

use keygate::types::Role;

use super::smtp_sink::SmtpSink;
use super::{Browser, ORG, add_person, spawn_with_mail};
use crate::helpers::spawn_app_with;

#[tokio::test]
async fn the_code_mail_is_plain_text_from_the_configured_sender() {
    let (app, sink) = spawn_with_mail().await;
    add_person(&app, ORG, "alice@example.com", Role::Member).await;
    Browser::new(&app)
        .ask_code(ORG, "alice@example.com", None)
        .await;
    let mail = sink.mail_to("alice@example.com").await;
    assert_eq!(mail.from, "keygate@keygate.test");
    assert_eq!(mail.to, ["alice@example.com"]);
    assert_eq!(
        mail.header("from").as_deref(),
        Some("keygate <keygate@keygate.test>")
    );
    assert_eq!(mail.header("to").as_deref(), Some("alice@example.com"));
    assert!(
        mail.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain")),
        "{}",
        mail.data
    );
    let code = mail.code();
    let body = mail.body();
    assert!(body.contains("sign in to default on keygate:"), "{body}");
    assert!(body.contains("It works once, until "), "{body}");
    assert_eq!(body.matches(&code).count(), 1);
    // EHLO names keygate by its public host.
    let sessions = sink.wait_sessions(1).await;
    assert_eq!(sessions[0][0], "EHLO [127.0.0.1]", "{:?}", sessions[0]);
}

#[tokio::test]
async fn smtp_without_tls_none_needs_starttls_and_sends_nothing_in_clear() {
    let sink = SmtpSink::start().await;
    let url = format!("smtp://127.0.0.1:{}", sink.port);
    let app = spawn_app_with(|s| {
        s.smtp.url = Some(url.into());
        s.smtp.from = Some("keygate@keygate.test".into());
    })
    .await;
    add_person(&app, ORG, "alice@example.com", Role::Member).await;
    Browser::new(&app)
        .ask_code(ORG, "alice@example.com", None)
        .await;
    let sessions = sink.wait_sessions(1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let commands = sink.sessions().concat();
    assert!(
        commands.iter().any(|c| c.starts_with("EHLO")),
        "{sessions:?}"
    );
    assert!(
        !commands
            .iter()
            .any(|c| c.starts_with("MAIL") || c.starts_with("DATA")),
        "{commands:?}"
    );
    assert!(sink.mails().is_empty());
}

#[tokio::test]
async fn an_smtp_url_without_a_sender_or_with_a_bad_scheme_stops_the_start() {
    let data = tempfile::tempdir().unwrap();
    let db = crate::helpers::TestDatabase::create(data.path()).await;
    for (url, from, expected) in [
        (
            "smtp://127.0.0.1:25?tls=none",
            None,
            "smtp.from is required",
        ),
        (
            "http://mail.example.com",
            Some("k@keygate.test"),
            "smtp.url",
        ),
        (
            "smtps://mail.example.com",
            Some("not a mailbox"),
            "smtp.from",
        ),
    ] {
        let mut settings = crate::helpers::test_settings(data.path(), &db);
        settings.smtp.url = Some(url.into());
        settings.smtp.from = from.map(str::to_owned);
        let clock = std::sync::Arc::new(keygate::clock::ManualClock::starting_now());
        let err = keygate::startup::Application::build(settings, clock)
            .await
            .err()
            .unwrap_or_else(|| panic!("{url} started"));
        assert!(format!("{err:#}").contains(expected), "{url}: {err:#}");
    }
}
