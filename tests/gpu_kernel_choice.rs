//! Which kernel serves an op on which card, read from the emulated driver's
//! launches by kernel name, with the result checked against the CPU on each
//! path: the VAE's conv3d runs on tensor cores (`conv3d_mma_ncdhw_*`) for
//! 16-bit data from Ampere on, and on the f32 FMA kernel (`conv3d_ncdhw_*`)
//! for f32 data and on older cards; a biased matmul (a Linear) is one
//! cuBLASLt GEMM with the bias in its epilogue and no kernel launch, and
//! falls back to copying the bias into the output before a cuBLAS GEMM (one
//! launch more) where cuBLASLt cannot be used or the bias is not 16-byte
//! aligned.
//!
//! The emulated card's compute capability is a process-wide setting, so the
//! tests here take turns and open their own device for each card. On a real
//! card (`cargo xtask test-gpu`) nothing can be switched: each test runs its
//! op on the card as it is and checks the result only.

mod gpu_common;

use std::sync::Arc;

use genfx::backend::cuda::probe::Libraries;
use genfx::backend::cuda::{CudaBackend, GpuDevice, Half};
use genfx::backend::{
    Backend, BackendStorage, Conv3dSpec, CpuBackend, CpuStorage, MatStrides, MatmulSpec, Operand,
    TimePadding,
};
use genfx::tensor::{DType, Layout};
use gpu_common::{assert_close, emulator, gpu_or_skip, rounded, values, EmulatedDevice};
use parking_lot::{Mutex, MutexGuard};

type Stored = Box<dyn BackendStorage>;

/// The emulator for one test at a time, its settings restored afterwards.
struct Turn {
    emu: &'static EmulatedDevice,
    _turn: MutexGuard<'static, ()>,
}

impl Turn {
    fn take() -> Option<Turn> {
        static TURN: Mutex<()> = Mutex::new(());
        let emu = emulator()?;
        let turn = TURN.lock();
        emu.set("reset", "").unwrap();
        Some(Turn { emu, _turn: turn })
    }

    /// A device opened afresh on an emulated card of capability `cc`.
    fn card(&self, cc: &str) -> Arc<CudaBackend> {
        self.emu.set("cc", cc).unwrap();
        let dev = Arc::new(GpuDevice::open(0, Libraries::detect()).unwrap());
        Arc::new(CudaBackend::new(dev).unwrap())
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let _ = self.emu.set("reset", "");
    }
}

fn dtype_of(half: Option<Half>) -> DType {
    match half {
        None => DType::F32,
        Some(Half::Bf16) => DType::BF16,
        Some(Half::F16) => DType::F16,
    }
}

/// The same values on the GPU (in `half`, or f32) and the CPU (f32 holding
/// exactly what the GPU stores).
fn put(gpu: &CudaBackend, v: &[f32], half: Option<Half>) -> (Stored, Stored) {
    let exact = rounded(v, half);
    let up = gpu.upload(CpuStorage::F32(exact.clone())).unwrap();
    let l = Layout::contiguous(&[v.len()]);
    let on_gpu = gpu.to_dtype(op(&up, &l), dtype_of(half)).unwrap();
    (on_gpu, Box::new(CpuStorage::F32(exact)))
}

fn f32s(s: CpuStorage) -> Vec<f32> {
    match s {
        CpuStorage::F32(v) => v,
        CpuStorage::BF16(v) => v.iter().map(|x| x.to_f32()).collect(),
        CpuStorage::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
        CpuStorage::Mapped(m) => m.view().widen(0, m.view().len()),
    }
}

fn op<'a>(s: &'a Stored, l: &'a Layout) -> Operand<'a> {
    Operand {
        storage: &**s,
        layout: l,
    }
}

/// A causal 3x3x3 conv with bias and residual whose voxels (2 * 3 * 9 * 11
/// = 594) and channels (70) leave partial tiles, on `gpu` in `half`, against
/// the CPU.
fn conv3d_matches_cpu(gpu: &CudaBackend, half: Option<Half>, what: &str) {
    let (b, ci, co, t, h, w) = (2, 7, 70, 3, 9, 11);
    let spec = Conv3dSpec {
        batch: b,
        in_channels: ci,
        out_channels: co,
        frames: t,
        height: h,
        width: w,
        kernel: [3, 3, 3],
        time_padding: TimePadding::Causal,
    };
    let lx = Layout::contiguous(&[b, ci, t, h, w]);
    let lw = Layout::contiguous(&[co, ci, 3, 3, 3]);
    let lb = Layout::contiguous(&[co]);
    let ly = Layout::contiguous(&[b, co, t, h, w]);
    let (x, cx) = put(gpu, &values(b * ci * t * h * w, 60), half);
    let scaled: Vec<f32> = values(co * ci * 27, 61).iter().map(|v| v * 0.1).collect();
    let (wt, cwt) = put(gpu, &scaled, half);
    let (bias, cbias) = put(gpu, &values(co, 62), half);
    let (r, cr) = put(gpu, &values(b * co * t * h * w, 63), half);
    let got = gpu
        .conv3d(
            op(&x, &lx),
            op(&wt, &lw),
            Some(op(&bias, &lb)),
            Some(op(&r, &ly)),
            &spec,
        )
        .unwrap();
    let got = f32s(gpu.download(&*got).unwrap());
    let want = CpuBackend
        .conv3d(
            op(&cx, &lx),
            op(&cwt, &lw),
            Some(op(&cbias, &lb)),
            Some(op(&cr, &ly)),
            &spec,
        )
        .unwrap();
    let want = f32s(CpuBackend.download(&*want).unwrap());
    assert_close(what, &got, &want, half);
}

#[test]
fn conv3d_runs_on_tensor_cores_from_ampere_and_on_fma_before() {
    let Some(turn) = Turn::take() else {
        // a real card: the op's result on whatever path the card takes
        let Some(gpu) = gpu_or_skip("conv3d_runs_on_tensor_cores_from_ampere_and_on_fma_before")
        else {
            return;
        };
        let half = gpu.device().half();
        conv3d_matches_cpu(&gpu, Some(half), "conv3d on this card");
        return;
    };
    // (card, data type, the kernel that must run)
    let cases = [
        ("9.0", Some(Half::Bf16), "conv3d_mma_ncdhw_bf16"),
        ("8.0", Some(Half::Bf16), "conv3d_mma_ncdhw_bf16"),
        ("9.0", Some(Half::F16), "conv3d_mma_ncdhw_f16"),
        ("9.0", None, "conv3d_ncdhw_f32"),
        ("7.5", Some(Half::F16), "conv3d_ncdhw_f16"),
    ];
    let all = [
        "conv3d_mma_ncdhw_bf16",
        "conv3d_mma_ncdhw_f16",
        "conv3d_ncdhw_bf16",
        "conv3d_ncdhw_f16",
        "conv3d_ncdhw_f32",
    ];
    for (cc, half, kernel) in cases {
        let gpu = turn.card(cc);
        if cc == "7.5" {
            assert_eq!(gpu.device().half(), Half::F16, "Turing computes in f16");
        }
        let before: Vec<u64> = all.iter().map(|k| turn.emu.kernel_launches(k)).collect();
        let what = format!("conv3d on sm_{} in {}", cc.replace('.', ""), dtype_of(half));
        conv3d_matches_cpu(&gpu, half, &what);
        for (k, was) in all.iter().zip(before) {
            let launched = turn.emu.kernel_launches(k) - was;
            let expected = u64::from(*k == kernel);
            assert_eq!(launched, expected, "{what}: launches of {k}");
        }
        println!("{what}: {kernel}");
    }
}

/// A Linear on `gpu`: x `[batch, m, k]` times a weight `[n, k]` read
/// transposed and shared across the batch, plus the bias at element
/// `bias_offset` of its buffer; checked against the CPU. Returns the
/// emulator's (launches, GEMMs) for the matmul alone.
fn linear_matches_cpu(
    gpu: &CudaBackend,
    emu: Option<&EmulatedDevice>,
    bias_offset: usize,
    what: &str,
) -> (u64, u64) {
    let (batch, m, k, n) = (2, 37, 72, 65);
    let half = Some(gpu.device().half());
    let (x, cx) = put(gpu, &values(batch * m * k, 70), half);
    let (wt, cwt) = put(gpu, &values(n * k, 71), half);
    let (bias, cbias) = put(gpu, &values(bias_offset + n, 72), half);
    let lb = Layout::new(vec![n], vec![1], bias_offset).unwrap();
    let spec = MatmulSpec {
        batch,
        m,
        n,
        k,
        lhs: MatStrides {
            offset: 0,
            batch: m * k,
            row: k,
            col: 1,
        },
        rhs: MatStrides {
            offset: 0,
            batch: 0,
            row: 1,
            col: k,
        },
    };
    let before = emu.map(|e| e.counters());
    let got = gpu.matmul(&*x, &*wt, Some(op(&bias, &lb)), &spec).unwrap();
    let counts = match (emu, before) {
        (Some(e), Some(b)) => {
            let d = e.counters().since(&b);
            (d.launches, d.gemms)
        }
        _ => (0, 0),
    };
    let got = f32s(gpu.download(&*got).unwrap());
    let want = CpuBackend
        .matmul(&*cx, &*cwt, Some(op(&cbias, &lb)), &spec)
        .unwrap();
    let want = f32s(CpuBackend.download(&*want).unwrap());
    assert_close(what, &got, &want, half);
    counts
}

#[test]
fn a_linear_adds_its_bias_in_the_gemm_epilogue() {
    let Some(turn) = Turn::take() else {
        let Some(gpu) = gpu_or_skip("a_linear_adds_its_bias_in_the_gemm_epilogue") else {
            return;
        };
        linear_matches_cpu(&gpu, None, 0, "biased matmul on this card");
        return;
    };
    let gpu = turn.card("9.0");
    let fused = linear_matches_cpu(&gpu, Some(turn.emu), 0, "bias in the cuBLASLt epilogue");
    assert_eq!(
        fused,
        (0, 1),
        "(launches, GEMMs) of a Linear through cuBLASLt"
    );
    // a bias view 2 bytes past a 16-byte boundary: cuBLASLt's vector loads
    // cannot take it, so the copy-then-accumulate path runs
    let unaligned = linear_matches_cpu(&gpu, Some(turn.emu), 1, "unaligned bias, copied first");
    assert_eq!(
        unaligned,
        (1, 1),
        "(launches, GEMMs) with the bias copied first"
    );
    // a machine where cuBLASLt cannot be used: same result, one launch more
    turn.emu.set("cublaslt", "0").unwrap();
    let gpu = turn.card("9.0");
    let copied = linear_matches_cpu(&gpu, Some(turn.emu), 0, "no cuBLASLt, bias copied first");
    assert_eq!(copied, (1, 1), "(launches, GEMMs) without cuBLASLt");
    println!("a Linear: {fused:?} (launches, GEMMs) fused, {copied:?} without cuBLASLt");
}
