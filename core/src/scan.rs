//! One byte classifier for every JSON scanner: 16 bytes (and 64-byte blocks
//! built from four) turned into bitmasks of the bytes that matter to JSON.
//!
//! | mask | bytes |
//! |---|---|
//! | `quote` | `"` |
//! | `backslash` | `\` |
//! | `control` | below 0x20 (forbidden raw inside strings) |
//! | `structural` | `{` `}` `[` `]` `,` `:` |
//! | `whitespace` | space, tab, line feed, carriage return |
//! | `non_ascii` | above 0x7f |
//!
//! Bit `k` of a mask is byte `k` of the chunk (little-endian order: the
//! first byte is the lowest bit), so `trailing_zeros` is the offset of the
//! first match.
//!
//! On x86_64 the classification uses SSE2 (baseline on every x86_64 CPU):
//! `pcmpeqb`, `pminub`, `por`, `pmovmskb`. Rust (1.95) makes a
//! `core::arch` intrinsic safe to call only inside a `#[target_feature]`
//! function, and calling such a function from one without the attribute
//! needs `unsafe` even when the build enables SSE2 globally; this crate
//! forbids `unsafe`, so the intrinsics come through `safe_arch` (safe
//! wrappers compiled only when the feature is enabled at build time, which
//! SSE2 always is on x86_64). Elsewhere a portable SWAR version on two
//! `u64` words gives the same masks; it is compiled and tested on x86_64 too
//! ([`classify16_portable`]), and a property test checks that both agree
//! with a bytewise reference on every input.
//!
//! [`next_string_special`] is the primitive a strict string reader needs:
//! the offset of the next `"`, `\` or control byte, 16 bytes at a time.
//!
//! [`StringTracker`] turns 64-byte blocks into simdjson's stage-1 masks
//! (escaped bytes, in-string bytes, structurals outside strings), carrying
//! odd backslash runs and open strings across blocks.

/// The classes of 16 bytes, one bit per byte (bit `k` = byte `k`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Masks16 {
    /// `"`.
    pub quote: u16,
    /// `\`.
    pub backslash: u16,
    /// Bytes below 0x20.
    pub control: u16,
    /// `{` `}` `[` `]` `,` `:`.
    pub structural: u16,
    /// Space, tab, line feed, carriage return.
    pub whitespace: u16,
    /// Bytes above 0x7f (not ASCII).
    pub non_ascii: u16,
}

/// The classes of 64 bytes, one bit per byte (bit `k` = byte `k`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Masks64 {
    /// `"`.
    pub quote: u64,
    /// `\`.
    pub backslash: u64,
    /// Bytes below 0x20.
    pub control: u64,
    /// `{` `}` `[` `]` `,` `:`.
    pub structural: u64,
    /// Space, tab, line feed, carriage return.
    pub whitespace: u64,
    /// Bytes above 0x7f (not ASCII).
    pub non_ascii: u64,
}

impl Masks64 {
    #[inline(always)]
    fn put(&mut self, m: Masks16, at: u32) {
        self.quote |= (m.quote as u64) << at;
        self.backslash |= (m.backslash as u64) << at;
        self.control |= (m.control as u64) << at;
        self.structural |= (m.structural as u64) << at;
        self.whitespace |= (m.whitespace as u64) << at;
        self.non_ascii |= (m.non_ascii as u64) << at;
    }
}

#[inline(always)]
fn chunk16(b: &[u8; 64], k: usize) -> &[u8; 16] {
    b[k * 16..k * 16 + 16]
        .try_into()
        .expect("16 bytes of a 64-byte block")
}

/// Classifies 16 bytes (SSE2 on x86_64, SWAR elsewhere).
#[inline(always)]
pub fn classify16(c: &[u8; 16]) -> Masks16 {
    #[cfg(target_arch = "x86_64")]
    {
        sse2::classify(c)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        classify16_portable(c)
    }
}

/// Classifies 64 bytes, as four [`classify16`].
#[inline(always)]
pub fn classify64(b: &[u8; 64]) -> Masks64 {
    let mut m = Masks64::default();
    for k in 0..4 {
        m.put(classify16(chunk16(b, k)), 16 * k as u32);
    }
    m
}

/// [`classify64`] with the portable code, whatever the target.
pub fn classify64_portable(b: &[u8; 64]) -> Masks64 {
    let mut m = Masks64::default();
    for k in 0..4 {
        m.put(classify16_portable(chunk16(b, k)), 16 * k as u32);
    }
    m
}

/// What a JSON scanner's first stage needs of 64 bytes, one bit per byte:
/// fewer classes than [`Masks64`], so fewer instructions a block.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenMasks {
    /// `"`.
    pub quote: u64,
    /// `\`.
    pub backslash: u64,
    /// Bytes below 0x20.
    pub control: u64,
    /// `{` `}` `[` `]` `,` `:`.
    pub structural: u64,
    /// Bytes that may be part of a number or literal: none of `"`, the
    /// structurals, or bytes at or below 0x20 (space and control bytes).
    pub scalar: u64,
    /// Bytes above 0x7f.
    pub non_ascii: u64,
}

/// Classifies 64 bytes into [`TokenMasks`] (SSE2 on x86_64, SWAR elsewhere).
#[inline(always)]
pub fn classify64_tokens(b: &[u8; 64]) -> TokenMasks {
    #[cfg(target_arch = "x86_64")]
    {
        sse2::classify64_tokens(b)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        classify64_tokens_portable(b)
    }
}

/// [`classify64_tokens`] with the portable code, whatever the target.
pub fn classify64_tokens_portable(b: &[u8; 64]) -> TokenMasks {
    let m = classify64_portable(b);
    // Bytes at or below 0x20: the control bytes and the space (the other
    // whitespace bytes are control bytes).
    let low = m.control | m.whitespace;
    TokenMasks {
        quote: m.quote,
        backslash: m.backslash,
        control: m.control,
        structural: m.structural,
        scalar: !(m.quote | m.structural | low),
        non_ascii: m.non_ascii,
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;

/// 0x80 in every byte of `v` that is zero, nothing elsewhere (exact: no
/// borrow crosses bytes).
#[inline(always)]
const fn zero_bytes(v: u64) -> u64 {
    !(((v & LOW7).wrapping_add(LOW7)) | v | LOW7)
}

/// 0x80 in every byte of `w` equal to `c`.
#[inline(always)]
const fn eq_bytes(w: u64, c: u8) -> u64 {
    zero_bytes(w ^ (ONES * c as u64))
}

/// The 0x80 bits of the eight bytes gathered into the low 8 bits (bit `k`
/// = byte `k`): one multiply, no carries (every partial product lands on
/// its own bit).
#[inline(always)]
const fn gather(m: u64) -> u64 {
    ((m >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56
}

#[inline(always)]
fn swar8(w: u64) -> [u64; 6] {
    let up = w | (ONES * 0x20);
    [
        gather(eq_bytes(w, b'"')),
        gather(eq_bytes(w, b'\\')),
        gather(zero_bytes(w & (ONES * 0xe0))),
        gather(eq_bytes(up, b'{') | eq_bytes(up, b'}') | eq_bytes(w, b',') | eq_bytes(w, b':')),
        gather(eq_bytes(w, b' ') | eq_bytes(w, b'\t') | eq_bytes(w, b'\n') | eq_bytes(w, b'\r')),
        gather(w & (ONES * 0x80)),
    ]
}

#[inline(always)]
fn words(c: &[u8; 16]) -> (u64, u64) {
    let (lo, hi) = c.split_at(8);
    (
        u64::from_le_bytes(lo.try_into().expect("8 bytes")),
        u64::from_le_bytes(hi.try_into().expect("8 bytes")),
    )
}

/// Classifies 16 bytes with SWAR on two `u64` words (the code used where
/// SSE2 is not available; compiled everywhere so it is tested everywhere).
#[inline(always)]
pub fn classify16_portable(c: &[u8; 16]) -> Masks16 {
    let (lo, hi) = words(c);
    let l = swar8(lo);
    let h = swar8(hi);
    let m = |k: usize| (l[k] | (h[k] << 8)) as u16;
    Masks16 {
        quote: m(0),
        backslash: m(1),
        control: m(2),
        structural: m(3),
        whitespace: m(4),
        non_ascii: m(5),
    }
}

#[cfg(target_arch = "x86_64")]
mod sse2 {
    use super::{Masks16, TokenMasks};
    // `safe_arch` wraps the SSE2 intrinsics in safe functions gated by
    // `#[cfg(target_feature = "sse2")]` (baseline on x86_64). Calling
    // `core::arch` directly needs `unsafe` (or a `#[target_feature]`
    // function, whose callers need `unsafe` whatever the build enables),
    // which this crate forbids.
    use safe_arch::{
        bitor_m128i, cmp_eq_mask_i8_m128i, m128i, min_u8_m128i, move_mask_i8_m128i,
        set_splat_i8_m128i,
    };

    /// One unaligned load (`movdqu`).
    #[inline(always)]
    pub(super) fn load(c: &[u8; 16]) -> m128i {
        m128i::from(*c)
    }

    #[inline(always)]
    fn eq(v: m128i, c: u8) -> m128i {
        cmp_eq_mask_i8_m128i(v, set_splat_i8_m128i(c as i8))
    }

    #[inline(always)]
    fn bits(v: m128i) -> u16 {
        move_mask_i8_m128i(v) as u16
    }

    /// Unsigned `v <= 0x1f`: `min(v, 0x1f) == v`.
    #[inline(always)]
    fn control(v: m128i) -> m128i {
        cmp_eq_mask_i8_m128i(min_u8_m128i(v, set_splat_i8_m128i(0x1f)), v)
    }

    /// `"`, `\` or a control byte: the stops of a string body.
    #[inline(always)]
    pub(super) fn string_specials(v: m128i) -> u16 {
        bits(bitor_m128i(
            bitor_m128i(eq(v, b'"'), eq(v, b'\\')),
            control(v),
        ))
    }

    /// [`super::classify64_tokens`]: five compares and an `or` per class
    /// and 16 bytes, one `pmovmskb` each.
    #[inline(always)]
    pub(super) fn classify64_tokens(b: &[u8; 64]) -> TokenMasks {
        let mut t = TokenMasks::default();
        for k in 0..4 {
            let v = load(super::chunk16(b, k));
            let at = 16 * k as u32;
            let quote = eq(v, b'"');
            let up = bitor_m128i(v, set_splat_i8_m128i(0x20));
            let structural = bitor_m128i(
                bitor_m128i(eq(up, b'{'), eq(up, b'}')),
                bitor_m128i(eq(v, b','), eq(v, b':')),
            );
            // Unsigned `v <= 0x20`.
            let low = cmp_eq_mask_i8_m128i(min_u8_m128i(v, set_splat_i8_m128i(0x20)), v);
            let not_scalar = bitor_m128i(bitor_m128i(quote, structural), low);
            t.quote |= (bits(quote) as u64) << at;
            t.backslash |= (bits(eq(v, b'\\')) as u64) << at;
            t.control |= (bits(control(v)) as u64) << at;
            t.structural |= (bits(structural) as u64) << at;
            t.scalar |= (!bits(not_scalar) as u64) << at;
            t.non_ascii |= (bits(v) as u64) << at;
        }
        t
    }

    #[inline(always)]
    pub(super) fn classify(c: &[u8; 16]) -> Masks16 {
        let v = load(c);
        // `[`/`{` and `]`/`}` differ only in bit 0x20.
        let up = bitor_m128i(v, set_splat_i8_m128i(0x20));
        let structural = bitor_m128i(
            bitor_m128i(eq(up, b'{'), eq(up, b'}')),
            bitor_m128i(eq(v, b','), eq(v, b':')),
        );
        let whitespace = bitor_m128i(
            bitor_m128i(eq(v, b' '), eq(v, b'\t')),
            bitor_m128i(eq(v, b'\n'), eq(v, b'\r')),
        );
        Masks16 {
            quote: bits(eq(v, b'"')),
            backslash: bits(eq(v, b'\\')),
            control: bits(control(v)),
            structural: bits(structural),
            whitespace: bits(whitespace),
            non_ascii: bits(v),
        }
    }
}

/// `"`, `\` or control bytes of 16 bytes, one bit per byte.
#[inline(always)]
fn string_specials16(c: &[u8; 16]) -> u16 {
    #[cfg(target_arch = "x86_64")]
    {
        sse2::string_specials(sse2::load(c))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        string_specials16_portable(c)
    }
}

#[inline(always)]
fn string_specials16_portable(c: &[u8; 16]) -> u16 {
    let s = |w: u64| gather(eq_bytes(w, b'"') | eq_bytes(w, b'\\') | zero_bytes(w & (ONES * 0xe0)));
    let (lo, hi) = words(c);
    (s(lo) | (s(hi) << 8)) as u16
}

/// Offset of the first byte at or after `i` that is `"`, `\` or below
/// 0x20, or `b.len()` when there is none (also when `i >= b.len()`).
///
/// For strict string readers: from just after an opening quote, the
/// answer is where the body ends, an escape starts, or a raw control byte
/// (an error) sits. Bytes 0x80 and above are not stops: check UTF-8
/// separately (e.g. `std::str::from_utf8` on the whole text once).
/// Reads 16 bytes at a time; the last fewer than 16 are read into a
/// padded copy, so no byte past `b.len()` is ever a match.
#[inline]
pub fn next_string_special(b: &[u8], i: usize) -> usize {
    next_special_with(b, i, string_specials16)
}

/// [`next_string_special`] with the portable code, whatever the target.
pub fn next_string_special_portable(b: &[u8], i: usize) -> usize {
    next_special_with(b, i, string_specials16_portable)
}

/// Offset of the first byte at or after `i` whose class `select` picks
/// from the [`Masks16`] of its 16 bytes (`b.len()` when there is none), 16
/// bytes at a time, the tail read through a padded copy (exact). E.g.
/// `next_of(b, i, |m| m.quote | m.backslash)`.
#[inline(always)]
pub fn next_of(b: &[u8], i: usize, select: impl Fn(&Masks16) -> u16) -> usize {
    next_special_with(b, i, |c| select(&classify16(c)))
}

#[inline(always)]
fn next_special_with(b: &[u8], mut i: usize, f: impl Fn(&[u8; 16]) -> u16) -> usize {
    while let Some(c) = b.get(i..i + 16) {
        let m = f(c.try_into().expect("16 bytes"));
        if m != 0 {
            return i + m.trailing_zeros() as usize;
        }
        i += 16;
    }
    if i >= b.len() {
        return b.len();
    }
    // The tail, padded with a byte of no class.
    let mut pad = [b'a'; 16];
    pad[..b.len() - i].copy_from_slice(&b[i..]);
    let m = f(&pad);
    if m != 0 {
        i + m.trailing_zeros() as usize
    } else {
        b.len()
    }
}

/// Prefix XOR: bit `k` of the result is the XOR of bits `0..=k` of `x`
/// (simdjson does it with a carry-less multiply by all ones; six shifts
/// here, with no target feature beyond the baseline).
#[inline(always)]
pub const fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// What one 64-byte block is, read in sequence after the blocks before it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Block {
    /// The byte classes ([`classify64`]).
    pub masks: Masks64,
    /// Bytes escaped by a backslash (the byte after an odd run of `\`).
    pub escaped: u64,
    /// Unescaped quotes: the opening and closing quotes of strings.
    pub quotes: u64,
    /// Bytes inside strings: from an opening quote (included) to its
    /// closing quote (excluded).
    pub in_string: u64,
}

impl Block {
    /// `{}[],:` outside strings plus every unescaped quote: the positions
    /// a grammar walk visits (an opening quote starts a string, a closing
    /// quote ends one).
    #[inline(always)]
    pub fn structurals(&self) -> u64 {
        (self.masks.structural & !self.in_string) | self.quotes
    }
}

/// Carries string state across 64-byte blocks (simdjson's stage 1): odd
/// backslash runs that end a block escape the next block's first byte, and
/// a string open at a block's end goes on in the next.
#[derive(Debug, Clone, Copy, Default)]
pub struct StringTracker {
    /// The previous block ended in an odd run of backslashes.
    escape_carry: u64,
    /// All ones when the previous block ended inside a string, else zero.
    in_string_carry: u64,
}

impl StringTracker {
    /// A tracker at the start of a text (outside any string).
    pub const fn new() -> StringTracker {
        StringTracker {
            escape_carry: 0,
            in_string_carry: 0,
        }
    }

    /// Whether the last block ended inside a string.
    pub const fn in_string(&self) -> bool {
        self.in_string_carry != 0
    }

    /// Reads the next 64 bytes of the text.
    #[inline(always)]
    pub fn next(&mut self, b: &[u8; 64]) -> Block {
        self.next_masks(classify64(b))
    }

    /// Reads the next block from its byte classes.
    #[inline(always)]
    pub fn next_masks(&mut self, masks: Masks64) -> Block {
        let (escaped, quotes, in_string) = self.strings(masks.quote, masks.backslash);
        Block {
            masks,
            escaped,
            quotes,
            in_string,
        }
    }

    /// Reads the next block from its quotes and backslashes: the escaped
    /// bytes, the unescaped quotes and the bytes inside strings (from an
    /// opening quote, included, to its closing quote, excluded).
    #[inline(always)]
    pub fn strings(&mut self, quote: u64, backslash: u64) -> (u64, u64, u64) {
        let escaped = if backslash | self.escape_carry == 0 {
            0
        } else {
            self.escaped(backslash)
        };
        let quotes = quote & !escaped;
        let in_string = prefix_xor(quotes) ^ self.in_string_carry;
        self.in_string_carry = ((in_string as i64) >> 63) as u64;
        (escaped, quotes, in_string)
    }

    /// simdjson's `find_escaped`: the bytes that follow an odd-length run
    /// of backslashes (a backslash escaped itself is no escape).
    #[inline(always)]
    fn escaped(&mut self, backslash: u64) -> u64 {
        const EVEN: u64 = 0x5555_5555_5555_5555;
        let backslash = backslash & !self.escape_carry;
        let follows_escape = (backslash << 1) | self.escape_carry;
        let odd_starts = backslash & !EVEN & !follows_escape;
        let (seq_even, carry) = odd_starts.overflowing_add(backslash);
        self.escape_carry = carry as u64;
        let invert = seq_even << 1;
        (EVEN ^ invert) & follows_escape
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reference16(c: &[u8; 16]) -> Masks16 {
        let mut m = Masks16::default();
        for (k, &x) in c.iter().enumerate() {
            let bit = 1u16 << k;
            if x == b'"' {
                m.quote |= bit;
            }
            if x == b'\\' {
                m.backslash |= bit;
            }
            if x < 0x20 {
                m.control |= bit;
            }
            if b"{}[],:".contains(&x) {
                m.structural |= bit;
            }
            if b" \t\n\r".contains(&x) {
                m.whitespace |= bit;
            }
            if x > 0x7f {
                m.non_ascii |= bit;
            }
        }
        m
    }

    fn reference_next(b: &[u8], i: usize) -> usize {
        (i..b.len())
            .find(|&k| b[k] == b'"' || b[k] == b'\\' || b[k] < 0x20)
            .unwrap_or(b.len())
    }

    /// Escaped bytes and in-string bytes, bytewise.
    fn reference_strings(b: &[u8]) -> (Vec<bool>, Vec<bool>) {
        let mut escaped = vec![false; b.len()];
        let mut in_string = vec![false; b.len()];
        let mut inside = false;
        let mut k = 0;
        while k < b.len() {
            in_string[k] = inside;
            if b[k] == b'\\' {
                if k + 1 < b.len() {
                    escaped[k + 1] = true;
                    in_string[k + 1] = inside;
                }
                k += 2;
                continue;
            }
            if b[k] == b'"' {
                inside = !inside;
                in_string[k] = inside;
            }
            k += 1;
        }
        (escaped, in_string)
    }

    /// Bytes that exercise every class and its neighbours.
    fn byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            any::<u8>(),
            prop::sample::select(
                b"\"\\{}[],: \t\n\r\x1f\x20\x00\x7f\x80\xffazZ[\x5b\x5d\x7b\x7d\x3b\x0c\x2e"
                    .to_vec()
            ),
        ]
    }

    #[test]
    fn every_byte_in_every_position() {
        for x in 0..=255u8 {
            for k in 0..16 {
                let mut c = [b'a'; 16];
                c[k] = x;
                assert_eq!(classify16(&c), reference16(&c), "{x:#x} at {k}");
                assert_eq!(classify16_portable(&c), reference16(&c), "{x:#x} at {k}");
            }
        }
    }

    #[test]
    fn escapes_and_strings_across_blocks() {
        // A run of 65 backslashes crosses a block: the quote after it is escaped.
        let mut t = b"\"".to_vec();
        t.extend(std::iter::repeat_n(b'\\', 65));
        t.extend_from_slice(b"\"x\" {");
        t.resize(192, b' ');
        let mut tr = StringTracker::new();
        let blocks: Vec<Block> = t
            .chunks(64)
            .map(|c| tr.next(c.try_into().unwrap()))
            .collect();
        // 65 backslashes at 1..=65: those at even offsets are escaped by
        // the one before (64 is bit 0 of block 1), and the last escapes the
        // quote at 66 (bit 2).
        assert_eq!(blocks[1].escaped, 0b101);
        assert_eq!(blocks[1].quotes, 1 << 4);
        assert!(!tr.in_string());
        // The `{` at 68 is outside strings.
        assert_eq!(blocks[1].structurals() & (1 << 6), 1 << 6);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        #[test]
        fn sse2_swar_and_reference_agree(bytes in prop::collection::vec(byte(), 64)) {
            let b: &[u8; 64] = bytes.as_slice().try_into().unwrap();
            let m = classify64(b);
            prop_assert_eq!(m, classify64_portable(b));
            for k in 0..4 {
                let c = chunk16(b, k);
                let r = reference16(c);
                prop_assert_eq!(classify16(c), r);
                prop_assert_eq!(classify16_portable(c), r);
                prop_assert_eq!((m.quote >> (16 * k)) as u16, r.quote);
                prop_assert_eq!((m.structural >> (16 * k)) as u16, r.structural);
            }
        }

        #[test]
        fn token_masks_agree(bytes in prop::collection::vec(byte(), 64)) {
            let b: &[u8; 64] = bytes.as_slice().try_into().unwrap();
            let t = classify64_tokens(b);
            prop_assert_eq!(t, classify64_tokens_portable(b));
            for (k, &x) in b.iter().enumerate() {
                let scalar = x > 0x20 && x != b'"' && !b"{}[],:".contains(&x);
                prop_assert_eq!(t.scalar >> k & 1 == 1, scalar, "{:#x}", x);
            }
        }

        #[test]
        fn next_of_is_exact(bytes in prop::collection::vec(byte(), 0..80), start in 0usize..90) {
            let first = |pick: &dyn Fn(u8) -> bool| {
                (start..bytes.len()).find(|&k| pick(bytes[k])).unwrap_or(bytes.len())
            };
            prop_assert_eq!(
                next_of(&bytes, start, |m| m.quote | m.backslash),
                first(&|x| x == b'"' || x == b'\\')
            );
            prop_assert_eq!(
                next_of(&bytes, start, |m| m.quote | m.structural),
                first(&|x| b"\"{}[],:".contains(&x))
            );
        }

        #[test]
        fn next_string_special_is_exact(bytes in prop::collection::vec(byte(), 0..80), start in 0usize..90) {
            let want = reference_next(&bytes, start);
            prop_assert_eq!(next_string_special(&bytes, start), want);
            prop_assert_eq!(next_string_special_portable(&bytes, start), want);
        }

        #[test]
        fn tracker_matches_a_bytewise_reading(
            bytes in prop::collection::vec(prop::sample::select(b"\\\\\\\"\"a{".to_vec()), 0..300)
        ) {
            let mut t = bytes.clone();
            t.resize(t.len().div_ceil(64) * 64, b' ');
            let (escaped, in_string) = reference_strings(&t);
            let mut tr = StringTracker::new();
            for (n, c) in t.chunks(64).enumerate() {
                let blk = tr.next(c.try_into().unwrap());
                for k in 0..64 {
                    let at = n * 64 + k;
                    prop_assert_eq!(blk.escaped >> k & 1 == 1, escaped[at], "escaped at {}", at);
                    prop_assert_eq!(blk.in_string >> k & 1 == 1, in_string[at], "in string at {}", at);
                    let quote = t[at] == b'"' && !escaped[at];
                    prop_assert_eq!(blk.quotes >> k & 1 == 1, quote, "quote at {}", at);
                }
            }
        }
    }
}
