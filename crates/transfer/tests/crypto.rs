//! Encryption formats: datasafed's known-answer vectors and the AEAD format's guarantees.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{self, Read, Write};

use backuprepo_transfer::compress::{MemorySink, Sink};
use backuprepo_transfer::crypto::{cfb, gcm, Algorithm, Encryption};

fn encrypt(enc: &Encryption, data: &[u8]) -> Vec<u8> {
    let c = MemorySink::default();
    let mut e = enc.encryptor(Box::new(c.clone()));
    for piece in data.chunks(7777) {
        e.write_all(piece).unwrap();
    }
    e.finish().unwrap();
    c.contents()
}

fn decrypt(enc: &Encryption, data: Vec<u8>) -> io::Result<Vec<u8>> {
    let mut d = enc.decryptor(Box::new(io::Cursor::new(data)));
    let mut out = Vec::new();
    d.read_to_end(&mut out)?;
    Ok(out)
}

#[test]
fn datasafed_known_answer_vectors_decrypt() {
    let Some(text) = backuprepo_fixtures::read_shared("compat/datasafed/encryption-vectors.json")
    else {
        return;
    };
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = v["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    let mut checked = 0;
    for case in cases {
        let pass = case["pass_phrase"].as_str().unwrap();
        let payload = case["payload"].as_str().unwrap();
        for (alg, hexct) in case["ciphertext_hex"].as_object().unwrap() {
            let enc = Encryption::new(alg, pass).unwrap();
            let ct = hex::decode(hexct.as_str().unwrap()).unwrap();
            assert_eq!(ct.len(), payload.len() + cfb::IV_LEN);
            assert_eq!(
                enc.algorithm.plain_size(ct.len() as u64),
                payload.len() as u64
            );
            let plain = decrypt(&enc, ct.clone()).unwrap();
            assert_eq!(String::from_utf8(plain).unwrap(), payload, "{alg}");
            // And our encryptor, given the vector's IV, produces the vector's bytes.
            let Algorithm::Cfb(n) = enc.algorithm else {
                panic!("not cfb")
            };
            let c = MemorySink::default();
            let iv: [u8; 16] = ct[..16].try_into().unwrap();
            let mut e: Box<dyn Sink> =
                Box::new(cfb::Encryptor::with_iv(pass, n, iv, Box::new(c.clone())));
            e.write_all(payload.as_bytes()).unwrap();
            e.finish().unwrap();
            assert_eq!(c.contents(), ct, "{alg}");
            checked += 1;
        }
    }
    assert!(checked >= 6);
}

#[test]
fn cfb_round_trip_with_random_iv() {
    let enc = Encryption::new("aes-128-cfb", "pw").unwrap();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let a = encrypt(&enc, &data);
    let b = encrypt(&enc, &data);
    assert_ne!(a, b, "IV must be random");
    assert_eq!(a.len(), data.len() + 16);
    assert_eq!(decrypt(&enc, a).unwrap(), data);
    assert!(decrypt(&enc, vec![1, 2, 3]).is_err(), "shorter than the IV");
}

fn gcm_enc() -> Encryption {
    Encryption::new("AES-256-GCM-STREAM", "correct horse").unwrap()
}

#[test]
fn gcm_round_trips_and_sizes_for_edge_lengths() {
    let enc = gcm_enc();
    for len in [
        0usize,
        1,
        gcm::CHUNK - 1,
        gcm::CHUNK,
        gcm::CHUNK + 1,
        3 * gcm::CHUNK,
        200_003,
    ] {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
        let ct = encrypt(&enc, &data);
        assert_eq!(
            enc.algorithm.plain_size(ct.len() as u64),
            len as u64,
            "size of {len}"
        );
        assert_eq!(decrypt(&enc, ct).unwrap(), data, "len {len}");
    }
}

#[test]
fn gcm_detects_tampering_truncation_reordering_and_wrong_key() {
    let enc = gcm_enc();
    let data: Vec<u8> = (0..(3 * gcm::CHUNK + 100))
        .map(|i| (i % 253) as u8)
        .collect();
    let ct = encrypt(&enc, &data);
    let unit = gcm::CHUNK + gcm::TAG;

    let mut flipped = ct.clone();
    flipped[gcm::HEADER_LEN + 10] ^= 1;
    assert!(decrypt(&enc, flipped).is_err(), "bit flip");

    let mut header = ct.clone();
    header[20] ^= 1; // salt
    assert!(decrypt(&enc, header).is_err(), "header tamper");

    // Cut at a chunk boundary: every remaining chunk is intact, only the last is missing.
    let cut = ct[..gcm::HEADER_LEN + 2 * unit].to_vec();
    assert!(decrypt(&enc, cut).is_err(), "truncated at a chunk boundary");
    let cut = ct[..ct.len() - 1].to_vec();
    assert!(decrypt(&enc, cut).is_err(), "truncated by one byte");

    let mut swapped = ct.clone();
    let (a, b) = (gcm::HEADER_LEN, gcm::HEADER_LEN + unit);
    let first: Vec<u8> = swapped[a..b].to_vec();
    let second: Vec<u8> = swapped[b..b + unit].to_vec();
    swapped[a..b].copy_from_slice(&second);
    swapped[b..b + unit].copy_from_slice(&first);
    assert!(decrypt(&enc, swapped).is_err(), "reordered chunks");

    let wrong = Encryption::new("AES-256-GCM-STREAM", "battery staple").unwrap();
    let err = decrypt(&wrong, ct.clone()).unwrap_err().to_string();
    assert!(err.contains("wrong encryption pass phrase"), "{err}");

    // Decrypting the tampered stream yields no unverified plaintext of the bad chunk.
    let mut late = ct.clone();
    let n = late.len();
    late[n - 5] ^= 0xff;
    let mut d = enc.decryptor(Box::new(io::Cursor::new(late)));
    let mut out = Vec::new();
    assert!(d.read_to_end(&mut out).is_err());
    assert!(
        out.len() <= 3 * gcm::CHUNK,
        "only verified chunks were released"
    );
}

#[test]
fn debug_of_an_encryption_setting_hides_the_pass_phrase() {
    let enc = Encryption::new("AES-256-CFB", "hunter2-very-secret").unwrap();
    assert!(!format!("{enc:?}").contains("hunter2"));
    assert!(Encryption::new("AES-256-CFB", "")
        .unwrap_err()
        .to_string()
        .contains("should not be empty"));
    assert!(Encryption::new("ROT13", "x").is_err());
}
