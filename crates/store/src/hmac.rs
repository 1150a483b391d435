//! The keyed hash that stands in for a phone number once it is erased.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256 of an E.164 number under `key`, as 64 lowercase hex digits.
///
/// The same key must be used for every import and opt-out (it comes from the configuration);
/// without it the hash cannot be reversed by trying all numbers.
pub fn phone_hmac(key: &[u8], e164: &str) -> String {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(e164.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A keyed hasher prepared once for many numbers (the key schedule is done once).
#[derive(Clone)]
pub(crate) struct PhoneHasher(HmacSha256);

impl std::fmt::Debug for PhoneHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PhoneHasher(<key>)")
    }
}

impl PhoneHasher {
    pub(crate) fn new(key: &[u8]) -> PhoneHasher {
        PhoneHasher(HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length"))
    }

    pub(crate) fn hash(&self, e164: &str) -> String {
        let mut mac = self.0.clone();
        mac.update(e164.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            phone_hmac(b"Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn prepared_hasher_matches() {
        let h = PhoneHasher::new(b"secret");
        assert_eq!(
            h.hash("+380501234567"),
            phone_hmac(b"secret", "+380501234567")
        );
        assert_ne!(
            h.hash("+380501234567"),
            phone_hmac(b"other", "+380501234567")
        );
    }
}
