//! The replay cache (RFC 9449 §11.1): a proof's `jti` may be used once per key while the
//! proof could be accepted. Behind [`ReplayStore`]: [`MemoryReplayStore`] for one node,
//! [`RedisReplayStore`] shared by a fleet. Both fail closed: a store that cannot remember
//! a new entry (full, unreachable) answers [`ReplayError`], and the request is refused; no
//! entry is ever forgotten before the TTL it was recorded with has passed.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use aws_lc_rs::digest;

use crate::clock::Clock;

/// Where seen proofs are recorded.
#[async_trait::async_trait]
pub trait ReplayStore: Send + Sync + std::fmt::Debug {
    /// Records `key` for at least `ttl`. `Ok(true)` when it was not recorded before (first
    /// use), `Ok(false)` when it was (a replay). Must be atomic: of concurrent inserts of
    /// one key exactly one sees `true`. A store that cannot record the key answers `Err`:
    /// it never answers `Ok(true)` for an entry it may forget before `ttl` has passed.
    async fn insert_if_absent(&self, key: [u8; 32], ttl: Duration) -> Result<bool, ReplayError>;

    /// How many entries this node holds, for the `keygate_replay_cache_entries` gauge;
    /// `None` for a store that is not this node's to count (Redis).
    fn entries(&self) -> Option<u64> {
        None
    }
}

/// Why a store could not record a proof. Either way the proof is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReplayError {
    /// The in-memory store holds `dpop.replay_capacity` entries, none of them expired.
    #[error("the in-memory replay store is full (dpop.replay_capacity)")]
    Full,
    /// The shared store could not be reached or answered an error.
    #[error("the replay store is unreachable: {0}")]
    Unreachable(String),
}

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

/// Lock shards: concurrent proofs of different keys rarely wait for each other.
const SHARDS: usize = 16;

/// One shard: the keys it remembers, and the same keys by expiry (soonest first).
/// A key is in `keys` exactly when it is in `by_expiry`.
#[derive(Debug, Default)]
struct Shard {
    keys: HashSet<[u8; 32]>,
    by_expiry: BinaryHeap<Reverse<(i64, [u8; 32])>>,
}

impl Shard {
    /// Forgets the entries whose TTL has passed at `now` (milliseconds); returns how many.
    fn reclaim(&mut self, now: i64) -> u64 {
        let mut freed = 0;
        while let Some(&Reverse((expires, key))) = self.by_expiry.peek() {
            if expires > now {
                break;
            }
            self.by_expiry.pop();
            self.keys.remove(&key);
            freed += 1;
        }
        freed
    }
}

/// One node's replay store: at most `capacity` entries (a 32-byte key and an expiry each),
/// each kept until its TTL has passed on the server's [`Clock`] (the clock that also decides
/// whether a proof is too old, so an entry outlives its proof's acceptance even if the
/// wall clock jumps). Nothing is ever evicted early: when every entry is still needed, a
/// new one is refused with [`ReplayError::Full`] (sizing: capacity ≥ peak proofs per
/// second × the replay window).
///
/// Concurrency: a key's shard lock makes "absent? then record" one step, so of concurrent
/// first uses exactly one wins. The entry count is reserved with a compare-and-swap below
/// `capacity` before an entry is added and released after entries are removed, so the
/// count is never below the real number of entries and never above `capacity`.
#[derive(Debug)]
pub struct MemoryReplayStore {
    shards: Box<[Mutex<Shard>]>,
    capacity: u64,
    len: AtomicU64,
    clock: Arc<dyn Clock>,
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A panic while holding the lock cannot leave a shard half-updated in a way that admits
    // a replay (an entry is added to both structures or to neither before any await).
    shard.lock().unwrap_or_else(|e| e.into_inner())
}

impl MemoryReplayStore {
    pub fn new(capacity: u64, clock: Arc<dyn Clock>) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            capacity,
            len: AtomicU64::new(0),
            clock,
        }
    }

    /// How many entries the store holds (expired ones included until reclaimed).
    pub fn len(&self) -> u64 {
        self.len.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn reserve(&self) -> bool {
        self.len
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.capacity).then_some(n + 1)
            })
            .is_ok()
    }

    fn reclaim(&self, shard: &mut Shard, now: i64) {
        let freed = shard.reclaim(now);
        if freed > 0 {
            self.len.fetch_sub(freed, Ordering::AcqRel);
        }
    }

    fn insert(&self, key: [u8; 32], ttl: Duration) -> Result<bool, ReplayError> {
        let now = self.clock.now().timestamp_millis();
        let ttl = i64::try_from(ttl.as_nanos().div_ceil(1_000_000)).unwrap_or(i64::MAX);
        let expires = now.saturating_add(ttl);
        let home = &self.shards[usize::from(key[0]) % SHARDS];
        for attempt in 0..2 {
            {
                let mut shard = lock(home);
                self.reclaim(&mut shard, now);
                if shard.keys.contains(&key) {
                    return Ok(false);
                }
                if self.reserve() {
                    shard.keys.insert(key);
                    shard.by_expiry.push(Reverse((expires, key)));
                    return Ok(true);
                }
            }
            // Full: expired entries of other shards may free room. One shard locked at a
            // time (never two), so this cannot deadlock with another insert.
            if attempt == 0 {
                for shard in &self.shards {
                    self.reclaim(&mut lock(shard), now);
                }
            }
        }
        Err(ReplayError::Full)
    }
}

#[async_trait::async_trait]
impl ReplayStore for MemoryReplayStore {
    async fn insert_if_absent(&self, key: [u8; 32], ttl: Duration) -> Result<bool, ReplayError> {
        self.insert(key, ttl)
    }

    fn entries(&self) -> Option<u64> {
        Some(self.len())
    }
}

/// A fleet's replay store: every node records proofs in one Redis, so a proof accepted by
/// one node is refused by all. `SET key 1 NX PX ttl` is atomic: of concurrent first uses,
/// on any nodes, exactly one succeeds, and the entry expires with the proof's window.
/// When Redis cannot be reached (or times out) the proof is refused with
/// [`ReplayError::Unreachable`] (503 to the client), never accepted unchecked.
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
        let client =
            redis::Client::open(url).map_err(|e| ReplayError::Unreachable(e.to_string()))?;
        // A replay check waits at most this long for Redis; past it the proof is refused.
        let timeout = Duration::from_secs(2);
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout)
            .set_number_of_retries(2)
            .set_max_delay(500);
        let connection = redis::aio::ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| ReplayError::Unreachable(e.to_string()))?;
        Ok(Self {
            connection,
            prefix: prefix.to_owned(),
        })
    }
}

#[async_trait::async_trait]
impl ReplayStore for RedisReplayStore {
    async fn insert_if_absent(&self, key: [u8; 32], ttl: Duration) -> Result<bool, ReplayError> {
        // Rounded up to whole milliseconds: never shorter than asked.
        let millis = u64::try_from(ttl.as_nanos().div_ceil(1_000_000))
            .unwrap_or(u64::MAX)
            .max(1);
        let set: Option<String> = redis::cmd("SET")
            .arg(format!("{}{}", self.prefix, hex::encode(key)))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(millis)
            .query_async(&mut self.connection.clone())
            .await
            .map_err(|e| ReplayError::Unreachable(e.to_string()))?;
        Ok(set.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn store(capacity: u64) -> (MemoryReplayStore, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::starting_now());
        (MemoryReplayStore::new(capacity, clock.clone()), clock)
    }

    fn key(n: usize) -> [u8; 32] {
        replay_key("k", &n.to_string())
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn first_use_only_and_keys_are_per_thumbprint() {
        let (store, _) = store(1000);
        assert_eq!(
            store.insert_if_absent(replay_key("k1", "j"), MINUTE).await,
            Ok(true)
        );
        assert_eq!(
            store.insert_if_absent(replay_key("k1", "j"), MINUTE).await,
            Ok(false)
        );
        assert_eq!(
            store.insert_if_absent(replay_key("k2", "j"), MINUTE).await,
            Ok(true)
        );
        assert_ne!(replay_key("k1", "j2"), replay_key("k1j", "2"));
    }

    #[test]
    fn concurrent_inserts_of_one_key_succeed_once() {
        let store = Arc::new(store(100_000).0);
        for round in 0..100 {
            let key = replay_key("k", &round.to_string());
            let start = std::sync::Barrier::new(8);
            let wins: usize = std::thread::scope(|s| {
                let handles: Vec<_> = (0..8)
                    .map(|_| {
                        let (store, start) = (store.clone(), &start);
                        s.spawn(move || {
                            start.wait();
                            usize::from(store.insert(key, MINUTE).unwrap())
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).sum()
            });
            assert_eq!(wins, 1, "round {round}");
        }
    }

    #[test]
    fn a_full_store_refuses_and_forgets_nothing_before_its_expiry() {
        let (store, clock) = store(10);
        for n in 0..10 {
            assert_eq!(store.insert(key(n), MINUTE), Ok(true));
        }
        // Full: a new entry is refused, never admitted to be forgotten later...
        assert_eq!(store.insert(key(10), MINUTE), Err(ReplayError::Full));
        assert_eq!(store.insert(key(11), MINUTE), Err(ReplayError::Full));
        // ...and every entry it holds is still a replay, up to the end of its TTL.
        clock.advance(MINUTE - Duration::from_millis(1));
        for n in 0..10 {
            assert_eq!(store.insert(key(n), MINUTE), Ok(false), "entry {n}");
        }
        assert_eq!(store.insert(key(10), MINUTE), Err(ReplayError::Full));
        assert_eq!(store.len(), 10);
        // Once the TTL has passed the room is reclaimed, and the old proof may be seen again
        // (its window, which the TTL covers, is over).
        clock.advance(Duration::from_millis(1));
        assert_eq!(store.insert(key(10), MINUTE), Ok(true));
        assert_eq!(store.insert(key(0), MINUTE), Ok(true));
        assert_eq!(store.len(), 2, "the expired entries were reclaimed");
    }

    #[test]
    fn expired_entries_free_exactly_their_room_and_the_others_stay() {
        let (store, clock) = store(8);
        for n in 0..4 {
            assert_eq!(store.insert(key(n), Duration::from_secs(10)), Ok(true));
        }
        for n in 4..8 {
            assert_eq!(store.insert(key(n), Duration::from_secs(100)), Ok(true));
        }
        assert_eq!(store.insert(key(100), MINUTE), Err(ReplayError::Full));
        clock.advance(Duration::from_secs(10));
        // The four short entries are reclaimed (in whichever shards they were)...
        for n in 100..104 {
            assert_eq!(store.insert(key(n), MINUTE), Ok(true), "entry {n}");
        }
        assert_eq!(store.insert(key(104), MINUTE), Err(ReplayError::Full));
        // ...the long ones are still remembered.
        for n in 4..8 {
            assert_eq!(store.insert(key(n), MINUTE), Ok(false), "entry {n}");
        }
        let empty = MemoryReplayStore::new(0, clock);
        assert_eq!(empty.insert(key(0), MINUTE), Err(ReplayError::Full));
    }

    #[test]
    fn under_concurrent_pressure_every_admitted_entry_is_remembered() {
        const CAPACITY: u64 = 500;
        for _ in 0..20 {
            let (store, _) = store(CAPACITY);
            let store = Arc::new(store);
            let start = std::sync::Barrier::new(8);
            let admitted: Vec<[u8; 32]> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..8)
                    .map(|t| {
                        let (store, start) = (store.clone(), &start);
                        s.spawn(move || {
                            start.wait();
                            // 8 × 200 distinct keys for 500 places.
                            (0..200)
                                .map(|n| key(t * 1000 + n))
                                .filter(|k| match store.insert(*k, MINUTE) {
                                    Ok(fresh) => {
                                        assert!(fresh);
                                        true
                                    }
                                    Err(e) => {
                                        assert_eq!(e, ReplayError::Full);
                                        false
                                    }
                                })
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| h.join().unwrap())
                    .collect()
            });
            assert_eq!(admitted.len() as u64, CAPACITY, "fills up exactly");
            assert_eq!(store.len(), CAPACITY);
            for k in admitted {
                assert_eq!(
                    store.insert(k, MINUTE),
                    Ok(false),
                    "forgotten under pressure"
                );
            }
        }
    }
}
