//! A code signs in once, even when submissions of it race (eight at once, on four workers): consuming a challenge is a
//! conditional `UPDATE` that one of them wins. And concurrent guesses share the challenge's
//! five attempts: each is taken before its code is compared, so twenty racing guesses get
//! five comparisons, not twenty.

use std::sync::Arc;

use keygate::types::Role;
use reqwest::StatusCode;
use tokio::sync::Barrier;

use super::{Browser, ORG, add_person, spawn_with_mail_and};

const ROUNDS: usize = 5;
const RACERS: usize = 8;

#[tokio::test]
async fn concurrent_submissions_of_the_right_code_sign_in_once() {
    let (app, sink) = spawn_with_mail_and(|s| {
        s.login.codes_per_email = 100;
        s.server.workers = Some(4);
    })
    .await;
    add_person(&app, ORG, "alice@example.com", Role::Member).await;
    for round in 1..=ROUNDS {
        let mut browser = Browser::new(&app);
        let page = browser.ask_code(ORG, "alice@example.com", None).await;
        let code = sink.mail_number("alice@example.com", round).await.code();
        let fields = Browser::code_fields(&page, &code);
        let barrier = Arc::new(Barrier::new(RACERS));
        let racers: Vec<_> = (0..RACERS)
            .map(|_| {
                let fields: Vec<(&str, &str)> = fields
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let request = browser.post_request("/v1/default/login/code", &fields);
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    let response = request.send().await.unwrap();
                    let session = response
                        .headers()
                        .get_all("set-cookie")
                        .iter()
                        .any(|c| c.to_str().unwrap().starts_with("keygate_session=bs_"));
                    (response.status(), session, response.text().await.unwrap())
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for racer in racers {
            outcomes.push(racer.await.unwrap());
        }
        let winners: Vec<_> = outcomes.iter().filter(|(_, session, _)| *session).collect();
        assert_eq!(winners.len(), 1, "round {round}: {outcomes:?}");
        assert_eq!(winners[0].0, StatusCode::SEE_OTHER);
        let loser = outcomes.iter().find(|(_, session, _)| !*session).unwrap();
        assert_eq!(loser.0, StatusCode::BAD_REQUEST, "round {round}");
        assert!(
            loser.2.contains("That code was used already"),
            "{}",
            loser.2
        );
    }
    // Exactly one browser session per round.
    let db = sea_orm::Database::connect(&app.db.url).await.unwrap();
    use sea_orm::EntityTrait;
    let sessions = entity::browser_session::Entity::find()
        .all(&db)
        .await
        .unwrap();
    assert_eq!(sessions.len(), ROUNDS);
}

#[tokio::test]
async fn concurrent_guesses_get_no_more_than_five_comparisons() {
    const GUESSES: usize = 20;
    let (app, sink) = spawn_with_mail_and(|s| s.server.workers = Some(4)).await;
    add_person(&app, ORG, "alice@example.com", Role::Member).await;
    let mut browser = Browser::new(&app);
    let page = browser.ask_code(ORG, "alice@example.com", None).await;
    let code: u32 = sink
        .mail_to("alice@example.com")
        .await
        .code()
        .parse()
        .unwrap();
    let barrier = Arc::new(Barrier::new(GUESSES));
    let guesses: Vec<_> = (1..=GUESSES)
        .map(|i| {
            let guess = format!("{:06}", (code + u32::try_from(i).unwrap()) % 1_000_000);
            let fields = Browser::code_fields(&page, &guess);
            let fields: Vec<(&str, &str)> = fields
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let request = browser.post_request("/v1/default/login/code", &fields);
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let response = request.send().await.unwrap();
                response.text().await.unwrap()
            })
        })
        .collect();
    let mut wrong = 0;
    for guess in guesses {
        let html = guess.await.unwrap();
        assert!(
            html.contains("That code is not right") || html.contains("Too many wrong codes"),
            "{html}"
        );
        wrong += 1;
    }
    assert_eq!(wrong, GUESSES);
    // One audit event per comparison: five, however many guesses raced.
    let compared = app
        .audit_events(ORG)
        .await
        .into_iter()
        .filter(|e| e.action == "login.failed")
        .count();
    assert_eq!(compared, 5);
    let row = {
        let db = sea_orm::Database::connect(&app.db.url).await.unwrap();
        use sea_orm::EntityTrait;
        entity::login_challenge::Entity::find()
            .all(&db)
            .await
            .unwrap()
            .remove(0)
    };
    assert_eq!(row.attempts, 5);
    // And the right code is now refused too.
    let late = browser.submit_code(ORG, &page, &format!("{code:06}")).await;
    assert!(late.html.contains("Too many wrong codes"));
}
