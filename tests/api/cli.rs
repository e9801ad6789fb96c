//! The `keygate` CLI against a running server's database: what it creates works over HTTP.

use std::process::{Command, Output};

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{TestApp, error_code, json, spawn_app};

/// Runs the real binary on `app`'s data directory and database.
pub(crate) fn keygate(app: &TestApp, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keygate"))
        .args(args)
        .current_dir(app.data_dir.path())
        .env("KEYGATE__DATA_DIR", app.data_dir.path())
        .env("KEYGATE__DATABASE__URL", &app.db.url)
        .env("KEYGATE__LOG__LEVEL", "warn")
        .env_remove("KEYGATE_CONFIG")
        .output()
        .expect("run keygate")
}

pub(crate) fn keygate_json(app: &TestApp, args: &[&str]) -> Value {
    let out = keygate(app, args);
    assert!(
        out.status.success(),
        "keygate {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "keygate {args:?} printed no JSON: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[tokio::test]
async fn cli_creates_orgs_users_and_keys_that_sign_in_and_revokes_them() {
    let app = spawn_app().await;
    let org = keygate_json(
        &app,
        &["org", "create", "acme", "--name", "Acme Inc", "--json"],
    );
    assert_eq!(org["slug"], "acme");
    assert_eq!(org["name"], "Acme Inc");
    assert!(org["org_id"].as_str().unwrap().starts_with("org_"));

    let user = keygate_json(
        &app,
        &[
            "user",
            "create",
            "--org",
            "acme",
            "--email",
            "Bot@Acme.test",
            "--role",
            "service",
            "--json",
        ],
    );
    assert_eq!(user["org"], "acme");
    assert_eq!(user["email"], "bot@acme.test");
    assert_eq!(user["role"], "service");
    let user_id = user["user_id"].as_str().unwrap().to_owned();

    let key = keygate_json(
        &app,
        &[
            "key",
            "create",
            "--org",
            "acme",
            "--user",
            &user_id,
            "--duration",
            "1d",
            "--scope",
            "keys:read",
            "--json",
        ],
    );
    assert_eq!(key["user_id"], user_id.as_str());
    assert_eq!(key["org"], "acme");
    let secret = key["api_key"].as_str().unwrap().to_owned();
    let key_id = key["api_key_id"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("ak_live_"));
    let expires =
        chrono::DateTime::parse_from_rfc3339(key["expires_at"].as_str().unwrap()).unwrap();
    let lifetime = expires.timestamp() - app.now().timestamp();
    assert!((86_390..=86_410).contains(&lifetime), "{lifetime}");

    let (status, body) = json(
        app.signin_raw("acme", Some(&secret), Some(&key_id), Some(&user_id))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "keys:read");

    let listed = keygate_json(&app, &["key", "list", "--org", "acme", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["api_key_id"], key_id.as_str());
    assert_eq!(listed[0]["status"], "active");
    assert!(
        !listed.to_string().contains(&secret),
        "a listing never shows the secret"
    );
    let users = keygate_json(&app, &["user", "list", "--org", "acme", "--json"]);
    assert_eq!(users[0]["user_id"], user_id.as_str());
    let orgs = keygate_json(&app, &["org", "list", "--json"]);
    let slugs: Vec<&str> = orgs
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["acme", "default"]);

    // Rotation with a grace period: both keys work until it ends.
    let rotated = keygate_json(
        &app,
        &[
            "key", "rotate", "--org", "acme", &key_id, "--grace", "1h", "--json",
        ],
    );
    let new_secret = rotated["api_key"].as_str().unwrap();
    let new_id = rotated["api_key_id"].as_str().unwrap();
    assert_ne!(new_id, key_id);
    let (status, _) = json(
        app.signin_raw("acme", Some(new_secret), Some(new_id), Some(&user_id))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = json(
        app.signin_raw("acme", Some(&secret), Some(&key_id), Some(&user_id))
            .await,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the old key works during the grace period"
    );

    let revoked = keygate_json(&app, &["key", "revoke", "--org", "acme", new_id, "--json"]);
    assert_eq!(revoked["api_key_id"], new_id);
    // The CLI stamps the revocation with the wall clock, which is ahead of the test's.
    app.clock.advance(std::time::Duration::from_secs(5));
    let (status, body) = json(
        app.signin_raw("acme", Some(new_secret), Some(new_id), Some(&user_id))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "revoked_api_key");
}

#[tokio::test]
async fn cli_rejects_bad_input_with_a_message_and_a_failing_exit_code() {
    let app = spawn_app().await;
    let owner = app.owner.user_id.as_str();
    // Each refusal: exit status 1, nothing on stdout, and one `keygate: …` line on stderr
    // that says what was wrong (a crash, a panic or another error would not match).
    #[rustfmt::skip]
    let cases: [(&[&str], &str); 9] = [
        (&["org", "create", "Bad_Slug"], "`Bad_Slug` is not an organization slug"),
        (&["org", "create", "default"], "an organization with this slug already exists"),
        (&["user", "create", "--org", "nope", "--email", "a@b.c"], "no organization `nope`"),
        (&["user", "create", "--org", "default", "--email", "not-an-email"], "`not-an-email` is not an email address"),
        (&["user", "create", "--org", "default", "--email", "a@b.c", "--role", "root"], "`root` is not a valid Role"),
        (&["key", "create", "--org", "default", "--user", "usr_nobody"], "no user `usr_nobody` in this organization"),
        (&["key", "create", "--org", "default", "--user", owner, "--duration", "400d"], "a key's duration must be more than 0s and at most"),
        (&["key", "create", "--org", "default", "--user", owner, "--scope", "everything"], "unknown scope `everything`"),
        (&["key", "revoke", "--org", "default", "key_nothing"], "no API key `key_nothing` in this organization"),
    ];
    for (args, message) in cases {
        let out = keygate(&app, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?} printed a result");
        let line = stderr
            .lines()
            .find(|l| l.starts_with("keygate: "))
            .unwrap_or_else(|| panic!("{args:?}: no `keygate: ` line in {stderr}"));
        assert!(line.contains(message), "{args:?}: {line}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    // A usage error is clap's: exit status 2.
    let out = keygate(&app, &["key", "create", "--org", "default"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("error:"));
    // Nothing was created by the refused commands.
    let keys = keygate_json(&app, &["key", "list", "--org", "default", "--json"]);
    assert_eq!(keys.as_array().unwrap().len(), 1, "{keys}");
    let users = keygate_json(&app, &["user", "list", "--org", "default", "--json"]);
    assert_eq!(users.as_array().unwrap().len(), 1, "{users}");
}

#[tokio::test]
async fn cli_signing_key_rotate_publishes_a_second_key() {
    let app = spawn_app().await;
    let listed = keygate_json(&app, &["signing-key", "list", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let rotated = keygate_json(&app, &["signing-key", "rotate", "--json"]);
    let listed = keygate_json(&app, &["signing-key", "list", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!(listed[0]["kid"], rotated["kid"]);
    assert_eq!(rotated["state"], "published");
    assert!(listed[0]["retire_at"].is_null());
    assert!(listed[1]["retire_at"].is_string());
    // Published first; the old key signs until the JWKS cache lifetime has passed.
    assert_eq!(listed[0]["state"], "published");
    assert_eq!(listed[1]["state"], "active");

    // The running server signs with the new key once its activation time has passed (the
    // CLI set it by the wall clock, which is a little ahead of the test's).
    app.clock
        .advance(keygate::signing_keys::ACTIVATION_DELAY + std::time::Duration::from_secs(5));
    app.state.signing_keys.reload().await.unwrap();
    let token = app.signin(&app.owner).await["id_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let header = josekit::jwt::decode_header(&token).unwrap();
    assert_eq!(header.claim("kid").unwrap(), &rotated["kid"]);
    assert_eq!(app.jwks().await["keys"].as_array().unwrap().len(), 2);
}
