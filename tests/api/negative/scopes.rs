//! Every admin route refused for a token that lacks the route's scope: 403
//! `insufficient_scope` with `WWW-Authenticate: <scheme> error="insufficient_scope",
//! scope="<the scope>"` (RFC 6750 §3.1, docs/admin-api.md), for keys created with narrow
//! `scopes`, tokens narrowed with the OAuth `scope` parameter (Bearer and DPoP-bound) and a
//! key with no scope at all. The table must cover every protected route of `/openapi.json`,
//! so a new route cannot be forgotten. Nothing a refused request names changes.

use std::collections::BTreeSet;

use keygate::types::{KNOWN_SCOPES, Role};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{Client, client_credentials, issuer_body, oauth_with_proof};
use crate::admin_helpers::{Reply, Session};
use crate::dpop_key::DpopKey;
use crate::helpers::{TestApp, spawn_app};

/// (method, path as `/openapi.json` names it, the scope docs/admin-api.md gives it)
const ROUTES: &[(&str, &str, &str)] = &[
    ("GET", "/v1/{org}/api_keys", "keys:read"),
    ("POST", "/v1/{org}/api_keys", "keys:write"),
    ("GET", "/v1/{org}/api_keys/{id}", "keys:read"),
    ("PATCH", "/v1/{org}/api_keys/{id}", "keys:write"),
    ("DELETE", "/v1/{org}/api_keys/{id}", "keys:write"),
    ("POST", "/v1/{org}/api_keys/{id}/rotate", "keys:write"),
    ("GET", "/v1/{org}/users", "users:read"),
    ("POST", "/v1/{org}/users", "users:write"),
    ("GET", "/v1/{org}/users/{id}", "users:read"),
    ("PATCH", "/v1/{org}/users/{id}", "users:write"),
    ("DELETE", "/v1/{org}/users/{id}", "users:write"),
    ("GET", "/v1/{org}/users/{id}/consents", "users:read"),
    ("DELETE", "/v1/{org}/users/{id}/consents", "sessions:write"),
    ("GET", "/v1/{org}/sessions", "users:read"),
    ("DELETE", "/v1/{org}/sessions/{id}", "sessions:write"),
    ("GET", "/v1/{org}/audit_events", "audit:read"),
    ("GET", "/v1/{org}/cross_org_grants", "users:read"),
    ("POST", "/v1/{org}/cross_org_grants", "users:write"),
    ("GET", "/v1/{org}/cross_org_grants/{id}", "users:read"),
    ("DELETE", "/v1/{org}/cross_org_grants/{id}", "users:write"),
    ("GET", "/v1/{org}/trusted_issuers", "users:read"),
    ("POST", "/v1/{org}/trusted_issuers", "users:write"),
    ("GET", "/v1/{org}/trusted_issuers/{id}", "users:read"),
    ("DELETE", "/v1/{org}/trusted_issuers/{id}", "users:write"),
    ("GET", "/v1/{org}/resources", "resources:read"),
    ("POST", "/v1/{org}/resources", "resources:write"),
    ("GET", "/v1/{org}/resources/{id}", "resources:read"),
    ("PATCH", "/v1/{org}/resources/{id}", "resources:write"),
    ("DELETE", "/v1/{org}/resources/{id}", "resources:write"),
    (
        "GET",
        "/v1/{org}/resources/{id}/protected-resource-metadata",
        "resources:read",
    ),
    ("GET", "/v1/{org}/clients", "clients:read"),
    ("POST", "/v1/{org}/clients", "clients:write"),
    ("GET", "/v1/{org}/clients/{id}", "clients:read"),
    ("DELETE", "/v1/{org}/clients/{id}", "clients:write"),
    ("GET", "/v1/{org}/settings", "users:read"),
    ("PATCH", "/v1/{org}/settings", "users:write"),
    ("POST", "/v1/{org}/api_keys/{id}/approve", "keys:write"),
];

/// Protected routes that need no scope: any valid token of the organization may call them.
const SCOPE_FREE: &[(&str, &str)] = &[
    ("GET", "/v1/{org}/user/me"),
    ("GET", "/v1/{org}/user/me/proof"),
];

/// The objects the routes name: a member with a key and a session, a grant and a provider.
struct Targets {
    member_user: String,
    member_key: String,
    member_session: String,
    grant: String,
    issuer: String,
    resource: String,
    client: String,
}

impl Targets {
    /// The concrete path of a route (`{id}` is the object of the route's resource).
    fn path(&self, template: &str) -> String {
        let id = if template.starts_with("/v1/{org}/api_keys/") {
            &self.member_key
        } else if template.starts_with("/v1/{org}/users/") {
            &self.member_user
        } else if template.starts_with("/v1/{org}/sessions/") {
            &self.member_session
        } else if template.starts_with("/v1/{org}/cross_org_grants/") {
            &self.grant
        } else if template.starts_with("/v1/{org}/trusted_issuers/") {
            &self.issuer
        } else if template.starts_with("/v1/{org}/resources/") {
            &self.resource
        } else if template.starts_with("/v1/{org}/clients/") {
            &self.client
        } else {
            ""
        };
        template.replace("{org}", "default").replace("{id}", id)
    }

    /// A body the route would accept from a caller with every right.
    fn body(method: &str, template: &str) -> Option<Value> {
        match (method, template) {
            ("POST", "/v1/{org}/api_keys") => Some(json!({"name": "narrow"})),
            ("POST", "/v1/{org}/api_keys/{id}/rotate") => Some(json!({"grace_period": "1h"})),
            ("PATCH", "/v1/{org}/api_keys/{id}") => Some(json!({"limits": {"per_minute": 5}})),
            ("POST", "/v1/{org}/users") => Some(json!({"email": "narrow@default.test"})),
            ("PATCH", "/v1/{org}/users/{id}") => Some(json!({"name": "renamed"})),
            ("POST", "/v1/{org}/cross_org_grants") => {
                Some(json!({"source_org": "acme", "role": "member"}))
            }
            ("POST", "/v1/{org}/trusted_issuers") => Some(issuer_body("https://narrow.example")),
            ("POST", "/v1/{org}/resources") => {
                Some(json!({"uri": "https://narrow.example/mcp", "name": "narrow"}))
            }
            ("PATCH", "/v1/{org}/resources/{id}") => Some(json!({"name": "renamed"})),
            ("PATCH", "/v1/{org}/settings") => Some(json!({"direct_api_keys": true})),
            ("POST", "/v1/{org}/clients") => Some(json!({
                "client_name": "narrow", "redirect_uris": ["https://narrow.example/cb"],
            })),
            _ => None,
        }
    }
}

/// A token and how to present it.
struct Narrow {
    label: String,
    token: String,
    /// The proof key of a DPoP-bound token.
    dpop: Option<DpopKey>,
    scopes: BTreeSet<&'static str>,
}

impl Narrow {
    fn scheme(&self) -> &'static str {
        if self.dpop.is_some() {
            "DPoP"
        } else {
            "Bearer"
        }
    }
}

fn all_but(missing: &str) -> Vec<&'static str> {
    KNOWN_SCOPES
        .iter()
        .copied()
        .filter(|s| *s != missing)
        .collect()
}

/// Signs in with a key of the owner created with exactly `scopes`.
async fn key_token(app: &TestApp, owner: &Session, scopes: &[&'static str]) -> String {
    let created = app
        .post_as(
            &owner.token,
            "/v1/default/api_keys",
            &json!({"name": "narrow", "scopes": scopes}),
        )
        .await;
    created.expect(StatusCode::CREATED);
    let mut stored: Vec<&str> = created.body["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    stored.sort_unstable();
    let mut wanted = scopes.to_vec();
    wanted.sort_unstable();
    assert_eq!(stored, wanted, "{}", created.body);
    let token = app.session(&app.creds_from(&created)).await.token;
    assert_scopes(&token, scopes);
    token
}

#[track_caller]
fn assert_scopes(token: &str, scopes: &[&str]) {
    let claims = crate::helpers::claims_of(token);
    let got: BTreeSet<&str> = claims["scope"]
        .as_str()
        .unwrap()
        .split_ascii_whitespace()
        .collect();
    assert_eq!(got, scopes.iter().copied().collect(), "{claims}");
}

/// Every token the test presents: for each scope, a key without it, an OAuth token narrowed
/// without it and a DPoP-bound OAuth token narrowed without it; and a key with no scope.
async fn narrow_tokens(app: &TestApp, owner: &Session) -> Vec<Narrow> {
    let mut out = Vec::new();
    for missing in KNOWN_SCOPES {
        let scopes = all_but(missing);
        out.push(Narrow {
            label: format!("key without {missing}"),
            token: key_token(app, owner, &scopes).await,
            dpop: None,
            scopes: scopes.iter().copied().collect(),
        });

        let scope = scopes.join(" ");
        let body = client_credentials(app, &app.owner, &[("scope", &scope)]).await;
        assert_eq!(body["token_type"], "Bearer", "{body}");
        let token = body["access_token"].as_str().unwrap().to_owned();
        assert_scopes(&token, &scopes);
        out.push(Narrow {
            label: format!("OAuth scope= without {missing}"),
            token,
            dpop: None,
            scopes: scopes.iter().copied().collect(),
        });

        let key = DpopKey::es256();
        let proof = key.proof(app, "POST", "/v1/default/oauth/token", None);
        let reply = oauth_with_proof(
            app,
            "default",
            "token",
            Client::Basic(&app.owner),
            &[("grant_type", "client_credentials"), ("scope", &scope)],
            Some(&proof),
        )
        .await;
        let body = reply.expect(StatusCode::OK);
        assert_eq!(body["token_type"], "DPoP", "{body}");
        let token = body["access_token"].as_str().unwrap().to_owned();
        assert_scopes(&token, &scopes);
        out.push(Narrow {
            label: format!("DPoP-bound OAuth scope= without {missing}"),
            token,
            dpop: Some(key),
            scopes: scopes.iter().copied().collect(),
        });
    }
    out.push(Narrow {
        label: "key with no scope".into(),
        token: key_token(app, owner, &[]).await,
        dpop: None,
        scopes: BTreeSet::new(),
    });
    out
}

async fn send(
    app: &TestApp,
    narrow: &Narrow,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Reply {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = app.client.request(method.clone(), app.url(path));
    req = match &narrow.dpop {
        Some(key) => req
            .header("authorization", format!("DPoP {}", narrow.token))
            .header(
                "dpop",
                key.proof(app, method.as_str(), path, Some(&narrow.token)),
            ),
        None => req.bearer_auth(&narrow.token),
    };
    if let Some(body) = body {
        req = req.json(body);
    }
    app.send(req).await
}

/// The protected operations of `/openapi.json`: those whose security names `bearer`.
async fn protected_operations(app: &TestApp) -> BTreeSet<(String, String)> {
    let reply = app.send(app.client.get(app.url("/openapi.json"))).await;
    let doc = reply.expect(StatusCode::OK);
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let protected = operation["security"]
                .as_array()
                .is_some_and(|reqs| reqs.iter().any(|r| r.get("bearer").is_some()));
            if protected {
                out.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    out
}

#[tokio::test]
async fn the_table_covers_every_protected_route_of_the_openapi_document() {
    let app = spawn_app().await;
    let documented = protected_operations(&app).await;
    let tabled: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned()))
        .chain(
            SCOPE_FREE
                .iter()
                .map(|(m, p)| ((*m).to_owned(), (*p).to_owned())),
        )
        .collect();
    assert_eq!(
        tabled, documented,
        "every protected route of /openapi.json needs a row in ROUTES (or SCOPE_FREE)"
    );
    for (_, _, scope) in ROUTES {
        assert!(KNOWN_SCOPES.contains(scope), "{scope}");
    }
}

#[tokio::test]
async fn a_token_without_the_routes_scope_is_refused_on_every_admin_route() {
    let app = spawn_app().await;
    let owner = app.session(&app.owner.clone()).await;
    app.create_org("acme").await;

    // The objects the routes name, made with every right.
    let member = app.create_user("default", Role::Member).await;
    let member_session = app.session(&member).await;
    let grant = app
        .post_as(
            &owner.token,
            "/v1/default/cross_org_grants",
            &json!({"source_org": "acme", "role": "member"}),
        )
        .await;
    grant.expect(StatusCode::CREATED);
    let issuer = app
        .post_as(
            &owner.token,
            "/v1/default/trusted_issuers",
            &issuer_body("https://idp-a.example"),
        )
        .await;
    issuer.expect(StatusCode::CREATED);
    let resource = app
        .post_as(
            &owner.token,
            "/v1/default/resources",
            &json!({"uri": "https://mcp.example/mcp", "name": "mcp", "scopes": ["mcp:tools"]}),
        )
        .await;
    resource.expect(StatusCode::CREATED);
    let client = app
        .post_as(
            &owner.token,
            "/v1/default/clients",
            &json!({"client_name": "agent", "redirect_uris": ["https://agent.example/cb"]}),
        )
        .await;
    client.expect(StatusCode::CREATED);
    let targets = Targets {
        member_user: member.user_id.clone(),
        member_key: member.api_key_id.clone(),
        member_session: member_session.session_id.clone(),
        grant: grant.str("id"),
        issuer: issuer.str("id"),
        resource: resource.str("id"),
        client: client.str("client_id"),
    };

    let tokens = narrow_tokens(&app, &owner).await;
    let keys_before = app
        .list_all(&owner.token, "/v1/default/api_keys", 200)
        .await;
    let users_before = app.list_all(&owner.token, "/v1/default/users", 200).await;
    let sessions_before = app
        .list_all(&owner.token, "/v1/default/sessions", 200)
        .await;

    let mut checked = 0;
    for (method, template, scope) in ROUTES {
        let path = targets.path(template);
        let body = Targets::body(method, template);
        for narrow in tokens.iter().filter(|n| !n.scopes.contains(scope)) {
            let label = format!("{method} {template} with a {}", narrow.label);
            let reply = send(&app, narrow, method, &path, body.as_ref()).await;
            assert_eq!(
                reply.status,
                StatusCode::FORBIDDEN,
                "{label}: {}",
                reply.body
            );
            reply.expect_error(StatusCode::FORBIDDEN, "insufficient_scope");
            let challenge = reply
                .header("www-authenticate")
                .unwrap_or_else(|| panic!("{label}: no WWW-Authenticate"));
            assert!(
                challenge.starts_with(&format!("{} realm=\"keygate\"", narrow.scheme())),
                "{label}: {challenge}"
            );
            assert!(
                challenge.contains("error=\"insufficient_scope\""),
                "{label}: {challenge}"
            );
            assert!(
                challenge.ends_with(&format!(", scope=\"{scope}\"")),
                "{label}: {challenge}"
            );
            checked += 1;
        }
    }
    // Each route met a key, an OAuth token and a DPoP-bound OAuth token without its scope,
    // and the key with none.
    assert_eq!(checked, ROUTES.len() * 4);

    // Nothing changed.
    let member_now = app
        .get_as(
            &owner.token,
            &format!("/v1/default/users/{}", member.user_id),
        )
        .await;
    let user = member_now.expect(StatusCode::OK);
    assert_eq!(user["disabled"], false, "{user}");
    assert!(user["deleted_at"].is_null(), "{user}");
    assert_ne!(user["name"], "renamed", "{user}");
    let key = app
        .get_as(
            &owner.token,
            &format!("/v1/default/api_keys/{}", member.api_key_id),
        )
        .await;
    let key = key.expect(StatusCode::OK);
    assert_eq!(key["status"], "active", "{key}");
    assert!(key["revoked_at"].is_null(), "{key}");
    let sessions = app
        .list_page(
            &owner.token,
            &format!("/v1/default/sessions?user_id={}", member.user_id),
        )
        .await;
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["status"], "active", "{}", sessions[0]);
    let grant_now = app
        .get_as(
            &owner.token,
            &format!("/v1/default/cross_org_grants/{}", targets.grant),
        )
        .await;
    assert!(grant_now.expect(StatusCode::OK)["revoked_at"].is_null());
    app.get_as(
        &owner.token,
        &format!("/v1/default/trusted_issuers/{}", targets.issuer),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(
        app.list_page(&owner.token, "/v1/default/trusted_issuers")
            .await
            .len(),
        1
    );
    let resources = app.list_page(&owner.token, "/v1/default/resources").await;
    assert_eq!(resources.len(), 1, "no resource was created or removed");
    assert_eq!(resources[0]["name"], "mcp", "no resource was changed");
    let clients = app.list_page(&owner.token, "/v1/default/clients").await;
    assert_eq!(clients.len(), 1, "no client was created or deleted");
    assert_eq!(
        app.list_page(&owner.token, "/v1/default/cross_org_grants")
            .await
            .len(),
        1
    );
    let keys_after = app
        .list_all(&owner.token, "/v1/default/api_keys", 200)
        .await;
    assert_eq!(
        keys_after, keys_before,
        "no key was created, rotated or revoked"
    );
    let users_after = app.list_all(&owner.token, "/v1/default/users", 200).await;
    assert_eq!(users_after, users_before, "no user was created or changed");
    let sessions_after = app
        .list_all(&owner.token, "/v1/default/sessions", 200)
        .await;
    assert_eq!(sessions_after.len(), sessions_before.len());
    assert_eq!(
        sessions_after
            .iter()
            .filter(|s| s["status"] == "active")
            .count(),
        sessions_before
            .iter()
            .filter(|s| s["status"] == "active")
            .count(),
        "no session was revoked"
    );
    // The member's key still signs in.
    app.session(&member).await;
}
