//! The 16-bit storage type on the GPU and the host-side conversions used by
//! uploads and downloads.
//!
//! Weights and activations live on the GPU in bf16 where the card has bf16
//! arithmetic (compute capability 8.0 and up), else in f16. bf16 keeps f32's
//! exponent range, which LTX's activations need; f16 is the fallback for
//! Turing/Volta and is why activations are checked for Inf after the first
//! step there.

use half::{bf16, f16, slice::HalfFloatSliceExt};

/// A 16-bit floating-point storage format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Half {
    Bf16,
    F16,
}

impl Half {
    /// The storage type for a device of compute capability `(major, minor)`.
    pub fn for_compute_capability(major: i32, _minor: i32) -> Half {
        if major >= 8 {
            Half::Bf16
        } else {
            Half::F16
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Half::Bf16 => "bf16",
            Half::F16 => "f16",
        }
    }

    /// Converts f32 to the 16-bit format, round-to-nearest-even.
    pub fn encode(self, src: &[f32], dst: &mut [u16]) {
        debug_assert_eq!(src.len(), dst.len());
        match self {
            Half::Bf16 => {
                // SAFETY: bf16 is a `repr(transparent)` u16.
                let dst: &mut [bf16] = unsafe { cast_mut(dst) };
                dst.convert_from_f32_slice(src);
            }
            Half::F16 => {
                // SAFETY: f16 is a `repr(transparent)` u16.
                let dst: &mut [f16] = unsafe { cast_mut(dst) };
                dst.convert_from_f32_slice(src);
            }
        }
    }

    /// Widens the 16-bit format to f32 (exact).
    pub fn decode(self, src: &[u16], dst: &mut [f32]) {
        debug_assert_eq!(src.len(), dst.len());
        match self {
            Half::Bf16 => {
                // SAFETY: bf16 is a `repr(transparent)` u16.
                let src: &[bf16] = unsafe { cast(src) };
                src.convert_to_f32_slice(dst);
            }
            Half::F16 => {
                // SAFETY: f16 is a `repr(transparent)` u16.
                let src: &[f16] = unsafe { cast(src) };
                src.convert_to_f32_slice(dst);
            }
        }
    }

    pub fn encode_vec(self, src: &[f32]) -> Vec<u16> {
        let mut out = vec![0u16; src.len()];
        self.encode(src, &mut out);
        out
    }

    pub fn decode_vec(self, src: &[u16]) -> Vec<f32> {
        let mut out = vec![0f32; src.len()];
        self.decode(src, &mut out);
        out
    }

    /// Relative spacing of representable values near 1 (2^-7 for bf16's 8
    /// significant bits, 2^-10 for f16's 11): one rounding errs by at most
    /// half of this.
    pub fn epsilon(self) -> f32 {
        match self {
            Half::Bf16 => 1.0 / 128.0,
            Half::F16 => 1.0 / 1024.0,
        }
    }
}

/// # Safety
/// `T` must be a `repr(transparent)` wrapper of `u16`.
unsafe fn cast<T>(s: &[u16]) -> &[T] {
    debug_assert_eq!(std::mem::size_of::<T>(), 2);
    // SAFETY: same size and alignment as u16 by the caller's promise.
    unsafe { std::slice::from_raw_parts(s.as_ptr().cast(), s.len()) }
}

/// # Safety
/// `T` must be a `repr(transparent)` wrapper of `u16`.
unsafe fn cast_mut<T>(s: &mut [u16]) -> &mut [T] {
    debug_assert_eq!(std::mem::size_of::<T>(), 2);
    // SAFETY: same size and alignment as u16 by the caller's promise.
    unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast(), s.len()) }
}

/// Index and value of the first NaN or infinity, if any.
pub fn first_non_finite(values: &[f32]) -> Option<(usize, f32)> {
    values
        .iter()
        .position(|v| !v.is_finite())
        .map(|i| (i, values[i]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_type_follows_compute_capability() {
        assert_eq!(Half::for_compute_capability(9, 0), Half::Bf16);
        assert_eq!(Half::for_compute_capability(8, 9), Half::Bf16);
        assert_eq!(Half::for_compute_capability(8, 0), Half::Bf16);
        assert_eq!(Half::for_compute_capability(7, 5), Half::F16);
        assert_eq!(Half::for_compute_capability(7, 0), Half::F16);
    }

    #[test]
    fn bf16_round_trip_is_within_half_an_ulp() {
        let values: Vec<f32> = (0..10_000)
            .map(|i| ((i as f32) * 0.7311).sin() * 10f32.powi(i % 9 - 4))
            .collect();
        for half in [Half::Bf16, Half::F16] {
            let back = half.decode_vec(&half.encode_vec(&values));
            for (a, b) in values.iter().zip(&back) {
                // f16 loses range below ~6e-5 (subnormals): compare absolutely there
                let tol = (a.abs() * half.epsilon() / 2.0).max(if half == Half::F16 {
                    6e-8
                } else {
                    0.0
                });
                assert!((a - b).abs() <= tol, "{half:?}: {a} -> {b}");
            }
        }
    }

    #[test]
    fn bf16_encoding_is_exact_bits() {
        // 1.0 = 0x3f80, -2.0 = 0xc000, 1 + 2^-8 rounds to even (1.0)
        let enc = Half::Bf16.encode_vec(&[1.0, -2.0, 1.0 + 1.0 / 256.0, f32::INFINITY]);
        assert_eq!(enc, vec![0x3f80, 0xc000, 0x3f80, 0x7f80]);
        let enc = Half::F16.encode_vec(&[1.0, -2.0, 65520.0]);
        assert_eq!(enc, vec![0x3c00, 0xc000, 0x7c00], "65520 overflows f16");
    }

    #[test]
    fn non_finite_values_are_found() {
        assert_eq!(first_non_finite(&[1.0, 2.0]), None);
        let (i, v) = first_non_finite(&[1.0, f32::NAN, f32::INFINITY]).unwrap();
        assert_eq!(i, 1);
        assert!(v.is_nan());
        assert_eq!(
            first_non_finite(&[0.0, f32::NEG_INFINITY]),
            Some((1, f32::NEG_INFINITY))
        );
    }
}
