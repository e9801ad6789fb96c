//! The device authorization grant (RFC 8628) over HTTP: the device authorization endpoint,
//! the verification page a signed-in person approves on, the token endpoint's polling
//! answers, and `keygate login`, the real binary running the flow from a terminal.
//! Browser sessions are mostly started directly (`people::session::start`); `signin` walks
//! the real sign-in with an emailed code once.

mod browser;
mod flow;
mod login;
mod page;
mod races;
mod signin;

use reqwest::{Response, StatusCode};
use serde_json::Value;

use crate::helpers::{Credentials, TestApp, json};

pub const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A person signed in to an organization's pages in a browser of their own.
pub struct Browser {
    pub org: String,
    pub cookie: String,
    pub csrf: String,
    /// Follows no redirect (the tests look at them).
    client: reqwest::Client,
}

/// Starts a browser session of `user_id` in `org` (as the sign-in page would).
pub async fn browser(app: &TestApp, org: &str, user_id: &str) -> Browser {
    let model = keygate::admin::find_org(&app.state.storage, org)
        .await
        .unwrap();
    let user = keygate::storage::users::get(&app.state.storage, &model.id, user_id)
        .await
        .unwrap()
        .unwrap();
    let started = keygate::people::session::start(&app.state, &model, &user)
        .await
        .unwrap();
    Browser {
        org: org.to_owned(),
        cookie: format!("{}={}", started.cookie.name(), started.cookie.value()),
        csrf: started.person.csrf_token().to_owned(),
        client: no_redirects(),
    }
}

pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

impl Browser {
    pub async fn get(&self, app: &TestApp, path_and_query: &str) -> Response {
        self.client
            .get(app.url(path_and_query))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap()
    }

    /// Posts `fields` to the verification page (the CSRF token is not added).
    pub async fn post_raw(&self, app: &TestApp, fields: &[(&str, &str)]) -> Response {
        self.client
            .post(app.url(&format!("/v1/{}/device", self.org)))
            .header("cookie", &self.cookie)
            .form(fields)
            .send()
            .await
            .unwrap()
    }

    /// Posts `fields` with this session's CSRF token; the status and the page.
    pub async fn post(&self, app: &TestApp, fields: &[(&str, &str)]) -> (StatusCode, String) {
        let mut all = vec![("csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        let res = self.post_raw(app, &all).await;
        (res.status(), res.text().await.unwrap())
    }

    /// Approves (`"approve"`) or denies (`"deny"`) the request of `user_code`.
    pub async fn decide(
        &self,
        app: &TestApp,
        user_code: &str,
        action: &str,
    ) -> (StatusCode, String) {
        self.post(app, &[("user_code", user_code), ("action", action)])
            .await
    }

    pub async fn approve(&self, app: &TestApp, user_code: &str) {
        let (status, page) = self.decide(app, user_code, "approve").await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(page.contains("You can return to your device"), "{page}");
    }
}

/// `POST /v1/{org}/oauth/device_authorization` as `creds`' key (HTTP Basic), with `extra`.
pub async fn authorize(
    app: &TestApp,
    creds: &Credentials,
    extra: &[(&str, &str)],
) -> (StatusCode, Value) {
    json(
        app.client
            .post(app.url(&format!("/v1/{}/oauth/device_authorization", creds.org)))
            .basic_auth(&creds.api_key_id, Some(&creds.api_key))
            .form(extra)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// A device authorization that succeeded: its body.
pub async fn started(app: &TestApp, creds: &Credentials, extra: &[(&str, &str)]) -> Value {
    let (status, body) = authorize(app, creds, extra).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Polls the token endpoint with `device_code` as `creds`' key, with an optional DPoP proof.
pub async fn poll_with(
    app: &TestApp,
    creds: &Credentials,
    device_code: &str,
    proof: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = app
        .client
        .post(app.url(&format!("/v1/{}/oauth/token", creds.org)))
        .basic_auth(&creds.api_key_id, Some(&creds.api_key))
        .form(&[("grant_type", GRANT), ("device_code", device_code)]);
    if let Some(proof) = proof {
        req = req.header("dpop", proof);
    }
    json(req.send().await.unwrap()).await
}

pub async fn poll(app: &TestApp, creds: &Credentials, device_code: &str) -> (StatusCode, Value) {
    poll_with(app, creds, device_code, None).await
}

/// Asserts an RFC 6749 §5.2 error with `code` and status 400.
pub fn assert_oauth_error(status: StatusCode, body: &Value, code: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{body}"
    );
}

pub fn str_of<'a>(body: &'a Value, field: &str) -> &'a str {
    body[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {body}"))
}
