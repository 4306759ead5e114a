//! Microbenchmarks of the convolution kernels alone (no burn): the forward pass of a 3×3
//! convolution with each SIMD instruction set of this CPU (patches packed, rows read in place)
//! and with im2col + `gemm`, and its weight gradient likewise. Prints the median of a few runs
//! and GFLOP/s (2 FLOPs per multiply-accumulate).
//!
//! `cargo bench -p ds2f-kernels` (release profile); `DS2F_BENCH=C,N,H,W` sets the channels
//! (in = out), batch and image size (default `64,1,256,256`). The scalar kernels are left out
//! (a portable fallback, far slower: tests/every_isa.rs checks them). The user-facing
//! comparison with PyTorch is `ds2f bench` (bench/compare.sh).
use ds2f_kernels::conv::{im2col, implicit_gemm, weight_grad};
use ds2f_kernels::{Epilogue, Geometry, Isa, Problem, test_values};
use std::time::Instant;

/// The median wall time of `runs` calls of `f` after one warm-up call, in seconds.
fn median(runs: usize, mut f: impl FnMut() -> Vec<f32>) -> f64 {
    std::hint::black_box(f());
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(f());
            started.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[runs / 2]
}

fn main() {
    let dims: Vec<usize> = std::env::var("DS2F_BENCH")
        .ok()
        .map(|v| v.split(',').filter_map(|d| d.trim().parse().ok()).collect())
        .filter(|d: &Vec<usize>| d.len() == 4)
        .unwrap_or_else(|| vec![64, 1, 256, 256]);
    let (c, n, h, w) = (dims[0], dims[1], dims[2], dims[3]);
    let g = Geometry::new([h, w], [3, 3], [1, 1], [1, 1], [1, 1]);
    let x = test_values(n * c * h * w, 1);
    let weight = test_values(c * c * 9, 2);
    let dy = test_values(n * c * g.ho * g.wo, 3);
    let problem = Problem {
        x: &[&x],
        part_channels: &[c],
        n,
        cin: c,
        weight: &weight,
        cout: c,
        groups: 1,
    };
    let gflop = 2.0 * (n * c * c * 9 * g.ho * g.wo) as f64 / 1e9;
    let report = |name: &str, seconds: f64| {
        println!(
            "{name:<34} {:>8.2} ms {:>7.1} GFLOP/s",
            seconds * 1e3,
            gflop / seconds
        );
    };
    println!("3×3 convolution, {c} → {c} channels, batch {n}, {h}×{w}");
    let runs = 5;
    for isa in Isa::available().into_iter().filter(|i| i.is_simd()) {
        for direct in [false, true] {
            let name = format!(
                "forward {isa:?} {}",
                if direct { "rows in place" } else { "packed" }
            );
            let t = median(runs, || {
                implicit_gemm::conv_forward_with(&problem, &g, Epilogue::default(), direct, isa)
            });
            report(&name, t);
        }
    }
    report(
        "forward im2col + gemm",
        median(runs, || im2col::forward(&problem, &g)),
    );
    if c.is_multiple_of(32) && c.is_multiple_of(8) {
        for isa in Isa::available().into_iter().filter(|i| i.is_simd()) {
            let t = median(runs, || {
                weight_grad::weight_grad_with(&x, &dy, n, c, c, &g, isa)
            });
            report(&format!("weight gradient {isa:?}"), t);
        }
    }
    report(
        "weight gradient im2col + gemm",
        median(runs, || im2col::gemm_weight_grad(&x, &dy, n, c, c, 1, &g)),
    );
}
