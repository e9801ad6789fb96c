//! The served API reference: `/openapi.json` (OpenAPI 3.1, every route of the API, the
//! security schemes) and `/docs` (Scalar), with its configurable and local script.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn the_openapi_document_describes_every_operation_and_its_security() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let doc: Value = res.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["servers"][0]["url"], app.address.as_str());
    let operations: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect();
    // Every route the server answers is documented.
    for (method, path) in [
        ("POST", "/v1/{org}/user/signin_with_api_key"),
        ("GET", "/v1/{org}/user/me"),
        ("POST", "/v1/{org}/oauth/token"),
        ("POST", "/v1/{org}/oauth/revoke"),
        ("POST", "/v1/{org}/oauth/introspect"),
        ("POST", "/v1/{org}/oauth/device_authorization"),
        ("GET", "/v1/{org}/.well-known/oauth-authorization-server"),
        ("GET", "/.well-known/jwks.json"),
        ("GET", "/v1/{org}/.well-known/jwks.json"),
        ("GET", "/v1/{org}/api_keys"),
        ("POST", "/v1/{org}/api_keys"),
        ("GET", "/v1/{org}/api_keys/{id}"),
        ("PATCH", "/v1/{org}/api_keys/{id}"),
        ("DELETE", "/v1/{org}/api_keys/{id}"),
        ("POST", "/v1/{org}/api_keys/{id}/rotate"),
        ("GET", "/v1/{org}/users"),
        ("POST", "/v1/{org}/users"),
        ("GET", "/v1/{org}/users/{id}"),
        ("PATCH", "/v1/{org}/users/{id}"),
        ("DELETE", "/v1/{org}/users/{id}"),
        ("GET", "/v1/{org}/sessions"),
        ("DELETE", "/v1/{org}/sessions/{id}"),
        ("GET", "/v1/{org}/audit_events"),
        ("GET", "/v1/{org}/cross_org_grants"),
        ("POST", "/v1/{org}/cross_org_grants"),
        ("GET", "/v1/{org}/cross_org_grants/{id}"),
        ("DELETE", "/v1/{org}/cross_org_grants/{id}"),
        ("GET", "/v1/{org}/trusted_issuers"),
        ("POST", "/v1/{org}/trusted_issuers"),
        ("GET", "/v1/{org}/trusted_issuers/{id}"),
        ("DELETE", "/v1/{org}/trusted_issuers/{id}"),
        ("GET", "/v1/{org}/resources"),
        ("POST", "/v1/{org}/resources"),
        ("GET", "/v1/{org}/resources/{id}"),
        ("PATCH", "/v1/{org}/resources/{id}"),
        ("DELETE", "/v1/{org}/resources/{id}"),
        (
            "GET",
            "/v1/{org}/resources/{id}/protected-resource-metadata",
        ),
        ("GET", "/v1/{org}/clients"),
        ("POST", "/v1/{org}/clients"),
        ("GET", "/v1/{org}/clients/{id}"),
        ("DELETE", "/v1/{org}/clients/{id}"),
        ("POST", "/v1/{org}/oauth/register"),
        ("GET", "/v1/{org}/users/{id}/consents"),
        ("DELETE", "/v1/{org}/users/{id}/consents"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        // What other agent platforms offer.
        ("GET", "/v1/{org}/settings"),
        ("PATCH", "/v1/{org}/settings"),
        ("POST", "/v1/{org}/api_keys/{id}/approve"),
        ("GET", "/v1/{org}/user/me/proof"),
        ("GET", "/v1/{org}/.well-known/identity-jwks.json"),
        ("POST", "/v1/{org}/register"),
    ] {
        assert!(
            operations.contains(&(method.to_owned(), path.to_owned())),
            "{method} {path} is not documented"
        );
    }
    // And nothing is documented that the server does not answer.
    assert_eq!(operations.len(), 53, "{operations:?}");

    let signin = &doc["paths"]["/v1/{org}/user/signin_with_api_key"]["post"];
    let headers: Vec<&str> = signin["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["in"] == "header")
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for h in ["x-api-key", "x-api-key-id", "x-user-id", "DPoP"] {
        assert!(headers.contains(&h), "{h} in {headers:?}");
    }
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["bearer"]["bearerFormat"], "JWT");
    assert_eq!(schemes["api_key"]["in"], "header");
    assert_eq!(schemes["api_key"]["name"], "x-api-key");
    assert!(
        schemes["dpop"]["description"]
            .as_str()
            .unwrap()
            .contains("keygate dpop proof")
    );
    assert_eq!(
        schemes["oauth2"]["flows"]["clientCredentials"]["tokenUrl"],
        "/v1/default/oauth/token"
    );
    // Every error response uses the §6 body or the OAuth body.
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            for (status, response) in op["responses"].as_object().unwrap() {
                if status.starts_with('4') {
                    let schema = response["content"]["application/json"]["schema"]["$ref"]
                        .as_str()
                        .unwrap_or_default();
                    assert!(
                        schema.ends_with("/ErrorBody") || schema.ends_with("/OAuthErrorBody"),
                        "{} {status}: {schema}",
                        op["operationId"]
                    );
                }
            }
        }
    }
}

/// The page's CSP directives by name.
fn csp(res: &reqwest::Response) -> std::collections::HashMap<String, String> {
    res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .split(';')
        .filter_map(|d| {
            let d = d.trim();
            let (name, value) = d.split_once(' ').unwrap_or((d, ""));
            (!name.is_empty()).then(|| (name.to_owned(), value.trim().to_owned()))
        })
        .collect()
}

/// The nonce of the page's inline element.
fn nonce_of(page: &str) -> String {
    let start = page.find("nonce=\"").expect("a nonce") + 7;
    page[start..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn docs_loads_a_pinned_scalar_with_integrity_under_a_strict_csp() {
    let app = spawn_app().await;
    let res = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    let policy = csp(&res);
    let page = res.text().await.unwrap();
    // A versioned URL, its Subresource Integrity, fetched without credentials.
    assert!(
        page.contains(
            r#"<script src="https://cdn.jsdelivr.net/npm/@scalar/api-reference@1.76.0/dist/browser/standalone.js" integrity="sha384-oH1C0RwqcwbVXkC+r8A+4qRoyEUQdtxAzOwumkxZtQBBcsy61FOoPt7B50OVJYYQ" crossorigin="anonymous"></script>"#
        ),
        "{page}"
    );
    // Scripts from that origin and the page's own nonced element only.
    let nonce = nonce_of(&page);
    assert!(nonce.len() >= 22, "{nonce}");
    assert_eq!(
        policy["script-src"],
        format!("https://cdn.jsdelivr.net 'nonce-{nonce}'")
    );
    assert_eq!(policy["default-src"], "'none'");
    assert_eq!(policy["frame-ancestors"], "'none'");
    assert_eq!(policy["object-src"], "'none'");
    assert_eq!(policy["base-uri"], "'none'");
    assert!(!policy["script-src"].contains("unsafe"), "{policy:?}");
    // A new nonce per response.
    let again = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_ne!(nonce_of(&again.text().await.unwrap()), nonce);
}

#[tokio::test]
async fn docs_renders_scalar_from_the_configured_script() {
    let app = spawn_app_with(|s| {
        s.docs.scalar_script_url = "https://cdn.example/scalar.js?x=\"1\"".into();
    })
    .await;
    let res = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    // Only that script's origin may run scripts.
    assert!(csp(&res)["script-src"].starts_with("https://cdn.example 'nonce-"));
    let page = res.text().await.unwrap();
    assert!(page.contains(r#"data-url="/openapi.json""#), "{page}");
    // A custom URL without a configured integrity is loaded without one.
    assert!(
        page.contains(r#"<script src="https://cdn.example/scalar.js?x=&quot;1&quot;"></script>"#),
        "{page}"
    );
    // With one, it is on the element.
    let app = spawn_app_with(|s| {
        s.docs.scalar_script_url = "https://cdn.example/scalar.js".into();
        s.docs.scalar_script_integrity = Some("sha384-abc".into());
    })
    .await;
    let page = app
        .client
        .get(app.url("/docs"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(
            r#"src="https://cdn.example/scalar.js" integrity="sha384-abc" crossorigin="anonymous""#
        ),
        "{page}"
    );
    // No local copy configured: nothing is served there.
    let res = app
        .client
        .get(app.url("/docs/scalar.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn docs_can_serve_a_local_scalar_bundle_for_air_gapped_installs() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("scalar.js");
    std::fs::write(&bundle, "/* scalar */ console.log('offline');").unwrap();
    let path = bundle.clone();
    let app = spawn_app_with(move |s| s.docs.scalar_local_path = Some(path)).await;
    let res = app.client.get(app.url("/docs")).send().await.unwrap();
    // The local copy is this server's own: scripts from 'self' only.
    assert!(csp(&res)["script-src"].starts_with("'self' 'nonce-"));
    let page = res.text().await.unwrap();
    assert!(
        page.contains(r#"<script src="/docs/scalar.js"></script>"#),
        "{page}"
    );
    let res = app
        .client
        .get(app.url("/docs/scalar.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert_eq!(
        res.text().await.unwrap(),
        "/* scalar */ console.log('offline');"
    );
}
