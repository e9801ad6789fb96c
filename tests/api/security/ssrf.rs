//! A provider's `jwks_uri` cannot aim keygate at private networks (SSRF) nor make it
//! buffer an endless body: non-public IP literals are refused at registration, every
//! resolved address is checked at fetch time (the address policy itself, including a
//! server bound elsewhere than loopback, is unit-tested in `src/outbound.rs`: these tests
//! never send traffic anywhere but loopback), and the body is read with a 256 KiB cap.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::federation::{AUDIENCE, ISSUER, JwksServer, ProviderKey, basic, me, setup, trust};

#[tokio::test]
async fn jwks_uris_on_private_link_local_or_mapped_addresses_are_refused_at_registration() {
    let (app, owner, _alice) = setup().await;
    for uri in [
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.1/jwks",
        "https://172.16.5.4/jwks",
        "https://192.168.1.1/jwks",
        "https://100.64.0.1/jwks",
        "https://0.0.0.0/jwks",
        "https://[fd00::1]/jwks",
        "https://[fe80::1]/jwks",
        "https://[::ffff:a9fe:a9fe]/jwks",
        "http://[::ffff:127.0.0.1]/jwks",
        "https://[::ffff:127.0.0.1]/jwks",
        "https://224.0.0.1/jwks",
    ] {
        let r = trust(
            &app,
            &owner,
            json!({"issuer": ISSUER, "jwks_uri": uri, "audience": AUDIENCE,
                   "algorithms": ["RS256"]}),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}: {}", r.body);
        r.expect_error(StatusCode::BAD_REQUEST, "invalid_request");
        assert!(r.message().contains("jwks_uri"), "{uri}: {}", r.message());
    }
    // Nothing was registered.
    let list = app
        .get_as(&owner.token, "/v1/default/trusted_issuers")
        .await;
    list.expect(StatusCode::OK);
    assert_eq!(list.body["data"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn a_loopback_name_resolves_through_the_guard_when_keygate_runs_on_loopback() {
    // keygate listens on 127.0.0.1 in tests, so loopback providers are allowed; the name
    // `localhost` goes through keygate's own resolver and address check.
    let (app, owner, alice) = setup().await;
    let key = ProviderKey::es256("k1");
    let server = JwksServer::start(json!({"keys": [key.jwk()]})).await;
    let uri = server.url.replace("127.0.0.1", "localhost");
    trust(
        &app,
        &owner,
        json!({"issuer": ISSUER, "jwks_uri": uri, "audience": AUDIENCE,
               "algorithms": ["ES256"]}),
    )
    .await
    .expect(StatusCode::CREATED);
    me(
        &app,
        "default",
        &basic(&alice, &key.token(&app, "idp|alice", json!({}))),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(server.hits(), 1);
}

/// The most the endless JWKS server below writes before it gives up.
const ENDLESS: usize = 128 * 1024 * 1024;

/// A JWKS endpoint whose chunked body never ends (up to [`ENDLESS`] bytes): counts what it
/// managed to write before the client hung up.
async fn endless_jwks_server() -> (String, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    let written = Arc::new(AtomicUsize::new(0));
    let count = written.clone();
    let task = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 8192];
        let mut read = 0;
        while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf[read..]).await {
                Ok(0) | Err(_) => return,
                Ok(n) => read += n,
            }
        }
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
        if stream.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let mut chunk = format!("{:x}\r\n", 16 * 1024).into_bytes();
        chunk.extend_from_slice(b"{\"keys\":[");
        chunk.resize(chunk.len() + 16 * 1024 - 9, b' ');
        chunk.extend_from_slice(b"\r\n");
        while count.load(Ordering::SeqCst) < ENDLESS {
            if stream.write_all(&chunk).await.is_err() {
                return;
            }
            count.fetch_add(16 * 1024, Ordering::SeqCst);
        }
    });
    (url, written, task)
}

#[tokio::test]
async fn an_endless_chunked_jwks_is_cut_at_the_cap_and_keygate_keeps_serving() {
    let (app, owner, alice) = setup().await;
    let (url, written, server) = endless_jwks_server().await;
    trust(
        &app,
        &owner,
        json!({"issuer": ISSUER, "jwks_uri": url, "audience": AUDIENCE,
               "algorithms": ["ES256"]}),
    )
    .await
    .expect(StatusCode::CREATED);

    let key = ProviderKey::es256("k1");
    let r = me(
        &app,
        "default",
        &basic(&alice, &key.token(&app, "idp|alice", json!({}))),
    )
    .await;
    r.expect_error(StatusCode::UNAUTHORIZED, "invalid_token");
    assert!(
        r.message().contains("could not be fetched"),
        "{}",
        r.message()
    );
    // keygate hung up early: the server's writes fail once the socket buffers are full,
    // long before the end of its body.
    tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .expect("the JWKS server stops writing once keygate hangs up")
        .unwrap();
    let sent = written.load(Ordering::SeqCst);
    assert!(
        sent < 32 * 1024 * 1024,
        "keygate read {sent} bytes of a body capped at 256 KiB"
    );

    // keygate keeps serving: a provider with a proper key set works.
    let good = ProviderKey::es256("k2");
    let server = JwksServer::start(json!({"keys": [good.jwk()]})).await;
    trust(
        &app,
        &owner,
        json!({"issuer": "https://good-idp.example.test", "jwks_uri": server.url,
               "audience": AUDIENCE, "algorithms": ["ES256"]}),
    )
    .await
    .expect(StatusCode::CREATED);
    let token = good.token(
        &app,
        "idp|alice",
        json!({"iss": "https://good-idp.example.test"}),
    );
    me(&app, "default", &basic(&alice, &token))
        .await
        .expect(StatusCode::OK);
}
