//! The proofs the proxy signs, read by a recording upstream and checked claim by claim
//! (RFC 9449 §4.2, §4.3): `typ`, `alg`, a public `jwk` with no private part, a signature
//! that verifies (josekit, independent of both sides), `htm`, `htu` from the public URL
//! without the query, `iat`, a fresh `jti`, `ath` only with a token; and an upstream's
//! answer (status, headers, body) passed back byte for byte.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use josekit::jwk::Jwk;
use josekit::jws::{ES256, ES384, ES512, JwsVerifier};
use keygate::clock::{Clock, SystemClock};
use keygate::dpop_client::{ClientKey, DpopAlg};
use serde_json::{Value, json};

use super::start_proxy;

/// What the upstream saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    uri: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An upstream that records every request and answers 418 with fixed headers and body.
fn recording_upstream() -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let server = HttpServer::new(move || {
        let sink = sink.clone();
        App::new().default_service(web::to(move |req: HttpRequest| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(Seen {
                    method: req.method().to_string(),
                    uri: req.uri().to_string(),
                    headers: req
                        .headers()
                        .iter()
                        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_owned()))
                        .collect(),
                });
                HttpResponse::build(actix_web::http::StatusCode::IM_A_TEAPOT)
                    .insert_header(("Content-Type", "application/problem+json"))
                    .insert_header(("WWW-Authenticate", r#"DPoP error="invalid_token""#))
                    .insert_header(("Retry-After", "7"))
                    .insert_header(("X-Request-Id", "req-upstream"))
                    .insert_header(("X-Custom", "kept"))
                    .body(r#"{"error":{"code":"teapot","message":"short and stout"}}"#)
            }
        }))
    })
    .listen(listener)
    .unwrap()
    .workers(1)
    .run();
    tokio::spawn(server);
    (address, seen)
}

fn part(jws: &str, index: usize) -> Value {
    serde_json::from_slice(&B64.decode(jws.split('.').nth(index).unwrap()).unwrap()).unwrap()
}

fn verifier(alg: &str, jwk: &Jwk) -> Box<dyn JwsVerifier> {
    match alg {
        "ES256" => Box::new(ES256.verifier_from_jwk(jwk).unwrap()),
        "ES384" => Box::new(ES384.verifier_from_jwk(jwk).unwrap()),
        "ES512" => Box::new(ES512.verifier_from_jwk(jwk).unwrap()),
        other => panic!("{other}"),
    }
}

/// The RFC 9449 §4.3 checks a server makes, written out here; returns the claims.
fn check_proof(proof: &str, alg: DpopAlg, method: &str, htu: &str) -> Value {
    let header = part(proof, 0);
    assert_eq!(header["typ"], "dpop+jwt");
    assert_eq!(header["alg"], alg.as_str());
    let jwk = header["jwk"].as_object().unwrap();
    assert_eq!(jwk["kty"], "EC");
    assert_eq!(jwk["crv"], alg.curve());
    assert!(!jwk.contains_key("d"), "no private part: {header}");
    let verifier = verifier(
        alg.as_str(),
        &Jwk::from_bytes(serde_json::to_vec(&header["jwk"]).unwrap()).unwrap(),
    );
    let (input, signature) = proof.rsplit_once('.').unwrap();
    verifier
        .verify(input.as_bytes(), &B64.decode(signature).unwrap())
        .expect("the signature verifies");
    let claims = part(proof, 1);
    assert_eq!(claims["htm"], method);
    assert_eq!(claims["htu"], htu);
    let iat = claims["iat"].as_i64().unwrap();
    assert!((iat - SystemClock.now().timestamp()).abs() <= 5, "{claims}");
    assert!(claims["jti"].as_str().unwrap().len() >= 22, "{claims}");
    claims
}

fn sha256_b64(text: &str) -> String {
    B64.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes()).as_ref())
}

#[tokio::test]
async fn every_request_gets_a_fresh_proof_that_passes_the_rfc_9449_checks() {
    let (upstream, seen) = recording_upstream();
    let client = reqwest::Client::new();
    for alg in DpopAlg::ALL {
        seen.lock().unwrap().clear();
        let key = ClientKey::generate(alg);
        // keygate's public URL differs from the address the proxy reaches it at.
        let proxy = start_proxy(
            key.clone(),
            &upstream,
            Some("https://KG.example:443/"),
            Arc::new(SystemClock),
        );
        let path = "/v1/default/user/signin_with_api_key";
        for _ in 0..2 {
            client
                .post(proxy.url(&format!("{path}?resource=x#frag")))
                .header("x-api-key", "ak_test_secret")
                .send()
                .await
                .unwrap();
        }
        let bound = format!(
            "e30.{}.c2ln",
            B64.encode(json!({"cnf": {"jkt": key.thumbprint()}}).to_string())
        );
        client
            .get(proxy.url("/v1/default/user/me"))
            .bearer_auth(&bound)
            .send()
            .await
            .unwrap();
        client
            .get(proxy.url("/v1/default/api_keys"))
            .header("Authorization", "Basic a2V5OnNlY3JldA==")
            .send()
            .await
            .unwrap();

        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 4, "{alg}");
        let htu_signin = format!("https://kg.example{path}");
        let first = check_proof(seen[0].header("dpop").unwrap(), alg, "POST", &htu_signin);
        let second = check_proof(seen[1].header("dpop").unwrap(), alg, "POST", &htu_signin);
        assert_ne!(first["jti"], second["jti"], "a fresh jti every time");
        assert!(first.get("ath").is_none(), "no token, no ath: {first}");
        assert_eq!(
            seen[0].uri,
            format!("{path}?resource=x"),
            "the query is forwarded"
        );
        assert_eq!(seen[0].header("x-api-key"), Some("ak_test_secret"));
        assert_eq!(seen[0].method, "POST");

        // A token bound to this key: sent as DPoP, with ath = base64url(SHA-256(token)).
        let me = check_proof(
            seen[2].header("dpop").unwrap(),
            alg,
            "GET",
            "https://kg.example/v1/default/user/me",
        );
        assert_eq!(me["ath"], sha256_b64(&bound));
        assert_eq!(
            seen[2].header("authorization"),
            Some(format!("DPoP {bound}").as_str())
        );

        // Basic stays Basic; the proof has no ath.
        let basic = check_proof(
            seen[3].header("dpop").unwrap(),
            alg,
            "GET",
            "https://kg.example/v1/default/api_keys",
        );
        assert!(basic.get("ath").is_none());
        assert_eq!(
            seen[3].header("authorization"),
            Some("Basic a2V5OnNlY3JldA==")
        );
    }
}

#[tokio::test]
async fn the_upstream_answer_comes_back_byte_for_byte_and_a_client_s_own_proof_is_untouched() {
    let (upstream, seen) = recording_upstream();
    let proxy = start_proxy(
        ClientKey::generate(DpopAlg::ES256),
        &upstream,
        None,
        Arc::new(SystemClock),
    );
    let response = reqwest::Client::new()
        .post(proxy.url("/v1/default/oauth/token"))
        .header("DPoP", "the.clients.own")
        .header("Authorization", "DPoP some-token")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 418);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(headers["www-authenticate"], r#"DPoP error="invalid_token""#);
    assert_eq!(headers["retry-after"], "7");
    assert_eq!(headers["x-request-id"], "req-upstream");
    assert_eq!(headers["x-custom"], "kept");
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"error":{"code":"teapot","message":"short and stout"}}"#
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("dpop"), Some("the.clients.own"));
    assert_eq!(seen[0].header("authorization"), Some("DPoP some-token"));
    assert_eq!(
        proxy.lines(),
        vec!["POST /v1/default/oauth/token 418 (the client's own proof)"]
    );
}
