//! The emulated driver must answer to the name cudarc asks the loader for.
//! glibc reuses an already loaded library whose soname equals the requested
//! name, so a test that loads this file by path first makes cudarc's later
//! `dlopen("libcuda.so")` find it instead of searching the disk.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libcuda.so");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
