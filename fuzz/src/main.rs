//! The libFuzzer binary of every target in [`genfx_fuzz::targets`]:
//! `GENFX_FUZZ_TARGET` names the one to run (`cargo xtask fuzz NAME` sets
//! it, builds this crate with SanitizerCoverage and passes the corpus and
//! limits). A panic, an abort, an allocation over the limit or a hang is a
//! finding; a parser's `Err` is not.

#![no_main]

mod alloc_limit;

use std::sync::OnceLock;

use genfx_fuzz::targets;

/// The target this process runs, from `GENFX_FUZZ_TARGET`.
fn target() -> targets::Target {
    static TARGET: OnceLock<targets::Target> = OnceLock::new();
    *TARGET.get_or_init(|| {
        let name = std::env::var("GENFX_FUZZ_TARGET").unwrap_or_default();
        targets::by_name(&name).unwrap_or_else(|| {
            eprintln!(
                "genfx-fuzz: GENFX_FUZZ_TARGET={name:?} names no target; targets: {}",
                targets::NAMES.join(", ")
            );
            std::process::exit(2)
        })
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    target()(data);
});
