//! FNV-1a, the crate's one non-cryptographic hash: tiny, allocation-free and
//! `const`, so the same function gives counter ids in generated statics and
//! buckets object keys at run time.
//!
//! Never trusted for equality (key checks compare in full) nor against an
//! adversary choosing collisions (partition keys use SHA-256, `ops`).

/// FNV-1a state. Each [`Fnv::write`] is one xor and one multiply, whatever
/// the width of the unit: bytes for counter keys, characters (as `u32`) for
/// object keys, one multiply per character rather than per byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fnv(u64);

impl Fnv {
    /// The FNV-1a 64-bit offset basis.
    pub const fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    /// Mixes in one unit (a byte or a character's scalar value).
    pub const fn write(self, unit: u64) -> Fnv {
        Fnv((self.0 ^ unit).wrapping_mul(0x0000_0100_0000_01b3))
    }

    /// Mixes in every byte of `bytes`: FNV-1a over bytes.
    pub const fn bytes(mut self, bytes: &[u8]) -> Fnv {
        let mut i = 0;
        while i < bytes.len() {
            self = self.write(bytes[i] as u64);
            i += 1;
        }
        self
    }

    /// The hash.
    pub const fn finish(self) -> u64 {
        self.0
    }
}

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv::new()
    }
}

#[cfg(test)]
mod tests {
    use super::Fnv;

    #[test]
    fn matches_the_published_fnv1a_vectors() {
        // From the FNV reference test suite (64-bit FNV-1a).
        assert_eq!(Fnv::new().bytes(b"").finish(), 0xcbf2_9ce4_8422_2325);
        assert_eq!(Fnv::new().bytes(b"a").finish(), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(Fnv::new().bytes(b"foobar").finish(), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn counter_ids_keep_their_values() {
        // Stores persist counters under these ids: a change would reset every count.
        assert_eq!(crate::counters::key_id("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(crate::counters::key_id("foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn is_usable_in_constants() {
        const H: u64 = Fnv::new().bytes(b"foobar").finish();
        assert_eq!(H, Fnv::new().bytes(b"foo").bytes(b"bar").finish());
    }
}
