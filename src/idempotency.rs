//! `Idempotency-Key` for creating `POST`s: a retry with the same key and body gets the
//! first response again instead of a second resource.
//!
//! Keys belong to an organization and a caller and are remembered for [`LIFETIME`]. A
//! request is fingerprinted by method, path and canonical JSON body (serde_json orders
//! object members, so whitespace and member order do not change it). The key is reserved
//! before the request runs, so a concurrent duplicate is refused instead of running twice;
//! a request that fails releases its key, and so does one that is cancelled (the client
//! went away and the handler's future was dropped: [`Ticket`]'s `Drop` releases it). A
//! reservation whose request neither finished nor released it (the process died) is a
//! lease: after [`LEASE`] a retry takes it over. A response that carried a secret is stored
//! without it and never replayed: the secret was shown once.

use std::time::Duration;

use aws_lc_rs::digest::{SHA256, digest};
use entity::idempotency_key;
use serde_json::Value;

use crate::ids::new_id;
use crate::state::AppState;
use crate::storage::idempotency::{self as store, Reservation};
use crate::storage::{Storage, StorageError};
use crate::types::ParseError;

/// How long a key is remembered.
pub const LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// How long a reservation holds while its request runs; past it, a retry takes over.
pub const LEASE: Duration = Duration::from_secs(60);

/// A checked `Idempotency-Key` header value: 1 to 255 visible ASCII characters.
pub fn parse_key(value: &[u8]) -> Result<String, ParseError> {
    if (1..=255).contains(&value.len()) && value.iter().all(u8::is_ascii_graphic) {
        Ok(String::from_utf8_lossy(value).into_owned())
    } else {
        Err(ParseError(
            "`Idempotency-Key` must be 1 to 255 visible ASCII characters".into(),
        ))
    }
}

/// What identifies "the same request": method, path and canonical body.
pub fn fingerprint(method: &str, path: &str, body: &Value) -> String {
    let mut text = format!("{method} {path}\n");
    canonical(body, &mut text);
    hex::encode(digest(&SHA256, text.as_bytes()))
}

/// JSON with object members sorted by name (serde_json keeps insertion order when a
/// dependency enables its `preserve_order` feature, so its own rendering is not canonical).
fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut members: Vec<_> = map.iter().collect();
            members.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (name, member)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(name.clone()).to_string());
                out.push(':');
                canonical(member, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// What to do with a request that carries a key.
pub enum Begin {
    /// First time: run it, then [`finish`] or [`abandon`].
    Run(Ticket),
    /// Done before: answer what was stored.
    Replay(Stored),
    /// The key was used for a different request.
    Mismatch,
    /// The first request with this key is still running.
    InProgress,
}

/// A reserved key. Dropped without [`finish`] or [`abandon`] (the request was cancelled),
/// it releases the reservation in the background.
pub struct Ticket {
    id: String,
    /// Set while the reservation is held.
    storage: Option<Storage>,
}

impl Ticket {
    fn new(state: &AppState, id: String) -> Self {
        Self {
            id,
            storage: Some(state.storage.clone()),
        }
    }

    fn disarm(mut self) -> String {
        self.storage = None;
        std::mem::take(&mut self.id)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let Some(storage) = self.storage.take() else {
            return;
        };
        let id = std::mem::take(&mut self.id);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Err(err) = store::release(&storage, &id).await {
                        tracing::error!(error = %err, "releasing a cancelled idempotency key failed");
                    }
                });
            }
            Err(_) => tracing::warn!(
                "an idempotency key of a cancelled request stays until its lease ends"
            ),
        }
    }
}

/// A remembered response.
pub struct Stored {
    pub status: u16,
    pub body: Value,
    /// The response carried a secret, removed before storing.
    pub redacted: bool,
}

pub async fn begin(
    state: &AppState,
    org_id: &str,
    actor_user_id: &str,
    key: String,
    fingerprint: String,
) -> Result<Begin, StorageError> {
    let now = state.clock.now();
    let row = idempotency_key::Model {
        id: new_id("idk"),
        org_id: org_id.to_owned(),
        actor_user_id: actor_user_id.to_owned(),
        idem_key: key,
        fingerprint,
        status_code: None,
        response: None,
        redacted: false,
        created_at: now,
        expires_at: now + chrono::Duration::from_std(LIFETIME).unwrap_or_default(),
    };
    let wanted = row.fingerprint.clone();
    let lease = chrono::Duration::from_std(LEASE).unwrap_or_default();
    Ok(match store::reserve(&state.storage, row, now).await? {
        Reservation::Reserved(row) => Begin::Run(Ticket::new(state, row.id)),
        Reservation::Existing(row) if row.fingerprint != wanted => Begin::Mismatch,
        Reservation::Existing(row) => match (row.status_code, &row.response) {
            (Some(status), Some(body)) => Begin::Replay(Stored {
                status: u16::try_from(status).unwrap_or(500),
                body: serde_json::from_str(body).unwrap_or(Value::Null),
                redacted: row.redacted,
            }),
            _ if row.created_at + lease <= now => {
                let id = new_id("idk");
                if store::take_over(&state.storage, &row, &id, now).await? {
                    Begin::Run(Ticket::new(state, id))
                } else {
                    Begin::InProgress
                }
            }
            _ => Begin::InProgress,
        },
    })
}

/// Remembers the response of a request that succeeded, without its `secret_field`.
pub async fn finish(
    state: &AppState,
    ticket: Ticket,
    status: u16,
    mut body: Value,
    secret_field: Option<&str>,
) -> Result<(), StorageError> {
    let redacted = secret_field
        .and_then(|field| body.as_object_mut()?.remove(field))
        .is_some();
    let id = ticket.disarm();
    store::complete(&state.storage, &id, status, body.to_string(), redacted).await
}

/// Forgets the key of a request that failed, so a retry runs it again.
pub async fn abandon(state: &AppState, ticket: Ticket) -> Result<(), StorageError> {
    let id = ticket.disarm();
    store::release(&state.storage, &id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_ignore_member_order_and_whitespace() {
        let a: Value = serde_json::from_str(r#"{"name":"ci","duration":"30d"}"#).unwrap();
        let b: Value =
            serde_json::from_str("{ \"duration\": \"30d\",\n \"name\": \"ci\" }").unwrap();
        let c: Value = serde_json::from_str(r#"{"name":"ci","duration":"7d"}"#).unwrap();
        assert_eq!(fingerprint("POST", "/p", &a), fingerprint("POST", "/p", &b));
        assert_ne!(fingerprint("POST", "/p", &a), fingerprint("POST", "/p", &c));
        assert_ne!(fingerprint("POST", "/p", &a), fingerprint("POST", "/q", &a));
    }

    #[test]
    fn keys_are_bounded_visible_ascii() {
        assert!(parse_key(b"retry-1").is_ok());
        assert!(parse_key(&[b'a'; 255]).is_ok());
        for bad in [
            &b""[..],
            &[b'a'; 256],
            b"has space",
            "é".as_bytes(),
            b"tab\t",
        ] {
            assert!(parse_key(bad).is_err());
        }
    }
}
