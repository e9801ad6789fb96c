//! Random identifiers and secrets: `org_…`, `usr_…`, `key_…`, `ses_…` ids and the random
//! part of credentials, all from the operating system's CSPRNG through aws-lc-rs.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `len` uniformly random base62 characters (log2(62) ≈ 5.954 bits each).
pub fn random_base62(len: usize) -> String {
    let rng = SystemRandom::new();
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        if rng.fill(&mut buf).is_err() {
            // aws-lc's RNG only fails when the OS has no entropy source at all; there is
            // nothing safe to fall back to.
            std::process::abort();
        }
        // Rejection sampling: 248 = 4 × 62, so bytes below it map uniformly.
        for b in buf.iter().filter(|b| **b < 248) {
            if out.len() == len {
                break;
            }
            out.push(BASE62[usize::from(*b % 62)] as char);
        }
    }
    out
}

/// Encodes `n` as exactly `width` base62 digits (most significant first).
pub fn base62_fixed(mut n: u64, width: usize) -> String {
    let mut digits = vec![b'0'; width];
    for d in digits.iter_mut().rev() {
        *d = BASE62[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8_lossy(&digits).into_owned()
}

pub fn is_base62(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Characters in the random part of ids: 24 × 5.954 ≈ 143 bits, unguessable and collision-free.
const ID_LEN: usize = 24;

/// A fresh id with its type prefix, e.g. `usr_3kT…`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", random_base62(ID_LEN))
}

/// Whether `s` has the shape of an id made by [`new_id`] with this prefix.
pub fn is_id(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|rest| rest.len() == ID_LEN && is_base62(rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_prefix_length_and_alphabet() {
        let id = new_id("key");
        assert!(is_id(&id, "key"), "{id}");
        assert!(!is_id(&id, "usr"));
        assert!(!is_id("key_short", "key"));
        assert_ne!(new_id("key"), new_id("key"));
    }

    #[test]
    fn random_base62_uses_the_whole_alphabet() {
        let s = random_base62(10_000);
        let distinct: std::collections::HashSet<char> = s.chars().collect();
        assert_eq!(distinct.len(), 62);
    }

    #[test]
    fn base62_fixed_pads_and_encodes() {
        assert_eq!(base62_fixed(0, 6), "000000");
        assert_eq!(base62_fixed(61, 2), "0z");
        assert_eq!(base62_fixed(62, 2), "10");
        assert_eq!(base62_fixed(u64::from(u32::MAX), 6), "4gfFC3");
    }
}
