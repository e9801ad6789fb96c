//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document): a
//! `client_id` that is an https URL names the JSON document, served at that URL, that
//! describes the client. keygate fetches it when a flow names the client and caches it.
//!
//! The URL (draft §3): `https` (plain `http` only to a loopback host while keygate itself
//! listens on loopback, for development and tests, as for identity providers' JWKS), no
//! user name or password, a path other than `/` (stricter than the draft, which only
//! discourages it), no `.` or `..` segment, no fragment, at most 2,048 characters.
//!
//! The fetch (draft §4, §7.6): through [`crate::outbound`] (public addresses only after DNS
//! resolution, no redirects, no proxy), at most `clients.metadata_max_bytes` read (5 KB by
//! default, as the draft recommends), `clients.metadata_timeout`; only `200 OK` is a
//! document. The document (draft §4): a JSON object whose `client_id` equals the URL
//! exactly; `redirect_uris` valid as for any client; `token_endpoint_auth_method` `none` or
//! absent (keygate accepts documents of public clients only: the draft forbids secrets in
//! them, and `private_key_jwt` with published keys is not supported); no `client_secret`
//! nor `client_secret_expires_at`; `client_name` and `scope` as for any client.
//!
//! Caching (draft §4.2): a document is used for `clients.metadata_cache_ttl` (5 minutes),
//! or less when its `Cache-Control` says so (`max-age`; `no-store`/`no-cache` as 0), but at
//! least `clients.metadata_min_ttl` (10 s). The draft forbids caching error responses and
//! invalid documents as the client's metadata: keygate never does, but it also does not
//! fetch a URL again within `clients.metadata_min_ttl` of a failure (it answers that
//! failure meanwhile), so a bad `client_id` cannot make keygate fetch in a loop. Concurrent
//! requests for a URL that is not cached share one fetch. Ages are measured with the
//! injected [`Clock`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use moka::sync::Cache;
use serde_json::Value;

use super::metadata::{self, Requested};
use super::{Client, ClientAuth, ClientError, ClientSource};
use crate::clock::Clock;
use crate::config::ClientSettings;
use crate::outbound::{self, AddressPolicy};

/// The longest client identifier URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// Whether `client_id` is meant as the URL of a metadata document (and so is never a
/// registered client's id, which are `cli_…`).
pub fn is_document_url(client_id: &str) -> bool {
    let lower = client_id.get(..8).unwrap_or(client_id).to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

/// Checks a client identifier URL (draft §3) before anything is fetched.
pub fn check_url(client_id: &str, policy: AddressPolicy) -> Result<url::Url, String> {
    if client_id.len() > MAX_URL_LEN {
        return Err(format!("the URL is longer than {MAX_URL_LEN} characters"));
    }
    if client_id.contains('#') {
        return Err("the URL has a fragment".into());
    }
    let url = url::Url::parse(client_id).map_err(|e| format!("not a URL: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the URL has a user name or password".into());
    }
    // The path as written (the parser removes dot segments): between the authority and
    // the query.
    let after_scheme = client_id.split_once("://").map_or("", |(_, rest)| rest);
    let path = after_scheme
        .find('/')
        .map_or("", |i| &after_scheme[i..])
        .split('?')
        .next()
        .unwrap_or_default();
    if path.is_empty() || path == "/" {
        return Err("the URL needs a path (e.g. https://app.example/client.json)".into());
    }
    let dot = |s: &str| {
        let s = s.to_ascii_lowercase().replace("%2e", ".");
        s == "." || s == ".."
    };
    if path.split('/').any(dot) {
        return Err("the URL has a `.` or `..` path segment".into());
    }
    policy.check_url(&url)?;
    Ok(url)
}

/// A lookup: the client or why there is none, and until when it may be used.
#[derive(Clone, Debug)]
struct Entry {
    until: DateTime<Utc>,
    result: Result<Client, String>,
}

/// Fetched metadata documents, by URL.
pub struct Documents {
    http: reqwest::Client,
    policy: AddressPolicy,
    clock: Arc<dyn Clock>,
    settings: ClientSettings,
    cache: Cache<String, Arc<Entry>>,
    /// One lock per URL being fetched, so concurrent misses share one fetch.
    fetching: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for Documents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Documents").finish_non_exhaustive()
    }
}

impl Documents {
    pub fn new(
        settings: &ClientSettings,
        policy: AddressPolicy,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: outbound::client(policy, settings.metadata_timeout)?,
            policy,
            clock,
            settings: settings.clone(),
            cache: Cache::builder()
                .max_capacity(10_000)
                // Only frees memory; freshness is judged by `Entry::until`.
                .time_to_live(settings.metadata_cache_ttl.max(settings.metadata_min_ttl))
                .build(),
            fetching: Mutex::new(HashMap::new()),
        })
    }

    fn cached(&self, url: &str) -> Option<Result<Client, String>> {
        let entry = self.cache.get(url)?;
        (self.clock.now() < entry.until).then(|| entry.result.clone())
    }

    /// The client described by the document at `client_id`.
    pub async fn client(&self, client_id: &str) -> Result<Client, ClientError> {
        let invalid = |reason: String| {
            ClientError::Invalid(format!(
                "the client's metadata document at {client_id} cannot be used: {reason}"
            ))
        };
        check_url(client_id, self.policy).map_err(invalid)?;
        if let Some(result) = self.cached(client_id) {
            return result.map_err(invalid);
        }
        let lock = {
            let mut fetching = self.fetching.lock().unwrap_or_else(|e| e.into_inner());
            fetching.entry(client_id.to_owned()).or_default().clone()
        };
        let result = {
            let _guard = lock.lock().await;
            match self.cached(client_id) {
                Some(result) => result,
                None => {
                    let entry = self.fetch(client_id).await;
                    let result = entry.result.clone();
                    self.cache.insert(client_id.to_owned(), Arc::new(entry));
                    result
                }
            }
        };
        {
            let mut fetching = self.fetching.lock().unwrap_or_else(|e| e.into_inner());
            if fetching
                .get(client_id)
                .is_some_and(|l| Arc::ptr_eq(l, &lock))
            {
                fetching.remove(client_id);
            }
        }
        result.map_err(invalid)
    }

    async fn fetch(&self, url: &str) -> Entry {
        let now = self.clock.now();
        let later = |d: Duration| now + chrono::Duration::from_std(d).unwrap_or_default();
        let fetched = outbound::get_capped_response(
            &self.http,
            self.policy,
            url,
            "application/json",
            self.settings.metadata_max_bytes,
        )
        .await
        .and_then(|response| {
            if response.status != reqwest::StatusCode::OK {
                return Err(format!(
                    "HTTP {} (only 200 serves a document)",
                    response.status
                ));
            }
            let client = parse(url, &response.body)?;
            Ok((client, max_age(&response.headers)))
        });
        match fetched {
            Ok((client, max_age)) => {
                let ttl = max_age
                    .map_or(self.settings.metadata_cache_ttl, |a| {
                        a.min(self.settings.metadata_cache_ttl)
                    })
                    .max(self.settings.metadata_min_ttl);
                Entry {
                    until: later(ttl),
                    result: Ok(client),
                }
            }
            Err(reason) => {
                tracing::info!(client_id = %url, %reason, "a client metadata document cannot be used");
                Entry {
                    until: later(self.settings.metadata_min_ttl),
                    result: Err(reason),
                }
            }
        }
    }
}

/// How long the response may be used, by its `Cache-Control` (`no-store` and `no-cache`
/// count as 0); `None`: it does not say.
fn max_age(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let mut age = None;
    for value in headers.get_all(reqwest::header::CACHE_CONTROL) {
        let Ok(value) = value.to_str() else {
            continue;
        };
        for directive in value.split(',') {
            let directive = directive.trim().to_ascii_lowercase();
            let seconds = match directive.split_once('=') {
                Some(("max-age", n)) => n.trim_matches('"').parse::<u64>().ok(),
                None if directive == "no-store" || directive == "no-cache" => Some(0),
                _ => None,
            };
            if let Some(s) = seconds {
                let d = Duration::from_secs(s);
                age = Some(age.map_or(d, |a: Duration| a.min(d)));
            }
        }
    }
    age
}

/// The client a fetched document describes (draft §4, §4.1).
fn parse(url: &str, body: &[u8]) -> Result<Client, String> {
    let document: Value =
        serde_json::from_slice(body).map_err(|_| "the document is not JSON".to_owned())?;
    let object = document
        .as_object()
        .ok_or_else(|| "the document is not a JSON object".to_owned())?;
    let string = |name: &str| -> Result<Option<String>, String> {
        match object.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("`{name}` must be a string")),
        }
    };
    if string("client_id")?.as_deref() != Some(url) {
        return Err("its `client_id` is not exactly the URL it was fetched from".into());
    }
    if object.contains_key("client_secret") || object.contains_key("client_secret_expires_at") {
        return Err("a metadata document never holds a client secret".into());
    }
    let auth = string("token_endpoint_auth_method")?.unwrap_or_else(|| "none".into());
    if auth != ClientAuth::None.as_str() {
        return Err(format!(
            "keygate accepts metadata documents of public clients only \
             (token_endpoint_auth_method none), not `{}`",
            auth.chars().take(40).collect::<String>()
        ));
    }
    let redirect_uris = match object.get("redirect_uris") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| "`redirect_uris` must be strings".to_owned())
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err("`redirect_uris` must be an array of redirect URIs".into()),
    };
    let checked = metadata::check(Requested {
        name: string("client_name")?,
        redirect_uris,
        auth,
        scope: string("scope")?,
        ..Requested::default()
    })
    .map_err(|e| e.to_string())?;
    Ok(Client {
        client_id: url.to_owned(),
        name: checked.name,
        redirect_uris: checked.redirect_uris,
        auth: ClientAuth::None,
        source: ClientSource::MetadataDocument,
        scope: checked.scope,
    })
}

#[cfg(test)]
mod tests {
    use reqwest::header::{CACHE_CONTROL, HeaderMap, HeaderValue};

    use super::*;

    const PUBLIC: AddressPolicy = AddressPolicy {
        allow_loopback: false,
    };

    #[test]
    fn client_identifier_urls() {
        for ok in [
            "https://app.example/client.json",
            "https://app.example:8443/oauth/client-metadata.json",
            "https://app.example/c?v=1",
        ] {
            assert!(check_url(ok, PUBLIC).is_ok(), "{ok}");
        }
        for bad in [
            "http://app.example/client.json",
            "https://app.example",
            "https://app.example/",
            "https://app.example/a/../client.json",
            "https://app.example/./client.json",
            "https://app.example/%2E%2E/client.json",
            "https://app.example/client.json#x",
            "https://user:pw@app.example/client.json",
            "https://10.0.0.1/client.json",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/client.json",
            "https://localhost/client.json",
            &format!("https://app.example/{}", "a".repeat(MAX_URL_LEN)),
        ] {
            assert!(check_url(bad, PUBLIC).is_err(), "{bad}");
        }
        let loopback = AddressPolicy {
            allow_loopback: true,
        };
        assert!(check_url("http://127.0.0.1:8080/client.json", loopback).is_ok());
        assert!(check_url("http://127.0.0.1:8080/client.json", PUBLIC).is_err());
        assert!(is_document_url("https://x/y") && is_document_url("HTTP://x/y"));
        assert!(!is_document_url("cli_abc") && !is_document_url("httpsx"));
    }

    #[test]
    fn cache_control_shortens_the_lifetime() {
        let headers = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(CACHE_CONTROL, HeaderValue::from_str(v).unwrap());
            h
        };
        assert_eq!(max_age(&HeaderMap::new()), None);
        assert_eq!(
            max_age(&headers("public, max-age=60")),
            Some(Duration::from_secs(60))
        );
        assert_eq!(max_age(&headers("no-store")), Some(Duration::ZERO));
        assert_eq!(
            max_age(&headers("max-age=600, no-cache")),
            Some(Duration::ZERO)
        );
        assert_eq!(max_age(&headers("max-age=abc")), None);
    }

    #[test]
    fn documents_are_checked() {
        let url = "https://app.example/client.json";
        let good = serde_json::json!({
            "client_id": url, "client_name": "App",
            "redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none",
        });
        let client = parse(url, good.to_string().as_bytes()).unwrap();
        assert_eq!(client.name, "App");
        assert_eq!(client.source, ClientSource::MetadataDocument);
        let with = |k: &str, v: Value| {
            let mut d = good.clone();
            d[k] = v;
            d.to_string()
        };
        for bad in [
            "[]".to_owned(),
            "not json".to_owned(),
            with("client_id", "https://app.example/other.json".into()),
            with("client_id", "https://app.example/client.json/".into()),
            with("token_endpoint_auth_method", "client_secret_basic".into()),
            with("token_endpoint_auth_method", "private_key_jwt".into()),
            with("client_secret", "s".into()),
            with("redirect_uris", serde_json::json!([])),
            with(
                "redirect_uris",
                serde_json::json!(["http://evil.example/cb"]),
            ),
            with("redirect_uris", "https://app.example/cb".into()),
            with("client_name", 5.into()),
        ] {
            assert!(parse(url, bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
