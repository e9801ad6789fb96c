//! `GET /postman.json`: a Postman v2.1 collection made from the OpenAPI document: its
//! variables, every operation filed by tag with its authentication, no placeholder where a
//! credential belongs, optional headers disabled, and a Quick start folder that works when
//! run in order (here by a small runner of the collection's own requests; CI runs it with
//! newman), straight to keygate and through `keygate dpop proxy`.

use std::collections::HashMap;

use keygate::dpop_client::{ClientKey, DpopAlg};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::dpop_proxy::start_proxy;
use crate::helpers::{TestApp, json, spawn_app, spawn_app_with};

async fn collection(app: &TestApp) -> Value {
    let response = app
        .client
        .get(app.url("/postman.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    response.json().await.unwrap()
}

/// Every request item, with the folder it is in.
fn requests(collection: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for folder in collection["item"].as_array().unwrap() {
        let name = folder["name"].as_str().unwrap().to_owned();
        for item in folder["item"].as_array().unwrap() {
            out.push((name.clone(), item.clone()));
        }
    }
    out
}

fn path_of(item: &Value) -> String {
    let segments: Vec<&str> = item["request"]["url"]["path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    format!("/{}", segments.join("/"))
}

fn header<'a>(item: &'a Value, name: &str) -> &'a Value {
    item["request"]["header"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["key"].as_str().unwrap().eq_ignore_ascii_case(name))
        .unwrap_or_else(|| panic!("no {name} header: {item}"))
}

#[tokio::test]
async fn the_collection_is_postman_v2_1_with_the_variables_and_bearer_by_default() {
    let app = spawn_app().await;
    let collection = collection(&app).await;
    assert_eq!(
        collection["info"]["schema"],
        "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
    );
    let variables: HashMap<&str, &str> = collection["variable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["key"].as_str().unwrap(), v["value"].as_str().unwrap()))
        .collect();
    let mut keys: Vec<&str> = variables.keys().copied().collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "accessToken",
            "apiKey",
            "apiKeyId",
            "baseUrl",
            "org",
            "refreshToken",
            "userId"
        ]
    );
    assert_eq!(variables["baseUrl"], app.address);
    assert_eq!(variables["org"], "default");
    assert_eq!(variables["apiKey"], "", "no secret is ever served");
    assert_eq!(
        collection["auth"],
        json!({"type": "bearer", "bearer": [{"key": "token", "value": "{{accessToken}}", "type": "string"}]})
    );
}

#[tokio::test]
async fn every_operation_is_a_request_with_its_authentication_and_no_placeholder() {
    let app = spawn_app().await;
    let collection = collection(&app).await;
    let text = collection.to_string();
    assert!(!text.contains("<string>"), "no converter placeholders");
    assert!(
        !text.contains(&app.owner.api_key_id),
        "no credential of this server"
    );

    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut operations = 0;
    let all = requests(&collection);
    let tagged: Vec<&(String, Value)> = all.iter().filter(|(f, _)| f != "Quick start").collect();
    for (path, methods) in doc["paths"].as_object().unwrap() {
        for (method, operation) in methods.as_object().unwrap() {
            operations += 1;
            let postman_path = path
                .split('/')
                .map(|segment| match segment {
                    "{org}" => "{{org}}".to_owned(),
                    s if s.starts_with('{') => format!(":{}", &s[1..s.len() - 1]),
                    s => s.to_owned(),
                })
                .collect::<Vec<_>>()
                .join("/");
            let (folder, item) = tagged
                .iter()
                .find(|(_, item)| {
                    item["request"]["method"] == method.to_uppercase().as_str()
                        && path_of(item) == postman_path
                })
                .unwrap_or_else(|| panic!("{method} {path} is missing"));
            assert_eq!(folder, operation["tags"][0].as_str().unwrap(), "{path}");
            assert!(
                item["request"]["url"]["raw"]
                    .as_str()
                    .unwrap()
                    .starts_with("{{baseUrl}}/"),
                "{item}"
            );
            let first = operation["security"][0]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let auth = &item["request"]["auth"];
            if first.contains_key("bearer") {
                assert_eq!(auth["type"], "bearer", "{method} {path}");
                assert_eq!(auth["bearer"][0]["value"], "{{accessToken}}");
            } else if first.contains_key("client_basic") {
                assert_eq!(auth["type"], "basic", "{method} {path}");
                assert_eq!(auth["basic"][0]["value"], "{{apiKeyId}}");
                assert_eq!(auth["basic"][1]["value"], "{{apiKey}}");
            } else {
                assert_eq!(auth["type"], "noauth", "{method} {path}");
            }
        }
    }
    assert_eq!(tagged.len(), operations, "one request per operation");
    for path in [
        "/v1/{{org}}/oauth/token",
        "/v1/{{org}}/oauth/revoke",
        "/v1/{{org}}/oauth/introspect",
    ] {
        let (_, item) = tagged.iter().find(|(_, i)| path_of(i) == path).unwrap();
        assert_eq!(item["request"]["auth"]["type"], "basic", "{path}");
    }

    // Sign-in: its credentials are the variables; optional headers are there, disabled.
    let (_, signin) = tagged
        .iter()
        .find(|(_, i)| path_of(i) == "/v1/{{org}}/user/signin_with_api_key")
        .unwrap();
    for (name, value) in [
        ("x-api-key", "{{apiKey}}"),
        ("x-api-key-id", "{{apiKeyId}}"),
        ("x-user-id", "{{userId}}"),
    ] {
        assert_eq!(header(signin, name)["value"], value);
        assert_eq!(header(signin, name)["disabled"], false);
    }
    for optional in ["x-mongo-cluster-name", "DPoP"] {
        assert_eq!(header(signin, optional)["disabled"], true, "{optional}");
    }
}

/// Replaces `{{name}}` with the variable's value.
fn substitute(text: &str, vars: &HashMap<String, String>) -> String {
    let mut out = text.to_owned();
    for (key, value) in vars {
        out = out.replace(&format!("{{{{{key}}}}}"), value);
    }
    out
}

/// Sends one request item as Postman would: enabled headers and fields, its auth.
async fn send(app: &TestApp, item: &Value, vars: &HashMap<String, String>) -> reqwest::Response {
    let request = &item["request"];
    let method =
        reqwest::Method::from_bytes(request["method"].as_str().unwrap().as_bytes()).unwrap();
    let url = substitute(request["url"]["raw"].as_str().unwrap(), vars);
    let mut builder = app.client.request(method, url);
    for h in request["header"].as_array().unwrap() {
        if h["disabled"] != true {
            builder = builder.header(
                h["key"].as_str().unwrap(),
                substitute(h["value"].as_str().unwrap(), vars),
            );
        }
    }
    let auth = &request["auth"];
    match auth["type"].as_str().unwrap() {
        "bearer" => {
            builder = builder.bearer_auth(substitute(
                auth["bearer"][0]["value"].as_str().unwrap(),
                vars,
            ))
        }
        "basic" => {
            builder = builder.basic_auth(
                substitute(auth["basic"][0]["value"].as_str().unwrap(), vars),
                Some(substitute(
                    auth["basic"][1]["value"].as_str().unwrap(),
                    vars,
                )),
            );
        }
        "noauth" => {}
        other => panic!("{other}"),
    }
    if let Some(fields) = request["body"]["urlencoded"].as_array() {
        let form: Vec<(String, String)> = fields
            .iter()
            .filter(|f| f["disabled"] != true)
            .map(|f| {
                (
                    f["key"].as_str().unwrap().to_owned(),
                    substitute(f["value"].as_str().unwrap(), vars),
                )
            })
            .collect();
        builder = builder.form(&form);
    }
    builder.send().await.unwrap()
}

/// Runs the Quick start folder against `base`: each request's status, and the variables
/// its test script stores (`pm.collectionVariables.set("name", body.field)`).
async fn run_quick_start(app: &TestApp, base: &str) -> Vec<Value> {
    let collection = collection(app).await;
    let folder = &collection["item"][0];
    assert_eq!(folder["name"], "Quick start");
    let names: Vec<&str> = folder["item"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["Sign in", "Who am I", "List my API keys", "Refresh"]
    );
    let mut vars: HashMap<String, String> = HashMap::from([
        ("baseUrl".into(), base.to_owned()),
        ("org".into(), app.owner.org.clone()),
        ("apiKeyId".into(), app.owner.api_key_id.clone()),
        ("apiKey".into(), app.owner.api_key.clone()),
        ("userId".into(), app.owner.user_id.clone()),
    ]);
    let mut bodies = Vec::new();
    for item in folder["item"].as_array().unwrap() {
        let script: Vec<&str> = item["event"][0]["script"]["exec"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap())
            .collect();
        assert_eq!(item["event"][0]["listen"], "test");
        assert!(
            script[0].contains("pm.response.to.have.status(200)"),
            "{script:?}"
        );
        let (status, body) = json(send(app, item, &vars).await).await;
        assert_eq!(status, StatusCode::OK, "{}: {body}", item["name"]);
        for line in &script {
            if let Some(rest) = line.strip_prefix("pm.collectionVariables.set(\"") {
                let (name, field) = rest.split_once("\", body.").unwrap();
                let field = field.trim_end_matches(");");
                vars.insert(name.to_owned(), body[field].as_str().unwrap().to_owned());
            }
        }
        bodies.push(body);
    }
    bodies
}

#[tokio::test]
async fn quick_start_runs_in_order_against_keygate() {
    let app = spawn_app().await;
    let bodies = run_quick_start(&app, &app.address).await;
    assert_eq!(bodies[0]["token_type"], "Bearer");
    assert_eq!(bodies[1]["user_id"], app.owner.user_id.as_str());
    assert_eq!(bodies[1]["token_type"], "Bearer");
    // A Bearer refresh token rotates.
    assert_ne!(bodies[3]["refresh_token"], bodies[0]["refresh_token"]);
}

#[tokio::test]
async fn quick_start_runs_unchanged_through_the_dpop_proxy() {
    let app = spawn_app_with(|s| s.dpop.nonce = true).await;
    let proxy = start_proxy(
        ClientKey::generate(DpopAlg::ES384),
        &app.address,
        None,
        app.clock.clone(),
    );
    let bodies = run_quick_start(&app, &proxy.address).await;
    assert_eq!(bodies[0]["token_type"], "DPoP");
    assert_eq!(bodies[1]["token_type"], "DPoP");
    assert_eq!(bodies[1]["auth_method"], "dpop");
    // A DPoP-bound refresh token does not rotate.
    assert_eq!(bodies[3]["refresh_token"], bodies[0]["refresh_token"]);
    assert_eq!(bodies[3]["token_type"], "DPoP");
}

#[tokio::test]
async fn docs_offer_the_proxy_as_a_second_server_when_configured() {
    let app =
        spawn_app_with(|s| s.docs.dpop_proxy_url = Some("http://127.0.0.1:8081/".into())).await;
    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let servers = doc["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 2);
    assert_eq!(servers[0]["url"], app.address.as_str());
    assert_eq!(servers[1]["url"], "http://127.0.0.1:8081");
    let page = app.client.get(app.url("/docs")).send().await.unwrap();
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("connect-src 'self' ") && csp.contains("http://127.0.0.1:8081"),
        "{csp}"
    );
    // The collection's baseUrl stays keygate's own.
    assert_eq!(
        collection(&app).await["variable"][0]["value"],
        app.address.as_str()
    );

    // Without the setting: one server.
    let plain = spawn_app().await;
    let doc: Value = plain
        .client
        .get(plain.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["servers"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_bad_dpop_proxy_url_stops_the_start_with_a_message() {
    let data_dir = tempfile::tempdir().unwrap();
    let db = crate::helpers::TestDatabase::create(data_dir.path()).await;
    for bad in [
        "ftp://127.0.0.1:8081",
        "not a url",
        "http://u:p@127.0.0.1:8081",
    ] {
        let mut settings = crate::helpers::test_settings(data_dir.path(), &db);
        settings.docs.dpop_proxy_url = Some(bad.into());
        let clock = std::sync::Arc::new(keygate::clock::SystemClock);
        let err = match keygate::startup::Application::build(settings, clock).await {
            Ok(_) => panic!("{bad} accepted"),
            Err(err) => format!("{err:#}"),
        };
        assert!(err.contains("docs.dpop_proxy_url"), "{bad}: {err}");
    }
}
