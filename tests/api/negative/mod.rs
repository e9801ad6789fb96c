//! Negative tests: every admin route refused for a missing scope, ids and credentials of
//! another organization, forged access tokens, introspection's inactive answers and
//! revocation by another client, and revoked or disabled callers through every scheme.

mod access_tokens;
mod cross_tenant;
mod introspection;
mod revoked_paths;
mod scopes;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::admin_helpers::Reply;
use crate::dpop_key::DpopKey;
use crate::helpers::{Credentials, TestApp};

/// How a request to an OAuth endpoint authenticates its client.
#[derive(Clone, Copy, Debug)]
pub enum Client<'a> {
    None,
    /// `client_secret_basic`.
    Basic(&'a Credentials),
    /// `client_secret_post`.
    Post(&'a Credentials),
}

/// `POST /v1/{org}/oauth/{endpoint}` with a form, authenticating as `client`.
pub async fn oauth(
    app: &TestApp,
    org: &str,
    endpoint: &str,
    client: Client<'_>,
    form: &[(&str, &str)],
) -> Reply {
    oauth_with_proof(app, org, endpoint, client, form, None).await
}

/// [`oauth`] with a `DPoP` header.
pub async fn oauth_with_proof(
    app: &TestApp,
    org: &str,
    endpoint: &str,
    client: Client<'_>,
    form: &[(&str, &str)],
    proof: Option<&str>,
) -> Reply {
    let mut fields: Vec<(String, String)> = form
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let mut req = app
        .client
        .post(app.url(&format!("/v1/{org}/oauth/{endpoint}")));
    match client {
        Client::None => {}
        Client::Basic(c) => req = req.basic_auth(&c.api_key_id, Some(&c.api_key)),
        Client::Post(c) => {
            fields.push(("client_id".into(), c.api_key_id.clone()));
            fields.push(("client_secret".into(), c.api_key.clone()));
        }
    }
    if let Some(proof) = proof {
        req = req.header("dpop", proof);
    }
    app.send(req.form(&fields)).await
}

/// Asserts an RFC 6749 §5.2 error body with this status and `error`.
#[track_caller]
pub fn expect_oauth_error(reply: &Reply, status: StatusCode, error: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.body["error"], error, "{}", reply.body);
    assert!(
        reply.body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{}",
        reply.body
    );
}

/// A `client_credentials` grant for `creds` in their organization, with extra form fields;
/// expects 200 and returns the token response.
pub async fn client_credentials(
    app: &TestApp,
    creds: &Credentials,
    extra: &[(&str, &str)],
) -> Value {
    let mut form = vec![("grant_type", "client_credentials")];
    form.extend_from_slice(extra);
    let reply = oauth(app, &creds.org, "token", Client::Basic(creds), &form).await;
    reply.expect(StatusCode::OK).clone()
}

/// A `refresh_token` grant at `org`, without client authentication.
pub async fn refresh(app: &TestApp, org: &str, refresh_token: &str) -> Reply {
    oauth(
        app,
        org,
        "token",
        Client::None,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

/// Introspects `token` at `org` as `client`, expecting 200.
pub async fn introspect(app: &TestApp, org: &str, client: &Credentials, token: &str) -> Value {
    let reply = oauth(
        app,
        org,
        "introspect",
        Client::Basic(client),
        &[("token", token)],
    )
    .await;
    reply.expect(StatusCode::OK).clone()
}

/// RFC 7662 §2.2: an inactive token's answer is exactly `{"active": false}`.
pub fn inactive() -> Value {
    json!({"active": false})
}

/// `Authorization: Basic base64({org}_{user_id}:{token})` (cross-organization form).
pub fn basic(org: &str, user_id: &str, token: &str) -> String {
    format!(
        "Basic {}",
        STANDARD.encode(format!("{org}_{user_id}:{token}"))
    )
}

/// Asserts a 401 with this §6 code and an RFC 6750 / RFC 9449 / RFC 7617 challenge in
/// `scheme` (`Bearer`, `DPoP` or `Basic`).
#[track_caller]
pub fn expect_unauthorized(reply: &Reply, code: &str, scheme: &str) {
    reply.expect_error(StatusCode::UNAUTHORIZED, code);
    let challenge = reply
        .header("www-authenticate")
        .unwrap_or_else(|| panic!("a 401 without WWW-Authenticate: {}", reply.body));
    if scheme == "Basic" {
        assert_eq!(challenge, "Basic realm=\"keygate\"");
    } else {
        assert!(
            challenge.starts_with(&format!("{scheme} realm=\"keygate\"")),
            "{challenge}"
        );
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    }
}

/// Signs in with `creds` bound to `key`; returns the sign-in body.
pub async fn dpop_signin(app: &TestApp, creds: &Credentials, key: &DpopKey) -> Value {
    let path = format!("/v1/{}/user/signin_with_api_key", creds.org);
    let proof = key.proof(app, "POST", &path, None);
    let reply = app
        .send(
            app.client
                .post(app.url(&path))
                .header("x-api-key", &creds.api_key)
                .header("x-api-key-id", &creds.api_key_id)
                .header("x-user-id", &creds.user_id)
                .header("dpop", proof),
        )
        .await;
    let body = reply.expect(StatusCode::OK).clone();
    assert_eq!(body["token_type"], "DPoP", "{body}");
    body
}

/// `GET /v1/{org}/user/me` with a DPoP-bound token and a fresh proof.
pub async fn me_dpop(app: &TestApp, org: &str, token: &str, key: &DpopKey) -> Reply {
    let path = format!("/v1/{org}/user/me");
    let proof = key.proof(app, "GET", &path, Some(token));
    app.me_with(
        org,
        &[
            ("authorization", &format!("DPoP {token}")),
            ("dpop", &proof),
        ],
    )
    .await
}

/// A trusted identity provider's registration body (its keys are never fetched here).
pub fn issuer_body(issuer: &str) -> Value {
    json!({"issuer": issuer, "jwks_uri": "https://idp.example/jwks", "audience": "keygate",
           "algorithms": ["ES256"]})
}
