//! The reveal half of rclone's password obscuring: AES-256-CTR under rclone's published fixed
//! key, a 16-byte IV in front, base64url without padding. It hides a password from casual
//! reading; it is not encryption. datasafed turns `pass.need_obscure = <clear>` into
//! `pass = <obscured>` and rclone reveals it again, so configs carry either form. Obscuring
//! (which draws a random IV) lives in the data plane; reading a config never needs it.

use aes::cipher::{KeyIvInit, StreamCipher};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::{Error, Result};

type Aes256Ctr = ctr::Ctr128BE<aes::Aes256>;

/// rclone's published obscuring key.
pub const KEY: [u8; 32] = [
    0x9c, 0x93, 0x5b, 0x48, 0x73, 0x0a, 0x55, 0x4d, 0x6b, 0xfd, 0x7c, 0x63, 0xc8, 0x86, 0xa9, 0x2b,
    0xd3, 0x90, 0x19, 0x8e, 0xb8, 0x12, 0x8a, 0xfb, 0xf4, 0xde, 0x16, 0x2b, 0x8b, 0x95, 0xf6, 0x38,
];

/// Reveal an obscured password. The error never contains the input.
pub fn reveal(obscured: &str) -> Result<String> {
    let bad = |why: &str| {
        Error::Config(format!(
            "the ftp password in `pass` is not an rclone-obscured value ({why}); give the clear password as `pass.need_obscure` instead"
        ))
    };
    let raw = URL_SAFE_NO_PAD
        .decode(obscured.trim_end_matches('='))
        .map_err(|_| bad("not base64url"))?;
    if raw.len() < 16 {
        return Err(bad("too short"));
    }
    let (iv, body) = raw.split_at(16);
    let mut buf = body.to_vec();
    let iv: [u8; 16] = iv.try_into().map_err(|_| bad("bad IV"))?;
    Aes256Ctr::new(&KEY.into(), &iv.into()).apply_keystream(&mut buf);
    String::from_utf8(buf).map_err(|_| bad("not UTF-8 after revealing"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reveals_a_value_obscured_by_rclone() {
        // Produced by `rclone obscure hello` (rclone v1.75.2).
        assert_eq!(reveal("R8PUY7zMw_aJvWOmalpYLkKNWw4K").unwrap(), "hello");
    }

    #[test]
    fn garbage_is_a_clear_error_without_the_input() {
        let err = reveal("not*base64").unwrap_err().to_string();
        assert!(err.contains("need_obscure"), "{err}");
        assert!(!err.contains("not*base64"));
    }
}
