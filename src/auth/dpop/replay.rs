//! The replay cache (RFC 9449 §11.1): a proof's `jti` may be used once per key while the
//! proof could be accepted. Behind [`ReplayStore`]: [`MemoryReplayStore`] for one node,
//! [`RedisReplayStore`] shared by a fleet.

use std::time::{Duration, Instant};

use aws_lc_rs::digest;
use moka::Expiry;
use moka::sync::Cache;

/// Where seen proofs are recorded.
#[async_trait::async_trait]
pub trait ReplayStore: Send + Sync + std::fmt::Debug {
    /// Records `key` for `ttl`. `Ok(true)` when it was not recorded before (first use).
    /// Must be atomic: of concurrent inserts of one key exactly one sees `true`.
    async fn insert_if_absent(&self, key: [u8; 32], ttl: Duration) -> Result<bool, ReplayError>;
}

#[derive(Debug, thiserror::Error)]
#[error("replay store unavailable: {0}")]
pub struct ReplayError(pub String);

/// The fixed-size key of a proof: SHA-256 of the key thumbprint and the `jti`, so the same
/// `jti` under two keys is two entries and a long `jti` costs no more memory.
pub fn replay_key(jkt: &str, jti: &str) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(jkt.as_bytes());
    ctx.update(&[0]);
    ctx.update(jti.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

/// One node's replay store: a moka cache bounded in entries (each entry is a 32-byte key
/// and a duration, so the bound is also one of memory), each entry expiring with its proof.
#[derive(Debug)]
pub struct MemoryReplayStore {
    cache: Cache<[u8; 32], Duration>,
}

struct PerEntryTtl;

impl Expiry<[u8; 32], Duration> for PerEntryTtl {
    fn expire_after_create(&self, _: &[u8; 32], ttl: &Duration, _: Instant) -> Option<Duration> {
        Some(*ttl)
    }
}

impl MemoryReplayStore {
    pub fn new(capacity: u64) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(capacity)
                .expire_after(PerEntryTtl)
                .build(),
        }
    }
}

#[async_trait::async_trait]
impl ReplayStore for MemoryReplayStore {
    async fn insert_if_absent(&self, key: [u8; 32], ttl: Duration) -> Result<bool, ReplayError> {
        // `or_insert_with`, not `or_insert`: moka's `or_insert` is a get followed by an
        // insert, so two concurrent first uses could both see a fresh entry; `or_insert_with`
        // goes through moka's value initializer, which lets exactly one caller insert.
        Ok(self.cache.entry(key).or_insert_with(|| ttl).is_fresh())
    }
}

/// A fleet's replay store: every node records proofs in one Redis, so a proof accepted by
/// one node is refused by all. `SET key 1 NX PX ttl` is atomic: of concurrent first uses,
/// on any nodes, exactly one succeeds, and the entry expires with the proof's window.
/// When Redis cannot be reached a proof is refused (the request fails), never accepted
/// unchecked.
#[derive(Clone)]
pub struct RedisReplayStore {
    connection: redis::aio::ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for RedisReplayStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisReplayStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisReplayStore {
    /// Connects to `url` (`redis://host:port/db`); keys are `{prefix}{hex of the key}`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, ReplayError> {
        let client = redis::Client::open(url).map_err(|e| ReplayError(e.to_string()))?;
        // A replay check waits at most this long for Redis; past it the proof is refused.
        let timeout = Duration::from_secs(2);
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout)
            .set_number_of_retries(2)
            .set_max_delay(500);
        let connection = redis::aio::ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| ReplayError(e.to_string()))?;
        Ok(Self {
            connection,
            prefix: prefix.to_owned(),
        })
    }
}

#[async_trait::async_trait]
impl ReplayStore for RedisReplayStore {
    async fn insert_if_absent(&self, key: [u8; 32], ttl: Duration) -> Result<bool, ReplayError> {
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let set: Option<String> = redis::cmd("SET")
            .arg(format!("{}{}", self.prefix, hex::encode(key)))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(millis)
            .query_async(&mut self.connection.clone())
            .await
            .map_err(|e| ReplayError(e.to_string()))?;
        Ok(set.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn first_use_only_and_keys_are_per_thumbprint() {
        let store = MemoryReplayStore::new(1000);
        let ttl = Duration::from_secs(60);
        assert!(
            store
                .insert_if_absent(replay_key("k1", "j"), ttl)
                .await
                .unwrap()
        );
        assert!(
            !store
                .insert_if_absent(replay_key("k1", "j"), ttl)
                .await
                .unwrap()
        );
        assert!(
            store
                .insert_if_absent(replay_key("k2", "j"), ttl)
                .await
                .unwrap()
        );
        assert_ne!(replay_key("k1", "j2"), replay_key("k1j", "2"));
    }

    #[test]
    fn concurrent_inserts_of_one_key_succeed_once() {
        let store = std::sync::Arc::new(MemoryReplayStore::new(100_000));
        for round in 0..100 {
            let key = replay_key("k", &round.to_string());
            let start = std::sync::Barrier::new(8);
            let wins: usize = std::thread::scope(|s| {
                let handles: Vec<_> = (0..8)
                    .map(|_| {
                        let (store, start) = (store.clone(), &start);
                        s.spawn(move || {
                            let rt = tokio::runtime::Builder::new_current_thread()
                                .build()
                                .unwrap();
                            start.wait();
                            let fresh = rt
                                .block_on(store.insert_if_absent(key, Duration::from_secs(60)))
                                .unwrap();
                            usize::from(fresh)
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).sum()
            });
            assert_eq!(wins, 1, "round {round}");
        }
    }
}
