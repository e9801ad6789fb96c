//! Helpers for the admin API tests: one request method, a reply with its status, body and
//! headers, signed-in sessions, cursor walks and refresh grants.

use std::collections::HashSet;

use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;

use crate::helpers::{Credentials, TestApp, error_code};

/// A response: status, JSON body (`Null` when empty) and headers.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub headers: HeaderMap,
}

impl Reply {
    pub async fn from(response: reqwest::Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("{status}: body is not JSON: {text:?}"))
        };
        assert_ne!(
            status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "a 500 is never an answer: {body}"
        );
        Self {
            status,
            body,
            headers,
        }
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header").to_owned())
    }

    /// The `X-Request-Id` response header.
    pub fn request_id(&self) -> String {
        let id = self.header("x-request-id").expect("X-Request-Id header");
        assert!(!id.is_empty());
        id
    }

    /// Asserts the status, returning the body.
    #[track_caller]
    pub fn expect(&self, status: StatusCode) -> &Value {
        assert_eq!(self.status, status, "{}", self.body);
        &self.body
    }

    /// Asserts a keygate error body with this status and code (and the response's request id).
    #[track_caller]
    pub fn expect_error(&self, status: StatusCode, code: &str) -> &Value {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(error_code(&self.body), code, "{}", self.body);
        assert_eq!(
            self.body["error"]["request_id"].as_str(),
            Some(self.request_id().as_str()),
            "the error's request_id is the X-Request-Id header"
        );
        &self.body
    }

    /// The error message (asserting there is one).
    pub fn message(&self) -> String {
        error_code(&self.body);
        self.body["error"]["message"].as_str().unwrap().to_owned()
    }

    /// `body[field]` as a string.
    #[track_caller]
    pub fn str(&self, field: &str) -> String {
        self.body[field]
            .as_str()
            .unwrap_or_else(|| panic!("`{field}` in {}", self.body))
            .to_owned()
    }
}

/// A signed-in client: its credentials and what sign-in returned.
#[derive(Clone, Debug)]
pub struct Session {
    pub creds: Credentials,
    pub token: String,
    pub session_id: String,
    pub refresh_token: String,
}

/// The ids of a list of objects (`field` of each).
pub fn ids(items: &[Value], field: &str) -> Vec<String> {
    items
        .iter()
        .map(|i| {
            i[field]
                .as_str()
                .unwrap_or_else(|| panic!("`{field}` in {i}"))
                .to_owned()
        })
        .collect()
}

/// Asserts no id appears twice and returns them as a set.
#[track_caller]
pub fn unique(ids: &[String]) -> HashSet<String> {
    let set: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(set.len(), ids.len(), "an id appears twice: {ids:?}");
    set
}

impl TestApp {
    /// Signs in with `creds` as their own user.
    pub async fn session(&self, creds: &Credentials) -> Session {
        let body = self.signin(creds).await;
        Session {
            creds: creds.clone(),
            token: body["id_token"].as_str().expect("id_token").to_owned(),
            session_id: body["session_id"].as_str().expect("session_id").to_owned(),
            refresh_token: body["refresh_token"]
                .as_str()
                .expect("refresh_token")
                .to_owned(),
        }
    }

    /// A request to `path` with `Authorization: Bearer {token}`.
    pub fn admin_request(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
    }

    pub async fn send(&self, request: RequestBuilder) -> Reply {
        Reply::from(request.send().await.expect("request")).await
    }

    /// `GET /v1/{org}/user/me` with these headers.
    pub async fn me_with(&self, org: &str, headers: &[(&str, &str)]) -> Reply {
        let mut req = self.client.get(self.url(&format!("/v1/{org}/user/me")));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        self.send(req).await
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> Reply {
        let mut req = self.admin_request(method, path, token);
        if let Some(body) = body {
            req = req.json(body);
        }
        self.send(req).await
    }

    pub async fn get_as(&self, token: &str, path: &str) -> Reply {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn post_as(&self, token: &str, path: &str, body: &Value) -> Reply {
        self.call(Method::POST, path, token, Some(body)).await
    }

    pub async fn patch_as(&self, token: &str, path: &str, body: &Value) -> Reply {
        self.call(Method::PATCH, path, token, Some(body)).await
    }

    pub async fn delete_as(&self, token: &str, path: &str) -> Reply {
        self.call(Method::DELETE, path, token, None).await
    }

    /// Every item of a list endpoint, following `next_cursor` (pages of `limit`). `path`
    /// may carry a query string of filters.
    pub async fn list_all(&self, token: &str, path: &str, limit: usize) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        let sep = if path.contains('?') { '&' } else { '?' };
        for _ in 0..10_000 {
            let mut req =
                self.admin_request(Method::GET, &format!("{path}{sep}limit={limit}"), token);
            if let Some(c) = &cursor {
                req = req.query(&[("cursor", c)]);
            }
            let reply = self.send(req).await;
            reply.expect(StatusCode::OK);
            let data = reply.body["data"].as_array().expect("data").clone();
            assert!(data.len() <= limit, "a page is at most `limit` long");
            out.extend(data);
            match reply.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => {
                    assert!(reply.body["next_cursor"].is_null(), "{}", reply.body);
                    return out;
                }
            }
        }
        panic!("the walk of {path} never ended");
    }

    /// The first page (up to 200) of a list endpoint, asserting 200.
    pub async fn list_page(&self, token: &str, path: &str) -> Vec<Value> {
        let reply = self.get_as(token, path).await;
        reply.expect(StatusCode::OK);
        reply.body["data"].as_array().expect("data").clone()
    }

    /// Waits until every audit event recorded so far is written.
    pub async fn flush_audit(&self) {
        self.state.audit.flush().await;
    }

    /// `grant_type=refresh_token`, authenticating as `client` in the form when given.
    /// Returns the status and the OAuth `error` (empty on success).
    pub async fn refresh_grant(
        &self,
        org: &str,
        refresh_token: &str,
        client: Option<&Credentials>,
    ) -> (StatusCode, String) {
        let mut form = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", refresh_token.to_owned()),
        ];
        if let Some(c) = client {
            form.push(("client_id", c.api_key_id.clone()));
            form.push(("client_secret", c.api_key.clone()));
        }
        let res = self
            .client
            .post(self.url(&format!("/v1/{org}/oauth/token")))
            .form(&form)
            .send()
            .await
            .expect("token request");
        let status = res.status();
        let body: Value = res.json().await.expect("JSON token response");
        (
            status,
            body["error"].as_str().unwrap_or_default().to_owned(),
        )
    }

    /// Credentials for a key created over HTTP (`reply` is the 201 of creation or rotation).
    pub fn creds_from(&self, reply: &Reply) -> Credentials {
        Credentials {
            org: "default".into(),
            user_id: reply.str("user_id"),
            api_key_id: reply.str("api_key_id"),
            api_key: reply.str("api_key"),
        }
    }
}
