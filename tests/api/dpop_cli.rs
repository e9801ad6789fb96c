//! `keygate dpop`, the real binary: keys it writes, proofs it makes that the server accepts
//! (once) for every alg, proofs checked independently with josekit, `--curl` output, and
//! bad input that exits with 2 and a message, never a panic.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use josekit::jwk::Jwk;
use josekit::jws::{ES256, ES384, ES512, JwsVerifier};
use keygate::clock::{Clock, SystemClock};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{TestApp, claims_of, error_code, json, spawn_app};

const ALGS: [&str; 3] = ["ES256", "ES384", "ES512"];
const SIGNIN: &str = "/v1/default/user/signin_with_api_key";
const ME: &str = "/v1/default/user/me";

/// Runs `keygate dpop {args}` in `dir`, where a broken configuration file and an unreachable
/// database would stop any other command: `dpop` reads neither.
fn dpop(dir: &Path, args: &[&str]) -> Output {
    let config = dir.join("config");
    if !config.exists() {
        std::fs::create_dir(&config).unwrap();
        std::fs::write(config.join("default.toml"), "this is [[not toml").unwrap();
    }
    Command::new(env!("CARGO_BIN_EXE_keygate"))
        .arg("dpop")
        .args(args)
        .current_dir(dir)
        .env_remove("KEYGATE_CONFIG")
        .env(
            "KEYGATE__DATABASE__URL",
            "postgres://nobody@127.0.0.1:1/none",
        )
        .output()
        .expect("run keygate dpop")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// Runs `keygate dpop {args}`, expecting success; returns stdout.
fn dpop_ok(dir: &Path, args: &[&str]) -> String {
    let out = dpop(dir, args);
    assert!(
        out.status.success(),
        "keygate dpop {args:?}: {}",
        stderr(&out)
    );
    stdout(&out)
}

/// A proof from `keygate dpop proof`: one line holding a compact JWS.
fn proof(dir: &Path, args: &[&str]) -> String {
    let mut all = vec!["proof"];
    all.extend_from_slice(args);
    let out = dpop_ok(dir, &all);
    let proof = out.strip_suffix('\n').unwrap_or(&out);
    assert!(!proof.contains('\n'), "one line: {out:?}");
    assert_eq!(proof.split('.').count(), 3, "{proof}");
    proof.to_owned()
}

fn header_of(jws: &str) -> Value {
    let header = jws.split('.').next().unwrap();
    serde_json::from_slice(&B64.decode(header).unwrap()).unwrap()
}

fn verifier(alg: &str, jwk: &Jwk) -> Box<dyn JwsVerifier> {
    match alg {
        "ES256" => Box::new(ES256.verifier_from_jwk(jwk).unwrap()),
        "ES384" => Box::new(ES384.verifier_from_jwk(jwk).unwrap()),
        "ES512" => Box::new(ES512.verifier_from_jwk(jwk).unwrap()),
        other => panic!("{other}"),
    }
}

fn sha256_b64(bytes: &[u8]) -> String {
    B64.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref())
}

/// RFC 7638 thumbprint of a header's EC `jwk`, computed here.
fn thumbprint(jwk: &Value) -> String {
    let canonical = format!(
        r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
        jwk["crv"].as_str().unwrap(),
        jwk["x"].as_str().unwrap(),
        jwk["y"].as_str().unwrap()
    );
    sha256_b64(canonical.as_bytes())
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

async fn me_with(app: &TestApp, token: &str, proof: &str) -> reqwest::Response {
    app.client
        .get(app.url(ME))
        .header("Authorization", format!("DPoP {token}"))
        .header("DPoP", proof)
        .send()
        .await
        .unwrap()
}

#[test]
fn keygen_writes_a_private_pkcs8_key_per_alg_and_never_overwrites_without_force() {
    let dir = tempfile::tempdir().unwrap();
    for alg in ALGS {
        let path = dir.path().join(format!("{alg}.pem"));
        let out = dpop_ok(
            dir.path(),
            &["keygen", "--alg", alg, "--out", path.to_str().unwrap()],
        );
        assert!(out.contains(alg), "{out}");
        assert_eq!(mode(&path), 0o600, "{alg}");
        let pem = std::fs::read_to_string(&path).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{pem}");
        assert!(pem.ends_with("-----END PRIVATE KEY-----\n"), "{pem}");
        // OpenSSL (through josekit) reads it as a key on the curve of `alg`, and only that.
        for other in ALGS {
            let read = match other {
                "ES256" => ES256.signer_from_pem(&pem).is_ok(),
                "ES384" => ES384.signer_from_pem(&pem).is_ok(),
                _ => ES512.signer_from_pem(&pem).is_ok(),
            };
            assert_eq!(read, other == alg, "{alg} key read as {other}");
        }

        // No overwriting without --force: exit 2, a message, the file untouched.
        let out = dpop(
            dir.path(),
            &["keygen", "--alg", alg, "--out", path.to_str().unwrap()],
        );
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), pem);

        // --force replaces it with a new key, private again even if the old file was not.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        dpop_ok(
            dir.path(),
            &[
                "keygen",
                "--alg",
                alg,
                "--out",
                path.to_str().unwrap(),
                "--force",
            ],
        );
        assert_ne!(std::fs::read_to_string(&path).unwrap(), pem);
        assert_eq!(mode(&path), 0o600, "{alg} after --force");
    }

    // ES256 is the default.
    let path = dir.path().join("default.pem");
    dpop_ok(dir.path(), &["keygen", "--out", path.to_str().unwrap()]);
    let pem = std::fs::read_to_string(&path).unwrap();
    assert!(ES256.signer_from_pem(&pem).is_ok());

    // The same directory stops a command that reads the configuration.
    let out = Command::new(env!("CARGO_BIN_EXE_keygate"))
        .args(["org", "list"])
        .current_dir(dir.path())
        .env_remove("KEYGATE_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the broken config is really broken");
}

#[tokio::test]
async fn cli_proofs_sign_in_and_reach_user_me_once_for_every_alg() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    for alg in ALGS {
        // The key does not exist yet: `proof` makes one and says so on stderr.
        let key_path = dir.path().join(format!("{alg}.pem"));
        let key = key_path.to_str().unwrap();
        let signin_url = app.url(SIGNIN);
        let out = dpop(
            dir.path(),
            &[
                "proof",
                "--key",
                key,
                "--alg",
                alg,
                "--method",
                "post",
                "--url",
                &signin_url,
            ],
        );
        assert!(out.status.success(), "{alg}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("generated a new") && stderr(&out).contains(alg),
            "{alg}: {}",
            stderr(&out)
        );
        assert_eq!(mode(&key_path), 0o600);
        let signin_proof = stdout(&out).trim_end().to_owned();
        let header = header_of(&signin_proof);
        assert_eq!(header["alg"], alg);

        let (status, body) =
            json(app.signin_with_proof(&app.owner, Some(&signin_proof)).await).await;
        assert_eq!(status, StatusCode::OK, "{alg}: {body}");
        assert_eq!(body["token_type"], "DPoP", "{alg}");
        let token = body["id_token"].as_str().unwrap().to_owned();
        assert_eq!(
            claims_of(&token)["cnf"]["jkt"],
            thumbprint(&header["jwk"]).as_str(),
            "{alg}"
        );

        // Now the key exists: no message, and its alg comes from its curve.
        let me_url = app.url(ME);
        let out = dpop(
            dir.path(),
            &[
                "proof",
                "--key",
                key,
                "--method",
                "GET",
                "--url",
                &me_url,
                "--access-token",
                &token,
            ],
        );
        assert!(out.status.success(), "{alg}: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "{alg}");
        let me_proof = stdout(&out).trim_end().to_owned();
        assert_eq!(header_of(&me_proof)["alg"], alg);
        assert_eq!(header_of(&me_proof)["jwk"], header["jwk"]);

        let (status, me) = json(me_with(&app, &token, &me_proof).await).await;
        assert_eq!(status, StatusCode::OK, "{alg}: {me}");
        assert_eq!(me["token_type"], "DPoP");
        assert_eq!(me["auth_method"], "dpop");
        assert_eq!(me["user_id"], app.owner.user_id.as_str());

        // The same proof a second time is a replay.
        let res = me_with(&app, &token, &me_proof).await;
        let challenge = res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        let (status, body) = json(res).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{alg}: {body}");
        assert_eq!(error_code(&body), "invalid_dpop_proof", "{alg}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("used before"),
            "{alg}: {body}"
        );
        assert!(
            challenge.contains("error=\"invalid_dpop_proof\""),
            "{challenge}"
        );

        // A fresh proof works again.
        let again = proof(
            dir.path(),
            &[
                "--key",
                key,
                "--method",
                "GET",
                "--url",
                &me_url,
                "--access-token",
                &token,
            ],
        );
        assert_eq!(
            me_with(&app, &token, &again).await.status(),
            StatusCode::OK,
            "{alg}"
        );
    }
}

#[test]
fn cli_proofs_verify_with_josekit_and_carry_the_rfc_9449_claims() {
    let dir = tempfile::tempdir().unwrap();
    let token = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU";
    for (alg, crv, coordinate_chars, signature_len) in [
        ("ES256", "P-256", 43, 64),
        ("ES384", "P-384", 64, 96),
        ("ES512", "P-521", 88, 132),
    ] {
        let key_path = dir.path().join(format!("{alg}.pem"));
        let key = key_path.to_str().unwrap();
        dpop_ok(dir.path(), &["keygen", "--alg", alg, "--out", key]);
        let before = SystemClock.now().timestamp();
        let jws = proof(
            dir.path(),
            &[
                "--key",
                key,
                "--alg",
                alg,
                "--method",
                "patch",
                "--url",
                "https://KG.example:443/v1/acme/things/1?page=2&x=y#part",
                "--access-token",
                token,
                "--nonce",
                "eyJ7S_zG.eyJH0-Z.HX4w-7v",
            ],
        );
        let after = SystemClock.now().timestamp();

        // The verifier is built from the proof's own jwk, as a server would.
        let header = header_of(&jws);
        let jwk_json = header["jwk"].as_object().unwrap().clone();
        let mut members: Vec<&str> = jwk_json.keys().map(String::as_str).collect();
        members.sort_unstable();
        assert_eq!(members, ["crv", "kty", "x", "y"], "{alg}: {header}");
        assert_eq!(jwk_json["kty"], "EC");
        assert_eq!(jwk_json["crv"], crv);
        for c in ["x", "y"] {
            assert_eq!(
                jwk_json[c].as_str().unwrap().len(),
                coordinate_chars,
                "{alg} {c}: never a minimal encoding"
            );
        }
        let jwk = Jwk::from_map(jwk_json).unwrap();
        let (payload, jose_header) =
            josekit::jwt::decode_with_verifier(&jws, verifier(alg, &jwk).as_ref())
                .unwrap_or_else(|e| panic!("{alg}: josekit refuses the proof: {e}"));
        assert_eq!(jose_header.token_type(), Some("dpop+jwt"));
        assert_eq!(jose_header.algorithm(), Some(alg));
        let signature = B64.decode(jws.rsplit('.').next().unwrap()).unwrap();
        assert_eq!(signature.len(), signature_len, "{alg}: r || s, fixed width");

        let claims = Value::Object(payload.claims_set().clone());
        let mut names: Vec<&str> = claims
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        assert_eq!(
            names,
            ["ath", "htm", "htu", "iat", "jti", "nonce"],
            "{claims}"
        );
        assert_eq!(claims["htm"], "PATCH");
        assert_eq!(claims["htu"], "https://kg.example/v1/acme/things/1");
        let iat = claims["iat"].as_i64().expect("integer iat");
        assert!((before..=after).contains(&iat), "{iat}");
        let jti = claims["jti"].as_str().unwrap();
        assert!(B64.decode(jti).unwrap().len() >= 16, "{jti}");
        assert_eq!(claims["ath"], "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo");
        assert_eq!(claims["nonce"], "eyJ7S_zG.eyJH0-Z.HX4w-7v");

        // The jwk is the public half of the key file: what josekit signs with the file
        // verifies against it.
        let pem = std::fs::read(&key_path).unwrap();
        let mut other_header = josekit::jws::JwsHeader::new();
        other_header.set_token_type("JWT");
        let mut other_claims = josekit::jwt::JwtPayload::new();
        other_claims.set_subject("x");
        let signed = match alg {
            "ES256" => josekit::jwt::encode_with_signer(
                &other_claims,
                &other_header,
                &ES256.signer_from_pem(&pem).unwrap(),
            ),
            "ES384" => josekit::jwt::encode_with_signer(
                &other_claims,
                &other_header,
                &ES384.signer_from_pem(&pem).unwrap(),
            ),
            _ => josekit::jwt::encode_with_signer(
                &other_claims,
                &other_header,
                &ES512.signer_from_pem(&pem).unwrap(),
            ),
        }
        .unwrap();
        josekit::jwt::decode_with_verifier(&signed, verifier(alg, &jwk).as_ref())
            .unwrap_or_else(|e| panic!("{alg}: the jwk is not the file's key: {e}"));

        // Each proof is fresh.
        let second = proof(
            dir.path(),
            &[
                "--key",
                key,
                "--method",
                "GET",
                "--url",
                "https://kg.example/",
            ],
        );
        assert_ne!(claims_of(&second)["jti"], claims["jti"]);
        assert!(claims_of(&second).get("ath").is_none());
        assert!(claims_of(&second).get("nonce").is_none());
    }
}

#[tokio::test]
async fn curl_prints_paste_ready_headers_that_work() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    let key = key.to_str().unwrap();
    dpop_ok(dir.path(), &["keygen", "--out", key]);

    // Without a token: the DPoP header alone.
    let signin_url = app.url(SIGNIN);
    let out = proof(
        dir.path(),
        &[
            "--key",
            key,
            "--method",
            "POST",
            "--url",
            &signin_url,
            "--curl",
        ],
    );
    let signin_proof = out
        .strip_prefix("-H 'DPoP: ")
        .and_then(|s| s.strip_suffix('\''))
        .unwrap_or_else(|| panic!("{out:?}"));
    let (status, body) = json(app.signin_with_proof(&app.owner, Some(signin_proof)).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["id_token"].as_str().unwrap();

    // With a token: DPoP, then Authorization, one a line.
    let me_url = app.url(ME);
    let out = dpop_ok(
        dir.path(),
        &[
            "proof",
            "--key",
            key,
            "--method",
            "GET",
            "--url",
            &me_url,
            "--access-token",
            token,
            "--curl",
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(out.ends_with('\n'));
    let me_proof = lines[0]
        .strip_prefix("-H 'DPoP: ")
        .and_then(|s| s.strip_suffix('\''))
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(lines[1], format!("-H 'Authorization: DPoP {token}'"));
    assert_eq!(
        claims_of(me_proof)["ath"],
        sha256_b64(token.as_bytes()).as_str()
    );
    let (status, me) = json(me_with(&app, token, me_proof).await).await;
    assert_eq!(status, StatusCode::OK, "{me}");

    // A quote in a value is escaped for the shell.
    let out = dpop_ok(
        dir.path(),
        &[
            "proof",
            "--key",
            key,
            "--method",
            "GET",
            "--url",
            "http://x.example/",
            "--access-token",
            "it's",
            "--curl",
        ],
    );
    assert_eq!(
        out.lines().nth(1),
        Some(r"-H 'Authorization: DPoP it'\''s'")
    );
}

#[test]
fn bad_input_exits_with_2_and_a_message_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.pem");
    let good = good.to_str().unwrap();
    dpop_ok(dir.path(), &["keygen", "--alg", "ES384", "--out", good]);
    let corrupt = dir.path().join("corrupt.pem");
    let mut text = std::fs::read_to_string(good).unwrap();
    text.replace_range(40..70, &"A".repeat(30));
    std::fs::write(&corrupt, text).unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a key at all\n").unwrap();
    let missing = dir.path().join("missing.pem");
    let url = "https://kg.example/v1/default/user/me";

    #[rustfmt::skip]
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        ("missing --url", vec!["proof", "--key", good, "--method", "GET"], "--url"),
        ("missing --method", vec!["proof", "--key", good, "--url", url], "--method"),
        ("unknown alg at keygen", vec!["keygen", "--alg", "RS256", "--out", "x.pem"], "RS256"),
        ("unknown alg at proof", vec!["proof", "--key", good, "--alg", "HS256", "--method", "GET", "--url", url], "HS256"),
        ("corrupt key", vec!["proof", "--key", corrupt.to_str().unwrap(), "--method", "GET", "--url", url], "corrupt.pem"),
        ("not a key", vec!["proof", "--key", garbage.to_str().unwrap(), "--method", "GET", "--url", url], "garbage.pem"),
        ("unreadable key (a directory)", vec!["proof", "--key", dir.path().to_str().unwrap(), "--method", "GET", "--url", url], "cannot read"),
        ("alg not the key's", vec!["proof", "--key", good, "--alg", "ES256", "--method", "GET", "--url", url], "ES384"),
        ("relative URL", vec!["proof", "--key", good, "--method", "GET", "--url", "/v1/default/user/me"], "bad URL"),
        ("not a URL", vec!["proof", "--key", good, "--method", "GET", "--url", "not a url"], "bad URL"),
        ("not http", vec!["proof", "--key", good, "--method", "GET", "--url", "ftp://kg.example/x"], "http"),
        ("bad URL with no key yet", vec!["proof", "--key", missing.to_str().unwrap(), "--method", "GET", "--url", "::"], "bad URL"),
        ("bad method", vec!["proof", "--key", good, "--method", "GE T", "--url", url], "method"),
        ("keygen into a missing directory", vec!["keygen", "--out", "no/such/dir/key.pem"], "cannot create"),
    ];
    for (name, args, needle) in &cases {
        let out = dpop(dir.path(), args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(needle), "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
        assert_eq!(stdout(&out), "", "{name}");
    }
    assert!(!missing.exists(), "a bad request leaves no key file behind");
    assert!(!dir.path().join("x.pem").exists());

    // The message names the problem, not just the file.
    let out = dpop(
        dir.path(),
        &[
            "proof",
            "--key",
            corrupt.to_str().unwrap(),
            "--method",
            "GET",
            "--url",
            url,
        ],
    );
    assert!(stderr(&out).contains("PKCS#8"), "{}", stderr(&out));
}
