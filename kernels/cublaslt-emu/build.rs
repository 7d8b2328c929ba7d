//! Answers to cudarc's first cuBLASLt name; see kernels/cuda-emu/build.rs.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libcublasLt.so");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
