//! The few hash primitives authentication needs, over hmac 0.13 / sha2 0.11 /
//! md-5 0.11 (whose outputs are `hybrid_array::Array`s, converted here to
//! plain arrays).

use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;
use sha2::{Digest, Sha256};

/// HMAC-SHA-256 of `parts` (concatenated) under `key`.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // hmac 0.13's `HmacCore::new_from_slice` accepts keys of every length (long
    // keys are hashed first); the `Result` is only the `KeyInit` signature.
    #[allow(clippy::expect_used)]
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// SHA-256 of `data`.
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// RFC 5802 `Hi()`: PBKDF2-HMAC-SHA-256 with one output block.
pub(crate) fn hi(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut prev = hmac_sha256(password, &[salt, &[0, 0, 0, 1]]);
    let mut out = prev;
    for _ in 1..iterations {
        prev = hmac_sha256(password, &[&prev]);
        for (o, p) in out.iter_mut().zip(prev) {
            *o ^= p;
        }
    }
    out
}

/// Lowercase hex md5 of `parts` (concatenated).
pub(crate) fn md5_hex(parts: &[&[u8]]) -> String {
    let mut h = Md5::new();
    for part in parts {
        h.update(part);
    }
    let digest: [u8; 16] = h.finalize().into();
    let mut s = String::with_capacity(32);
    for b in digest {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    s
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Compares without an early exit, so the time taken does not tell an
/// attacker how many leading bytes were right. Lengths are not secret.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box keeps the optimiser from turning the fold into an early exit.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hi_matches_rfc7677_example() {
        // RFC 7677 section 3: user "user", password "pencil".
        let salt = base64_decode("W22ZaJ0SNY7soEsUEjb6gQ==");
        let salted = hi(b"pencil", &salt, 4096);
        let client_key = hmac_sha256(&salted, &[b"Client Key"]);
        let client_first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO";
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let client_final = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let auth = format!("{client_first_bare},{server_first},{client_final}");
        let sig = hmac_sha256(&sha256(&client_key), &[auth.as_bytes()]);
        let proof: Vec<u8> = client_key.iter().zip(sig).map(|(a, b)| a ^ b).collect();
        assert_eq!(
            proof,
            base64_decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
        );
    }

    #[test]
    fn md5_hex_and_ct_eq() {
        assert_eq!(md5_hex(&[b"abc"]), "900150983cd24fb0d6963f7d28e17f72");
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }

    fn base64_decode(s: &str) -> Vec<u8> {
        use base64::Engine;
        #[allow(clippy::unwrap_used)]
        base64::engine::general_purpose::STANDARD.decode(s).unwrap()
    }
}
