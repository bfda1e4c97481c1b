//! Generated secrets: database passwords, preshared keys, auth secrets.
//!
//! Values are `secrecy::SecretString` from the moment they exist. They are drawn from the OS CSPRNG
//! (through `getrandom`) or derived with HKDF-SHA256 from a repository-level master secret, encoded in
//! base64url without padding: every character is RFC 3986 "unreserved", so a value is its own
//! percent-encoding and one mask covers it inside a URL too.
//!
//! Stability: with a master secret ([`DerivedSecrets`]) a value depends only on the master, the
//! environment name, the secret's name and its `rotation` counter, so a re-run on a new push gets the
//! same values and converges without rotating anything. Rotate one secret by bumping its `rotation` in
//! `preview.toml`; rotate all of them by changing the master.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::Sha256;

use crate::error::{Error, Result};
use crate::name::PreviewName;

/// Minimum entropy of any generated credential, in bytes (128 bits).
pub const MIN_BYTES: usize = 16;
/// Minimum entropy of auth secrets and preshared keys, in bytes (256 bits).
pub const MIN_KEY_BYTES: usize = 32;
/// Minimum length of a master secret, in characters.
pub const MIN_MASTER_LEN: usize = 32;

/// What a generated secret is for; decides its minimum entropy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretKind {
    /// A password (≥ 128 bits).
    Password,
    /// An auth secret, signing key or preshared key (≥ 256 bits).
    Key,
}

impl SecretKind {
    /// The least number of random bytes allowed for this kind.
    pub fn min_bytes(self) -> usize {
        match self {
            SecretKind::Password => MIN_BYTES,
            SecretKind::Key => MIN_KEY_BYTES,
        }
    }
}

/// The purpose label of the key app hosts use for the ownership fingerprint they keep next to a
/// value they wrote (e.g. the `fp=` in a Vercel env var's comment); see [`DigestKey`].
pub const FINGERPRINT_KEY: &str = "app-env-fingerprint/v1";

/// A 256-bit key for keyed digests (HMAC-SHA256).
///
/// Why keyed: a provider that keeps a digest of what it wrote next to it (so a re-run sees
/// "unchanged" without reading the value back) publishes that digest to everyone who can read the
/// resource. An unkeyed hash of a low-entropy value (`hunter2`, stored write-only) can be confirmed
/// offline by hashing guesses; an HMAC under a key derived from the master secret cannot be
/// reproduced without the master. `Debug` shows no key material; the bytes are zeroed on drop.
#[derive(Clone)]
pub struct DigestKey {
    key: Arc<SecretBox<[u8; 32]>>,
}

impl fmt::Debug for DigestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DigestKey(<redacted>)")
    }
}

impl DigestKey {
    /// A key made of these bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self {
            key: Arc::new(SecretBox::new(Box::new(bytes))),
        }
    }

    /// A fresh key from the OS CSPRNG (digests made with it can only be compared within the life
    /// of this key).
    ///
    /// # Errors
    /// When the OS random source fails.
    pub fn random() -> Result<Self> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)
            .map_err(|e| Error::failed("generating a key", format!("OS random source: {e}")))?;
        Ok(Self::from_bytes(bytes))
    }

    /// HMAC-SHA256 over `parts`, each prefixed with its length so `("ab", "c")` and `("a", "bc")`
    /// differ.
    pub fn digest(&self, parts: &[&str]) -> [u8; 32] {
        // HMAC takes keys of any length; a 32-byte key cannot be refused.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.key.expose_secret())
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        for part in parts {
            mac.update(&(part.len() as u64).to_le_bytes());
            mac.update(part.as_bytes());
        }
        mac.finalize().into_bytes().into()
    }

    /// The first `bytes` bytes (at most 32) of [`digest`](Self::digest), in lowercase hex.
    pub fn hex(&self, parts: &[&str], bytes: usize) -> String {
        self.digest(parts)
            .iter()
            .take(bytes)
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The alphabet generated values use (base64url, no padding).
pub fn is_url_safe(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Where generated secrets come from.
pub trait SecretSource: fmt::Debug + Send + Sync {
    /// The value of secret `name` of environment `env`, with `bytes` bytes of entropy, for rotation
    /// counter `rotation`.
    ///
    /// # Errors
    /// When the OS random source fails.
    fn generate(
        &self,
        env: &PreviewName,
        name: &str,
        rotation: u32,
        bytes: usize,
    ) -> Result<SecretString>;

    /// Whether the same inputs always give the same value (so re-runs do not rotate).
    fn is_stable(&self) -> bool;

    /// A key for keyed digests, the same for every environment and every run, distinct per
    /// `purpose` (e.g. [`FINGERPRINT_KEY`]); `None` when this source has nothing stable to derive
    /// one from (the default).
    ///
    /// # Errors
    /// When deriving it fails.
    fn digest_key(&self, purpose: &str) -> Result<Option<DigestKey>> {
        let _ = purpose;
        Ok(None)
    }
}

/// Fresh values from the OS CSPRNG on every call. Not stable: use it for one-off environments or
/// where the values are stored elsewhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomSecrets;

impl SecretSource for RandomSecrets {
    fn generate(&self, _: &PreviewName, _: &str, _: u32, bytes: usize) -> Result<SecretString> {
        let mut buf = vec![0u8; bytes];
        getrandom::fill(&mut buf)
            .map_err(|e| Error::failed("generating a secret", format!("OS random source: {e}")))?;
        let s = URL_SAFE_NO_PAD.encode(&buf);
        buf.fill(0);
        Ok(SecretString::from(s))
    }

    fn is_stable(&self) -> bool {
        false
    }
}

/// Values derived with HKDF-SHA256 from a repository-level master secret: stable for the life of an
/// environment, distinct per environment, secret name and rotation.
pub struct DerivedSecrets {
    master: SecretString,
}

impl fmt::Debug for DerivedSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DerivedSecrets").finish_non_exhaustive()
    }
}

impl DerivedSecrets {
    /// Uses `master` (e.g. the `PREVIEW_MASTER_SECRET` repository secret; generate one with
    /// `openssl rand -base64 48`).
    ///
    /// # Errors
    /// [`Error::Config`] when the master is shorter than [`MIN_MASTER_LEN`] characters.
    pub fn new(master: SecretString) -> Result<Self> {
        let len = master.expose_secret().chars().count();
        if len < MIN_MASTER_LEN {
            return Err(Error::config(format!(
                "the master secret has {len} characters; at least {MIN_MASTER_LEN} are required (generate one with `openssl rand -base64 48`)"
            )));
        }
        Ok(Self { master })
    }
}

impl SecretSource for DerivedSecrets {
    fn generate(
        &self,
        env: &PreviewName,
        name: &str,
        rotation: u32,
        bytes: usize,
    ) -> Result<SecretString> {
        let hk = Hkdf::<Sha256>::new(
            Some(b"preview/secrets/v1"),
            self.master.expose_secret().as_bytes(),
        );
        let info = format!("{}\0{}\0{}", env.as_str(), name, rotation);
        let mut okm = vec![0u8; bytes];
        hk.expand(info.as_bytes(), &mut okm).map_err(|_| {
            Error::config(format!(
                "secret {name}: {bytes} bytes is more than HKDF-SHA256 can derive (8160)"
            ))
        })?;
        let s = URL_SAFE_NO_PAD.encode(&okm);
        okm.fill(0);
        Ok(SecretString::from(s))
    }

    fn is_stable(&self) -> bool {
        true
    }

    /// HKDF-SHA256 of the master with its own salt (`preview/keys/v1`, not the secrets' salt) and
    /// `purpose` as the info: independent of every generated secret, and of keys for other purposes.
    fn digest_key(&self, purpose: &str) -> Result<Option<DigestKey>> {
        let hk = Hkdf::<Sha256>::new(
            Some(b"preview/keys/v1"),
            self.master.expose_secret().as_bytes(),
        );
        let mut okm = [0u8; 32];
        hk.expand(purpose.as_bytes(), &mut okm)
            .map_err(|_| Error::failed("deriving a key", "HKDF refused a 32-byte output"))?;
        let key = DigestKey::from_bytes(okm);
        okm.fill(0);
        Ok(Some(key))
    }
}

/// The resolved secret values of one environment, by name. `Debug` lists names only.
#[derive(Clone, Default)]
pub struct SecretValues {
    values: BTreeMap<String, SecretString>,
}

impl fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.values.keys()).finish()
    }
}

impl SecretValues {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a value.
    pub fn insert(&mut self, name: impl Into<String>, value: SecretString) {
        self.values.insert(name.into(), value);
    }

    /// A value by name.
    pub fn get(&self, name: &str) -> Option<&SecretString> {
        self.values.get(name)
    }

    /// Every (name, value), for masking.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &SecretString)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name::{Naming, PrNumber};
    use std::collections::HashSet;

    fn env(n: u64) -> PreviewName {
        Naming::new("pr", "agents")
            .unwrap()
            .name(PrNumber::new(n).unwrap())
    }

    fn master() -> SecretString {
        SecretString::from("m".repeat(40))
    }

    #[test]
    fn random_values_have_the_requested_entropy_and_a_url_safe_alphabet() {
        for bytes in [MIN_BYTES, MIN_KEY_BYTES, 48] {
            let v = RandomSecrets.generate(&env(1), "x", 0, bytes).unwrap();
            let s = v.expose_secret();
            // base64 carries 6 bits per character.
            assert_eq!(s.len(), (bytes * 8).div_ceil(6), "{bytes}");
            assert!(is_url_safe(s), "{s}");
            let decoded = URL_SAFE_NO_PAD.decode(s).unwrap();
            assert_eq!(decoded.len(), bytes);
        }
    }

    #[test]
    fn random_values_do_not_repeat() {
        let mut seen = HashSet::new();
        for _ in 0..20_000 {
            let v = RandomSecrets.generate(&env(1), "x", 0, MIN_BYTES).unwrap();
            assert!(seen.insert(v.expose_secret().to_string()));
        }
    }

    #[test]
    fn random_values_use_the_whole_alphabet() {
        // 64 symbols, 2000 values of 22 chars: every symbol shows up unless the encoder is broken.
        let mut symbols = HashSet::new();
        for _ in 0..2000 {
            let v = RandomSecrets.generate(&env(1), "x", 0, MIN_BYTES).unwrap();
            symbols.extend(v.expose_secret().chars());
        }
        assert_eq!(symbols.len(), 64);
    }

    #[test]
    fn derived_values_are_stable_and_distinct() {
        let d = DerivedSecrets::new(master()).unwrap();
        let a = d.generate(&env(1), "pg", 0, 16).unwrap();
        let again = d.generate(&env(1), "pg", 0, 16).unwrap();
        assert_eq!(a.expose_secret(), again.expose_secret());
        let others = [
            d.generate(&env(2), "pg", 0, 16).unwrap(),
            d.generate(&env(1), "pk", 0, 16).unwrap(),
            d.generate(&env(1), "pg", 1, 16).unwrap(),
            DerivedSecrets::new(SecretString::from("n".repeat(40)))
                .unwrap()
                .generate(&env(1), "pg", 0, 16)
                .unwrap(),
        ];
        for o in &others {
            assert_ne!(a.expose_secret(), o.expose_secret());
        }
        let key = d.generate(&env(1), "auth", 0, 32).unwrap();
        assert_eq!(key.expose_secret().len(), 43);
        assert!(is_url_safe(key.expose_secret()));
        assert!(d.is_stable());
        assert!(!RandomSecrets.is_stable());
    }

    #[test]
    fn short_masters_are_refused_without_echoing_them() {
        let err = DerivedSecrets::new(SecretString::from("tooshort-SENTINEL")).unwrap_err();
        assert!(err.to_string().contains("at least 32"));
        assert!(!err.to_string().contains("SENTINEL"));
        let d =
            DerivedSecrets::new(SecretString::from(format!("SENTINEL{}", "x".repeat(40)))).unwrap();
        assert!(!format!("{d:?}").contains("SENTINEL"));
    }

    #[test]
    fn digest_keys_are_stable_per_master_and_purpose_and_independent_of_secrets() {
        let d = DerivedSecrets::new(master()).unwrap();
        let k = d
            .digest_key(FINGERPRINT_KEY)
            .unwrap()
            .expect("a derived key");
        let again = d
            .digest_key(FINGERPRINT_KEY)
            .unwrap()
            .expect("a derived key");
        let parts = ["pr-1-agents", "K", "sensitive", "hunter2"];
        assert_eq!(k.digest(&parts), again.digest(&parts));
        assert_eq!(k.hex(&parts, 16).len(), 32);
        let other_purpose = d.digest_key("something-else").unwrap().unwrap();
        assert_ne!(k.digest(&parts), other_purpose.digest(&parts));
        let other_master = DerivedSecrets::new(SecretString::from("n".repeat(40)))
            .unwrap()
            .digest_key(FINGERPRINT_KEY)
            .unwrap()
            .unwrap();
        assert_ne!(k.digest(&parts), other_master.digest(&parts));
        // Length prefixes: moving a character across a part boundary changes the digest.
        assert_ne!(k.digest(&["ab", "c"]), k.digest(&["a", "bc"]));
        // Random sources have nothing stable to derive a key from.
        assert!(RandomSecrets.digest_key(FINGERPRINT_KEY).unwrap().is_none());
        assert_eq!(format!("{k:?}"), "DigestKey(<redacted>)");
    }

    #[test]
    fn digest_keys_are_hmac_sha256() {
        // RFC 4231 test case 2 uses a 4-byte key; HMAC pads keys to the block size, so the same
        // key zero-padded to 32 bytes gives the same MAC.
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap();
        mac.update(b"what do ya want for nothing?");
        let want: [u8; 32] = mac.finalize().into_bytes().into();
        let hex: String = want.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Our digest is that MAC over the length-prefixed parts.
        let k = DigestKey::from_bytes(key);
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap();
        mac.update(&5u64.to_le_bytes());
        mac.update(b"hello");
        let want: [u8; 32] = mac.finalize().into_bytes().into();
        assert_eq!(k.digest(&["hello"]), want);
    }

    #[test]
    fn secret_values_debug_lists_names_only() {
        let mut v = SecretValues::new();
        v.insert("pg_password", SecretString::from("SENTINEL-VALUE"));
        let dbg = format!("{v:?}");
        assert!(dbg.contains("pg_password"));
        assert!(!dbg.contains("SENTINEL"));
    }
}
