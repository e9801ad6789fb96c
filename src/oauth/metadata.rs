//! RFC 8414 authorization server metadata of an organization. `issuer` is exactly the
//! `iss` of its tokens; every endpoint named here exists.

use serde_json::{Value, json};

use crate::auth::dpop::ALGS;
use crate::keys::client_jwks::AssertionAlg;
use crate::state::AppState;
use crate::types::KNOWN_SCOPES;

pub fn document(state: &AppState, org_slug: &str) -> Value {
    let issuer = state.issuer(org_slug);
    let auth_methods = [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    ];
    // RFC 8414 §2: the algorithms of `private_key_jwt` assertions; never `none`.
    let assertion_algs: Vec<&str> = AssertionAlg::ALL.iter().map(|a| a.as_str()).collect();
    json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}/oauth/token"),
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "revocation_endpoint": format!("{issuer}/oauth/revoke"),
        "introspection_endpoint": format!("{issuer}/oauth/introspect"),
        "device_authorization_endpoint": format!("{issuer}/oauth/device_authorization"),
        "grant_types_supported": ["client_credentials", "refresh_token", super::device::GRANT_TYPE],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": auth_methods,
        "token_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "dpop_signing_alg_values_supported": ALGS.split(' ').collect::<Vec<_>>(),
        "scopes_supported": KNOWN_SCOPES,
        "service_documentation": format!("{}/docs", state.public_url),
    })
}
