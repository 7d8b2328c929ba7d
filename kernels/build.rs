//! Compiles every kernel source (`*.cu` here and the emulator's self-test
//! kernels) as C++17 against the SIMT emulation header, with optimisation
//! even in debug builds: the emulator runs thousands of fibers per launch.

use std::path::{Path, PathBuf};

fn main() {
    let dir =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let mut kernels: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("kernels/ is readable")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "cu"))
        .collect();
    kernels.sort();
    kernels.push(dir.join("emu/selftest.cu"));

    // One archive, so the shim's references to each file's registration
    // function resolve whatever the link order. Sources are compiled as C++
    // through `-x c++`, so they keep their .cu names.
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++17")
        .opt_level(2)
        .debug(false)
        .define("GENFX_SIMT", None)
        .include(&dir)
        .flag("-x")
        .flag("c++")
        .flag_if_supported("-Wno-unused-parameter")
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true)
        .file(dir.join("emu/simt.cpp"))
        .file(dir.join("emu/shim.cpp"));
    for k in &kernels {
        build.file(k);
    }
    build.compile("genfx_simt");

    rerun_for_dir(&dir);
    rerun_for_dir(&dir.join("emu"));
}

fn rerun_for_dir(dir: &Path) {
    println!("cargo:rerun-if-changed={}", dir.display());
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.extension()
                .is_some_and(|x| x == "cu" || x == "cuh" || x == "h" || x == "cpp")
            {
                println!("cargo:rerun-if-changed={}", p.display());
            }
        }
    }
}
