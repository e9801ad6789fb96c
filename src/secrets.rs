//! The server's two secrets: the pepper (HMAC key for credential digests) and the
//! key-encryption key (AES-256-GCM over signing keys). Taken from configuration when set,
//! otherwise read from, or generated once into, `{data_dir}/secrets/` with mode 0600.
//! Neither value ever reaches a log line or a `Debug` output.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, RandomizedNonceKey};
use aws_lc_rs::hmac;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};

use crate::config::Settings;

const SECRET_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("secrets.{0} must be 32 bytes, as base64 or hex")]
    BadFormat(&'static str),
    #[error("secret file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("secret file {0} is not 32 bytes; restore it from a backup or remove it deliberately")]
    Corrupt(PathBuf),
    #[error("the operating system's random source failed")]
    Rng,
}

/// HMAC-SHA256 digests of high-entropy credentials (API keys, refresh tokens).
pub struct Pepper(hmac::Key);

impl Pepper {
    pub fn new(bytes: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, bytes))
    }

    /// Lower-case hex HMAC-SHA256 over `domain || 0x00 || secret`; the domain keeps
    /// digests of different credential kinds apart.
    pub fn digest(&self, domain: &str, secret: &[u8]) -> String {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(domain.as_bytes());
        ctx.update(&[0]);
        ctx.update(secret);
        hex::encode(ctx.sign().as_ref())
    }
}

impl std::fmt::Debug for Pepper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pepper(…)")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("ciphertext failed to decrypt: wrong key-encryption key or corrupted data")]
pub struct DecryptError;

/// AES-256-GCM with a random 96-bit nonce per message (stored in front of the ciphertext).
pub struct Kek(RandomizedNonceKey);

impl Kek {
    pub fn new(bytes: &[u8]) -> Result<Self, SecretsError> {
        RandomizedNonceKey::new(&AES_256_GCM, bytes)
            .map(Self)
            .map_err(|_| SecretsError::BadFormat("kek"))
    }

    /// `nonce || ciphertext || tag`; `aad` binds the ciphertext to its context (e.g. the kid).
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SecretsError> {
        let mut data = plaintext.to_vec();
        let nonce = self
            .0
            .seal_in_place_append_tag(Aad::from(aad), &mut data)
            .map_err(|_| SecretsError::Rng)?;
        let mut out = nonce.as_ref().to_vec();
        out.extend_from_slice(&data);
        Ok(out)
    }

    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, DecryptError> {
        let (nonce, ciphertext) = sealed
            .split_at_checked(aws_lc_rs::aead::NONCE_LEN)
            .ok_or(DecryptError)?;
        let nonce =
            aws_lc_rs::aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| DecryptError)?;
        let mut data = ciphertext.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(aad), &mut data)
            .map_err(|_| DecryptError)?;
        Ok(plain.to_vec())
    }
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek(…)")
    }
}

#[derive(Debug)]
pub struct Secrets {
    pub pepper: Pepper,
    pub kek: Kek,
}

impl Secrets {
    /// Configured values win; otherwise the files in the data directory, created if missing.
    pub fn load(settings: &Settings) -> Result<Self, SecretsError> {
        let dir = settings.data_dir.join("secrets");
        let pepper = resolve("pepper", settings.secrets.pepper.as_ref(), &dir)?;
        let kek = resolve("kek", settings.secrets.kek.as_ref(), &dir)?;
        Ok(Self {
            pepper: Pepper::new(&pepper),
            kek: Kek::new(&kek)?,
        })
    }
}

fn resolve(
    name: &'static str,
    configured: Option<&SecretString>,
    dir: &Path,
) -> Result<Vec<u8>, SecretsError> {
    match configured {
        Some(value) => decode(value.expose_secret()).ok_or(SecretsError::BadFormat(name)),
        None => read_or_generate(&dir.join(name)),
    }
}

/// Accepts 64 hex characters or base64 (standard or URL-safe, padded or not) of 32 bytes.
fn decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    let candidates = [
        hex::decode(text).ok(),
        base64::engine::general_purpose::STANDARD.decode(text).ok(),
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .ok(),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|b| b.len() == SECRET_LEN)
}

fn read_or_generate(path: &Path) -> Result<Vec<u8>, SecretsError> {
    let io = |source| SecretsError::Io {
        path: path.to_path_buf(),
        source,
    };
    match fs::read_to_string(path) {
        Ok(text) => return decode(&text).ok_or_else(|| SecretsError::Corrupt(path.to_path_buf())),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
        Err(_) => {}
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    let mut bytes = vec![0u8; SECRET_LEN];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| SecretsError::Rng)?;
    // create_new: two processes starting at once cannot overwrite each other's secret.
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match file {
        Ok(mut f) => {
            f.write_all(hex::encode(&bytes).as_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
            tracing::warn!(
                path = %path.display(),
                "generated a new secret; back this file up: without it every API key or signing key becomes unusable"
            );
            Ok(bytes)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = fs::read_to_string(path).map_err(io)?;
            decode(&text).ok_or_else(|| SecretsError::Corrupt(path.to_path_buf()))
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_files_are_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets").join("pepper");
        let first = read_or_generate(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read_or_generate(&path).unwrap(), first);
    }

    #[test]
    fn configured_secrets_accept_hex_and_base64_and_reject_other_lengths() {
        let bytes = [7u8; 32];
        assert_eq!(decode(&hex::encode(bytes)).unwrap(), bytes);
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        assert_eq!(decode(&b64).unwrap(), bytes);
        assert!(decode("abcd").is_none());
        assert!(decode(&hex::encode([1u8; 16])).is_none());
    }

    #[test]
    fn kek_round_trips_and_binds_aad() {
        let kek = Kek::new(&[9u8; 32]).unwrap();
        let sealed = kek.seal(b"kid-1", b"private").unwrap();
        assert_eq!(kek.open(b"kid-1", &sealed).unwrap(), b"private");
        assert!(kek.open(b"kid-2", &sealed).is_err());
        let other = Kek::new(&[8u8; 32]).unwrap();
        assert!(other.open(b"kid-1", &sealed).is_err());
    }

    #[test]
    fn digests_are_keyed_and_domain_separated() {
        let p = Pepper::new(&[1u8; 32]);
        let q = Pepper::new(&[2u8; 32]);
        assert_eq!(p.digest("api_key", b"x"), p.digest("api_key", b"x"));
        assert_ne!(p.digest("api_key", b"x"), q.digest("api_key", b"x"));
        assert_ne!(p.digest("api_key", b"x"), p.digest("refresh_token", b"x"));
        assert_eq!(p.digest("api_key", b"x").len(), 64);
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    pub fn kek() -> Kek {
        Kek::new(&[3u8; 32]).unwrap()
    }
}
