//! Stateless server nonces (RFC 9449 §8, §9): the nonce of a time window is an HMAC of the
//! window's number under the server's pepper (domain-separated), so every node computes the
//! same value without sharing state. The current and the previous window are accepted.

use chrono::{DateTime, Utc};
use subtle::ConstantTimeEq;

use crate::secrets::Pepper;

const DOMAIN: &str = "dpop-nonce";
/// 128 bits, as hex.
const NONCE_LEN: usize = 32;

pub struct Nonces {
    pepper: std::sync::Arc<Pepper>,
    window_secs: i64,
}

impl std::fmt::Debug for Nonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nonces")
            .field("window_secs", &self.window_secs)
            .finish()
    }
}

impl Nonces {
    pub fn new(pepper: std::sync::Arc<Pepper>, window: std::time::Duration) -> Self {
        Self {
            pepper,
            window_secs: i64::try_from(window.as_secs()).unwrap_or(i64::MAX).max(1),
        }
    }

    fn window(&self, now: DateTime<Utc>) -> i64 {
        now.timestamp().div_euclid(self.window_secs)
    }

    fn for_window(&self, window: i64) -> String {
        let mut mac = self.pepper.digest(DOMAIN, &window.to_be_bytes());
        mac.truncate(NONCE_LEN);
        mac
    }

    /// The nonce of the current window.
    pub fn current(&self, now: DateTime<Utc>) -> String {
        self.for_window(self.window(now))
    }

    /// True for the nonce of the current or the previous window.
    pub fn accepts(&self, nonce: &str, now: DateTime<Utc>) -> bool {
        let window = self.window(now);
        [window, window - 1].iter().any(|w| {
            let expected = self.for_window(*w);
            bool::from(expected.as_bytes().ct_eq(nonce.as_bytes()))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn current_and_previous_windows_pass_older_ones_and_other_servers_do_not() {
        let pepper = Arc::new(Pepper::new(&[1u8; 32]));
        let nonces = Nonces::new(pepper, Duration::from_secs(60));
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let n0 = nonces.current(t0);
        assert_eq!(n0.len(), NONCE_LEN);
        assert!(nonces.accepts(&n0, t0));
        assert!(nonces.accepts(&n0, t0 + chrono::Duration::seconds(60)));
        assert!(!nonces.accepts(&n0, t0 + chrono::Duration::seconds(120)));
        assert_ne!(n0, nonces.current(t0 + chrono::Duration::seconds(60)));
        assert!(!nonces.accepts("", t0));

        let other = Nonces::new(Arc::new(Pepper::new(&[2u8; 32])), Duration::from_secs(60));
        assert!(!other.accepts(&n0, t0));
    }
}
