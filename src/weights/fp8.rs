//! The two 8-bit float formats safetensors stores (`F8_E4M3`, `F8_E5M2`),
//! widened to the compute dtype at load. Every fp8 value is exact in f32,
//! bf16 and f16 (at most 3 mantissa bits; exponents from 2^-16 to 2^15, all
//! inside each target's range), so widening loses nothing. The checkpoint's
//! memory saving is given up on the device until kernels read fp8 directly
//! (a follow-up).
//!
//! Written here rather than taken from the `float8` crate: two branch-light
//! functions against a dependency that pulls in its own `half` and
//! `num-traits` versions; `tests/weights_fp8.rs` checks all 256 byte values
//! of each format against torch's `float8_e4m3fn` / `float8_e5m2`.

/// `float8_e4m3fn` (OCP FP8 E4M3, the "fn" variant torch and safetensors'
/// `F8_E4M3` mean): 1 sign, 4 exponent bits (bias 7), 3 mantissa bits,
/// subnormals, **no infinities**; only S.1111.111 (0x7F, 0xFF) is NaN, so
/// the largest finite value is 448.
pub fn e4m3fn_to_f32(byte: u8) -> f32 {
    let sign = if byte & 0x80 != 0 { -1.0f32 } else { 1.0 };
    let exponent = i32::from((byte >> 3) & 0x0f);
    let mantissa = f32::from(byte & 0x07);
    if byte & 0x7f == 0x7f {
        return f32::NAN.copysign(sign);
    }
    let magnitude = if exponent == 0 {
        // Subnormal: 0.mmm × 2^(1 - 7); exact in f32 (powers of two).
        mantissa / 8.0 * 2f32.powi(-6)
    } else {
        (1.0 + mantissa / 8.0) * 2f32.powi(exponent - 7)
    };
    sign * magnitude
}

/// `float8_e5m2` (OCP FP8 E5M2): IEEE-style, the top byte of an IEEE f16
/// (1 sign, 5 exponent bits, 2 mantissa bits), so it keeps f16's
/// infinities (0x7C, 0xFC) and NaNs (exponent 31 with a non-zero mantissa).
pub fn e5m2_to_f32(byte: u8) -> f32 {
    half::f16::from_bits(u16::from(byte) << 8).to_f32()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e4m3fn_landmarks() {
        assert_eq!(e4m3fn_to_f32(0x00).to_bits(), 0.0f32.to_bits());
        assert_eq!(e4m3fn_to_f32(0x80).to_bits(), (-0.0f32).to_bits());
        assert_eq!(e4m3fn_to_f32(0x38), 1.0);
        assert_eq!(e4m3fn_to_f32(0x7e), 448.0);
        assert_eq!(e4m3fn_to_f32(0xfe), -448.0);
        assert_eq!(e4m3fn_to_f32(0x01), 2f32.powi(-9));
        // 0x78 (exponent 15, mantissa 0) is a number in the fn variant, not
        // an infinity as it would be in an IEEE-style format.
        assert_eq!(e4m3fn_to_f32(0x78), 256.0);
        assert!(e4m3fn_to_f32(0x7f).is_nan() && e4m3fn_to_f32(0xff).is_nan());
        assert!((0..=255u8).all(|b| !e4m3fn_to_f32(b).is_infinite()));
    }

    #[test]
    fn e5m2_landmarks() {
        assert_eq!(e5m2_to_f32(0x3c), 1.0);
        assert_eq!(e5m2_to_f32(0x7b), 57344.0);
        assert_eq!(e5m2_to_f32(0x7c), f32::INFINITY);
        assert_eq!(e5m2_to_f32(0xfc), f32::NEG_INFINITY);
        assert!(e5m2_to_f32(0x7d).is_nan());
        assert_eq!(e5m2_to_f32(0x01), 2f32.powi(-16));
    }
}
