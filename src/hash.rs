//! HAProxy's 32-bit hash functions, shared by the balancer (`hash-type ... sdbm|djb2|wt6|
//! crc32 [avalanche]`, where placement must match HAProxy's bit for bit) and the rule
//! language's converters of the same names. Each is written here from its published
//! definition; the table tests below check known values computed independently.

/// A hash function of `hash-type` (and the converters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashAlgo {
    /// `h = c + (h << 6) + (h << 16) - h` per byte, from 0 (HAProxy's default).
    #[default]
    Sdbm,
    /// Bernstein's `h = h * 33 + c` per byte, from 5381.
    Djb2,
    /// HAProxy's own two-lane hash with data-dependent rotations.
    Wt6,
    /// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), as zlib computes it.
    Crc32,
}

impl HashAlgo {
    pub fn parse(name: &str) -> Option<HashAlgo> {
        Some(match name {
            "sdbm" => HashAlgo::Sdbm,
            "djb2" => HashAlgo::Djb2,
            "wt6" => HashAlgo::Wt6,
            "crc32" => HashAlgo::Crc32,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            HashAlgo::Sdbm => "sdbm",
            HashAlgo::Djb2 => "djb2",
            HashAlgo::Wt6 => "wt6",
            HashAlgo::Crc32 => "crc32",
        }
    }

    pub fn hash(self, b: &[u8]) -> u32 {
        match self {
            HashAlgo::Sdbm => sdbm(b),
            HashAlgo::Djb2 => djb2(b),
            HashAlgo::Wt6 => wt6(b),
            HashAlgo::Crc32 => crc32_with(b, CRC32_IEEE),
        }
    }
}

/// The reflected CRC-32 polynomial of zlib and Ethernet.
pub const CRC32_IEEE: u32 = 0xedb8_8320;
/// The reflected CRC-32C (Castagnoli) polynomial.
pub const CRC32C: u32 = 0x82f6_3b78;

pub fn sdbm(b: &[u8]) -> u32 {
    b.iter().fold(0u32, |h, &c| {
        u32::from(c)
            .wrapping_add(h << 6)
            .wrapping_add(h << 16)
            .wrapping_sub(h)
    })
}

pub fn djb2(b: &[u8]) -> u32 {
    b.iter().fold(5381u32, |h, &c| {
        (h << 5).wrapping_add(h).wrapping_add(u32::from(c))
    })
}

/// Two 32-bit lanes: each byte is mixed into both (one complemented xor, one
/// complemented add), the lanes are rotated crosswise by two step counts, and the next
/// step counts are taken from the mixed lanes.
pub fn wt6(b: &[u8]) -> u32 {
    let (mut h0, mut h1) = (0xa53c_965a_u32, 0x5ca6_953a_u32);
    let (mut step0, mut step1) = (6u32, 18u32);
    for &c in b {
        let t = u32::from(c);
        h0 = !(h0 ^ t);
        h1 = !(h1.wrapping_add(t));
        let t = h1.rotate_left(step0);
        h1 = h0.rotate_left(step1);
        h0 = t;
        let t = ((h0 >> 16) ^ h1) & 0xffff;
        step0 = t & 0x1f;
        step1 = t >> 11;
    }
    h0 ^ h1
}

/// A bitwise reflected CRC-32 with the polynomial `poly`, initial and final values
/// all ones (keys are short: no table needed).
pub fn crc32_with(b: &[u8], poly: u32) -> u32 {
    let mut c = !0u32;
    for &x in b {
        c ^= u32::from(x);
        for _ in 0..8 {
            c = if c & 1 != 0 { (c >> 1) ^ poly } else { c >> 1 };
        }
    }
    !c
}

/// The `avalanche` modifier: Bob Jenkins' six-step 32-bit integer mix, then a product
/// with a prime near 3/4 of 2^32, so that close inputs land far apart. A bijection on
/// u32, so distinct inputs never collide.
pub fn full_hash(a: u32) -> u32 {
    let mut a = a;
    a = a.wrapping_add(0x7ed5_5d16).wrapping_add(a << 12);
    a = (a ^ 0xc761_c23c) ^ (a >> 19);
    a = a.wrapping_add(0x1656_67b1).wrapping_add(a << 5);
    a = a.wrapping_add(0xd3a2_646c) ^ (a << 9);
    a = a.wrapping_add(0xfd70_46c5).wrapping_add(a << 3);
    a = (a ^ 0xb55a_4f09) ^ (a >> 16);
    a.wrapping_mul(3_221_225_473)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values computed from the definitions by a separate implementation (Python,
    /// and zlib for CRC-32).
    #[test]
    fn known_values() {
        let table: [(&[u8], u32, u32, u32, u32); 5] = [
            (b"", 0, 0x1505, 0xf99a_0360, 0),
            (b"a", 0x61, 0x2b606, 0x714b_f225, 0xe8b7_be43),
            (b"ab", 0x0061_1841, 0x0059_7728, 0x12b8_a5f9, 0x9e83_486d),
            (
                b"/index.html",
                0x3324_2976,
                0xe114_b9cf,
                0x3101_077e,
                0xea22_4b42,
            ),
            (
                b"123456789",
                0x68a0_7035,
                0x35cd_bb82,
                0x84a1_6c1d,
                0xcbf4_3926,
            ),
        ];
        for (input, s, d, w, c) in table {
            assert_eq!(HashAlgo::Sdbm.hash(input), s, "sdbm {input:?}");
            assert_eq!(HashAlgo::Djb2.hash(input), d, "djb2 {input:?}");
            assert_eq!(HashAlgo::Wt6.hash(input), w, "wt6 {input:?}");
            assert_eq!(HashAlgo::Crc32.hash(input), c, "crc32 {input:?}");
        }
        // sdbm by hand: "ab" = 'b' + 'a' * 65599 = 98 + 6363103.
        assert_eq!(sdbm(b"ab"), 98 + 97 * 65599);
        // djb2 by hand: "a" = 5381 * 33 + 97.
        assert_eq!(djb2(b"a"), 5381 * 33 + 97);
        assert_eq!(crc32_with(b"123456789", CRC32C), 0xe306_9283);
    }

    #[test]
    fn avalanche_known_values() {
        assert_eq!(full_hash(0), 0xab4e_d927);
        assert_eq!(full_hash(1), 0x3486_81b6);
        assert_eq!(full_hash(4096), 0x49c2_008b);
        assert_eq!(full_hash(0x7f00_0001), 0x8a1b_584b);
    }
}
