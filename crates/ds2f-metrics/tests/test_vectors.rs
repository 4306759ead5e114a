//! Checks against `metric_binary` of the shared reference test vectors (float32 reference
//! code, so compared at 1e-6 relative).

use ds2f_metrics::{ConfusionMatrix, Evaluation, Metric, Scores};

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/data/test_vectors.json"
);

fn load() -> serde_json::Value {
    let text = std::fs::read_to_string(VECTORS).unwrap_or_else(|e| panic!("{VECTORS}: {e}"));
    serde_json::from_str(&text).expect("valid JSON")
}

/// Truth/pred pixels realising `rows[true][pred]`.
fn pixels(rows: &[Vec<u64>]) -> (Vec<u8>, Vec<u8>) {
    let (mut truth, mut pred) = (Vec::new(), Vec::new());
    for (t, row) in rows.iter().enumerate() {
        for (p, &n) in row.iter().enumerate() {
            truth.extend(std::iter::repeat_n(t as u8, n as usize));
            pred.extend(std::iter::repeat_n(p as u8, n as usize));
        }
    }
    (truth, pred)
}

fn check(scores: &Scores, reference: &serde_json::Value, label: &str) {
    for metric in Metric::ALL {
        let key = if metric == Metric::Accuracy {
            "acc"
        } else {
            metric.name()
        };
        let want = reference[key]
            .as_f64()
            .unwrap_or_else(|| panic!("missing {key}"));
        let got = scores.get(metric);
        // float32 reference: 1e-6 relative, 1e-7 absolute (bm is a difference near 0.036).
        let tol = 1e-6 * want.abs() + 1e-7;
        assert!(
            (got - want).abs() <= tol,
            "{label}: {key} = {got}, reference {want}"
        );
    }
}

#[test]
fn metric_binary_matches_reference() {
    let all = load();
    let reference = &all["metric_binary"];
    let rows: Vec<Vec<u64>> = reference["confusion_matrix_rows_true_cols_pred"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as u64)
                .collect()
        })
        .collect();
    assert_eq!(rows, vec![vec![52, 47], vec![22, 23]]);
    let (truth, pred) = pixels(&rows);
    assert_eq!(truth.len(), 144);

    let mut cm = ConfusionMatrix::new(2);
    cm.add(&truth, &pred).unwrap();
    assert_eq!(cm.rows(), rows);
    check(&cm.scores(1), reference, "confusion matrix");
    // Exact values: iou 23/92, dice 46/115, mcc (23·52 − 47·22)/sqrt(70·45·99·74).
    let s = cm.scores(1);
    assert_eq!(s.iou, 0.25);
    assert!((s.dice - 0.4).abs() < 1e-15);
    assert!((s.mcc - 162.0 / 23_076_900f64.sqrt()).abs() < 1e-15);

    // The same pixels through an evaluation, split in two images: pooled = reference.
    let mut eval = Evaluation::new(2);
    eval.add_image("first", &truth[..60], &pred[..60], None, None)
        .unwrap();
    eval.add_image("second", &truth[60..], &pred[60..], None, None)
        .unwrap();
    let summary = eval.summary();
    check(&summary.reported, reference, "evaluation");
    assert_eq!(summary.confusion_matrix, rows);
}
