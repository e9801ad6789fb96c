//! Sessions and the tokens issued for them: opening a session (with its first refresh
//! token), deriving a rotated refresh token's successor, signing access tokens, and who may
//! keep acting for whom. A session's client is an API key or a browser client a person
//! approved (authorization code, device flow). Nothing outlives the API key: not the
//! session, not an access token; a browser client's session lasts `tokens.refresh_ttl`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::{api_key, organization, refresh_token, session};

use super::TokenType;
use super::dpop::{DpopError, ProofCheck};
use crate::ids::new_id;
use crate::keys::refresh_token::PlainRefreshToken;
use crate::limits::{Limited, Subject};
use crate::resources::Target;
use crate::secrets::Pepper;
use crate::state::AppState;
use crate::storage::sessions::Refusal;
use crate::storage::{self, StorageError};
use crate::tokens::{AccessClaims, Actor, Audience, Confirmation, IssueError, MayAct, issue};

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The credential stopped being valid before the session was committed.
    #[error("the session was refused at its commit: {0:?}")]
    Refused(Refusal),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Issue(#[from] IssueError),
    /// The key's issuance limit (README, "Limits") refused this token.
    #[error("too many tokens issued for this API key; retry after {} seconds", .0.retry_after)]
    RateLimited(Limited),
}

/// An access token just signed.
pub struct AccessToken {
    pub token: String,
    pub token_type: TokenType,
    pub expires_at: DateTime<Utc>,
    pub expires_in: i64,
}

/// A session just opened: its first access token and refresh token (the only copy).
pub struct Opened {
    pub session: session::Model,
    pub access: AccessToken,
    pub refresh_token: PlainRefreshToken,
}

/// The client of a session: the token's `client_id`, and what bounds the session's life.
#[derive(Clone, Copy, Debug)]
pub enum SessionClient<'a> {
    /// An API key (sign-in, `client_credentials`, …): nothing of the session outlives it.
    Key(&'a api_key::Model),
    /// A browser client (`cli_…` or a Client ID Metadata Document URL) a person approved:
    /// the session's subject is that person, with no actor.
    Browser(&'a str),
    /// A workload that presented a trusted issuer's token as a JWT bearer grant with no
    /// client authentication (RFC 7523 §3.1): the issuer's id (`tis_…`).
    Workload(&'a str),
}

impl SessionClient<'_> {
    /// The token's `client_id`, stored in `sessions.api_key_id`.
    pub fn id(&self) -> &str {
        match self {
            SessionClient::Key(key) => &key.id,
            SessionClient::Browser(client_id) | SessionClient::Workload(client_id) => client_id,
        }
    }

    /// When the client stops being able to hold tokens, if it ever does (a key's end).
    fn end(&self) -> Option<DateTime<Utc>> {
        match self {
            SessionClient::Key(key) => Some(key_end(key)),
            SessionClient::Browser(_) | SessionClient::Workload(_) => None,
        }
    }
}

/// Whether `session`'s client is an API key (else a browser client).
pub fn is_key_client(session: &session::Model) -> bool {
    is_key_client_id(&session.api_key_id)
}

/// Whether a session's client id (`sessions.api_key_id`) is an API key's.
pub fn is_key_client_id(client_id: &str) -> bool {
    crate::ids::is_id(client_id, "key")
}

/// What a new session is for.
pub struct NewSession<'a> {
    pub org: &'a organization::Model,
    pub client: SessionClient<'a>,
    pub user_id: String,
    pub actor: Option<String>,
    pub dpop_jkt: Option<String>,
    /// Space-separated scopes, already checked against the key's.
    pub scope: String,
    /// The protected resources (RFC 8707) its tokens are for; `None`: keygate itself.
    pub target: Option<Target>,
    /// The client IP of the request, recorded as the key's `last_used_ip`.
    pub ip: Option<String>,
}

/// `api_keys.last_used_at` is written at most this often per key (sampled, not per request).
const LAST_USED_PRECISION: chrono::Duration = chrono::Duration::minutes(1);

fn add(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX)
}

/// When the key stops working: its expiry, or a revocation already scheduled.
pub fn key_end(key: &api_key::Model) -> DateTime<Utc> {
    key.revoked_at
        .map_or(key.expires_at, |r| r.min(key.expires_at))
}

const SUCCESSOR_DOMAIN: &str = "refresh_token_successor";
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The refresh token that replaces `used` when it is rotated:
/// `rt_` + base62(HMAC-SHA256(pepper, domain ‖ used)), 43 characters (256 bits).
///
/// Deterministic, so that within `tokens.refresh_reuse_grace` the successor can be handed
/// out again to a client that lost the response, without ever storing a refresh token in a
/// recoverable form: only who holds `used` (and the server's pepper) can compute it, and the
/// database keeps only its digest, as for every refresh token.
pub fn successor(pepper: &Pepper, used: &PlainRefreshToken) -> Option<PlainRefreshToken> {
    let mac = hex::decode(pepper.digest(SUCCESSOR_DOMAIN, used.expose().as_bytes())).ok()?;
    // Base conversion of the 256-bit big-endian number: 62^43 > 2^256.
    let mut number = mac;
    let mut digits = Vec::with_capacity(43);
    for _ in 0..43 {
        let mut rem = 0u32;
        for byte in &mut number {
            let cur = rem * 256 + u32::from(*byte);
            *byte = u8::try_from(cur / 62).ok()?;
            rem = cur % 62;
        }
        digits.push(BASE62[usize::try_from(rem).ok()?]);
    }
    digits.reverse();
    PlainRefreshToken::parse(&format!("rt_{}", String::from_utf8(digits).ok()?))
}

/// The row of `plain`, a new refresh token of `session`.
pub fn refresh_token_row(
    state: &AppState,
    session: &session::Model,
    plain: &PlainRefreshToken,
    now: DateTime<Utc>,
) -> refresh_token::Model {
    refresh_token::Model {
        id: new_id("rtk"),
        session_id: session.id.clone(),
        digest: plain.digest(&state.pepper).0,
        created_at: now,
        expires_at: session.expires_at,
        used_at: None,
    }
}

/// Stores a new refresh token of `session` and returns its only plain copy.
pub fn new_refresh_token(
    state: &AppState,
    session: &session::Model,
    now: DateTime<Utc>,
) -> (PlainRefreshToken, refresh_token::Model) {
    let plain = PlainRefreshToken::generate();
    let row = refresh_token_row(state, session, &plain, now);
    (plain, row)
}

/// Opens a session once the client's issuance limits ([`admit`]) let it.
pub async fn open(state: &AppState, new: NewSession<'_>) -> Result<Opened, SessionError> {
    admit(state, new.client).await?;
    open_admitted(state, new_id("ses"), new).await
}

/// [`open`] with the session id chosen by the caller (an authorization code records the id
/// of the session it opens before opening it, so that a reuse can revoke it).
pub async fn open_as(
    state: &AppState,
    id: String,
    new: NewSession<'_>,
) -> Result<Opened, SessionError> {
    admit(state, new.client).await?;
    open_admitted(state, id, new).await
}

/// [`open`] for a caller that already passed [`admit`] for this token (the device grant
/// asks before it redeems its one-time code, so a refusal does not spend the code).
pub async fn open_admitted(
    state: &AppState,
    id: String,
    new: NewSession<'_>,
) -> Result<Opened, SessionError> {
    let now = state.clock.now();
    let refresh_end = add(now, state.settings.tokens.refresh_ttl);
    let session_end = new
        .client
        .end()
        .map_or(refresh_end, |end| refresh_end.min(end));
    let session = session_row(id, &new, now, session_end);
    let (refresh_token, row) = new_refresh_token(state, &session, now);
    let touch_key = touches_key(new.client, now);
    commit(state, &session, Some(row), touch_key, new.ip.clone()).await?;
    let target = new.target.as_ref();
    let access = access_token(
        state,
        new.org,
        new.client,
        &session,
        &session.scope,
        target,
        now,
    )
    .await?;
    Ok(Opened {
        session,
        access,
        refresh_token,
    })
}

/// What a session without refresh token adds to its one access token: a token exchange's
/// chain (RFC 8693) or a JWT bearer grant's end (RFC 7523 §2.1).
pub struct Issued {
    /// The session of the subject token (a token exchange).
    pub parent_session_id: Option<String>,
    /// The session of the actor token (a token exchange with `actor_token`).
    pub actor_session_id: Option<String>,
    /// The token's `act`: the whole chain, outermost the current actor.
    pub act: Option<Actor>,
    /// The token's `may_act`.
    pub may_act: Option<String>,
    /// The token ends no later: the subject token's `exp`, or the assertion's.
    pub not_after: DateTime<Utc>,
}

/// Opens a session that has one access token and no refresh token (token exchange, JWT
/// bearer grant), once the client's issuance limits ([`admit`]) let it. `new.actor` is the
/// current actor (`issued.act`'s outermost).
pub async fn open_single(
    state: &AppState,
    new: NewSession<'_>,
    issued: Issued,
) -> Result<(session::Model, AccessToken), SessionError> {
    admit(state, new.client).await?;
    let now = state.clock.now();
    let end = add(now, state.settings.tokens.access_ttl).min(issued.not_after);
    let end = new
        .client
        .end()
        .map_or(end, |client_end| end.min(client_end));
    let mut session = session_row(new_id("ses"), &new, now, end);
    session.parent_session_id = issued.parent_session_id;
    session.actor_session_id = issued.actor_session_id;
    let touch_key = touches_key(new.client, now);
    commit(state, &session, None, touch_key, new.ip.clone()).await?;
    let access = sign(
        state,
        new.org,
        new.client,
        &session,
        &session.scope,
        new.target.as_ref(),
        now,
        issued.act,
        issued.may_act.map(|sub| MayAct { sub }),
    )
    .await?;
    Ok((session, access))
}

/// Whether opening a session records its key's use now (sampled).
fn touches_key(client: SessionClient<'_>, now: DateTime<Utc>) -> bool {
    match client {
        SessionClient::Key(key) => key
            .last_used_at
            .is_none_or(|t| now - t >= LAST_USED_PRECISION),
        SessionClient::Browser(_) | SessionClient::Workload(_) => false,
    }
}

/// Group commit: answered once the batch holding these rows is committed.
async fn commit(
    state: &AppState,
    session: &session::Model,
    refresh: Option<refresh_token::Model>,
    touch_key: bool,
    ip: Option<String>,
) -> Result<(), SessionError> {
    let refused = state
        .sessions
        .open(storage::sessions::Opening {
            session: session.clone(),
            refresh,
            touch_key,
            used_from: ip.filter(|_| touch_key),
        })
        .await?;
    match refused {
        Some(refusal) => Err(SessionError::Refused(refusal)),
        None => Ok(()),
    }
}

fn session_row(
    id: String,
    new: &NewSession<'_>,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> session::Model {
    session::Model {
        id,
        org_id: new.org.id.clone(),
        user_id: new.user_id.clone(),
        api_key_id: new.client.id().to_owned(),
        actor_user_id: new.actor.clone(),
        dpop_jkt: new.dpop_jkt.clone(),
        scope: new.scope.clone(),
        created_at: now,
        expires_at,
        revoked_at: None,
        refreshed_at: None,
        resources: new.target.as_ref().map(Target::stored),
        parent_session_id: None,
        actor_session_id: None,
    }
}

/// The one gate every token issued for an API key passes (sign-in, `client_credentials`,
/// `refresh_token`, the device grant): the key's issuance limits (README, "Limits"),
/// checked before anything is written. Browser clients (a person's approval) and workloads
/// (a trusted issuer's assertion, each single-use) are not limited here.
pub async fn admit(state: &AppState, client: SessionClient<'_>) -> Result<(), SessionError> {
    match client {
        SessionClient::Key(key) => state
            .limits
            .check(Subject::Issuance(key))
            .await
            .map_err(SessionError::RateLimited),
        SessionClient::Browser(_) | SessionClient::Workload(_) => Ok(()),
    }
}

/// Signs an access token of `session` with `scope` (the session's, or narrower), for
/// keygate itself or for `target`'s resources (their `aud`; their `access_ttl` caps it).
/// A refresh calls [`admit`] first, before it rotates anything.
pub async fn access_token(
    state: &AppState,
    org: &organization::Model,
    client: SessionClient<'_>,
    session: &session::Model,
    scope: &str,
    target: Option<&Target>,
    now: DateTime<Utc>,
) -> Result<AccessToken, SessionError> {
    let act = session.actor_user_id.clone().map(Actor::one);
    sign(state, org, client, session, scope, target, now, act, None).await
}

/// Signs an access token of `session` (see [`access_token`]) with `act` and `may_act`.
#[allow(clippy::too_many_arguments)]
async fn sign(
    state: &AppState,
    org: &organization::Model,
    client: SessionClient<'_>,
    session: &session::Model,
    scope: &str,
    target: Option<&Target>,
    now: DateTime<Utc>,
    act: Option<Actor>,
    may_act: Option<MayAct>,
) -> Result<AccessToken, SessionError> {
    let ttl = target
        .and_then(|t| t.access_ttl)
        .map_or(state.settings.tokens.access_ttl, |cap| {
            cap.min(state.settings.tokens.access_ttl)
        });
    let expires_at = add(now, ttl).min(session.expires_at);
    let expires_at = client.end().map_or(expires_at, |end| expires_at.min(end));
    let issuer = state.issuer(&org.slug);
    let claims = AccessClaims {
        aud: match target {
            Some(t) => Audience::of(t.uris.clone()),
            None => state.audience(&issuer).into(),
        },
        iss: issuer,
        sub: session.user_id.clone(),
        exp: expires_at.timestamp(),
        iat: now.timestamp(),
        jti: new_id("at"),
        client_id: client.id().to_owned(),
        scope: scope.to_owned(),
        sid: session.id.clone(),
        org: org.slug.clone(),
        cnf: session.dpop_jkt.clone().map(|jkt| Confirmation { jkt }),
        act,
        may_act,
    };
    let token_type = if claims.cnf.is_some() {
        TokenType::DPoP
    } else {
        TokenType::Bearer
    };
    let token = issue(&*state.signing_keys.current().await, &claims)?;
    Ok(AccessToken {
        token,
        token_type,
        expires_at,
        expires_in: (expires_at - now).num_seconds(),
    })
}

/// The DPoP check of a token-issuing endpoint (sign-in, the token endpoint): the thumbprint
/// of the request's proof, if it has one. A proof is needed when the organization requires
/// DPoP or the session is already bound (`bound`: the key it must be signed with).
pub async fn binding_proof(
    state: &AppState,
    org: &organization::Model,
    headers: &[&[u8]],
    path: &str,
    bound: Option<&str>,
) -> Result<Option<String>, DpopError> {
    let policy = state.dpop_policy(org);
    if headers.is_empty() && bound.is_none() && !policy.required {
        return Ok(None);
    }
    let proof = state
        .dpop
        .verify(&ProofCheck {
            headers,
            method: "POST",
            path,
            access_token: None,
            bound_jkt: bound,
            require_nonce: policy.nonce,
            now: state.clock.now(),
        })
        .await?;
    Ok(Some(proof.jkt))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successors_are_keyed_deterministic_and_well_formed() {
        let p = Pepper::new(&[1u8; 32]);
        let q = Pepper::new(&[2u8; 32]);
        let t = PlainRefreshToken::generate();
        let a = successor(&p, &t).unwrap();
        assert_eq!(a.expose(), successor(&p, &t).unwrap().expose());
        assert_ne!(a.expose(), successor(&q, &t).unwrap().expose());
        assert_ne!(a.expose(), t.expose());
        assert_ne!(
            successor(&p, &a).unwrap().expose(),
            a.expose(),
            "a chain of rotations never repeats a token"
        );
    }

    #[test]
    fn acting_needs_an_admin_role_not_below_the_subject() {
        use crate::types::Role::*;
        assert!(Owner.may_act_for(Owner));
        assert!(Admin.may_act_for(Admin));
        assert!(Admin.may_act_for(Member));
        assert!(Admin.may_act_for(Service));
        assert!(!Admin.may_act_for(Owner));
        assert!(!Member.may_act_for(Member));
        assert!(!Service.may_act_for(Member));
    }
}
