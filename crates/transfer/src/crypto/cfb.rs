//! datasafed's stream encryption: `IV(16) || AES-CFB128(key, IV, plaintext)`, with
//! key = HKDF-SHA256(secret = pass phrase, salt = "encryption", info = "")[..key_len].

use std::io::{self, Read, Write};

use aes::cipher::KeyIvInit;
use rand::RngCore;

use crate::compress::Sink;
use crate::Error;

pub const IV_LEN: usize = 16;

enum Enc {
    A128(cfb_mode::BufEncryptor<aes::Aes128>),
    A192(cfb_mode::BufEncryptor<aes::Aes192>),
    A256(cfb_mode::BufEncryptor<aes::Aes256>),
}

enum Dec {
    A128(cfb_mode::BufDecryptor<aes::Aes128>),
    A192(cfb_mode::BufDecryptor<aes::Aes192>),
    A256(cfb_mode::BufDecryptor<aes::Aes256>),
}

fn derive_key(pass: &str, len: usize) -> [u8; 32] {
    let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(b"encryption"), pass.as_bytes());
    let mut okm = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's 8160-byte limit, so expand cannot fail.
    let _ = hk.expand(&[], &mut okm);
    let mut key = [0u8; 32];
    key[..len].copy_from_slice(&okm[..len]);
    key
}

fn enc_for(pass: &str, key_len: usize, iv: &[u8; IV_LEN]) -> Enc {
    let k = derive_key(pass, key_len);
    match key_len {
        16 => Enc::A128(cfb_mode::BufEncryptor::new(k[..16].into(), iv.into())),
        24 => Enc::A192(cfb_mode::BufEncryptor::new(k[..24].into(), iv.into())),
        _ => Enc::A256(cfb_mode::BufEncryptor::new(k[..32].into(), iv.into())),
    }
}

fn dec_for(pass: &str, key_len: usize, iv: &[u8; IV_LEN]) -> Dec {
    let k = derive_key(pass, key_len);
    match key_len {
        16 => Dec::A128(cfb_mode::BufDecryptor::new(k[..16].into(), iv.into())),
        24 => Dec::A192(cfb_mode::BufDecryptor::new(k[..24].into(), iv.into())),
        _ => Dec::A256(cfb_mode::BufDecryptor::new(k[..32].into(), iv.into())),
    }
}

pub struct Encryptor {
    inner: Box<dyn Sink>,
    cipher: Enc,
    iv: Option<[u8; IV_LEN]>,
    scratch: Vec<u8>,
}

impl Encryptor {
    pub fn new(pass: &str, key_len: usize, inner: Box<dyn Sink>) -> Self {
        let mut iv = [0u8; IV_LEN];
        rand::thread_rng().fill_bytes(&mut iv);
        Self::with_iv(pass, key_len, iv, inner)
    }

    /// Deterministic IV, for known-answer tests only.
    pub fn with_iv(pass: &str, key_len: usize, iv: [u8; IV_LEN], inner: Box<dyn Sink>) -> Self {
        Encryptor {
            inner,
            cipher: enc_for(pass, key_len, &iv),
            iv: Some(iv),
            scratch: Vec::new(),
        }
    }

    fn write_iv(&mut self) -> io::Result<()> {
        if let Some(iv) = self.iv.take() {
            self.inner.write_all(&iv)?;
        }
        Ok(())
    }
}

impl Write for Encryptor {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_iv()?;
        let n = buf.len().min(128 * 1024);
        self.scratch.clear();
        self.scratch.extend_from_slice(&buf[..n]);
        match &mut self.cipher {
            Enc::A128(c) => c.encrypt(&mut self.scratch),
            Enc::A192(c) => c.encrypt(&mut self.scratch),
            Enc::A256(c) => c.encrypt(&mut self.scratch),
        }
        self.inner.write_all(&self.scratch)?;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Sink for Encryptor {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.write_iv()?;
        self.inner.finish()
    }
}

pub struct Decryptor {
    inner: Box<dyn Read + Send>,
    pass: crate::config::Secret,
    key_len: usize,
    cipher: Option<Dec>,
}

impl Decryptor {
    pub fn new(pass: &str, key_len: usize, inner: Box<dyn Read + Send>) -> Self {
        Decryptor {
            inner,
            pass: crate::config::Secret::new(pass),
            key_len,
            cipher: None,
        }
    }
}

impl Read for Decryptor {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cipher.is_none() {
            let mut iv = [0u8; IV_LEN];
            let n = super::read_full(&mut self.inner, &mut iv)?;
            if n < IV_LEN {
                return Err(Error::Corrupt(format!(
                    "encrypted object is truncated: {n} bytes, shorter than its 16-byte IV"
                ))
                .into_io());
            }
            self.cipher = Some(dec_for(self.pass.expose(), self.key_len, &iv));
        }
        let n = self.inner.read(buf)?;
        match &mut self.cipher {
            Some(Dec::A128(c)) => c.decrypt(&mut buf[..n]),
            Some(Dec::A192(c)) => c.decrypt(&mut buf[..n]),
            Some(Dec::A256(c)) => c.decrypt(&mut buf[..n]),
            None => {}
        }
        Ok(n)
    }
}
