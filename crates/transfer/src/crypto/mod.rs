//! Stream encryption for objects at rest.
//!
//! Two formats, chosen by algorithm name (`DATASAFED_ENCRYPTION_ALGORITHM`):
//!
//! * **datasafed's** `AES-128-CFB`, `AES-192-CFB`, `AES-256-CFB` ([`cfb`]): a 16-byte random IV,
//!   then AES-CFB of the whole plaintext; key = HKDF-SHA256(pass phrase, salt `encryption`).
//!   Kept byte-for-byte so existing KubeBlocks backups restore and new ones stay readable by
//!   datasafed. It has no integrity check: a flipped bit flips plaintext silently, and a cut
//!   object decrypts to a silently shorter dump.
//! * **`AES-256-GCM-STREAM`** ([`gcm`]), ours for new data: chunked AEAD (STREAM construction,
//!   64 KiB chunks, 32-bit chunk counter and a last-chunk flag in the nonce, a per-object random
//!   salt for the key). Tampering, truncation, reordering and a wrong pass phrase are all
//!   detected on pull.
//!
//! Both store the object as `<rpath>.enc`, as datasafed does.

pub mod cfb;
pub mod gcm;

use std::io::Read;

use crate::compress::Sink;
use crate::config::Secret;
use crate::{Error, Result};

/// Objects written through an encrypting storage get this suffix.
pub const SUFFIX: &str = ".enc";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// datasafed's AES-CFB with a 16/24/32-byte key.
    Cfb(usize),
    /// Chunked AES-256-GCM (ours).
    GcmStream,
}

pub const NAMES: &[&str] = &[
    "AES-128-CFB",
    "AES-192-CFB",
    "AES-256-CFB",
    "AES-256-GCM-STREAM",
];

impl Algorithm {
    /// Names are case-insensitive, as in datasafed.
    pub fn parse(name: &str) -> Result<Self> {
        match name.trim().to_ascii_uppercase().as_str() {
            "AES-128-CFB" => Ok(Algorithm::Cfb(16)),
            "AES-192-CFB" => Ok(Algorithm::Cfb(24)),
            "AES-256-CFB" => Ok(Algorithm::Cfb(32)),
            "AES-256-GCM-STREAM" => Ok(Algorithm::GcmStream),
            _ => Err(Error::Config(format!(
                "unknown encryption algorithm {name:?}; use one of {}",
                NAMES.join(", ")
            ))),
        }
    }

    /// The plaintext size of a stored object of `stored` bytes.
    pub fn plain_size(self, stored: u64) -> u64 {
        match self {
            Algorithm::Cfb(_) => stored.saturating_sub(cfb::IV_LEN as u64),
            Algorithm::GcmStream => gcm::plain_size(stored),
        }
    }
}

/// An encryption setting: algorithm plus pass phrase (never printed).
#[derive(Clone, Debug)]
pub struct Encryption {
    pub algorithm: Algorithm,
    pub pass_phrase: Secret,
}

impl Encryption {
    pub fn new(algorithm: &str, pass_phrase: &str) -> Result<Self> {
        let algorithm = Algorithm::parse(algorithm)?;
        if pass_phrase.is_empty() {
            return Err(Error::Config(
                "encryption pass phrase should not be empty".into(),
            ));
        }
        Ok(Encryption {
            algorithm,
            pass_phrase: Secret::new(pass_phrase),
        })
    }

    pub fn encryptor(&self, inner: Box<dyn Sink>) -> Box<dyn Sink> {
        match self.algorithm {
            Algorithm::Cfb(n) => Box::new(cfb::Encryptor::new(self.pass_phrase.expose(), n, inner)),
            Algorithm::GcmStream => Box::new(gcm::Encryptor::new(self.pass_phrase.expose(), inner)),
        }
    }

    pub fn decryptor(&self, inner: Box<dyn Read + Send>) -> Box<dyn Read + Send> {
        match self.algorithm {
            Algorithm::Cfb(n) => Box::new(cfb::Decryptor::new(self.pass_phrase.expose(), n, inner)),
            Algorithm::GcmStream => Box::new(gcm::Decryptor::new(self.pass_phrase.expose(), inner)),
        }
    }
}

/// Fill `buf` from `r` as far as the stream allows; returns the bytes read (short only at EOF).
pub(crate) fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
