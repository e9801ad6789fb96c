//! The authorization request's parameters and the checks that need nobody signed in, and
//! where its answers go (the client's redirect URI, with `state` and `iss`).

use std::collections::BTreeMap;

use super::Outcome;
use crate::oauth::pkce;
use crate::resources;
use crate::storage::StorageError;

/// Most scope names one request may carry.
const MAX_SCOPES: usize = 100;

/// An error for the client's redirect URI (RFC 6749 §4.1.2.1).
pub(super) struct Denied {
    pub(super) code: &'static str,
    pub(super) description: String,
}

impl Denied {
    pub(super) fn new(code: &'static str, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
        }
    }

    pub(super) fn server(err: &StorageError) -> Self {
        tracing::error!(error = %err, "internal error at the authorization endpoint");
        Self::new("server_error", "an internal error occurred")
    }
}

/// The decoded parameters: each name's values, empty values dropped (RFC 6749 §3.1).
pub(super) struct Params(BTreeMap<String, Vec<String>>);

/// Parameters that may repeat (RFC 8707's `resource`).
const REPEATABLE: &[&str] = &["resource"];

/// The consent form's own fields, not the request's.
const FORM_FIELDS: &[&str] = &["csrf", "decision"];

impl Params {
    pub(super) fn new(pairs: &[(String, String)]) -> Self {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, value) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
            map.entry(name.clone()).or_default().push(value.clone());
        }
        Self(map)
    }

    /// The value of `name`; `Err` when it appears more than once.
    pub(super) fn one(&self, name: &str) -> Result<Option<&str>, ()> {
        match self.0.get(name).map(Vec::as_slice) {
            None | Some([]) => Ok(None),
            Some([one]) => Ok(Some(one)),
            Some(_) => Err(()),
        }
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.one(name).ok().flatten()
    }

    pub(super) fn all(&self, name: &str) -> &[String] {
        self.0.get(name).map_or(&[], Vec::as_slice)
    }

    /// A non-repeatable parameter that appears more than once.
    pub(super) fn repeated(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|(name, values)| values.len() > 1 && !REPEATABLE.contains(&name.as_str()))
            .map(|(name, _)| name.as_str())
    }

    /// The request's own parameters (the consent form's fields left out), in a stable order.
    pub(super) fn request(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .filter(|(name, _)| !FORM_FIELDS.contains(&name.as_str()))
            .flat_map(|(name, values)| values.iter().map(move |v| (name.clone(), v.clone())))
            .collect()
    }
}

/// Where the answers go: the client's redirect URI, with `state` and `iss` (RFC 9207 §2).
pub(super) struct Back<'a> {
    pub(super) redirect_uri: &'a str,
    pub(super) state: Option<&'a str>,
    pub(super) iss: String,
}

impl Back<'_> {
    pub(super) fn with(&self, pairs: &[(&str, &str)]) -> Outcome {
        let mut pairs = pairs.to_vec();
        if let Some(state) = self.state {
            pairs.push(("state", state));
        }
        pairs.push(("iss", &self.iss));
        Outcome::Redirect(append_query(self.redirect_uri, &pairs))
    }

    pub(super) fn error(&self, denied: Denied) -> Outcome {
        self.with(&[
            ("error", denied.code),
            ("error_description", &denied.description),
        ])
    }
}

/// `uri` with `pairs` added to its query (a registered URI's own query is kept).
pub(super) fn append_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    match url::Url::parse(uri) {
        Ok(mut url) => {
            url.query_pairs_mut().extend_pairs(pairs);
            url.into()
        }
        Err(_) => {
            let query = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish();
            let sep = if uri.contains('?') { '&' } else { '?' };
            format!("{uri}{sep}{query}")
        }
    }
}

/// The checks that need nobody signed in.
pub(super) fn check(params: &Params) -> Result<(), Denied> {
    if let Some(name) = params.repeated() {
        return Err(Denied::new(
            "invalid_request",
            format!("the parameter `{}` appears more than once", truncate(name)),
        ));
    }
    match params.get("response_type") {
        None => return Err(Denied::new("invalid_request", "response_type is required")),
        Some("code") => {}
        Some(_) => {
            return Err(Denied::new(
                "unsupported_response_type",
                "response_type must be code",
            ));
        }
    }
    pkce::check_challenge(
        params.get("code_challenge"),
        params.get("code_challenge_method"),
    )
    .map_err(|why| Denied::new("invalid_request", why))?;
    if let Some(jkt) = params.get("dpop_jkt") {
        // RFC 9449 §10: a base64url SHA-256 JWK thumbprint, 43 characters.
        let shaped = jkt.len() == 43
            && jkt
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !shaped {
            return Err(Denied::new(
                "invalid_request",
                "dpop_jkt must be the base64url SHA-256 thumbprint of a JWK (RFC 9449 §10)",
            ));
        }
    }
    match params.get("prompt") {
        None | Some("consent") => {}
        Some(_) => {
            return Err(Denied::new(
                "invalid_request",
                "prompt must be consent when given",
            ));
        }
    }
    if let Some(scope) = params.get("scope") {
        let names: Vec<&str> = scope.split_ascii_whitespace().collect();
        if names.len() > MAX_SCOPES {
            return Err(Denied::new(
                "invalid_scope",
                format!("at most {MAX_SCOPES} scopes may be requested"),
            ));
        }
        for name in names {
            resources::scopes::check(name).map_err(|why| Denied::new("invalid_scope", why))?;
        }
    }
    Ok(())
}

pub(super) fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
}
