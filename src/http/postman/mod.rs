//! `GET /postman.json`: a ready Postman collection (format v2.1) made from the OpenAPI
//! document at request time, so the two are never maintained twice (docs/postman.md):
//! collection variables, a **Quick start** folder whose test scripts carry the tokens from
//! sign-in to the next requests, and one folder per tag with every operation. It reads the
//! document; it must not describe an endpoint the document does not.

mod example;
mod operation;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde_json::{Value, json};

use crate::state::AppState;
use operation::Operation;

/// The Postman collection format the document declares (v2.1.0).
pub const SCHEMA: &str = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json";

/// The organization the variables start with: the one a first start creates.
const DEFAULT_ORG: &str = "default";

/// The Quick start folder: (name, method, OpenAPI path, test script lines).
const QUICK_START: [(&str, &str, &str, &[&str]); 4] = [
    (
        "Sign in",
        "POST",
        "/v1/{org}/user/signin_with_api_key",
        &[
            "pm.test(\"signed in (200)\", function () { pm.response.to.have.status(200); });",
            "const body = pm.response.json();",
            "pm.test(\"an access token and a refresh token\", function () {",
            "  pm.expect(body.id_token).to.be.a(\"string\").and.not.empty;",
            "  pm.expect(body.refresh_token).to.be.a(\"string\").and.not.empty;",
            "});",
            "pm.collectionVariables.set(\"accessToken\", body.id_token);",
            "pm.collectionVariables.set(\"refreshToken\", body.refresh_token);",
        ],
    ),
    (
        "Who am I",
        "GET",
        "/v1/{org}/user/me",
        &[
            "pm.test(\"who am I (200)\", function () { pm.response.to.have.status(200); });",
            "const body = pm.response.json();",
            "pm.test(\"the signed-in user\", function () {",
            "  pm.expect(body.user_id).to.eql(pm.variables.get(\"userId\"));",
            "});",
            "pm.test(\"token_type is \" + body.token_type, function () {",
            "  pm.expect(body.token_type).to.be.oneOf([\"Bearer\", \"DPoP\"]);",
            "});",
        ],
    ),
    (
        "List my API keys",
        "GET",
        "/v1/{org}/api_keys",
        &[
            "pm.test(\"API keys listed (200)\", function () { pm.response.to.have.status(200); });",
            "pm.test(\"the key in use is listed\", function () {",
            "  const ids = pm.response.json().data.map(function (key) { return key.api_key_id; });",
            "  pm.expect(ids).to.include(pm.variables.get(\"apiKeyId\"));",
            "});",
        ],
    ),
    (
        "Refresh",
        "POST",
        "/v1/{org}/oauth/token",
        &[
            "pm.test(\"refreshed (200)\", function () { pm.response.to.have.status(200); });",
            "const body = pm.response.json();",
            "pm.test(\"a new access token\", function () {",
            "  pm.expect(body.access_token).to.be.a(\"string\").and.not.empty;",
            "});",
            "pm.collectionVariables.set(\"accessToken\", body.access_token);",
            "pm.collectionVariables.set(\"refreshToken\", body.refresh_token);",
        ],
    ),
];

/// The collection for the OpenAPI document `doc`, whose first server is `baseUrl`.
pub fn collection(doc: &Value) -> Value {
    let base_url = doc
        .pointer("/servers/0/url")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let operations = operation::operations(doc);

    let mut folders = vec![quick_start(&operations)];
    let tags: Vec<(String, String)> = doc
        .get("tags")
        .and_then(Value::as_array)
        .map(|tags| {
            tags.iter()
                .filter_map(|t| {
                    Some((
                        t.get("name")?.as_str()?.to_owned(),
                        t.get("description")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut names: Vec<(String, String)> = tags;
    for op in &operations {
        if !names.iter().any(|(name, _)| *name == op.tag) {
            names.push((op.tag.clone(), String::new()));
        }
    }
    for (name, description) in names {
        let items: Vec<Value> = operations
            .iter()
            .filter(|op| op.tag == name)
            .map(|op| op.item.clone())
            .collect();
        if !items.is_empty() {
            folders.push(json!({"name": name, "description": description, "item": items}));
        }
    }

    let variable = |key: &str, value: &str, description: &str| json!({"key": key, "value": value, "type": "string", "description": description});
    json!({
        "info": {
            "name": doc.pointer("/info/title").and_then(Value::as_str).unwrap_or("keygate"),
            "description": "keygate's API, generated from /openapi.json. Set `org`, `apiKeyId`, `apiKey` and `userId` on the collection's Variables tab (a first start prints them), then run the **Quick start** folder: sign-in stores `accessToken` and `refreshToken`, and every protected request sends `Authorization: Bearer {{accessToken}}`. For DPoP-bound tokens, start `keygate dpop proxy` and point `baseUrl` at it (docs/postman.md).",
            "schema": SCHEMA,
        },
        "item": folders,
        "auth": operation::bearer(),
        "variable": [
            variable("baseUrl", base_url, "keygate's public URL, or the address of `keygate dpop proxy` for DPoP-bound tokens"),
            variable("org", DEFAULT_ORG, "The organization's slug"),
            variable("apiKeyId", "", "The API key id (`key_…`)"),
            variable("apiKey", "", "The API key secret (`ak_live_…` or `ak_test_…`); keep it out of shared workspaces"),
            variable("userId", "", "The user to sign in as (`usr_…`): the key's owner"),
            variable("accessToken", "", "Set by Sign in and Refresh"),
            variable("refreshToken", "", "Set by Sign in and Refresh"),
        ],
    })
}

/// The Quick start folder: copies of the document's own requests, with test scripts.
fn quick_start(operations: &[Operation]) -> Value {
    let items: Vec<Value> = QUICK_START
        .iter()
        .filter_map(|(name, method, path, script)| {
            let op = operations
                .iter()
                .find(|op| op.method == *method && op.path == *path)?;
            let mut item = op.item.clone();
            item["name"] = json!(name);
            if *name == "Refresh" {
                refresh_form(&mut item);
            }
            item["event"] = json!([{
                "listen": "test",
                "script": {"type": "text/javascript", "exec": script},
            }]);
            Some(item)
        })
        .collect();
    json!({
        "name": "Quick start",
        "description": "Run this folder first: sign in (stores `accessToken` and `refreshToken`), who am I, list my API keys, refresh. Each request checks its status.",
        "item": items,
    })
}

/// The token request as a refresh: `grant_type=refresh_token` with `{{refreshToken}}`, the
/// other fields disabled, no client authentication (a session's refresh token is its own
/// credential, RFC 6749 §6).
fn refresh_form(item: &mut Value) {
    if let Some(fields) = item
        .pointer_mut("/request/body/urlencoded")
        .and_then(Value::as_array_mut)
    {
        for field in fields {
            let key = field["key"].as_str().unwrap_or_default().to_owned();
            let enabled = key == "grant_type" || key == "refresh_token";
            field["disabled"] = json!(!enabled);
            if key == "grant_type" {
                field["value"] = json!("refresh_token");
            }
        }
    }
    item["request"]["auth"] = json!({"type": "noauth"});
}

/// `GET /postman.json`.
pub async fn postman_json(state: web::Data<AppState>) -> HttpResponse {
    let doc = super::openapi::document_for(&state);
    let doc = serde_json::to_value(doc).unwrap_or(Value::Null);
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=60"))
        .json(collection(&doc))
}
