//! Hot loops compiled three times: for the baseline x86-64 target (SSE2),
//! with AVX2+FMA and with AVX-512, picked at run time. The code is the same
//! scalar Rust; the wider targets only let the compiler use 8- or 16-lane
//! vectors. No fused multiply-add is introduced (Rust never contracts
//! `a * b + c`), so every version gives bit-identical results.

use super::math;
use crate::backend::BinaryOp;

#[cfg(target_arch = "x86_64")]
fn has_avx512() -> bool {
    static AVX512: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVX512.get_or_init(|| has_avx2() && is_x86_feature_detected!("avx512f"))
}

#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    static AVX2: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVX2.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
}

/// Declares `pub fn $name($args) -> $ret` that runs `$body` built for
/// AVX-512 or AVX2 when the CPU has it, and for the baseline target
/// otherwise.
macro_rules! multiversion {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty $body:block) => {
        $(#[$doc])*
        pub fn $name($($arg: $ty),*) -> $ret {
            #[inline(always)]
            fn generic($($arg: $ty),*) -> $ret $body

            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) -> $ret {
                    generic($($arg),*)
                }
                if has_avx512() {
                    // SAFETY: `has_avx512` checked at run time that this
                    // CPU executes AVX-512F, AVX2 and FMA instructions.
                    return unsafe { avx512($($arg),*) };
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) -> $ret {
                    generic($($arg),*)
                }
                if has_avx2() {
                    // SAFETY: `has_avx2` checked at run time that this CPU
                    // executes AVX2 and FMA instructions.
                    return unsafe { avx2($($arg),*) };
                }
            }
            generic($($arg),*)
        }
    };
}

multiversion! {
    /// `row[i] = exp(row[i] - max)`, returning the sum of the results.
    fn exp_shifted_sum(row: &mut [f32], max: f32) -> f32 {
        for x in row.iter_mut() {
            *x = math::exp(*x - max);
        }
        super::norm::sum(row)
    }
}

multiversion! {
    /// The largest element (NaNs ignored; -inf for an empty or all-NaN
    /// slice). Max is exact, so the 16 independent lanes that let the loop
    /// vectorise give the same result as a left-to-right fold.
    fn max(row: &[f32]) -> f32 {
        let mut acc = [f32::NEG_INFINITY; 16];
        let chunks = row.chunks_exact(16);
        let mut best = chunks
            .remainder()
            .iter()
            .fold(f32::NEG_INFINITY, |a, &v| if v > a { v } else { a });
        for c in chunks {
            for i in 0..16 {
                acc[i] = if c[i] > acc[i] { c[i] } else { acc[i] };
            }
        }
        for a in acc {
            best = if a > best { a } else { best };
        }
        best
    }
}

multiversion! {
    /// `row[i] *= factor`.
    fn scale(row: &mut [f32], factor: f32) -> () {
        for x in row.iter_mut() {
            *x *= factor;
        }
    }
}

multiversion! {
    /// `out[i] = x[i]` widened from bf16 (a shift; `to_f32` only quiets
    /// NaNs, a select the compiler vectorises).
    fn widen_bf16(out: &mut [f32], x: &[half::bf16]) -> () {
        for (o, v) in out.iter_mut().zip(x) {
            *o = v.to_f32();
        }
    }
}

multiversion! {
    /// `out[i] = a[i] op b[i]`, the op chosen once per row rather than per
    /// element so each arm vectorises (same arithmetic as
    /// `elementwise::apply_binary`).
    fn binary_row(op: BinaryOp, out: &mut [f32], a: &[f32], b: &[f32]) -> () {
        let lanes = out.iter_mut().zip(a).zip(b);
        match op {
            BinaryOp::Add => lanes.for_each(|((o, &a), &b)| *o = a + b),
            BinaryOp::Sub => lanes.for_each(|((o, &a), &b)| *o = a - b),
            BinaryOp::Mul => lanes.for_each(|((o, &a), &b)| *o = a * b),
            BinaryOp::Div => lanes.for_each(|((o, &a), &b)| *o = a / b),
            BinaryOp::Maximum => lanes.for_each(|((o, &a), &b)| *o = a.max(b)),
            BinaryOp::Minimum => lanes.for_each(|((o, &a), &b)| *o = a.min(b)),
        }
    }
}

multiversion! {
    /// `row[i] += bias[i]`.
    fn add_assign(row: &mut [f32], bias: &[f32]) -> () {
        for (x, &b) in row.iter_mut().zip(bias) {
            *x += b;
        }
    }
}

multiversion! {
    /// `out[i] = gelu_tanh(x[i])`.
    fn gelu_tanh(out: &mut [f32], x: &[f32]) -> () {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = math::gelu_tanh(v);
        }
    }
}

multiversion! {
    /// `out[i] = silu(x[i])`.
    fn silu(out: &mut [f32], x: &[f32]) -> () {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = math::silu(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatch_matches_scalar() {
        let x: Vec<f32> = (0..1000).map(|i| (i as f32 - 500.0) * 0.013).collect();
        let mut row = x.clone();
        let total = exp_shifted_sum(&mut row, 1.5);
        for (r, v) in row.iter().zip(&x) {
            assert_eq!(*r, math::exp(v - 1.5));
        }
        let plain: f32 = row.iter().sum();
        assert!((total - plain).abs() <= 1e-5 * plain);
        let mut out = vec![0.0; x.len()];
        gelu_tanh(&mut out, &x);
        for (o, v) in out.iter().zip(&x) {
            assert_eq!(*o, math::gelu_tanh(*v), "gelu({v})");
        }
        silu(&mut out, &x);
        assert!(out.iter().zip(&x).all(|(o, v)| *o == math::silu(*v)));
        add_assign(&mut row, &x);
        let fold = |v: &[f32]| v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for len in [0, 1, 15, 16, 17, 100, 1000] {
            assert_eq!(max(&x[..len]), fold(&x[..len]), "max of {len}");
        }
        let mut with_nan = x[..40].to_vec();
        with_nan[7] = f32::NAN;
        with_nan[33] = f32::NAN;
        assert_eq!(max(&with_nan), fold(&with_nan));
        let halves: Vec<half::bf16> = x.iter().map(|&v| half::bf16::from_f32(v)).collect();
        let mut wide = vec![0.0; x.len()];
        widen_bf16(&mut wide, &halves);
        assert!(wide.iter().zip(&halves).all(|(w, h)| *w == h.to_f32()));
        let y: Vec<f32> = x.iter().rev().copied().collect();
        for op in [
            BinaryOp::Add,
            BinaryOp::Sub,
            BinaryOp::Mul,
            BinaryOp::Div,
            BinaryOp::Maximum,
            BinaryOp::Minimum,
        ] {
            binary_row(op, &mut out, &x, &y);
            let want: Vec<f32> = x
                .iter()
                .zip(&y)
                .map(|(&a, &b)| super::super::elementwise::apply_binary(op, a, b))
                .collect();
            assert_eq!(out, want, "{op:?}");
        }
        let mut scaled = x.clone();
        scale(&mut scaled, 0.37);
        assert!(scaled.iter().zip(&x).all(|(s, v)| *s == v * 0.37));
    }
}
