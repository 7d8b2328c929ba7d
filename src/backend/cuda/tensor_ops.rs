//! The backend's own generic kernels (`kernels/tensor_ops.cu`) and their
//! argument types. The source is embedded by build.rs like every kernel file
//! (with PTX when nvcc was found), so the same kernels also run in the SIMT
//! emulator; NVRTC compiles them for the device at first use otherwise.

use std::sync::LazyLock;

use cudarc::driver::DeviceRepr;

use super::modules::ModuleSource;
use crate::kernels;

/// The `tensor_ops` module as the backend loads it; its name is the kernel
/// file's stem, as for every module of `kernels/`.
pub static TENSOR_OPS: LazyLock<ModuleSource> = LazyLock::new(|| {
    let module = kernels::module("tensor_ops")
        .expect("build.rs embeds every kernels/*.cu, kernels/tensor_ops.cu among them");
    ModuleSource {
        name: module.name,
        source: module.source,
        ptx: module.ptx,
        options: &[],
    }
});

/// Highest rank a strided operand may have.
pub const MAX_RANK: usize = 8;

/// A strided view passed by value to a kernel; mirrors `struct Strided` in
/// `kernels/tensor_ops.cu` field for field (144 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StridedArg {
    pub rank: i32,
    pub pad: i32,
    pub offset: i64,
    pub dims: [i64; MAX_RANK],
    pub strides: [i64; MAX_RANK],
}

// SAFETY: plain old data with the C layout the kernel declares.
unsafe impl DeviceRepr for StridedArg {}

impl StridedArg {
    /// `None` when the rank exceeds [`MAX_RANK`].
    pub fn new(dims: &[usize], strides: &[usize], offset: usize) -> Option<Self> {
        if dims.len() > MAX_RANK || dims.len() != strides.len() {
            return None;
        }
        let mut arg = StridedArg {
            rank: dims.len() as i32,
            pad: 0,
            offset: offset as i64,
            dims: [1; MAX_RANK],
            strides: [0; MAX_RANK],
        };
        for (i, (&d, &s)) in dims.iter().zip(strides).enumerate() {
            arg.dims[i] = d as i64;
            arg.strides[i] = s as i64;
        }
        Some(arg)
    }

    /// Row-major contiguous view of `dims` starting at `offset`.
    pub fn contiguous(dims: &[usize], offset: usize) -> Option<Self> {
        let mut strides = vec![0; dims.len()];
        let mut acc = 1;
        for (s, d) in strides.iter_mut().zip(dims).rev() {
            *s = acc;
            acc *= d;
        }
        Self::new(dims, &strides, offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cuda::nvrtc;
    use crate::backend::cuda::probe::Libraries;
    use crate::backend::cuda::CudaError;

    #[test]
    fn strided_arg_matches_the_c_layout() {
        assert_eq!(std::mem::size_of::<StridedArg>(), 8 + 8 + 8 * 8 * 2);
        let a = StridedArg::contiguous(&[2, 3, 4], 5).unwrap();
        assert_eq!(a.rank, 3);
        assert_eq!(a.offset, 5);
        assert_eq!(&a.strides[..3], &[12, 4, 1]);
        assert!(StridedArg::new(&[1; 9], &[1; 9], 0).is_none());
        assert!(StridedArg::new(&[1, 2], &[1], 0).is_none());
    }

    /// Every target architecture must compile without a warning. Runs
    /// wherever NVRTC is installed (`cargo xtask test` installs it and sets
    /// GENFX_NVRTC_LIB); in CI (`CI=true`) or with GENFX_REQUIRE_NVRTC set,
    /// its absence is a failure.
    #[test]
    fn tensor_ops_compile_for_every_target_with_nvrtc() {
        for arch in ["sm_80", "sm_89", "sm_90"] {
            let opts = nvrtc::base_options(arch);
            match nvrtc::compile(TENSOR_OPS.name, TENSOR_OPS.source, &opts) {
                Ok((cubin, log)) => {
                    assert!(!cubin.is_empty());
                    assert!(log.trim().is_empty(), "NVRTC warnings for {arch}:\n{log}");
                }
                Err(CudaError::Nvrtc(msg)) if !Libraries::detect().nvrtc => {
                    let required = std::env::var_os("GENFX_REQUIRE_NVRTC").is_some()
                        || std::env::var("CI").is_ok_and(|v| v == "true");
                    assert!(!required, "NVRTC is required here but missing: {msg}");
                    eprintln!("NVRTC not installed: kernels/tensor_ops.cu not compiled ({msg})");
                    return;
                }
                Err(e) => panic!("kernels/tensor_ops.cu for {arch}: {e}"),
            }
        }
    }
}
