//! `grant_type=authorization_code` (RFC 6749 §4.1.3, RFC 7636 §4.5–§4.6, RFC 9449 §10): a
//! browser client exchanges the code a person approved for tokens. Checked in this order:
//! 1. `code`, `redirect_uri` and `code_verifier` are present;
//! 2. the client is identified ([`client::identify`]: a confidential client authenticates,
//!    a public one sends its `client_id`);
//! 3. the code exists in this organization (by digest, compared in constant time);
//! 4. a code used before is a reuse: the session its use opened is revoked
//!    (RFC 6749 §4.1.2, §10.5) and the request refused;
//! 5. the code was issued to this client, has not expired, and `redirect_uri` is the
//!    authorization request's (RFC 6749 §4.1.3);
//! 6. the verifier is well formed and its S256 challenge is the code's (constant time);
//! 7. a DPoP proof binds the tokens as at the other grants; when the authorization request
//!    sent `dpop_jkt`, a proof by that key is required (RFC 9449 §10);
//! 8. the resources are still registered, with the approved scopes;
//! 9. the code is used, atomically (one of concurrent requests wins; the others are reuses);
//! 10. the session opens, for the person who approved, with the client as its client.
//!
//! Every failure is `invalid_grant` except malformed requests (`invalid_request`), client
//! authentication (`invalid_client`) and DPoP (`invalid_dpop_proof`, `use_dpop_nonce`).

use entity::{authorization_code, organization};

use super::authorize::{digest_matches, digest_of};
use super::client::{self, Identified};
use super::{OAuthError, OAuthRequest, TokenResponse, pkce, proof, record, token_body};
use crate::audit::AuditEvent;
use crate::auth::session::{self, NewSession, SessionClient, SessionError};
use crate::ids::new_id;
use crate::resources::{self, Target};
use crate::state::AppState;
use crate::storage;
use crate::storage::sessions::Refusal;

pub(super) async fn grant(
    state: &AppState,
    org: &organization::Model,
    req: &OAuthRequest<'_>,
) -> Result<TokenResponse, OAuthError> {
    let mut event = AuditEvent {
        org_id: Some(org.id.clone()),
        action: "token.authorization_code.failed",
        target_type: Some("user"),
        meta: req.meta.clone(),
        ..AuditEvent::default()
    };
    let result = run(state, org, req, &mut event).await;
    record(state, event, "token.authorization_code.succeeded", &result);
    result
}

async fn run(
    state: &AppState,
    org: &organization::Model,
    req: &OAuthRequest<'_>,
    event: &mut AuditEvent,
) -> Result<TokenResponse, OAuthError> {
    let required = |name: &str| {
        req.params
            .get(name)
            .ok_or_else(|| OAuthError::invalid_request(format!("{name} is required")))
    };
    let code = required("code")?;
    let redirect_uri = required("redirect_uri")?;
    let verifier = required("code_verifier")?;

    let ip = req.meta.ip.as_deref();
    let client = match client::identify(state, org, req.authorization, &req.params, ip).await? {
        Identified::Client(client) => client,
        Identified::Key(_) => {
            return Err(OAuthError::invalid_grant(
                "the authorization code was issued to another client",
            ));
        }
    };
    event.actor_key_id = Some(client.client_id.clone());

    let unknown = || OAuthError::invalid_grant("the authorization code is invalid or expired");
    let digest = digest_of(state, code).ok_or_else(unknown)?;
    let stored = storage::authorization_codes::by_digest(&state.storage, &org.id, &digest)
        .await?
        .filter(|c| digest_matches(&c.digest, &digest))
        .ok_or_else(unknown)?;
    event.target_id = Some(stored.user_id.clone());
    let now = state.clock.now();
    if stored.used_at.is_some() {
        return Err(reused(state, org, &stored, req).await);
    }
    if stored.client_id != client.client_id {
        return Err(OAuthError::invalid_grant(
            "the authorization code was issued to another client",
        ));
    }
    if stored.expires_at <= now {
        return Err(unknown());
    }
    if stored.redirect_uri != redirect_uri {
        return Err(OAuthError::invalid_grant(
            "redirect_uri is not the one of the authorization request",
        ));
    }
    if !pkce::is_verifier(verifier) {
        return Err(OAuthError::invalid_request(
            "code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~ (RFC 7636 §4.1)",
        ));
    }
    if !pkce::verifies(verifier, &stored.code_challenge) {
        return Err(OAuthError::invalid_grant(
            "code_verifier does not match the code_challenge",
        ));
    }
    let dpop_jkt = proof(state, org, req, stored.dpop_jkt.as_deref()).await?;
    let target = target(state, org, &stored).await?;

    let session_id = new_id("ses");
    if !storage::authorization_codes::use_once(&state.storage, &stored.id, &session_id, now).await?
    {
        // A concurrent request used it first.
        return Err(reused(state, org, &stored, req).await);
    }
    let opened = session::open_as(
        state,
        session_id,
        NewSession {
            org,
            client: SessionClient::Browser(&client.client_id),
            user_id: stored.user_id.clone(),
            actor: None,
            dpop_jkt,
            scope: target
                .as_ref()
                .map_or_else(|| stored.scope.clone(), |t| t.scope.clone()),
            target,
            ip: req.meta.ip.clone(),
        },
    )
    .await
    .map_err(|e| match e {
        SessionError::Refused(Refusal::UserGone) => OAuthError::invalid_grant(
            "the user who approved this authorization is disabled or deleted",
        ),
        other => other.into(),
    })?;
    // A reuse that raced this request and lost may have found no session to revoke yet: it
    // marked the code, and the session ends now.
    if storage::authorization_codes::was_reused(&state.storage, &stored.id).await? {
        storage::sessions::revoke(&state.storage, &org.id, &opened.session.id, now).await?;
        state.revocations.forget_session(&opened.session.id);
    }
    Ok(TokenResponse {
        body: token_body(
            &opened.access,
            &opened.session.scope,
            opened.refresh_token.expose(),
            &opened.session.id,
        ),
        dpop_nonce: state.dpop_policy(org).nonce,
    })
}

/// The token's target: the approved resources, still registered, with the approved scope
/// (within what they define now); `None`: keygate itself.
async fn target(
    state: &AppState,
    org: &organization::Model,
    code: &authorization_code::Model,
) -> Result<Option<Target>, OAuthError> {
    let Some(uris) = code.resources.as_deref() else {
        return Ok(None);
    };
    let uris: Vec<String> = uris.split_ascii_whitespace().map(str::to_owned).collect();
    Ok(resources::for_approval(state, org, &uris, Some(&code.scope), |_| true).await?)
}

/// A second use of a code (RFC 6749 §4.1.2: "If an authorization code is used more than
/// once, the authorization server MUST deny the request and SHOULD revoke (when possible)
/// all tokens previously issued based on that authorization code"): marks it, revokes the
/// session its first use opened, and returns the error.
async fn reused(
    state: &AppState,
    org: &organization::Model,
    code: &authorization_code::Model,
    req: &OAuthRequest<'_>,
) -> OAuthError {
    let now = state.clock.now();
    let revoked = async {
        let session =
            storage::authorization_codes::mark_reused(&state.storage, &code.id, now).await?;
        if let Some(session_id) = &session {
            storage::sessions::revoke(&state.storage, &org.id, session_id, now).await?;
            state.revocations.forget_session(session_id);
        }
        Ok::<_, storage::StorageError>(session)
    }
    .await;
    let session = match revoked {
        Ok(session) => session,
        Err(err) => return err.into(),
    };
    tracing::warn!(session_id = ?session, "authorization code reused; its session revoked");
    state.audit.record(AuditEvent {
        org_id: Some(org.id.clone()),
        action: "authorization_code.reused",
        success: false,
        reason: Some("invalid_grant".into()),
        actor_user_id: Some(code.user_id.clone()),
        actor_key_id: Some(code.client_id.clone()),
        target_type: Some("session"),
        target_id: session,
        meta: req.meta.clone(),
        act: None,
    });
    OAuthError::invalid_grant("the authorization code was already used; its tokens are revoked")
}
