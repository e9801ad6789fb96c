//! The whole way a person takes, with the real sign-in: the link the device shows, the
//! sign-in page, the emailed code, back to the confirmation, Approve; the device's tokens
//! are that person's.

use keygate::types::Role;
use reqwest::StatusCode;

use super::{poll, started, str_of};
use crate::helpers::claims_of;
use crate::people::{Browser, add_person, spawn_with_mail};

#[tokio::test]
async fn the_link_leads_through_the_emailed_code_sign_in_back_to_the_confirmation() {
    let (app, sink) = spawn_with_mail().await;
    let email = "pat@device.test";
    let person = add_person(&app, "default", email, Role::Member).await;
    let codes = started(&app, &app.owner, &[]).await;
    let user_code = str_of(&codes, "user_code");
    let link = str_of(&codes, "verification_uri_complete")
        .strip_prefix(&app.address)
        .unwrap()
        .to_owned();

    let mut browser = Browser::new(&app);
    let first = browser.get(&link).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER);
    first.assert_protected();
    assert!(first.location().starts_with("/v1/default/login?return_to="));
    let code_page = browser.ask_code("default", email, Some(&link)).await;
    let code = sink.mail_number(email, 1).await.code();
    let done = browser.submit_code("default", &code_page, &code).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
    assert_eq!(done.location(), link);

    let confirm = browser.get(&link).await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.html);
    confirm.assert_protected();
    assert!(confirm.html.contains(user_code), "{}", confirm.html);
    let csrf = confirm.hidden("csrf");
    let approved = browser
        .post(
            "/v1/default/device",
            &[
                ("csrf", csrf.as_str()),
                ("user_code", confirm.hidden("user_code").as_str()),
                ("action", "approve"),
            ],
        )
        .await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.html);
    assert!(approved.html.contains("You can return to your device"));

    let (status, tokens) = poll(&app, &app.owner, str_of(&codes, "device_code")).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(
        claims_of(str_of(&tokens, "access_token"))["sub"],
        person.id.as_str()
    );
}
