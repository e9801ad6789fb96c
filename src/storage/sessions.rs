//! Sessions and their refresh tokens (stored as digests only).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use entity::{api_key, client, refresh_token, session, user};
use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait,
    QueryFilter, QuerySelect, TransactionTrait,
};

use super::page::{self, Cursor, Page, PageRequest};
use super::{Result, Storage};
use crate::types::{Lifecycle, Role};

/// A session being opened: its row, its first refresh token's row (none for a session of a
/// token exchange or a JWT bearer grant, which issue no refresh token), and whether to
/// record the key's use (`api_keys.last_used_at`, sampled by the caller).
#[derive(Clone, Debug)]
pub struct Opening {
    pub session: session::Model,
    pub refresh: Option<refresh_token::Model>,
    pub touch_key: bool,
    /// The client IP written with the key's use (`api_keys.last_used_ip`).
    pub used_from: Option<String>,
}

/// Why the commit of a new session refused it: its credential stopped being valid after the
/// request checked it (from a cache, or in the moment before the commit). The session is
/// written already ended; the request must answer this error, not the tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The key was revoked before the session was opened.
    KeyRevoked,
    /// The user signed in as, or the key's owner acting for them, is gone or disabled.
    UserGone,
    /// The key's owner may no longer act for the user (a demotion, or a promotion of the
    /// user above the owner).
    ActingDenied,
    /// The browser client (`cli_…`) was deleted before the session was opened.
    ClientGone,
}

/// The refusals of a batch, by session id (sessions not named here are open).
pub type Refusals = BTreeMap<String, Refusal>;

/// The most rows of one table in one `INSERT` (each bound value is a parameter; SQLite
/// allows 32,766 parameters per statement, PostgreSQL 65,535).
const INSERT_CHUNK: usize = 256;

/// Creates the sessions of `openings` with their first refresh tokens and records their
/// keys' use, all in ONE transaction: all are written or none is. Called by the session
/// writer ([`super::writer`]) for a batch, and for one row when a batch failed.
///
/// Before committing, the keys and users of the batch are read again under the write lock
/// (SQLite) or row locks (PostgreSQL), so a revocation, a disabled user or a role change is
/// either seen here or sees these sessions: a session whose credential is no longer valid
/// is written ended and named in the returned [`Refusals`].
pub async fn open_many(
    storage: &Storage,
    openings: &[&Opening],
    now: DateTime<Utc>,
) -> Result<Refusals> {
    if openings.is_empty() {
        return Ok(Refusals::new());
    }
    // One update per key, with its latest use in the batch (and where it came from).
    let mut touched: BTreeMap<&str, (DateTime<Utc>, Option<&str>)> = BTreeMap::new();
    for opening in openings.iter().filter(|o| o.touch_key) {
        let used = (opening.session.created_at, opening.used_from.as_deref());
        touched
            .entry(opening.session.api_key_id.as_str())
            .and_modify(|t| {
                if used.0 >= t.0 {
                    *t = used;
                }
            })
            .or_insert(used);
    }
    let txn = storage.db().begin().await?;
    for (key_id, (at, ip)) in touched {
        api_key::Entity::update_many()
            .col_expr(api_key::Column::LastUsedAt, Expr::value(at))
            .col_expr(
                api_key::Column::LastUsedIp,
                Expr::value(ip.map(str::to_owned)),
            )
            .filter(api_key::Column::Id.eq(key_id))
            .exec(&txn)
            .await?;
    }
    for chunk in openings.chunks(INSERT_CHUNK) {
        session::Entity::insert_many(
            chunk
                .iter()
                .map(|o| session::ActiveModel::from(o.session.clone())),
        )
        .exec_without_returning(&txn)
        .await?;
    }
    let refreshes: Vec<&refresh_token::Model> =
        openings.iter().filter_map(|o| o.refresh.as_ref()).collect();
    for chunk in refreshes.chunks(INSERT_CHUNK) {
        refresh_token::Entity::insert_many(
            chunk
                .iter()
                .map(|r| refresh_token::ActiveModel::from((*r).clone())),
        )
        .exec_without_returning(&txn)
        .await?;
    }
    let mut refusals = end_with_revoked_keys(&txn, openings, now).await?;
    for (id, refusal) in refuse_changed_users(&txn, openings).await? {
        refusals.entry(id).or_insert(refusal);
    }
    for (id, refusal) in refuse_deleted_clients(&txn, openings).await? {
        refusals.entry(id).or_insert(refusal);
    }
    txn.commit().await?;
    Ok(refusals)
}

/// A key revoked after its sign-in was checked, before the batch is committed: its new
/// sessions end with it, as the key's revocation ends the sessions it finds
/// ([`revoke_for_key`]). Runs after the inserts, so that on SQLite the write lock is held
/// (a revocation is either seen here or sees these rows); on PostgreSQL the keys' rows are
/// locked until the commit, so a revocation's session update waits for these rows. A
/// session whose key is revoked by `now` (the commit) is also refused.
async fn end_with_revoked_keys(
    txn: &DatabaseTransaction,
    openings: &[&Opening],
    now: DateTime<Utc>,
) -> Result<Refusals> {
    let mut by_key: BTreeMap<&str, Vec<&session::Model>> = BTreeMap::new();
    for opening in openings {
        by_key
            .entry(opening.session.api_key_id.as_str())
            .or_default()
            .push(&opening.session);
    }
    let mut query = api_key::Entity::find()
        .filter(api_key::Column::Id.is_in(by_key.keys().copied()))
        .filter(api_key::Column::RevokedAt.is_not_null());
    if txn.get_database_backend() == DbBackend::Postgres {
        query = query.lock_exclusive();
    }
    let mut refusals = Refusals::new();
    for key in query.all(txn).await? {
        let (Some(at), Some(sessions)) = (key.revoked_at, by_key.get(key.id.as_str())) else {
            continue;
        };
        session::Entity::update_many()
            .col_expr(session::Column::RevokedAt, Expr::value(at))
            .filter(session::Column::Id.is_in(sessions.iter().map(|s| s.id.as_str())))
            .filter(not_ended_by(at))
            .exec(txn)
            .await?;
        // Revoked by now (before the sign-in, read from a cache or missed on another node,
        // or while it waited for this batch): refused. A revocation scheduled for later (a
        // rotation's grace period) only ends the session at its time.
        if at <= now {
            for session in sessions {
                refusals.insert(session.id.clone(), Refusal::KeyRevoked);
            }
        }
    }
    Ok(refusals)
}

/// Writes the refused sessions of a batch ended as of their creation: they never gave out
/// a token.
async fn end_refused(txn: &DatabaseTransaction, refusals: &Refusals) -> Result<()> {
    if !refusals.is_empty() {
        session::Entity::update_many()
            .col_expr(
                session::Column::RevokedAt,
                Expr::col(session::Column::CreatedAt),
            )
            .filter(session::Column::Id.is_in(refusals.keys().map(String::as_str)))
            .filter(session::Column::RevokedAt.is_null())
            .exec(txn)
            .await?;
    }
    Ok(())
}

/// A registered browser client (`cli_…`) deleted after its request was checked, before the
/// batch is committed: its new sessions end, as the deletion ends the sessions it finds
/// (`storage::clients::delete`). Runs after the inserts, so on SQLite the write lock is
/// held; on PostgreSQL the clients' rows are share-locked, so a deletion either commits
/// first (and the row is gone here) or waits for this commit and then sees these sessions.
/// Clients without a row (Client ID Metadata Documents, the built-in `keygate-cli`) and API
/// keys are not concerned.
async fn refuse_deleted_clients(
    txn: &DatabaseTransaction,
    openings: &[&Opening],
) -> Result<Refusals> {
    let ids: BTreeSet<&str> = openings
        .iter()
        .map(|o| o.session.api_key_id.as_str())
        .filter(|id| crate::ids::is_id(id, "cli"))
        .collect();
    if ids.is_empty() {
        return Ok(Refusals::new());
    }
    let mut query = client::Entity::find().filter(client::Column::Id.is_in(ids.iter().copied()));
    if txn.get_database_backend() == DbBackend::Postgres {
        query = query.lock_shared();
    }
    let live: BTreeSet<(String, String)> = query
        .all(txn)
        .await?
        .into_iter()
        .map(|c| (c.org_id, c.id))
        .collect();
    let refusals: Refusals = openings
        .iter()
        .map(|o| &o.session)
        .filter(|s| ids.contains(s.api_key_id.as_str()))
        .filter(|s| !live.contains(&(s.org_id.clone(), s.api_key_id.clone())))
        .map(|s| (s.id.clone(), Refusal::ClientGone))
        .collect();
    end_refused(txn, &refusals).await?;
    Ok(refusals)
}

/// The sessions of users gone or disabled, or whose actor may no longer act for them, by
/// the users' rows as they are now (shared row locks on PostgreSQL, so a concurrent change
/// to those users waits for this commit and then ends these sessions itself): ended at
/// once and refused.
async fn refuse_changed_users(
    txn: &DatabaseTransaction,
    openings: &[&Opening],
) -> Result<Refusals> {
    let ids: BTreeSet<&str> = openings
        .iter()
        .flat_map(|o| {
            std::iter::once(o.session.user_id.as_str()).chain(o.session.actor_user_id.as_deref())
        })
        .collect();
    let mut query = user::Entity::find().filter(user::Column::Id.is_in(ids));
    if txn.get_database_backend() == DbBackend::Postgres {
        query = query.lock_shared();
    }
    let users: HashMap<String, user::Model> = query
        .all(txn)
        .await?
        .into_iter()
        .map(|u| (u.id.clone(), u))
        .collect();
    let usable = |id: &str, org_id: &str| {
        users
            .get(id)
            .filter(|u| u.org_id == org_id && !u.disabled && u.deleted_at.is_none())
    };
    let mut refusals = Refusals::new();
    for opening in openings {
        let session = &opening.session;
        let subject = usable(&session.user_id, &session.org_id);
        let actor = session
            .actor_user_id
            .as_deref()
            .map(|id| usable(id, &session.org_id));
        let refusal = match (subject, actor) {
            (None, _) | (_, Some(None)) => Some(Refusal::UserGone),
            // A token exchange (RFC 8693): the subject's token is its consent, whatever the
            // actor's role; both must still be usable.
            (Some(_), Some(Some(_))) if session.parent_session_id.is_some() => None,
            (Some(subject), Some(Some(actor))) => {
                let may_act = match (actor.role.parse::<Role>(), subject.role.parse::<Role>()) {
                    (Ok(actor), Ok(subject)) => actor.may_act_for(subject),
                    _ => false,
                };
                (!may_act).then_some(Refusal::ActingDenied)
            }
            (Some(_), None) => None,
        };
        if let Some(refusal) = refusal {
            refusals.insert(session.id.clone(), refusal);
        }
    }
    end_refused(txn, &refusals).await?;
    Ok(refusals)
}

pub async fn get(
    storage: &Storage,
    org_id: &str,
    session_id: &str,
) -> Result<Option<session::Model>> {
    Ok(session::Entity::find_by_id(session_id)
        .filter(session::Column::OrgId.eq(org_id))
        .one(storage.db())
        .await?)
}

/// Sessions not revoked by `at`: never revoked, or due to end later (a rotated key's grace
/// period), which a revocation at `at` brings forward.
pub(super) fn not_ended_by(at: DateTime<Utc>) -> Condition {
    Condition::any()
        .add(session::Column::RevokedAt.is_null())
        .add(session::Column::RevokedAt.gt(at))
}

/// Ends every open session of a key.
pub async fn revoke_for_key(
    storage: &Storage,
    org_id: &str,
    key_id: &str,
    at: DateTime<Utc>,
) -> Result<u64> {
    let res = session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(at))
        .filter(session::Column::OrgId.eq(org_id))
        .filter(session::Column::ApiKeyId.eq(key_id))
        .filter(not_ended_by(at))
        .exec(storage.db())
        .await?;
    Ok(res.rows_affected)
}

/// Ends every open session of a user: those it is the subject of and those in which it acts
/// for another user (offboarding is total: docs/security.md).
pub async fn revoke_for_user(
    storage: &Storage,
    org_id: &str,
    user_id: &str,
    at: DateTime<Utc>,
) -> Result<u64> {
    let res = session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(at))
        .filter(session::Column::OrgId.eq(org_id))
        .filter(
            Condition::any()
                .add(session::Column::UserId.eq(user_id))
                .add(session::Column::ActorUserId.eq(user_id)),
        )
        .filter(not_ended_by(at))
        .exec(storage.db())
        .await?;
    Ok(res.rows_affected)
}

/// Ends the open sessions of `user_id` with the client `client_id` (a browser client whose
/// consent the user withdrew).
pub async fn revoke_for_user_and_client(
    storage: &Storage,
    org_id: &str,
    user_id: &str,
    client_id: &str,
    at: DateTime<Utc>,
) -> Result<u64> {
    let res = session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(at))
        .filter(session::Column::OrgId.eq(org_id))
        .filter(session::Column::UserId.eq(user_id))
        .filter(session::Column::ApiKeyId.eq(client_id))
        .filter(not_ended_by(at))
        .exec(storage.db())
        .await?;
    Ok(res.rows_affected)
}

/// The clients (`sessions.api_key_id`) of `user_id`'s sessions that have not ended by
/// `now`, each once.
pub async fn open_clients_of_user(
    storage: &Storage,
    org_id: &str,
    user_id: &str,
    now: DateTime<Utc>,
) -> Result<Vec<String>> {
    let rows: Vec<String> = session::Entity::find()
        .select_only()
        .column(session::Column::ApiKeyId)
        .distinct()
        .filter(session::Column::OrgId.eq(org_id))
        .filter(session::Column::UserId.eq(user_id))
        .filter(not_ended_by(now))
        .filter(session::Column::ExpiresAt.gt(now))
        .into_tuple()
        .all(storage.db())
        .await?;
    Ok(rows)
}

/// Ends the open sessions in which someone acts for `user_id` (a promotion of `user_id` must
/// not hand its new rank to the actors of those sessions).
pub async fn revoke_acting_for(
    storage: &Storage,
    org_id: &str,
    user_id: &str,
    at: DateTime<Utc>,
) -> Result<u64> {
    let res = session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(at))
        .filter(session::Column::OrgId.eq(org_id))
        .filter(session::Column::UserId.eq(user_id))
        .filter(session::Column::ActorUserId.is_not_null())
        .filter(not_ended_by(at))
        .exec(storage.db())
        .await?;
    Ok(res.rows_affected)
}

/// Ends one session at `at` (its refresh tokens stop working with it), also one that was
/// due to end later (a rotated key's grace period).
pub async fn revoke(
    storage: &Storage,
    org_id: &str,
    session_id: &str,
    at: DateTime<Utc>,
) -> Result<bool> {
    let res = session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(at))
        .filter(session::Column::OrgId.eq(org_id))
        .filter(session::Column::Id.eq(session_id))
        .filter(not_ended_by(at))
        .exec(storage.db())
        .await?;
    Ok(res.rows_affected == 1)
}

/// Records a refresh that does not rotate (a DPoP-bound session): the session's refresh time.
pub async fn refreshed(storage: &Storage, session_id: &str, at: DateTime<Utc>) -> Result<()> {
    session::Entity::update_many()
        .col_expr(session::Column::RefreshedAt, Expr::value(at))
        .filter(session::Column::Id.eq(session_id))
        .exec(storage.db())
        .await?;
    Ok(())
}

/// Rotates a refresh token in one transaction: marks `used_id` used (only if it was not),
/// stores its successor `next` and the session's refresh time. `false` (nothing written)
/// when the token was already used: exactly one of concurrent callers gets `true`, and a
/// loser that sees `false` also sees the winner's successor (the winner's row lock, or
/// SQLite's single writer, holds it until the successor is committed).
pub async fn rotate(
    storage: &Storage,
    used_id: &str,
    next: refresh_token::Model,
    at: DateTime<Utc>,
) -> Result<bool> {
    let txn = storage.db().begin().await?;
    let consumed = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::UsedAt, Expr::value(at))
        .filter(refresh_token::Column::Id.eq(used_id))
        .filter(refresh_token::Column::UsedAt.is_null())
        .exec(&txn)
        .await?
        .rows_affected
        == 1;
    if !consumed {
        txn.rollback().await?;
        return Ok(false);
    }
    session::Entity::update_many()
        .col_expr(session::Column::RefreshedAt, Expr::value(at))
        .filter(session::Column::Id.eq(next.session_id.as_str()))
        .exec(&txn)
        .await?;
    refresh_token::ActiveModel::from(next).insert(&txn).await?;
    txn.commit().await?;
    Ok(true)
}

/// Deletes up to `limit` sessions that expired before `cutoff` (revoked or not; their refresh
/// tokens go with them by the foreign key's cascade, normally already purged by
/// [`super::refresh_tokens::purge_expired`]).
pub async fn purge_expired(storage: &Storage, cutoff: DateTime<Utc>, limit: u64) -> Result<u64> {
    super::purge::batch::<session::Entity>(
        storage,
        session::Column::Id,
        Condition::all().add(session::Column::ExpiresAt.lt(cutoff)),
        limit,
    )
    .await
}

/// What a session listing is narrowed to.
#[derive(Clone, Debug, Default)]
pub struct SessionFilter {
    pub user_id: Option<String>,
    pub api_key_id: Option<String>,
    /// With the instant the status is judged at.
    pub status: Option<(Lifecycle, DateTime<Utc>)>,
}

/// One page of an organization's sessions, newest first.
pub async fn page(
    storage: &Storage,
    org_id: &str,
    filter: &SessionFilter,
    page: &PageRequest,
) -> Result<Page<session::Model>> {
    use session::Column;
    let mut select = session::Entity::find().filter(Column::OrgId.eq(org_id));
    if let Some(user_id) = &filter.user_id {
        select = select.filter(Column::UserId.eq(user_id.as_str()));
    }
    if let Some(key_id) = &filter.api_key_id {
        select = select.filter(Column::ApiKeyId.eq(key_id.as_str()));
    }
    if let Some((status, now)) = filter.status {
        select = select.filter(super::lifecycle(
            Column::RevokedAt,
            Column::ExpiresAt,
            status,
            now,
        ));
    }
    page::fetch(
        storage,
        select,
        (Column::CreatedAt, Column::Id),
        page,
        |s| Cursor {
            at: s.created_at,
            id: s.id.clone(),
        },
    )
    .await
}
