//! A login challenge: someone asked for a one-time code to sign in to an organization's
//! pages from one browser. The code is stored only as its digest.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "login_challenges")]
pub struct Model {
    /// `lgc_…`
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub org_id: String,
    /// The enabled user the email belonged to when the code was asked for; `None` when it
    /// was nobody's (the challenge then looks the same and can never succeed).
    pub user_id: Option<String>,
    /// HMAC of the organization and the normalized email (the per-email throttle).
    pub email_digest: String,
    /// HMAC of the pre-login cookie of the browser that asked: only it may answer.
    pub browser_digest: String,
    /// HMAC of the challenge id and the code.
    pub code_digest: String,
    /// The client IP (IPv6: its /64) that asked (the per-IP throttle).
    pub ip: Option<String>,
    /// Codes submitted so far (each one counted before it is compared).
    pub attempts: i32,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    /// Set once, by the submission of the right code.
    pub consumed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
