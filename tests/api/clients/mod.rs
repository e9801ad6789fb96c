//! Clients of the browser and device flows (README, "Browser clients: registered, metadata
//! documents, dynamic registration"): the admin API and CLI, client authentication at the
//! token endpoint (through `oauth::client::identify`, what the authorization-code and
//! device grants call), Client ID Metadata Documents served from a loopback test server,
//! and RFC 7591 dynamic registration.

mod admin;
mod authenticate;
mod documents;
mod registration;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use entity::organization;
use keygate::oauth::OAuthError;
use keygate::oauth::client::Identified;
use keygate::oauth::form::Params;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::admin_helpers::Reply;
use crate::helpers::TestApp;

/// The owner's access token for admin calls.
pub async fn owner_token(app: &TestApp) -> String {
    app.session(&app.owner).await.token
}

/// `POST /v1/default/clients` as `token`.
pub async fn create(app: &TestApp, token: &str, body: &Value) -> Reply {
    app.post_as(token, "/v1/default/clients", body).await
}

/// A client registered by the owner with `auth` and one https redirect URI.
pub async fn registered(app: &TestApp, auth: &str) -> Reply {
    let token = owner_token(app).await;
    let reply = create(
        app,
        &token,
        &json!({
            "client_name": "Agent", "redirect_uris": ["https://agent.example/cb"],
            "token_endpoint_auth_method": auth,
        }),
    )
    .await;
    reply.expect(StatusCode::CREATED);
    reply
}

pub async fn org(app: &TestApp, slug: &str) -> organization::Model {
    keygate::admin::find_org(&app.state.storage, slug)
        .await
        .unwrap()
}

/// `oauth::client::identify` for a token request with this `Authorization` header and
/// form, from 127.0.0.1 at org `default`.
pub async fn identify(
    app: &TestApp,
    authorization: Option<&str>,
    form: &[(&str, &str)],
) -> Result<Identified, OAuthError> {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let params = Params::parse(body.as_bytes()).unwrap();
    let org = org(app, "default").await;
    keygate::oauth::client::identify(&app.state, &org, authorization, &params, Some("127.0.0.1"))
        .await
}

/// The client `identify` found, or the OAuth error code.
pub async fn identified(
    app: &TestApp,
    authorization: Option<&str>,
    form: &[(&str, &str)],
) -> Result<String, String> {
    match identify(app, authorization, form).await {
        Ok(Identified::Client(c)) => Ok(c.client_id),
        Ok(Identified::Key(k)) => Ok(k.key.id.clone()),
        Err(e) => Err(e.code.as_str().to_owned()),
    }
}

pub fn basic(id: &str, secret: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

/// What the document server answers.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: &'static str,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Waits this long before answering (to make concurrent fetches overlap).
    pub delay: Duration,
}

impl Answer {
    pub fn json(body: &Value) -> Self {
        Self {
            status: "200 OK",
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// A client's web server on a loopback port: answers every request with the current
/// [`Answer`] and counts requests.
pub struct DocServer {
    /// `http://127.0.0.1:{port}`
    pub base: String,
    answer: Arc<Mutex<Answer>>,
    hits: Arc<AtomicUsize>,
}

impl DocServer {
    pub async fn start(answer: Answer) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let answer = Arc::new(Mutex::new(answer));
        let hits = Arc::new(AtomicUsize::new(0));
        let (a, h) = (answer.clone(), hits.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let (a, h) = (a.clone(), h.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let mut read = 0;
                    while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf[read..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => read += n,
                        }
                    }
                    h.fetch_add(1, Ordering::SeqCst);
                    let answer = a.lock().unwrap().clone();
                    tokio::time::sleep(answer.delay).await;
                    let mut head = format!("HTTP/1.1 {}\r\n", answer.status);
                    for (name, value) in &answer.headers {
                        head.push_str(&format!("{name}: {value}\r\n"));
                    }
                    head.push_str(&format!(
                        "content-length: {}\r\nconnection: close\r\n\r\n",
                        answer.body.len()
                    ));
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(answer.body.as_bytes()).await;
                });
            }
        });
        Self { base, answer, hits }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn set(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A valid metadata document for the client at `url`.
pub fn document(url: &str) -> Value {
    json!({
        "client_id": url,
        "client_name": "Example MCP client",
        "redirect_uris": ["http://127.0.0.1/callback", "https://client.example/cb"],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
    })
}
