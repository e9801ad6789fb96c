//! Property tests of what an unauthenticated caller sends a key-pair client's way: client
//! assertions at the token endpoint (a valid one with members replaced or removed, the
//! signature made one way or another, or no structure at all) and, for an admin, any JSON as
//! `public_jwks`. Over real HTTP: the answer is a success or a documented 4xx, never a 5xx.
//! Run with `PROPTEST_CASES` like the other `fuzz::` properties.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use reqwest::StatusCode;
use serde_json::Value;

use super::{ASSERTION_TYPE, Signer, claims, client, owner_token};
use crate::fuzz::{any_json, runner, runtime};
use crate::helpers::spawn_app;

#[derive(Clone, Debug)]
enum Input {
    Mutated {
        changes: Vec<(bool, &'static str, Option<Value>)>,
        random_signature: Option<Vec<u8>>,
    },
    Raw(String),
}

fn input() -> impl Strategy<Value = Input> {
    let member = prop_oneof![
        prop::sample::select(vec!["alg", "kid", "crit", "typ", "jwk"]).prop_map(|m| (true, m)),
        prop::sample::select(vec!["iss", "sub", "aud", "exp", "nbf", "iat", "jti"])
            .prop_map(|m| (false, m)),
    ];
    prop_oneof![
        4 => (
            vec((member, proptest::option::of(any_json())), 0..4),
            proptest::option::of(vec(any::<u8>(), 0..140)),
        )
            .prop_map(|(changes, random_signature)| Input::Mutated {
                changes: changes.into_iter().map(|((h, m), v)| (h, m, v)).collect(),
                random_signature,
            }),
        1 => "[ -~]{0,300}".prop_map(Input::Raw),
        1 => "[A-Za-z0-9_-]{0,80}\\.[A-Za-z0-9_-]{0,80}\\.[A-Za-z0-9_-]{0,120}".prop_map(Input::Raw),
    ]
}

/// A success, or one of the documented OAuth errors with its status. Never a 5xx.
fn documented(status: StatusCode, body: &Value) -> Result<(), TestCaseError> {
    prop_assert!(!status.is_server_error(), "{status}: {body}");
    if status == StatusCode::OK {
        return Ok(());
    }
    let expected = match body["error"].as_str().unwrap_or_default() {
        "invalid_client" => StatusCode::UNAUTHORIZED,
        "invalid_request" => StatusCode::BAD_REQUEST,
        "rate_limited" => StatusCode::TOO_MANY_REQUESTS,
        other => return Err(TestCaseError::fail(format!("undocumented {other}: {body}"))),
    };
    prop_assert_eq!(status, expected, "{}", body);
    prop_assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty())
    );
    Ok(())
}

#[test]
fn client_assertions_get_a_documented_answer() {
    let rt = runtime();
    let app = rt.block_on(spawn_app());
    let me = rt.block_on(client(&app, Signer::es256().with_kid("k1")));
    runner()
        .run(&input(), |input| {
            let assertion = match input {
                Input::Raw(raw) => raw,
                Input::Mutated {
                    changes,
                    random_signature,
                } => {
                    let (mut header, mut c) = (me.signer.header(), claims(&app, &me.id));
                    for (in_header, name, value) in changes {
                        let object = if in_header { &mut header } else { &mut c };
                        if let Value::Object(map) = object {
                            match value {
                                Some(value) => map.insert(name.to_owned(), value),
                                None => map.remove(name),
                            };
                        }
                    }
                    let signed = me.signer.sign(&header, &c);
                    match (random_signature, signed.rsplit_once('.')) {
                        (Some(bytes), Some((input, _))) => {
                            format!("{input}.{}", B64.encode(bytes))
                        }
                        _ => signed,
                    }
                }
            };
            let (status, body) = rt.block_on(async {
                let res = app
                    .client
                    .post(app.url("/v1/default/oauth/token"))
                    .form(&[
                        ("grant_type", "client_credentials"),
                        ("client_assertion_type", ASSERTION_TYPE),
                        ("client_assertion", &assertion),
                    ])
                    .send()
                    .await
                    .map_err(|e| TestCaseError::fail(format!("no answer: {e}")))?;
                let status = res.status();
                let body: Value = res.json().await.unwrap_or(Value::Null);
                Ok::<_, TestCaseError>((status, body))
            })?;
            documented(status, &body)
        })
        .unwrap();
    // Still serving a valid assertion.
    let (status, _) = rt.block_on(super::token(&app, &me.assertion(&app)));
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn any_public_jwks_is_created_or_refused_with_400() {
    let rt = runtime();
    let app = rt.block_on(spawn_app());
    let token = rt.block_on(owner_token(&app));
    let keys = prop_oneof![
        any_json(),
        vec(any_json(), 0..3).prop_map(|keys| serde_json::json!({ "keys": keys })),
        (
            any_json(),
            prop::sample::select(vec!["kty", "crv", "x", "y", "n", "e", "kid", "alg"])
        )
            .prop_map(|(v, member)| {
                let mut jwk = Signer::es256().jwk();
                jwk[member] = v;
                serde_json::json!({ "keys": [jwk] })
            }),
    ];
    runner()
        .run(&keys, |jwks| {
            let reply = rt.block_on(super::register(&app, &token, jwks));
            prop_assert!(
                reply.status == StatusCode::CREATED || reply.status == StatusCode::BAD_REQUEST,
                "{}: {}",
                reply.status,
                reply.body
            );
            Ok(())
        })
        .unwrap();
}
