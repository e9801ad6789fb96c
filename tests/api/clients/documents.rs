//! Client ID Metadata Documents: a `client_id` that is a URL names the client's JSON,
//! served here by a loopback test server (keygate's test server listens on loopback, so
//! loopback fetches are allowed, as in development). The document must be served with 200
//! and name itself; it is cached (the server counts fetches), and keygate's SSRF guards,
//! size cap and no-redirect rule hold.

use std::time::Duration;

use keygate::clients::{ClientAuth, ClientError, ClientSource};
use serde_json::json;

use super::{Answer, DocServer, document, identified, org};
use crate::helpers::{TestApp, spawn_app, spawn_app_with};

async fn resolve(app: &TestApp, client_id: &str) -> Result<keygate::clients::Client, String> {
    let org = org(app, "default").await;
    keygate::clients::resolve(&app.state, &org, client_id)
        .await
        .map_err(|e| match e {
            ClientError::Invalid(reason) => reason,
            other => format!("not Invalid: {other:?}"),
        })
}

#[track_caller]
fn refused(result: Result<keygate::clients::Client, String>, says: &str) {
    match result {
        Ok(c) => panic!("resolved {c:?}, expected a refusal saying {says:?}"),
        Err(reason) => assert!(reason.contains(says), "{reason:?} should say {says:?}"),
    }
}

#[tokio::test]
async fn a_good_document_is_a_public_client_and_is_cached() {
    let app = spawn_app().await;
    let server = DocServer::start(Answer::json(&json!({}))).await;
    let url = server.url("/oauth/client.json");
    server.set(Answer::json(&document(&url)));

    let client = resolve(&app, &url).await.unwrap();
    assert_eq!(client.client_id, url);
    assert_eq!(client.name, "Example MCP client");
    assert_eq!(client.auth, ClientAuth::None);
    assert_eq!(client.source, ClientSource::MetadataDocument);
    assert!(client.accepts_redirect_uri("http://127.0.0.1:40123/callback"));
    assert!(client.accepts_redirect_uri("https://client.example/cb"));
    assert!(!client.accepts_redirect_uri("https://evil.example/cb"));
    assert_eq!(server.hits(), 1);

    // Cached: neither a second resolve nor the token endpoint's authentication fetches.
    resolve(&app, &url).await.unwrap();
    assert_eq!(
        identified(&app, None, &[("client_id", &url)]).await,
        Ok(url.clone())
    );
    assert_eq!(server.hits(), 1, "served from the cache");
    // A public client sends nothing else.
    assert_eq!(
        identified(&app, None, &[("client_id", &url), ("client_secret", "x")]).await,
        Err("invalid_client".into())
    );

    // Five minutes later (clients.metadata_cache_ttl), fetched again: changes show.
    let mut changed = document(&url);
    changed["client_name"] = json!("Renamed client");
    server.set(Answer::json(&changed));
    app.clock.advance(Duration::from_secs(299));
    assert_eq!(
        resolve(&app, &url).await.unwrap().name,
        "Example MCP client"
    );
    assert_eq!(server.hits(), 1);
    app.clock.advance(Duration::from_secs(2));
    assert_eq!(resolve(&app, &url).await.unwrap().name, "Renamed client");
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn cache_control_shortens_the_cache_but_never_below_the_floor() {
    let app = spawn_app().await;
    let server = DocServer::start(Answer::json(&json!({}))).await;
    let url = server.url("/client.json");
    server.set(Answer::json(&document(&url)).with_header("cache-control", "public, max-age=60"));
    resolve(&app, &url).await.unwrap();
    app.clock.advance(Duration::from_secs(59));
    resolve(&app, &url).await.unwrap();
    assert_eq!(server.hits(), 1);
    app.clock.advance(Duration::from_secs(2));
    resolve(&app, &url).await.unwrap();
    assert_eq!(server.hits(), 2, "max-age=60 honoured");

    // no-store: kept for clients.metadata_min_ttl (10 s) all the same.
    server.set(Answer::json(&document(&url)).with_header("cache-control", "no-store"));
    app.clock.advance(Duration::from_secs(61));
    resolve(&app, &url).await.unwrap();
    assert_eq!(server.hits(), 3);
    app.clock.advance(Duration::from_secs(9));
    resolve(&app, &url).await.unwrap();
    assert_eq!(server.hits(), 3, "not fetched in a loop");
    app.clock.advance(Duration::from_secs(2));
    resolve(&app, &url).await.unwrap();
    assert_eq!(server.hits(), 4);
}

#[tokio::test]
async fn concurrent_requests_for_an_uncached_document_share_one_fetch() {
    let app = spawn_app().await;
    let server = DocServer::start(Answer::json(&json!({}))).await;
    let url = server.url("/client.json");
    server.set(Answer {
        delay: Duration::from_millis(300),
        ..Answer::json(&document(&url))
    });
    let org = org(&app, "default").await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (state, org, url) = (app.state.clone(), org.clone(), url.clone());
            tokio::spawn(async move { keygate::clients::resolve(&state, &org, &url).await })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap().is_ok());
    }
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn a_document_must_name_itself_and_be_a_valid_public_client() {
    let app = spawn_app().await;
    let server = DocServer::start(Answer::json(&json!({}))).await;
    let url = server.url("/client.json");
    let with = |k: &str, v: serde_json::Value| {
        let mut d = document(&url);
        d[k] = v;
        d
    };
    for (i, (doc, says)) in [
        (
            with("client_id", json!(server.url("/other.json"))),
            "client_id",
        ),
        (with("client_id", json!(format!("{url}?x"))), "client_id"),
        (with("client_id", serde_json::Value::Null), "client_id"),
        (
            with("token_endpoint_auth_method", json!("client_secret_basic")),
            "public clients only",
        ),
        (
            with("token_endpoint_auth_method", json!("private_key_jwt")),
            "public clients only",
        ),
        (with("client_secret", json!("s3cret")), "secret"),
        (
            with("redirect_uris", json!(["http://evil.example/cb"])),
            "loopback",
        ),
        (with("redirect_uris", json!([])), "at least one"),
        (json!(["not", "an", "object"]), "object"),
    ]
    .into_iter()
    .enumerate()
    {
        server.set(Answer::json(&doc));
        // A failure is remembered for clients.metadata_min_ttl: move past it each time.
        app.clock.advance(Duration::from_secs(11));
        refused(resolve(&app, &url).await, says);
        assert_eq!(server.hits(), i + 1);
    }
    server.set(Answer {
        body: "not json".into(),
        ..Answer::json(&json!({}))
    });
    app.clock.advance(Duration::from_secs(11));
    refused(resolve(&app, &url).await, "not JSON");
}

#[tokio::test]
async fn only_a_small_200_answer_is_a_document_and_redirects_are_not_followed() {
    let app = spawn_app().await;
    let server = DocServer::start(Answer::json(&json!({}))).await;
    let url = server.url("/client.json");

    // Over 5 KB (clients.metadata_max_bytes): refused, announced or not.
    let mut big = document(&url);
    big["padding"] = json!("x".repeat(6 * 1024));
    server.set(Answer::json(&big));
    refused(resolve(&app, &url).await, "larger than 5120 bytes");

    for (status, says) in [
        ("404 Not Found", "404"),
        ("201 Created", "201"),
        ("500 Internal Server Error", "500"),
    ] {
        server.set(Answer {
            status,
            ..Answer::json(&document(&url))
        });
        app.clock.advance(Duration::from_secs(11));
        refused(resolve(&app, &url).await, says);
    }
    // A redirect to a valid document is not followed.
    let target = DocServer::start(Answer::json(&json!({}))).await;
    server.set(
        Answer {
            status: "302 Found",
            ..Answer::json(&json!({}))
        }
        .with_header("location", &target.url("/client.json")),
    );
    app.clock.advance(Duration::from_secs(11));
    refused(resolve(&app, &url).await, "302");
    assert_eq!(target.hits(), 0);
}

#[tokio::test]
async fn a_failed_fetch_is_not_repeated_for_ten_seconds() {
    let app = spawn_app().await;
    let server = DocServer::start(Answer {
        status: "503 Service Unavailable",
        ..Answer::json(&json!({}))
    })
    .await;
    let url = server.url("/client.json");
    for _ in 0..5 {
        refused(resolve(&app, &url).await, "503");
    }
    assert_eq!(server.hits(), 1, "one fetch, whatever the traffic");
    // Fixed: still the failure within the floor, then the document.
    server.set(Answer::json(&document(&url)));
    app.clock.advance(Duration::from_secs(9));
    refused(resolve(&app, &url).await, "503");
    app.clock.advance(Duration::from_secs(2));
    assert!(resolve(&app, &url).await.is_ok());
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn client_identifier_urls_are_checked_before_anything_is_fetched() {
    let app = spawn_app().await;
    let server = DocServer::start(Answer::json(&json!({}))).await;
    let base = &server.base;
    for (url, says) in [
        ("http://client.example/client.json".to_owned(), "https"),
        ("https://client.example".to_owned(), "path"),
        ("https://client.example/".to_owned(), "path"),
        (format!("{base}/a/../client.json"), "`..`"),
        (format!("{base}/./client.json"), "`.`"),
        (format!("{base}/client.json#frag"), "fragment"),
        (
            format!("http://user:pw@{}/client.json", &base[7..]),
            "password",
        ),
        // SSRF: private, link-local and metadata-service addresses, as IP literals.
        (
            "https://10.0.0.1/client.json".to_owned(),
            "not a public address",
        ),
        (
            "https://192.168.1.1/client.json".to_owned(),
            "not a public address",
        ),
        (
            "https://169.254.169.254/latest/meta-data".to_owned(),
            "not a public address",
        ),
        (
            "https://[fd00::1]/client.json".to_owned(),
            "not a public address",
        ),
        ("https://[::ffff:127.0.0.1]/client.json".to_owned(), "IPv4"),
    ] {
        refused(resolve(&app, &url).await, says);
    }
    assert_eq!(server.hits(), 0);
    // Not URLs at all: unknown clients, not fetched.
    let org = org(&app, "default").await;
    for id in [
        "client.example/client.json",
        "ftp://client.example/c.json",
        "urn:x:y",
    ] {
        assert!(matches!(
            keygate::clients::resolve(&app.state, &org, id).await,
            Err(ClientError::Unknown)
        ));
    }
}

#[tokio::test]
async fn a_server_not_on_loopback_never_fetches_from_loopback() {
    // keygate listening on every interface: loopback targets are refused, by IP literal
    // and by name (after DNS resolution), and nothing reaches the local document server.
    let app = spawn_app_with(|s| s.server.bind = "0.0.0.0:0".into()).await;
    let server = DocServer::start(Answer::json(&json!({}))).await;
    let port = server.base.rsplit(':').next().unwrap().to_owned();
    for url in [
        server.url("/client.json"),
        format!("https://127.0.0.1:{port}/client.json"),
        format!("https://localhost:{port}/client.json"),
        format!("https://[::1]:{port}/client.json"),
    ] {
        let org = org(&app, "default").await;
        let result = keygate::clients::resolve(&app.state, &org, &url).await;
        assert!(
            matches!(result, Err(ClientError::Invalid(_))),
            "{url}: {result:?}"
        );
    }
    assert_eq!(server.hits(), 0);
}

#[tokio::test]
async fn the_metadata_says_documents_are_supported() {
    let app = spawn_app().await;
    let body: serde_json::Value = app
        .client
        .get(app.url("/.well-known/oauth-authorization-server/v1/default"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["client_id_metadata_document_supported"], true);
}
