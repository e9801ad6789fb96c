//! Client metadata (RFC 7591 §2) as keygate checks it, once, whoever registers it: an admin
//! (`POST /v1/{org}/clients`, the CLI), a client registering itself (RFC 7591) or a Client
//! ID Metadata Document. Pure: no HTTP, no database.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{ClientAuth, redirect_uri};
use crate::keys::client_jwks::ClientJwks;
use crate::resources::scopes;

/// The longest `client_name`.
pub const MAX_NAME_CHARS: usize = 200;

/// Metadata as checked.
#[derive(Clone, Debug)]
pub struct Metadata {
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub auth: ClientAuth,
    /// The public keys of a `private_key_jwt` client.
    pub jwks: Option<ClientJwks>,
    /// The scopes the client may ask for at most, sorted, space-separated.
    pub scope: Option<String>,
}

/// What was wrong, told apart as RFC 7591 §3.2.2 does.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// `invalid_redirect_uri`.
    #[error("{0}")]
    RedirectUri(String),
    /// `invalid_client_metadata`.
    #[error("{0}")]
    Other(String),
}

/// The metadata a registration asks for, not yet checked.
#[derive(Clone, Debug, Default)]
pub struct Requested {
    /// `client_name`; `None`: a name is made from the first redirect URI.
    pub name: Option<String>,
    pub redirect_uris: Vec<String>,
    /// `token_endpoint_auth_method`, as sent.
    pub auth: String,
    /// `jwks`, as sent.
    pub jwks: Option<Value>,
    /// Whether `jwks_uri` was sent (keygate takes the keys inline only).
    pub jwks_uri: bool,
    /// `scope`, space-separated, as sent.
    pub scope: Option<String>,
}

/// Checks `requested`: a name of 1 to [`MAX_NAME_CHARS`] characters without control
/// characters; redirect URIs per [`redirect_uri::check_all`]; a known authentication
/// method; `jwks` (public keys only, as for key-pair API keys) with `private_key_jwt` and
/// only then; `scope` RFC 6749 §3.3 scope tokens.
pub fn check(requested: Requested) -> Result<Metadata, MetadataError> {
    let other = |m: String| MetadataError::Other(m);
    redirect_uri::check_all(&requested.redirect_uris).map_err(MetadataError::RedirectUri)?;
    let name = match requested.name {
        Some(name) => check_name(&name).map_err(other)?,
        None => default_name(&requested.redirect_uris),
    };
    let auth = ClientAuth::parse(&requested.auth).ok_or_else(|| {
        other(format!(
            "`token_endpoint_auth_method` must be none, client_secret_basic or private_key_jwt, \
             not `{}`",
            requested.auth.chars().take(40).collect::<String>()
        ))
    })?;
    if requested.jwks_uri {
        return Err(other(
            "`jwks_uri` is not supported: register the public keys inline as `jwks`".into(),
        ));
    }
    let jwks = match (auth, requested.jwks) {
        (ClientAuth::PrivateKeyJwt, Some(jwks)) => Some(
            ClientJwks::parse(&jwks)
                .map_err(|e| other(e.0.replacen("`public_jwks`", "`jwks`", 1)))?,
        ),
        (ClientAuth::PrivateKeyJwt, None) => {
            return Err(other(
                "a private_key_jwt client must register its public keys as `jwks`".into(),
            ));
        }
        (_, Some(_)) => {
            return Err(other(
                "`jwks` is only for token_endpoint_auth_method private_key_jwt".into(),
            ));
        }
        (_, None) => None,
    };
    let scope = requested
        .scope
        .as_deref()
        .map(check_scope)
        .transpose()
        .map_err(other)?;
    Ok(Metadata {
        name,
        redirect_uris: requested.redirect_uris,
        auth,
        jwks,
        scope,
    })
}

fn check_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(format!(
            "`client_name` must be 1 to {MAX_NAME_CHARS} characters, without control characters"
        ));
    }
    Ok(name.to_owned())
}

/// A client that gave no name is shown by where it sends people: the host of its first
/// redirect URI (a native app's private-use scheme).
fn default_name(redirect_uris: &[String]) -> String {
    redirect_uris
        .first()
        .and_then(|u| url::Url::parse(u).ok())
        .map(|u| match u.host_str() {
            Some(host) if matches!(u.scheme(), "http" | "https") => host.to_owned(),
            _ => u.scheme().to_owned(),
        })
        .unwrap_or_else(|| "unnamed client".to_owned())
}

/// A `scope` value: scope tokens (RFC 6749 §3.3) separated by spaces, returned sorted and
/// distinct. Empty is refused (leave `scope` out instead).
pub fn check_scope(scope: &str) -> Result<String, String> {
    let names: BTreeSet<String> = scopes::parse(scope.split(' ').filter(|s| !s.is_empty()))
        .map_err(|e| format!("`scope`: {e}"))?;
    if names.is_empty() {
        return Err("`scope` names no scope: leave it out instead".into());
    }
    Ok(scopes::render(&names))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn requested() -> Requested {
        Requested {
            name: Some("Agent".into()),
            redirect_uris: vec!["https://agent.example/cb".into()],
            auth: "none".into(),
            ..Requested::default()
        }
    }

    const JWK: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"a","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;

    #[test]
    fn good_metadata_is_kept() {
        let m = check(Requested {
            scope: Some("files:read  mcp:tools files:read".into()),
            ..requested()
        })
        .unwrap();
        assert_eq!(m.auth, ClientAuth::None);
        assert_eq!(m.scope.as_deref(), Some("files:read mcp:tools"));
        let jwt = check(Requested {
            auth: "private_key_jwt".into(),
            jwks: Some(serde_json::from_str(JWK).unwrap()),
            ..requested()
        })
        .unwrap();
        assert!(jwt.jwks.is_some());
    }

    #[test]
    fn each_rule_refuses_its_violation() {
        let jwks: Value = serde_json::from_str(JWK).unwrap();
        let private = json!({"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}]});
        let cases: Vec<(&str, Requested, bool)> = vec![
            (
                "no redirect URI",
                Requested {
                    redirect_uris: vec![],
                    ..requested()
                },
                true,
            ),
            (
                "http redirect",
                Requested {
                    redirect_uris: vec!["http://agent.example/cb".into()],
                    ..requested()
                },
                true,
            ),
            (
                "empty name",
                Requested {
                    name: Some("  ".into()),
                    ..requested()
                },
                false,
            ),
            (
                "long name",
                Requested {
                    name: Some("x".repeat(201)),
                    ..requested()
                },
                false,
            ),
            (
                "control in name",
                Requested {
                    name: Some("a\u{7}b".into()),
                    ..requested()
                },
                false,
            ),
            (
                "unknown method",
                Requested {
                    auth: "client_secret_jwt".into(),
                    ..requested()
                },
                false,
            ),
            (
                "secret post",
                Requested {
                    auth: "client_secret_post".into(),
                    ..requested()
                },
                false,
            ),
            (
                "jwt without keys",
                Requested {
                    auth: "private_key_jwt".into(),
                    ..requested()
                },
                false,
            ),
            (
                "keys without jwt",
                Requested {
                    jwks: Some(jwks.clone()),
                    ..requested()
                },
                false,
            ),
            (
                "private key",
                Requested {
                    auth: "private_key_jwt".into(),
                    jwks: Some(private),
                    ..requested()
                },
                false,
            ),
            (
                "jwks_uri",
                Requested {
                    jwks_uri: true,
                    ..requested()
                },
                false,
            ),
            (
                "bad scope",
                Requested {
                    scope: Some("a\"b".into()),
                    ..requested()
                },
                false,
            ),
            (
                "empty scope",
                Requested {
                    scope: Some(" ".into()),
                    ..requested()
                },
                false,
            ),
        ];
        for (name, case, redirect) in cases {
            match check(case) {
                Err(MetadataError::RedirectUri(_)) if redirect => {}
                Err(MetadataError::Other(_)) if !redirect => {}
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_nameless_client_is_named_by_its_redirect_uri() {
        for (uri, name) in [
            ("https://agent.example/cb", "agent.example"),
            ("http://127.0.0.1:9/cb", "127.0.0.1"),
            ("com.example.app:/cb", "com.example.app"),
        ] {
            let m = check(Requested {
                name: None,
                redirect_uris: vec![uri.into()],
                ..requested()
            })
            .unwrap();
            assert_eq!(m.name, name);
        }
    }
}
