//! Every op against a plain-loop reference on small random inputs, with
//! shapes chosen to hit block edges (odd sizes, more keys than one block).

use super::*;
use crate::backend::{CpuStorage, Device};
use crate::testing::assert_close;

/// Deterministic values in [-1, 1) (xorshift), so failures reproduce.
fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn rand(dims: &[usize], seed: u64) -> Tensor {
    let n = dims.iter().product();
    Tensor::from_vec(rand_vec(n, seed), dims, &Device::cpu()).unwrap()
}

fn naive_matmul(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
        }
    }
    out
}

#[test]
fn views_and_copies() {
    let t = Tensor::arange(24, &Device::cpu())
        .unwrap()
        .reshape(&[2, 3, 4])
        .unwrap();
    let p = t.permute(&[2, 0, 1]).unwrap();
    assert_eq!(p.dims(), &[4, 2, 3]);
    let v = p.to_vec_f32().unwrap();
    assert_eq!(&v[..6], &[0.0, 4.0, 8.0, 12.0, 16.0, 20.0]);
    let tr = t.transpose(1, 2).unwrap().contiguous().unwrap();
    assert_eq!(tr.dims(), &[2, 4, 3]);
    assert_eq!(tr.to_vec_f32().unwrap()[..4], [0.0, 4.0, 8.0, 1.0]);
    let n = t.narrow(2, 1, 2).unwrap();
    assert_eq!(n.to_vec_f32().unwrap()[..4], [1.0, 2.0, 5.0, 6.0]);
    let r = n.reshape(&[12]).unwrap();
    assert_eq!(r.to_vec_f32().unwrap()[10..], [21.0, 22.0]);
    let sel = t.select(1, 2).unwrap();
    assert_eq!(sel.dims(), &[2, 4]);
    assert_eq!(sel.to_vec_f32().unwrap()[4], 20.0);
    assert_eq!(t.unbind(0).unwrap().len(), 2);
    assert_eq!(t.chunk(2, 2).unwrap()[1].to_vec_f32().unwrap()[0], 2.0);
    assert!(t.chunk(3, 2).is_err());
    assert_eq!(t.unsqueeze(1).unwrap().dims(), &[2, 1, 3, 4]);
    assert!(t.squeeze(0).is_err());
    assert!(t.reshape(&[5, 5]).is_err());
}

#[test]
fn cat_along_each_dim() {
    let a = rand(&[2, 3, 4], 1);
    let b = rand(&[2, 1, 4], 2);
    let c = Tensor::cat(&[&a, &b], 1).unwrap();
    assert_eq!(c.dims(), &[2, 4, 4]);
    assert_eq!(
        c.narrow(1, 0, 3).unwrap().to_vec_f32().unwrap(),
        a.to_vec_f32().unwrap()
    );
    assert_eq!(
        c.narrow(1, 3, 1).unwrap().to_vec_f32().unwrap(),
        b.to_vec_f32().unwrap()
    );
    let at = a.transpose(0, 2).unwrap();
    let d = Tensor::cat(&[&at, &at], 0).unwrap();
    assert_eq!(
        d.narrow(0, 4, 4).unwrap().to_vec_f32().unwrap(),
        at.to_vec_f32().unwrap()
    );
    assert!(Tensor::cat(&[&a, &b], 0).is_err());
    assert!(Tensor::cat(&[], 0).is_err());
}

#[test]
fn dtype_round_trips() {
    let a = Tensor::from_vec(vec![1.0, -2.5, 0.1, 3e4], &[4], &Device::cpu()).unwrap();
    let h = a.to_dtype(DType::F16).unwrap();
    assert_eq!(h.dtype(), DType::F16);
    let back = h.to_vec_f32().unwrap();
    assert_eq!(back[..2], [1.0, -2.5]);
    assert!((back[2] - 0.1).abs() < 1e-4);
    let b = a.to_dtype(DType::BF16).unwrap().to_vec_f32().unwrap();
    assert!((b[2] - 0.1).abs() < 1e-3 && (b[3] - 3e4).abs() < 200.0);
    let bf = Tensor::from_host(
        CpuStorage::BF16(vec![half::bf16::ONE; 2]),
        &[2],
        &Device::cpu(),
    )
    .unwrap();
    // The CPU computes in f32 only and says so.
    assert!(matches!(bf.silu(), Err(TensorError::Unsupported { .. })));
    assert_eq!(
        bf.to_dtype(DType::F32).unwrap().silu().unwrap().dims(),
        &[2]
    );
}

#[test]
fn matmul_batched_transposed_and_shared() {
    let (m, k, n) = (7, 33, 5);
    let a = rand(&[3, m, k], 3);
    let b = rand(&[3, k, n], 4);
    let c = a.matmul(&b).unwrap();
    assert_eq!(c.dims(), &[3, m, n]);
    let (av, bv, cv) = (
        a.to_vec_f32().unwrap(),
        b.to_vec_f32().unwrap(),
        c.to_vec_f32().unwrap(),
    );
    for i in 0..3 {
        let r = naive_matmul(
            &av[i * m * k..][..m * k],
            &bv[i * k * n..][..k * n],
            m,
            k,
            n,
        );
        assert_close("batched", &cv[i * m * n..][..m * n], &r, 1e-5);
    }
    // A transposed view goes through strides, not a copy.
    let bt = rand(&[n, k], 5);
    let c2 = a.matmul(&bt.transpose(0, 1).unwrap()).unwrap();
    let btv = bt.transpose(0, 1).unwrap().to_vec_f32().unwrap();
    let r = naive_matmul(&av[..m * k], &btv, m, k, n);
    assert_close("shared rhs", &c2.to_vec_f32().unwrap()[..m * n], &r, 1e-5);
    assert!(a.matmul(&a).is_err());
    // Large enough to take the multi-threaded path.
    let (m, k, n) = (130, 70, 90);
    let a = rand(&[m, k], 6);
    let b = rand(&[k, n], 7);
    let r = naive_matmul(&a.to_vec_f32().unwrap(), &b.to_vec_f32().unwrap(), m, k, n);
    assert_close(
        "large",
        &a.matmul(&b).unwrap().to_vec_f32().unwrap(),
        &r,
        1e-5,
    );
}

#[test]
fn linear_with_and_without_bias() {
    let x = rand(&[2, 5, 6], 8);
    let w = rand(&[4, 6], 9);
    let b = rand(&[4], 10);
    let y = x.linear(&w, Some(&b)).unwrap();
    assert_eq!(y.dims(), &[2, 5, 4]);
    let xv = x.to_vec_f32().unwrap();
    let wt = w.transpose(0, 1).unwrap().to_vec_f32().unwrap();
    let mut r = naive_matmul(&xv, &wt, 10, 6, 4);
    let no_bias = x.linear(&w, None).unwrap().to_vec_f32().unwrap();
    assert_close("no bias", &no_bias, &r, 1e-5);
    let bv = b.to_vec_f32().unwrap();
    r.iter_mut().enumerate().for_each(|(i, v)| *v += bv[i % 4]);
    assert_close("bias", &y.to_vec_f32().unwrap(), &r, 1e-5);
    // Non-contiguous input.
    let xt = x.transpose(0, 1).unwrap();
    let yt = xt.linear(&w, Some(&b)).unwrap().transpose(0, 1).unwrap();
    assert_close("strided", &yt.to_vec_f32().unwrap(), &r, 1e-5);
    assert!(x.linear(&b, None).is_err());
    assert!(x.linear(&w, Some(&w)).is_err());
}

/// `x [m, k]` times an `[n, k]` weight, f32 and bf16, with and without a
/// bias, contiguous and strided input, against the plain loop.
fn check_linear(m: usize, k: usize, n: usize, seed: u64) {
    let x = rand(&[m, k], seed);
    let w = rand(&[n, k], seed + 1);
    let b = rand(&[n], seed + 2);
    let xv = x.to_vec_f32().unwrap();
    for (name, w, b) in [
        ("f32", w.clone(), b.clone()),
        ("bf16", as_bf16(&w), as_bf16(&b)),
    ] {
        let wt = w
            .to_dtype(DType::F32)
            .unwrap()
            .transpose(0, 1)
            .unwrap()
            .to_vec_f32()
            .unwrap();
        let mut want = naive_matmul(&xv, &wt, m, k, n);
        let got = x.linear(&w, None).unwrap().to_vec_f32().unwrap();
        assert_close(name, &got, &want, 1e-5);
        let bv = b.to_dtype(DType::F32).unwrap().to_vec_f32().unwrap();
        want.iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v += bv[i % n]);
        let got = x.linear(&w, Some(&b)).unwrap().to_vec_f32().unwrap();
        assert_close(name, &got, &want, 1e-5);
        let xt = x.transpose(0, 1).unwrap().contiguous().unwrap();
        let strided = xt.transpose(0, 1).unwrap();
        let got = strided.linear(&w, Some(&b)).unwrap().to_vec_f32().unwrap();
        assert_close(name, &got, &want, 1e-5);
    }
}

#[test]
fn linear_with_few_rows() {
    // Few rows against a wide weight: the CPU computes the transposed
    // product and transposes it back (matmul.rs `transposed_blocks`); the
    // larger shape is big enough to run multi-threaded.
    for (m, k, n) in [(3, 40, 70), (40, 300, 400)] {
        check_linear(m, k, n, 20);
    }
}

#[test]
fn linear_in_column_blocks() {
    // A weight read in place: the CPU shares the output columns out in
    // blocks, one single-threaded product each (matmul.rs `column_blocks`),
    // widening a 16-bit weight per block. A pool of three threads, so the
    // path runs whatever the machine has; 333 columns end in a partial
    // block. Blocks written straight into the output (97 rows, 70 deep; 300
    // rows) and computed transposed then transposed back (97 rows, 400
    // deep). Also a batched product with a transposed rhs view.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    pool.install(|| {
        check_linear(97, 70, 333, 30);
        check_linear(97, 400, 333, 40);
        check_linear(300, 40, 333, 50);
        let (m, k, n) = (100, 80, 150);
        let a = rand(&[2, m, k], 33);
        let bt = rand(&[2, n, k], 34);
        let c = a.matmul(&bt.transpose(1, 2).unwrap()).unwrap();
        let (av, cv) = (a.to_vec_f32().unwrap(), c.to_vec_f32().unwrap());
        let bv = bt.transpose(1, 2).unwrap().contiguous().unwrap();
        let bv = bv.to_vec_f32().unwrap();
        for i in 0..2 {
            let r = naive_matmul(
                &av[i * m * k..][..m * k],
                &bv[i * k * n..][..k * n],
                m,
                k,
                n,
            );
            assert_close("batched", &cv[i * m * n..][..m * n], &r, 1e-5);
        }
    });
}

#[test]
fn softmax_rows() {
    let x = rand(&[3, 17], 11).scale(20.0).unwrap();
    let y = x.softmax_last_dim().unwrap().to_vec_f32().unwrap();
    let xv = x.to_vec_f32().unwrap();
    for r in 0..3 {
        let row = &xv[r * 17..(r + 1) * 17];
        let max = row.iter().copied().fold(f32::MIN, f32::max);
        let e: Vec<f32> = row.iter().map(|v| (v - max).exp()).collect();
        let s: f32 = e.iter().sum();
        let reference: Vec<f32> = e.iter().map(|v| v / s).collect();
        assert_close("softmax", &y[r * 17..(r + 1) * 17], &reference, 1e-6);
    }
}

fn naive_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    bias: Option<&Tensor>,
    scale: f32,
) -> Vec<f32> {
    let (b, nq, h, dh) = (q.dims()[0], q.dims()[1], q.dims()[2], q.dims()[3]);
    let nk = k.dims()[1];
    let (q, k, v) = (
        q.to_vec_f32().unwrap(),
        k.to_vec_f32().unwrap(),
        v.to_vec_f32().unwrap(),
    );
    let bias = bias.map(|t| t.to_vec_f32().unwrap());
    let mut out = vec![0.0; b * nq * h * dh];
    for bi in 0..b {
        for hi in 0..h {
            for i in 0..nq {
                let qrow = &q[((bi * nq + i) * h + hi) * dh..][..dh];
                let mut s: Vec<f64> = (0..nk)
                    .map(|j| {
                        let krow = &k[((bi * nk + j) * h + hi) * dh..][..dh];
                        let dot: f32 = qrow.iter().zip(krow).map(|(a, b)| a * b).sum();
                        (dot * scale + bias.as_ref().map_or(0.0, |b| b[bi * nk + j])) as f64
                    })
                    .collect();
                let max = s.iter().copied().fold(f64::MIN, f64::max);
                s.iter_mut().for_each(|x| *x = (*x - max).exp());
                let total: f64 = s.iter().sum();
                for d in 0..dh {
                    let acc: f64 = (0..nk)
                        .map(|j| s[j] * v[((bi * nk + j) * h + hi) * dh + d] as f64)
                        .sum();
                    out[((bi * nq + i) * h + hi) * dh + d] = (acc / total) as f32;
                }
            }
        }
    }
    out
}

#[test]
fn attention_blocked_matches_naive() {
    // More queries than one query block (64 rows at least) and more keys
    // than one key block (512), neither a multiple of the block size.
    let (b, nq, nk, h, dh) = (2, 70, 600, 3, 8);
    let q = rand(&[b, nq, h, dh], 12).scale(3.0).unwrap();
    let k = rand(&[b, nk, h, dh], 13).scale(3.0).unwrap();
    let v = rand(&[b, nk, h, dh], 14);
    let scale = 1.0 / (dh as f32).sqrt();
    let out = Tensor::attention(&q, &k, &v, None, scale).unwrap();
    assert_eq!(out.dims(), &[b, nq, h, dh]);
    assert_close(
        "plain",
        &out.to_vec_f32().unwrap(),
        &naive_attention(&q, &k, &v, None, scale),
        1e-5,
    );
    // Padding: the second batch entry keeps only its first 5 keys.
    let mask: Vec<f32> = (0..b * nk)
        .map(|i| {
            if i >= nk && i % nk >= 5 {
                -10000.0
            } else {
                0.0
            }
        })
        .collect();
    let bias = Tensor::from_vec(mask, &[b, nk], &Device::cpu()).unwrap();
    let out = Tensor::attention(&q, &k, &v, Some(&bias), scale).unwrap();
    let reference = naive_attention(&q, &k, &v, Some(&bias), scale);
    assert_close("masked", &out.to_vec_f32().unwrap(), &reference, 1e-5);
    // Cross-attention shape: few keys, and a strided (transposed) input.
    let kt = rand(&[b, h, 7, dh], 15).transpose(1, 2).unwrap();
    let vt = rand(&[b, 7, h, dh], 16);
    let out = Tensor::attention(&q, &kt, &vt, None, scale).unwrap();
    assert_close(
        "cross",
        &out.to_vec_f32().unwrap(),
        &naive_attention(&q, &kt, &vt, None, scale),
        1e-5,
    );
    assert!(Tensor::attention(&q, &k, &vt, None, scale).is_err());
    assert!(Tensor::attention(&q, &k, &v, Some(&v), scale).is_err());
}

#[test]
fn norms() {
    let x = rand(&[4, 3, 37], 17).affine(2.0, 0.5).unwrap();
    let w = rand(&[37], 18);
    let bias = rand(&[37], 19);
    let xv = x.to_vec_f32().unwrap();
    let (wv, bv) = (w.to_vec_f32().unwrap(), bias.to_vec_f32().unwrap());
    let rms = x.rms_norm(Some(&w), 1e-6).unwrap().to_vec_f32().unwrap();
    let rms_plain = x.rms_norm(None, 1e-6).unwrap().to_vec_f32().unwrap();
    let ln = x
        .layer_norm(Some(&w), Some(&bias), 1e-5)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    let ln_plain = x
        .layer_norm(None, None, 1e-5)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    for r in 0..12 {
        let row = &xv[r * 37..(r + 1) * 37];
        let ms = row.iter().map(|v| (v * v) as f64).sum::<f64>() / 37.0;
        let inv = 1.0 / (ms + 1e-6).sqrt();
        let plain: Vec<f32> = row.iter().map(|&v| (v as f64 * inv) as f32).collect();
        let weighted: Vec<f32> = plain.iter().zip(&wv).map(|(a, b)| a * b).collect();
        assert_close("rms", &rms_plain[r * 37..][..37], &plain, 1e-5);
        assert_close("rms w", &rms[r * 37..][..37], &weighted, 1e-5);
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / 37.0;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / 37.0;
        let inv = 1.0 / (var + 1e-5).sqrt();
        let plain: Vec<f32> = row
            .iter()
            .map(|&v| ((v as f64 - mean) * inv) as f32)
            .collect();
        let affine: Vec<f32> = plain
            .iter()
            .zip(&wv)
            .zip(&bv)
            .map(|((a, w), b)| a * w + b)
            .collect();
        assert_close("ln", &ln_plain[r * 37..][..37], &plain, 1e-5);
        assert_close("ln affine", &ln[r * 37..][..37], &affine, 1e-5);
    }
    assert!(x
        .rms_norm(Some(&bias.narrow(0, 0, 5).unwrap()), 1e-6)
        .is_err());
}

#[test]
fn activations() {
    let x = rand(&[1000], 20).scale(6.0).unwrap();
    let xv = x.to_vec_f32().unwrap();
    let gelu: Vec<f32> = xv
        .iter()
        .map(|&v| {
            let v = v as f64;
            (0.5 * v
                * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v.powi(3))).tanh()))
                as f32
        })
        .collect();
    let silu: Vec<f32> = xv
        .iter()
        .map(|&v| (v as f64 / (1.0 + (-v as f64).exp())) as f32)
        .collect();
    assert_close(
        "gelu",
        &x.gelu_tanh().unwrap().to_vec_f32().unwrap(),
        &gelu,
        1e-6,
    );
    assert_close(
        "silu",
        &x.silu().unwrap().to_vec_f32().unwrap(),
        &silu,
        1e-6,
    );
    let e: Vec<f32> = xv.iter().map(|v| v.exp()).collect();
    assert_close("exp", &x.exp().unwrap().to_vec_f32().unwrap(), &e, 1e-6);
}

#[test]
fn elementwise_broadcasting() {
    let a = rand(&[2, 3, 4], 21);
    let b = rand(&[3, 1], 22);
    let (av, bv) = (a.to_vec_f32().unwrap(), b.to_vec_f32().unwrap());
    let idx_b = |i: usize| (i / 4) % 3;
    let sum = a.add(&b).unwrap().to_vec_f32().unwrap();
    let prod = a.mul(&b).unwrap().to_vec_f32().unwrap();
    let diff = b.sub(&a).unwrap().to_vec_f32().unwrap();
    for i in 0..24 {
        assert_eq!(sum[i], av[i] + bv[idx_b(i)]);
        assert_eq!(prod[i], av[i] * bv[idx_b(i)]);
        assert_eq!(diff[i], bv[idx_b(i)] - av[i]);
    }
    let sc = a.affine(2.0, 1.0).unwrap().to_vec_f32().unwrap();
    assert_eq!(sc[5], av[5] * 2.0 + 1.0);
    // A permuted operand on both sides.
    let at = a.transpose(1, 2).unwrap();
    let twice = at.add(&at).unwrap().to_vec_f32().unwrap();
    let atv = at.to_vec_f32().unwrap();
    assert!(twice.iter().zip(&atv).all(|(t, a)| *t == 2.0 * a));
    assert!(a.add(&rand(&[5], 0)).is_err());
}

#[test]
fn fused_modulate_residual_rope() {
    let (b, n, d) = (2, 5, 8);
    let x = rand(&[b, n, d], 23);
    let xv = x.to_vec_f32().unwrap();
    // Per-sample (broadcast over tokens) and per-token modulation.
    for tokens in [1, n] {
        let shift = rand(&[b, tokens, d], 24);
        let scale = rand(&[b, tokens, d], 25);
        let (shv, scv) = (shift.to_vec_f32().unwrap(), scale.to_vec_f32().unwrap());
        let out = x.modulate(&shift, &scale).unwrap().to_vec_f32().unwrap();
        let gate = rand(&[b, tokens, d], 26);
        let y = rand(&[b, n, d], 27);
        let (gv, yv) = (gate.to_vec_f32().unwrap(), y.to_vec_f32().unwrap());
        let res = x.gated_residual(&gate, &y).unwrap().to_vec_f32().unwrap();
        for i in 0..b * n * d {
            let (bi, ti, di) = (i / (n * d), (i / d) % n, i % d);
            let j = (bi * tokens + ti.min(tokens - 1)) * d + di;
            assert!((out[i] - (xv[i] * (1.0 + scv[j]) + shv[j])).abs() < 1e-6);
            assert!((res[i] - (xv[i] + gv[j] * yv[i])).abs() < 1e-6);
        }
    }
    // Strided modulation params, as unbind() of a [b, 1, 6, d] table gives.
    let table = rand(&[b, 1, 6, d], 28);
    let parts = table.unbind(2).unwrap();
    let out = x.modulate(&parts[0], &parts[1]).unwrap();
    let reference = x
        .mul(&parts[1].affine(1.0, 1.0).unwrap())
        .unwrap()
        .add(&parts[0])
        .unwrap();
    assert_close(
        "strided modulate",
        &out.to_vec_f32().unwrap(),
        &reference.to_vec_f32().unwrap(),
        1e-6,
    );

    let cos = rand(&[b, n, d], 29);
    let sin = rand(&[b, n, d], 30);
    let (cv, sv) = (cos.to_vec_f32().unwrap(), sin.to_vec_f32().unwrap());
    let out = x
        .rope_interleaved(&cos, &sin)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    for i in 0..b * n * d {
        let rotated = if i % 2 == 0 { -xv[i + 1] } else { xv[i - 1] };
        assert!((out[i] - (xv[i] * cv[i] + rotated * sv[i])).abs() < 1e-6);
    }
    assert!(rand(&[2, 3], 0)
        .rope_interleaved(&rand(&[2, 3], 1), &rand(&[2, 3], 2))
        .is_err());
    assert!(x
        .modulate(&rand(&[3, 1, d], 0), &rand(&[3, 1, d], 1))
        .is_err());
}

/// `t` rounded to bf16 and held as bf16 on the CPU (a weight as stored).
fn as_bf16(t: &Tensor) -> Tensor {
    t.to_dtype(DType::BF16).unwrap()
}

#[test]
fn cpu_widens_16_bit_weights_per_op() {
    // More columns than one widened panel, so several panels are used.
    let (m, k, n) = (5, 37, 1100);
    let x = rand(&[m, k], 11);
    let w = as_bf16(&rand(&[n, k], 12));
    let b = as_bf16(&rand(&[n], 13));
    let (w32, b32) = (
        w.to_dtype(DType::F32).unwrap(),
        b.to_dtype(DType::F32).unwrap(),
    );
    let want = x.linear(&w32, Some(&b32)).unwrap().to_vec_f32().unwrap();
    let got = x.linear(&w, Some(&b)).unwrap();
    assert_eq!(got.dtype(), DType::F32);
    crate::testing::assert_close(
        "linear, bf16 weight",
        &got.to_vec_f32().unwrap(),
        &want,
        1e-5,
    );

    // A rhs that is not a transposed Linear weight (row-major panels).
    let rhs = as_bf16(&rand(&[k, n], 14));
    let spec = crate::backend::MatmulSpec {
        batch: 1,
        m,
        n,
        k,
        lhs: crate::backend::MatStrides {
            offset: 0,
            batch: 0,
            row: k,
            col: 1,
        },
        rhs: crate::backend::MatStrides {
            offset: 0,
            batch: 0,
            row: n,
            col: 1,
        },
    };
    let cpu = Device::cpu();
    let got = cpu
        .backend()
        .matmul(x.storage(), rhs.storage(), None, &spec)
        .unwrap();
    let got = cpu.backend().download(got.as_ref()).unwrap();
    let want = x.matmul(&rhs.to_dtype(DType::F32).unwrap()).unwrap();
    crate::testing::assert_close(
        "matmul, row-major bf16 rhs",
        &got.view().widen(0, got.len()),
        &want.to_vec_f32().unwrap(),
        1e-5,
    );

    // Norm weights and elementwise tables are widened too; the result is f32.
    let w = as_bf16(&rand(&[k], 15));
    let normed = x.rms_norm(Some(&w), 1e-6).unwrap();
    let want = x
        .rms_norm(Some(&w.to_dtype(DType::F32).unwrap()), 1e-6)
        .unwrap();
    assert_eq!(normed.to_vec_f32().unwrap(), want.to_vec_f32().unwrap());
    let sum = x.add(&w).unwrap();
    assert_eq!(sum.dtype(), DType::F32);
    let sum_rev = w.add(&x).unwrap();
    assert_eq!(sum.to_vec_f32().unwrap(), sum_rev.to_vec_f32().unwrap());
    // Activations stay f32: a 16-bit activation is still refused.
    assert!(matches!(
        as_bf16(&x).linear(&w32, None),
        Err(TensorError::DTypeMismatch { .. })
    ));
}
