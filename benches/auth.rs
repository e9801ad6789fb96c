//! The cost of verifying one of keygate's access tokens (ES256): a full verification
//! (signature, claims parsing, issuer, audience, times) against a hit of the verified-claims
//! cache of the protected path (`auth::cache::VerifiedTokens`: SHA-256 of the token, lookup,
//! `kid` still known, times checked again). Each path is asserted to succeed once before it
//! is measured.
//!
//! `cargo bench --bench auth`

// A benchmark that cannot set up its inputs should stop loudly.
#![allow(clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use keygate::auth::cache::{Verified, VerifiedTokens};
use keygate::clock::{Clock, SystemClock};
use keygate::keys::signing::{KeySet, generate};
use keygate::secrets::Kek;
use keygate::tokens::{
    AccessClaims, Confirmation, Expectation, check_times, issue, verify_with_kid,
};
use keygate::types::SigningAlg;

const ISSUER: &str = "https://auth.example.com/v1/acme";

fn bench(c: &mut Criterion) {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let now = clock.now();
    let kek = Kek::new(&[7u8; 32]).expect("kek");
    let record = generate(SigningAlg::ES256, &kek, now).expect("key");
    let keys = KeySet::build(&[record], &kek, now).expect("key set");
    let claims = AccessClaims {
        iss: ISSUER.into(),
        sub: "usr_1".into(),
        aud: ISSUER.into(),
        exp: now.timestamp() + 900,
        iat: now.timestamp(),
        jti: "jti_1".into(),
        client_id: "key_1".into(),
        scope: "keys:read users:read".into(),
        sid: "ses_1".into(),
        org: "acme".into(),
        cnf: Some(Confirmation {
            jkt: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".into(),
        }),
        act: None,
        may_act: None,
    };
    let token = issue(&keys, &claims).expect("token");
    let expect = Expectation {
        issuer: ISSUER,
        audience: ISSUER,
        now,
        leeway: Duration::from_secs(30),
    };

    let (kid, verified) = verify_with_kid(&keys, &token, &expect).expect("verifies");
    assert_eq!(verified, claims);
    let cache = VerifiedTokens::new(100_000, clock.clone());
    cache.insert(
        VerifiedTokens::digest(&token),
        Verified {
            kid,
            claims: verified,
        },
    );
    let hit = |token: &str| {
        let hit = cache.get(&VerifiedTokens::digest(token))?;
        keys.verifier(&hit.kid)?;
        check_times(&hit.claims, &expect).ok()?;
        Some(hit.claims.clone())
    };
    assert_eq!(hit(&token).as_ref(), Some(&claims));

    let mut group = c.benchmark_group("access_token");
    group.bench_function("full_verification_es256", |b| {
        b.iter(|| verify_with_kid(&keys, &token, &expect).expect("verifies"))
    });
    group.bench_function("verified_claims_cache_hit", |b| {
        b.iter(|| hit(&token).expect("hit"))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
