//! The cells of one node, in memory: a map from (subject, policy, quota) to its TAT, under one
//! mutex (a decision is a few integer operations). Cells whose TAT has passed mean nothing
//! (a missing cell is the same) and are swept when the map grows, at most once a second.
//! The subjects are authenticated keys and users, so the map is bounded by them.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{LimitStore, gcra};

/// Past this many cells, ended ones are swept.
const SWEEP_ABOVE: usize = 100_000;

#[derive(Debug, Default)]
pub struct MemoryLimitStore {
    cells: Mutex<Cells>,
}

#[derive(Debug, Default)]
struct Cells {
    tats: HashMap<(String, &'static str, i64), i64>,
    swept_at: i64,
}

impl MemoryLimitStore {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait::async_trait]
impl LimitStore for MemoryLimitStore {
    async fn acquire(
        &self,
        subject: &str,
        cells: &[(&'static str, gcra::Cell)],
        now: i64,
    ) -> Result<(bool, Vec<i64>), String> {
        let mut state = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        if state.tats.len() > SWEEP_ABOVE && now - state.swept_at >= 1_000_000 {
            state.tats.retain(|_, tat| *tat > now);
            state.swept_at = now;
        }
        let tats: Vec<i64> = cells
            .iter()
            .map(|(name, cell)| {
                let key = (subject.to_owned(), *name, cell.quota());
                gcra::start(state.tats.get(&key).copied(), now)
            })
            .collect();
        let admitted = cells
            .iter()
            .zip(&tats)
            .all(|((_, cell), tat)| gcra::admits(*cell, *tat, now));
        if admitted {
            for ((name, cell), tat) in cells.iter().zip(&tats) {
                state.tats.insert(
                    (subject.to_owned(), *name, cell.quota()),
                    tat + cell.interval,
                );
            }
        }
        Ok((admitted, tats))
    }
}
