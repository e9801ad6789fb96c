//! A resource server (an MCP server, an API) verifying keygate's tokens offline, with the
//! code the README shows ("Verifying keygate's tokens at a resource server"), verbatim
//! between the markers: if this test fails, the README's example is wrong.

use reqwest::StatusCode;
use serde_json::json;

use crate::dpop_key::DpopKey;
use crate::helpers::{ALL_ALGS, TestApp, json as json_of, spawn_app_with};
use crate::resources::{MCP, cc, register};

/// SHA-256 (the README uses the `sha2` crate; the same function).
fn sha256(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

// --- README: begin ---------------------------------------------------------------------
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;

#[derive(Deserialize)]
struct Claims {
    sub: String,
    scope: String,
    cnf: Option<Cnf>,
}
#[derive(Deserialize)]
struct Cnf {
    jkt: String,
}

/// `jwks`: `GET {issuer}/.well-known/jwks.json`, cached (fetch again on an unknown `kid`).
/// `issuer`: keygate's issuer for the organization; `resource`: this server's URI, exactly
/// as registered.
fn verify_access_token(
    jwks: &JwkSet,
    issuer: &str,
    resource: &str,
    token: &str,
    needed_scope: &str,
) -> Result<Claims, &'static str> {
    let header = decode_header(token).map_err(|_| "malformed")?;
    if !header.typ.is_some_and(|t| t.eq_ignore_ascii_case("at+jwt")) {
        return Err("not an access token");
    }
    if !matches!(header.alg, Algorithm::ES256 | Algorithm::EdDSA) {
        return Err("algorithm not accepted");
    }
    let jwk = jwks.find(header.kid.as_deref().unwrap_or_default());
    let key = DecodingKey::from_jwk(jwk.ok_or("unknown key")?).map_err(|_| "bad key")?;
    let mut validation = Validation::new(header.alg); // signature, `exp` (60 s leeway)
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[resource]); // `aud` names this server (alone or in a list)
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    let claims: Claims = decode(token, &key, &validation)
        .map_err(|_| "invalid")?
        .claims;
    if !claims.scope.split(' ').any(|s| s == needed_scope) {
        return Err("insufficient_scope");
    }
    Ok(claims)
}

/// RFC 9449 §4.3 and §7.1, for a token with `cnf.jkt`: the request came with
/// `Authorization: DPoP <token>` and one `DPoP: <proof>` header. `url`: this request's URL
/// without query and fragment. Returns the proof's `jti`, which the caller remembers for
/// 5 minutes and refuses if it was seen before (a replay).
fn verify_dpop_proof(
    proof: &str,
    token: &str,
    jkt: &str,
    method: &str,
    url: &str,
    now: i64,
) -> Result<String, &'static str> {
    let header = decode_header(proof).map_err(|_| "malformed proof")?;
    // (jsonwebtoken has no ES512: a P-521 proof needs another library)
    if header.typ.as_deref() != Some("dpop+jwt")
        || !matches!(header.alg, Algorithm::ES256 | Algorithm::ES384)
    {
        return Err("not a DPoP proof");
    }
    let jwk = header.jwk.ok_or("no jwk")?;
    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| "bad jwk")?;
    let p: serde_json::Value = decode(proof, &key, &validation)
        .map_err(|_| "bad proof")?
        .claims;
    let fresh = p["iat"]
        .as_i64()
        .is_some_and(|iat| (now - iat).abs() <= 300);
    let ath = B64.encode(sha256(token.as_bytes()));
    if p["htm"] != method || p["htu"] != url || !fresh || p["ath"] != ath.as_str() {
        return Err("the proof is not for this request");
    }
    if thumbprint(&jwk)? != jkt {
        return Err("the proof is not signed by the token's key");
    }
    p["jti"].as_str().map(str::to_owned).ok_or("no jti")
}

/// RFC 7638 thumbprint of an EC public key: its required members, in lexicographic order.
fn thumbprint(jwk: &Jwk) -> Result<String, &'static str> {
    let AlgorithmParameters::EllipticCurve(ec) = &jwk.algorithm else {
        return Err("not an EC key");
    };
    let crv = serde_json::to_string(&ec.curve).map_err(|_| "curve")?;
    let canonical = format!(
        r#"{{"crv":{crv},"kty":"EC","x":"{}","y":"{}"}}"#,
        ec.x, ec.y
    );
    Ok(B64.encode(sha256(canonical.as_bytes())))
}
// --- README: end -----------------------------------------------------------------------

async fn jwks(app: &TestApp) -> JwkSet {
    let res = app
        .client
        .get(app.url("/v1/default/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!(status, StatusCode::OK);
    serde_json::from_value(body).unwrap()
}

#[tokio::test]
async fn a_resource_server_verifies_iss_aud_typ_exp_and_scope_offline() {
    for alg in ALL_ALGS {
        let app = spawn_app_with(|s| s.tokens.alg = alg).await;
        register(&app, &app.owner, MCP, &["mcp:tools"], None).await;
        let (status, body) = cc(&app, &app.owner, &[MCP], None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let token = body["access_token"].as_str().unwrap();
        let keys = jwks(&app).await;
        let issuer = app.url("/v1/default");

        let claims = verify_access_token(&keys, &issuer, MCP, token, "mcp:tools").unwrap();
        assert_eq!(claims.sub, app.owner.user_id);
        assert!(claims.cnf.is_none());
        for (name, issuer, resource, scope) in [
            (
                "another resource",
                issuer.as_str(),
                "https://other.example/",
                "mcp:tools",
            ),
            (
                "another issuer",
                "https://evil.example/v1/default",
                MCP,
                "mcp:tools",
            ),
            ("a scope it lacks", issuer.as_str(), MCP, "mcp:admin"),
        ] {
            assert!(
                verify_access_token(&keys, issuer, resource, token, scope).is_err(),
                "{alg:?} {name}"
            );
        }
        // keygate's own tokens are not for this resource.
        let own = app.session(&app.owner).await.token;
        assert_eq!(
            verify_access_token(&keys, &issuer, MCP, &own, "keys:read").err(),
            Some("invalid")
        );
    }
}

#[tokio::test]
async fn a_resource_server_checks_the_dpop_proof_of_a_bound_token() {
    let app = spawn_app_with(|_| {}).await;
    register(&app, &app.owner, MCP, &["mcp:tools"], None).await;
    let key = DpopKey::es256();
    let res = app
        .client
        .post(app.url("/v1/default/oauth/token"))
        .basic_auth(&app.owner.api_key_id, Some(&app.owner.api_key))
        .header(
            "dpop",
            key.proof(&app, "POST", "/v1/default/oauth/token", None),
        )
        .form(&[("grant_type", "client_credentials"), ("resource", MCP)])
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    let token = body["access_token"].as_str().unwrap();
    let claims = verify_access_token(
        &jwks(&app).await,
        &app.url("/v1/default"),
        MCP,
        token,
        "mcp:tools",
    )
    .unwrap();
    let jkt = claims.cnf.expect("a bound token has cnf.jkt").jkt;
    assert_eq!(jkt, key.thumbprint());

    let now = app.now().timestamp();
    let proof_for = |key: &DpopKey, method: &str, url: &str, token: &str| {
        let (header, mut claims) = key.parts(method, url, now);
        claims["ath"] = json!(B64.encode(sha256(token.as_bytes())));
        key.sign_parts(&header, &claims)
    };
    let good = proof_for(&key, "POST", MCP, token);
    assert!(verify_dpop_proof(&good, token, &jkt, "POST", MCP, now).is_ok());
    let stranger = DpopKey::es256();
    for (name, proof, method, at) in [
        ("another method", good.clone(), "GET", now),
        ("too old", good.clone(), "POST", now + 301),
        (
            "another URL",
            proof_for(&key, "POST", "https://other.example/", token),
            "POST",
            now,
        ),
        (
            "another token",
            proof_for(&key, "POST", MCP, "x"),
            "POST",
            now,
        ),
        (
            "another key",
            proof_for(&stranger, "POST", MCP, token),
            "POST",
            now,
        ),
    ] {
        assert!(
            verify_dpop_proof(&proof, token, &jkt, method, MCP, at).is_err(),
            "{name}"
        );
    }
}
