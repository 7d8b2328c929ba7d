//! Every backend op on the GPU against the CPU reference, on the same inputs.
//! Run with `cargo xtask test-gpu`; see `gpu_common` for skips and tolerances.

mod gpu_common;

use std::sync::Arc;

use genfx::backend::cuda::dtype::Half;
use genfx::backend::cuda::{CudaBackend, CudaError};
use genfx::backend::{
    AttentionSpec, Backend, BackendStorage, BinaryOp, Conv3dSpec, CpuBackend, CpuStorage,
    MatStrides, MatmulSpec, Operand, SubOrder, TimePadding, UnaryOp,
};
use genfx::tensor::{DType, Layout, TensorError};
use gpu_common::{assert_close, gpu_or_skip, rounded, values};

/// One storage type under test: f32, or the card's 16-bit type.
struct Case {
    gpu: Arc<CudaBackend>,
    half: Option<Half>,
}

type Stored = Box<dyn BackendStorage>;

impl Case {
    /// f32 and the 16-bit types the card computes in: f16 everywhere, bf16
    /// from Ampere (cuBLAS has no bf16 GEMM before sm_80). A bf16 card may
    /// still be handed f16 data, so both are tested where both exist.
    fn all(gpu: &Arc<CudaBackend>) -> Vec<Case> {
        let mut halves = vec![None];
        if gpu.device().compute_capability() >= (8, 0) {
            halves.push(Some(Half::Bf16));
        }
        halves.push(Some(Half::F16));
        halves
            .into_iter()
            .map(|half| Case {
                gpu: gpu.clone(),
                half,
            })
            .collect()
    }

    fn dtype(&self) -> DType {
        match self.half {
            None => DType::F32,
            Some(Half::Bf16) => DType::BF16,
            Some(Half::F16) => DType::F16,
        }
    }

    fn name(&self, op: &str) -> String {
        format!("{op} [{}]", self.dtype())
    }

    /// The same values on both sides: GPU in the case's dtype, CPU in f32
    /// holding exactly the values the GPU stores.
    fn put(&self, v: &[f32]) -> (Stored, Stored) {
        let exact = rounded(v, self.half);
        let up = self.gpu.upload(CpuStorage::F32(exact.clone())).unwrap();
        let l = Layout::contiguous(&[v.len()]);
        let gpu = self
            .gpu
            .to_dtype(
                Operand {
                    storage: &*up,
                    layout: &l,
                },
                self.dtype(),
            )
            .unwrap();
        (gpu, Box::new(CpuStorage::F32(exact)))
    }

    fn get(&self, s: &dyn BackendStorage) -> Vec<f32> {
        f32s(self.gpu.download(s).unwrap())
    }
}

fn f32s(s: CpuStorage) -> Vec<f32> {
    let view = s.view();
    view.widen(0, view.len())
}

fn cpu_get(s: &dyn BackendStorage) -> Vec<f32> {
    f32s(CpuBackend.download(s).unwrap())
}

fn op<'a>(s: &'a Stored, l: &'a Layout) -> Operand<'a> {
    Operand {
        storage: &**s,
        layout: l,
    }
}

#[test]
fn upload_download_and_dtype_conversion_are_exact() {
    let Some(gpu) = gpu_or_skip("upload_download_and_dtype_conversion_are_exact") else {
        return;
    };
    let v = values(10_007, 1);
    let up = gpu.upload(CpuStorage::F32(v.clone())).unwrap();
    assert_eq!(f32s(gpu.download(&*up).unwrap()), v, "f32 round trip");
    let l = Layout::contiguous(&[v.len()]);
    for (dtype, half) in [(DType::BF16, Half::Bf16), (DType::F16, Half::F16)] {
        let h = gpu.to_dtype(op(&up, &l), dtype).unwrap();
        let back = f32s(gpu.download(&*h).unwrap());
        assert_eq!(
            back,
            half.decode_vec(&half.encode_vec(&v)),
            "{dtype} rounding is RNE"
        );
    }
    let z = gpu.zeros(1000, DType::BF16).unwrap();
    assert!(f32s(gpu.download(&*z).unwrap()).iter().all(|&x| x == 0.0));
}

#[test]
fn strided_copy_and_cat_match_cpu() {
    let Some(gpu) = gpu_or_skip("strided_copy_and_cat_match_cpu") else {
        return;
    };
    for c in Case::all(&gpu) {
        let (g, cpu) = c.put(&values(2 * 3 * 5 * 7, 2));
        // a permuted, offset view: dims [7, 3, 4] of [2, 3, 5, 7] starting at batch 1, col 1
        let l = Layout::new(vec![7, 3, 4], vec![1, 35, 7], 105 + 7).unwrap();
        let got = c.get(&*c.gpu.copy_strided(op(&g, &l)).unwrap());
        let want = cpu_get(&*CpuBackend.copy_strided(op(&cpu, &l)).unwrap());
        assert_eq!(got, want, "{}", c.name("copy_strided"));

        let (g2, cpu2) = c.put(&values(2 * 4 * 7, 3));
        let la = Layout::contiguous(&[2, 3, 7]);
        let lb = Layout::contiguous(&[2, 4, 7]);
        let la_src = Layout::new(vec![2, 3, 7], vec![35, 7, 1], 0).unwrap();
        let got = c.get(
            &*c.gpu
                .cat(&[op(&g, &la_src), op(&g2, &lb)], 1, &[2, 7, 7])
                .unwrap(),
        );
        let want = cpu_get(
            &*CpuBackend
                .cat(&[op(&cpu, &la_src), op(&cpu2, &lb)], 1, &[2, 7, 7])
                .unwrap(),
        );
        assert_eq!(got, want, "{}", c.name("cat"));
        let _ = la;
    }
}

#[test]
fn elementwise_ops_match_cpu() {
    let Some(gpu) = gpu_or_skip("elementwise_ops_match_cpu") else {
        return;
    };
    let unary = [
        UnaryOp::GeluTanh,
        UnaryOp::Silu,
        UnaryOp::Exp,
        UnaryOp::Neg,
        UnaryOp::Abs,
        UnaryOp::Tanh,
        UnaryOp::Sin,
        UnaryOp::Cos,
        UnaryOp::Sqr,
    ];
    for c in Case::all(&gpu) {
        let n = 64 * 33;
        let (g, cpu) = c.put(&values(n, 4).iter().map(|x| x * 4.0).collect::<Vec<_>>());
        let l = Layout::contiguous(&[64, 33]);
        for u in unary {
            let got = c.get(&*c.gpu.unary(u, op(&g, &l)).unwrap());
            let want = cpu_get(&*CpuBackend.unary(u, op(&cpu, &l)).unwrap());
            assert_close(&c.name(&format!("{u:?}")), &got, &want, c.half);
        }
        // positive inputs for sqrt and 1/x
        let (gp, cp) = c.put(
            &values(n, 5)
                .iter()
                .map(|x| x.abs() + 0.5)
                .collect::<Vec<_>>(),
        );
        for u in [UnaryOp::Sqrt, UnaryOp::Recip] {
            let got = c.get(&*c.gpu.unary(u, op(&gp, &l)).unwrap());
            let want = cpu_get(&*CpuBackend.unary(u, op(&cp, &l)).unwrap());
            assert_close(&c.name(&format!("{u:?}")), &got, &want, c.half);
        }
        let got = c.get(&*c.gpu.affine(op(&g, &l), 0.5, -2.0).unwrap());
        let want = cpu_get(&*CpuBackend.affine(op(&cpu, &l), 0.5, -2.0).unwrap());
        assert_close(&c.name("affine"), &got, &want, c.half);

        // broadcast rhs: a [33] row against [64, 33]
        let (gr, cr) = c.put(&values(33, 6).iter().map(|x| x + 2.0).collect::<Vec<_>>());
        let lr = Layout::new(vec![64, 33], vec![0, 1], 0).unwrap();
        for b in [
            BinaryOp::Add,
            BinaryOp::Sub,
            BinaryOp::Mul,
            BinaryOp::Div,
            BinaryOp::Maximum,
            BinaryOp::Minimum,
        ] {
            let got = c.get(&*c.gpu.binary(b, op(&g, &l), op(&gr, &lr)).unwrap());
            let want = cpu_get(&*CpuBackend.binary(b, op(&cpu, &l), op(&cr, &lr)).unwrap());
            assert_close(&c.name(&format!("{b:?}")), &got, &want, c.half);
        }
    }
}

fn strides(offset: usize, batch: usize, row: usize, col: usize) -> MatStrides {
    MatStrides {
        offset,
        batch,
        row,
        col,
    }
}

#[test]
fn matmul_matches_cpu_for_plain_transposed_shared_and_biased_operands() {
    let Some(gpu) =
        gpu_or_skip("matmul_matches_cpu_for_plain_transposed_shared_and_biased_operands")
    else {
        return;
    };
    let (batch, m, k, n) = (3, 37, 96, 65);
    for c in Case::all(&gpu) {
        let (a, ca) = c.put(&values(batch * m * k, 7));
        let (w, cw) = c.put(&values(n * k + 5, 8));
        // room for a [k, n] view with strides (2n, 2): no unit stride
        let (wide, cwide) = c.put(&values(4 * k * n, 10));
        let (bias, cb) = c.put(&values(n, 9));
        let lb = Layout::contiguous(&[n]);
        let cases = [
            // rhs a Linear weight [n, k] read transposed, shared across the batch
            (strides(0, m * k, k, 1), strides(5, 0, 1, k), &w, &cw, true),
            // rhs plain row-major [k, n]
            (strides(0, m * k, k, 1), strides(0, 0, n, 1), &w, &cw, false),
            // lhs a transposed view [k, m] read as m×k
            (strides(0, m * k, 1, m), strides(5, 0, 1, k), &w, &cw, false),
            // neither stride of rhs is 1: the contiguous-copy path
            (
                strides(0, m * k, k, 1),
                strides(1, 0, 2 * n, 2),
                &wide,
                &cwide,
                true,
            ),
        ];
        for (i, (ls, rs, g_rhs, c_rhs, with_bias)) in cases.into_iter().enumerate() {
            let spec = MatmulSpec {
                batch,
                m,
                n,
                k,
                lhs: ls,
                rhs: rs,
            };
            let b = with_bias.then(|| op(&bias, &lb));
            let cbias = with_bias.then(|| op(&cb, &lb));
            let got = c.get(&*c.gpu.matmul(&*a, &**g_rhs, b, &spec).unwrap());
            let want = cpu_get(&*CpuBackend.matmul(&*ca, &**c_rhs, cbias, &spec).unwrap());
            assert_close(&c.name(&format!("matmul #{i}")), &got, &want, c.half);
        }
    }
}

#[test]
fn softmax_and_norms_match_cpu() {
    let Some(gpu) = gpu_or_skip("softmax_and_norms_match_cpu") else {
        return;
    };
    for c in Case::all(&gpu) {
        for cols in [7usize, 64, 2048, 5000] {
            let rows = 9;
            let (x, cx) = c.put(
                &values(rows * cols, 10)
                    .iter()
                    .map(|v| v * 6.0)
                    .collect::<Vec<_>>(),
            );
            let (w, cw) = c.put(&values(cols, 11));
            let (b, cb) = c.put(&values(cols, 12));
            let l = Layout::contiguous(&[rows, cols]);
            let lw = Layout::contiguous(&[cols]);
            let got = c.get(&*c.gpu.softmax_last_dim(op(&x, &l)).unwrap());
            let want = cpu_get(&*CpuBackend.softmax_last_dim(op(&cx, &l)).unwrap());
            assert_close(&c.name(&format!("softmax {cols}")), &got, &want, c.half);
            for weight in [false, true] {
                let gw = weight.then(|| op(&w, &lw));
                let cwo = weight.then(|| op(&cw, &lw));
                let got = c.get(&*c.gpu.rms_norm(op(&x, &l), gw, 1e-6).unwrap());
                let want = cpu_get(&*CpuBackend.rms_norm(op(&cx, &l), cwo, 1e-6).unwrap());
                assert_close(&c.name(&format!("rms_norm {cols}")), &got, &want, c.half);
                let gb = weight.then(|| op(&b, &lw));
                let cbo = weight.then(|| op(&cb, &lw));
                let got = c.get(&*c.gpu.layer_norm(op(&x, &l), gw, gb, 1e-6).unwrap());
                let want = cpu_get(&*CpuBackend.layer_norm(op(&cx, &l), cwo, cbo, 1e-6).unwrap());
                assert_close(&c.name(&format!("layer_norm {cols}")), &got, &want, c.half);
            }
        }
    }
}

#[test]
fn rope_modulate_and_gated_residual_match_cpu() {
    let Some(gpu) = gpu_or_skip("rope_modulate_and_gated_residual_match_cpu") else {
        return;
    };
    let (b, t, d) = (2, 50, 128);
    for c in Case::all(&gpu) {
        let (x, cx) = c.put(&values(b * t * d, 13));
        let (y, cy) = c.put(&values(b * t * d, 14));
        let angles = values(t * d, 15);
        let cos: Vec<f32> = angles.iter().map(|a| (a * 3.0).cos()).collect();
        let sin: Vec<f32> = angles.iter().map(|a| (a * 3.0).sin()).collect();
        let (gc, cc) = c.put(&cos);
        let (gs, cs) = c.put(&sin);
        let l = Layout::contiguous(&[b, t, d]);
        // tables shared across the batch
        let lt = Layout::new(vec![b, t, d], vec![0, d, 1], 0).unwrap();
        let got = c.get(
            &*c.gpu
                .rope_interleaved(op(&x, &l), op(&gc, &lt), op(&gs, &lt))
                .unwrap(),
        );
        let want = cpu_get(
            &*CpuBackend
                .rope_interleaved(op(&cx, &l), op(&cc, &lt), op(&cs, &lt))
                .unwrap(),
        );
        assert_close(&c.name("rope"), &got, &want, c.half);

        // per-batch modulation rows [b, d] broadcast over tokens
        let (sh, csh) = c.put(&values(b * d, 16));
        let (sc, csc) = c.put(&values(b * d, 17));
        let lm = Layout::new(vec![b, t, d], vec![d, 0, 1], 0).unwrap();
        let got = c.get(
            &*c.gpu
                .modulate(op(&x, &l), op(&sh, &lm), op(&sc, &lm))
                .unwrap(),
        );
        let want = cpu_get(
            &*CpuBackend
                .modulate(op(&cx, &l), op(&csh, &lm), op(&csc, &lm))
                .unwrap(),
        );
        assert_close(&c.name("modulate"), &got, &want, c.half);
        let got = c.get(
            &*c.gpu
                .gated_residual(op(&x, &l), op(&sc, &lm), op(&y, &l))
                .unwrap(),
        );
        let want = cpu_get(
            &*CpuBackend
                .gated_residual(op(&cx, &l), op(&csc, &lm), op(&cy, &l))
                .unwrap(),
        );
        assert_close(&c.name("gated_residual"), &got, &want, c.half);
    }
}

/// The VAE's volume ops: causal and symmetric conv3d (with bias and the
/// fused residual, 3x3x3 and 1x1x1 kernels), the channel RMS norm with and
/// without modulation and SiLU, and both sub-position orders of
/// depth-to-space (with the upsampler's dropped frame) and space-to-depth.
/// The conv reduces over up to 5*27 products in another order than the CPU's
/// GEMM: f32 rounding, far below the tolerance's absolute term.
#[test]
fn volume_ops_match_cpu() {
    let Some(gpu) = gpu_or_skip("volume_ops_match_cpu") else {
        return;
    };
    for c in Case::all(&gpu) {
        let (b, ci, co, t, h, w) = (2, 5, 6, 3, 5, 7);
        let lx = Layout::contiguous(&[b, ci, t, h, w]);
        let (x, cx) = c.put(&values(b * ci * t * h * w, 30));
        let (r, cr) = c.put(&values(b * co * t * h * w, 31));
        let lr = Layout::contiguous(&[b, co, t, h, w]);
        let (bias, cbias) = c.put(&values(co, 32));
        let lb = Layout::contiguous(&[co]);
        for (kernel, padding, with_residual) in [
            ([3, 3, 3], TimePadding::Causal, false),
            ([3, 3, 3], TimePadding::Symmetric, true),
            ([1, 1, 1], TimePadding::Causal, true),
        ] {
            let n = co * ci * kernel.iter().product::<usize>();
            let (wt, cwt) = c.put(&values(n, 33));
            let lw = Layout::contiguous(&[co, ci, kernel[0], kernel[1], kernel[2]]);
            let spec = Conv3dSpec {
                batch: b,
                in_channels: ci,
                out_channels: co,
                frames: t,
                height: h,
                width: w,
                kernel,
                time_padding: padding,
            };
            let gr = with_residual.then(|| op(&r, &lr));
            let crr = with_residual.then(|| op(&cr, &lr));
            let got = c.get(
                &*c.gpu
                    .conv3d(op(&x, &lx), op(&wt, &lw), Some(op(&bias, &lb)), gr, &spec)
                    .unwrap(),
            );
            let want = cpu_get(
                &*CpuBackend
                    .conv3d(
                        op(&cx, &lx),
                        op(&cwt, &lw),
                        Some(op(&cbias, &lb)),
                        crr,
                        &spec,
                    )
                    .unwrap(),
            );
            assert_close(
                &c.name(&format!("conv3d {kernel:?} {padding:?}")),
                &got,
                &want,
                c.half,
            );
        }

        let lm = Layout::contiguous(&[b, ci]);
        let (sc, csc) = c.put(&values(b * ci, 34));
        let (sh, csh) = c.put(&values(b * ci, 35));
        for (modulated, silu) in [(false, true), (true, true), (true, false)] {
            let gm = modulated.then(|| (op(&sc, &lm), op(&sh, &lm)));
            let cm = modulated.then(|| (op(&csc, &lm), op(&csh, &lm)));
            let got = c.get(
                &*c.gpu
                    .channel_rms_norm(op(&x, &lx), gm.map(|m| m.0), gm.map(|m| m.1), 1e-8, silu)
                    .unwrap(),
            );
            let want = cpu_get(
                &*CpuBackend
                    .channel_rms_norm(op(&cx, &lx), cm.map(|m| m.0), cm.map(|m| m.1), 1e-8, silu)
                    .unwrap(),
            );
            let what = format!("channel_rms_norm modulated {modulated} silu {silu}");
            assert_close(&c.name(&what), &got, &want, c.half);
        }

        // [2, 8, 2, 3, 2] <-> [2, 1, 4, 6, 4] by 2x2x2 blocks.
        let ld = Layout::contiguous(&[2, 8, 2, 3, 2]);
        let (d, cd) = c.put(&values(2 * 8 * 2 * 3 * 2, 36));
        for order in [SubOrder::TimeHeightWidth, SubOrder::TimeWidthHeight] {
            for drop in [0, 1] {
                let got = c.get(
                    &*c.gpu
                        .depth_to_space_3d(op(&d, &ld), [2, 2, 2], order, drop)
                        .unwrap(),
                );
                let want = cpu_get(
                    &*CpuBackend
                        .depth_to_space_3d(op(&cd, &ld), [2, 2, 2], order, drop)
                        .unwrap(),
                );
                assert_eq!(
                    got,
                    want,
                    "depth_to_space {order:?} drop {drop} [{}]",
                    c.dtype()
                );
            }
            let ls = Layout::contiguous(&[2, 1, 4, 6, 4]);
            for factors in [[2, 2, 2], [1, 2, 4], [2, 1, 1]] {
                let got = c.get(
                    &*c.gpu
                        .space_to_depth_3d(op(&d, &ls), factors, order)
                        .unwrap(),
                );
                let want = cpu_get(
                    &*CpuBackend
                        .space_to_depth_3d(op(&cd, &ls), factors, order)
                        .unwrap(),
                );
                assert_eq!(
                    got,
                    want,
                    "space_to_depth {factors:?} {order:?} [{}]",
                    c.dtype()
                );
            }
        }
    }
}

#[test]
fn attention_matches_cpu_for_self_and_masked_cross_attention() {
    let Some(gpu) = gpu_or_skip("attention_matches_cpu_for_self_and_masked_cross_attention") else {
        return;
    };
    for c in Case::all(&gpu) {
        for (batch, q_len, kv_len, heads, head_dim, masked) in [
            (1, 200, 200, 4, 64, false),
            (2, 130, 77, 3, 64, true),
            (1, 70, 129, 2, 128, true),
            // head dim 32: the cuBLAS reference path also in 16 bits
            (1, 50, 33, 2, 32, true),
        ] {
            let (q, cq) = c.put(&values(batch * q_len * heads * head_dim, 20));
            let (k, ck) = c.put(&values(batch * kv_len * heads * head_dim, 21));
            let (v, cv) = c.put(&values(batch * kv_len * heads * head_dim, 22));
            // padding mask as the reference applies it: -10000 on padded keys
            let bias: Vec<f32> = (0..batch * kv_len)
                .map(|i| {
                    if i % kv_len >= kv_len - 10 {
                        -10000.0
                    } else {
                        0.0
                    }
                })
                .collect();
            let gb = c.gpu.upload(CpuStorage::F32(bias.clone())).unwrap();
            let cb: Stored = Box::new(CpuStorage::F32(bias));
            let lq = Layout::contiguous(&[batch, q_len, heads, head_dim]);
            let lk = Layout::contiguous(&[batch, kv_len, heads, head_dim]);
            let lb = Layout::contiguous(&[batch, kv_len]);
            let spec = AttentionSpec {
                batch,
                q_len,
                kv_len,
                heads,
                head_dim,
                scale: 1.0 / (head_dim as f32).sqrt(),
            };
            let got = c.get(
                &*c.gpu
                    .attention(
                        op(&q, &lq),
                        op(&k, &lk),
                        op(&v, &lk),
                        masked.then(|| op(&gb, &lb)),
                        &spec,
                    )
                    .unwrap(),
            );
            let want = cpu_get(
                &*CpuBackend
                    .attention(
                        op(&cq, &lq),
                        op(&ck, &lk),
                        op(&cv, &lk),
                        masked.then(|| op(&cb, &lb)),
                        &spec,
                    )
                    .unwrap(),
            );
            let what = format!(
                "attention b{batch} q{q_len} kv{kv_len} h{heads} d{head_dim} via {}",
                c.gpu.attention_path(&spec, c.dtype())
            );
            assert_close(&c.name(&what), &got, &want, c.half);
        }
    }
}

#[test]
fn out_of_memory_and_non_finite_values_are_typed_errors() {
    let Some(gpu) = gpu_or_skip("out_of_memory_and_non_finite_values_are_typed_errors") else {
        return;
    };
    let (free, total) = gpu.device().mem_info().unwrap();
    let too_big = total / 2 * 3;
    match gpu.zeros(too_big, DType::F16) {
        Err(TensorError::OutOfMemory { msg, .. }) => {
            assert!(msg.contains(&format!("{} bytes", too_big * 2)), "{msg}");
            assert!(msg.contains("free"), "{msg}");
        }
        Err(other) => panic!("expected OutOfMemory, got {other}"),
        Ok(_) => panic!("{too_big} f16 values fit in {total} bytes?"),
    }
    // the device is still usable after the refusal
    let ok = gpu
        .upload(CpuStorage::F32(vec![1.0, f32::NAN, 3.0]))
        .unwrap();
    match gpu.check_finite("latents", &*ok) {
        Err(TensorError::Backend { msg, .. }) => {
            assert!(
                msg.contains("latents") && msg.contains("element 1"),
                "{msg}"
            )
        }
        other => panic!("expected a non-finite error, got {other:?}"),
    }
    let fine = gpu.upload(CpuStorage::F32(vec![1.0, 2.0])).unwrap();
    gpu.check_finite("latents", &*fine).unwrap();
    let _ = (free, CudaError::NoDriver(String::new()));
}

#[test]
fn weights_are_uploaded_once_in_the_cards_half_type() {
    let Some(gpu) = gpu_or_skip("weights_are_uploaded_once_in_the_cards_half_type") else {
        return;
    };
    let v = values(4099, 30);
    let a = gpu
        .upload_weight("test/w.safetensors:blocks.0.w", &CpuStorage::F32(v.clone()))
        .unwrap();
    let half = gpu.device().half();
    assert_eq!(a.dtype().size_in_bytes(), 2);
    let back = f32s(gpu.download(&*a).unwrap());
    assert_eq!(back, half.decode_vec(&half.encode_vec(&v)));
    // a second job asking for the same key gets the same buffer, no upload
    let other = CudaBackend::new(gpu.device().clone()).unwrap();
    let b = other
        .upload_weight(
            "test/w.safetensors:blocks.0.w",
            &CpuStorage::F32(vec![0.0; 4099]),
        )
        .unwrap();
    let pa = a
        .as_any()
        .downcast_ref::<genfx::backend::cuda::CudaStorage>()
        .unwrap()
        .ptr();
    let pb = b
        .as_any()
        .downcast_ref::<genfx::backend::cuda::CudaStorage>()
        .unwrap()
        .ptr();
    assert_eq!(pa, pb);
    gpu.device().evict_weights("test/");
    assert_eq!(gpu.device().cached_weights(), 0);
}

#[test]
fn noise_on_the_gpu_is_the_cpus_noise() {
    let Some(gpu) = gpu_or_skip("noise_on_the_gpu_is_the_cpus_noise") else {
        return;
    };
    // an unaligned start and length exercise the partial Philox groups
    for (seed, stream, start, len) in [(42u64, 0u64, 0u64, 4096usize), (7, 3, 1001, 777)] {
        let got = f32s(
            gpu.download(&*gpu.noise_normal(len, seed, stream, start).unwrap())
                .unwrap(),
        );
        let mut want = vec![0f32; len];
        genfx::sampler::noise::fill_normal(seed, stream, start, &mut want);
        // same counter, same arithmetic: only the last ulp of log/sin/cos
        // (fast-math on the GPU) may differ
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                "noise {seed}/{stream} element {i}: GPU {g} vs CPU {w}"
            );
        }
    }
}

/// The denoising step's ops (Euler update, guidance with rescale, timestep
/// features) on the GPU against the CPU, through tensors. The Euler update
/// and the guidance combination are the CPU's arithmetic operation for
/// operation (to f32 rounding: a GPU may fuse a multiply-add); the rescale
/// sums in another order (f32 partial sums per block, then f64), hence the
/// f32 tolerance. Velocities come in the card's 16-bit type as the model
/// makes them, rounded alike for the CPU.
#[test]
fn sampler_ops_on_the_gpu_match_the_cpu() {
    use genfx::backend::{Device, GuidanceSpec};
    use genfx::tensor::Tensor;
    let Some(gpu) = gpu_or_skip("sampler_ops_on_the_gpu_match_the_cpu") else {
        return;
    };
    let half = gpu.device().half();
    let dtype = match half {
        Half::Bf16 => DType::BF16,
        Half::F16 => DType::F16,
    };
    let (dev, cpu) = (Device::new(gpu.clone()), Device::cpu());
    let (tokens, channels) = (37usize, 16usize);
    let n = tokens * channels;
    let velocity = |seed| rounded(&values(n, seed), Some(half));
    let on = |v: &[f32], dims: &[usize], d: &Device| Tensor::from_slice(v, dims, d).unwrap();
    let host = |t: Tensor| t.to_vec_f32().unwrap();

    let x = values(n, 1);
    let v = velocity(2);
    let sigma: Vec<f32> = (0..tokens).map(|t| 0.9 - 0.01 * t as f32).collect();
    let next: Vec<f32> = sigma.iter().map(|s| s - 0.2).collect();
    let update: Vec<f32> = (0..tokens).map(|t| (t % 4 != 0) as u8 as f32).collect();
    let step = |d: &Device, v_dtype: DType| {
        host(
            on(&x, &[tokens, channels], d)
                .euler_step(
                    &on(&v, &[1, tokens, channels], d).to_dtype(v_dtype).unwrap(),
                    &on(&sigma, &[tokens], d),
                    &on(&next, &[tokens], d),
                    Some(&on(&update, &[tokens], d)),
                )
                .unwrap(),
        )
    };
    let want = step(&cpu, DType::F32);
    assert_close("euler_step", &step(&dev, dtype), &want, None);
    for t in (0..tokens).filter(|t| t % 4 == 0) {
        let frozen = t * channels..(t + 1) * channels;
        assert_eq!(
            step(&dev, dtype)[frozen.clone()],
            x[frozen],
            "a frozen token moved"
        );
    }

    let (u, c, p) = (velocity(3), velocity(4), velocity(5));
    let spec = GuidanceSpec {
        cfg: 3.0,
        stg: 1.0,
        rescale: 0.7,
    };
    for (uncond, perturbed) in [(true, true), (true, false), (false, true)] {
        let guide = |d: &Device, t_dtype: DType| {
            let t = |v: &[f32]| on(v, &[1, tokens, channels], d).to_dtype(t_dtype).unwrap();
            let (ut, pt) = (t(&u), t(&p));
            host(
                Tensor::guidance(
                    &t(&c),
                    uncond.then_some(&ut),
                    perturbed.then_some(&pt),
                    &spec,
                )
                .unwrap(),
            )
        };
        assert_close(
            &format!("guidance (uncond {uncond}, perturbed {perturbed})"),
            &guide(&dev, dtype),
            &guide(&cpu, DType::F32),
            None,
        );
    }

    let timesteps: Vec<f32> = (0..tokens).map(|t| 1000.0 - 27.0 * t as f32).collect();
    let features = |d: &Device| {
        genfx::models::ltx::transformer::embeddings::timestep_features(&timesteps, d)
            .unwrap()
            .to_vec_f32()
            .unwrap()
    };
    assert_close("timestep features", &features(&dev), &features(&cpu), None);
}
