//! Client authentication with a signed JWT, `private_key_jwt` (RFC 7523 §2.2 and §3, RFC 7521
//! §4.2): a key-pair client (an API key registered with `public_jwks`, which has no secret,
//! or a browser-flow client registered with `private_key_jwt` and its `jwks`) proves itself
//! with a short-lived assertion signed by one of its keys. [`authenticate`] is the one entry
//! point, for both kinds; the token, revocation and introspection endpoints reach it through
//! `oauth::client`, browser clients through `clients::authenticate`. No HTTP types here.
//!
//! [`UnverifiedAssertion`] is the only place that decodes an assertion; nothing in it is
//! trusted before its signature is checked, and revocation or expiry of the key is reported
//! only once it has been.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use entity::{api_key, client, organization};
use serde::Deserialize;
use serde_json::Value;

use super::credential::KeyHolder;
use super::dpop::replay_key;
use crate::ids::is_id;
use crate::keys::client_jwks::{AssertionAlg, ClientJwks, KeySelection};
use crate::state::AppState;
use crate::storage::{self, StorageError};

/// RFC 7523 §2.2: the `client_assertion_type` of a JWT assertion.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// An assertion larger than this is refused before it is decoded.
pub const MAX_ASSERTION_BYTES: usize = 8192;

/// The furthest ahead an assertion's `exp` may be (plus the leeway): an assertion is made
/// for one request, and its `jti` is remembered until it expires.
pub const MAX_LIFETIME_SECS: i64 = 300;

/// The `typ` header values accepted (absent is accepted too): plain JWTs, and the explicit
/// type draft-ietf-oauth-rfc7523bis gives client assertions.
const ASSERTION_TYPS: &[&str] = &[
    "JWT",
    "client-authentication+jwt",
    "application/client-authentication+jwt",
];

/// The longest `jti` accepted.
const MAX_JTI_CHARS: usize = 256;

/// Why an assertion was refused. The message is the `error_description` of the 401
/// `invalid_client`: it names the failed check and never echoes the assertion.
#[derive(Debug, thiserror::Error)]
pub enum AssertionError {
    #[error("the client assertion exceeds {MAX_ASSERTION_BYTES} bytes")]
    TooLarge,
    #[error("the client assertion is not a compact JWS: {0}")]
    Malformed(&'static str),
    #[error("the client assertion's typ must be JWT or client-authentication+jwt when present")]
    WrongType,
    #[error("the client assertion lacks the claim `{0}` or it has the wrong type")]
    MissingClaim(&'static str),
    #[error("the client assertion's iss and sub must both be the client id")]
    IssNotSub,
    #[error("client_id does not match the client assertion's sub")]
    ClientIdMismatch,
    #[error("too many failed client authentications; retry after {retry_after} seconds")]
    Throttled { retry_after: u64 },
    #[error("the client assertion's sub names no key-pair client of this organization")]
    UnknownClient,
    #[error(
        "the client assertion's alg must be one of ES256, ES384, ES512, EdDSA, RS256, RS384, \
         RS512, PS256, PS384, PS512 (`none` and HMAC are refused)"
    )]
    ForbiddenAlg,
    #[error("the client assertion's kid names none of the client's registered keys")]
    UnknownKid,
    #[error("the client assertion has no kid, and the client has several keys: name one")]
    KidRequired,
    #[error("the client assertion's alg {alg} does not match the selected key ({expected})")]
    AlgMismatch { alg: &'static str, expected: String },
    #[error("the client assertion's aud is neither the issuer nor an OAuth endpoint of it")]
    WrongAudience,
    #[error("the client assertion has expired (exp)")]
    Expired,
    #[error("the client assertion's exp is more than {MAX_LIFETIME_SECS} seconds ahead")]
    TooLong,
    #[error("the client assertion's iat is in the future")]
    IssuedInFuture,
    #[error("the client assertion's nbf is in the future")]
    NotYetValid,
    #[error("the client assertion's signature does not verify with the client's key")]
    BadSignature,
    #[error("the client's API key has been revoked")]
    Revoked,
    #[error("the client's API key has expired")]
    KeyExpired,
    #[error("the client's user is disabled")]
    OwnerDisabled,
    #[error("the client assertion has been used before (its jti)")]
    Replayed,
    /// Maps to 503 `temporarily_unavailable` with `Retry-After`, as for DPoP proofs.
    #[error("the replay store cannot record this client assertion now; retry later")]
    ReplayStoreUnavailable,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The client an assertion authenticated.
pub enum Asserted {
    /// A key-pair API key (`key_…`) and its owner.
    Key(Box<KeyHolder>),
    /// A browser-flow client registered with `private_key_jwt` (`cli_…`).
    Client(Box<client::Model>),
}

/// The client an assertion's `sub` names, with its registered keys.
enum Subject {
    Key(api_key::Model),
    Client(client::Model),
}

impl Subject {
    fn id(&self) -> &str {
        match self {
            Subject::Key(key) => &key.id,
            Subject::Client(client) => &client.id,
        }
    }

    fn stored_jwks(&self) -> Option<&str> {
        match self {
            Subject::Key(key) => key.public_jwks.as_deref(),
            Subject::Client(client) => client
                .public_jwks
                .as_deref()
                .filter(|_| client.auth_method == "private_key_jwt"),
        }
    }
}

/// Whether `id` names a client an assertion may authenticate: an API key or a registered
/// browser client (the throttle tracks those ids).
fn client_shaped(id: &str) -> bool {
    is_id(id, "key") || is_id(id, "cli")
}

/// The header members read. A duplicated member is a parse error.
#[derive(Deserialize)]
struct RawHeader {
    typ: Option<Value>,
    alg: Option<Value>,
    kid: Option<Value>,
    crit: Option<Value>,
}

/// The claims read (RFC 7523 §3); any other claim is ignored.
#[derive(Deserialize)]
struct RawClaims {
    iss: Option<Value>,
    sub: Option<Value>,
    aud: Option<Value>,
    exp: Option<Value>,
    nbf: Option<Value>,
    iat: Option<Value>,
    jti: Option<Value>,
}

/// An assertion before its signature is checked.
struct UnverifiedAssertion<'a> {
    signing_input: &'a [u8],
    signature: Vec<u8>,
    alg: Option<Value>,
    kid: Option<Value>,
    sub: String,
    iss: String,
    claims: RawClaims,
}

impl<'a> UnverifiedAssertion<'a> {
    fn parse(raw: &'a str) -> Result<Self, AssertionError> {
        if raw.len() > MAX_ASSERTION_BYTES {
            return Err(AssertionError::TooLarge);
        }
        let mut parts = raw.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AssertionError::Malformed("it does not have three parts"));
        };
        if header.is_empty() || payload.is_empty() || signature.is_empty() {
            return Err(AssertionError::Malformed("a part is empty"));
        }
        let signing_input = raw
            .as_bytes()
            .get(..header.len() + 1 + payload.len())
            .unwrap_or_default();
        let b64 = |part: &str, what| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| AssertionError::Malformed(what))
        };
        let header: RawHeader =
            serde_json::from_slice(&b64(header, "the header is not base64url")?)
                .map_err(|_| AssertionError::Malformed("the header is not a JSON object"))?;
        if header.crit.is_some() {
            return Err(AssertionError::Malformed(
                "the header has crit, which is not understood",
            ));
        }
        // Explicit typing (RFC 8725 §3.11): a JWT made for something else (a DPoP proof, an
        // access token) is never taken for an assertion, even when the same key signed it.
        match &header.typ {
            None => {}
            Some(Value::String(t)) if ASSERTION_TYPS.iter().any(|a| a.eq_ignore_ascii_case(t)) => {}
            Some(_) => return Err(AssertionError::WrongType),
        }
        let claims: RawClaims =
            serde_json::from_slice(&b64(payload, "the payload is not base64url")?)
                .map_err(|_| AssertionError::Malformed("the payload is not a JSON object"))?;
        let signature = b64(signature, "the signature is not base64url")?;
        let string = |v: &Option<Value>, name| match v {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            _ => Err(AssertionError::MissingClaim(name)),
        };
        Ok(Self {
            signing_input,
            signature,
            alg: header.alg,
            kid: header.kid,
            iss: string(&claims.iss, "iss")?,
            sub: string(&claims.sub, "sub")?,
            claims,
        })
    }
}

/// The `sub` an assertion claims, NOT verified: only to route the assertion to the client
/// it names when no `client_id` came with it; [`authenticate`] then verifies everything,
/// this claim included.
pub fn unverified_subject(assertion: &str) -> Option<String> {
    UnverifiedAssertion::parse(assertion).ok().map(|a| a.sub)
}

/// A NumericDate (RFC 7519 §2), whole seconds (a fractional one is truncated).
fn numeric_date(value: &Option<Value>) -> Option<Option<i64>> {
    match value {
        None => Some(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .map(Some),
        Some(_) => None,
    }
}

/// The `aud` values that identify this organization's authorization server: the issuer
/// (RFC 7523 §3 item 3) and the URLs of its token, revocation and introspection endpoints.
fn audiences(issuer: &str) -> [String; 4] {
    [
        issuer.to_owned(),
        format!("{issuer}/oauth/token"),
        format!("{issuer}/oauth/revoke"),
        format!("{issuer}/oauth/introspect"),
    ]
}

/// The replay-store entry of an assertion: a namespace of its own (a DPoP proof's entry
/// hashes a base64url thumbprint, which never contains `:`), per client.
fn assertion_replay_key(client_id: &str, jti: &str) -> [u8; 32] {
    replay_key(&format!("client-assertion:{client_id}"), jti)
}

impl AssertionError {
    /// Whether the failure counts toward the brute-force throttle: every refusal of a
    /// well-formed assertion, not malformed input, nor the server's own trouble.
    fn counts(&self) -> bool {
        !matches!(
            self,
            AssertionError::TooLarge
                | AssertionError::Malformed(_)
                | AssertionError::WrongType
                | AssertionError::MissingClaim("iss" | "sub")
                | AssertionError::Throttled { .. }
                | AssertionError::ReplayStoreUnavailable
                | AssertionError::Storage(_)
        )
    }
}

/// Authenticates a client by its assertion at `org`, from client IP `ip`; `client_id` is
/// the form's, when sent. Checks, in order (each refusal names its check):
///
/// 1. at most [`MAX_ASSERTION_BYTES`]; a compact JWS with a JSON header (no `crit`; `typ`,
///    when present, `JWT` or `client-authentication+jwt`) and JSON claims; `iss` and `sub`
///    present;
/// 2. the brute-force throttle of the `sub` key id and of `ip` (every later refusal counts
///    toward it);
/// 3. `iss` = `sub` (RFC 7523 §3 items 1–2), and `client_id`, when sent, equals them
///    (RFC 7521 §4.2);
/// 4. `sub` is a key-pair client of `org`: an API key registered with `public_jwks`, or a
///    browser client registered with `private_key_jwt`;
/// 5. `alg` is a public-key algorithm (never `none` or HMAC); `kid` selects one of the
///    client's keys (required when it has several), and `alg` is one that key takes;
/// 6. `aud` is, or contains, the issuer or one of its OAuth endpoint URLs (item 3);
/// 7. `exp` present, not past (with `tokens.leeway`) and at most [`MAX_LIFETIME_SECS`]
///    (plus the leeway) ahead (item 4); `nbf` and `iat`, when present, not in the future
///    beyond the leeway (items 5–6); `jti` present (item 7);
/// 8. the signature verifies with the selected key (item 9);
/// 9. for an API key: the key is neither revoked nor expired, and its owner is enabled;
/// 10. `jti` is used for the first time by this client: recorded in the DPoP replay store
///     until the assertion could no longer be accepted (on any node: `dpop.clock_skew`),
///     last, so a bad assertion never fills the store. A store that cannot record it
///     refuses the assertion (fail closed).
pub async fn authenticate(
    state: &AppState,
    org: &organization::Model,
    assertion: &str,
    client_id: Option<&str>,
    ip: Option<&str>,
) -> Result<Asserted, AssertionError> {
    // 1.
    let unverified = UnverifiedAssertion::parse(assertion)?;
    let key_id = Some(unverified.sub.as_str()).filter(|id| client_shaped(id));
    // 2.
    state
        .throttle
        .check(key_id, ip)
        .map_err(|t| AssertionError::Throttled {
            retry_after: t.retry_after,
        })?;
    let result = verify(state, org, &unverified, client_id).await;
    if let Err(err) = &result
        && err.counts()
    {
        state.throttle.fail(key_id, ip);
    }
    result
}

async fn verify(
    state: &AppState,
    org: &organization::Model,
    assertion: &UnverifiedAssertion<'_>,
    client_id: Option<&str>,
) -> Result<Asserted, AssertionError> {
    // 3.
    if assertion.iss != assertion.sub {
        return Err(AssertionError::IssNotSub);
    }
    if client_id.is_some_and(|id| id != assertion.sub) {
        return Err(AssertionError::ClientIdMismatch);
    }
    // 4.
    let subject = if is_id(&assertion.sub, "cli") {
        storage::clients::get(&state.storage, &org.id, &assertion.sub)
            .await?
            .map(Subject::Client)
    } else {
        storage::api_keys::get(&state.storage, &org.id, &assertion.sub)
            .await?
            .map(Subject::Key)
    }
    .ok_or(AssertionError::UnknownClient)?;
    let jwks = subject
        .stored_jwks()
        .map(ClientJwks::from_stored)
        .transpose()
        .map_err(|e| {
            tracing::error!(client_id = %subject.id(), error = %e, "a stored public JWK Set does not parse");
            AssertionError::UnknownClient
        })?
        .ok_or(AssertionError::UnknownClient)?;
    // 5.
    let alg = match &assertion.alg {
        Some(Value::String(a)) => AssertionAlg::parse(a).ok_or(AssertionError::ForbiddenAlg)?,
        _ => return Err(AssertionError::ForbiddenAlg),
    };
    let kid = match &assertion.kid {
        None => None,
        Some(Value::String(k)) => Some(k.as_str()),
        Some(_) => return Err(AssertionError::UnknownKid),
    };
    let public_key = jwks.select(kid).map_err(|e| match e {
        KeySelection::UnknownKid => AssertionError::UnknownKid,
        KeySelection::KidRequired => AssertionError::KidRequired,
    })?;
    if !public_key.algs().contains(&alg) {
        let expected: Vec<_> = public_key.algs().iter().map(|a| a.as_str()).collect();
        return Err(AssertionError::AlgMismatch {
            alg: alg.as_str(),
            expected: expected.join(", "),
        });
    }
    // 6.
    let accepted = audiences(&state.issuer(&org.slug));
    let names_us = |v: &Value| v.as_str().is_some_and(|a| accepted.iter().any(|x| x == a));
    let aud_ok = match &assertion.claims.aud {
        Some(Value::String(_)) => assertion.claims.aud.as_ref().is_some_and(names_us),
        Some(Value::Array(values)) => values.iter().any(names_us),
        _ => return Err(AssertionError::MissingClaim("aud")),
    };
    if !aud_ok {
        return Err(AssertionError::WrongAudience);
    }
    // 7.
    let now_at = state.clock.now();
    let now = now_at.timestamp();
    let leeway = i64::try_from(state.settings.tokens.leeway.as_secs()).unwrap_or(i64::MAX);
    let exp = numeric_date(&assertion.claims.exp)
        .flatten()
        .ok_or(AssertionError::MissingClaim("exp"))?;
    if exp.saturating_add(leeway) <= now {
        return Err(AssertionError::Expired);
    }
    if exp > now.saturating_add(MAX_LIFETIME_SECS).saturating_add(leeway) {
        return Err(AssertionError::TooLong);
    }
    let nbf = numeric_date(&assertion.claims.nbf).ok_or(AssertionError::MissingClaim("nbf"))?;
    if nbf.is_some_and(|nbf| nbf.saturating_sub(leeway) > now) {
        return Err(AssertionError::NotYetValid);
    }
    let iat = numeric_date(&assertion.claims.iat).ok_or(AssertionError::MissingClaim("iat"))?;
    if iat.is_some_and(|iat| iat.saturating_sub(leeway) > now) {
        return Err(AssertionError::IssuedInFuture);
    }
    let jti = match &assertion.claims.jti {
        Some(Value::String(j)) if !j.is_empty() && j.chars().count() <= MAX_JTI_CHARS => j,
        _ => return Err(AssertionError::MissingClaim("jti")),
    };
    // 8.
    if !public_key.verifies(alg, assertion.signing_input, &assertion.signature) {
        return Err(AssertionError::BadSignature);
    }
    // 9.
    let asserted = match subject {
        Subject::Key(key) => {
            if key.revoked_at.is_some_and(|t| t <= now_at) {
                return Err(AssertionError::Revoked);
            }
            if key.expires_at <= now_at {
                return Err(AssertionError::KeyExpired);
            }
            let owner = storage::users::get(&state.storage, &org.id, &key.user_id)
                .await?
                .filter(|u| !u.disabled && u.deleted_at.is_none())
                .ok_or(AssertionError::OwnerDisabled)?;
            Asserted::Key(Box::new(KeyHolder { key, owner }))
        }
        Subject::Client(client) => Asserted::Client(Box::new(client)),
    };
    let replay_id = match &asserted {
        Asserted::Key(holder) => holder.key.id.as_str(),
        Asserted::Client(client) => client.id.as_str(),
    };
    // 10. Remembered while `exp` (with the leeway) still admits it, on any node, plus 1 s
    // because NumericDates are whole seconds.
    let left = u64::try_from(exp.saturating_add(leeway).saturating_sub(now)).unwrap_or(0);
    let ttl = Duration::from_secs(left)
        .saturating_add(state.settings.dpop.clock_skew)
        .saturating_add(Duration::from_secs(1));
    let fresh = state
        .dpop
        .remember(assertion_replay_key(replay_id, jti), ttl)
        .await
        .map_err(|err| {
            tracing::warn!(error = %err, "client assertion refused: the replay store cannot record it");
            AssertionError::ReplayStoreUnavailable
        })?;
    if !fresh {
        return Err(AssertionError::Replayed);
    }
    Ok(asserted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing_refuses_what_is_not_a_jws_and_reads_the_signing_input() {
        for bad in [
            "", "a.b", "a.b.c.d", "..", "e30.e30.", "!.e30.AA", "e30.!.AA",
        ] {
            assert!(UnverifiedAssertion::parse(bad).is_err(), "{bad:?}");
        }
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256"}"#);
        let claims = URL_SAFE_NO_PAD.encode(r#"{"iss":"key_a","sub":"key_a"}"#);
        let raw = format!("{header}.{claims}.AAAA");
        let parsed = UnverifiedAssertion::parse(&raw).unwrap();
        assert_eq!(
            parsed.signing_input,
            format!("{header}.{claims}").as_bytes()
        );
        assert_eq!(parsed.signature, vec![0, 0, 0]);
        let no_sub = format!("{header}.{}.AAAA", URL_SAFE_NO_PAD.encode(r#"{"iss":"k"}"#));
        assert!(matches!(
            UnverifiedAssertion::parse(&no_sub),
            Err(AssertionError::MissingClaim("sub"))
        ));
        let duplicate = format!(
            "{header}.{}.AAAA",
            URL_SAFE_NO_PAD.encode(r#"{"iss":"k","sub":"k","sub":"j"}"#)
        );
        assert!(UnverifiedAssertion::parse(&duplicate).is_err());
        let big = "a".repeat(MAX_ASSERTION_BYTES + 1);
        assert!(matches!(
            UnverifiedAssertion::parse(&big),
            Err(AssertionError::TooLarge)
        ));
    }

    #[test]
    fn replay_keys_never_meet_dpop_keys() {
        assert_ne!(
            assertion_replay_key("key_a", "j"),
            replay_key("key_a", "j"),
            "a different namespace"
        );
        assert_ne!(
            assertion_replay_key("key_a", "j"),
            assertion_replay_key("key_b", "j")
        );
    }
}
