//! The memory guard on a GPU, through the emulated device made a small
//! card (`memory`): the full-size shot (768x512x121, LTX-Video 2B + 0.9.5
//! VAE + T5-XXL, configs only) is refused on a 4 GB card with both figures
//! in the message, before anything large is allocated, and passes on the
//! 10 GB card the dry run of tests/gpu_memory_plan.rs fits it in. Its own
//! test binary: the emulator's settings are global to the process.

#[path = "../benches/common/gpu_plan.rs"]
#[allow(unused)]
mod plan;

mod memory_guard_common;
use memory_guard_common::{avail, full_shot, full_size};

mod gpu_common;

use std::sync::Arc;

use genfx::backend::Device;
use genfx::engine::EngineError;
use genfx::pipeline::memory_guard::{self, human, HostAvailable, Resident};

fn open(emu: &gpu_common::EmulatedDevice, card_bytes: u64) -> Device {
    emu.set("memory", &card_bytes.to_string()).unwrap();
    let gpu = genfx::backend::cuda::GpuDevice::get(None)
        .and_then(genfx::backend::cuda::CudaBackend::new)
        .expect("the emulated device opens");
    Device::new(Arc::new(gpu))
}

#[test]
fn a_full_size_shot_is_refused_on_a_4_gb_card_and_fits_a_10_gb_one() {
    let Some(emu) = gpu_common::emulator() else {
        return; // a real card has the memory it has
    };
    let plenty = HostAvailable {
        bytes: 200_000_000_000,
        source: "test".into(),
    };
    let device = open(emu, 4_000_000_000);
    emu.reset_counters();
    let dtype = device.compute_dtype();
    let (free, total) = device
        .memory_info()
        .expect("the emulated card reports memory");
    assert_eq!(total, 4_000_000_000);
    for batch in [1, 2] {
        let err = memory_guard::check(
            &full_size(),
            &full_shot(batch),
            &device,
            dtype,
            Resident::default(),
            &avail(Some(free as u64), &plenty),
        )
        .unwrap_err();
        println!("{err}");
        let EngineError::OutOfMemory(text) = &err else {
            panic!("{err:?}")
        };
        assert!(
            text.contains(&format!("and {} is free there", human(free as u64))),
            "{text}"
        );
        assert!(text.contains("of GPU memory on"), "{text}");
        let need: f64 = text
            .split("needs about ")
            .nth(1)
            .and_then(|t| t.split(" GB").next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no GB figure in {text}"));
        assert!(need > 6.3, "{text}"); // more than the weights alone
                                       // the weights alone (6.3 GB) outgrow this card: a smaller shot
                                       // would not help, the CPU would
        assert!(
            text.contains("the transformer and VAE alone take 6.3 GB there"),
            "{text}"
        );
        for advice in [
            "close other GPU work",
            "GENFX_DEVICE=cpu",
            "GB of memory there",
        ] {
            assert!(text.contains(advice), "{text}");
        }
    }
    // nothing was allocated for the refused job
    let c = emu.counters();
    assert!(c.peak_bytes < 64 << 20, "{} bytes allocated", c.peak_bytes);

    drop(device);

    // T5-XXL (9.5 GB in bf16) cannot fit an 8 GB card, which holds the
    // transformer and VAE for a small shot: the engine encodes on the CPU
    // instead, in f32, and a host without room for that refuses
    let device = open(emu, 8_000_000_000);
    let (free, _) = device.memory_info().unwrap();
    let small_host = HostAvailable {
        bytes: 16_000_000_000,
        source: "test".into(),
    };
    let mut small_job = full_shot(1);
    small_job.width = 256;
    small_job.height = 256;
    small_job.frames = 9;
    let err = memory_guard::check(
        &full_size(),
        &small_job,
        &device,
        dtype,
        Resident::default(),
        &avail(Some(free as u64), &small_host),
    )
    .unwrap_err();
    println!("{err}");
    assert!(
        err.to_string().contains("16.0 GB is available (test)"),
        "{err}"
    );
    assert!(err.to_string().contains("T5 on the CPU"), "{err}");
    // with the host's room, the card takes the rest of the job
    memory_guard::check(
        &full_size(),
        &small_job,
        &device,
        dtype,
        Resident::default(),
        &avail(Some(free as u64), &plenty),
    )
    .expect("a small shot fits an 8 GB card with T5 on the CPU");
    drop(device);

    // the 10 GB card of the dry run holds it
    let device = open(emu, plan::CARD_BYTES);
    let (free, _) = device.memory_info().unwrap();
    let est = memory_guard::check(
        &full_size(),
        &full_shot(1),
        &device,
        dtype,
        Resident::default(),
        &avail(Some(free as u64), &plenty),
    )
    .expect("the distilled shot fits a 10 GB card");
    println!("{est:?}");
}
