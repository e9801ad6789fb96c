//! The cost of authenticating a direct API-key request (README, "Coming from another agent
//! platform") on the node, next to a verified access token (`benches/auth.rs`): parsing the
//! secret (shape and checksum), one HMAC-SHA256 under the pepper, and the directory cache's
//! look-up by digest (`auth::cache::Directory::key_by_digest`, a hit: no query), then the
//! constant-time comparison. The key is real: created in a temporary SQLite database through
//! the operations the CLI uses, and the first look-up (a miss) is asserted to find it.
//!
//! `cargo bench --bench direct_key`

// A benchmark that cannot set up its inputs should stop loudly.
#![allow(clippy::expect_used)]

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use keygate::auth::cache::Directory;
use keygate::clock::{Clock, SystemClock};
use keygate::config::Settings;
use keygate::keys::api_key::PlainApiKey;
use keygate::secrets::Pepper;
use keygate::types::{Environment, Role, Slug};

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = Settings {
        data_dir: dir.path().to_path_buf(),
        ..Settings::default()
    };
    settings.database.url = Some(format!(
        "sqlite://{}/bench.db?mode=rwc",
        dir.path().display()
    ));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let pepper = Pepper::new(&[9u8; 32]);
    let (storage, secret) = runtime.block_on(async {
        let storage = keygate::startup::open_storage(&settings)
            .await
            .expect("storage");
        let org = keygate::admin::create_org(
            &storage,
            clock.as_ref(),
            &Slug::parse("bench").expect("slug"),
            None,
        )
        .await
        .expect("org");
        let user = keygate::admin::create_user(
            &storage,
            clock.as_ref(),
            &org,
            "bench@bench.test",
            None,
            Role::Service,
        )
        .await
        .expect("user");
        let created = keygate::admin::create_key(
            &storage,
            &pepper,
            clock.as_ref(),
            &settings.api_keys,
            &org,
            keygate::admin::NewKey {
                user_id: user.id,
                name: "bench".into(),
                duration: None,
                environment: Environment::Live,
                scopes: None,
                resource_scopes: None,
                public_jwks: None,
            },
        )
        .await
        .expect("key");
        (
            storage,
            created.secret.expect("a secret").expose().to_owned(),
        )
    });
    let directory = Directory::new(100_000, clock.clone());
    let authenticate = |secret: &str| {
        let parsed = PlainApiKey::parse(secret).ok()?;
        let digest = parsed.digest(&pepper);
        let key = runtime
            .block_on(directory.key_by_digest(&storage, &digest.0))
            .ok()??;
        digest.matches(&key.digest).then_some(key)
    };
    assert!(
        authenticate(&secret).is_some(),
        "the first look-up finds the key"
    );

    let mut group = c.benchmark_group("direct_api_key");
    group.bench_function("parse_and_hmac", |b| {
        b.iter(|| PlainApiKey::parse(&secret).expect("parses").digest(&pepper))
    });
    group.bench_function("parse_hmac_and_cache_hit", |b| {
        b.iter(|| authenticate(&secret).expect("found"))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
