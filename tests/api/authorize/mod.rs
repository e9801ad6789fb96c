//! Authorization code + PKCE over real HTTP: the authorization endpoint and its consent
//! page, the `authorization_code` grant, sessions of browser clients, consents. People sign
//! in by a browser session started directly (the sign-in page is tested elsewhere).

mod code;
mod consents;
mod flow;
mod migration;
mod request;

use std::collections::HashMap;

use keygate::oauth::pkce;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Credentials, TestApp, json};

/// A registered browser client.
#[derive(Clone, Debug)]
pub struct Client {
    pub id: String,
    pub secret: Option<String>,
    pub redirect_uri: String,
}

/// A person signed in to an organization's pages in a browser.
pub struct Person {
    pub user_id: String,
    /// `keygate_session=…`, for the `Cookie` header.
    pub cookie: String,
    pub csrf: String,
}

/// A PKCE verifier and its S256 challenge.
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn new() -> Self {
        let verifier = keygate::ids::random_base62(64);
        Self {
            challenge: pkce::challenge_of(&verifier),
            verifier,
        }
    }
}

/// An HTTP client that shows redirects instead of following them.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// An access token of `creds` (client credentials).
pub async fn token_of(app: &TestApp, creds: &Credentials) -> String {
    let (status, body) = json(
        app.client
            .post(app.url(&format!("/v1/{}/oauth/token", creds.org)))
            .basic_auth(&creds.api_key_id, Some(&creds.api_key))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// Registers a browser client in `admin`'s organization (`auth`: its
/// `token_endpoint_auth_method`).
pub async fn register(
    app: &TestApp,
    admin: &Credentials,
    auth: &str,
    redirect_uri: &str,
) -> Client {
    let token = token_of(app, admin).await;
    let (status, body) = json(
        app.client
            .post(app.url(&format!("/v1/{}/clients", admin.org)))
            .bearer_auth(token)
            .json(&json!({
                "client_name": format!("Agent {auth}"),
                "redirect_uris": [redirect_uri],
                "token_endpoint_auth_method": auth,
            }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    Client {
        id: body["client_id"].as_str().unwrap().to_owned(),
        secret: body["client_secret"].as_str().map(str::to_owned),
        redirect_uri: redirect_uri.to_owned(),
    }
}

/// A public client of org `default` redirecting to `https://agent.example/cb`.
pub async fn public_client(app: &TestApp) -> Client {
    register(app, &app.owner, "none", "https://agent.example/cb").await
}

/// Starts a browser session for `user_id` of `org`.
pub async fn sign_in(app: &TestApp, org: &str, user_id: &str) -> Person {
    let org = keygate::admin::find_org(&app.state.storage, org)
        .await
        .unwrap();
    let user = keygate::storage::users::get(&app.state.storage, &org.id, user_id)
        .await
        .unwrap()
        .unwrap();
    let started = keygate::people::session::start(&app.state, &org, &user)
        .await
        .unwrap();
    Person {
        user_id: user.id,
        cookie: format!("{}={}", started.cookie.name(), started.cookie.value()),
        csrf: started.person.csrf_token().to_owned(),
    }
}

/// The parameters of an authorization request of `client` with `pkce`, and `extra`.
pub fn request(client: &Client, pkce: &Pkce, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> = [
        ("response_type", "code"),
        ("client_id", client.id.as_str()),
        ("redirect_uri", client.redirect_uri.as_str()),
        ("code_challenge", pkce.challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("state", "st-8f3a"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    for (k, v) in extra {
        params.retain(|(name, _)| name != k || *k == "resource");
        params.push(((*k).to_owned(), (*v).to_owned()));
    }
    params.retain(|(_, v)| !v.is_empty());
    params
}

/// `GET /v1/{org}/oauth/authorize?{params}` in `person`'s browser (or a signed-out one).
pub async fn authorize(
    app: &TestApp,
    org: &str,
    person: Option<&Person>,
    params: &[(String, String)],
) -> reqwest::Response {
    let mut req = browser()
        .get(app.url(&format!("/v1/{org}/oauth/authorize")))
        .query(params);
    if let Some(person) = person {
        req = req.header("cookie", &person.cookie);
    }
    req.send().await.unwrap()
}

/// `POST /v1/{org}/oauth/authorize` (the consent form) with `fields`.
pub async fn post_consent(
    app: &TestApp,
    org: &str,
    person: Option<&Person>,
    fields: &[(String, String)],
) -> reqwest::Response {
    let mut req = browser()
        .post(app.url(&format!("/v1/{org}/oauth/authorize")))
        .form(fields);
    if let Some(person) = person {
        req = req.header("cookie", &person.cookie);
    }
    req.send().await.unwrap()
}

/// The `Location` of a `303`, as a URL.
pub fn location(res: &reqwest::Response) -> url::Url {
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "not a 303: {res:?}");
    let location = res.headers()["location"].to_str().unwrap();
    url::Url::parse(location)
        .or_else(|_| {
            url::Url::parse("http://keygate.invalid")
                .unwrap()
                .join(location)
        })
        .unwrap()
}

pub fn query(url: &url::Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

/// Undoes askama's HTML escaping of attribute values.
fn unescape(text: &str) -> String {
    text.replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#60;", "<")
        .replace("&lt;", "<")
        .replace("&#62;", ">")
        .replace("&gt;", ">")
        .replace("&#38;", "&")
        .replace("&amp;", "&")
}

/// The `name`/`value` pairs of the hidden inputs of a consent page.
pub fn hidden_fields(html: &str) -> Vec<(String, String)> {
    html.split("<input type=\"hidden\" ")
        .skip(1)
        .map(|rest| {
            let attr = |name: &str| {
                let start = rest.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                let end = start + rest[start..].find('"').unwrap();
                unescape(&rest[start..end])
            };
            (attr("name"), attr("value"))
        })
        .collect()
}

/// Shows the consent page for `params`; returns its HTML.
pub async fn consent_page(
    app: &TestApp,
    org: &str,
    person: &Person,
    params: &[(String, String)],
) -> String {
    let res = authorize(app, org, Some(person), params).await;
    assert_eq!(res.status(), StatusCode::OK, "{res:?}");
    res.text().await.unwrap()
}

/// Answers the consent page of `params` with `decision`; returns the redirect's query.
pub async fn decide(
    app: &TestApp,
    org: &str,
    person: &Person,
    params: &[(String, String)],
    decision: &str,
) -> HashMap<String, String> {
    let html = consent_page(app, org, person, params).await;
    let mut fields = hidden_fields(&html);
    fields.push(("decision".into(), decision.into()));
    let res = post_consent(app, org, Some(person), &fields).await;
    query(&location(&res))
}

/// Approves `params` on the consent page (or, when the person's consent covers them
/// already, takes the code the request got at once); returns the code.
pub async fn approve(
    app: &TestApp,
    org: &str,
    person: &Person,
    params: &[(String, String)],
) -> String {
    let res = authorize(app, org, Some(person), params).await;
    let back = if res.status() == StatusCode::SEE_OTHER {
        query(&location(&res))
    } else {
        decide(app, org, person, params, "approve").await
    };
    assert_eq!(back.get("error"), None, "{back:?}");
    back["code"].clone()
}

/// `POST /v1/{org}/oauth/token` with `grant_type=authorization_code` as `client` (its
/// `client_id`, and its secret by Basic when it has one), plus `extra`.
pub async fn exchange(
    app: &TestApp,
    org: &str,
    client: &Client,
    code: &str,
    verifier: &str,
    extra: &[(&str, &str)],
) -> (StatusCode, Value) {
    json(exchange_raw(app, org, client, code, verifier, extra, None).await).await
}

pub async fn exchange_raw(
    app: &TestApp,
    org: &str,
    client: &Client,
    code: &str,
    verifier: &str,
    extra: &[(&str, &str)],
    dpop: Option<&str>,
) -> reqwest::Response {
    let mut form: Vec<(&str, &str)> = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("code_verifier", verifier),
        ("redirect_uri", &client.redirect_uri),
    ];
    for (k, v) in extra {
        form.retain(|(name, _)| name != k);
        form.push((k, v));
    }
    form.retain(|(_, v)| !v.is_empty());
    let mut req = app.client.post(app.url(&format!("/v1/{org}/oauth/token")));
    match &client.secret {
        Some(secret) => req = req.basic_auth(&client.id, Some(secret)),
        None => form.push(("client_id", &client.id)),
    }
    if let Some(proof) = dpop {
        req = req.header("dpop", proof);
    }
    req.form(&form).send().await.unwrap()
}

/// `grant_type=refresh_token` as `client` (or as nobody).
pub async fn refresh(
    app: &TestApp,
    org: &str,
    client: Option<&Client>,
    refresh_token: &str,
) -> (StatusCode, Value) {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ];
    let mut req = app.client.post(app.url(&format!("/v1/{org}/oauth/token")));
    match client {
        Some(Client {
            secret: Some(secret),
            id,
            ..
        }) => req = req.basic_auth(id, Some(secret)),
        Some(client) => form.push(("client_id", &client.id)),
        None => {}
    }
    json(req.form(&form).send().await.unwrap()).await
}

/// The whole flow for `person` with `client`: tokens.
pub async fn tokens(app: &TestApp, client: &Client, person: &Person) -> Value {
    let pkce = Pkce::new();
    let code = approve(app, "default", person, &request(client, &pkce, &[])).await;
    let (status, body) = exchange(app, "default", client, &code, &pkce.verifier, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The `error` of an RFC 6749 §5.2 body (with a description).
pub fn oauth_error(body: &Value) -> &str {
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{body}"
    );
    body["error"].as_str().expect("error")
}
