//! `AES-256-GCM-STREAM`: authenticated, chunked stream encryption for new data.
//!
//! Layout: a 48-byte header, then chunks of `CHUNK` plaintext bytes, each sealed with a 16-byte
//! GCM tag; the last chunk (possibly empty) is sealed with the STREAM "last" flag.
//!
//! ```text
//! header = "BRGCM\0\0\x01" (magic + version 1) || key_id (8) || salt (32)
//! key || nonce_prefix = HKDF-SHA256(ikm = pass phrase, salt, info = INFO)[..32 + 7]
//! nonce(chunk i)      = nonce_prefix (7) || i as u32 big-endian || last ? 1 : 0
//! AAD                 = header
//! key_id              = HKDF-SHA256(ikm = pass phrase, salt = "backuprepo key id", info = INFO)[..8]
//! ```
//!
//! The per-object salt gives every object its own key, so nonces never repeat across objects.
//! The counter detects reordering and dropped chunks, the last flag detects truncation, the
//! header as AAD binds the chunks to it, and the key id tells "wrong pass phrase" apart from
//! "tampered".

use std::io::{self, Read, Write};

use aes_gcm::aead::stream::{DecryptorBE32, EncryptorBE32};
use aes_gcm::aead::KeyInit;
use aes_gcm::Aes256Gcm;
use rand::RngCore;

use crate::compress::Sink;
use crate::Error;

pub const CHUNK: usize = 64 * 1024;
pub const TAG: usize = 16;
pub const HEADER_LEN: usize = 48;
const MAGIC: &[u8; 8] = b"BRGCM\0\0\x01";
const INFO: &[u8] = b"backuprepo AES-256-GCM-STREAM v1";

/// Plaintext size of an object of `stored` bytes in this format.
pub fn plain_size(stored: u64) -> u64 {
    let body = stored.saturating_sub(HEADER_LEN as u64);
    let chunks = body.div_ceil((CHUNK + TAG) as u64).max(1);
    body.saturating_sub(chunks * TAG as u64)
}

fn key_id(pass: &str) -> [u8; 8] {
    let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(b"backuprepo key id"), pass.as_bytes());
    let mut id = [0u8; 8];
    let _ = hk.expand(INFO, &mut id); // 8 bytes: within HKDF's limit
    id
}

fn cipher(pass: &str, salt: &[u8]) -> (Aes256Gcm, [u8; 7]) {
    let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(salt), pass.as_bytes());
    let mut okm = [0u8; 39];
    let _ = hk.expand(INFO, &mut okm); // 39 bytes: within HKDF's limit
    let mut prefix = [0u8; 7];
    prefix.copy_from_slice(&okm[32..]);
    (Aes256Gcm::new((&okm[..32]).into()), prefix)
}

fn corrupt(what: &str) -> io::Error {
    Error::Corrupt(format!(
        "encrypted object failed authentication ({what}): it was tampered with, truncated or reordered; nothing after the last verified chunk was written"
    ))
    .into_io()
}

pub struct Encryptor {
    inner: Box<dyn Sink>,
    header: [u8; HEADER_LEN],
    header_written: bool,
    enc: Option<EncryptorBE32<Aes256Gcm>>,
    buf: Vec<u8>,
}

impl Encryptor {
    pub fn new(pass: &str, inner: Box<dyn Sink>) -> Self {
        let mut header = [0u8; HEADER_LEN];
        header[..8].copy_from_slice(MAGIC);
        header[8..16].copy_from_slice(&key_id(pass));
        rand::thread_rng().fill_bytes(&mut header[16..]);
        let (aead, prefix) = cipher(pass, &header[16..]);
        Encryptor {
            inner,
            header,
            header_written: false,
            enc: Some(EncryptorBE32::from_aead(aead, (&prefix).into())),
            buf: Vec::with_capacity(CHUNK + TAG),
        }
    }

    fn ensure_header(&mut self) -> io::Result<()> {
        if !self.header_written {
            self.inner.write_all(&self.header)?;
            self.header_written = true;
        }
        Ok(())
    }
}

impl Write for Encryptor {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.ensure_header()?;
        if self.buf.len() == CHUNK && !data.is_empty() {
            // More data follows a full chunk, so that chunk is not the last one.
            let enc = self
                .enc
                .as_mut()
                .ok_or_else(|| io::Error::other("write after finish"))?;
            enc.encrypt_next_in_place(&self.header, &mut self.buf)
                .map_err(|_| io::Error::other("encryption failed"))?;
            self.inner.write_all(&self.buf)?;
            self.buf.clear();
        }
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Sink for Encryptor {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.ensure_header()?;
        let enc = self
            .enc
            .take()
            .ok_or_else(|| io::Error::other("finished twice"))?;
        let header = self.header;
        enc.encrypt_last_in_place(&header, &mut self.buf)
            .map_err(|_| io::Error::other("encryption failed"))?;
        self.inner.write_all(&self.buf)?;
        self.inner.finish()
    }
}

pub struct Decryptor {
    inner: Box<dyn Read + Send>,
    pass: crate::config::Secret,
    header: [u8; HEADER_LEN],
    dec: Option<DecryptorBE32<Aes256Gcm>>,
    started: bool,
    /// Ciphertext read ahead: one chunk plus one byte tells whether the chunk is the last.
    pending: Vec<u8>,
    /// Verified plaintext not yet handed out.
    out: Vec<u8>,
    out_pos: usize,
    finished: bool,
}

impl Decryptor {
    pub fn new(pass: &str, inner: Box<dyn Read + Send>) -> Self {
        Decryptor {
            inner,
            pass: crate::config::Secret::new(pass),
            header: [0u8; HEADER_LEN],
            dec: None,
            started: false,
            pending: Vec::with_capacity(CHUNK + TAG + 1),
            out: Vec::new(),
            out_pos: 0,
            finished: false,
        }
    }

    fn start(&mut self) -> io::Result<()> {
        let n = super::read_full(&mut self.inner, &mut self.header)?;
        if n < HEADER_LEN {
            return Err(corrupt("shorter than its header"));
        }
        if &self.header[..8] != MAGIC {
            return Err(Error::Corrupt(
                "object is not in AES-256-GCM-STREAM format (bad magic); was it written with another algorithm?".into(),
            )
            .into_io());
        }
        if self.header[8..16] != key_id(self.pass.expose()) {
            return Err(Error::Corrupt(
                "wrong encryption pass phrase: the object was encrypted with a different key (key id mismatch)".into(),
            )
            .into_io());
        }
        let (aead, prefix) = cipher(self.pass.expose(), &self.header[16..]);
        self.dec = Some(DecryptorBE32::from_aead(aead, (&prefix).into()));
        self.started = true;
        Ok(())
    }

    /// Decrypt the next chunk into `out`.
    fn next_chunk(&mut self) -> io::Result<()> {
        let want = CHUNK + TAG + 1;
        let have = self.pending.len();
        self.pending.resize(want, 0);
        let n = super::read_full(&mut self.inner, &mut self.pending[have..])?;
        self.pending.truncate(have + n);
        let header = self.header;
        if self.pending.len() == want {
            // A full chunk with more after it: a middle chunk.
            let rest = self.pending.split_off(CHUNK + TAG);
            let dec = self
                .dec
                .as_mut()
                .ok_or_else(|| io::Error::other("decryptor missing"))?;
            dec.decrypt_next_in_place(&header, &mut self.pending)
                .map_err(|_| corrupt("bad chunk"))?;
            self.out = std::mem::replace(&mut self.pending, rest);
        } else {
            if self.pending.len() < TAG {
                return Err(corrupt("truncated"));
            }
            let dec = self
                .dec
                .take()
                .ok_or_else(|| io::Error::other("decryptor missing"))?;
            let mut last = std::mem::take(&mut self.pending);
            dec.decrypt_last_in_place(&header, &mut last)
                .map_err(|_| corrupt("bad or missing last chunk"))?;
            self.out = last;
            self.finished = true;
        }
        self.out_pos = 0;
        Ok(())
    }
}

impl Read for Decryptor {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.started {
            self.start()?;
        }
        while self.out_pos == self.out.len() {
            if self.finished {
                return Ok(0);
            }
            self.next_chunk()?;
        }
        let n = buf.len().min(self.out.len() - self.out_pos);
        buf[..n].copy_from_slice(&self.out[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        Ok(n)
    }
}
