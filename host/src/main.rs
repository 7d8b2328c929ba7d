//! `genfx`: list and render OpenFX bundles headless; run GenFX jobs directly.

/// The allocator the plugin and `genfx` use (why: the workspace Cargo.toml).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(genfx_host::cli::main(std::env::args().skip(1).collect()));
}
