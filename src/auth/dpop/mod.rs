//! DPoP proofs (RFC 9449): parsing, `htu` normalisation, server nonces, the replay cache,
//! and [`Dpop::verify`], the one entry point that sign-in, the token endpoint, refresh and
//! every protected endpoint call. No HTTP types and no database here: the caller passes
//! the header values, the method, the request path and the time.

mod htu;
mod nonce;
mod proof;
mod replay;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};

pub use htu::PublicUrl;
pub use nonce::Nonces;
pub use replay::{MemoryReplayStore, RedisReplayStore, ReplayError, ReplayStore, replay_key};

use crate::config::DpopSettings;

/// The `algs` a DPoP challenge advertises (RFC 9449 §7.1) and metadata publishes.
pub const ALGS: &str = "ES256 ES384 ES512";

/// A proof larger than this is refused before it is parsed.
pub const MAX_PROOF_BYTES: usize = 4096;

/// The `Retry-After` (seconds) of a request refused because the replay store could not
/// record its proof.
pub const REPLAY_RETRY_AFTER_SECS: u32 = 5;

/// Why a proof was refused. The message is the `error_description`: it says which check
/// failed and never echoes the proof.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DpopError {
    #[error("a DPoP proof is required")]
    Missing,
    #[error("more than one DPoP header")]
    MultipleHeaders,
    #[error("the DPoP proof exceeds {MAX_PROOF_BYTES} bytes")]
    TooLarge,
    #[error("the DPoP proof is not a compact JWS: {0}")]
    Malformed(&'static str),
    #[error("the DPoP proof's typ is not dpop+jwt")]
    WrongType,
    #[error("the DPoP proof's alg is not one of ES256, ES384, ES512")]
    UnsupportedAlg,
    #[error("the DPoP proof's jwk is not valid: {0}")]
    BadJwk(&'static str),
    #[error("the DPoP proof lacks the claim `{0}` or it has the wrong type")]
    MissingClaim(&'static str),
    #[error("the DPoP proof's htm does not match the request method")]
    WrongMethod,
    #[error("the DPoP proof's htu does not match the request URI")]
    WrongUri,
    #[error("the DPoP proof's iat is too far in the past")]
    TooOld,
    #[error("the DPoP proof's iat is in the future")]
    IssuedInFuture,
    #[error("the DPoP proof's ath does not match the access token")]
    WrongAth,
    #[error("the DPoP proof's key is not the key the access token is bound to")]
    KeyMismatch,
    #[error("the DPoP proof's signature is invalid")]
    BadSignature,
    #[error("the DPoP proof has been used before")]
    Replayed,
    /// Maps to `use_dpop_nonce` (RFC 9449 §8, §9), not `invalid_dpop_proof`.
    #[error("a current server nonce is required in the DPoP proof")]
    UseNonce,
    /// The replay store cannot record the proof (full, or unreachable): it cannot be
    /// accepted safely. Maps to 503 `temporarily_unavailable`, with `Retry-After`.
    #[error("the DPoP replay store cannot record this proof now; retry later")]
    ReplayStoreUnavailable,
}

impl DpopError {
    /// The failed check in a word: the `reason` label of `keygate_dpop_rejections_total`
    /// (a fixed set, never anything from the proof).
    pub fn reason(&self) -> &'static str {
        match self {
            DpopError::Missing => "missing",
            DpopError::MultipleHeaders => "multiple_headers",
            DpopError::TooLarge => "too_large",
            DpopError::Malformed(_) => "malformed",
            DpopError::WrongType => "wrong_typ",
            DpopError::UnsupportedAlg => "unsupported_alg",
            DpopError::BadJwk(_) => "bad_jwk",
            DpopError::MissingClaim(_) => "missing_claim",
            DpopError::WrongMethod => "htm_mismatch",
            DpopError::WrongUri => "htu_mismatch",
            DpopError::TooOld => "iat_too_old",
            DpopError::IssuedInFuture => "iat_in_future",
            DpopError::WrongAth => "ath_mismatch",
            DpopError::KeyMismatch => "key_mismatch",
            DpopError::BadSignature => "bad_signature",
            DpopError::Replayed => "replayed",
            DpopError::UseNonce => "nonce_required",
            DpopError::ReplayStoreUnavailable => "replay_store_unavailable",
        }
    }
}

/// What the request says the proof must match.
pub struct ProofCheck<'a> {
    /// Every `DPoP` header value as received.
    pub headers: &'a [&'a [u8]],
    /// The request method (`htm`).
    pub method: &'a str,
    /// The request path, as received (`htu` is the public URL plus this path).
    pub path: &'a str,
    /// The access token presented with the proof (then `ath` is required).
    pub access_token: Option<&'a str>,
    /// The thumbprint the token is bound to (`cnf.jkt`).
    pub bound_jkt: Option<&'a str>,
    /// Whether the proof must carry a current server nonce.
    pub require_nonce: bool,
    pub now: DateTime<Utc>,
}

/// A proof that passed every check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedProof {
    /// RFC 7638 thumbprint of the proof's public key.
    pub jkt: String,
}

/// The DPoP verifier of one server.
#[derive(Clone, Debug)]
pub struct Dpop {
    public_url: Arc<PublicUrl>,
    leeway: Duration,
    max_age: Duration,
    /// How long a proof's `jti` is remembered: see [`Dpop::replay_window`].
    replay_window: Duration,
    replay: Arc<dyn ReplayStore>,
    nonces: Arc<Nonces>,
}

/// RFC 9449 §4.2: `ath` is base64url(SHA-256(ASCII(access token))).
pub fn ath(access_token: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

impl Dpop {
    pub fn new(
        settings: &DpopSettings,
        public_url: PublicUrl,
        replay: Arc<dyn ReplayStore>,
        nonces: Nonces,
    ) -> Self {
        Self {
            public_url: Arc::new(public_url),
            leeway: settings.leeway,
            max_age: settings.max_age,
            replay_window: Self::replay_window(settings),
            replay,
            nonces: Arc::new(nonces),
        }
    }

    /// How long every proof's `jti` is remembered (the TTL handed to the replay store):
    /// `max_age + leeway + clock_skew + 1 s`. A proof is accepted from the moment it is first
    /// seen for at most `max_age + leeway` (an `iat` up to `leeway` ahead, accepted until it
    /// is `max_age` old), plus 1 s because `iat` has whole-second precision; `clock_skew`
    /// covers the other nodes of a fleet whose clocks lag this one's. The in-memory store
    /// must hold peak proofs per second × this window (`dpop.replay_capacity`).
    pub fn replay_window(settings: &DpopSettings) -> Duration {
        settings
            .max_age
            .saturating_add(settings.leeway)
            .saturating_add(settings.clock_skew)
            .saturating_add(Duration::from_secs(1))
    }

    /// Records a single-use id that is not a DPoP proof's (a client assertion's `jti`) in
    /// the same replay store, for `ttl`: `Ok(true)` on first use. The caller makes `key`
    /// from a namespace of its own, so it never equals a proof's [`replay_key`].
    pub async fn remember(&self, key: [u8; 32], ttl: Duration) -> Result<bool, ReplayError> {
        self.replay.insert_if_absent(key, ttl).await
    }

    /// The entries of this node's replay store (`None` for a shared store).
    pub fn replay_entries(&self) -> Option<u64> {
        self.replay.entries()
    }

    /// The nonce to hand out now (`DPoP-Nonce`).
    pub fn nonce(&self, now: DateTime<Utc>) -> String {
        self.nonces.current(now)
    }

    /// Checks a proof, cheapest checks first, per RFC 9449 §4.3:
    ///
    /// 1. exactly one `DPoP` header, at most [`MAX_PROOF_BYTES`];
    /// 2. a compact JWS: three base64url parts, a JSON object header (§4.3 steps 2–3);
    /// 3. `typ` is `dpop+jwt` (step 4);
    /// 4. `alg` is ES256, ES384 or ES512: never `none`, HMAC, RSA or EdDSA (step 5);
    /// 5. `jwk` is a public EC key on the curve of `alg`, with no private member (step 7);
    /// 6. `jti`, `htm`, `htu`, `iat` present and typed, `ath` too when a token is presented;
    /// 7. `htm` equals the method (step 8);
    /// 8. `htu` equals the public URL plus the path, normalised, query and fragment ignored
    ///    (step 9);
    /// 9. `iat` no older than `max_age` and no further ahead than `leeway` (step 11);
    /// 10. `ath` matches the token, and the key's thumbprint equals `cnf.jkt` (step 12);
    /// 11. `nonce` is a current server nonce, when nonces are required (step 10);
    /// 12. the signature verifies with the `jwk` (step 6), through aws-lc-rs;
    /// 13. `jti` was not seen before for this key while the proof could be accepted
    ///     (§11.1), last, so a bad proof never fills the replay cache.
    ///
    /// Every refusal is counted by its [`DpopError::reason`] (`keygate_dpop_rejections_total`).
    pub async fn verify(&self, check: &ProofCheck<'_>) -> Result<VerifiedProof, DpopError> {
        let result = self.check(check).await;
        if let Err(err) = &result {
            crate::metrics::dpop_rejection(err.reason());
        }
        result
    }

    async fn check(&self, check: &ProofCheck<'_>) -> Result<VerifiedProof, DpopError> {
        // 1.
        let raw = match check.headers {
            [] => return Err(DpopError::Missing),
            [one] => *one,
            _ => return Err(DpopError::MultipleHeaders),
        };
        if raw.len() > MAX_PROOF_BYTES {
            return Err(DpopError::TooLarge);
        }
        if raw.is_empty() {
            return Err(DpopError::Missing);
        }
        // 2.–6.
        let proof = proof::UnverifiedProof::parse(raw, check.access_token.is_some())?;
        // 7.
        if proof.claims.htm != check.method {
            return Err(DpopError::WrongMethod);
        }
        // 8.
        if !self.public_url.matches(&proof.claims.htu, check.path) {
            return Err(DpopError::WrongUri);
        }
        // 9.
        let now = check.now.timestamp();
        let max_age = i64::try_from(self.max_age.as_secs()).unwrap_or(i64::MAX);
        let leeway = i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX);
        if proof.claims.iat < now.saturating_sub(max_age) {
            return Err(DpopError::TooOld);
        }
        if proof.claims.iat > now.saturating_add(leeway) {
            return Err(DpopError::IssuedInFuture);
        }
        // 10.
        if let Some(token) = check.access_token
            && proof.claims.ath.as_deref() != Some(ath(token).as_str())
        {
            return Err(DpopError::WrongAth);
        }
        let jkt = proof.thumbprint();
        if check.bound_jkt.is_some_and(|bound| bound != jkt) {
            return Err(DpopError::KeyMismatch);
        }
        // 11.
        if check.require_nonce
            && !proof
                .claims
                .nonce
                .as_deref()
                .is_some_and(|n| self.nonces.accepts(n, check.now))
        {
            return Err(DpopError::UseNonce);
        }
        // 12.
        proof.verify_signature()?;
        // 13. The entry lives until the proof could no longer pass check 9 on any node. A
        // store that cannot record it refuses the proof: never accepted unrecorded.
        let fresh = self
            .replay
            .insert_if_absent(replay_key(jkt, &proof.claims.jti), self.replay_window)
            .await
            .map_err(|err| {
                tracing::warn!(error = %err, "DPoP proof refused: the replay store cannot record it");
                DpopError::ReplayStoreUnavailable
            })?;
        if !fresh {
            return Err(DpopError::Replayed);
        }
        Ok(VerifiedProof {
            jkt: jkt.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::Pepper;

    /// RFC 9449 §4.1, Figure 2 (line wrapping removed).
    const RFC_4_1_PROOF: &str = concat!(
        "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6Ik",
        "VDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCR",
        "nMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JE",
        "QSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIj",
        "oiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwia",
        "WF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg",
        "4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg",
    );
    /// RFC 9449 §7.1, Figure 13.
    const RFC_7_1_PROOF: &str = concat!(
        "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6Ik",
        "VDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCR",
        "nMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JE",
        "QSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiJlMWozVl9iS2ljOC1MQUVCIiwiaHRtIj",
        "oiR0VUIiwiaHR1IjoiaHR0cHM6Ly9yZXNvdXJjZS5leGFtcGxlLm9yZy9wcm90ZWN0Z",
        "WRyZXNvdXJjZSIsImlhdCI6MTU2MjI2MjYxOCwiYXRoIjoiZlVIeU8ycjJaM0RaNTNF",
        "c05yV0JiMHhXWG9hTnk1OUlpS0NBcWtzbVFFbyJ9.2oW9RP35yRqzhrtNP86L-Ey71E",
        "OptxRimPPToA1plemAgR6pxHF8y6-yqyVnmcw6Fy1dqd-jfxSYoMxhAJpLjA",
    );
    const RFC_TOKEN: &str = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU";
    const RFC_JKT: &str = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";

    fn verifier(public_url: &str) -> Dpop {
        let settings = DpopSettings::default();
        Dpop::new(
            &settings,
            PublicUrl::parse(public_url).unwrap(),
            Arc::new(MemoryReplayStore::new(
                100,
                Arc::new(crate::clock::ManualClock::starting_now()),
            )),
            Nonces::new(Arc::new(Pepper::new(&[5u8; 32])), settings.nonce_window),
        )
    }

    fn at(ts: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(ts, 0).unwrap()
    }

    #[test]
    fn rfc_9449_section_7_1_ath() {
        assert_eq!(
            ath(RFC_TOKEN),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
    }

    #[tokio::test]
    async fn rfc_9449_section_4_1_token_request_proof_verifies_once() {
        let dpop = verifier("https://server.example.com");
        let check = ProofCheck {
            headers: &[RFC_4_1_PROOF.as_bytes()],
            method: "POST",
            path: "/token",
            access_token: None,
            bound_jkt: None,
            require_nonce: false,
            now: at(1_562_262_616),
        };
        let proof = dpop.verify(&check).await.unwrap();
        assert_eq!(proof.jkt, RFC_JKT);
        assert_eq!(dpop.verify(&check).await, Err(DpopError::Replayed));

        let dpop = verifier("https://server.example.com");
        let wrong_method = ProofCheck {
            method: "GET",
            ..check
        };
        assert_eq!(
            dpop.verify(&wrong_method).await,
            Err(DpopError::WrongMethod)
        );
        let wrong_path = ProofCheck {
            path: "/other",
            method: "POST",
            ..wrong_method
        };
        assert_eq!(dpop.verify(&wrong_path).await, Err(DpopError::WrongUri));
        let late = ProofCheck {
            now: at(1_562_262_616 + 301),
            path: "/token",
            ..wrong_path
        };
        assert_eq!(dpop.verify(&late).await, Err(DpopError::TooOld));
        let early = ProofCheck {
            now: at(1_562_262_616 - 61),
            ..late
        };
        assert_eq!(dpop.verify(&early).await, Err(DpopError::IssuedInFuture));
        let nonce = ProofCheck {
            now: at(1_562_262_616),
            require_nonce: true,
            ..early
        };
        assert_eq!(dpop.verify(&nonce).await, Err(DpopError::UseNonce));
        let bound = ProofCheck {
            require_nonce: false,
            bound_jkt: Some("other"),
            ..nonce
        };
        assert_eq!(dpop.verify(&bound).await, Err(DpopError::KeyMismatch));
    }

    #[tokio::test]
    async fn rfc_9449_section_7_1_resource_proof_verifies_with_its_token() {
        let dpop = verifier("https://resource.example.org");
        let check = ProofCheck {
            headers: &[RFC_7_1_PROOF.as_bytes()],
            method: "GET",
            path: "/protectedresource",
            access_token: Some(RFC_TOKEN),
            bound_jkt: Some(RFC_JKT),
            require_nonce: false,
            now: at(1_562_262_618),
        };
        assert_eq!(dpop.verify(&check).await.unwrap().jkt, RFC_JKT);

        let dpop = verifier("https://resource.example.org");
        let other_token = ProofCheck {
            access_token: Some("another-token"),
            ..check
        };
        assert_eq!(dpop.verify(&other_token).await, Err(DpopError::WrongAth));
    }

    #[tokio::test]
    async fn header_count_size_and_shape_fail_before_anything_else() {
        let dpop = verifier("https://server.example.com");
        let base = ProofCheck {
            headers: &[],
            method: "POST",
            path: "/token",
            access_token: None,
            bound_jkt: None,
            require_nonce: false,
            now: at(1_562_262_616),
        };
        assert_eq!(dpop.verify(&base).await, Err(DpopError::Missing));
        let two = [RFC_4_1_PROOF.as_bytes(), RFC_4_1_PROOF.as_bytes()];
        assert_eq!(
            dpop.verify(&ProofCheck {
                headers: &two,
                ..base
            })
            .await,
            Err(DpopError::MultipleHeaders)
        );
        let big = vec![b'a'; MAX_PROOF_BYTES + 1];
        assert_eq!(
            dpop.verify(&ProofCheck {
                headers: &[&big],
                ..base
            })
            .await,
            Err(DpopError::TooLarge)
        );
        for garbage in [
            &b"abc"[..],
            b"a.b",
            b"a.b.c.d",
            b"..",
            b"\xff\xfe.x.y",
            b"e30.e30.AA",
        ] {
            let result = dpop
                .verify(&ProofCheck {
                    headers: &[garbage],
                    ..base
                })
                .await;
            assert!(
                matches!(
                    result,
                    Err(DpopError::Malformed(_)) | Err(DpopError::WrongType)
                ),
                "{result:?}"
            );
        }
        // A tampered signature on the RFC's proof.
        let mut tampered = RFC_4_1_PROOF.to_owned();
        tampered.replace_range(tampered.len() - 3.., "AAA");
        let result = dpop
            .verify(&ProofCheck {
                headers: &[tampered.as_bytes()],
                ..base
            })
            .await;
        assert!(
            matches!(
                result,
                Err(DpopError::BadSignature) | Err(DpopError::Malformed(_))
            ),
            "{result:?}"
        );
    }
}
