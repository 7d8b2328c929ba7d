//! The full-size distilled shot (768x512x121) as the two-pass recipe runs
//! it when the published latent upsampler is present (first pass at
//! 480x320, the 0.9.8 spatial upscaler, refinement and decode at 960x640;
//! synthetic weights) in the engine's order on an emulated 10 GB card in
//! dry-run mode: it must finish, and its peak device memory stay within
//! 10e9 bytes. Its own test binary: the emulator is one per process and
//! dry-run is global.

#[path = "../benches/common/gpu_plan.rs"]
mod plan;

mod gpu_common;

#[test]
fn the_two_pass_shot_fits_a_10_gb_card() {
    let Some(emu) = gpu_common::emulator() else {
        return; // a real card: the dry run is the emulator's
    };
    let device = plan::open_device(emu, plan::CARD_BYTES).expect("the emulated device");
    let report = plan::run_two_pass(&device, emu, plan::CARD_BYTES)
        .expect("the two-pass shot runs on a 10 GB card");
    println!("{}\n{}", report.summary, report.json);
    assert_eq!(report.refused, 0, "{}", emu.last_error());
    assert!(
        report.peak_bytes <= 10_000_000_000,
        "peak {} bytes",
        report.peak_bytes
    );
}
