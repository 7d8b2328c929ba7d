//! Every embedded kernel module compiles with NVRTC for sm_80, sm_89 and
//! sm_90 with no error and no warning, and every kernel it defines is one the
//! emulator runs in the same module (so no compiled kernel escapes the
//! emulated tests; names like `gated_residual_bf16` exist in two modules).
//!
//! NVRTC comes from the `nvidia-cuda-nvrtc` wheel that `cargo xtask test`
//! installs into `.tools/cuda` (or `GENFX_NVRTC_LIB` names the library). In CI
//! (`CI=true`) a missing NVRTC fails the test; elsewhere it is reported as
//! skipped.

use std::ffi::{c_char, CString};

use genfx::kernels::{ARCHS, MODULES};

/// Options the CUDA backend compiles with (plus the architecture).
const OPTIONS: [&str; 2] = ["--std=c++17", "--use_fast_math"];

fn to_string(chars: &[c_char]) -> String {
    let bytes: Vec<u8> = chars
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Compiles one module for one architecture: Ok(ptx) when NVRTC succeeded
/// without a word, else the log.
fn compile(name: &str, source: &str, arch: &str) -> Result<String, String> {
    use cudarc::nvrtc::result as nvrtc;
    let src = CString::new(source).map_err(|_| "source holds a NUL".to_string())?;
    let cname = CString::new(name).map_err(|_| "name holds a NUL".to_string())?;
    let mut options: Vec<String> = vec![format!("--gpu-architecture={arch}")];
    options.extend(OPTIONS.iter().map(|s| s.to_string()));
    let prog = nvrtc::create_program(&src, Some(&cname))
        .map_err(|e| format!("nvrtcCreateProgram: {e:?}"))?;
    // SAFETY: `prog` was just created and is destroyed once below; the
    // options are NUL-free strings that live across the call.
    let compiled = unsafe { nvrtc::compile_program(prog, &options) };
    // SAFETY: `prog` is a live program; the log exists after compiling.
    let log = unsafe { nvrtc::get_program_log(prog) }
        .map(|l| to_string(&l))
        .unwrap_or_default();
    let result = match compiled {
        Err(e) => Err(format!("{e:?}\n{log}")),
        Ok(()) if !log.trim().is_empty() => Err(format!("warnings:\n{log}")),
        // SAFETY: compilation succeeded, so the program holds PTX.
        Ok(()) => unsafe { nvrtc::get_ptx(prog) }
            .map(|p| to_string(&p))
            .map_err(|e| format!("nvrtcGetPTX: {e:?}")),
    };
    // SAFETY: `prog` is live and not used after this.
    let _ = unsafe { nvrtc::destroy_program(prog) };
    result
}

fn entries(ptx: &str) -> Vec<String> {
    ptx.lines()
        .filter_map(|l| l.split(".entry ").nth(1))
        .map(|rest| rest.split(['(', ' ']).next().unwrap_or("").to_string())
        .collect()
}

#[test]
fn every_kernel_compiles_with_nvrtc_for_every_arch_without_warnings() {
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    let Some(lib) = genfx_kernels_emu::device::nvrtc_library().filter(|p| p.exists()) else {
        assert!(
            !in_ci,
            "NVRTC is not installed: `cargo xtask test` installs it into .tools/cuda"
        );
        eprintln!(
            "skipped: no NVRTC (run `cargo xtask test` to install it, or set GENFX_NVRTC_LIB)"
        );
        return;
    };
    // Loaded by full path first, so that cudarc's load by name finds this
    // copy (the dynamic loader matches the soname).
    // SAFETY: loading NVRTC runs only its own initialisers; the handle is kept
    // for the life of the process.
    let library = unsafe { libloading::Library::new(&lib) }
        .unwrap_or_else(|e| panic!("cannot load {}: {e}", lib.display()));
    std::mem::forget(library);

    let emulated: Vec<(String, String)> = genfx_kernels_emu::module_kernels()
        .into_iter()
        .filter(|(m, _)| m != "selftest")
        .collect();
    // One thread per module: NVRTC compiles independent programs concurrently.
    let results: Vec<(&str, String, Result<String, String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = MODULES
            .iter()
            .flat_map(|module| ARCHS.iter().map(move |&arch| (module, arch)))
            .map(|(module, arch)| {
                scope.spawn(move || {
                    let what = format!("kernels/{}.cu for {arch}", module.name);
                    (module.name, what, compile(module.name, module.source, arch))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("compile thread panicked"))
            .collect()
    });
    let mut compiled_kernels = Vec::new();
    let mut failures = Vec::new();
    for (module, what, result) in results {
        match result {
            Ok(ptx) => {
                let names = entries(&ptx);
                assert!(!names.is_empty(), "{what}: no kernels in the PTX");
                compiled_kernels.extend(names.into_iter().map(|k| (module.to_string(), k)));
            }
            Err(log) => failures.push(format!("{what}: {log}")),
        }
    }
    assert!(failures.is_empty(), "NVRTC:\n{}", failures.join("\n\n"));
    compiled_kernels.sort();
    compiled_kernels.dedup();
    for (m, k) in &compiled_kernels {
        assert!(
            emulated.contains(&(m.clone(), k.clone())),
            "kernel {k} of kernels/{m}.cu compiles for the GPU but the emulator does not run it"
        );
    }
    for (m, k) in &emulated {
        assert!(
            compiled_kernels.contains(&(m.clone(), k.clone())),
            "emulated kernel {k} is not in the compiled kernels/{m}.cu"
        );
    }
}
