//! The in-memory DPoP replay store's memory at its default capacity: inserts 1,000,000
//! distinct proof keys (as many live entries as `dpop.replay_capacity` allows by default)
//! and prints the process's resident memory before and after, from `/proc/self/status`.
//!
//! `cargo bench --bench replay_memory`

// A benchmark that cannot set up its inputs should stop loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use keygate::auth::dpop::{MemoryReplayStore, ReplayStore};
use keygate::clock::SystemClock;

const ENTRIES: u64 = 1_000_000;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .expect("/proc/self/status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let store = MemoryReplayStore::new(ENTRIES, Arc::new(SystemClock));
    let before = rss_kib();
    let start = Instant::now();
    for i in 0..ENTRIES {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&i.to_le_bytes());
        // Spread the keys as digests would be.
        key[8..16].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
        assert!(
            store
                .insert_if_absent(key, Duration::from_secs(391))
                .await
                .expect("room for every entry"),
            "entry {i} is new"
        );
    }
    let elapsed = start.elapsed();
    let after = rss_kib();
    // The store refuses past its capacity rather than forgetting an entry.
    assert!(
        store
            .insert_if_absent([0xff; 32], Duration::from_secs(391))
            .await
            .is_err(),
        "a full store refuses"
    );
    println!(
        "{ENTRIES} live entries: RSS {:.1} MiB -> {:.1} MiB (+{:.1} MiB, {:.0} bytes/entry); {:.2} µs per insert",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        (after - before) as f64 / 1024.0,
        (after - before) as f64 * 1024.0 / ENTRIES as f64,
        elapsed.as_secs_f64() * 1e6 / ENTRIES as f64
    );
}
