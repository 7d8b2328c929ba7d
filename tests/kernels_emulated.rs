//! Every kernel of `kernels/` executed on the CPU through the SIMT emulator,
//! with the grid and block the CUDA backend uses (`genfx::kernels`), on tiny
//! shapes that still cover partial tiles and strided layouts, compared with
//! straightforward f64 reference code and (module `cpu_ops`) with the
//! engine's CPU backend ops, at the 16-bit tolerances below.
//!
//! Tolerances (same as the GPU tests): outputs stored in bf16 are within
//! 1e-2 + 1.6e-2 |ref|, f16 within 2e-3 + 4e-3 |ref| (two ulps of the type plus
//! f32 summation-order noise); attention, which also rounds the softmax
//! weights to 16 bits before P V, gets 2e-2 + 2e-2 |ref| and 4e-3 + 8e-3 |ref|.

use genfx::kernels::{self, Activation, Half, Launch, Sample, Value};
use genfx::tensor::DType;
use genfx_kernels_emu::{input, launch_in, null, output, Arg, Dims, Element};
use half::{bf16, f16};

// --- helpers -----------------------------------------------------------------------

struct Rng(u64);
impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// Uniform in [-1, 1).
    fn f(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.f() * scale).collect()
    }
}

trait Store: Element {
    const HALF: Half;
    const ATOL: f64;
    const RTOL: f64;
    fn from(v: f32) -> Self;
    fn to(self) -> f32;
}
impl Store for bf16 {
    const HALF: Half = Half::Bf16;
    const ATOL: f64 = 1e-2;
    const RTOL: f64 = 1.6e-2;
    fn from(v: f32) -> Self {
        bf16::from_f32(v)
    }
    fn to(self) -> f32 {
        self.to_f32()
    }
}
impl Store for f16 {
    const HALF: Half = Half::F16;
    const ATOL: f64 = 2e-3;
    const RTOL: f64 = 4e-3;
    fn from(v: f32) -> Self {
        f16::from_f32(v)
    }
    fn to(self) -> f32 {
        self.to_f32()
    }
}

fn store<T: Store>(v: &[f32]) -> Vec<T> {
    v.iter().map(|&x| T::from(x)).collect()
}
fn load<T: Store>(v: &[T]) -> Vec<f32> {
    v.iter().map(|&x| x.to()).collect()
}

fn dims(l: &Launch) -> Dims {
    Dims {
        grid: l.config.grid,
        block: l.config.block,
        shared_mem_bytes: l.config.shared_mem_bytes,
    }
}

/// Launches `l` in its module: kernel names are unique only per module
/// (`gated_residual_bf16` is in both norm.cu and tensor_ops.cu).
fn run(l: &Launch, args: &mut [Arg<'_>]) {
    if let Err(e) = launch_in(l.module, &l.kernel, dims(l), args) {
        panic!("{}/{}: {e}", l.module, l.kernel);
    }
}

#[track_caller]
fn assert_close(what: &str, got: &[f32], want: &[f64], atol: f64, rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst: Option<(usize, f64)> = None;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let excess = (f64::from(g) - w).abs() - (atol + rtol * w.abs());
        let excess = if excess.is_nan() {
            f64::INFINITY
        } else {
            excess
        };
        let worse = match worst {
            None => excess > 0.0,
            Some((_, w)) => excess > w,
        };
        if worse {
            worst = Some((i, excess));
        }
    }
    if let Some((i, _)) = worst {
        panic!(
            "{what}: element {i} is {} but the reference is {} (tolerance {atol} + {rtol}*|ref|)",
            got[i], want[i]
        );
    }
}

// --- coverage -------------------------------------------------------------------------

/// The kernels of `tensor_ops.cu` the CUDA backend launches, named as
/// src/backend/cuda/backend.rs builds the names (`{op}_{dtype.name()}`).
fn tensor_ops_launch_names() -> Vec<String> {
    let types = [DType::F32, DType::BF16, DType::F16];
    let mut names = Vec::new();
    for s in types {
        for d in types {
            names.push(format!("convert_{}_{}", s.name(), d.name()));
        }
    }
    for t in types {
        for op in [
            "unary",
            "affine",
            "binary",
            "modulate",
            "gated_residual",
            "rope",
            "softmax",
            "softmax_f32_to",
            "rms_norm",
            "layer_norm",
        ] {
            names.push(format!("{op}_{}", t.name()));
        }
    }
    names
}

/// Every `(module, kernel)` the CUDA backend launches: those `genfx::kernels`
/// hands it, for every type, and its generic tensor_ops kernels.
fn all_launches() -> Vec<(String, String)> {
    let mut launches: Vec<Launch> = Vec::new();
    for h in [Half::Bf16, Half::F16] {
        for a in [
            Activation::GeluTanh,
            Activation::Silu,
            Activation::GeluTanhMul,
        ] {
            launches.push(kernels::activation(a, h, 1));
        }
        launches.push(kernels::norm_modulate(h, 1, 1).unwrap());
        launches.push(kernels::conv3d_mma_ncdhw(h, 1, 1).unwrap());
        launches.push(kernels::gated_residual(h, 1, 1).unwrap());
        launches.push(kernels::rope_interleaved(h, 1, 2).unwrap());
        for d in [64, 128] {
            launches.push(kernels::flash_attention(h, d, 1, 1, 1, 1).unwrap());
        }
    }
    for v in [Value::F32, Value::Bf16, Value::F16] {
        launches.push(kernels::conv3d_ncdhw(v, 1, 1).unwrap());
        launches.push(kernels::channel_rms_norm(v, 1, 1, 1).unwrap());
        launches.push(kernels::depth_to_space_ncdhw(v, 1));
        launches.push(kernels::space_to_depth_ncdhw(v, 1));
        launches.push(kernels::euler_step(v, 1, 1).unwrap());
        launches.push(kernels::guidance_combine(v, 1, 1).unwrap());
        for s in [Sample::U8, Sample::U16, Sample::F32] {
            launches.push(kernels::rgba_to_planar(s, v, 1, 1).unwrap());
            launches.push(kernels::planar_to_rgba(v, s, 1, 1).unwrap());
        }
    }
    launches.push(kernels::guidance_rescale(2, 1).unwrap());
    launches.push(kernels::noise_normal(1));
    launches.push(kernels::timestep_features(1, 1).unwrap());
    let mut names: Vec<(String, String)> = launches
        .into_iter()
        .map(|l| (l.module.to_string(), l.kernel))
        .collect();
    names.extend(
        tensor_ops_launch_names()
            .into_iter()
            .map(|k| ("tensor_ops".to_string(), k)),
    );
    names.sort();
    names
}

#[test]
fn emulator_runs_exactly_the_kernels_the_backend_launches() {
    let mut emulated: Vec<(String, String)> = genfx_kernels_emu::module_kernels()
        .into_iter()
        .filter(|(m, _)| m != "selftest")
        .collect();
    emulated.sort();
    assert_eq!(emulated, all_launches());
    // And every module the launch functions name is an embedded kernel file.
    for l in [
        kernels::activation(Activation::Silu, Half::Bf16, 1),
        kernels::noise_normal(1),
        kernels::flash_attention(Half::Bf16, 64, 1, 1, 1, 1).unwrap(),
    ] {
        assert!(kernels::module(l.module).is_some(), "{}", l.module);
    }
    assert!(kernels::module("tensor_ops").is_some());
    assert_eq!(kernels::MODULES.len(), 10);
}

// --- activations ------------------------------------------------------------------------

fn gelu_tanh(x: f64) -> f64 {
    0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh())
}
fn silu(x: f64) -> f64 {
    x / (1.0 + (-x).exp())
}

fn check_activations<T: Store>() {
    let n = 1000;
    let mut rng = Rng::new(1);
    let x = store::<T>(&rng.vec(n, 4.0));
    let up = store::<T>(&rng.vec(n, 2.0));
    let xf = load(&x);
    let upf = load(&up);
    for kind in [
        Activation::GeluTanh,
        Activation::Silu,
        Activation::GeluTanhMul,
    ] {
        let l = kernels::activation(kind, T::HALF, n);
        let mut y = vec![T::from(0.0); n];
        match kind {
            Activation::GeluTanhMul => run(
                &l,
                &mut [
                    input("gate", &x),
                    input("up", &up),
                    output("y", &mut y),
                    Arg::I64(n as i64),
                ],
            ),
            _ => run(
                &l,
                &mut [input("x", &x), output("y", &mut y), Arg::I64(n as i64)],
            ),
        }
        let want: Vec<f64> = (0..n)
            .map(|i| {
                let v = f64::from(xf[i]);
                match kind {
                    Activation::GeluTanh => gelu_tanh(v),
                    Activation::Silu => silu(v),
                    Activation::GeluTanhMul => gelu_tanh(v) * f64::from(upf[i]),
                }
            })
            .collect();
        assert_close(&l.kernel, &load(&y), &want, T::ATOL, T::RTOL);
    }
}

#[test]
fn activations_match_reference() {
    check_activations::<bf16>();
    check_activations::<f16>();
}

// --- sampler ----------------------------------------------------------------------------

fn check_euler<V: Element>(value: Value, make: impl Fn(f32) -> V, back: impl Fn(V) -> f32) {
    let (tokens, channels) = (37usize, 5usize);
    let mut rng = Rng::new(2);
    let x0 = rng.vec(tokens * channels, 1.0);
    let v: Vec<V> = rng
        .vec(tokens * channels, 1.0)
        .into_iter()
        .map(&make)
        .collect();
    let sigma: Vec<f32> = (0..tokens).map(|t| 0.5 + 0.01 * t as f32).collect();
    let sigma_next: Vec<f32> = sigma.iter().map(|s| s - 0.1).collect();
    let update: Vec<f32> = (0..tokens)
        .map(|t| f32::from(u8::from(t % 3 != 0)))
        .collect();
    let l = kernels::euler_step(value, tokens, channels).unwrap();
    let mut x = vec![f32::NAN; tokens * channels];
    run(
        &l,
        &mut [
            input("x", &x0),
            input("v", &v),
            input("sigma", &sigma),
            input("sigma_next", &sigma_next),
            input("update", &update),
            output("out", &mut x),
            Arg::I64(tokens as i64),
            Arg::I32(channels as i32),
        ],
    );
    for i in 0..tokens * channels {
        let t = i / channels;
        let want = if update[t] == 0.0 {
            x0[i]
        } else {
            x0[i] + (sigma_next[t] - sigma[t]) * back(v[i])
        };
        assert_eq!(x[i], want, "{} element {i}", l.kernel);
    }
    // Without a mask every token moves.
    let mut x = vec![f32::NAN; tokens * channels];
    run(
        &l,
        &mut [
            input("x", &x0),
            input("v", &v),
            input("sigma", &sigma),
            input("sigma_next", &sigma_next),
            null(),
            output("out", &mut x),
            Arg::I64(tokens as i64),
            Arg::I32(channels as i32),
        ],
    );
    assert!((0..tokens * channels).all(|i| x[i] != x0[i] || back(v[i]) == 0.0));
}

#[test]
fn euler_step_moves_only_unfrozen_tokens() {
    check_euler(Value::F32, |v| v, |v| v);
    check_euler(Value::Bf16, bf16::from_f32, bf16::to_f32);
    check_euler(Value::F16, f16::from_f32, f16::to_f32);
}

fn std_unbiased(v: &[f64]) -> f64 {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    (v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0)).sqrt()
}

#[test]
fn guidance_combine_and_rescale_match_reference() {
    let (per_item, items) = (1500usize, 2usize);
    let n = per_item * items;
    let mut rng = Rng::new(3);
    let uncond = store::<bf16>(&rng.vec(n, 1.0));
    let cond = store::<bf16>(&rng.vec(n, 1.2));
    let perturbed = store::<bf16>(&rng.vec(n, 0.8));
    let (u, c, p) = (load(&uncond), load(&cond), load(&perturbed));
    let (cfg, stg, rescale) = (3.0f32, 1.0f32, 0.7f32);
    for with_stg in [true, false] {
        let l = kernels::guidance_combine(Value::Bf16, per_item, items).unwrap();
        let chunks = kernels::guidance_chunks(per_item) as usize;
        assert!(chunks > 1, "the test must cover several chunks");
        let mut out = vec![0f32; n];
        let mut partials = vec![0f32; items * chunks * 4];
        run(
            &l,
            &mut [
                input("uncond", &uncond),
                input("cond", &cond),
                if with_stg {
                    input("perturbed", &perturbed)
                } else {
                    null()
                },
                output("out", &mut out),
                output("partials", &mut partials),
                Arg::F32(cfg),
                Arg::F32(stg),
                Arg::I64(per_item as i64),
            ],
        );
        let combined: Vec<f64> = (0..n)
            .map(|i| {
                let (u, c, p) = (f64::from(u[i]), f64::from(c[i]), f64::from(p[i]));
                u + f64::from(cfg) * (c - u)
                    + if with_stg {
                        f64::from(stg) * (c - p)
                    } else {
                        0.0
                    }
            })
            .collect();
        assert_close(&l.kernel, &out, &combined, 1e-5, 1e-5);

        let r = kernels::guidance_rescale(per_item, items).unwrap();
        run(
            &r,
            &mut [
                output("out", &mut out),
                input("partials", &partials),
                Arg::F32(rescale),
                Arg::I64(per_item as i64),
                Arg::I32(chunks as i32),
            ],
        );
        let mut want = Vec::with_capacity(n);
        for item in 0..items {
            let range = item * per_item..(item + 1) * per_item;
            let g = &combined[range.clone()];
            let cf: Vec<f64> = c[range].iter().map(|&x| f64::from(x)).collect();
            let factor = std_unbiased(&cf) / std_unbiased(g);
            let r = f64::from(rescale);
            want.extend(g.iter().map(|&x| r * x * factor + (1.0 - r) * x));
        }
        assert_close(&r.kernel, &out, &want, 1e-4, 1e-4);
    }
}

#[test]
fn noise_is_bit_identical_to_the_cpu_generator() {
    let (n, start, seed, stream) = (1001usize, 3u64, 0x1234_5678_9abc_def0u64, 42u64);
    let l = kernels::noise_normal(n);
    let mut out = vec![0f32; n];
    run(
        &l,
        &mut [
            output("out", &mut out),
            Arg::I64(n as i64),
            Arg::U64(seed),
            Arg::U64(stream),
            Arg::U64(start),
        ],
    );
    for (k, &v) in out.iter().enumerate() {
        let want = genfx::sampler::noise::normal(seed, stream, start + k as u64);
        assert_eq!(v.to_bits(), want.to_bits(), "position {}", start + k as u64);
    }
}

#[test]
fn timestep_features_are_bit_identical_to_the_cpu() {
    use genfx::backend::Device;
    use genfx::models::ltx::transformer::embeddings::{timestep_features, timestep_freqs};
    let t: Vec<f32> = vec![0.0, 1.0, 3.25, 250.0, 999.0, 1000.0, 0.05];
    let freqs = timestep_freqs();
    let half = freqs.len();
    let l = kernels::timestep_features(t.len(), half).unwrap();
    let mut out = vec![f32::NAN; t.len() * 2 * half];
    run(
        &l,
        &mut [
            input("t", &t),
            input("freqs", &freqs),
            output("out", &mut out),
            Arg::I64(t.len() as i64),
            Arg::I32(half as i32),
        ],
    );
    let want = timestep_features(&t, &Device::cpu())
        .unwrap()
        .to_vec_f32()
        .unwrap();
    for (k, (g, w)) in out.iter().zip(&want).enumerate() {
        assert_eq!(g.to_bits(), w.to_bits(), "element {k}: {g} vs {w}");
    }
}

// --- norms and residuals ---------------------------------------------------------------

#[allow(clippy::too_many_arguments)]
fn norm_reference(
    x: &[f32],
    w: Option<&[f32]>,
    b: Option<&[f32]>,
    mods: Option<(&[f32], &[f32])>,
    rows: usize,
    cols: usize,
    x_ld: usize,
    mod_ld: usize,
    rows_per_mod: usize,
    eps: f64,
    layer: bool,
) -> Vec<f64> {
    let mut out = Vec::new();
    for r in 0..rows {
        let row: Vec<f64> = x[r * x_ld..r * x_ld + cols]
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let mean = if layer {
            row.iter().sum::<f64>() / cols as f64
        } else {
            0.0
        };
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / cols as f64;
        let rstd = 1.0 / (var + eps).sqrt();
        for c in 0..cols {
            let mut v = (row[c] - mean) * rstd;
            if let Some(w) = w {
                v *= f64::from(w[c]);
            }
            if let Some(b) = b {
                v += f64::from(b[c]);
            }
            if let Some((scale, shift)) = mods {
                let m = (r / rows_per_mod) * mod_ld + c;
                v = v * (1.0 + f64::from(scale[m])) + f64::from(shift[m]);
            }
            out.push(v);
        }
    }
    out
}

fn check_norms<T: Store>() {
    let (rows, cols, x_ld, y_ld) = (6usize, 80usize, 88usize, 80usize);
    let mut rng = Rng::new(4);
    let x = store::<T>(
        &(0..rows * x_ld)
            .map(|i| rng.f() * 2.0 + (i % 7) as f32 * 0.1)
            .collect::<Vec<_>>(),
    );
    let w = store::<T>(&rng.vec(cols, 1.0));
    let bias = store::<T>(&rng.vec(cols, 0.5));
    let (xf, wf, bf) = (load(&x), load(&w), load(&bias));
    // AdaLN rows: per token (rows_per_mod 1) and per sample of 3 tokens.
    for (rows_per_mod, layer) in [(1usize, false), (3, true), (1, true)] {
        let mod_rows = rows / rows_per_mod;
        let mod_ld = cols + 8;
        let scale = store::<T>(&rng.vec(mod_rows * mod_ld, 0.5));
        let shift = store::<T>(&rng.vec(mod_rows * mod_ld, 0.5));
        let (sf, hf) = (load(&scale), load(&shift));
        let l = kernels::norm_modulate(T::HALF, rows, cols).unwrap();
        let mut y = vec![T::from(0.0); rows * y_ld];
        let use_bias = layer;
        run(
            &l,
            &mut [
                input("x", &x),
                input("weight", &w),
                if use_bias {
                    input("bias", &bias)
                } else {
                    null()
                },
                input("scale", &scale),
                input("shift", &shift),
                output("y", &mut y),
                Arg::I32(rows as i32),
                Arg::I32(cols as i32),
                Arg::I64(x_ld as i64),
                Arg::I64(y_ld as i64),
                Arg::I64(mod_ld as i64),
                Arg::I32(rows_per_mod as i32),
                Arg::F32(1e-6),
                Arg::I32(i32::from(layer)),
            ],
        );
        let want = norm_reference(
            &xf,
            Some(&wf),
            use_bias.then_some(&bf[..]),
            Some((&sf, &hf)),
            rows,
            cols,
            x_ld,
            mod_ld,
            rows_per_mod,
            1e-6,
            layer,
        );
        let what = format!("{} rows_per_mod {rows_per_mod} layer {layer}", l.kernel);
        assert_close(&what, &load(&y), &want, T::ATOL * 2.0, T::RTOL);
    }
    // Plain RMSNorm: no weight, no modulation.
    let l = kernels::norm_modulate(T::HALF, rows, cols).unwrap();
    let mut y = vec![T::from(0.0); rows * y_ld];
    run(
        &l,
        &mut [
            input("x", &x),
            null(),
            null(),
            null(),
            null(),
            output("y", &mut y),
            Arg::I32(rows as i32),
            Arg::I32(cols as i32),
            Arg::I64(x_ld as i64),
            Arg::I64(y_ld as i64),
            Arg::I64(0),
            Arg::I32(1),
            Arg::F32(1e-6),
            Arg::I32(0),
        ],
    );
    let want = norm_reference(&xf, None, None, None, rows, cols, x_ld, 0, 1, 1e-6, false);
    assert_close("plain rms norm", &load(&y), &want, T::ATOL, T::RTOL);
}

#[test]
fn norm_modulate_matches_reference() {
    check_norms::<bf16>();
    check_norms::<f16>();
}

fn check_gated_residual<T: Store>() {
    let (rows, cols, x_ld, y_ld, gate_ld, rows_per_gate) =
        (7usize, 33usize, 40usize, 33usize, 36usize, 7usize);
    let mut rng = Rng::new(5);
    let x0 = store::<T>(&rng.vec(rows * x_ld, 1.0));
    let y = store::<T>(&rng.vec(rows * y_ld, 1.0));
    let gate = store::<T>(&rng.vec(gate_ld, 1.0));
    let (x0f, yf, gf) = (load(&x0), load(&y), load(&gate));
    let l = kernels::gated_residual(T::HALF, rows, cols).unwrap();
    let mut x = x0.clone();
    run(
        &l,
        &mut [
            output("x", &mut x),
            input("y", &y),
            input("gate", &gate),
            Arg::I32(rows as i32),
            Arg::I32(cols as i32),
            Arg::I64(x_ld as i64),
            Arg::I64(y_ld as i64),
            Arg::I64(gate_ld as i64),
            Arg::I32(rows_per_gate as i32),
        ],
    );
    let got = load(&x);
    let mut want = Vec::new();
    let mut got_v = Vec::new();
    for r in 0..rows {
        for c in 0..x_ld {
            let i = r * x_ld + c;
            let w = if c < cols {
                f64::from(x0f[i])
                    + f64::from(gf[(r / rows_per_gate) * gate_ld + c]) * f64::from(yf[r * y_ld + c])
            } else {
                f64::from(x0f[i]) // padding between rows stays untouched
            };
            want.push(w);
            got_v.push(got[i]);
        }
    }
    assert_close(&l.kernel, &got_v, &want, T::ATOL, T::RTOL);
}

#[test]
fn gated_residual_matches_reference() {
    check_gated_residual::<bf16>();
    check_gated_residual::<f16>();
}

// --- rope -------------------------------------------------------------------------------

fn check_rope<T: Store>() {
    let (rows, cols, table_rows, x_ld, y_ld) = (6usize, 16usize, 3usize, 24usize, 16usize);
    let mut rng = Rng::new(6);
    let x = store::<T>(&rng.vec(rows * x_ld, 1.0));
    let xf = load(&x);
    // Tables as the host makes them: angles in f64 (large, as LTX's are), rounded once.
    let mut cos_t = vec![0f32; table_rows * cols];
    let mut sin_t = vec![0f32; table_rows * cols];
    for r in 0..table_rows {
        for j in 0..cols / 2 {
            let angle = (r as f64 * 1000.0 + 1.0) * (j as f64 + 0.5) * 37.0;
            for k in 0..2 {
                cos_t[r * cols + 2 * j + k] = angle.cos() as f32;
                sin_t[r * cols + 2 * j + k] = angle.sin() as f32;
            }
        }
    }
    let l = kernels::rope_interleaved(T::HALF, rows, cols).unwrap();
    let mut y = vec![T::from(0.0); rows * y_ld];
    run(
        &l,
        &mut [
            input("x", &x),
            output("y", &mut y),
            input("cos", &cos_t),
            input("sin", &sin_t),
            Arg::I32(rows as i32),
            Arg::I32(cols as i32),
            Arg::I64(x_ld as i64),
            Arg::I64(y_ld as i64),
            Arg::I32(table_rows as i32),
        ],
    );
    let mut want = Vec::new();
    for r in 0..rows {
        for c in 0..cols {
            // diffusers: x * cos + rotate(x) * sin with rotate([a, b]) = [-b, a] per pair.
            let t = (r % table_rows) * cols + c;
            let pair = c - c % 2;
            let rotated = if c % 2 == 0 {
                -xf[r * x_ld + pair + 1]
            } else {
                xf[r * x_ld + pair]
            };
            want.push(
                f64::from(xf[r * x_ld + c]) * f64::from(cos_t[t])
                    + f64::from(rotated) * f64::from(sin_t[t]),
            );
        }
    }
    assert_close(&l.kernel, &load(&y), &want, T::ATOL, T::RTOL);
}

#[test]
fn rope_matches_reference() {
    check_rope::<bf16>();
    check_rope::<f16>();
}

// --- frame conversion -----------------------------------------------------------------------

fn sample_bytes(sample: Sample, values: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    for &v in values {
        match sample {
            Sample::U8 => out.push((v * 255.0).round() as u8),
            Sample::U16 => out.extend(((v * 65535.0).round() as u16).to_ne_bytes()),
            Sample::F32 => out.extend(v.to_ne_bytes()),
        }
    }
    out
}
fn read_sample(sample: Sample, bytes: &[u8]) -> f32 {
    match sample {
        Sample::U8 => f32::from(bytes[0]) / 255.0,
        Sample::U16 => f32::from(u16::from_ne_bytes([bytes[0], bytes[1]])) / 65535.0,
        Sample::F32 => f32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
    }
}

fn check_frames<V: Element>(value: Value, zero: V, back: impl Fn(V) -> f32, tol: f64) {
    let (w, h) = (37usize, 11usize);
    let mut rng = Rng::new(7);
    for sample in [Sample::U8, Sample::U16, Sample::F32] {
        let sb = sample.bytes();
        let row_bytes = w * 4 * sb + 16; // padded rows
                                         // A bottom-up image: the top row is stored last.
        let pixels: Vec<f32> = (0..w * h * 4).map(|_| rng.f() * 0.5 + 0.5).collect();
        let mut host = vec![0u8; row_bytes * h];
        for y in 0..h {
            let stored = h - 1 - y;
            let bytes = sample_bytes(sample, &pixels[y * w * 4..(y + 1) * w * 4]);
            host[stored * row_bytes..stored * row_bytes + bytes.len()].copy_from_slice(&bytes);
        }
        let origin = ((h - 1) * row_bytes) as i64;
        let stride = -(row_bytes as i64);
        let l = kernels::rgba_to_planar(sample, value, w, h).unwrap();
        let mut planar = vec![zero; 3 * w * h];
        run(
            &l,
            &mut [
                input("rgba", &host),
                Arg::I64(origin),
                Arg::I64(stride),
                Arg::I32(w as i32),
                Arg::I32(h as i32),
                output("planar", &mut planar),
            ],
        );
        let mut want = Vec::new();
        for c in 0..3 {
            for y in 0..h {
                for x in 0..w {
                    let stored = h - 1 - y;
                    let at = stored * row_bytes + (x * 4 + c) * sb;
                    want.push(2.0 * f64::from(read_sample(sample, &host[at..at + sb])) - 1.0);
                }
            }
        }
        let got: Vec<f32> = planar.iter().map(|&v| back(v)).collect();
        assert_close(&l.kernel, &got, &want, tol, tol);

        // Back: clamp to [0, 1], alpha opaque; padding bytes untouched.
        let l = kernels::planar_to_rgba(value, sample, w, h).unwrap();
        let mut out = vec![0xAAu8; row_bytes * h];
        run(
            &l,
            &mut [
                input("planar", &planar),
                output("rgba", &mut out),
                Arg::I64(origin),
                Arg::I64(stride),
                Arg::I32(w as i32),
                Arg::I32(h as i32),
            ],
        );
        let unit_tol = tol
            + match sample {
                Sample::U8 => 1.0 / 255.0,
                Sample::U16 => 1.0 / 65535.0,
                Sample::F32 => 0.0,
            };
        for y in 0..h {
            let stored = h - 1 - y;
            for x in 0..w {
                for c in 0..4 {
                    let at = stored * row_bytes + (x * 4 + c) * sb;
                    let got = f64::from(read_sample(sample, &out[at..at + sb]));
                    let expect = if c == 3 {
                        1.0
                    } else {
                        (0.5 * f64::from(back(planar[c * w * h + y * w + x])) + 0.5).clamp(0.0, 1.0)
                    };
                    assert!(
                        (got - expect).abs() <= unit_tol,
                        "{} pixel ({x},{y}) channel {c}: {got} vs {expect}",
                        l.kernel
                    );
                }
            }
            assert!(
                out[stored * row_bytes + w * 4 * sb..(stored + 1) * row_bytes]
                    .iter()
                    .all(|&b| b == 0xAA)
            );
        }
    }
}

#[test]
fn frame_conversion_round_trips_any_layout() {
    check_frames(Value::F32, 0f32, |v| v, 1e-6);
    check_frames(Value::Bf16, bf16::ZERO, bf16::to_f32, 8e-3);
    check_frames(Value::F16, f16::ZERO, f16::to_f32, 1e-3);
}

#[test]
fn planar_to_rgba_clamps_out_of_range_values() {
    let (w, h) = (4usize, 1usize);
    let planar: Vec<f32> = vec![-3.0, -1.0, 1.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.5, 0.5, 0.5];
    let mut out = vec![0u8; w * 4];
    let l = kernels::planar_to_rgba(Value::F32, Sample::U8, w, h).unwrap();
    run(
        &l,
        &mut [
            input("planar", &planar),
            output("rgba", &mut out),
            Arg::I64(0),
            Arg::I64((w * 4) as i64),
            Arg::I32(w as i32),
            Arg::I32(h as i32),
        ],
    );
    let red: Vec<u8> = (0..w).map(|x| out[x * 4]).collect();
    assert_eq!(red, vec![0, 0, 255, 255]);
    assert!((0..w).all(|x| out[x * 4 + 3] == 255 && out[x * 4 + 1] == 128));
}

// --- attention ----------------------------------------------------------------------------------

struct AttentionCase {
    batch: usize,
    heads: usize,
    head_dim: usize,
    lq: usize,
    lk: usize,
    /// Keys masked per batch item (their bias is -10000), from the end.
    masked: usize,
    /// q, k, v interleaved in one fused buffer (row stride 3 * heads * D).
    fused: bool,
}

fn check_attention<T: Store>(case: &AttentionCase, atol: f64, rtol: f64) {
    let AttentionCase {
        batch,
        heads,
        head_dim: d,
        lq,
        lk,
        masked,
        fused,
    } = *case;
    let width = heads * d;
    let mut rng = Rng::new((lq * 131 + lk * 7 + d) as u64);
    // Fused: one [batch, l, 3 * width] buffer holds q | k | v (self-attention).
    let (q_row, k_row) = if fused {
        (3 * width, 3 * width)
    } else {
        (width, width)
    };
    let q_len = if fused {
        batch * lq * q_row
    } else {
        batch * lq * width
    };
    let k_len = if fused { 0 } else { batch * lk * width };
    let qkv = store::<T>(&rng.vec(q_len, 1.5));
    let k_sep = store::<T>(&rng.vec(k_len, 1.5));
    let v_sep = store::<T>(&rng.vec(k_len, 1.0));
    let qkvf = load(&qkv);
    let (kf, vf) = (load(&k_sep), load(&v_sep));
    let bias: Vec<f32> = (0..batch * lk)
        .map(|i| if i % lk >= lk - masked { -10000.0 } else { 0.0 })
        .collect();
    let scale = 1.0 / (d as f32).sqrt();
    let l = kernels::flash_attention(T::HALF, d, batch, heads, lq, lk).unwrap();
    let o_row = width;
    let mut out = vec![T::from(0.0); batch * lq * o_row];
    let (q_batch, k_batch) = ((lq * q_row) as i64, (lk * k_row) as i64);
    {
        let (k_buf, v_buf): (&[T], &[T]) = if fused {
            (&qkv[width..], &qkv[2 * width..])
        } else {
            (&k_sep, &v_sep)
        };
        run(
            &l,
            &mut [
                input("q", &qkv),
                input("k", k_buf),
                input("v", v_buf),
                output("out", &mut out),
                if masked > 0 {
                    input("key_bias", &bias)
                } else {
                    null()
                },
                Arg::I32(lq as i32),
                Arg::I32(lk as i32),
                Arg::I64(q_batch),
                Arg::I64(q_row as i64),
                Arg::I64(k_batch),
                Arg::I64(k_row as i64),
                Arg::I64(k_batch),
                Arg::I64(k_row as i64),
                Arg::I64((lq * o_row) as i64),
                Arg::I64(o_row as i64),
                Arg::F32(scale),
            ],
        );
    }
    let qv = |b: usize, r: usize, h: usize, e: usize| {
        f64::from(qkvf[b * lq * q_row + r * q_row + h * d + e])
    };
    let kv = |b: usize, r: usize, h: usize, e: usize| {
        if fused {
            f64::from(qkvf[b * lk * k_row + r * k_row + width + h * d + e])
        } else {
            f64::from(kf[b * lk * k_row + r * k_row + h * d + e])
        }
    };
    let vv = |b: usize, r: usize, h: usize, e: usize| {
        if fused {
            f64::from(qkvf[b * lk * k_row + r * k_row + 2 * width + h * d + e])
        } else {
            f64::from(vf[b * lk * k_row + r * k_row + h * d + e])
        }
    };
    let mut want = Vec::with_capacity(out.len());
    for b in 0..batch {
        for r in 0..lq {
            let mut row = vec![0f64; width];
            for h in 0..heads {
                let logits: Vec<f64> = (0..lk)
                    .map(|j| {
                        let dot: f64 = (0..d).map(|e| qv(b, r, h, e) * kv(b, j, h, e)).sum();
                        let bias = if masked > 0 {
                            f64::from(bias[b * lk + j])
                        } else {
                            0.0
                        };
                        dot * f64::from(scale) + bias
                    })
                    .collect();
                let m = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let p: Vec<f64> = logits.iter().map(|&s| (s - m).exp()).collect();
                let sum: f64 = p.iter().sum();
                for e in 0..d {
                    row[h * d + e] = (0..lk).map(|j| p[j] * vv(b, j, h, e)).sum::<f64>() / sum;
                }
            }
            want.extend(row);
        }
    }
    let what = format!(
        "{} batch {batch} heads {heads} lq {lq} lk {lk} masked {masked} fused {fused}",
        l.kernel
    );
    assert_close(&what, &load(&out), &want, atol, rtol);
}

#[test]
fn flash_attention_bf16_d64_masked_cross_attention() {
    let case = AttentionCase {
        batch: 2,
        heads: 2,
        head_dim: 64,
        lq: 70,
        lk: 90,
        masked: 13,
        fused: false,
    };
    check_attention::<bf16>(&case, 2e-2, 2e-2);
}

#[test]
fn flash_attention_bf16_d128_fused_self_attention() {
    let case = AttentionCase {
        batch: 1,
        heads: 2,
        head_dim: 128,
        lq: 67,
        lk: 67,
        masked: 0,
        fused: true,
    };
    check_attention::<bf16>(&case, 2e-2, 2e-2);
}

#[test]
fn flash_attention_f16_d64_fused_and_short_keys() {
    let case = AttentionCase {
        batch: 2,
        heads: 1,
        head_dim: 64,
        lq: 64,
        lk: 64,
        masked: 0,
        fused: true,
    };
    check_attention::<f16>(&case, 4e-3, 8e-3);
    let case = AttentionCase {
        batch: 1,
        heads: 2,
        head_dim: 64,
        lq: 17,
        lk: 5,
        masked: 2,
        fused: false,
    };
    check_attention::<f16>(&case, 4e-3, 8e-3);
}

#[test]
fn flash_attention_f16_d128_several_key_tiles() {
    let case = AttentionCase {
        batch: 1,
        heads: 1,
        head_dim: 128,
        lq: 20,
        lk: 150,
        masked: 30,
        fused: false,
    };
    check_attention::<f16>(&case, 4e-3, 8e-3);
}

#[test]
fn flash_attention_rejects_unbuilt_head_dims() {
    assert!(kernels::flash_attention(Half::Bf16, 96, 1, 1, 1, 1).is_err());
    let l = kernels::flash_attention(Half::Bf16, 128, 1, 1, 1, 1).unwrap();
    assert!(l.needs_shared_mem_opt_in());
    assert!(!kernels::flash_attention(Half::Bf16, 64, 1, 1, 1, 1)
        .unwrap()
        .needs_shared_mem_opt_in());
}

// --- conv3d ---------------------------------------------------------------------------------------

/// One conv3d problem: `[b, ci, t, h, w]` in, `co` channels out, stride 1.
struct ConvCase {
    b: usize,
    ci: usize,
    co: usize,
    t: usize,
    h: usize,
    w: usize,
    kernel: [usize; 3],
    pad_front: usize,
    bias: bool,
    residual: bool,
}

/// Straight loops in f64: time clamped to the edge frames, zeros in space.
fn conv3d_reference(
    c: &ConvCase,
    x: &[f32],
    wt: &[f32],
    bias: Option<&[f32]>,
    residual: Option<&[f32]>,
) -> Vec<f64> {
    let [kt, kh, kw] = c.kernel;
    let (plane, per) = (c.h * c.w, c.t * c.h * c.w);
    let mut y = vec![0f64; c.b * c.co * per];
    for b in 0..c.b {
        for n in 0..c.co {
            for to in 0..c.t {
                for ho in 0..c.h {
                    for wo in 0..c.w {
                        let mut acc = bias.map_or(0.0, |bs| f64::from(bs[n]));
                        for ci in 0..c.ci {
                            for dt in 0..kt {
                                let ti = (to + dt).saturating_sub(c.pad_front).min(c.t - 1);
                                for dy in 0..kh {
                                    for dx in 0..kw {
                                        let (hi, wi) = (ho + dy, wo + dx);
                                        if hi < kh / 2 || wi < kw / 2 {
                                            continue;
                                        }
                                        let (hi, wi) = (hi - kh / 2, wi - kw / 2);
                                        if hi >= c.h || wi >= c.w {
                                            continue;
                                        }
                                        let xv =
                                            x[(b * c.ci + ci) * per + ti * plane + hi * c.w + wi];
                                        let wv =
                                            wt[(((n * c.ci + ci) * kt + dt) * kh + dy) * kw + dx];
                                        acc += f64::from(xv) * f64::from(wv);
                                    }
                                }
                            }
                        }
                        let o = (b * c.co + n) * per + to * plane + ho * c.w + wo;
                        if let Some(r) = residual {
                            acc += f64::from(r[o]);
                        }
                        y[o] = acc;
                    }
                }
            }
        }
    }
    y
}

/// Runs `l` (either conv3d kernel: same parameters) on case `c`.
fn check_conv3d<T: Store>(l: &Launch, c: &ConvCase, seed: u64) {
    let mut rng = Rng::new(seed);
    let [kt, kh, kw] = c.kernel;
    let voxels = c.b * c.t * c.h * c.w;
    let fan_in = (c.ci * kt * kh * kw) as f32;
    let x = store::<T>(&rng.vec(voxels * c.ci, 1.0));
    let wt = store::<T>(&rng.vec(c.co * c.ci * kt * kh * kw, 2.0 / fan_in.sqrt()));
    let bias = store::<T>(&rng.vec(c.co, 0.5));
    let residual = store::<T>(&rng.vec(voxels * c.co, 1.0));
    let mut y = vec![T::from(0.0); voxels * c.co];
    run(
        l,
        &mut [
            input("x", &x),
            input("w", &wt),
            if c.bias { input("bias", &bias) } else { null() },
            if c.residual {
                input("residual", &residual)
            } else {
                null()
            },
            output("y", &mut y),
            Arg::I32(c.b as i32),
            Arg::I32(c.t as i32),
            Arg::I32(c.h as i32),
            Arg::I32(c.w as i32),
            Arg::I32(c.ci as i32),
            Arg::I32(c.co as i32),
            Arg::I32(kt as i32),
            Arg::I32(kh as i32),
            Arg::I32(kw as i32),
            Arg::I32(c.pad_front as i32),
        ],
    );
    let (bias, residual) = (load(&bias), load(&residual));
    let want = conv3d_reference(
        c,
        &load(&x),
        &load(&wt),
        c.bias.then_some(&bias[..]),
        c.residual.then_some(&residual[..]),
    );
    assert_close(
        &format!(
            "{} {:?} ci {} co {} pad_front {}",
            l.kernel, c.kernel, c.ci, c.co, c.pad_front
        ),
        &load(&y),
        &want,
        T::ATOL,
        T::RTOL,
    );
}

/// The VAE's conv shapes with every tail: 2 * 3 * 5 * 7 = 210 voxels (one
/// full 128-voxel tile and a partial one), 70 output channels (a full
/// 64-channel tile and 6), reductions of 3 * 27 = 81, 5 * 27 = 135 and 37
/// (none a multiple of the 32-wide step); causal and symmetric time padding,
/// bias and residual in each combination.
fn conv3d_cases() -> Vec<ConvCase> {
    let base = |ci, kernel: [usize; 3], pad_front, bias, residual| ConvCase {
        b: 2,
        ci,
        co: 70,
        t: 3,
        h: 5,
        w: 7,
        kernel,
        pad_front,
        bias,
        residual,
    };
    vec![
        base(5, [3, 3, 3], 2, true, false),
        base(3, [3, 3, 3], 1, true, true),
        base(37, [1, 1, 1], 0, false, true),
    ]
}

fn check_conv3d_mma<T: Store>() {
    let voxels = 2 * 3 * 5 * 7;
    let l = kernels::conv3d_mma_ncdhw(T::HALF, voxels, 70).unwrap();
    assert_eq!(l.config.grid, [2, 2, 1], "the cases cover partial tiles");
    for (i, c) in conv3d_cases().iter().enumerate() {
        check_conv3d::<T>(&l, c, 40 + i as u64);
    }
}

#[test]
fn conv3d_tensor_core_kernel_matches_reference_bf16() {
    check_conv3d_mma::<bf16>();
}

#[test]
fn conv3d_tensor_core_kernel_matches_reference_f16() {
    check_conv3d_mma::<f16>();
}

#[test]
fn conv3d_fma_kernel_matches_reference() {
    let c = &conv3d_cases()[1];
    let l = kernels::conv3d_ncdhw(Value::Bf16, 2 * 3 * 5 * 7, c.co).unwrap();
    check_conv3d::<bf16>(&l, c, 50);
}

// --- against the engine's CPU ops ----------------------------------------------------------------
// The same inputs (the 16-bit values, widened) through genfx's CPU backend,
// which is the reference every CUDA op is held to.

mod cpu_ops {
    use super::*;
    use genfx::backend::Device;
    use genfx::tensor::Tensor;

    fn cpu(data: &[f32], dims: &[usize]) -> Tensor {
        Tensor::from_slice(data, dims, &Device::cpu()).expect("valid CPU tensor")
    }
    fn host(t: genfx::tensor::Result<Tensor>) -> Vec<f64> {
        let v = t.and_then(|t| t.to_vec_f32()).expect("CPU op runs");
        v.into_iter().map(f64::from).collect()
    }

    fn attention_vs_cpu<T: Store>(d: usize, atol: f64, rtol: f64) {
        let (b, h, lq, lk, masked) = (2usize, 2usize, 70usize, 90usize, 11usize);
        let w = h * d;
        let mut rng = Rng::new(11);
        let q = store::<T>(&rng.vec(b * lq * w, 1.5));
        let k = store::<T>(&rng.vec(b * lk * w, 1.5));
        let v = store::<T>(&rng.vec(b * lk * w, 1.0));
        let bias: Vec<f32> = (0..b * lk)
            .map(|i| if i % lk >= lk - masked { -10000.0 } else { 0.0 })
            .collect();
        let scale = 1.0 / (d as f32).sqrt();
        let l = kernels::flash_attention(T::HALF, d, b, h, lq, lk).unwrap();
        let mut out = vec![T::from(0.0); b * lq * w];
        run(
            &l,
            &mut [
                input("q", &q),
                input("k", &k),
                input("v", &v),
                output("out", &mut out),
                input("key_bias", &bias),
                Arg::I32(lq as i32),
                Arg::I32(lk as i32),
                Arg::I64((lq * w) as i64),
                Arg::I64(w as i64),
                Arg::I64((lk * w) as i64),
                Arg::I64(w as i64),
                Arg::I64((lk * w) as i64),
                Arg::I64(w as i64),
                Arg::I64((lq * w) as i64),
                Arg::I64(w as i64),
                Arg::F32(scale),
            ],
        );
        let want = host(Tensor::attention(
            &cpu(&load(&q), &[b, lq, h, d]),
            &cpu(&load(&k), &[b, lk, h, d]),
            &cpu(&load(&v), &[b, lk, h, d]),
            Some(&cpu(&bias, &[b, lk])),
            scale,
        ));
        assert_close(
            &format!("{} vs CPU attention", l.kernel),
            &load(&out),
            &want,
            atol,
            rtol,
        );
    }

    #[test]
    fn flash_attention_agrees_with_cpu_attention() {
        attention_vs_cpu::<bf16>(64, 2e-2, 2e-2);
        attention_vs_cpu::<f16>(128, 4e-3, 8e-3);
    }

    fn norm_launch<T: Store>(
        x: &[T],
        weight: Option<&[T]>,
        bias: Option<&[T]>,
        mods: (&[T], &[T]),
        rows: usize,
        cols: usize,
        layer: bool,
    ) -> Vec<f32> {
        let l = kernels::norm_modulate(T::HALF, rows, cols).unwrap();
        let mut y = vec![T::from(0.0); rows * cols];
        run(
            &l,
            &mut [
                input("x", x),
                weight.map_or_else(null, |w| input("weight", w)),
                bias.map_or_else(null, |b| input("bias", b)),
                input("scale", mods.0),
                input("shift", mods.1),
                output("y", &mut y),
                Arg::I32(rows as i32),
                Arg::I32(cols as i32),
                Arg::I64(cols as i64),
                Arg::I64(cols as i64),
                Arg::I64(cols as i64),
                Arg::I32(1),
                Arg::F32(1e-6),
                Arg::I32(i32::from(layer)),
            ],
        );
        load(&y)
    }

    fn norms_vs_cpu<T: Store>() {
        let (rows, cols) = (5usize, 72usize);
        let mut rng = Rng::new(12);
        let x = store::<T>(&rng.vec(rows * cols, 2.0));
        let w = store::<T>(&rng.vec(cols, 1.0));
        let b = store::<T>(&rng.vec(cols, 0.5));
        let scale = store::<T>(&rng.vec(rows * cols, 0.5));
        let shift = store::<T>(&rng.vec(rows * cols, 0.5));
        let (xt, sc, sh) = (
            cpu(&load(&x), &[rows, cols]),
            cpu(&load(&scale), &[rows, cols]),
            cpu(&load(&shift), &[rows, cols]),
        );
        let (wt, bt) = (cpu(&load(&w), &[cols]), cpu(&load(&b), &[cols]));

        let got = norm_launch(&x, Some(&w), None, (&scale, &shift), rows, cols, false);
        let want = host(
            xt.rms_norm(Some(&wt), 1e-6)
                .and_then(|n| n.modulate(&sh, &sc)),
        );
        assert_close(
            "norm_modulate (RMS) vs CPU rms_norm + modulate",
            &got,
            &want,
            T::ATOL * 2.0,
            T::RTOL,
        );

        let got = norm_launch(&x, Some(&w), Some(&b), (&scale, &shift), rows, cols, true);
        let want = host(
            xt.layer_norm(Some(&wt), Some(&bt), 1e-6)
                .and_then(|n| n.modulate(&sh, &sc)),
        );
        assert_close(
            "norm_modulate (layer) vs CPU layer_norm + modulate",
            &got,
            &want,
            T::ATOL * 2.0,
            T::RTOL,
        );
    }

    #[test]
    fn norm_modulate_agrees_with_cpu_norms() {
        norms_vs_cpu::<bf16>();
        norms_vs_cpu::<f16>();
    }

    fn elementwise_vs_cpu<T: Store>() {
        let (rows, cols) = (6usize, 40usize);
        let n = rows * cols;
        let mut rng = Rng::new(13);
        let x = store::<T>(&rng.vec(n, 3.0));
        let up = store::<T>(&rng.vec(n, 1.0));
        let xt = cpu(&load(&x), &[rows, cols]);
        let upt = cpu(&load(&up), &[rows, cols]);
        let cases: [(Activation, Vec<f64>); 3] = [
            (Activation::GeluTanh, host(xt.gelu_tanh())),
            (Activation::Silu, host(xt.silu())),
            (
                Activation::GeluTanhMul,
                host(xt.gelu_tanh().and_then(|g| g.mul(&upt))),
            ),
        ];
        for (kind, want) in cases {
            let l = kernels::activation(kind, T::HALF, n);
            let mut y = vec![T::from(0.0); n];
            if kind == Activation::GeluTanhMul {
                run(
                    &l,
                    &mut [
                        input("gate", &x),
                        input("up", &up),
                        output("y", &mut y),
                        Arg::I64(n as i64),
                    ],
                );
            } else {
                run(
                    &l,
                    &mut [input("x", &x), output("y", &mut y), Arg::I64(n as i64)],
                );
            }
            assert_close(
                &format!("{} vs CPU op", l.kernel),
                &load(&y),
                &want,
                T::ATOL,
                T::RTOL,
            );
        }

        // RoPE with per-row tables, and the gated residual with one gate row.
        let mut cos_t = vec![0f32; n];
        let mut sin_t = vec![0f32; n];
        for (i, (c, s)) in cos_t.iter_mut().zip(sin_t.iter_mut()).enumerate() {
            let angle = ((i / 2) as f64 * 1234.5).rem_euclid(std::f64::consts::TAU);
            (*c, *s) = (angle.cos() as f32, angle.sin() as f32);
        }
        let l = kernels::rope_interleaved(T::HALF, rows, cols).unwrap();
        let mut y = vec![T::from(0.0); n];
        run(
            &l,
            &mut [
                input("x", &x),
                output("y", &mut y),
                input("cos", &cos_t),
                input("sin", &sin_t),
                Arg::I32(rows as i32),
                Arg::I32(cols as i32),
                Arg::I64(cols as i64),
                Arg::I64(cols as i64),
                Arg::I32(rows as i32),
            ],
        );
        let want =
            host(xt.rope_interleaved(&cpu(&cos_t, &[rows, cols]), &cpu(&sin_t, &[rows, cols])));
        assert_close(
            &format!("{} vs CPU rope", l.kernel),
            &load(&y),
            &want,
            T::ATOL,
            T::RTOL,
        );

        let gate = store::<T>(&rng.vec(cols, 1.0));
        let l = kernels::gated_residual(T::HALF, rows, cols).unwrap();
        let mut acc = x.clone();
        run(
            &l,
            &mut [
                output("x", &mut acc),
                input("y", &up),
                input("gate", &gate),
                Arg::I32(rows as i32),
                Arg::I32(cols as i32),
                Arg::I64(cols as i64),
                Arg::I64(cols as i64),
                Arg::I64(cols as i64),
                Arg::I32(rows as i32),
            ],
        );
        let want = host(xt.gated_residual(&cpu(&load(&gate), &[1, cols]), &upt));
        assert_close(
            &format!("{} vs CPU gated_residual", l.kernel),
            &load(&acc),
            &want,
            T::ATOL,
            T::RTOL,
        );
    }

    #[test]
    fn elementwise_kernels_agree_with_cpu_ops() {
        elementwise_vs_cpu::<bf16>();
        elementwise_vs_cpu::<f16>();
    }
}

// --- tensor_ops.cu: the CUDA backend's generic kernels -------------------------------------------
// Launched as the backend launches them: module `tensor_ops`, the names it
// builds, `kernels::elementwise_config` / `kernels::row_config`, and every
// view passed as the 144 bytes of the `StridedArg` it pushes. Shapes are
// small and odd, views transposed, offset and broadcast (stride 0).

mod tensor_ops {
    use super::*;
    use genfx::backend::cuda::tensor_ops::StridedArg;

    /// A storage type of the generic kernels, with the tolerance of values
    /// stored in it (f32: summation-order and libm noise only).
    trait Ty: Element + std::fmt::Debug {
        const NAME: &'static str;
        const ATOL: f64;
        const RTOL: f64;
        fn from(v: f32) -> Self;
        fn to(self) -> f32;
        fn bits(self) -> u32;
    }
    impl Ty for f32 {
        const NAME: &'static str = "f32";
        const ATOL: f64 = 1e-5;
        const RTOL: f64 = 1e-5;
        fn from(v: f32) -> Self {
            v
        }
        fn to(self) -> f32 {
            self
        }
        fn bits(self) -> u32 {
            self.to_bits()
        }
    }
    impl Ty for bf16 {
        const NAME: &'static str = "bf16";
        const ATOL: f64 = 1e-2;
        const RTOL: f64 = 1.6e-2;
        fn from(v: f32) -> Self {
            bf16::from_f32(v)
        }
        fn to(self) -> f32 {
            self.to_f32()
        }
        fn bits(self) -> u32 {
            u32::from(self.to_bits())
        }
    }
    impl Ty for f16 {
        const NAME: &'static str = "f16";
        const ATOL: f64 = 2e-3;
        const RTOL: f64 = 4e-3;
        fn from(v: f32) -> Self {
            f16::from_f32(v)
        }
        fn to(self) -> f32 {
            self.to_f32()
        }
        fn bits(self) -> u32 {
            u32::from(self.to_bits())
        }
    }

    fn put<T: Ty>(v: &[f32]) -> Vec<T> {
        v.iter().map(|&x| T::from(x)).collect()
    }
    /// The stored values, widened (what the kernel reads).
    fn wide<T: Ty>(v: &[T]) -> Vec<f64> {
        v.iter().map(|&x| f64::from(x.to())).collect()
    }
    #[track_caller]
    fn check<T: Ty>(what: &str, got: &[T], want: &[f64]) {
        let got: Vec<f32> = got.iter().map(|&x| x.to()).collect();
        assert_close(what, &got, want, T::ATOL, T::RTOL);
    }

    /// A strided view in elements, as the backend describes an operand.
    struct View {
        dims: Vec<usize>,
        strides: Vec<usize>,
        offset: usize,
    }

    impl View {
        fn new(dims: &[usize], strides: &[usize], offset: usize) -> View {
            assert_eq!(dims.len(), strides.len());
            View {
                dims: dims.to_vec(),
                strides: strides.to_vec(),
                offset,
            }
        }
        fn contiguous(dims: &[usize]) -> View {
            let mut strides = vec![0; dims.len()];
            let mut acc = 1;
            for (s, d) in strides.iter_mut().zip(dims).rev() {
                *s = acc;
                acc *= d;
            }
            View::new(dims, &strides, 0)
        }
        fn len(&self) -> usize {
            self.dims.iter().product()
        }
        /// Storage index of element `i` in row-major order of the dims (the
        /// order every kernel walks).
        fn at(&self, mut i: usize) -> usize {
            let mut at = self.offset;
            for (&d, &s) in self.dims.iter().zip(&self.strides).rev() {
                at += (i % d) * s;
                i /= d;
            }
            at
        }
        /// Elements of storage the view reaches.
        fn storage(&self) -> usize {
            self.offset
                + self
                    .dims
                    .iter()
                    .zip(&self.strides)
                    .map(|(&d, &s)| (d - 1) * s)
                    .sum::<usize>()
                + 1
        }
        /// The `StridedArg` the backend pushes for this view, as raw bytes
        /// (native order, the C layout: i32 rank, i32 pad, i64 offset,
        /// i64 dims[8], i64 strides[8]).
        fn bytes(&self) -> Vec<u8> {
            let a = StridedArg::new(&self.dims, &self.strides, self.offset).expect("rank <= 8");
            let mut b = Vec::with_capacity(std::mem::size_of::<StridedArg>());
            b.extend(a.rank.to_ne_bytes());
            b.extend(a.pad.to_ne_bytes());
            b.extend(a.offset.to_ne_bytes());
            for v in a.dims.iter().chain(&a.strides) {
                b.extend(v.to_ne_bytes());
            }
            assert_eq!(b.len(), std::mem::size_of::<StridedArg>());
            b
        }
    }

    fn elementwise(op: &str, dtype: &str, n: usize) -> Launch {
        Launch {
            module: "tensor_ops",
            kernel: format!("{op}_{dtype}"),
            config: kernels::elementwise_config(n),
        }
    }
    fn rowwise(kernel: String, rows: usize, cols: usize) -> Launch {
        Launch {
            module: "tensor_ops",
            kernel,
            config: kernels::row_config(rows, cols).expect("rows fit a grid"),
        }
    }

    #[test]
    fn strided_bytes_are_the_c_struct() {
        let v = View::new(&[2, 3], &[0, 5], 7);
        let b = v.bytes();
        assert_eq!(b.len(), 144);
        assert_eq!(i32::from_ne_bytes(b[0..4].try_into().unwrap()), 2);
        assert_eq!(i64::from_ne_bytes(b[8..16].try_into().unwrap()), 7);
        assert_eq!(i64::from_ne_bytes(b[24..32].try_into().unwrap()), 3);
        assert_eq!(i64::from_ne_bytes(b[88..96].try_into().unwrap()), 5);
        assert_eq!(kernels::elementwise_config(0).grid, [1, 1, 1]);
        assert_eq!(kernels::elementwise_config(257).grid, [2, 1, 1]);
        assert_eq!(kernels::row_config(3, 4095).unwrap().block, [256, 1, 1]);
        assert_eq!(kernels::row_config(3, 4096).unwrap().block, [1024, 1, 1]);
        assert!(kernels::row_config(1 << 31, 1).is_err());
    }

    #[test]
    fn a_name_two_modules_define_needs_the_module() {
        let x = vec![bf16::ZERO; 4];
        let err = genfx_kernels_emu::launch(
            "gated_residual_bf16",
            dims(&elementwise("gated_residual", "bf16", 4)),
            &mut [input("x", &x)],
        )
        .unwrap_err();
        assert!(err.to_string().contains("name the module"), "{err}");
        let err = launch_in(
            "norm",
            "rms_norm_bf16",
            dims(&elementwise("rms_norm", "bf16", 4)),
            &mut [],
        )
        .unwrap_err();
        assert!(
            matches!(err, genfx_kernels_emu::EmuError::BadLaunch(ref m) if m.contains("module 'norm'")),
            "{err}"
        );
    }

    // --- convert ---

    /// Values that probe the conversions: ties at bf16 and f16 precision,
    /// f16 overflow and subnormals, f32 subnormals, signed zeros, infinities
    /// and NaNs with payloads; then ordinary values of many magnitudes.
    fn convert_inputs(n: usize) -> Vec<f32> {
        let mut v = vec![
            f32::from_bits(0x3f80_8000), // 1 + 2^-8: a bf16 tie, to even (1.0)
            f32::from_bits(0x3f81_8000), // a bf16 tie, to even (up)
            f32::from_bits(0x3f80_8001), // just above a tie
            f32::from_bits(0xbf81_7fff), // just below a tie, negative
            1.0 + 2f32.powi(-11),        // an f16 tie, to even (1.0)
            1.0 + 3.0 * 2f32.powi(-11),  // an f16 tie, to even (up)
            65504.0,
            65520.0, // rounds to +inf in f16
            -1.0e5,
            3.0e-6,            // f16 subnormal
            -2.0f32.powi(-25), // half the smallest f16 subnormal: ties to -0
            1.0e-9,            // underflows f16
            f32::MAX,          // rounds to +inf in bf16
            f32::MIN_POSITIVE,
            1.0e-40, // f32 subnormal
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::from_bits(0x7f80_0001), // signalling NaN, low payload
            f32::from_bits(0xffa5_1234), // negative NaN with a payload
        ];
        let mut rng = Rng::new(21);
        let mut scale = 1.0e-3f32;
        while v.len() < n {
            v.push(rng.f() * scale);
            scale = if scale > 1.0e4 { 1.0e-3 } else { scale * 7.0 };
        }
        v.truncate(n);
        v
    }

    fn check_convert<S: Ty, D: Ty>() {
        // src: a [7, 3, 5] buffer at offset 4, read as its [3, 5, 7] transpose;
        // dst: [3, 5, 7] with padded rows at offset 3.
        let (d0, d1, d2) = (3usize, 5usize, 7usize);
        let sv = View::new(&[d0, d1, d2], &[d1, 1, d0 * d1], 4);
        let dv = View::new(&[d0, d1, d2], &[d1 * 8, 8, 1], 3);
        let n = sv.len();
        let mut src = vec![S::from(0.0); sv.storage()];
        for (i, x) in convert_inputs(n).into_iter().enumerate() {
            src[sv.at(i)] = S::from(x);
        }
        let sentinel = D::from(-7.0);
        let mut dst = vec![sentinel; dv.storage() + 2];
        let l = elementwise(&format!("convert_{}", S::NAME), D::NAME, n);
        let (sb, db) = (sv.bytes(), dv.bytes());
        run(
            &l,
            &mut [
                input("src", &src),
                Arg::Bytes(&sb),
                output("dst", &mut dst),
                Arg::Bytes(&db),
                Arg::I64(n as i64),
            ],
        );
        let mut written = vec![false; dst.len()];
        for i in 0..n {
            let s = src[sv.at(i)];
            let want = D::from(s.to());
            let got = dst[dv.at(i)];
            written[dv.at(i)] = true;
            let ok = if want.to().is_nan() {
                // bf16 keeps the NaN's sign and payload as half::bf16 does;
                // f16 NaN payloads are not specified.
                got.to().is_nan() && (D::NAME != "bf16" || got.bits() == want.bits())
            } else {
                got.bits() == want.bits()
            };
            assert!(
                ok,
                "{}: element {i} ({s:?} = {:#x}) became {got:?} ({:#x}), want {want:?} ({:#x})",
                l.kernel,
                s.bits(),
                got.bits(),
                want.bits()
            );
        }
        for (j, &w) in written.iter().enumerate() {
            if !w {
                assert_eq!(
                    dst[j].bits(),
                    sentinel.bits(),
                    "{}: wrote outside the view at {j}",
                    l.kernel
                );
            }
        }
    }

    #[test]
    fn convert_is_bit_exact_for_every_dtype_pair() {
        check_convert::<f32, f32>();
        check_convert::<f32, bf16>();
        check_convert::<f32, f16>();
        check_convert::<bf16, f32>();
        check_convert::<bf16, bf16>();
        check_convert::<bf16, f16>();
        check_convert::<f16, f32>();
        check_convert::<f16, bf16>();
        check_convert::<f16, f16>();
    }

    #[test]
    fn bf16_rounding_matches_half_on_special_values() {
        // The kernel's f32 -> bf16 on every input above, compared bit for bit
        // with half::bf16::from_f32 (the CPU backend's conversion).
        let xs = convert_inputs(22);
        let v = View::contiguous(&[xs.len()]);
        let mut out = vec![bf16::ZERO; xs.len()];
        let b = v.bytes();
        run(
            &elementwise("convert_f32", "bf16", xs.len()),
            &mut [
                input("src", &xs),
                Arg::Bytes(&b),
                output("dst", &mut out),
                Arg::Bytes(&b),
                Arg::I64(xs.len() as i64),
            ],
        );
        let want: Vec<u16> = xs.iter().map(|&x| bf16::from_f32(x).to_bits()).collect();
        let got: Vec<u16> = out.iter().map(|x| x.to_bits()).collect();
        assert_eq!(got, want);
        assert_eq!(got[0], 0x3f80);
        assert_eq!(got[1], 0x3f82);
        assert_eq!(got[12], 0x7f80, "f32::MAX rounds to +inf");
        assert_eq!(got[20], 0x7fc0, "a signalling NaN becomes quiet");
        assert_eq!(got[21], 0xffe5, "sign and payload kept");
    }

    // --- elementwise ---

    /// f64 references of unary and binary ops.
    type Reference1 = fn(f64) -> f64;
    type Reference2 = fn(f64, f64) -> f64;

    /// Unary op codes as `unary_code` in src/backend/cuda/backend.rs, with
    /// their f64 references and an input range where the op is defined.
    fn unary_ops() -> Vec<(i32, &'static str, Reference1)> {
        vec![
            (0, "gelu_tanh", gelu_tanh),
            (1, "silu", silu),
            (2, "exp", f64::exp),
            (3, "neg", |x| -x),
            (4, "sqrt", f64::sqrt),
            (5, "recip", f64::recip),
            (6, "abs", f64::abs),
            (7, "tanh", f64::tanh),
            (8, "sin", f64::sin),
            (9, "cos", f64::cos),
            (10, "sqr", |x| x * x),
        ]
    }

    fn check_unary<T: Ty>() {
        // [7, 9, 11] (three blocks) read through a transposed, offset view.
        let (a, b, c) = (7usize, 9usize, 11usize);
        let v = View::new(&[a, b, c], &[1, a * c, a], 5);
        let n = v.len();
        let vb = v.bytes();
        let mut rng = Rng::new(31);
        for (code, what, f) in unary_ops() {
            let raw = rng.vec(v.storage(), 2.5);
            let raw: Vec<f32> = match code {
                4 => raw.iter().map(|x| x.abs()).collect(),
                5 => raw.iter().map(|x| x.signum() * (x.abs() + 0.25)).collect(),
                _ => raw,
            };
            let src = put::<T>(&raw);
            let xs = wide(&src);
            let mut dst = vec![T::from(0.0); n];
            let l = elementwise("unary", T::NAME, n);
            run(
                &l,
                &mut [
                    input("src", &src),
                    Arg::Bytes(&vb),
                    output("dst", &mut dst),
                    Arg::I64(n as i64),
                    Arg::I32(code),
                ],
            );
            let want: Vec<f64> = (0..n).map(|i| f(xs[v.at(i)])).collect();
            check(&format!("{} op {code} ({what})", l.kernel), &dst, &want);
        }
        // An unknown code gives NaN rather than garbage.
        let src = put::<T>(&rng.vec(v.storage(), 1.0));
        let mut dst = vec![T::from(0.0); n];
        run(
            &elementwise("unary", T::NAME, n),
            &mut [
                input("src", &src),
                Arg::Bytes(&vb),
                output("dst", &mut dst),
                Arg::I64(n as i64),
                Arg::I32(99),
            ],
        );
        assert!(dst.iter().all(|x| x.to().is_nan()));
    }

    #[test]
    fn unary_matches_reference_for_every_op() {
        check_unary::<f32>();
        check_unary::<bf16>();
        check_unary::<f16>();
    }

    fn check_affine<T: Ty>() {
        // A column slice of a [6, 13] buffer: dims [6, 5] from column 4.
        let v = View::new(&[6, 5], &[13, 1], 4);
        let n = v.len();
        let src = put::<T>(&Rng::new(41).vec(v.storage(), 3.0));
        let xs = wide(&src);
        let mut dst = vec![T::from(0.0); n];
        let vb = v.bytes();
        let (mul, add) = (1.7f32, -0.3f32);
        let l = elementwise("affine", T::NAME, n);
        run(
            &l,
            &mut [
                input("src", &src),
                Arg::Bytes(&vb),
                output("dst", &mut dst),
                Arg::I64(n as i64),
                Arg::F32(mul),
                Arg::F32(add),
            ],
        );
        let want: Vec<f64> = (0..n)
            .map(|i| xs[v.at(i)] * f64::from(mul) + f64::from(add))
            .collect();
        check(&l.kernel, &dst, &want);
    }

    #[test]
    fn affine_matches_reference() {
        check_affine::<f32>();
        check_affine::<bf16>();
        check_affine::<f16>();
    }

    fn check_binary<T: Ty>() {
        // a: the [5, 6, 13] transpose of a [13, 6, 5] buffer; b: one [6, 13]
        // block at offset 2 broadcast over the first dim (stride 0).
        let (d0, d1, d2) = (5usize, 6usize, 13usize);
        let av = View::new(&[d0, d1, d2], &[1, d0, d0 * d1], 0);
        let bv = View::new(&[d0, d1, d2], &[0, d2, 1], 2);
        let n = av.len();
        let mut rng = Rng::new(51);
        let a = put::<T>(&rng.vec(av.storage(), 2.0));
        // Kept away from zero so that division is well conditioned.
        let b_raw: Vec<f32> = rng
            .vec(bv.storage(), 2.0)
            .into_iter()
            .map(|x| x.signum() * (x.abs() + 0.3))
            .collect();
        let b = put::<T>(&b_raw);
        let (xa, xb) = (wide(&a), wide(&b));
        let (ab, bb) = (av.bytes(), bv.bytes());
        let ops: [(i32, Reference2); 6] = [
            (0, |x, y| x + y),
            (1, |x, y| x - y),
            (2, |x, y| x * y),
            (3, |x, y| x / y),
            (4, f64::max),
            (5, f64::min),
        ];
        for (code, f) in ops {
            let mut dst = vec![T::from(0.0); n];
            let l = elementwise("binary", T::NAME, n);
            run(
                &l,
                &mut [
                    input("a", &a),
                    Arg::Bytes(&ab),
                    input("b", &b),
                    Arg::Bytes(&bb),
                    output("dst", &mut dst),
                    Arg::I64(n as i64),
                    Arg::I32(code),
                ],
            );
            let want: Vec<f64> = (0..n).map(|i| f(xa[av.at(i)], xb[bv.at(i)])).collect();
            check(&format!("{} op {code}", l.kernel), &dst, &want);
        }
    }

    #[test]
    fn binary_matches_reference_for_every_op() {
        check_binary::<f32>();
        check_binary::<bf16>();
        check_binary::<f16>();
    }

    fn check_modulate<T: Ty>() {
        // x contiguous [2, 5, 9]; shift per sample and column (broadcast over
        // tokens), scale one row at offset 3 broadcast over both.
        let d = [2usize, 5, 9];
        let xv = View::contiguous(&d);
        let shv = View::new(&d, &[9, 0, 1], 0);
        let scv = View::new(&d, &[0, 0, 1], 3);
        let n = xv.len();
        let mut rng = Rng::new(61);
        let x = put::<T>(&rng.vec(n, 2.0));
        let shift = put::<T>(&rng.vec(shv.storage(), 1.0));
        let scale = put::<T>(&rng.vec(scv.storage(), 1.0));
        let (xx, xsh, xsc) = (wide(&x), wide(&shift), wide(&scale));
        let (shb, scb) = (shv.bytes(), scv.bytes());
        let mut dst = vec![T::from(0.0); n];
        let l = elementwise("modulate", T::NAME, n);
        run(
            &l,
            &mut [
                input("x", &x),
                input("shift", &shift),
                Arg::Bytes(&shb),
                input("scale", &scale),
                Arg::Bytes(&scb),
                output("dst", &mut dst),
                Arg::I64(n as i64),
            ],
        );
        let want: Vec<f64> = (0..n)
            .map(|i| xx[i] * (1.0 + xsc[scv.at(i)]) + xsh[shv.at(i)])
            .collect();
        check(&l.kernel, &dst, &want);
    }

    #[test]
    fn modulate_matches_reference() {
        check_modulate::<f32>();
        check_modulate::<bf16>();
        check_modulate::<f16>();
    }

    fn check_gated_residual<T: Ty>() {
        // x, y contiguous [2, 5, 9]; the gate per sample and column.
        let d = [2usize, 5, 9];
        let gv = View::new(&d, &[9, 0, 1], 1);
        let n = d.iter().product();
        let mut rng = Rng::new(71);
        let x = put::<T>(&rng.vec(n, 2.0));
        let y = put::<T>(&rng.vec(n, 2.0));
        let gate = put::<T>(&rng.vec(gv.storage(), 1.0));
        let (xx, xy, xg) = (wide(&x), wide(&y), wide(&gate));
        let gb = gv.bytes();
        let mut dst = vec![T::from(0.0); n];
        let l = elementwise("gated_residual", T::NAME, n);
        run(
            &l,
            &mut [
                input("x", &x),
                input("gate", &gate),
                Arg::Bytes(&gb),
                input("y", &y),
                output("dst", &mut dst),
                Arg::I64(n as i64),
            ],
        );
        let want: Vec<f64> = (0..n).map(|i| xx[i] + xg[gv.at(i)] * xy[i]).collect();
        check(&l.kernel, &dst, &want);
    }

    #[test]
    fn gated_residual_matches_reference() {
        check_gated_residual::<f32>();
        check_gated_residual::<bf16>();
        check_gated_residual::<f16>();
    }

    fn check_rope<T: Ty>() {
        // x contiguous [3, 4, 10] (pairs interleaved along the last dim); cos
        // a [4, 10] table broadcast over the batch, sin the same table stored
        // transposed ([10, 4]) at offset 2.
        let d = [3usize, 4, 10];
        let cv = View::new(&d, &[0, 10, 1], 0);
        let sv = View::new(&d, &[0, 1, 4], 2);
        let n: usize = d.iter().product();
        let mut rng = Rng::new(81);
        let x = put::<T>(&rng.vec(n, 2.0));
        let cos_t = put::<T>(&rng.vec(cv.storage(), 1.0));
        let sin_t = put::<T>(&rng.vec(sv.storage(), 1.0));
        let (xx, xc, xs) = (wide(&x), wide(&cos_t), wide(&sin_t));
        let (cb, sb) = (cv.bytes(), sv.bytes());
        let mut dst = vec![T::from(0.0); n];
        let l = elementwise("rope", T::NAME, n);
        run(
            &l,
            &mut [
                input("x", &x),
                input("cos", &cos_t),
                Arg::Bytes(&cb),
                input("sin", &sin_t),
                Arg::Bytes(&sb),
                output("dst", &mut dst),
                Arg::I64(n as i64),
            ],
        );
        let want: Vec<f64> = (0..n)
            .map(|i| {
                let (c, s) = (xc[cv.at(i)], xs[sv.at(i)]);
                if i % 2 == 0 {
                    xx[i] * c - xx[i + 1] * s
                } else {
                    xx[i] * c + xx[i - 1] * s
                }
            })
            .collect();
        check(&l.kernel, &dst, &want);
    }

    #[test]
    fn rope_matches_reference() {
        check_rope::<f32>();
        check_rope::<bf16>();
        check_rope::<f16>();
    }

    // --- row kernels ---

    /// softmax(scale * x + bias) per row of `cols`, the bias row advancing
    /// every `rows_per_bias` rows.
    fn softmax_reference(
        x: &[f64],
        bias: Option<&[f64]>,
        rows_per_bias: usize,
        cols: usize,
        scale: f64,
    ) -> Vec<f64> {
        let mut out = Vec::with_capacity(x.len());
        for (r, row) in x.chunks(cols).enumerate() {
            let v: Vec<f64> = row
                .iter()
                .enumerate()
                .map(|(j, &a)| a * scale + bias.map_or(0.0, |b| b[(r / rows_per_bias) * cols + j]))
                .collect();
            let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = v.iter().map(|a| (a - m).exp()).sum();
            out.extend(v.iter().map(|a| (a - m).exp() / sum));
        }
        out
    }

    /// Bias rows with some masked keys, as attention's `(1 - mask) * -10000`.
    fn bias_values(rng: &mut Rng, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| if i % 7 == 3 { -10000.0 } else { rng.f() })
            .collect()
    }

    /// `softmax_T` (S = T) or `softmax_f32_to_T` (S = f32): without bias as
    /// softmax_last_dim launches it, and with a bias row per 3 rows.
    fn check_softmax<S: Ty, T: Ty>(kernel: String, rows: usize, cols: usize) {
        let mut rng = Rng::new(91 + cols as u64);
        let src = put::<S>(&rng.vec(rows * cols, 4.0));
        let rows_per_bias = 3usize;
        let bias = put::<S>(&bias_values(&mut rng, rows.div_ceil(rows_per_bias) * cols));
        let (xs, xb) = (wide(&src), wide(&bias));
        let l = rowwise(kernel, rows, cols);
        for (with_bias, scale) in [(false, 1.0f32), (true, 0.7f32)] {
            let mut dst = vec![T::from(0.0); rows * cols];
            run(
                &l,
                &mut [
                    input("src", &src),
                    if with_bias {
                        input("bias", &bias)
                    } else {
                        null()
                    },
                    Arg::I64(if with_bias { rows_per_bias as i64 } else { 1 }),
                    output("dst", &mut dst),
                    Arg::I32(cols as i32),
                    Arg::F32(scale),
                ],
            );
            let want = softmax_reference(
                &xs,
                with_bias.then_some(&xb[..]),
                rows_per_bias,
                cols,
                f64::from(scale),
            );
            let what = format!("{} {rows}x{cols} bias {with_bias}", l.kernel);
            check(&what, &dst, &want);
        }
    }

    #[test]
    fn softmax_matches_reference() {
        check_softmax::<f32, f32>("softmax_f32".into(), 7, 37);
        check_softmax::<bf16, bf16>("softmax_bf16".into(), 7, 37);
        check_softmax::<f16, f16>("softmax_f16".into(), 7, 37);
        // Rows of 4096 and more get 1024-thread blocks.
        check_softmax::<bf16, bf16>("softmax_bf16".into(), 4, 4103);
    }

    #[test]
    fn softmax_f32_to_matches_reference() {
        check_softmax::<f32, f32>("softmax_f32_to_f32".into(), 5, 41);
        check_softmax::<f32, bf16>("softmax_f32_to_bf16".into(), 5, 41);
        check_softmax::<f32, f16>("softmax_f32_to_f16".into(), 5, 41);
        check_softmax::<f32, f16>("softmax_f32_to_f16".into(), 4, 4097);
    }

    fn check_rms_norm<T: Ty>(rows: usize, cols: usize) {
        let mut rng = Rng::new(101 + cols as u64);
        let x = put::<T>(&rng.vec(rows * cols, 3.0));
        let w = put::<T>(&rng.vec(cols, 1.5));
        let (xx, xw) = (wide(&x), wide(&w));
        let eps = 1e-6f32;
        let l = rowwise(format!("rms_norm_{}", T::NAME), rows, cols);
        for with_weight in [false, true] {
            let mut dst = vec![T::from(0.0); rows * cols];
            run(
                &l,
                &mut [
                    input("src", &x),
                    if with_weight {
                        input("weight", &w)
                    } else {
                        null()
                    },
                    output("dst", &mut dst),
                    Arg::I32(cols as i32),
                    Arg::F32(eps),
                ],
            );
            let mut want = Vec::with_capacity(rows * cols);
            for row in xx.chunks(cols) {
                let ms = row.iter().map(|v| v * v).sum::<f64>() / cols as f64;
                let r = 1.0 / (ms + f64::from(eps)).sqrt();
                want.extend(
                    row.iter()
                        .enumerate()
                        .map(|(j, v)| v * r * if with_weight { xw[j] } else { 1.0 }),
                );
            }
            check(
                &format!("{} {rows}x{cols} weight {with_weight}", l.kernel),
                &dst,
                &want,
            );
        }
    }

    #[test]
    fn rms_norm_matches_reference() {
        check_rms_norm::<f32>(5, 37);
        check_rms_norm::<bf16>(5, 37);
        check_rms_norm::<f16>(5, 37);
        check_rms_norm::<f32>(3, 4099);
    }

    fn check_layer_norm<T: Ty>(rows: usize, cols: usize) {
        let mut rng = Rng::new(111 + cols as u64);
        // An offset mean, so that the two-pass variance matters.
        let raw: Vec<f32> = rng.vec(rows * cols, 2.0).iter().map(|v| v + 3.0).collect();
        let x = put::<T>(&raw);
        let w = put::<T>(&rng.vec(cols, 1.5));
        let b = put::<T>(&rng.vec(cols, 1.0));
        let (xx, xw, xb) = (wide(&x), wide(&w), wide(&b));
        let eps = 1e-5f32;
        let l = rowwise(format!("layer_norm_{}", T::NAME), rows, cols);
        for (with_weight, with_bias) in [(false, false), (true, false), (true, true), (false, true)]
        {
            let mut dst = vec![T::from(0.0); rows * cols];
            run(
                &l,
                &mut [
                    input("src", &x),
                    if with_weight {
                        input("weight", &w)
                    } else {
                        null()
                    },
                    if with_bias { input("bias", &b) } else { null() },
                    output("dst", &mut dst),
                    Arg::I32(cols as i32),
                    Arg::F32(eps),
                ],
            );
            let mut want = Vec::with_capacity(rows * cols);
            for row in xx.chunks(cols) {
                let mean = row.iter().sum::<f64>() / cols as f64;
                let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / cols as f64;
                let r = 1.0 / (var + f64::from(eps)).sqrt();
                want.extend(row.iter().enumerate().map(|(j, v)| {
                    (v - mean) * r * if with_weight { xw[j] } else { 1.0 }
                        + if with_bias { xb[j] } else { 0.0 }
                }));
            }
            let what = format!(
                "{} {rows}x{cols} weight {with_weight} bias {with_bias}",
                l.kernel
            );
            check(&what, &dst, &want);
        }
    }

    #[test]
    fn layer_norm_matches_reference() {
        check_layer_norm::<f32>(5, 37);
        check_layer_norm::<bf16>(5, 37);
        check_layer_norm::<f16>(5, 37);
        check_layer_norm::<bf16>(3, 4099);
    }
}
