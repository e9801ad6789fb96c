//! Unit tests of the DPoP client: key formats, JWK widths, proofs and their claims.

use super::*;
use chrono::TimeZone;
use serde_json::Value;

fn decode(part: &str) -> Value {
    serde_json::from_slice(&B64.decode(part).unwrap()).unwrap()
}

fn parts(proof: &str) -> (Value, Value, Vec<u8>) {
    let parts: Vec<&str> = proof.split('.').collect();
    assert_eq!(parts.len(), 3, "{proof}");
    (
        decode(parts[0]),
        decode(parts[1]),
        B64.decode(parts[2]).unwrap(),
    )
}

fn at() -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000, 0).unwrap()
}

/// Verifies `proof`'s signature with the RustCrypto verifier of the key's curve.
fn verify(key: &ClientKey, proof: &str) -> bool {
    use p256::ecdsa::signature::Verifier;
    let (input, signature) = proof.rsplit_once('.').unwrap();
    let signature = B64.decode(signature).unwrap();
    match key {
        ClientKey::P256(k) => {
            let sig = p256::ecdsa::Signature::from_slice(&signature).unwrap();
            p256::ecdsa::VerifyingKey::from(k.public_key())
                .verify(input.as_bytes(), &sig)
                .is_ok()
        }
        ClientKey::P384(k) => {
            let sig = p384::ecdsa::Signature::from_slice(&signature).unwrap();
            p384::ecdsa::VerifyingKey::from(k.public_key())
                .verify(input.as_bytes(), &sig)
                .is_ok()
        }
        ClientKey::P521(_) => {
            let sig = p521::ecdsa::Signature::from_slice(&signature).unwrap();
            p521::ecdsa::VerifyingKey::from_sec1_bytes(&key.public_point())
                .unwrap()
                .verify(input.as_bytes(), &sig)
                .is_ok()
        }
    }
}

#[test]
fn alg_names_parse_in_any_case_and_unknown_ones_fail() {
    assert_eq!("ES256".parse::<DpopAlg>().unwrap(), DpopAlg::ES256);
    assert_eq!("es384".parse::<DpopAlg>().unwrap(), DpopAlg::ES384);
    assert_eq!("Es512".parse::<DpopAlg>().unwrap(), DpopAlg::ES512);
    for bad in ["RS256", "EdDSA", "none", "HS256", "", "ES"] {
        let err = bad.parse::<DpopAlg>().unwrap_err();
        assert!(
            matches!(err, DpopClientError::UnknownAlg(_)),
            "{bad}: {err}"
        );
    }
}

#[test]
fn jwk_coordinates_and_signatures_have_the_curves_full_width() {
    for alg in DpopAlg::ALL {
        // Many keys, so a coordinate with leading zero bytes (1 in 256) is likely seen.
        for _ in 0..64 {
            let key = ClientKey::generate(alg);
            assert_eq!(key.alg(), alg);
            let jwk = key.public_jwk();
            assert_eq!(jwk.kty, "EC");
            assert_eq!(jwk.crv, alg.curve());
            for coordinate in [&jwk.x, &jwk.y] {
                assert_eq!(B64.decode(coordinate).unwrap().len(), alg.field_len());
            }
            let chars = match alg {
                DpopAlg::ES256 => 43,
                DpopAlg::ES384 => 64,
                DpopAlg::ES512 => 88,
            };
            assert_eq!(jwk.x.len(), chars, "{alg}");
            assert_eq!(jwk.y.len(), chars, "{alg}");
            // The same as the curve crates' own JWK encoding.
            let reference = match &key {
                ClientKey::P256(k) => k.public_key().to_jwk_string(),
                ClientKey::P384(k) => k.public_key().to_jwk_string(),
                ClientKey::P521(k) => k.public_key().to_jwk_string(),
            };
            let reference: Value = serde_json::from_str(&reference).unwrap();
            assert_eq!(serde_json::to_value(&jwk).unwrap(), reference, "{alg}");
        }
        let key = ClientKey::generate(alg);
        let proof = key
            .proof("post", "https://kg.example/a", None, None, at())
            .unwrap();
        let (_, _, signature) = parts(&proof);
        let width = match alg {
            DpopAlg::ES256 => 64,
            DpopAlg::ES384 => 96,
            DpopAlg::ES512 => 132,
        };
        assert_eq!(signature.len(), width, "{alg}");
        assert_eq!(signature.len(), 2 * alg.field_len());
    }
}

#[test]
fn a_proof_has_the_rfc_9449_header_and_claims_and_verifies() {
    for alg in DpopAlg::ALL {
        let key = ClientKey::generate(alg);
        let proof = key
            .proof(
                "post",
                "https://KG.example:443/v1/default/user/signin_with_api_key",
                None,
                None,
                at(),
            )
            .unwrap();
        let (header, claims, _) = parts(&proof);
        assert_eq!(
            header,
            serde_json::json!({"typ": "dpop+jwt", "alg": alg.as_str(), "jwk": key.public_jwk()})
        );
        assert_eq!(
            header["jwk"].as_object().unwrap().len(),
            4,
            "kty, crv, x, y only"
        );
        let claims = claims.as_object().unwrap();
        let mut names: Vec<&str> = claims.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["htm", "htu", "iat", "jti"]);
        assert_eq!(claims["htm"], "POST");
        assert_eq!(
            claims["htu"],
            "https://kg.example/v1/default/user/signin_with_api_key"
        );
        assert_eq!(claims["iat"], 1_700_000_000);
        assert!(verify(&key, &proof), "{alg}");
        let mut tampered = proof.clone();
        tampered.insert(tampered.find('.').unwrap() + 1, 'e');
        assert!(!verify(&key, &tampered), "{alg}");
    }
}

#[test]
fn jti_is_128_random_bits_and_fresh_each_time() {
    let key = ClientKey::generate(DpopAlg::ES256);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..100 {
        let proof = key.proof("GET", "http://h/", None, None, at()).unwrap();
        let jti = parts(&proof).1["jti"].as_str().unwrap().to_owned();
        assert!(B64.decode(&jti).unwrap().len() >= 16, "{jti}");
        assert!(seen.insert(jti));
    }
}

#[test]
fn htu_strips_query_and_fragment() {
    assert_eq!(
        htu("https://kg.example/v1/x/user/me?a=1&b=2#frag").unwrap(),
        "https://kg.example/v1/x/user/me"
    );
    assert_eq!(
        htu("http://127.0.0.1:8080/p#only-fragment").unwrap(),
        "http://127.0.0.1:8080/p"
    );
    assert_eq!(
        htu("http://127.0.0.1:8080/p?").unwrap(),
        "http://127.0.0.1:8080/p"
    );
    let key = ClientKey::generate(DpopAlg::ES384);
    let proof = key
        .proof("get", "https://kg.example/me?x=1#y", None, None, at())
        .unwrap();
    assert_eq!(parts(&proof).1["htu"], "https://kg.example/me");
}

#[test]
fn bad_urls_and_methods_are_refused() {
    for url in [
        "",
        "not a url",
        "/v1/default/user/me",
        "ftp://kg.example/x",
        "mailto:a@b.example",
        "https://user:pw@kg.example/x",
    ] {
        assert!(
            matches!(htu(url), Err(DpopClientError::BadUrl { .. })),
            "{url}"
        );
    }
    for method in ["", "GE T", "GET\n", "PÖST"] {
        assert!(
            matches!(htm(method), Err(DpopClientError::BadMethod(_))),
            "{method:?}"
        );
    }
    assert_eq!(htm("patch").unwrap(), "PATCH");
}

#[test]
fn ath_matches_the_rfc_9449_section_7_1_example() {
    let token = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU";
    assert_eq!(ath(token), "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo");
    let key = ClientKey::generate(DpopAlg::ES256);
    let proof = key
        .proof(
            "GET",
            "https://resource.example.org/protectedresource",
            Some(token),
            Some("eyJ7S_zG.eyJH0-Z.HX4w-7v"),
            at(),
        )
        .unwrap();
    let claims = parts(&proof).1;
    assert_eq!(claims["ath"], "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo");
    assert_eq!(claims["nonce"], "eyJ7S_zG.eyJH0-Z.HX4w-7v");
}

#[test]
fn thumbprint_matches_the_rfc_7638_canonical_form() {
    // RFC 7638 §3.1's member order, computed here through serde_json.
    let key = ClientKey::generate(DpopAlg::ES512);
    let jwk = key.public_jwk();
    let canonical = serde_json::json!({"crv": jwk.crv, "kty": "EC", "x": jwk.x, "y": jwk.y});
    let mut map: Vec<(String, Value)> =
        canonical.as_object().unwrap().clone().into_iter().collect();
    map.sort_by(|a, b| a.0.cmp(&b.0));
    let text = format!(
        "{{{}}}",
        map.iter()
            .map(|(k, v)| format!("\"{k}\":{v}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    assert_eq!(key.thumbprint(), sha256_b64(text.as_bytes()));
    assert_eq!(key.thumbprint().len(), 43);
}

#[test]
fn pem_round_trips_and_the_curve_gives_the_alg() {
    for alg in DpopAlg::ALL {
        let key = ClientKey::generate(alg);
        let pem = key.to_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{alg}");
        assert!(pem.ends_with("-----END PRIVATE KEY-----\n"), "{alg}");
        let back = ClientKey::from_pem(&pem).unwrap();
        assert_eq!(back.alg(), alg);
        assert_eq!(back.public_jwk(), key.public_jwk());
        assert_eq!(back.thumbprint(), key.thumbprint());
        // Surrounding text is ignored.
        let noisy = format!("a comment\n{}\ntrailing", pem.as_str());
        assert_eq!(
            ClientKey::from_pem(&noisy).unwrap().thumbprint(),
            key.thumbprint()
        );
        // The alg the caller asks for must be the key's.
        assert!(ClientKey::from_pem_with_alg(&pem, Some(alg)).is_ok());
        assert!(ClientKey::from_pem_with_alg(&pem, None).is_ok());
        for other in DpopAlg::ALL.into_iter().filter(|a| *a != alg) {
            let err = ClientKey::from_pem_with_alg(&pem, Some(other)).unwrap_err();
            assert!(
                matches!(err, DpopClientError::AlgMismatch { .. }),
                "{alg} as {other}: {err}"
            );
        }
    }
}

#[test]
fn sec1_pem_keys_load_on_their_own_curve() {
    for alg in DpopAlg::ALL {
        let key = ClientKey::generate(alg);
        let sec1 = match &key {
            ClientKey::P256(k) => k.to_sec1_pem(LineEnding::LF).unwrap(),
            ClientKey::P384(k) => k.to_sec1_pem(LineEnding::LF).unwrap(),
            ClientKey::P521(k) => k.to_sec1_pem(LineEnding::LF).unwrap(),
        };
        assert!(sec1.starts_with("-----BEGIN EC PRIVATE KEY-----"));
        let back = ClientKey::from_pem(&sec1).unwrap();
        assert_eq!(back.alg(), alg);
        assert_eq!(back.thumbprint(), key.thumbprint());
    }
}

#[test]
fn corrupt_and_foreign_keys_are_refused_without_panicking() {
    let good = ClientKey::generate(DpopAlg::ES256).to_pem().unwrap();
    let mut corrupt = good.to_string();
    corrupt.replace_range(40..60, "AAAAAAAAAAAAAAAAAAAA");
    // An Ed25519 PKCS#8 key (RFC 8410 §10.3).
    let ed25519 = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";
    let encrypted =
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
    for (name, text) in [
        ("empty", ""),
        ("garbage", "garbage"),
        ("corrupt", corrupt.as_str()),
        ("truncated", &good[..good.len() / 2]),
        ("ed25519", ed25519),
        ("encrypted", encrypted),
        (
            "sec1 garbage",
            "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
        ),
    ] {
        let err = ClientKey::from_pem(text).unwrap_err();
        assert!(matches!(err, DpopClientError::BadKey(_)), "{name}: {err}");
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn debug_never_shows_the_private_key() {
    let key = ClientKey::generate(DpopAlg::ES256);
    let shown = format!("{key:?}");
    assert!(shown.contains("ES256"), "{shown}");
    assert!(shown.contains(&key.thumbprint()), "{shown}");
    let ClientKey::P256(secret) = &key else {
        unreachable!()
    };
    assert!(!shown.contains(&B64.encode(secret.to_bytes())));
}
