//! DPoP proof validation cost (issue 3): a valid proof with `ath` (replay insert included)
//! against one bare aws-lc-rs verification of the same curve, measured in the same run;
//! and proofs rejected at each cheap check.
//!
//! `cargo bench --bench dpop`

// A benchmark that cannot set up its inputs should stop loudly.
#![allow(clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use keygate::auth::dpop::{
    Dpop, DpopError, MemoryReplayStore, Nonces, ProofCheck, PublicUrl, ReplayStore, ath, replay_key,
};
use keygate::config::DpopSettings;
use keygate::secrets::Pepper;
use rand_core::OsRng;
use serde_json::{Value, json};

const PUBLIC_URL: &str = "https://auth.example.com";
const PATH: &str = "/v1/acme/user/me";
const TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1c3IifQ.c2lnbmF0dXJl";

/// A client key of one curve, signed with the RustCrypto crates (independent of the
/// verifier under test).
enum Key {
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    P521(p521::ecdsa::SigningKey),
}

impl Key {
    fn alg(&self) -> &'static str {
        match self {
            Key::P256(_) => "ES256",
            Key::P384(_) => "ES384",
            Key::P521(_) => "ES512",
        }
    }

    /// The SEC1 uncompressed point (0x04 ‖ x ‖ y).
    fn point(&self) -> Vec<u8> {
        match self {
            Key::P256(k) => k
                .verifying_key()
                .to_encoded_point(false)
                .as_bytes()
                .to_vec(),
            Key::P384(k) => k
                .verifying_key()
                .to_encoded_point(false)
                .as_bytes()
                .to_vec(),
            Key::P521(k) => p521::ecdsa::VerifyingKey::from(k)
                .to_encoded_point(false)
                .as_bytes()
                .to_vec(),
        }
    }

    fn jwk(&self) -> Value {
        let point = self.point();
        let (x, y) = point[1..].split_at((point.len() - 1) / 2);
        let crv = match self {
            Key::P256(_) => "P-256",
            Key::P384(_) => "P-384",
            Key::P521(_) => "P-521",
        };
        json!({"kty": "EC", "crv": crv, "x": B64.encode(x), "y": B64.encode(y)})
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        use signature::Signer;
        match self {
            Key::P256(k) => Signer::<p256::ecdsa::Signature>::sign(k, message)
                .to_bytes()
                .to_vec(),
            Key::P384(k) => Signer::<p384::ecdsa::Signature>::sign(k, message)
                .to_bytes()
                .to_vec(),
            Key::P521(k) => Signer::<p521::ecdsa::Signature>::sign(k, message)
                .to_bytes()
                .to_vec(),
        }
    }

    fn proof(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let signature = self.sign(input.as_bytes());
        format!("{input}.{}", B64.encode(signature))
    }

    fn valid_proof(&self, jti: u64, iat: i64) -> String {
        let header = json!({"typ": "dpop+jwt", "alg": self.alg(), "jwk": self.jwk()});
        let claims = json!({
            "jti": format!("jti-{jti}"), "htm": "GET", "htu": format!("{PUBLIC_URL}{PATH}"),
            "iat": iat, "ath": ath(TOKEN),
        });
        self.proof(&header, &claims)
    }
}

fn verifier() -> Dpop {
    let settings = DpopSettings::default();
    Dpop::new(
        &settings,
        PublicUrl::parse(PUBLIC_URL).expect("public url"),
        Arc::new(MemoryReplayStore::new(
            10_000_000,
            Arc::new(keygate::clock::SystemClock),
        )),
        Nonces::new(Arc::new(Pepper::new(&[7u8; 32])), settings.nonce_window),
    )
}

fn check<'a>(headers: &'a [&'a [u8]], now: DateTime<Utc>, jkt: Option<&'a str>) -> ProofCheck<'a> {
    ProofCheck {
        headers,
        method: "GET",
        path: PATH,
        access_token: Some(TOKEN),
        bound_jkt: jkt,
        require_nonce: false,
        now,
    }
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    #[allow(clippy::disallowed_methods)]
    let now = Utc::now();
    let keys = [
        Key::P256(p256::ecdsa::SigningKey::random(&mut OsRng)),
        Key::P384(p384::ecdsa::SigningKey::random(&mut OsRng)),
        Key::P521(p521::ecdsa::SigningKey::random(&mut OsRng)),
    ];
    let mut group = c.benchmark_group("dpop");
    group.measurement_time(Duration::from_secs(4));

    for key in &keys {
        let alg = key.alg();
        let verification: &'static aws_lc_rs::signature::EcdsaVerificationAlgorithm = match alg {
            "ES256" => &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
            "ES384" => &aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED,
            _ => &aws_lc_rs::signature::ECDSA_P521_SHA512_FIXED,
        };
        // Both measurements get the same per-iteration setup (a fresh proof signed with the
        // RustCrypto crates), so they run under the same cache conditions.
        let point = key.point();
        let mut counter = 0u64;
        group.bench_function(format!("{alg}/bare_aws_lc_verify"), |b| {
            b.iter_batched(
                || {
                    counter += 1;
                    let proof = key.valid_proof(counter, now.timestamp());
                    let (input, signature) = proof.rsplit_once('.').expect("three parts");
                    (input.to_owned(), B64.decode(signature).expect("base64url"))
                },
                |(input, signature)| {
                    aws_lc_rs::signature::UnparsedPublicKey::new(verification, &point)
                        .verify(input.as_bytes(), &signature)
                        .expect("verifies")
                },
                BatchSize::SmallInput,
            )
        });

        let dpop = verifier();
        let mut jti = 0u64;
        group.bench_function(
            format!("{alg}/valid_proof_with_ath_and_replay_insert"),
            |b| {
                b.iter_batched(
                    || {
                        jti += 1;
                        key.valid_proof(jti, now.timestamp())
                    },
                    |proof| {
                        let headers = [proof.as_bytes()];
                        runtime
                            .block_on(dpop.verify(&check(&headers, now, None)))
                            .expect("valid")
                    },
                    BatchSize::SmallInput,
                )
            },
        );
    }

    // The parts around the signature, for reading the figures above.
    let store = MemoryReplayStore::new(10_000_000, Arc::new(keygate::clock::SystemClock));
    let mut n = 0u64;
    group.bench_function("parts/replay_insert", |b| {
        b.iter(|| {
            n += 1;
            runtime
                .block_on(
                    store.insert_if_absent(
                        replay_key("jkt", &n.to_string()),
                        Duration::from_secs(300),
                    ),
                )
                .expect("insert")
        })
    });
    group.bench_function("parts/block_on", |b| {
        b.iter(|| runtime.block_on(async { 1 }))
    });

    // Proofs refused at each cheap check: no signature verification, no cache entry.
    let key = &keys[0];
    let dpop = verifier();
    let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.jwk()});
    let claims = json!({"jti": "j", "htm": "GET", "htu": format!("{PUBLIC_URL}{PATH}"), "iat": now.timestamp(), "ath": ath(TOKEN)});
    let with = |path: &str, value: Value, in_header: bool| {
        let (mut h, mut c) = (header.clone(), claims.clone());
        let target = if in_header { &mut h } else { &mut c };
        target[path] = value;
        key.proof(&h, &c)
    };
    let mut private = key.jwk();
    private["d"] = json!("AAAA");
    // Each case names the refusal it measures: checked once before measuring, so a bench
    // never times a different (earlier or later) failure than its name says.
    let rejected = [
        ("too_large", "x".repeat(5000), DpopError::TooLarge),
        (
            "not_a_jws",
            "not-a-jws".to_owned(),
            DpopError::Malformed("it does not have three parts"),
        ),
        (
            "wrong_typ",
            with("typ", json!("jwt"), true),
            DpopError::WrongType,
        ),
        (
            "alg_none",
            with("alg", json!("none"), true),
            DpopError::UnsupportedAlg,
        ),
        (
            "jwk_with_d",
            with("jwk", private, true),
            DpopError::BadJwk("it contains a private key"),
        ),
        (
            "missing_jti",
            with("jti", Value::Null, false),
            DpopError::MissingClaim("jti"),
        ),
        (
            "wrong_htm",
            with("htm", json!("POST"), false),
            DpopError::WrongMethod,
        ),
        (
            "wrong_htu",
            with(
                "htu",
                json!("https://evil.example.com/v1/acme/user/me"),
                false,
            ),
            DpopError::WrongUri,
        ),
        (
            "iat_too_old",
            with("iat", json!(now.timestamp() - 3600), false),
            DpopError::TooOld,
        ),
        (
            "wrong_ath",
            with("ath", json!("nope"), false),
            DpopError::WrongAth,
        ),
    ];
    for (name, proof, expected) in &rejected {
        let headers = [proof.as_bytes()];
        let got = runtime
            .block_on(dpop.verify(&check(&headers, now, None)))
            .expect_err("rejected");
        assert_eq!(
            &got, expected,
            "rejected/{name} measures `{got}`, not `{expected}`"
        );
        group.bench_function(format!("rejected/{name}"), |b| {
            b.iter(|| {
                runtime
                    .block_on(dpop.verify(&check(&headers, now, None)))
                    .expect_err("rejected")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
