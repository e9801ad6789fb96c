//! Property tests of the three parsers an unauthenticated caller reaches first: the DPoP
//! proof (`DPoP` header), the `Authorization` header (Basic, Bearer, DPoP, cross-org
//! `X-ORG-ID`) and the API key headers of sign-in. Each case goes over real HTTP to a real
//! server, so the whole path is covered, not just the parsing function: whatever the input,
//! the answer is a documented 4xx (or a success, when a mutation left the input valid),
//! never a 5xx, never a dropped connection, and the server keeps serving.
//!
//! `PROPTEST_CASES` sets the number of cases per property (proptest's default, 256, in a
//! plain `cargo test`); `.ci/run` runs a longer, time-bounded pass.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::StatusCode;
use reqwest::header::HeaderValue;
use serde_json::{Value, json};

use crate::dpop_key::DpopKey;
use crate::helpers::{TestApp, spawn_app};

/// Every error code a client may meet at sign-in and at a protected endpoint.
const DOCUMENTED_CODES: &[&str] = &[
    "missing_api_key",
    "missing_user_id",
    "invalid_api_key",
    "expired_api_key",
    "revoked_api_key",
    "permission_denied",
    "unknown_organization",
    "invalid_token",
    "expired_token",
    "invalid_dpop_proof",
    "use_dpop_nonce",
    "insufficient_scope",
    "invalid_request",
    "not_found",
    "rate_limited",
];

const SIGNIN: &str = "/v1/default/user/signin_with_api_key";
const ME: &str = "/v1/default/user/me";

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

pub fn runner() -> TestRunner {
    // Config::default() reads PROPTEST_CASES; no persistence file in the source tree.
    TestRunner::new(Config {
        failure_persistence: None,
        ..Config::default()
    })
}

/// Sends `request` and checks the answer: a success, or a documented 4xx with the error
/// body (431 may come from the HTTP layer without one). Never a 5xx.
async fn check(request: reqwest::RequestBuilder) -> Result<(), TestCaseError> {
    let response = request
        .send()
        .await
        .map_err(|e| TestCaseError::fail(format!("no answer: {e}")))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    prop_assert!(!status.is_server_error(), "{status}: {text}");
    if status.is_success() || status == StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE {
        return Ok(());
    }
    prop_assert!(status.is_client_error(), "{status}: {text}");
    let body: Value = serde_json::from_str(&text)
        .map_err(|_| TestCaseError::fail(format!("{status}: not JSON: {text:?}")))?;
    let code = body["error"]["code"].as_str().unwrap_or_default();
    prop_assert!(DOCUMENTED_CODES.contains(&code), "{status}: {body}");
    Ok(())
}

/// After a property ran, the server still answers a valid request.
async fn still_serving(app: &TestApp) {
    let res = app
        .signin_raw(
            &app.owner.org,
            Some(&app.owner.api_key),
            Some(&app.owner.api_key_id),
            Some(&app.owner.user_id),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}

/// Any JSON value, a few levels deep.
pub fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        "[ -~]{0,40}".prop_map(Value::String),
        "[A-Za-z0-9_-]{0,100}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map("[a-z]{1,5}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Where a mutation lands: a member of the proof's header, of its `jwk`, or of its claims.
#[derive(Clone, Debug)]
enum Place {
    Header(&'static str),
    Jwk(&'static str),
    Claim(&'static str),
}

fn place() -> impl Strategy<Value = Place> {
    prop_oneof![
        prop::sample::select(vec!["typ", "alg", "jwk", "kid", "crit", "x5c"])
            .prop_map(Place::Header),
        prop::sample::select(vec!["kty", "crv", "x", "y", "d"]).prop_map(Place::Jwk),
        prop::sample::select(vec!["jti", "htm", "htu", "iat", "ath", "nonce", "exp"])
            .prop_map(Place::Claim),
    ]
}

/// How the signature part is made.
#[derive(Clone, Debug)]
enum Signature {
    Valid,
    Random(Vec<u8>),
    Truncated(usize),
    Text(String),
}

fn signature() -> impl Strategy<Value = Signature> {
    prop_oneof![
        3 => Just(Signature::Valid),
        1 => vec(any::<u8>(), 0..140).prop_map(Signature::Random),
        1 => (0usize..140).prop_map(Signature::Truncated),
        1 => "[ -~]{0,60}".prop_map(Signature::Text),
    ]
}

/// A proof built from a valid one: some members removed or replaced, the signature made
/// one way or another; or no structure at all.
#[derive(Clone, Debug)]
enum ProofInput {
    Mutated {
        changes: Vec<(Place, Option<Value>)>,
        signature: Signature,
    },
    Raw(String),
}

fn proof_input() -> impl Strategy<Value = ProofInput> {
    prop_oneof![
        4 => (vec((place(), proptest::option::of(any_json())), 0..4), signature())
            .prop_map(|(changes, signature)| ProofInput::Mutated { changes, signature }),
        1 => "[ -~]{0,300}".prop_map(ProofInput::Raw),
        1 => "[A-Za-z0-9_-]{0,80}\\.[A-Za-z0-9_=+/-]{0,80}\\.[A-Za-z0-9_-]{0,120}(\\.[A-Za-z0-9_-]{0,10})?"
            .prop_map(ProofInput::Raw),
    ]
}

fn build_proof(key: &DpopKey, base: (Value, Value), input: &ProofInput) -> String {
    let (mut header, mut claims) = base;
    let (changes, signature) = match input {
        ProofInput::Raw(raw) => return raw.clone(),
        ProofInput::Mutated { changes, signature } => (changes, signature),
    };
    for (place, value) in changes {
        let (object, name) = match place {
            Place::Header(name) => (&mut header, *name),
            Place::Claim(name) => (&mut claims, *name),
            Place::Jwk(name) => match header.get_mut("jwk") {
                Some(jwk @ Value::Object(_)) => (jwk, *name),
                _ => continue,
            },
        };
        if let Value::Object(map) = object {
            match value {
                Some(value) => map.insert(name.to_owned(), value.clone()),
                None => map.remove(name),
            };
        }
    }
    let valid = key.sign_parts(&header, &claims);
    let Some((input, sig)) = valid.rsplit_once('.') else {
        return valid;
    };
    match signature {
        Signature::Valid => valid.clone(),
        Signature::Random(bytes) => format!("{input}.{}", B64.encode(bytes)),
        Signature::Truncated(n) => format!("{input}.{}", &sig[..(*n).min(sig.len())]),
        Signature::Text(text) => format!("{input}.{text}"),
    }
}

#[test]
fn dpop_proofs_at_signin_get_a_documented_answer() {
    let rt = runtime();
    let app = rt.block_on(spawn_app());
    let key = DpopKey::es256();
    let url = app.url(SIGNIN);
    runner()
        .run(&proof_input(), |input| {
            let base = key.parts("POST", &url, app.now().timestamp());
            let proof = build_proof(&key, base, &input);
            let Ok(value) = HeaderValue::from_str(&proof) else {
                return Ok(());
            };
            let o = &app.owner;
            rt.block_on(check(
                app.client
                    .post(&url)
                    .header("x-api-key", &o.api_key)
                    .header("x-api-key-id", &o.api_key_id)
                    .header("x-user-id", &o.user_id)
                    .header("dpop", value),
            ))
        })
        .unwrap();
    rt.block_on(still_serving(&app));
}

#[test]
fn dpop_proofs_at_a_protected_endpoint_get_a_documented_answer() {
    let rt = runtime();
    let app = rt.block_on(spawn_app());
    let key = DpopKey::es256();
    let token = rt.block_on(async {
        let o = &app.owner;
        let res = app
            .client
            .post(app.url(SIGNIN))
            .header("x-api-key", &o.api_key)
            .header("x-api-key-id", &o.api_key_id)
            .header("x-user-id", &o.user_id)
            .header("dpop", key.proof(&app, "POST", SIGNIN, None))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["token_type"], "DPoP");
        body["id_token"].as_str().unwrap().to_owned()
    });
    let url = app.url(ME);
    runner()
        .run(&proof_input(), |input| {
            let (header, mut claims) = key.parts("GET", &url, app.now().timestamp());
            claims["ath"] = json!(keygate::auth::dpop::ath(&token));
            let proof = build_proof(&key, (header, claims), &input);
            let Ok(value) = HeaderValue::from_str(&proof) else {
                return Ok(());
            };
            rt.block_on(check(
                app.client
                    .get(&url)
                    .header("authorization", format!("DPoP {token}"))
                    .header("dpop", value),
            ))
        })
        .unwrap();
    rt.block_on(still_serving(&app));
}

/// An `Authorization` header: a scheme (or none) and a credential that is a Basic
/// `{org}_{user}:{token}` pair, a token-like string, or anything printable.
fn authorization(
    valid_token: String,
    user_id: String,
) -> impl Strategy<Value = (String, Option<String>)> {
    let scheme = prop::sample::select(vec![
        "Basic", "basic", "Bearer", "bearer", "DPoP", "Digest", "",
    ]);
    let username = prop_oneof![
        Just(format!("default_{user_id}")),
        "[a-z0-9-]{0,12}_[ -~]{0,30}",
        "[ -~]{0,40}",
    ];
    let password = prop_oneof![
        Just(valid_token.clone()),
        "[ -~]{0,120}",
        "[A-Za-z0-9._-]{0,200}"
    ];
    let basic = (username, password, any::<bool>()).prop_map(|(user, password, colon)| {
        let decoded = if colon {
            format!("{user}:{password}")
        } else {
            format!("{user}{password}")
        };
        STANDARD.encode(decoded)
    });
    let credential = prop_oneof![
        basic,
        Just(valid_token),
        "[ -~]{0,200}",
        "[A-Za-z0-9+/=]{0,120}",
    ];
    let org = proptest::option::of(prop_oneof![Just("default".to_owned()), "[ -~]{0,20}"]);
    (scheme, credential, org).prop_map(|(scheme, credential, org)| {
        let value = if scheme.is_empty() {
            credential
        } else {
            format!("{scheme} {credential}")
        };
        (value, org)
    })
}

#[test]
fn authorization_headers_get_a_documented_answer() {
    let rt = runtime();
    let app = rt.block_on(spawn_app());
    let token = rt.block_on(app.signin(&app.owner))["id_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = app.url(ME);
    runner()
        .run(
            &authorization(token, app.owner.user_id.clone()),
            |(authorization, org)| {
                let Ok(value) = HeaderValue::from_str(&authorization) else {
                    return Ok(());
                };
                let mut request = app.client.get(&url).header("authorization", value);
                if let Some(org) = org {
                    let Ok(org) = HeaderValue::from_str(&org) else {
                        return Ok(());
                    };
                    request = request.header("x-org-id", org);
                }
                rt.block_on(check(request))
            },
        )
        .unwrap();
    rt.block_on(still_serving(&app));
}

#[test]
fn api_key_headers_at_signin_get_a_documented_answer() {
    let rt = runtime();
    let app = rt.block_on(spawn_app());
    let o = app.owner.clone();
    let secret = prop_oneof![
        Just(o.api_key.clone()),
        "ak_(live|test)_[0-9A-Za-z]{0,45}",
        "[ -~]{0,120}",
        (0..o.api_key.len(), "[ -~]").prop_map({
            let key = o.api_key.clone();
            move |(at, c)| {
                let mut k = key.clone().into_bytes();
                k[at] = c.as_bytes()[0];
                String::from_utf8_lossy(&k).into_owned()
            }
        }),
    ];
    let key_id = prop_oneof![
        Just(o.api_key_id.clone()),
        "key_[0-9A-Za-z]{0,30}",
        "[ -~]{0,40}"
    ];
    let user_id = prop_oneof![
        Just(o.user_id.clone()),
        "usr_[0-9A-Za-z]{0,30}",
        "[ -~]{0,40}"
    ];
    let org = prop_oneof![3 => Just("default".to_owned()), 1 => "[a-z0-9_.~-]{0,70}"];
    let headers = (
        proptest::option::of(secret),
        proptest::option::of(key_id),
        proptest::option::of(user_id),
        org,
    );
    runner()
        .run(&headers, |(secret, key_id, user_id, org)| {
            let mut request = app
                .client
                .post(app.url(&format!("/v1/{org}/user/signin_with_api_key")));
            for (name, value) in [
                ("x-api-key", secret),
                ("x-api-key-id", key_id),
                ("x-user-id", user_id),
            ] {
                if let Some(value) = value {
                    let Ok(value) = HeaderValue::from_str(&value) else {
                        return Ok(());
                    };
                    request = request.header(name, value);
                }
            }
            rt.block_on(check(request))
        })
        .unwrap();
    rt.block_on(still_serving(&app));
}

/// The API key parser alone: it never panics, it accepts every key keygate generates, and
/// the checksum catches every single-character change (CRC32 detects any burst error of up
/// to 32 bits, and one character is at most 8).
#[test]
fn api_key_parser_accepts_its_keys_and_catches_every_typo() {
    use keygate::keys::api_key::PlainApiKey;
    use keygate::types::Environment;

    let alphabet: Vec<char> = ('0'..='9').chain('A'..='Z').chain('a'..='z').collect();
    let strategy = (
        any::<bool>(),
        any::<prop::sample::Index>(),
        prop::sample::select(alphabet),
        "\\PC{0,80}",
    );
    runner()
        .run(&strategy, |(test, at, replacement, noise)| {
            let _ = PlainApiKey::parse(&noise);
            let env = if test {
                Environment::Test
            } else {
                Environment::Live
            };
            let key = PlainApiKey::generate(env);
            let text = key.expose().to_owned();
            prop_assert!(PlainApiKey::parse(&text).is_ok());
            // A change after the prefix, where the characters are base62.
            let at = 8 + at.index(text.len() - 8);
            let mut typo: Vec<char> = text.chars().collect();
            prop_assume!(typo[at] != replacement);
            typo[at] = replacement;
            let typo: String = typo.into_iter().collect();
            prop_assert!(PlainApiKey::parse(&typo).is_err(), "{typo} was accepted");
            Ok(())
        })
        .unwrap();
}
