//! Runs the CUDA kernels of `kernels/*.cu` on the CPU: the same sources,
//! compiled as C++ against the SIMT emulation header (`emu/simt.h`), launched
//! by name with the grid and block the CUDA backend uses.
//!
//! A test-only crate: it is a dev-dependency of the engine, so normal builds
//! never compile the emulated kernels.
//!
//! Every buffer handed to a kernel is bounds-checked on each access, shared
//! memory is race-checked between barriers, and a barrier that not every
//! thread reaches ends the launch with an error naming the kernel and block.

use std::ffi::{c_char, c_int, c_void, CString};

pub mod device;
use std::fmt;

/// Element types a buffer can hold; the kernel's parameter type must match.
pub trait Element: Copy + 'static {
    const CODE: i32;
}
macro_rules! element {
    ($t:ty, $code:expr) => {
        impl Element for $t {
            const CODE: i32 = $code;
        }
    };
}
element!(f32, 0);
element!(half::bf16, 1);
element!(half::f16, 2);
element!(u8, 3);
element!(u16, 4);
element!(i32, 5);
element!(u32, 6);
element!(f64, 7);

/// A borrowed buffer; made only by [`input`], [`output`] and [`null`], so its
/// pointer and length always describe a live slice.
pub struct Buffer<'a> {
    name: &'static str,
    code: i32,
    data: *const c_void,
    bytes: usize,
    writable: bool,
    _borrow: std::marker::PhantomData<&'a mut [u8]>,
}

/// One kernel argument, in the order of the kernel's parameters.
pub enum Arg<'a> {
    Buffer(Buffer<'a>),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    F32(f32),
    F64(f64),
    /// A struct passed by value (e.g. a strided view), as its raw bytes.
    Bytes(&'a [u8]),
}

/// A buffer the kernel only reads (a `dptr<const T>` parameter).
pub fn input<'a, T: Element>(name: &'static str, data: &'a [T]) -> Arg<'a> {
    Arg::Buffer(Buffer {
        name,
        code: T::CODE,
        data: data.as_ptr().cast(),
        bytes: std::mem::size_of_val(data),
        writable: false,
        _borrow: std::marker::PhantomData,
    })
}

/// A buffer the kernel may write (a `dptr<T>` parameter).
pub fn output<'a, T: Element>(name: &'static str, data: &'a mut [T]) -> Arg<'a> {
    Arg::Buffer(Buffer {
        name,
        code: T::CODE,
        data: data.as_mut_ptr().cast_const().cast(),
        bytes: std::mem::size_of_val(data),
        writable: true,
        _borrow: std::marker::PhantomData,
    })
}

/// A null pointer (an optional input left out).
pub fn null<'a>() -> Arg<'a> {
    Arg::Buffer(Buffer {
        name: "null",
        code: 0,
        data: std::ptr::null(),
        bytes: 0,
        writable: false,
        _borrow: std::marker::PhantomData,
    })
}

/// Grid, block and dynamic shared memory of one launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub shared_mem_bytes: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmuError {
    /// The kernel ran and faulted: out-of-bounds or misaligned access, a
    /// shared-memory race, a divergent barrier. The message names the kernel,
    /// block and thread.
    Fault(String),
    /// Refused before running: unknown kernel, arguments that do not match
    /// its parameters, an impossible launch shape.
    BadLaunch(String),
}

impl fmt::Display for EmuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmuError::Fault(m) => write!(f, "kernel fault: {m}"),
            EmuError::BadLaunch(m) => write!(f, "bad launch: {m}"),
        }
    }
}
impl std::error::Error for EmuError {}

#[repr(C)]
struct RawArg {
    kind: i32,
    elem: i32,
    writable: i32,
    reserved: i32,
    data: *const c_void,
    bytes: u64,
    name: *const c_char,
    i: i64,
    u: u64,
    f: f64,
}

extern "C" {
    fn genfx_simt_launch(
        module: *const c_char,
        kernel: *const c_char,
        grid: *const u32,
        block: *const u32,
        dynamic_smem: u64,
        args: *const RawArg,
        nargs: u64,
        error: *mut c_char,
        error_capacity: u64,
    ) -> c_int;
    fn genfx_simt_kernel_names(out: *mut c_char, capacity: u64) -> u64;
    fn genfx_simt_module_kernels(out: *mut c_char, capacity: u64) -> u64;
    fn genfx_simt_kernel_params(
        module: *const c_char,
        kernel: *const c_char,
        out: *mut ParamInfo,
        capacity: u64,
    ) -> i64;
    fn genfx_simt_launch_raw(
        module: *const c_char,
        kernel: *const c_char,
        grid: *const u32,
        block: *const u32,
        dynamic_smem: u64,
        params: *const *const c_void,
        resolve: ResolveFn,
        resolve_ctx: *mut c_void,
        execute: c_int,
        error: *mut c_char,
        error_capacity: u64,
    ) -> c_int;
}

/// One kernel parameter as `cuLaunchKernel` reads it; mirrors
/// `simt::ParamInfo`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamInfo {
    /// Bytes behind the parameter's pointer in `kernelParams`.
    pub size: u32,
    /// 1 for a device pointer (8 bytes, resolved to its allocation).
    pub pointer: u32,
}

type ResolveFn = unsafe extern "C" fn(*mut c_void, u64, *mut u64, *mut u64) -> c_int;

/// A live device allocation: base address and length in bytes.
pub type Allocation = (u64, u64);

fn message_of(error: &[c_char]) -> String {
    let bytes: Vec<u8> = error
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn lines_of(f: unsafe extern "C" fn(*mut c_char, u64) -> u64) -> Vec<String> {
    // SAFETY: with a null buffer and zero capacity the call only reports the
    // length it needs.
    let needed = unsafe { f(std::ptr::null_mut(), 0) };
    let mut buf = vec![0 as c_char; needed as usize];
    // SAFETY: `buf` holds `needed` bytes, the capacity passed.
    unsafe { f(buf.as_mut_ptr(), buf.len() as u64) };
    message_of(&buf).lines().map(str::to_owned).collect()
}

/// Every kernel as `(module, kernel)`: the module is the source file stem
/// (`attention` for `kernels/attention.cu`).
pub fn module_kernels() -> Vec<(String, String)> {
    lines_of(genfx_simt_module_kernels)
        .into_iter()
        .filter_map(|l| {
            l.split_once(' ')
                .map(|(m, k)| (m.to_string(), k.to_string()))
        })
        .collect()
}

/// The parameter list of `module`'s `kernel`, or `None` when the emulator
/// has no such kernel.
pub fn kernel_params(module: &str, kernel: &str) -> Option<Vec<ParamInfo>> {
    let (m, k) = (CString::new(module).ok()?, CString::new(kernel).ok()?);
    let mut out = vec![
        ParamInfo {
            size: 0,
            pointer: 0
        };
        64
    ];
    // SAFETY: `out` holds 64 entries, the capacity passed; the names are
    // NUL-terminated strings alive for the call.
    let n = unsafe { genfx_simt_kernel_params(m.as_ptr(), k.as_ptr(), out.as_mut_ptr(), 64) };
    if n < 0 {
        return None;
    }
    if n as usize > out.len() {
        out.resize(
            n as usize,
            ParamInfo {
                size: 0,
                pointer: 0,
            },
        );
        // SAFETY: as above, with the larger buffer.
        unsafe { genfx_simt_kernel_params(m.as_ptr(), k.as_ptr(), out.as_mut_ptr(), n as u64) };
    }
    out.truncate(n as usize);
    Some(out)
}

/// Resolves device addresses for [`launch_raw`].
pub trait Resolver {
    /// The allocation that holds `addr`, if any is live.
    fn resolve(&self, addr: u64) -> Option<Allocation>;
}

unsafe extern "C" fn resolve_trampoline<R: Resolver>(
    ctx: *mut c_void,
    addr: u64,
    base: *mut u64,
    bytes: *mut u64,
) -> c_int {
    // SAFETY: `ctx` is the `&R` that `launch_raw` passed, alive for the
    // launch; `base` and `bytes` point to the emulator's locals.
    let r = unsafe { &*(ctx as *const R) };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| r.resolve(addr))) {
        Ok(Some((b, n))) => {
            // SAFETY: see above.
            unsafe {
                *base = b;
                *bytes = n;
            }
            1
        }
        _ => 0,
    }
}

/// Runs `module`'s `kernel` with `params` laid out as `cuLaunchKernel`
/// receives them (one pointer per parameter, to its value). Device pointers
/// among them are bounded by the allocation `resolver` finds for them; one
/// that lies in no allocation refuses the launch. With `execute` false the
/// arguments and the launch shape are checked and nothing runs.
///
/// # Safety
/// `params` must hold one valid pointer per kernel parameter (as many as
/// [`kernel_params`] lists), each to at least that parameter's size in bytes;
/// every allocation the resolver reports must be memory this process may
/// read and write for its whole length while the kernel runs.
pub unsafe fn launch_raw<R: Resolver>(
    module: &str,
    kernel: &str,
    dims: Dims,
    params: *const *const c_void,
    resolver: &R,
    execute: bool,
) -> Result<(), EmuError> {
    let m =
        CString::new(module).map_err(|_| EmuError::BadLaunch("module name holds a NUL".into()))?;
    let k =
        CString::new(kernel).map_err(|_| EmuError::BadLaunch("kernel name holds a NUL".into()))?;
    let mut error = vec![0 as c_char; 4096];
    // SAFETY: forwarded to the caller for `params` and the allocations; the
    // resolver context is `resolver`, alive for the call, and matches the
    // trampoline's type parameter; `error` holds its capacity.
    let rc = unsafe {
        genfx_simt_launch_raw(
            m.as_ptr(),
            k.as_ptr(),
            dims.grid.as_ptr(),
            dims.block.as_ptr(),
            u64::from(dims.shared_mem_bytes),
            params,
            resolve_trampoline::<R>,
            resolver as *const R as *mut c_void,
            c_int::from(execute),
            error.as_mut_ptr(),
            error.len() as u64,
        )
    };
    match rc {
        0 => Ok(()),
        1 => Err(EmuError::Fault(message_of(&error))),
        _ => Err(EmuError::BadLaunch(message_of(&error))),
    }
}

/// Runs `kernel` with `dims` on the emulator; returns when every block has
/// finished. The name must be defined by one module only; [`launch_in`]
/// names the module.
pub fn launch(kernel: &str, dims: Dims, args: &mut [Arg<'_>]) -> Result<(), EmuError> {
    launch_args(None, kernel, dims, args)
}

/// Runs `module`'s `kernel` (the module is the source file stem, as in
/// [`module_kernels`]); for names that several modules define, such as
/// `gated_residual_bf16` of `norm` and of `tensor_ops`.
pub fn launch_in(
    module: &str,
    kernel: &str,
    dims: Dims,
    args: &mut [Arg<'_>],
) -> Result<(), EmuError> {
    launch_args(Some(module), kernel, dims, args)
}

fn launch_args(
    module: Option<&str>,
    kernel: &str,
    dims: Dims,
    args: &mut [Arg<'_>],
) -> Result<(), EmuError> {
    let module = module
        .map(CString::new)
        .transpose()
        .map_err(|_| EmuError::BadLaunch("module name holds a NUL".into()))?;
    let name =
        CString::new(kernel).map_err(|_| EmuError::BadLaunch("kernel name holds a NUL".into()))?;
    let mut names = Vec::with_capacity(args.len());
    for a in args.iter() {
        if let Arg::Buffer(b) = a {
            names.push(
                CString::new(b.name)
                    .map_err(|_| EmuError::BadLaunch("buffer name holds a NUL".into()))?,
            );
        } else {
            names.push(CString::default());
        }
    }
    let raw: Vec<RawArg> = args
        .iter()
        .zip(&names)
        .map(|(a, n)| {
            let mut r = RawArg {
                kind: 0,
                elem: 0,
                writable: 0,
                reserved: 0,
                data: std::ptr::null(),
                bytes: 0,
                name: n.as_ptr(),
                i: 0,
                u: 0,
                f: 0.0,
            };
            match *a {
                Arg::Buffer(ref b) => {
                    r.elem = b.code;
                    r.data = b.data;
                    r.bytes = b.bytes as u64;
                    r.writable = i32::from(b.writable);
                }
                Arg::I32(v) => (r.kind, r.i) = (1, i64::from(v)),
                Arg::U32(v) => (r.kind, r.u) = (2, u64::from(v)),
                Arg::I64(v) => (r.kind, r.i) = (3, v),
                Arg::U64(v) => (r.kind, r.u) = (4, v),
                Arg::F32(v) => (r.kind, r.f) = (5, f64::from(v)),
                Arg::F64(v) => (r.kind, r.f) = (6, v),
                Arg::Bytes(b) => {
                    (r.kind, r.data, r.bytes) = (7, b.as_ptr().cast(), b.len() as u64);
                }
            }
            r
        })
        .collect();
    let mut error = vec![0 as c_char; 4096];
    // SAFETY: every pointer in `raw` points into a slice borrowed by `args`
    // (mutably where `writable`), alive for this call; the emulator checks
    // every access against the byte length given with it, writes only to
    // buffers marked writable, and writes at most `error.len()` bytes
    // (NUL-terminated) into `error`. The name strings outlive the call; a
    // null module pointer is allowed and means "the module that has it".
    let rc = unsafe {
        genfx_simt_launch(
            module.as_ref().map_or(std::ptr::null(), |m| m.as_ptr()),
            name.as_ptr(),
            dims.grid.as_ptr(),
            dims.block.as_ptr(),
            u64::from(dims.shared_mem_bytes),
            raw.as_ptr(),
            raw.len() as u64,
            error.as_mut_ptr(),
            error.len() as u64,
        )
    };
    match rc {
        0 => Ok(()),
        1 => Err(EmuError::Fault(message_of(&error))),
        _ => Err(EmuError::BadLaunch(message_of(&error))),
    }
}

/// Every kernel the emulator can launch (the shipped ones and its self-tests),
/// once per module that defines it; [`module_kernels`] says which.
pub fn kernel_names() -> Vec<String> {
    lines_of(genfx_simt_kernel_names)
}
