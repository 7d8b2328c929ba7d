//! The full-size shot (768x512x121, distilled, LTX-Video 2B + T5-XXL +
//! 0.9.5 VAE with synthetic weights) in the engine's order on an emulated
//! 10 GB card in dry-run mode: it must finish, and its peak device memory
//! stay within 10e9 bytes (issue 12, item 5). The flow is the one
//! `cargo xtask bench gpu-plan` prints (benches/common/gpu_plan.rs). Its own
//! test binary: the emulator is one per process and dry-run is global.

#[path = "../benches/common/gpu_plan.rs"]
mod plan;

mod gpu_common;

use genfx::engine::Quality;
use genfx::pipeline::model_folder::Variant;

#[test]
fn the_distilled_shot_fits_a_10_gb_card() {
    let Some(emu) = gpu_common::emulator() else {
        return; // a real card: the dry run is the emulator's
    };
    let device = plan::open_device(emu, plan::CARD_BYTES).expect("the emulated device");
    let report = plan::run_preset(
        &device,
        emu,
        "distilled",
        Variant::Distilled,
        Quality::Standard,
        plan::CARD_BYTES,
    )
    .expect("the shot runs on a 10 GB card");
    println!("{}\n{}", report.summary, report.json);
    assert_eq!(report.refused, 0, "{}", emu.last_error());
    assert!(
        report.peak_bytes <= 10_000_000_000,
        "peak {} bytes",
        report.peak_bytes
    );
    // the decode, with the transformer and VAE resident, leaves headroom
    let decode = report.json["decode_peak_device_bytes"].as_u64().unwrap();
    assert!(decode <= 9_000_000_000, "decode peak {decode} bytes");
}
