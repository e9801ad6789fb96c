//! Time as a dependency: every expiry, window and rotation reads the time through [`Clock`].
//! The only place in keygate that asks the operating system for the wall-clock time.

use std::fmt::Debug;
use std::sync::Mutex;

use chrono::{DateTime, Duration, DurationRound, Utc};

pub trait Clock: Send + Sync + Debug {
    /// The current instant, truncated to whole milliseconds so that stored and
    /// compared timestamps have one precision on every database.
    fn now(&self) -> DateTime<Utc>;
}

fn truncate(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::milliseconds(1)).unwrap_or(t)
}

/// The operating system's clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> DateTime<Utc> {
        truncate(Utc::now())
    }
}

/// A clock that only moves when told to: for tests of expiry and rotation.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    /// Starts at the operating system's current time.
    pub fn starting_now() -> Self {
        Self(Mutex::new(SystemClock.now()))
    }

    pub fn advance(&self, by: std::time::Duration) {
        let by = Duration::from_std(by).unwrap_or(Duration::MAX);
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now = truncate(*now + by);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}
