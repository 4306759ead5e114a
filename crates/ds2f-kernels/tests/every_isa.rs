//! The one kernel test: every micro-kernel this CPU has ([`Isa::Scalar`] always, AVX2 and
//! AVX-512 where detected), through its driver, against the portable path (im2col + `gemm`),
//! on a table of convolution shapes that reach every branch of the drivers (pixel tails,
//! several reduction blocks, partial micro-panels, strides, dilations, groups, concatenated
//! inputs, narrow images, split weight gradients). Every instruction set adds the same
//! products in the same order, so their results must be bitwise equal; the portable path
//! adds them in another order, so it must agree within rounding.
use ds2f_kernels::conv::{self, im2col, implicit_gemm, weight_grad};
use ds2f_kernels::{Epilogue, Geometry, Isa, Problem, test_values as values};

/// One kernel computation on a case: `run(isa)` with each instruction set, `portable()` the
/// reference, equal within `tolerance` relative to the reference's largest magnitude.
struct Check<'a> {
    name: String,
    run: Box<dyn Fn(Isa) -> Vec<f32> + 'a>,
    portable: Box<dyn Fn() -> Vec<f32> + 'a>,
    tolerance: f32,
}

/// Runs `check` with every instruction set of this CPU: all bitwise equal, and within the
/// tolerance of the portable path.
fn check_every_isa(check: &Check) {
    let reference = (check.portable)();
    let scale = reference
        .iter()
        .fold(0.0f32, |m, v| m.max(v.abs()))
        .max(1e-12);
    let mut first: Option<(Isa, Vec<f32>)> = None;
    for isa in Isa::available() {
        let ours = (check.run)(isa);
        assert_eq!(
            ours.len(),
            reference.len(),
            "{}: {isa:?} length",
            check.name
        );
        let err = ours
            .iter()
            .zip(&reference)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            err <= check.tolerance * scale,
            "{}: {isa:?} is {err} off (of {scale})",
            check.name
        );
        match &first {
            None => first = Some((isa, ours)),
            Some((other, expected)) => assert!(
                &ours == expected,
                "{}: {isa:?} differs from {other:?}",
                check.name
            ),
        }
    }
}

/// A forward case: (n, channels of each input part, cout, [h, w], [kh, kw], stride, pad,
/// dilation, groups).
type ForwardCase = (
    usize,
    &'static [usize],
    usize,
    [usize; 2],
    [usize; 2],
    usize,
    usize,
    usize,
    usize,
);

/// A weight-gradient case: (n, cin, cout, [h, w], kernel, stride, pad, dilation).
type WeightCase = (usize, usize, usize, [usize; 2], usize, usize, usize, usize);

#[test]
fn every_kernel_this_cpu_has_equals_the_portable_path() {
    let forward_cases: &[ForwardCase] = &[
        // First U-Net layer, odd sizes: pixel tails in every micro-tile row.
        (2, &[3], 64, [37, 41], [3, 3], 1, 1, 1, 1),
        // K = 576 in three reduction blocks, 48-pixel tiles across rows.
        (2, &[64], 64, [33, 50], [3, 3], 1, 1, 1, 1),
        // Pointwise, K = 300 (two blocks), 20 outputs (a partial micro-panel).
        (2, &[300], 20, [9, 11], [1, 1], 1, 0, 1, 1),
        // One output channel (a segmentation head); a 1×1 image.
        (2, &[32], 1, [13, 7], [3, 3], 1, 1, 1, 1),
        (2, &[16], 16, [1, 1], [3, 3], 1, 1, 1, 1),
        // Rows narrower than a tile (several rows per tile).
        (1, &[5], 12, [20, 9], [3, 3], 1, 1, 1, 1),
        // A decoder's concatenation of two parts; a block boundary inside a channel.
        (1, &[40, 24], 16, [17, 40], [3, 3], 1, 1, 1, 1),
        // Stride 2 with a 5×5 kernel; dilation 2 (MS-Conv's branches).
        (2, &[16], 12, [21, 30], [5, 5], 2, 2, 1, 1),
        (1, &[8], 8, [19, 23], [3, 3], 1, 2, 2, 1),
        // A non-square kernel, no padding; grouped.
        (3, &[5], 9, [10, 12], [2, 3], 1, 0, 1, 1),
        (2, &[16], 24, [17, 18], [3, 3], 1, 1, 1, 4),
        // Many rows (several row jobs per image), grouped; several pixel chunks per image.
        (1, &[16], 24, [140, 66], [3, 3], 1, 1, 1, 4),
        (1, &[32], 40, [96, 131], [3, 3], 1, 1, 1, 1),
    ];
    for (case, &(n, parts, cout, [h, w], [kh, kw], s, pad, d, groups)) in
        forward_cases.iter().enumerate()
    {
        let cin: usize = parts.iter().sum();
        let xs: Vec<Vec<f32>> = parts
            .iter()
            .enumerate()
            .map(|(i, &c)| values(n * c * h * w, 10 * case as u64 + i as u64))
            .collect();
        let whole: Vec<f32> = (0..n)
            .flat_map(|img| {
                xs.iter()
                    .zip(parts)
                    .flat_map(move |(x, &c)| x[img * c * h * w..][..c * h * w].to_vec())
            })
            .collect();
        let x: Vec<&[f32]> = xs.iter().map(Vec::as_slice).collect();
        let weight = values(cout * cin / groups * kh * kw, 99 + case as u64);
        let scale = values(cout, 5);
        let shift = values(cout, 7);
        let g = Geometry::new([h, w], [kh, kw], [s, s], [pad, pad], [d, d]);
        let problem = Problem {
            x: &x,
            part_channels: parts,
            n,
            cin,
            weight: &weight,
            cout,
            groups,
        };
        let whole_parts = [whole.as_slice()];
        let single = Problem {
            x: &whole_parts,
            part_channels: &[cin],
            ..problem
        };
        for epilogue in [
            Epilogue::default(),
            Epilogue {
                scale: Some(&scale),
                shift: Some(&shift),
                relu: case % 2 == 0,
            },
        ] {
            let readings: &[bool] = if s == 1 { &[false, true] } else { &[false] };
            for &direct in readings {
                check_every_isa(&Check {
                    name: format!("forward case {case}, direct {direct}, {epilogue:?}"),
                    run: Box::new(|isa| {
                        implicit_gemm::conv_forward_with(&problem, &g, epilogue, direct, isa)
                    }),
                    portable: Box::new(|| {
                        conv::forward(&single, &g, &epilogue, conv::Kernel::Im2colGemm)
                    }),
                    tolerance: 2e-6,
                });
            }
        }
    }

    let weight_cases: &[WeightCase] = &[
        (1, 32, 8, [13, 17], 3, 1, 1, 1),
        (2, 64, 64, [33, 50], 3, 1, 1, 1),
        // Several jobs per image and more jobs than parts.
        (3, 32, 16, [200, 131], 3, 1, 1, 1),
        (1, 32, 24, [21, 30], 5, 2, 2, 1),
        (2, 32, 8, [19, 23], 3, 1, 2, 2),
        (2, 64, 40, [9, 11], 1, 1, 0, 1),
        (1, 32, 8, [1, 1], 3, 1, 1, 1),
        (1, 32, 8, [8, 9], 2, 2, 0, 1),
        // Narrow images (several rows per micro-kernel call), dW split over eight
        // output-channel ranges.
        (2, 256, 128, [6, 7], 3, 1, 1, 1),
        (3, 512, 256, [4, 5], 3, 1, 1, 1),
        // Ranges of one and two micro-tiles (12 tiles in 8 ranges), several jobs.
        (2, 512, 96, [40, 9], 3, 1, 1, 1),
        (1, 64, 16, [11, 20], 3, 2, 1, 1),
    ];
    for (case, &(n, cin, cout, [h, w], k, s, p, d)) in weight_cases.iter().enumerate() {
        let g = Geometry::new([h, w], [k, k], [s, s], [p, p], [d, d]);
        let x = values(n * cin * h * w, 1 + case as u64);
        let dy = values(n * cout * g.ho * g.wo, 100 + case as u64);
        check_every_isa(&Check {
            name: format!("weight gradient case {case}"),
            run: Box::new(|isa| weight_grad::weight_grad_with(&x, &dy, n, cin, cout, &g, isa)),
            portable: Box::new(|| im2col::gemm_weight_grad(&x, &dy, n, cin, cout, 1, &g)),
            tolerance: 1e-5,
        });
    }
}
