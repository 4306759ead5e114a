//! Every fixture the ds2f tests wrote: tract's output has ds2f's shape and values within the
//! case's tolerance (1e-4 for the exported U-Net at two input sizes).
use onnx_check::{fixture_dir, max_abs_diff, read_cases, run};

#[test]
fn tract_reproduces_ds2f_on_every_fixture() {
    let dir = fixture_dir();
    let cases = read_cases(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert!(!cases.is_empty(), "{}: no cases", dir.display());
    let mut failures = Vec::new();
    for case in &cases {
        let (got, shape) = run(&case.model, &case.input, &case.input_shape)
            .unwrap_or_else(|e| panic!("{}: tract failed: {e:?}", case.name));
        let worst = max_abs_diff(&got, &case.expected);
        eprintln!(
            "{}: output {shape:?}, max abs diff {worst:e} (tolerance {:e})",
            case.name, case.tolerance
        );
        if shape != case.expected_shape || worst > case.tolerance {
            failures.push(format!(
                "{}: shape {shape:?} (ds2f {:?}), max abs diff {worst:e}",
                case.name, case.expected_shape
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn the_difference_counts_nan_as_a_failure() {
    assert_eq!(max_abs_diff(&[1.0, 2.0], &[1.0, 2.5]), 0.5);
    assert_eq!(max_abs_diff(&[f32::NAN], &[0.0]), f32::INFINITY);
}
