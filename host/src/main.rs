//! `genfx`: list and render OpenFX bundles headless; run GenFX jobs directly.
fn main() {
    std::process::exit(genfx_host::cli::main(std::env::args().skip(1).collect()));
}
