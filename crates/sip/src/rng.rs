//! Deterministic identifiers. The library never touches a global RNG: every branch, tag, Call-ID
//! and cnonce comes from an [`IdGen`] seeded by the caller, so a run can be replayed exactly.

/// SplitMix64 generator (public-domain algorithm by Sebastiano Vigna): tiny, fast and good enough
/// for protocol identifiers that must be unique, not secret.
#[derive(Debug, Clone)]
pub struct IdGen {
    state: u64,
}

const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

impl IdGen {
    /// A generator whose whole output is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniformly drawn value in `0..n` (`n > 0`; returns 0 for `n == 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        self.next_u64() % n
    }

    /// `len` characters of `[0-9a-z]`.
    pub fn token(&mut self, len: usize) -> String {
        let mut out = String::with_capacity(len);
        let mut bits = self.next_u64();
        let mut left = 12; // 12 draws of 5 bits each fit in 64 bits
        for _ in 0..len {
            if left == 0 {
                bits = self.next_u64();
                left = 12;
            }
            out.push(char::from(ALPHABET[(bits % 36) as usize]));
            bits /= 36;
            left -= 1;
        }
        out
    }

    /// A Via branch with the RFC 3261 magic cookie.
    pub fn branch(&mut self) -> String {
        let mut b = String::from("z9hG4bK");
        b.push_str(&self.token(16));
        b
    }

    /// A From/To tag.
    pub fn tag(&mut self) -> String {
        self.token(12)
    }

    /// A Call-ID local part (the caller appends `@host` if it wants).
    pub fn call_id(&mut self) -> String {
        self.token(24)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_ids_different_seed_different_ids() {
        let mut a = IdGen::new(7);
        let mut b = IdGen::new(7);
        let mut c = IdGen::new(8);
        let (x, y, z) = (a.branch(), b.branch(), c.branch());
        assert_eq!(x, y);
        assert_ne!(x, z);
        assert!(x.starts_with("z9hG4bK") && x.len() == 23);
    }

    #[test]
    fn ids_do_not_repeat_in_a_long_run() {
        let mut g = IdGen::new(1);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..100_000 {
            assert!(seen.insert(g.tag()));
        }
    }
}
