//! The OpenAPI 3.1 document (`GET /openapi.json`), generated from the handlers' own
//! annotations and the response types they serialize, and the Scalar API reference that
//! renders it (`GET /docs`).

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use base64::Engine;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, ClientCredentials, Flow, HttpAuthScheme, HttpBuilder, OAuth2, Scopes,
    SecurityScheme,
};
use utoipa::openapi::{Server, ServerBuilder};
use utoipa::{Modify, OpenApi};

use super::admin;
use super::agents;
use super::error::ApiError;
use super::handlers;
use super::oauth;
use super::register;
use super::schema;
use crate::state::AppState;
use crate::types::{KNOWN_SCOPES, Lifecycle, UserStatus};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "keygate",
        description = "A self-hosted token authorization server for machine clients and AI agents: API keys in, short-lived (optionally DPoP-bound) JWT access tokens out.\n\n**Try it:** 1. create a key (the first start prints one); 2. call `POST /v1/{org}/user/signin_with_api_key` with `x-api-key`, `x-api-key-id` and `x-user-id`; 3. use the returned `id_token` as a Bearer token.\n\n**DPoP** (RFC 9449): every request with a DPoP-bound token needs a fresh proof in the `DPoP` header; make one with `keygate dpop proof --key key.pem --method GET --url <the request URL> --access-token <token>`.",
        license(name = "Apache-2.0"),
    ),
    paths(
        handlers::signin_with_api_key,
        handlers::me,
        oauth::token,
        oauth::device_authorization,
        oauth::revoke,
        oauth::introspect,
        oauth::metadata,
        handlers::jwks,
        handlers::org_jwks,
        admin::list_keys,
        admin::create_key,
        admin::get_key,
        admin::update_key,
        admin::revoke_key,
        admin::rotate_key,
        admin::list_users,
        admin::create_user,
        admin::get_user,
        admin::update_user,
        admin::delete_user,
        admin::list_consents,
        admin::revoke_consents,
        admin::list_sessions,
        admin::revoke_session,
        admin::list_events,
        admin::list_grants,
        admin::create_grant,
        admin::get_grant,
        admin::revoke_grant,
        admin::list_issuers,
        admin::create_issuer,
        admin::get_issuer,
        admin::delete_issuer,
        admin::list_resources,
        admin::create_resource,
        admin::get_resource,
        admin::update_resource,
        admin::delete_resource,
        admin::resource_metadata,
        admin::list_clients,
        admin::create_client,
        admin::get_client,
        admin::delete_client,
        register::register,
        agents::get_settings,
        agents::update_settings,
        agents::approve_key,
        agents::proof,
        agents::identity_jwks,
        agents::register_agent,
        handlers::healthz,
        handlers::readyz,
        super::metrics::main_listener,
    ),
    components(schemas(
        schema::ErrorBody,
        schema::OAuthErrorBody,
        Lifecycle,
        UserStatus
    )),
    modifiers(&Security),
    tags(
        (name = "Sign-in", description = "API key → access token (see the README, Quick start), and who the caller is"),
        (name = "OAuth", description = "RFC 6749 token endpoint, RFC 8628 device authorization, RFC 7009 revocation, RFC 7662 introspection"),
        (name = "Discovery", description = "RFC 8414 metadata and the signing keys"),
        (name = "API keys", description = "Create, list, rotate and revoke API keys"),
        (name = "Users", description = "Users and service accounts of an organization"),
        (name = "Sessions", description = "Signed-in sessions"),
        (name = "Audit log", description = "Who did what, when, from where"),
        (name = "Cross-organization access", description = "Grants that let users of another organization in"),
        (name = "Trusted identity providers", description = "External OpenID providers whose tokens identify users"),
        (name = "Protected resources", description = "APIs and MCP servers the organization issues tokens for (RFC 8707 `resource`, RFC 9728 metadata)"),
        (name = "Clients", description = "Clients of the browser and device flows: registered by admins (RFC 7591 dynamic registration is under OAuth)"),
        (name = "Organization", description = "An organization's settings: direct API-key requests and agent self-registration"),
        (name = "Agent self-registration", description = "Agents that register themselves, where the organization allows it"),
        (name = "Operations", description = "Health and readiness"),
    ),
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let header = |name: &str, description: &str| {
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                name,
                description,
            )))
        };
        components.add_security_scheme(
            "api_key",
            header("x-api-key", "The API key secret, for sign-in."),
        );
        components.add_security_scheme(
            "direct_api_key",
            header(
                "X-API-Key",
                "Direct API-key requests, where the organization turned them on (`PATCH /v1/{org}/settings`): the API key secret itself on every request (`X-API-Key`, `Api-Key` or `Authorization: Bearer ak_…`). A bearer secret with no DPoP: exchanging it for a short-lived token at sign-in is safer.",
            ),
        );
        components.add_security_scheme(
            "api_key_id",
            header("x-api-key-id", "The API key id, for sign-in."),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from sign-in or the token endpoint (`id_token` / `access_token`).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "dpop",
            header(
                "DPoP",
                "DPoP-bound tokens (RFC 9449): send `Authorization: DPoP <token>` and, in this `DPoP` header, a fresh proof JWT signed by the key the token is bound to, for this method and URL, with `ath` = base64url(SHA-256(token)). Make one per request with `keygate dpop proof --key key.pem --method GET --url <URL> --access-token <token>`. A proof is single-use.",
            ),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "Cross-organization access: username `{org}_{user_id}` (the user's own organization and id), password an access token of that organization or a trusted identity provider's token.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "client_basic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "OAuth client authentication (`client_secret_basic`): username the api_key_id, password the api_key.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "oauth2",
            SecurityScheme::OAuth2(OAuth2::with_description(
                [Flow::ClientCredentials(ClientCredentials::new(
                    "/v1/default/oauth/token",
                    Scopes::from_iter(KNOWN_SCOPES.iter().map(|s| (*s, *s))),
                ))],
                "Client credentials: client_id = api_key_id, client_secret = api_key. The token URL is per organization: /v1/{org}/oauth/token.",
            )),
        );
    }
}

/// The document, with the configured public URL as its server.
pub fn document(public_url: &str) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    let server: Server = ServerBuilder::new()
        .url(public_url)
        .description(Some("this keygate"))
        .build();
    doc.servers = Some(vec![server]);
    doc
}

/// The document as this server serves it: its public URL, then the `keygate dpop proxy`
/// of `docs.dpop_proxy_url` when one is configured (checked at start).
pub fn document_for(state: &AppState) -> utoipa::openapi::OpenApi {
    let mut doc = document(&state.public_url);
    if let Ok(Some(proxy)) = state.settings.docs.dpop_proxy() {
        let server: Server = ServerBuilder::new()
            .url(proxy)
            .description(Some(
                "keygate dpop proxy: signs a DPoP proof (RFC 9449) for every request, so DPoP-bound tokens work unchanged (README, \"Postman and Scalar\")",
            ))
            .build();
        doc.servers.get_or_insert_with(Vec::new).push(server);
    }
    doc
}

/// `GET /openapi.json`.
pub async fn openapi_json(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=60"))
        .json(document_for(&state))
}

/// Escapes a value for an HTML attribute.
fn attribute(value: &str) -> String {
    value
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A fresh CSP nonce (128 random bits, base64).
fn nonce() -> String {
    let mut bytes = [0u8; 16];
    // Without randomness the nonce is fixed, which only weakens the page's own inline
    // script allowance; the external script stays pinned by origin and integrity.
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The CSP source that allows the script at `url`: its origin, or `'self'` for a URL on
/// this server (relative) or one that has no origin.
fn script_source(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "https" | "http") => {
            parsed.origin().ascii_serialization()
        }
        _ => "'self'".to_owned(),
    }
}

/// `GET /docs`: the Scalar API reference of `/openapi.json`.
///
/// The script is pinned (a versioned URL with Subresource Integrity, or the local copy
/// at `/docs/scalar.js`) and the page carries a Content-Security-Policy: scripts only from
/// that script's origin plus the page's one nonced inline element, no plugins, no
/// `<base>`, no framing, requests only to this server. Styles may be inline (Scalar
/// injects its own); fonts may come from Scalar's font host (the page falls back to
/// system fonts without it).
pub async fn docs(state: web::Data<AppState>) -> HttpResponse {
    let docs = &state.settings.docs;
    let (script, integrity, source) = if docs.scalar_local_path.is_some() {
        ("/docs/scalar.js".to_owned(), None, "'self'".to_owned())
    } else {
        (
            docs.scalar_script_url.clone(),
            docs.script_integrity(),
            script_source(&docs.scalar_script_url),
        )
    };
    let sri = match integrity {
        Some(integrity) => format!(
            r#" integrity="{}" crossorigin="anonymous""#,
            attribute(integrity)
        ),
        None => String::new(),
    };
    let nonce = nonce();
    let page = format!(
        r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>keygate API reference</title>
</head>
<body>
  <script id="api-reference" data-url="/openapi.json" nonce="{nonce}"></script>
  <script src="{}"{sri}></script>
</body>
</html>
"#,
        attribute(&script)
    );
    let mut connect = script_source(&state.public_url);
    if let Ok(Some(proxy)) = docs.dpop_proxy() {
        // Scalar's "Try it" sends requests to the proxy's server too.
        connect = format!("{connect} {}", script_source(&proxy));
    }
    let csp = format!(
        "default-src 'none'; script-src {source} 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; \
         font-src 'self' data: https://fonts.scalar.com; img-src 'self' data: blob:; \
         connect-src 'self' {connect}; frame-ancestors 'none'; object-src 'none'; \
         base-uri 'none'; form-action 'none'"
    );
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, csp))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .body(page)
}

/// `GET /docs/scalar.js`: the local copy of the Scalar bundle, when one is configured.
pub async fn scalar_js(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let Some(path) = &state.settings.docs.scalar_local_path else {
        return Err(ApiError::not_found("no local Scalar bundle is configured"));
    };
    let bytes = tokio::fs::read(path).await.map_err(|e| {
        tracing::warn!(path = %path.display(), error = %e, "the local Scalar bundle cannot be read");
        ApiError::not_found("the local Scalar bundle cannot be read")
    })?;
    Ok(HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_with_every_endpoint() {
        let doc = serde_json::to_value(document("https://kg.example")).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        assert_eq!(doc["servers"][0]["url"], "https://kg.example");
        let paths = doc["paths"].as_object().unwrap();
        for path in [
            "/v1/{org}/user/signin_with_api_key",
            "/v1/{org}/user/me",
            "/v1/{org}/oauth/token",
            "/v1/{org}/api_keys/{id}/rotate",
            "/v1/{org}/cross_org_grants/{id}",
            "/v1/{org}/trusted_issuers",
            "/healthz",
        ] {
            assert!(paths.contains_key(path), "{path}");
        }
        let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
        for scheme in ["api_key", "api_key_id", "bearer", "dpop", "basic", "oauth2"] {
            assert!(schemes.contains_key(scheme), "{scheme}");
        }
        assert_eq!(schemes["bearer"]["bearerFormat"], "JWT");
    }

    #[test]
    fn the_script_source_is_the_origin_of_the_script() {
        assert_eq!(
            script_source(crate::config::DEFAULT_SCALAR_SCRIPT_URL),
            "https://cdn.jsdelivr.net"
        );
        assert_eq!(
            script_source("http://127.0.0.1:8080/x.js"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(script_source("/static/scalar.js"), "'self'");
        assert_eq!(script_source("data:text/javascript,alert(1)"), "'self'");
        assert_ne!(nonce(), nonce());
    }

    #[test]
    fn attributes_are_escaped() {
        assert_eq!(attribute(r#"x"><script>"#), "x&quot;&gt;&lt;script&gt;");
    }
}
