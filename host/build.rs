//! Compiles the C shims for the host's variadic OpenFX entry points.
fn main() {
    println!("cargo:rerun-if-changed=csrc/varargs.c");
    cc::Build::new()
        .file("csrc/varargs.c")
        .warnings(true)
        .compile("genfx_host_varargs");
}
