//! Keyset pagination, newest first by (creation time, id), shared by every listing.
//!
//! A cursor names the last item of a page; the next page is what sorts strictly after it.
//! Items created during a walk sort before its position (they are newer), so a walk sees
//! every item that existed when it began exactly once, and never an item twice.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Condition, IntoCondition};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select};

use super::{Result, Storage};
use crate::types::ParseError;

pub const DEFAULT_LIMIT: u64 = 50;
pub const MAX_LIMIT: u64 = 200;

/// A position in a listing: the creation time and id of the last item returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub at: DateTime<Utc>,
    pub id: String,
}

impl Cursor {
    /// Opaque to clients: base64url of `{unix nanoseconds}|{id}`.
    pub fn encode(&self) -> String {
        let nanos = self.at.timestamp_nanos_opt().unwrap_or(i64::MAX);
        URL_SAFE_NO_PAD.encode(format!("{nanos}|{}", self.id))
    }

    pub fn decode(s: &str) -> Result<Self, ParseError> {
        let invalid = || ParseError("`cursor` is not a cursor this server returned".into());
        if s.len() > 200 {
            return Err(invalid());
        }
        let raw = URL_SAFE_NO_PAD.decode(s).map_err(|_| invalid())?;
        let raw = String::from_utf8(raw).map_err(|_| invalid())?;
        let (nanos, id) = raw.split_once('|').ok_or_else(invalid)?;
        let nanos: i64 = nanos.parse().map_err(|_| invalid())?;
        if id.is_empty() || !crate::ids::is_base62(id.replace('_', "").as_str()) {
            return Err(invalid());
        }
        Ok(Self {
            at: DateTime::from_timestamp_nanos(nanos),
            id: id.to_owned(),
        })
    }
}

/// Which page to read.
#[derive(Clone, Debug)]
pub struct PageRequest {
    pub limit: u64,
    pub after: Option<Cursor>,
}

impl PageRequest {
    /// From the `limit` and `cursor` query parameters.
    pub fn parse(limit: Option<u64>, cursor: Option<&str>) -> Result<Self, ParseError> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ParseError(format!(
                "`limit` must be between 1 and {MAX_LIMIT}"
            )));
        }
        let after = cursor.map(Cursor::decode).transpose()?;
        Ok(Self { limit, after })
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            limit: DEFAULT_LIMIT,
            after: None,
        }
    }
}

/// One page of items and where the next one starts (`None`: this was the last).
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<Cursor>,
}

impl<T> Page<T> {
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next: self.next,
        }
    }
}

/// Reads one page of `select` ordered by `at_col` then `id_col`, newest first; `key`
/// gives an item's position.
pub async fn fetch<E, C>(
    storage: &Storage,
    select: Select<E>,
    (at_col, id_col): (C, C),
    page: &PageRequest,
    key: impl Fn(&E::Model) -> Cursor,
) -> Result<Page<E::Model>>
where
    E: EntityTrait,
    C: ColumnTrait + Copy,
{
    let mut select = select.order_by_desc(at_col).order_by_desc(id_col);
    if let Some(after) = &page.after {
        select = select.filter(
            Condition::any()
                .add(at_col.lt(after.at))
                .add(
                    Condition::all()
                        .add(at_col.eq(after.at))
                        .add(id_col.lt(after.id.clone())),
                )
                .into_condition(),
        );
    }
    let mut items = select.limit(page.limit + 1).all(storage.db()).await?;
    let next = if items.len() as u64 > page.limit {
        items.truncate(page.limit as usize);
        items.last().map(&key)
    } else {
        None
    };
    Ok(Page { items, next })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let cursor = Cursor {
            at: DateTime::from_timestamp_nanos(1_790_000_000_123_456_789),
            id: "key_abcDEF123".into(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()).unwrap(), cursor);
        for bad in ["", "garbage!", "bm9waXBl", &"A".repeat(300)] {
            assert!(Cursor::decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits_are_bounded() {
        assert_eq!(PageRequest::parse(None, None).unwrap().limit, DEFAULT_LIMIT);
        assert!(PageRequest::parse(Some(0), None).is_err());
        assert!(PageRequest::parse(Some(MAX_LIMIT + 1), None).is_err());
        assert!(PageRequest::parse(Some(MAX_LIMIT), None).is_ok());
    }
}
