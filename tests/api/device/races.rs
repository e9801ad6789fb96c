//! Races the database must decide: two polls of one approved code (one set of tokens),
//! Approve against Deny (one decision), and a burst of wrong codes against the throttle
//! (no more lookups than the limit).

use keygate::types::Role;
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, Database, EntityTrait, PaginatorTrait, QueryFilter};

use super::{assert_oauth_error, browser, poll, started, str_of};
use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn two_polls_of_one_approved_code_get_one_set_of_tokens() {
    let app = spawn_app().await;
    let person = app.create_user("default", Role::Member).await;
    let browser = browser(&app, "default", &person.user_id).await;
    let rounds = 6;
    for _ in 0..rounds {
        let codes = started(&app, &app.owner, &[]).await;
        browser.approve(&app, str_of(&codes, "user_code")).await;
        let device_code = str_of(&codes, "device_code");
        let barrier = tokio::sync::Barrier::new(2);
        let one = async {
            barrier.wait().await;
            poll(&app, &app.owner, device_code).await
        };
        let two = async {
            barrier.wait().await;
            poll(&app, &app.owner, device_code).await
        };
        let (a, b) = tokio::join!(one, two);
        let (won, lost) = if a.0 == StatusCode::OK {
            (a, b)
        } else {
            (b, a)
        };
        assert_eq!(won.0, StatusCode::OK, "{}", won.1);
        assert_oauth_error(lost.0, &lost.1, "invalid_grant");
    }
    let db = Database::connect(&app.db.url).await.unwrap();
    let sessions = entity::session::Entity::find()
        .filter(entity::session::Column::UserId.eq(person.user_id.as_str()))
        .count(&db)
        .await
        .unwrap();
    assert_eq!(sessions, rounds, "one session per approval");
    db.close().await.ok();
}

#[tokio::test]
async fn approve_and_deny_at_once_decide_once() {
    let app = spawn_app().await;
    let admin = app.create_user("default", Role::Admin).await;
    let owner = browser(&app, "default", &app.owner.user_id).await;
    let other = browser(&app, "default", &admin.user_id).await;
    for _ in 0..6 {
        let codes = started(&app, &app.owner, &[]).await;
        let user_code = str_of(&codes, "user_code");
        let barrier = tokio::sync::Barrier::new(2);
        let approve = async {
            barrier.wait().await;
            owner.decide(&app, user_code, "approve").await
        };
        let deny = async {
            barrier.wait().await;
            other.decide(&app, user_code, "deny").await
        };
        let (approved, denied) = tokio::join!(approve, deny);
        let statuses = [approved.0, denied.0];
        assert!(
            statuses.contains(&StatusCode::OK) && statuses.contains(&StatusCode::BAD_REQUEST),
            "{statuses:?}"
        );
        let (status, body) = poll(&app, &app.owner, str_of(&codes, "device_code")).await;
        if approved.0 == StatusCode::OK {
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(
                crate::helpers::claims_of(str_of(&body, "access_token"))["sub"],
                app.owner.user_id.as_str()
            );
        } else {
            assert_oauth_error(status, &body, "access_denied");
        }
    }
}

#[tokio::test]
async fn a_burst_of_wrong_codes_gets_no_more_lookups_than_the_limit() {
    let app = spawn_app_with(|s| s.device.user_code_failures = 3).await;
    let browser = browser(&app, "default", &app.owner.user_id).await;
    let codes = started(&app, &app.owner, &[]).await;
    let user_code = str_of(&codes, "user_code");
    let wrong = if user_code == "BBBB-BBBB" {
        "CCCC-CCCC"
    } else {
        "BBBB-BBBB"
    };
    let fields = [("user_code", wrong)];
    let burst = (0..10).map(|_| browser.post(&app, &fields));
    let statuses: Vec<StatusCode> = futures_util::future::join_all(burst)
        .await
        .into_iter()
        .map(|(status, _)| status)
        .collect();
    let mut looked_up = statuses
        .iter()
        .filter(|s| **s == StatusCode::BAD_REQUEST)
        .count();
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::BAD_REQUEST || *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    // Some of the burst may have been refused while others were counted; one by one, the
    // lookups reach exactly the limit and no further.
    loop {
        assert!(looked_up <= 3, "{looked_up} lookups: {statuses:?}");
        let (status, _) = browser.post(&app, &[("user_code", wrong)]).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
        assert_eq!(status, StatusCode::BAD_REQUEST);
        looked_up += 1;
    }
    assert_eq!(looked_up, 3);
    let (status, _) = browser.post(&app, &[("user_code", user_code)]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}
