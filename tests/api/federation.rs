//! Trusted identity providers (README, "Trusted identity providers") over HTTP: the test runs its own JWKS server
//! on a loopback port and signs tokens with RS256 and ES256 keys it generated (josekit);
//! keygate fetches the keys with its real HTTP client.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use josekit::jwk::Jwk;
use josekit::jwk::KeyPair;
use josekit::jws::{ES256, JwsHeader, JwsSigner, RS256};
use josekit::jwt::JwtPayload;
use keygate::types::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::admin_helpers::{Reply, Session};
use crate::helpers::{TestApp, spawn_app_with};

pub const ISSUER: &str = "https://idp.example.test";
pub const AUDIENCE: &str = "keygate-default";
/// The JWKS cooldown of [`setup`]'s app: long, since only the test clock moves it.
const COOLDOWN: Duration = Duration::from_secs(60);

/// A provider's signing key.
pub struct ProviderKey {
    kid: String,
    signer: Box<dyn JwsSigner>,
    public: Jwk,
}

impl ProviderKey {
    pub fn rs256(kid: &str) -> Self {
        let pair = RS256.generate_key_pair(2048).unwrap();
        let mut public = pair.to_jwk_public_key();
        public.set_key_id(kid);
        Self {
            kid: kid.into(),
            signer: Box::new(RS256.signer_from_jwk(&pair.to_jwk_key_pair()).unwrap()),
            public,
        }
    }

    pub fn es256(kid: &str) -> Self {
        let pair = ES256.generate_key_pair().unwrap();
        let mut public = pair.to_jwk_public_key();
        public.set_key_id(kid);
        Self {
            kid: kid.into(),
            signer: Box::new(ES256.signer_from_jwk(&pair.to_jwk_key_pair()).unwrap()),
            public,
        }
    }

    pub fn jwk(&self) -> Value {
        serde_json::to_value(self.public.as_ref()).unwrap()
    }

    /// A token with the claims a provider would issue now for `sub`, overridden by `extra`.
    pub fn token(&self, app: &TestApp, sub: &str, extra: Value) -> String {
        let now = app.now().timestamp();
        let mut claims = json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": sub,
            "iat": now, "nbf": now, "exp": now + 600,
        });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        let mut header = JwsHeader::new();
        header.set_token_type("JWT");
        header.set_key_id(&self.kid);
        let payload = JwtPayload::from_map(claims.as_object().unwrap().clone()).unwrap();
        josekit::jwt::encode_with_signer(&payload, &header, self.signer.as_ref()).unwrap()
    }
}

/// A JWKS endpoint on a loopback port: serves the current key set, counts fetches, and can
/// be taken down (503).
pub struct JwksServer {
    pub url: String,
    keys: Arc<Mutex<Value>>,
    hits: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
}

impl JwksServer {
    pub async fn start(keys: Value) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let keys = Arc::new(Mutex::new(keys));
        let hits = Arc::new(AtomicUsize::new(0));
        let down = Arc::new(AtomicBool::new(false));
        let (k, h, d) = (keys.clone(), hits.clone(), down.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let (k, h, d) = (k.clone(), h.clone(), d.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let mut read = 0;
                    while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf[read..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => read += n,
                        }
                    }
                    h.fetch_add(1, Ordering::SeqCst);
                    let (status, body) = if d.load(Ordering::SeqCst) {
                        ("503 Service Unavailable", "{}".to_owned())
                    } else {
                        ("200 OK", k.lock().unwrap().to_string())
                    };
                    let response = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                });
            }
        });
        Self {
            url,
            keys,
            hits,
            down,
        }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

pub fn basic(user_id: &str, token: &str) -> String {
    format!(
        "Basic {}",
        STANDARD.encode(format!("default_{user_id}:{token}"))
    )
}

pub async fn me(app: &TestApp, org: &str, authorization: &str) -> Reply {
    Reply::from(
        app.client
            .get(app.url(&format!("/v1/{org}/user/me")))
            .header("authorization", authorization)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// An app with a [`COOLDOWN`] JWKS cooldown, the owner's session, and a member linked to
/// the provider's subject `idp|alice`.
pub async fn setup() -> (TestApp, Session, String) {
    let app = spawn_app_with(|s| {
        s.federation.jwks_cooldown = COOLDOWN;
    })
    .await;
    let owner = app.session(&app.owner.clone()).await;
    let alice = app.create_user("default", Role::Member).await;
    app.patch_as(
        &owner.token,
        &format!("/v1/default/users/{}", alice.user_id),
        &json!({"external_subject": "idp|alice"}),
    )
    .await
    .expect(StatusCode::OK);
    (app, owner, alice.user_id)
}

pub async fn trust(app: &TestApp, owner: &Session, body: Value) -> Reply {
    app.post_as(&owner.token, "/v1/default/trusted_issuers", &body)
        .await
}

#[tokio::test]
async fn provider_tokens_identify_users_through_basic_with_rs256_and_es256() {
    let (app, owner, alice) = setup().await;
    let rsa = ProviderKey::rs256("rsa-1");
    let ec = ProviderKey::es256("ec-1");
    let server = JwksServer::start(json!({"keys": [rsa.jwk(), ec.jwk()]})).await;
    let r = trust(
        &app,
        &owner,
        json!({"issuer": ISSUER, "jwks_uri": server.url, "audience": AUDIENCE,
               "subject_claim": "sub", "algorithms": ["RS256", "ES256"]}),
    )
    .await;
    r.expect(StatusCode::CREATED);
    assert!(r.str("id").starts_with("tis_"));

    for key in [&rsa, &ec] {
        let token = key.token(&app, "idp|alice", json!({}));
        let r = me(&app, "default", &basic(&alice, &token)).await;
        r.expect(StatusCode::OK);
        assert_eq!(r.body["user_id"], alice.as_str());
        assert_eq!(r.body["role"], "member");
        assert_eq!(r.body["auth_method"], "basic_federated");
    }
    assert_eq!(server.hits(), 1, "the key set is fetched once and cached");

    // The role works at the admin API like any other caller's: a member sees only itself.
    let token = rsa.token(&app, "idp|alice", json!({}));
    let users = Reply::from(
        app.client
            .get(app.url("/v1/default/users"))
            .header("authorization", basic(&alice, &token))
            .send()
            .await
            .unwrap(),
    )
    .await;
    users.expect(StatusCode::OK);
    assert_eq!(users.body["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn bad_provider_tokens_are_401_invalid_token() {
    let (app, owner, alice) = setup().await;
    let rsa = ProviderKey::rs256("rsa-1");
    let server = JwksServer::start(json!({"keys": [rsa.jwk()]})).await;
    trust(
        &app,
        &owner,
        json!({"issuer": ISSUER, "jwks_uri": server.url, "audience": AUDIENCE,
               "algorithms": ["RS256"]}),
    )
    .await
    .expect(StatusCode::CREATED);
    let now = app.now().timestamp();
    let stranger = ProviderKey::rs256("rsa-1");
    // (case, token, a phrase of the error's message)
    let cases = [
        (
            "no aud",
            rsa.token(&app, "idp|alice", json!({"aud": null})),
            "no `aud`",
        ),
        (
            "no iss",
            rsa.token(&app, "idp|alice", json!({"iss": null})),
            "",
        ),
        (
            "aud list without the registered audience",
            rsa.token(&app, "idp|alice", json!({"aud": ["a", "b"]})),
            "audience",
        ),
        (
            "wrong aud",
            rsa.token(&app, "idp|alice", json!({"aud": "someone-else"})),
            "audience",
        ),
        (
            "wrong iss",
            rsa.token(&app, "idp|alice", json!({"iss": "https://evil.example"})),
            "does not trust",
        ),
        (
            "expired",
            rsa.token(
                &app,
                "idp|alice",
                json!({"exp": now - 3600, "iat": now - 7200, "nbf": now - 7200}),
            ),
            "expired",
        ),
        (
            "not yet valid",
            rsa.token(&app, "idp|alice", json!({"nbf": now + 3600})),
            "not valid yet",
        ),
        (
            "issued in the future",
            rsa.token(&app, "idp|alice", json!({"iat": now + 3600})),
            "in the future",
        ),
        (
            "no exp",
            rsa.token(&app, "idp|alice", json!({"exp": null})),
            "no `exp`",
        ),
        (
            "another key under the same kid",
            stranger.token(&app, "idp|alice", json!({})),
            "signature",
        ),
        (
            "unknown subject",
            rsa.token(&app, "idp|bob", json!({})),
            "external subject",
        ),
        (
            "alg not registered",
            ProviderKey::es256("rsa-1").token(&app, "idp|alice", json!({})),
            "alg",
        ),
    ];
    for (name, token, phrase) in &cases {
        let r = me(&app, "default", &basic(&alice, token)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{name}: {}", r.body);
        r.expect_error(StatusCode::UNAUTHORIZED, "invalid_token");
        assert!(r.message().contains(phrase), "{name}: {}", r.message());
    }
    // The username must name the user the token identifies.
    let token = rsa.token(&app, "idp|alice", json!({}));
    me(&app, "default", &basic(&owner.creds.user_id, &token))
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "invalid_token");
    // A disabled user's provider token stops working.
    app.patch_as(
        &owner.token,
        &format!("/v1/default/users/{alice}"),
        &json!({"disabled": true}),
    )
    .await
    .expect(StatusCode::OK);
    me(&app, "default", &basic(&alice, &token))
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "invalid_token");
}

#[tokio::test]
async fn an_unknown_kid_refetches_once_per_cooldown_then_fails() {
    let (app, owner, alice) = setup().await;
    let old = ProviderKey::es256("k-old");
    let server = JwksServer::start(json!({"keys": [old.jwk()]})).await;
    trust(
        &app,
        &owner,
        json!({"issuer": ISSUER, "jwks_uri": server.url, "audience": AUDIENCE,
               "algorithms": ["ES256"]}),
    )
    .await
    .expect(StatusCode::CREATED);
    me(
        &app,
        "default",
        &basic(&alice, &old.token(&app, "idp|alice", json!({}))),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(server.hits(), 1);

    // A kid nobody published: one refetch, then refusals without fetching again.
    let unknown = ProviderKey::es256("k-nobody");
    for _ in 0..3 {
        me(
            &app,
            "default",
            &basic(&alice, &unknown.token(&app, "idp|alice", json!({}))),
        )
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "invalid_token");
    }
    assert_eq!(server.hits(), 2, "one refetch for the unknown kid");

    // The provider rotates: the new kid is fetched once the cooldown has passed on
    // keygate's clock (not before, however much real time passes).
    let new = ProviderKey::es256("k-new");
    *server.keys.lock().unwrap() = json!({"keys": [old.jwk(), new.jwk()]});
    app.clock.advance(COOLDOWN - Duration::from_secs(1));
    me(
        &app,
        "default",
        &basic(&alice, &new.token(&app, "idp|alice", json!({}))),
    )
    .await
    .expect_error(StatusCode::UNAUTHORIZED, "invalid_token");
    assert_eq!(server.hits(), 2, "still within the cooldown");
    app.clock.advance(Duration::from_secs(2));
    me(
        &app,
        "default",
        &basic(&alice, &new.token(&app, "idp|alice", json!({}))),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn a_provider_that_is_down_keeps_cached_keys_working_and_fails_cleanly_without() {
    let (app, owner, alice) = setup().await;
    let key = ProviderKey::rs256("k1");
    let server = JwksServer::start(json!({"keys": [key.jwk()]})).await;
    trust(
        &app,
        &owner,
        json!({"issuer": ISSUER, "jwks_uri": server.url, "audience": AUDIENCE,
               "algorithms": ["RS256"]}),
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

    server.down.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        me(
            &app,
            "default",
            &basic(&alice, &key.token(&app, "idp|alice", json!({}))),
        )
        .await
        .expect(StatusCode::OK);
    }

    // A second provider that is down from the start: nothing cached, a clean 401.
    let other = ProviderKey::rs256("k2");
    let dead = JwksServer::start(json!({"keys": [other.jwk()]})).await;
    dead.down.store(true, Ordering::SeqCst);
    trust(
        &app,
        &owner,
        json!({"issuer": "https://other-idp.example.test", "jwks_uri": dead.url,
               "audience": AUDIENCE, "algorithms": ["RS256"]}),
    )
    .await
    .expect(StatusCode::CREATED);
    let token = other.token(
        &app,
        "idp|alice",
        json!({"iss": "https://other-idp.example.test"}),
    );
    for _ in 0..3 {
        let r = me(&app, "default", &basic(&alice, &token)).await;
        r.expect_error(StatusCode::UNAUTHORIZED, "invalid_token");
        assert!(
            r.message().contains("could not be fetched"),
            "{}",
            r.message()
        );
        let challenge = r.header("www-authenticate").unwrap();
        assert_eq!(challenge, "Basic realm=\"keygate\"");
    }
    assert_eq!(
        dead.hits(),
        1,
        "a provider that is down is asked once per cooldown"
    );
    // Once the cooldown has passed on keygate's clock, it is asked again (still down).
    app.clock.advance(COOLDOWN + Duration::from_secs(1));
    let token = other.token(
        &app,
        "idp|alice",
        json!({"iss": "https://other-idp.example.test"}),
    );
    me(&app, "default", &basic(&alice, &token))
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "invalid_token");
    assert_eq!(dead.hits(), 2, "asked again after the cooldown");
}

#[tokio::test]
async fn inline_jwks_work_without_any_fetch_and_cross_org_grants_apply() {
    let (app, owner, alice) = setup().await;
    let key = ProviderKey::es256("inline-1");
    trust(
        &app,
        &owner,
        json!({"issuer": ISSUER, "jwks": {"keys": [key.jwk()]}, "audience": AUDIENCE,
               "algorithms": ["ES256"]}),
    )
    .await
    .expect(StatusCode::CREATED);
    let token = key.token(&app, "idp|alice", json!({}));
    me(&app, "default", &basic(&alice, &token))
        .await
        .expect(StatusCode::OK);

    // At another organization, the provider token works through a grant like a keygate one.
    let acme = app.session(&app.create_org("acme").await).await;
    me(&app, "acme", &basic(&alice, &token))
        .await
        .expect_error(StatusCode::FORBIDDEN, "permission_denied");
    app.post_as(
        &acme.token,
        "/v1/acme/cross_org_grants",
        &json!({"source_org": "default", "user_id": alice, "role": "member"}),
    )
    .await
    .expect(StatusCode::CREATED);
    let r = me(&app, "acme", &basic(&alice, &token)).await;
    r.expect(StatusCode::OK);
    assert_eq!(r.body["auth_method"], "basic_cross_org");
    assert_eq!(r.body["home_org"], "default");
}

#[tokio::test]
async fn registering_providers_is_validated_and_owner_only() {
    let (app, owner, _alice) = setup().await;
    let key = ProviderKey::es256("k");
    let admin = app
        .session(&app.create_user("default", Role::Admin).await)
        .await;
    let good = json!({"issuer": ISSUER, "jwks": {"keys": [key.jwk()]}, "audience": AUDIENCE,
                      "algorithms": ["ES256"]});
    trust(&app, &admin, good.clone())
        .await
        .expect_error(StatusCode::FORBIDDEN, "permission_denied");
    let created = trust(&app, &owner, good.clone()).await;
    created.expect(StatusCode::CREATED);
    trust(&app, &owner, good.clone())
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    // Admins may look.
    app.get_as(&admin.token, "/v1/default/trusted_issuers")
        .await
        .expect(StatusCode::OK);

    let mut private = key.jwk();
    private["d"] = json!("jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI");
    for (name, body) in [
        (
            "plain http elsewhere",
            json!({"issuer": "https://a.example", "jwks_uri": "http://idp.example/jwks", "audience": "x", "algorithms": ["RS256"]}),
        ),
        (
            "both sources",
            json!({"issuer": "https://b.example", "jwks_uri": "https://idp.example/jwks", "jwks": {"keys": [key.jwk()]}, "audience": "x", "algorithms": ["RS256"]}),
        ),
        (
            "no source",
            json!({"issuer": "https://c.example", "audience": "x", "algorithms": ["RS256"]}),
        ),
        (
            "a private key",
            json!({"issuer": "https://d.example", "jwks": {"keys": [private]}, "audience": "x", "algorithms": ["ES256"]}),
        ),
        (
            "HS256",
            json!({"issuer": "https://e.example", "jwks_uri": "https://idp.example/jwks", "audience": "x", "algorithms": ["HS256"]}),
        ),
        (
            "no algorithms",
            json!({"issuer": "https://f.example", "jwks_uri": "https://idp.example/jwks", "audience": "x", "algorithms": []}),
        ),
        (
            "empty issuer",
            json!({"issuer": "", "jwks_uri": "https://idp.example/jwks", "audience": "x", "algorithms": ["RS256"]}),
        ),
    ] {
        let r = trust(&app, &owner, body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{name}: {}", r.body);
        r.expect_error(StatusCode::BAD_REQUEST, "invalid_request");
    }

    // Removing the provider stops its tokens at the next request.
    let alice_token = key.token(&app, "idp|alice", json!({}));
    let alice = _alice;
    me(&app, "default", &basic(&alice, &alice_token))
        .await
        .expect(StatusCode::OK);
    app.delete_as(
        &owner.token,
        &format!("/v1/default/trusted_issuers/{}", created.str("id")),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    me(&app, "default", &basic(&alice, &alice_token))
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "invalid_token");
}

#[tokio::test]
async fn only_admins_link_external_subjects_and_subjects_are_unique() {
    let (app, owner, alice) = setup().await;
    let member = app.create_user("default", Role::Member).await;
    let member_session = app.session(&member).await;
    // A member may rename itself but not link itself to a provider subject.
    app.patch_as(
        &member_session.token,
        &format!("/v1/default/users/{}", member.user_id),
        &json!({"external_subject": "idp|mallory"}),
    )
    .await
    .expect_error(StatusCode::FORBIDDEN, "permission_denied");
    // Two users cannot share a subject.
    app.patch_as(
        &owner.token,
        &format!("/v1/default/users/{}", member.user_id),
        &json!({"external_subject": "idp|alice"}),
    )
    .await
    .expect_error(StatusCode::CONFLICT, "conflict");
    // null removes the link.
    let r = app
        .patch_as(
            &owner.token,
            &format!("/v1/default/users/{alice}"),
            &json!({"external_subject": null}),
        )
        .await;
    r.expect(StatusCode::OK);
    assert_eq!(r.body["external_subject"], Value::Null);
}
