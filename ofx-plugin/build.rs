//! Marks the Linux plug-in binary as never unloadable (`-z nodelete`).
//!
//! Rust's standard library registers per-thread destructors (thread handles,
//! thread-locals) that live in this binary. A host that `dlclose`s the plug-in
//! while its threads live on would later run those destructors in unmapped
//! code and crash at thread exit. With NODELETE, `dlclose` leaves the code
//! mapped; hosts only unload plug-ins at exit anyway. (macOS never unloads an
//! image with thread-locals, so nothing is needed there.)

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" || os == "android" || os.ends_with("bsd") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    }
}
