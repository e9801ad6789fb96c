//! RFC 8414 authorization server metadata of an organization. `issuer` is exactly the
//! `iss` of its tokens; every endpoint named here exists (`registration_endpoint` only
//! while the organization has RFC 7591 dynamic registration on).

use entity::organization;
use serde_json::{Value, json};

use crate::auth::dpop::ALGS;
use crate::keys::client_jwks::AssertionAlg;
use crate::state::AppState;
use crate::types::KNOWN_SCOPES;

pub fn document(state: &AppState, org: &organization::Model) -> Value {
    let issuer = state.issuer(&org.slug);
    let auth_methods = [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    ];
    // Public browser clients name themselves with `client_id` alone (RFC 8414 §2 `none`) at
    // the token endpoint (authorization code, refresh) and at revocation (RFC 7009 §2.1).
    let public_too = [auth_methods[0], auth_methods[1], auth_methods[2], "none"];
    // RFC 8414 §2: the algorithms of `private_key_jwt` assertions; never `none`.
    let assertion_algs: Vec<&str> = AssertionAlg::ALL.iter().map(|a| a.as_str()).collect();
    let mut document = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/oauth/authorize"),
        "token_endpoint": format!("{issuer}/oauth/token"),
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "revocation_endpoint": format!("{issuer}/oauth/revoke"),
        "introspection_endpoint": format!("{issuer}/oauth/introspect"),
        "device_authorization_endpoint": format!("{issuer}/oauth/device_authorization"),
        "grant_types_supported": [
            "client_credentials",
            "refresh_token",
            "authorization_code",
            super::device::GRANT_TYPE,
            super::token_exchange::GRANT_TYPE,
            super::jwt_bearer::GRANT_TYPE,
        ],
        // The authorization endpoint (RFC 6749 §4.1, RFC 7636, RFC 9207).
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": [crate::oauth::pkce::S256],
        "authorization_response_iss_parameter_supported": true,
        "token_endpoint_auth_methods_supported": public_too,
        "token_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "revocation_endpoint_auth_methods_supported": public_too,
        "revocation_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "dpop_signing_alg_values_supported": ALGS.split(' ').collect::<Vec<_>>(),
        "scopes_supported": KNOWN_SCOPES,
        "service_documentation": format!("{}/docs", state.public_url),
        // draft-ietf-oauth-client-id-metadata-document §5: a `client_id` may be the URL of
        // the client's metadata document.
        "client_id_metadata_document_supported": true,
    });
    // RFC 8414 §2, RFC 7591 §3: only while the organization has dynamic registration on.
    if org.dynamic_registration == Some(true) {
        document["registration_endpoint"] = json!(format!("{issuer}/oauth/register"));
    }
    document
}
