//! rclone's password obscuring: AES-256-CTR under rclone's published fixed key, a random 16-byte
//! IV in front, base64url without padding. It hides a password from casual reading; it is not
//! encryption. datasafed turns `pass.need_obscure = <clear>` into `pass = <obscured>` and rclone
//! reveals it again, so we accept both forms.

use aes::cipher::{KeyIvInit, StreamCipher};
pub use backuprepo_toolconfig::obscure::{reveal, KEY};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;

type Aes256Ctr = ctr::Ctr128BE<aes::Aes256>;

pub fn obscure(clear: &str) -> String {
    let mut iv = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut iv);
    let mut buf = clear.as_bytes().to_vec();
    Aes256Ctr::new(&KEY.into(), &iv.into()).apply_keystream(&mut buf);
    let mut out = iv.to_vec();
    out.extend_from_slice(&buf);
    URL_SAFE_NO_PAD.encode(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_random_iv() {
        let a = obscure("s3cr3t pässword");
        let b = obscure("s3cr3t pässword");
        assert_ne!(a, b);
        assert_eq!(reveal(&a).unwrap(), "s3cr3t pässword");
    }
}
