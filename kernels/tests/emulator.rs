//! Pins the emulator's semantics with the self-test kernels in
//! `emu/selftest.cu`: barriers, warp shuffles and votes, the MMA and ldmatrix
//! fragment layouts against a plain matmul, cp.async groups, atomics, and the
//! checks (bounds, races, divergent barriers).

use genfx_kernels_emu::{input, launch, output, Arg, Dims, EmuError};
use half::{bf16, f16};

fn dims(grid: u32, block: u32) -> Dims {
    Dims {
        grid: [grid, 1, 1],
        block: [block, 1, 1],
        shared_mem_bytes: 0,
    }
}

fn fault(r: Result<(), EmuError>) -> String {
    match r {
        Err(EmuError::Fault(m)) => m,
        other => panic!("expected a kernel fault, got {other:?}"),
    }
}

#[test]
fn barrier_orders_shared_memory_across_rounds() {
    let (blocks, n) = (3u32, 96usize);
    let mut out = vec![0i32; blocks as usize * 2 * n];
    launch(
        "selftest_barrier",
        dims(blocks, n as u32),
        &mut [output("out", &mut out)],
    )
    .unwrap();
    for b in 0..blocks as usize {
        for round in 0..2 {
            for t in 0..n {
                let expect = ((t + 1) % n) as i32 + 1000 * round as i32 + 100_000 * b as i32;
                assert_eq!(
                    out[(b * 2 + round) * n + t],
                    expect,
                    "block {b} round {round} thread {t}"
                );
            }
        }
    }
}

#[test]
fn shuffles_and_votes_follow_cuda_semantics() {
    let n = 64usize;
    let mut out = vec![0i32; n * 8];
    launch(
        "selftest_shuffle",
        dims(1, n as u32),
        &mut [output("out", &mut out)],
    )
    .unwrap();
    for t in 0..n {
        let lane = t % 32;
        let warp0 = t - lane;
        let v = |l: usize| 100 + (warp0 + l) as i32;
        let o = &out[t * 8..t * 8 + 8];
        assert_eq!(o[0], v(3), "shfl idx, thread {t}");
        assert_eq!(o[1], v(lane ^ 5), "shfl xor, thread {t}");
        assert_eq!(
            o[2],
            if lane + 1 < 32 { v(lane + 1) } else { v(lane) },
            "shfl down, thread {t}"
        );
        assert_eq!(
            o[3],
            if lane >= 2 { v(lane - 2) } else { v(lane) },
            "shfl up, thread {t}"
        );
        assert_eq!(o[4] as u32, 0xaaaa_aaaa, "ballot, thread {t}");
        assert_eq!(o[5], 1, "any");
        assert_eq!(o[6], 1, "all");
        assert_eq!(o[7], v((lane & !7) + 2), "shfl width 8, thread {t}");
    }
}

fn check_mma<T: genfx_kernels_emu::Element>(kernel: &str, from: impl Fn(f32) -> T) {
    // Small integers and halves: exact in 16 bits and in the f32 sums.
    let a: Vec<f32> = (0..256)
        .map(|i| ((i * 7 % 13) as f32 - 6.0) / 4.0)
        .collect();
    let b: Vec<f32> = (0..128)
        .map(|i| ((i * 5 % 11) as f32 - 5.0) / 2.0)
        .collect();
    let a16: Vec<T> = a.iter().map(|&x| from(x)).collect();
    let b16: Vec<T> = b.iter().map(|&x| from(x)).collect();
    for mode in 0..2 {
        let mut d = vec![0f32; 128];
        launch(
            kernel,
            dims(1, 32),
            &mut [
                input("a", &a16),
                input("b", &b16),
                output("d", &mut d),
                Arg::I32(mode),
            ],
        )
        .unwrap();
        for i in 0..16 {
            for j in 0..8 {
                let expect: f32 = (0..16).map(|k| a[i * 16 + k] * b[k * 8 + j]).sum();
                assert_eq!(d[i * 8 + j], expect, "{kernel} mode {mode} D[{i}][{j}]");
            }
        }
    }
}

#[test]
fn mma_and_ldmatrix_fragments_match_plain_matmul() {
    check_mma("selftest_mma_bf16", bf16::from_f32);
    check_mma("selftest_mma_f16", f16::from_f32);
}

#[test]
fn cp_async_lands_at_wait_group() {
    let src: Vec<f32> = (0..16).map(|i| i as f32).collect();
    let mut out = vec![0f32; 6];
    launch(
        "selftest_cp_async",
        dims(1, 2),
        &mut [input("src", &src), output("out", &mut out)],
    )
    .unwrap();
    // wait<1> completes the first group only; the second lands at wait<0>.
    assert_eq!(out, vec![0.0, 4.0, -1.0, -1.0, 8.0, 12.0]);
}

#[test]
fn reusing_a_tile_for_cp_async_without_a_barrier_is_a_race() {
    let n = 64usize;
    let src: Vec<f32> = (0..2 * n * 4).map(|i| i as f32).collect();
    let mut out = vec![0f32; 2 * n];
    let m = fault(launch(
        "selftest_cp_async_reuse",
        dims(1, n as u32),
        &mut [input("src", &src), output("out", &mut out), Arg::I32(0)],
    ));
    assert!(
        m.contains("shared-memory race (write after read") && m.contains("'tile'"),
        "{m}"
    );
    launch(
        "selftest_cp_async_reuse",
        dims(1, n as u32),
        &mut [input("src", &src), output("out", &mut out), Arg::I32(1)],
    )
    .unwrap();
    for t in 0..n {
        assert_eq!(out[t], (((t + 1) % n) * 4) as f32);
        assert_eq!(out[n + t], (n * 4 + ((t + 1) % n) * 4) as f32);
    }
}

#[test]
fn atomics_are_atomic_across_blocks() {
    let mut counter = vec![0i32; 2];
    let mut sum = vec![0f32; 1];
    launch(
        "selftest_atomics",
        dims(8, 64),
        &mut [output("counter", &mut counter), output("sum", &mut sum)],
    )
    .unwrap();
    assert_eq!(counter, vec![512, 511]);
    assert_eq!(sum[0], 256.0);
}

#[test]
fn block_sum_reduces_over_warps() {
    let x: Vec<f32> = (0..4 * 256).map(|i| (i % 17) as f32).collect();
    let mut out = vec![0f32; 4];
    launch(
        "selftest_block_sum",
        dims(4, 256),
        &mut [input("x", &x), output("out", &mut out)],
    )
    .unwrap();
    for b in 0..4 {
        let expect: f32 = x[b * 256..(b + 1) * 256].iter().sum();
        assert_eq!(out[b], expect);
    }
}

#[test]
fn global_out_of_bounds_names_kernel_block_thread_and_offset() {
    let mut out = vec![0f32; 8];
    let m = fault(launch(
        "selftest_global_oob",
        dims(3, 32),
        &mut [output("out", &mut out), Arg::I32(8), Arg::I32(7)],
    ));
    assert!(m.contains("kernel 'selftest_global_oob'"), "{m}");
    assert!(
        m.contains("block (2,0,0)") && m.contains("thread (7,0,0)"),
        "{m}"
    );
    assert!(
        m.contains("out-of-bounds write") && m.contains("byte offset 32") && m.contains("'out'"),
        "{m}"
    );
    // In bounds, the same kernel runs clean.
    launch(
        "selftest_global_oob",
        dims(3, 32),
        &mut [output("out", &mut out), Arg::I32(7), Arg::I32(7)],
    )
    .unwrap();
    assert_eq!(out[7], 1.0);
}

#[test]
fn shared_out_of_bounds_is_reported() {
    let mut out = vec![0f32; 1];
    let m = fault(launch(
        "selftest_shared_oob",
        dims(1, 32),
        &mut [output("out", &mut out), Arg::I32(32)],
    ));
    assert!(
        m.contains("out-of-bounds read")
            && m.contains("shared buffer 's'")
            && m.contains("thread (5,0,0)"),
        "{m}"
    );
    launch(
        "selftest_shared_oob",
        dims(1, 32),
        &mut [output("out", &mut out), Arg::I32(31)],
    )
    .unwrap();
}

#[test]
fn divergent_barrier_is_reported_not_hung() {
    let mut out = vec![0i32; 64];
    let m = fault(launch(
        "selftest_divergent",
        dims(2, 64),
        &mut [output("out", &mut out), Arg::I32(16)],
    ));
    assert!(
        m.contains("kernel 'selftest_divergent' block (0,0,0)") || m.contains("block (1,0,0)"),
        "{m}"
    );
    assert!(
        m.contains("divergent barrier") && m.contains("48 of 64 threads wait"),
        "{m}"
    );
    launch(
        "selftest_divergent",
        dims(2, 64),
        &mut [output("out", &mut out), Arg::I32(0)],
    )
    .unwrap();
}

#[test]
fn missing_barrier_is_a_reported_race() {
    let mut out = vec![0f32; 64];
    let m = fault(launch(
        "selftest_race",
        dims(1, 64),
        &mut [output("out", &mut out), Arg::I32(0)],
    ));
    assert!(m.contains("shared-memory race") && m.contains("'s'"), "{m}");
    launch(
        "selftest_race",
        dims(1, 64),
        &mut [output("out", &mut out), Arg::I32(1)],
    )
    .unwrap();
    for (t, &v) in out.iter().enumerate() {
        assert_eq!(v, ((t + 1) % 64) as f32);
    }
    let m = fault(launch(
        "selftest_war_race",
        dims(1, 64),
        &mut [output("out", &mut out), Arg::I32(0)],
    ));
    assert!(m.contains("write after read"), "{m}");
    launch(
        "selftest_war_race",
        dims(1, 64),
        &mut [output("out", &mut out), Arg::I32(1)],
    )
    .unwrap();
    assert!(out.iter().all(|&v| v == 3.0));
}

#[test]
fn mismatched_arguments_are_refused() {
    let mut out = vec![0f32; 64];
    let r = launch(
        "selftest_barrier",
        dims(1, 64),
        &mut [output("out", &mut out)],
    );
    assert!(
        matches!(r, Err(EmuError::BadLaunch(ref m)) if m.contains("wrong element type")),
        "{r:?}"
    );
    let x = vec![0i32; 64];
    let r = launch("selftest_barrier", dims(1, 64), &mut [input("out", &x)]);
    assert!(
        matches!(r, Err(EmuError::BadLaunch(ref m)) if m.contains("read-only")),
        "{r:?}"
    );
    let r = launch("no_such_kernel", dims(1, 1), &mut []);
    assert!(matches!(r, Err(EmuError::BadLaunch(_))), "{r:?}");
    let mut y = vec![0i32; 64];
    let r = launch(
        "selftest_barrier",
        dims(1, 2048),
        &mut [output("out", &mut y)],
    );
    assert!(
        matches!(r, Err(EmuError::BadLaunch(ref m)) if m.contains("block size")),
        "{r:?}"
    );
}
