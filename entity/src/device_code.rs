//! A device authorization request (RFC 8628 §3.1): what the client asked for, the person's
//! decision, and the polling state. Both codes are stored only as digests.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "device_codes")]
pub struct Model {
    /// `dvc_…`
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub org_id: String,
    /// The client that asked: an API key id, or a browser client's id.
    pub client_id: String,
    /// HMAC-SHA256 of the `device_code` under the pepper.
    pub device_code_digest: String,
    /// HMAC-SHA256 of the `user_code` (its canonical 8 letters) under the pepper.
    pub user_code_digest: String,
    /// The `scope` the client asked for (space-separated); `None`: its default.
    pub scope: Option<String>,
    /// The protected resources (RFC 8707) asked for: normalized URIs, space-separated.
    pub resources: Option<String>,
    /// `pending`, `approved`, `denied`, or `issued` (its tokens were handed out, once).
    pub status: String,
    /// The person who approved or denied (the tokens' `sub`).
    pub user_id: Option<String>,
    /// The scope the person approved, as the confirmation page showed it.
    pub granted_scope: Option<String>,
    /// The polling interval now (RFC 8628 §3.5: `slow_down` adds 5 seconds).
    pub interval_secs: i32,
    /// Polls so far: the guard of the conditional update that records a poll.
    pub polls: i32,
    pub last_polled_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub decided_at: Option<DateTimeUtc>,
    pub issued_at: Option<DateTimeUtc>,
    /// The client IP a public client asked from (an IPv6 address as its /64); `None` for a
    /// client that authenticated.
    pub requested_ip: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
