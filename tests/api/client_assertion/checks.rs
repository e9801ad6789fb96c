//! Every check of an assertion, one by one: each refusal is 401 `invalid_client` with an
//! `error_description` naming the check; the edges that must still pass; single use of
//! `jti`, raced; a revoked, expired or disabled client.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{
    ASSERTION_TYPE, Client, Signer, claims, client, issuer, owner_token, post, refused, token,
};
use crate::dpop_key::DpopKey;
use crate::helpers::{TestApp, json, spawn_app, spawn_app_with};

/// A change to an assertion's header and claims.
type Edit<'a> = dyn FnOnce(&mut Value, &mut Value) + 'a;

/// The configured `tokens.leeway`, in seconds.
fn leeway(app: &TestApp) -> i64 {
    app.state.settings.tokens.leeway.as_secs() as i64
}

/// An assertion with `edit` applied to a valid header and claims, signed by the client.
fn edited(app: &TestApp, client: &Client, edit: impl FnOnce(&mut Value, &mut Value)) -> String {
    let (mut header, mut c) = (client.signer.header(), claims(app, &client.id));
    edit(&mut header, &mut c);
    client.signer.sign(&header, &c)
}

fn hs256(secret: &[u8], header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", B64.encode(tag.as_ref()))
}

#[tokio::test]
async fn each_check_refuses_with_invalid_client_naming_it() {
    let app = spawn_app().await;
    let me = client(&app, Signer::es256().with_kid("k1")).await;
    let other = client(&app, Signer::es256()).await;
    let now = app.now().timestamp();
    let lw = leeway(&app);
    let set = |name: &'static str, v: Value| move |_: &mut Value, c: &mut Value| c[name] = v;
    let drop = |name: &'static str| {
        move |_: &mut Value, c: &mut Value| {
            c.as_object_mut().unwrap().remove(name);
        }
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "iss is not the client",
            edited(&app, &me, set("iss", json!("https://attacker.example"))),
            "iss and sub",
        ),
        (
            "sub is another client",
            edited(&app, &me, set("sub", json!(other.id))),
            "iss and sub",
        ),
        (
            "iss and sub another client, signed by me",
            edited(&app, &me, |_, c| {
                c["iss"] = json!(other.id);
                c["sub"] = json!(other.id);
            }),
            "signature",
        ),
        (
            "unknown key id",
            edited(&app, &me, |_, c| {
                let id = keygate::ids::new_id("key");
                c["iss"] = json!(id);
                c["sub"] = json!(id);
            }),
            "no key-pair client",
        ),
        (
            "a key with a secret",
            edited(&app, &me, |_, c| {
                c["iss"] = json!(app.owner.api_key_id);
                c["sub"] = json!(app.owner.api_key_id);
            }),
            "no key-pair client",
        ),
        ("no iss", edited(&app, &me, drop("iss")), "`iss`"),
        ("no sub", edited(&app, &me, drop("sub")), "`sub`"),
        (
            "aud elsewhere",
            edited(
                &app,
                &me,
                set("aud", json!("https://other.example/v1/default")),
            ),
            "aud",
        ),
        (
            "aud of another organization",
            edited(
                &app,
                &me,
                set("aud", json!(format!("{}/v1/acme", app.state.public_url))),
            ),
            "aud",
        ),
        (
            "aud list without us",
            edited(
                &app,
                &me,
                set("aud", json!(["https://a.example", "https://b.example"])),
            ),
            "aud",
        ),
        (
            "aud with a trailing slash",
            edited(&app, &me, set("aud", json!(format!("{}/", issuer(&app))))),
            "aud",
        ),
        ("no aud", edited(&app, &me, drop("aud")), "`aud`"),
        ("no exp", edited(&app, &me, drop("exp")), "`exp`"),
        (
            "exp not a number",
            edited(&app, &me, set("exp", json!("soon"))),
            "`exp`",
        ),
        (
            "exp over 5 minutes ahead",
            edited(&app, &me, set("exp", json!(now + 300 + lw + 1))),
            "more than 300 seconds",
        ),
        (
            "expired",
            edited(&app, &me, set("exp", json!(now - lw))),
            "has expired (exp)",
        ),
        (
            "iat in the future",
            edited(&app, &me, set("iat", json!(now + lw + 5))),
            "iat",
        ),
        (
            "nbf in the future",
            edited(&app, &me, set("nbf", json!(now + lw + 5))),
            "nbf",
        ),
        ("no jti", edited(&app, &me, drop("jti")), "`jti`"),
        (
            "jti not a string",
            edited(&app, &me, set("jti", json!(42))),
            "`jti`",
        ),
        (
            "jti too long",
            edited(&app, &me, set("jti", json!("j".repeat(257)))),
            "`jti`",
        ),
        (
            "unknown kid",
            edited(&app, &me, |h, _| h["kid"] = json!("k2")),
            "kid names none",
        ),
        (
            "kid not a string",
            edited(&app, &me, |h, _| h["kid"] = json!(1)),
            "kid names none",
        ),
        (
            "crit header",
            edited(&app, &me, |h, _| h["crit"] = json!(["exp"])),
            "crit",
        ),
        (
            "typed as a DPoP proof",
            edited(&app, &me, |h, _| h["typ"] = json!("dpop+jwt")),
            "typ",
        ),
        (
            "typed as an access token",
            edited(&app, &me, |h, _| h["typ"] = json!("at+jwt")),
            "typ",
        ),
        (
            "signed by another key",
            Signer::es256().sign(&me.signer.header(), &claims(&app, &me.id)),
            "signature",
        ),
        (
            "ES384 on a P-256 key",
            {
                let p384 = Signer::ec(DpopKey::all().into_iter().nth(1).unwrap());
                let mut h = me.signer.header();
                h["alg"] = json!("ES384");
                p384.sign(&h, &claims(&app, &me.id))
            },
            "alg ES384 does not match the selected key (ES256)",
        ),
        (
            "RS256 on an EC key",
            {
                let rsa = Signer::rsa("RS256");
                let mut h = me.signer.header();
                h["alg"] = json!("RS256");
                rsa.sign(&h, &claims(&app, &me.id))
            },
            "alg RS256 does not match",
        ),
        (
            "alg none with a signature",
            edited(&app, &me, |h, _| h["alg"] = json!("none")),
            "`none` and HMAC",
        ),
        (
            "alg none, unsigned",
            {
                let h = json!({"alg": "none", "kid": "k1"});
                format!(
                    "{}.{}.",
                    B64.encode(h.to_string()),
                    B64.encode(claims(&app, &me.id).to_string())
                )
            },
            "not a compact JWS",
        ),
        (
            "HS256 keyed with the public key",
            {
                let h = json!({"alg": "HS256", "kid": "k1"});
                let x = me.signer.jwk()["x"].as_str().unwrap().to_owned();
                hs256(x.as_bytes(), &h, &claims(&app, &me.id))
            },
            "`none` and HMAC",
        ),
        (
            "HS256 keyed with a secret",
            hs256(b"secret", &json!({"alg": "HS256"}), &claims(&app, &me.id)),
            "`none` and HMAC",
        ),
        (
            "no alg",
            edited(&app, &me, |h, _| {
                h.as_object_mut().unwrap().remove("alg");
            }),
            "alg must be one of",
        ),
        (
            "claims swapped after signing",
            {
                let good = me.assertion(&app);
                let mut c = claims(&app, &me.id);
                c["exp"] = json!(now + 200);
                let parts: Vec<&str> = good.split('.').collect();
                format!("{}.{}.{}", parts[0], B64.encode(c.to_string()), parts[2])
            },
            "signature",
        ),
        (
            "not a JWT",
            "definitely-not-a-jwt".to_owned(),
            "not a compact JWS",
        ),
        ("too large", "a".repeat(9000), "exceeds"),
    ];
    for (name, assertion, says) in &cases {
        refused(&token(&app, assertion).await, says, name);
    }
    // `client_id` in the form must be the assertion's `sub` (RFC 7521 §4.2).
    let result = post(
        &app,
        "token",
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &me.assertion(&app)),
            ("client_id", &other.id),
        ],
    )
    .await;
    refused(
        &result,
        "client_id does not match",
        "client_id of another client",
    );
    // None of the refusals spent anything: a valid assertion still works.
    assert_eq!(token(&app, &me.assertion(&app)).await.0, StatusCode::OK);
}

#[tokio::test]
async fn the_edges_that_must_still_pass() {
    let app = spawn_app().await;
    let me = client(&app, Signer::es256()).await;
    let now = app.now().timestamp();
    let lw = leeway(&app);
    let iss = issuer(&app);
    let passing: Vec<(&str, Box<Edit<'_>>)> = vec![
        (
            "aud a list with the issuer",
            Box::new(|_, c| c["aud"] = json!(["https://x.example", iss.clone()])),
        ),
        (
            "aud the revocation endpoint",
            Box::new(|_, c| c["aud"] = json!(format!("{iss}/oauth/revoke"))),
        ),
        (
            "aud the introspection endpoint",
            Box::new(|_, c| c["aud"] = json!(format!("{iss}/oauth/introspect"))),
        ),
        (
            "exp at the furthest allowed",
            Box::new(move |_, c| c["exp"] = json!(now + 300 + lw)),
        ),
        (
            "exp just past, within the leeway",
            Box::new(move |_, c| c["exp"] = json!(now - lw + 1)),
        ),
        (
            "iat ahead within the leeway",
            Box::new(move |_, c| c["iat"] = json!(now + lw)),
        ),
        (
            "nbf ahead within the leeway",
            Box::new(move |_, c| c["nbf"] = json!(now + lw)),
        ),
        (
            "no typ",
            Box::new(|h, _| {
                h.as_object_mut().unwrap().remove("typ");
            }),
        ),
        (
            "the explicit typ",
            Box::new(|h, _| h["typ"] = json!("client-authentication+jwt")),
        ),
        (
            "no iat",
            Box::new(|_, c| {
                c.as_object_mut().unwrap().remove("iat");
            }),
        ),
        (
            "a kid, for the only key registered without one",
            Box::new(|h, _| h["kid"] = json!("any")),
        ),
        (
            "a fractional exp",
            Box::new(move |_, c| c["exp"] = json!(now as f64 + 30.5)),
        ),
    ];
    for (name, edit) in passing {
        let assertion = edited(&app, &me, edit);
        let (status, body) = token(&app, &assertion).await;
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
    }
}

#[tokio::test]
async fn a_jti_is_used_once_for_as_long_as_its_assertion_could_be_accepted() {
    let app = spawn_app().await;
    let me = client(&app, Signer::es256()).await;
    let assertion = me.assertion(&app);
    assert_eq!(token(&app, &assertion).await.0, StatusCode::OK);
    refused(&token(&app, &assertion).await, "used before", "second use");
    // Still remembered at the last second it could be accepted (exp + leeway)...
    app.clock
        .advance(Duration::from_secs(60 + leeway(&app) as u64 - 1));
    refused(
        &token(&app, &assertion).await,
        "used before",
        "at the end of its life",
    );
    // ...and after that it is refused for its age.
    app.clock.advance(Duration::from_secs(1));
    refused(
        &token(&app, &assertion).await,
        "has expired (exp)",
        "past its life",
    );
    // The same `jti` in another client's assertion is that client's business.
    let other = client(&app, Signer::es256()).await;
    let mut c = claims(&app, &other.id);
    c["jti"] = crate::helpers::claims_of(&assertion)["jti"].clone();
    let (status, body) = token(&app, &other.signer.sign(&other.signer.header(), &c)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// The same assertion sent twice at once, released together, on a multi-worker server:
/// exactly one is accepted, round after round.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_assertion_raced_is_accepted_once() {
    const ROUNDS: usize = 20;
    const RACERS: usize = 2;
    let app = spawn_app_with(|s| s.server.workers = Some(4)).await;
    let me = client(&app, Signer::es256()).await;
    let url = app.url("/v1/default/oauth/token");
    for round in 0..ROUNDS {
        let assertion = me.assertion(&app);
        let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
        let racers: Vec<_> = (0..RACERS)
            .map(|_| {
                let (client, url, assertion, barrier) = (
                    app.client.clone(),
                    url.clone(),
                    assertion.clone(),
                    barrier.clone(),
                );
                tokio::spawn(async move {
                    barrier.wait().await;
                    let res = client
                        .post(url)
                        .form(&[
                            ("grant_type", "client_credentials"),
                            ("client_assertion_type", ASSERTION_TYPE),
                            ("client_assertion", &assertion),
                        ])
                        .send()
                        .await
                        .unwrap();
                    json(res).await
                })
            })
            .collect();
        let mut results = Vec::new();
        for racer in racers {
            results.push(racer.await.unwrap());
        }
        let accepted = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
        assert_eq!(accepted, 1, "round {round}: {results:?}");
        for result in results.iter().filter(|(s, _)| *s != StatusCode::OK) {
            refused(result, "used before", &format!("round {round}"));
        }
    }
}

#[tokio::test]
async fn a_revoked_expired_or_disabled_client_is_refused_once_its_signature_holds() {
    let app = spawn_app().await;
    let owner = owner_token(&app).await;
    // Revoked: refused, and said so only to the key's holder.
    let revoked = client(&app, Signer::es256()).await;
    app.delete_as(&owner, &format!("/v1/default/api_keys/{}", revoked.id))
        .await
        .expect(StatusCode::NO_CONTENT);
    refused(
        &token(&app, &revoked.assertion(&app)).await,
        "revoked",
        "revoked",
    );
    let forged = Signer::es256().sign(&revoked.signer.header(), &claims(&app, &revoked.id));
    refused(
        &token(&app, &forged).await,
        "signature",
        "forged, for a revoked key",
    );

    // The owner disabled.
    let user = app
        .create_user("default", keygate::types::Role::Service)
        .await;
    let signer = Signer::es256();
    let reply = app
        .post_as(
            &owner,
            "/v1/default/api_keys",
            &json!({"name": "svc", "user_id": user.user_id, "public_jwks": signer.jwks()}),
        )
        .await;
    reply.expect(StatusCode::CREATED);
    let svc = Client {
        id: reply.str("api_key_id"),
        signer,
    };
    assert_eq!(token(&app, &svc.assertion(&app)).await.0, StatusCode::OK);
    app.set_user_directly(&user.user_id, None, Some(true)).await;
    refused(
        &token(&app, &svc.assertion(&app)).await,
        "disabled",
        "disabled owner",
    );

    // Expired.
    let signer = Signer::es256();
    let reply = app
        .post_as(
            &owner,
            "/v1/default/api_keys",
            &json!({"name": "short", "duration": "1h", "public_jwks": signer.jwks()}),
        )
        .await;
    reply.expect(StatusCode::CREATED);
    let short = Client {
        id: reply.str("api_key_id"),
        signer,
    };
    assert_eq!(token(&app, &short.assertion(&app)).await.0, StatusCode::OK);
    app.clock.advance(Duration::from_secs(3601));
    refused(
        &token(&app, &short.assertion(&app)).await,
        "API key has expired",
        "expired key",
    );
}
