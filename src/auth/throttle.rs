//! The brute-force throttle (docs/security.md): counts failed authentications that could
//! have been a guess (a well-formed secret that did not match) per presented key id and per
//! client IP, and refuses further attempts of either for the rest of its one-minute window,
//! before any database look-up. Also owns the rule for "the client IP" behind reverse
//! proxies (`server.trusted_proxies`). No HTTP types and no storage here.
//!
//! Each key id or IP has a window that opens at its first counted failure and lasts
//! [`WINDOW`]; past the limit within it, every attempt (a correct secret included) is refused
//! until the window ends, and `Retry-After` says when. Nothing lasts longer: there is no
//! lockout. Successes are never counted. Memory is bounded: each map holds at most
//! [`MAX_TRACKED`] windows; when it is full of live windows, failures of untracked key ids
//! (or IPs) share one overflow window, so guessing stays limited under a flood of distinct
//! ids (at the price that those ids are throttled together until the flood's windows end).
//! Refused attempts are counted in memory ([`Throttle::throttled_total`]), never written to
//! the audit log one by one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

use crate::clock::Clock;
use crate::config::LimitSettings;

/// How long a failure counts.
pub const WINDOW: Duration = Duration::seconds(60);

/// The most key ids (and, separately, IPs) tracked at once.
pub const MAX_TRACKED: usize = 100_000;

/// Attempts are refused for `retry_after` more seconds (1 to 60).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after: u64,
}

#[derive(Clone, Copy, Debug)]
struct Window {
    opened: DateTime<Utc>,
    failures: u32,
}

impl Window {
    fn live(&self, now: DateTime<Utc>) -> bool {
        now < self.opened + WINDOW
    }
}

/// One map of windows (key ids or IPs) with its cap and overflow window.
#[derive(Debug)]
struct Counters {
    limit: u32,
    state: Mutex<Tracked>,
}

#[derive(Debug, Default)]
struct Tracked {
    windows: HashMap<String, Window>,
    /// Shared by untracked ids while `windows` is full.
    overflow: Option<Window>,
    /// The last time a full map was swept of ended windows (at most once a second).
    swept: Option<DateTime<Utc>>,
}

impl Counters {
    fn new(limit: u32) -> Self {
        Self {
            limit,
            state: Mutex::new(Tracked::default()),
        }
    }

    fn check(&self, id: &str, now: DateTime<Utc>) -> Result<(), Throttled> {
        let tracked = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let window = match tracked.windows.get(id) {
            Some(w) => Some(w),
            None if tracked.windows.len() >= MAX_TRACKED => tracked.overflow.as_ref(),
            None => None,
        };
        match window {
            Some(w) if w.live(now) && w.failures >= self.limit => {
                let left = (w.opened + WINDOW - now).num_milliseconds();
                let seconds = u64::try_from((left + 999) / 1000).unwrap_or(60);
                Err(Throttled {
                    retry_after: seconds.clamp(1, 60),
                })
            }
            _ => Ok(()),
        }
    }

    fn fail(&self, id: &str, now: DateTime<Utc>) {
        let mut tracked = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let Tracked {
            windows,
            overflow,
            swept,
        } = &mut *tracked;
        let full = windows.len() >= MAX_TRACKED;
        if full
            && !windows.contains_key(id)
            && swept.is_none_or(|t| now - t >= Duration::seconds(1))
        {
            windows.retain(|_, w| w.live(now));
            *swept = Some(now);
        }
        let fresh = Window {
            opened: now,
            failures: 0,
        };
        let window = if windows.contains_key(id) || windows.len() < MAX_TRACKED {
            windows.entry(id.to_owned()).or_insert(fresh)
        } else {
            overflow.get_or_insert(fresh)
        };
        if !window.live(now) {
            *window = fresh;
        }
        window.failures = window.failures.saturating_add(1);
    }
}

/// The throttle every node keeps in memory.
#[derive(Debug)]
pub struct Throttle {
    keys: Counters,
    ips: Counters,
    clock: Arc<dyn Clock>,
    proxies: TrustedProxies,
    throttled: AtomicU64,
}

impl Throttle {
    pub fn new(limits: &LimitSettings, proxies: TrustedProxies, clock: Arc<dyn Clock>) -> Self {
        Self {
            keys: Counters::new(limits.failed_auth_per_key_per_minute),
            ips: Counters::new(limits.failed_auth_per_ip_per_minute),
            clock,
            proxies,
            throttled: AtomicU64::new(0),
        }
    }

    /// Before any look-up: is `key_id` or `ip` past its limit? A refusal is counted.
    pub fn check(&self, key_id: Option<&str>, ip: Option<&str>) -> Result<(), Throttled> {
        let now = self.clock.now();
        let result = ip
            .map(ip_bucket)
            .map_or(Ok(()), |ip| self.ips.check(&ip, now))
            .and_then(|()| key_id.map_or(Ok(()), |id| self.keys.check(id, now)));
        if result.is_err() {
            self.throttled.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Counts a failure that could have been a guess.
    pub fn fail(&self, key_id: Option<&str>, ip: Option<&str>) {
        let now = self.clock.now();
        if let Some(ip) = ip {
            self.ips.fail(&ip_bucket(ip), now);
        }
        if let Some(id) = key_id {
            self.keys.fail(id, now);
        }
    }

    /// Attempts refused so far (for metrics).
    pub fn throttled_total(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }

    pub fn proxies(&self) -> &TrustedProxies {
        &self.proxies
    }
}

/// What an IP is counted as: the address, or for IPv6 its /64 (one subscriber's prefix).
pub fn ip_bucket(ip: &str) -> String {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Ok(IpAddr::V6(v6)) => v6
            .to_ipv4_mapped()
            .map_or_else(|| ip.to_owned(), |v4| v4.to_string()),
        _ => ip.to_owned(),
    }
}

/// `server.trusted_proxies`: addresses and CIDR ranges of reverse proxies.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

#[derive(Debug, thiserror::Error)]
#[error("server.trusted_proxies: `{0}` is not an IP address or CIDR range")]
pub struct ProxyParseError(String);

impl TrustedProxies {
    pub fn parse(entries: &[String]) -> Result<Self, ProxyParseError> {
        entries
            .iter()
            .map(|entry| {
                let bad = || ProxyParseError(entry.clone());
                let (addr, prefix) = match entry.trim().split_once('/') {
                    Some((addr, prefix)) => (addr, Some(prefix)),
                    None => (entry.trim(), None),
                };
                let addr = addr.parse::<IpAddr>().map_err(|_| bad())?.to_canonical();
                let max = if addr.is_ipv4() { 32 } else { 128 };
                let prefix = match prefix {
                    Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
                    None => max,
                };
                Ok((addr, prefix))
            })
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    fn contains(&self, ip: IpAddr) -> bool {
        // A dual-stack listener sees IPv4 peers as `::ffff:a.b.c.d`.
        let ip = ip.to_canonical();
        self.0.iter().any(|(net, prefix)| match (net, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u32::from(*net).into(), *prefix, 32)
                    == masked(u32::from(ip).into(), *prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(u128::from(*net), *prefix, 128) == masked(u128::from(ip), *prefix, 128)
            }
            _ => false,
        })
    }

    /// The client: `peer`, or when `peer` is a trusted proxy, the right-most address of
    /// `X-Forwarded-For` (all its header values in order) that is not a trusted proxy. An
    /// entry that is not an IP address ends the walk at the proxy that added it.
    pub fn client_ip<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl Iterator<Item = &'a str>,
    ) -> IpAddr {
        let peer = peer.to_canonical();
        if self.0.is_empty() || !self.contains(peer) {
            return peer;
        }
        let hops: Vec<&str> = forwarded_for.flat_map(|v| v.split(',')).collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            if !self.contains(client) {
                break;
            }
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => client = ip.to_canonical(),
                Err(_) => break,
            }
        }
        client
    }
}

fn masked(bits: u128, prefix: u8, width: u32) -> u128 {
    let prefix = u32::from(prefix);
    if prefix == 0 {
        return 0;
    }
    let shift = width - prefix;
    (bits >> shift) << shift
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn throttle(per_key: u32, per_ip: u32) -> (Throttle, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::starting_now());
        let limits = LimitSettings {
            failed_auth_per_key_per_minute: per_key,
            failed_auth_per_ip_per_minute: per_ip,
            ..LimitSettings::default()
        };
        (
            Throttle::new(&limits, TrustedProxies::default(), clock.clone()),
            clock,
        )
    }

    #[test]
    fn a_key_is_refused_past_its_limit_until_its_window_ends() {
        let (t, clock) = throttle(3, 100);
        for _ in 0..3 {
            assert!(t.check(Some("key_a"), Some("10.0.0.1")).is_ok());
            t.fail(Some("key_a"), Some("10.0.0.1"));
        }
        clock.advance(std::time::Duration::from_secs(20));
        let refused = t.check(Some("key_a"), Some("10.0.0.9")).unwrap_err();
        assert_eq!(refused.retry_after, 40);
        assert!(t.check(Some("key_b"), Some("10.0.0.1")).is_ok());
        clock.advance(std::time::Duration::from_secs(40));
        assert!(t.check(Some("key_a"), Some("10.0.0.1")).is_ok());
        assert_eq!(t.throttled_total(), 1);
    }

    #[test]
    fn an_ip_is_refused_past_its_limit_whatever_the_key() {
        let (t, _) = throttle(100, 2);
        t.fail(Some("key_a"), Some("2001:db8::1"));
        t.fail(Some("key_b"), Some("2001:db8::2"));
        assert!(t.check(Some("key_c"), Some("2001:db8::3")).is_err());
        assert!(t.check(Some("key_c"), Some("2001:db9::3")).is_ok());
    }

    #[test]
    fn a_full_map_still_counts_in_the_overflow_window() {
        let (t, _) = throttle(2, u32::MAX);
        for i in 0..MAX_TRACKED {
            t.fail(Some(&format!("key_{i}")), None);
        }
        t.fail(Some("key_new1"), None);
        t.fail(Some("key_new2"), None);
        assert!(t.check(Some("key_new3"), None).is_err());
    }

    #[test]
    fn the_client_is_the_right_most_untrusted_forwarded_address() {
        let proxies =
            TrustedProxies::parse(&["10.0.0.0/8".to_owned(), "192.0.2.1".to_owned()]).unwrap();
        let peer: IpAddr = "10.1.2.3".parse().unwrap();
        let client = |xff: &[&str]| proxies.client_ip(peer, xff.iter().copied()).to_string();
        assert_eq!(client(&["1.1.1.1, 203.0.113.7, 10.9.9.9"]), "203.0.113.7");
        assert_eq!(client(&["1.1.1.1", "192.0.2.1"]), "1.1.1.1");
        assert_eq!(client(&[]), "10.1.2.3");
        assert_eq!(client(&["junk, 10.2.2.2"]), "10.2.2.2");
        let untrusted: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(
            proxies.client_ip(untrusted, ["1.1.1.1"].into_iter()),
            untrusted
        );
        assert!(TrustedProxies::parse(&["10.0.0.0/33".to_owned()]).is_err());
        assert!(TrustedProxies::parse(&["nope".to_owned()]).is_err());
    }
}
