//! The generic cell rate algorithm (GCRA), the arithmetic shared by the in-memory store and
//! the Redis script (`redis.lua` performs the same integer steps): one number per limited
//! subject and policy, its theoretical arrival time (TAT), in microseconds. No I/O here.
//!
//! A policy of `quota` requests per `window` admits one request every
//! `interval = floor(window / quota)` on average and up to `quota` at once: a request at
//! `now` is admitted when `max(tat, now) + interval - now <= quota × interval`, and then
//! the TAT moves to `max(tat, now) + interval`. All arithmetic is on integers below 2^53,
//! so Lua's doubles compute exactly what Rust computes, and `quota` requests at one instant
//! are admitted while request `quota + 1` is refused, whatever the quota.

/// One policy's parameters, in microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cell {
    /// Time one request uses: `floor(window / quota)`, at least 1.
    pub interval: i64,
    /// The most time the admitted requests may be ahead of now: `quota × interval`.
    pub capacity: i64,
}

impl Cell {
    /// The quota the cell was made for (a cell is stored under it, so a changed limit
    /// starts a fresh count).
    pub fn quota(&self) -> i64 {
        self.capacity / self.interval
    }

    pub fn new(quota: u32, window_secs: u64) -> Self {
        let window = i64::try_from(window_secs)
            .unwrap_or(i64::MAX / 2_000_000)
            .saturating_mul(1_000_000);
        let quota = i64::from(quota.max(1));
        let interval = (window / quota).max(1);
        Self {
            interval,
            capacity: interval.saturating_mul(quota),
        }
    }
}

/// The state of one policy after a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Level {
    /// Whether this policy alone would admit the request.
    pub admits: bool,
    /// Requests still admitted at once after this decision.
    pub remaining: u64,
    /// Seconds until the full quota is available again.
    pub reset: u64,
    /// Seconds until this policy admits a request again (0 when it admits this one).
    pub retry_after: u64,
}

fn secs_ceil(micros: i64) -> u64 {
    u64::try_from(micros.max(0))
        .unwrap_or(0)
        .div_ceil(1_000_000)
}

/// The TAT a request at `now` starts from (a stored TAT in the past counts as now).
pub fn start(stored: Option<i64>, now: i64) -> i64 {
    stored.map_or(now, |t| t.max(now))
}

/// Whether `cell` admits a request at `now` from TAT `tat` (already [`start`]ed).
pub fn admits(cell: Cell, tat: i64, now: i64) -> bool {
    tat + cell.interval - now <= cell.capacity
}

/// The policy's level once the request was decided: `admitted` says whether the request
/// as a whole (every policy) was admitted, and so whether the TAT moved.
pub fn level(cell: Cell, tat: i64, now: i64, admitted: bool) -> Level {
    let own = admits(cell, tat, now);
    let after = if admitted { tat + cell.interval } else { tat };
    let used = after - now;
    Level {
        admits: own,
        remaining: u64::try_from((cell.capacity - used) / cell.interval).unwrap_or(0),
        reset: secs_ceil(used),
        retry_after: if own && admitted {
            0
        } else {
            // The earliest `s` with `tat + interval - s <= capacity`.
            secs_ceil(tat + cell.interval - cell.capacity - now).max(1)
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: i64 = 1_000_000;

    /// Runs `n` requests at `now` against one policy; returns the admitted count and TAT.
    fn burst(cell: Cell, mut tat: Option<i64>, now: i64, n: u32) -> (u32, Option<i64>) {
        let mut admitted = 0;
        for _ in 0..n {
            let t = start(tat, now);
            if admits(cell, t, now) {
                tat = Some(t + cell.interval);
                admitted += 1;
            }
        }
        (admitted, tat)
    }

    #[test]
    fn exactly_the_quota_is_admitted_at_once_for_awkward_quotas() {
        for quota in [1, 2, 7, 600, 7_777, 9_999, 59_999, 1_000_000] {
            let cell = Cell::new(quota, 60);
            let (admitted, _) = burst(cell, None, 1_765_000_000 * SEC, quota + 5);
            assert_eq!(admitted, quota, "quota {quota}");
        }
    }

    #[test]
    fn a_refusal_says_when_the_next_request_is_admitted_and_then_it_is() {
        let cell = Cell::new(6, 60); // one every 10 s
        let now = 1_000 * SEC;
        let (_, tat) = burst(cell, None, now, 6);
        let t = start(tat, now);
        let refused = level(cell, t, now, false);
        assert!(!refused.admits);
        assert_eq!(refused.remaining, 0);
        assert_eq!(refused.retry_after, 10);
        assert_eq!(refused.reset, 60);
        let later = now + 10 * SEC;
        assert!(admits(cell, start(tat, later), later));
        assert!(!admits(cell, start(tat, later - 1), later - 1));
    }

    #[test]
    fn remaining_counts_down_from_the_quota() {
        let cell = Cell::new(600, 60);
        let now = 5 * SEC;
        let first = level(cell, start(None, now), now, true);
        assert_eq!(
            (first.remaining, first.reset, first.retry_after),
            (599, 1, 0)
        );
    }
}
