//! Multi-class evaluation (issue #17): class averaging conventions, the ignore label, class
//! names, pooled per-class PR-AUC against scikit-learn, and the `C = 2` equivalence with the
//! binary path.

use ds2f_metrics::{
    ClassMean, ConfusionMatrix, Counts, Evaluation, EvaluationConfig, MetricsError, PrHistogram,
    PrMode, Scores, Summary, pr_auc_trapezoid,
};

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a.is_nan() && b.is_nan()) || (a - b).abs() <= tol
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

fn config(class_mean: ClassMean) -> EvaluationConfig {
    EvaluationConfig {
        class_mean,
        ..EvaluationConfig::default()
    }
}

/// Compare through JSON, where `NaN == NaN` (`null`).
fn json(s: &Summary) -> String {
    serde_json::to_string(s).unwrap()
}

/// One image realising `rows`, summarised with `class_mean`.
fn summarise(rows: &[Vec<u64>], class_mean: ClassMean) -> Summary {
    let (truth, pred) = pixels(rows);
    let mut eval = Evaluation::with_config(rows.len(), config(class_mean)).unwrap();
    eval.add_image("x", &truth, &pred, None, None).unwrap();
    eval.summary()
}

#[test]
fn three_classes_by_hand_both_conventions() {
    // M[true][pred] = [[5, 1, 0], [2, 3, 1], [0, 4, 6]], 22 pixels. One-vs-rest:
    //   class 0: TP 5, FP 2, FN 1, TN 14 -> iou 5/8,  dice 10/13, bm 5/6 + 14/16 - 1
    //   class 1: TP 3, FP 5, FN 3, TN 11 -> iou 3/11, dice 3/7,   bm 3/6 + 11/16 - 1
    //   class 2: TP 6, FP 1, FN 4, TN 11 -> iou 6/11, dice 12/17, bm 6/10 + 11/12 - 1
    let rows = vec![vec![5, 1, 0], vec![2, 3, 1], vec![0, 4, 6]];
    let bm = [
        5.0 / 6.0 + 14.0 / 16.0 - 1.0,
        3.0 / 6.0 + 11.0 / 16.0 - 1.0,
        6.0 / 10.0 + 11.0 / 12.0 - 1.0,
    ];
    let cases = [
        // mIoU (3/11 + 6/11)/2 = 9/22, mDice (3/7 + 12/17)/2 = 135/238.
        (
            ClassMean::Foreground,
            9.0 / 22.0,
            135.0 / 238.0,
            (bm[1] + bm[2]) / 2.0,
        ),
        // mIoU (5/8 + 3/11 + 6/11)/3 = 127/264, mDice (10/13 + 3/7 + 12/17)/3 = 2945/4641.
        (
            ClassMean::All,
            127.0 / 264.0,
            2945.0 / 4641.0,
            bm.iter().sum::<f64>() / 3.0,
        ),
    ];
    for (mean, miou, mdice, mbm) in cases {
        let s = summarise(&rows, mean);
        assert_eq!(s.confusion_matrix, rows);
        assert_eq!(s.class_mean, mean);
        let r = s.reported;
        assert!(close(r.iou, miou, 1e-15), "{mean:?}: mIoU {}", r.iou);
        assert!(close(r.dice, mdice, 1e-15), "{mean:?}: mDice {}", r.dice);
        assert!(close(r.bm, mbm, 1e-15), "{mean:?}: BM {}", r.bm);
        // Per-image headline of the single image = pooled headline.
        assert_eq!(s.image_reported(&s.images[0]), r);
        assert!(close(s.per_image_reported().iou.mean, miou, 1e-15));
    }
}

#[test]
fn five_lesion_classes_by_hand_with_undefined_class() {
    // Classes 0 bg, 1 MA, 2 HE, 3 EX, 4 SE. EX is only predicted (2 false alarms), SE is
    // nowhere: its iou/dice are 0/0 = NaN and it drops out of both means.
    let rows = vec![
        vec![20, 1, 0, 2, 0],
        vec![1, 2, 0, 0, 0],
        vec![1, 0, 3, 0, 0],
        vec![0, 0, 0, 0, 0],
        vec![0, 0, 0, 0, 0],
    ];
    // iou:  bg 20/25, MA 2/4, HE 3/4, EX 0/2, SE NaN.
    // dice: bg 40/45, MA 4/6, HE 6/7, EX 0,   SE NaN.
    let cases = [
        // (1/2 + 3/4 + 0)/3 = 5/12; (2/3 + 6/7 + 0)/3 = 32/63.
        (ClassMean::Foreground, 5.0 / 12.0, 32.0 / 63.0),
        // (4/5 + 1/2 + 3/4 + 0)/4 = 41/80; (8/9 + 2/3 + 6/7 + 0)/4 = 38/63.
        (ClassMean::All, 41.0 / 80.0, 38.0 / 63.0),
    ];
    for (mean, miou, mdice) in cases {
        let s = summarise(&rows, mean);
        assert!(s.pooled[4].iou.is_nan() && s.pooled[4].dice.is_nan());
        assert_eq!((s.pooled[3].iou, s.pooled[3].dice), (0.0, 0.0));
        assert!(
            close(s.reported.iou, miou, 1e-15),
            "{mean:?}: {}",
            s.reported.iou
        );
        assert!(
            close(s.reported.dice, mdice, 1e-15),
            "{mean:?}: {}",
            s.reported.dice
        );
    }
}

/// The pixels of one image: truth, prediction, class-major probability planes.
struct Pixels {
    truth: Vec<u8>,
    pred: Vec<u8>,
    probs: Vec<f32>,
}

/// The pixels of `rows` with ignored pixels (`truth = label`) inserted before every third
/// pixel, and without them. The ignored `k`-th pixel is predicted as class `k % C` with
/// probability 1.
fn with_ignored(
    rows: &[Vec<u64>],
    label: u8,
    probs_of: impl Fn(usize) -> Vec<f32>,
) -> (Pixels, Pixels) {
    let c = rows.len();
    let (truth, pred) = pixels(rows);
    let (mut t_all, mut p_all, mut px_all) = (Vec::new(), Vec::new(), Vec::new());
    for (i, (&t, &p)) in truth.iter().zip(&pred).enumerate() {
        if i % 3 == 0 {
            let k = i / 3;
            t_all.push(label);
            p_all.push((k % c) as u8);
            px_all.push((0..c).map(|j| f32::from(u8::from(j == k % c))).collect());
        }
        t_all.push(t);
        p_all.push(p);
        px_all.push(probs_of(i));
    }
    let planes = |per_pixel: &[Vec<f32>]| -> Vec<f32> {
        (0..c)
            .flat_map(|j| per_pixel.iter().map(move |px| px[j]))
            .collect()
    };
    let kept: Vec<Vec<f32>> = (0..truth.len()).map(&probs_of).collect();
    (
        Pixels {
            truth: t_all,
            pred: p_all,
            probs: planes(&px_all),
        },
        Pixels {
            probs: planes(&kept),
            truth,
            pred,
        },
    )
}

#[test]
fn ignored_pixels_count_nowhere() {
    let rows = vec![
        vec![6, 1, 1, 0],
        vec![1, 3, 0, 1],
        vec![0, 1, 4, 0],
        vec![1, 0, 0, 2],
    ];
    // A weak, tie-rich scoring: class j gets 0.25 + 0.125·((i + j) % 3).
    let probs_of = |i: usize| -> Vec<f32> {
        (0..4)
            .map(|j| 0.25 + 0.125 * ((i + j) % 3) as f32)
            .collect()
    };
    let (all, kept) = with_ignored(&rows, 255, probs_of);
    let (t_all, p_all, prob_all) = (&all.truth, &all.pred, &all.probs);
    let (truth, pred, prob) = (&kept.truth, &kept.pred, &kept.probs);
    // 21 pixels, an ignored one before pixels 0, 3, ..., 18.
    assert_eq!(t_all.iter().filter(|&&t| t == 255).count(), 7);
    for mean in [ClassMean::Foreground, ClassMean::All] {
        for pr_mode in [PrMode::Exact, PrMode::Histogram { bins: 64 }] {
            let cfg = EvaluationConfig {
                class_mean: mean,
                pr_mode,
                ..EvaluationConfig::default()
            };
            let mut with = Evaluation::with_config(4, cfg.clone()).unwrap();
            with.add_image("img", t_all, p_all, Some(prob_all), None)
                .unwrap();
            let mut without = Evaluation::with_config(4, cfg).unwrap();
            without
                .add_image("img", truth, pred, Some(prob), None)
                .unwrap();
            let s = with.summary();
            assert_eq!(s.confusion_matrix, rows);
            assert_eq!(json(&s), json(&without.summary()), "{mean:?} {pr_mode:?}");
            let n = u64::try_from(truth.len()).unwrap();
            for pr in &s.pr_auc {
                assert_eq!(pr.positives + pr.negatives, n);
            }
        }
    }
    // The ignored pixels would matter: counted as background they change the scores and the
    // PR-AUC (each is a confident false positive of a class).
    let relabelled: Vec<u8> = t_all
        .iter()
        .map(|&t| if t == 255 { 0 } else { t })
        .collect();
    let mut counted = Evaluation::new(4);
    counted
        .add_image("img", &relabelled, p_all, Some(prob_all), None)
        .unwrap();
    let mut ignored = Evaluation::new(4);
    ignored
        .add_image("img", t_all, p_all, Some(prob_all), None)
        .unwrap();
    let (a, b) = (counted.summary(), ignored.summary());
    assert_ne!(a.reported.iou, b.reported.iou);
    assert_ne!(a.reported_pr_auc, b.reported_pr_auc);
}

#[test]
fn ignore_label_is_a_parameter() {
    let rows = vec![vec![3, 1, 0], vec![0, 2, 1], vec![1, 0, 2]];
    let (all, kept) = with_ignored(&rows, 254, |_| vec![0.0; 3]);
    let custom = EvaluationConfig {
        ignore_label: Some(254),
        ..EvaluationConfig::default()
    };
    let mut eval = Evaluation::with_config(3, custom.clone()).unwrap();
    eval.add_image("a", &all.truth, &all.pred, None, None)
        .unwrap();
    let mut plain = Evaluation::with_config(3, custom).unwrap();
    plain
        .add_image("a", &kept.truth, &kept.pred, None, None)
        .unwrap();
    // 10 pixels: ignored ones before pixels 0, 3, 6, 9.
    assert_eq!(all.truth.iter().filter(|&&t| t == 254).count(), 4);
    assert_eq!(json(&eval.summary()), json(&plain.summary()));
    assert_eq!(eval.summary().ignore_label, Some(254));

    // 255 is then an error, as is any truth >= C, and 255 without an ignore label.
    let none = EvaluationConfig {
        ignore_label: None,
        ..EvaluationConfig::default()
    };
    let cases = [
        (
            Evaluation::with_config(
                3,
                EvaluationConfig {
                    ignore_label: Some(254),
                    ..EvaluationConfig::default()
                },
            ),
            [0u8, 255, 1],
            1,
            255,
            Some(254),
        ),
        (Evaluation::with_config(3, none), [0, 1, 255], 2, 255, None),
        (Ok(Evaluation::new(3)), [0, 3, 255], 1, 3, Some(255)),
    ];
    for (eval, truth, index, value, ignore_label) in cases {
        let mut eval = eval.unwrap();
        let err = eval
            .add_image("bad", &truth, &[0, 0, 0], None, None)
            .unwrap_err();
        assert_eq!(
            err,
            MetricsError::TruthOutOfRange {
                index,
                value,
                num_classes: 3,
                ignore_label
            }
        );
        assert_eq!(eval.summary().num_images, 0);
    }
    // A prediction out of range is an error even on an ignored pixel.
    let mut eval = Evaluation::new(3);
    assert_eq!(
        eval.add_image("bad", &[0, 255], &[0, 3], None, None)
            .unwrap_err(),
        MetricsError::PredictionOutOfRange {
            index: 1,
            value: 3,
            num_classes: 3
        }
    );
}

/// A fixed two-image, five-class example with ties (probabilities in sixteenths) and two
/// ignored pixels; see `pr_auc_per_class_matches_sklearn` for the reference numbers.
struct LesionExample {
    truth: [Vec<u8>; 2],
    pred: [Vec<u8>; 2],
    /// Class-major planes, `[C][pixels]` per image.
    probs: [Vec<f32>; 2],
}

fn lesion_example() -> LesionExample {
    let truth = [
        vec![3, 4, 0, 0, 1, 2, 4, 0, 0, 0, 1, 1, 255, 1, 3, 2],
        vec![2, 4, 0, 0, 0, 2, 0, 0, 0, 255, 0, 3],
    ];
    let pred = [
        vec![1, 4, 0, 0, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        vec![0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3],
    ];
    let q: [[u8; 28]; 5] = [
        [
            4, 4, 5, 8, 4, 3, 4, 10, 7, 9, 11, 7, 6, 5, 5, 5, 5, 4, 10, 9, 11, 4, 8, 9, 7, 6, 4, 3,
        ],
        [
            6, 2, 4, 2, 6, 3, 2, 1, 1, 2, 0, 1, 4, 5, 4, 0, 4, 5, 0, 0, 2, 3, 2, 0, 0, 4, 0, 1,
        ],
        [
            0, 4, 2, 2, 4, 6, 4, 1, 3, 2, 0, 3, 0, 2, 1, 5, 4, 5, 2, 3, 1, 3, 2, 0, 0, 2, 6, 3,
        ],
        [
            0, 0, 4, 2, 0, 1, 6, 4, 4, 2, 5, 4, 2, 4, 2, 5, 0, 1, 4, 1, 1, 3, 0, 2, 3, 0, 4, 9,
        ],
        [
            6, 6, 1, 2, 2, 3, 0, 0, 1, 1, 0, 1, 4, 0, 4, 1, 3, 1, 0, 3, 1, 3, 4, 5, 6, 4, 2, 0,
        ],
    ];
    let image = |range: std::ops::Range<usize>| -> Vec<f32> {
        q.iter()
            .flat_map(|plane| plane[range.clone()].iter().map(|&k| f32::from(k) / 16.0))
            .collect()
    };
    LesionExample {
        truth,
        pred,
        probs: [image(0..16), image(16..28)],
    }
}

fn lesion_eval(ex: &LesionExample, cfg: &EvaluationConfig) -> Summary {
    let mut eval = Evaluation::with_config(5, cfg.clone()).unwrap();
    for i in 0..2 {
        eval.add_image(
            format!("img{i}"),
            &ex.truth[i],
            &ex.pred[i],
            Some(&ex.probs[i]),
            None,
        )
        .unwrap();
    }
    eval.summary()
}

// Reference numbers (scikit-learn 1.9.1, numpy 2.4.6):
//
// import numpy as np
// from sklearn.metrics import (auc, average_precision_score, confusion_matrix,
//                              f1_score, jaccard_score, precision_recall_curve)
// # Two images, C = 5, 255 = ignore; probabilities in sixteenths, class-major planes.
// truth = [3,4,0,0,1,2,4,0,0,0,1,1,255,1,3,2] + [2,4,0,0,0,2,0,0,0,255,0,3]
// pred  = [1,4,0,0,1,2,3,0,0,0,0,0,0,0,0,0] + [0,1,0,0,0,0,0,0,0,0,2,3]
// q = [[4,4,5,8,4,3,4,10,7,9,11,7,6,5,5,5] + [5,4,10,9,11,4,8,9,7,6,4,3],
//      [6,2,4,2,6,3,2,1,1,2,0,1,4,5,4,0] + [4,5,0,0,2,3,2,0,0,4,0,1],
//      [0,4,2,2,4,6,4,1,3,2,0,3,0,2,1,5] + [4,5,2,3,1,3,2,0,0,2,6,3],
//      [0,0,4,2,0,1,6,4,4,2,5,4,2,4,2,5] + [0,1,4,1,1,3,0,2,3,0,4,9],
//      [6,6,1,2,2,3,0,0,1,1,0,1,4,0,4,1] + [3,1,0,3,1,3,4,5,6,4,2,0]]
// truth, pred = np.array(truth), np.array(pred)
// prob = np.array(q, dtype=np.float32) / np.float32(16)
// keep = truth != 255
// t, p, prob = truth[keep], pred[keep], prob[:, keep]
// print("cm", confusion_matrix(t, p, labels=range(5)).tolist())
// iou = jaccard_score(t, p, labels=range(5), average=None)
// dice = f1_score(t, p, labels=range(5), average=None)
// print("iou", iou.tolist(), "dice", dice.tolist())
// print("mIoU fg", np.nanmean(iou[1:]).item(), "all", np.nanmean(iou).item())
// print("mDice fg", np.nanmean(dice[1:]).item(), "all", np.nanmean(dice).item())
// pr, ap = [], []
// for c in range(5):
//     precision, recall, _ = precision_recall_curve(t == c, prob[c])
//     pr.append(auc(recall, precision))
//     ap.append(average_precision_score(t == c, prob[c]))
// print("pr_auc", [float(x) for x in pr])
// print("ap", [float(x) for x in ap])
// print("mAUC fg", np.nanmean(pr[1:]).item(), "all", np.nanmean(pr).item())
// print("mAP fg", np.nanmean(ap[1:]).item(), "all", np.nanmean(ap).item())
//
// Output:
// cm [[11, 0, 1, 0, 0], [3, 1, 0, 0, 0], [3, 0, 1, 0, 0], [1, 1, 0, 1, 0], [0, 1, 0, 1, 1]]
// iou [0.5789473684210527, 0.16666666666666666, 0.2, 0.25, 0.3333333333333333]
// dice [0.7333333333333333, 0.2857142857142857, 0.3333333333333333, 0.4, 0.5]
// mIoU fg 0.2375 all 0.3057894736842105
// mDice fg 0.37976190476190474 all 0.4504761904761905
// pr_auc [0.7660578120136944, 0.3878711201079622, 0.5072115384615384, 0.4008654743948862,
//         0.2876068376068376]
// ap [0.7635776532835357, 0.32793522267206476, 0.4206730769230769, 0.4110105580693816,
//     0.18290598290598292]
// mAUC fg 0.39588874264280605 all 0.4699225565169837
// mAP fg 0.3356312101426266 all 0.4212204987708084
const SK_CM: [[u64; 5]; 5] = [
    [11, 0, 1, 0, 0],
    [3, 1, 0, 0, 0],
    [3, 0, 1, 0, 0],
    [1, 1, 0, 1, 0],
    [0, 1, 0, 1, 1],
];
const SK_IOU: [f64; 5] = [
    0.5789473684210527,
    0.16666666666666666,
    0.2,
    0.25,
    0.3333333333333333,
];
const SK_DICE: [f64; 5] = [
    0.7333333333333333,
    0.2857142857142857,
    0.3333333333333333,
    0.4,
    0.5,
];
const SK_PR_AUC: [f64; 5] = [
    0.7660578120136944,
    0.3878711201079622,
    0.5072115384615384,
    0.4008654743948862,
    0.2876068376068376,
];
const SK_AP: [f64; 5] = [
    0.7635776532835357,
    0.32793522267206476,
    0.4206730769230769,
    0.4110105580693816,
    0.18290598290598292,
];

/// Exact path and histogram path against sklearn, both conventions.
///
/// Tolerance 1e-12 for both paths: the curve points are the same, only the order of the float
/// sums differs from sklearn (`auc` integrates with `np.trapezoid` over the reversed arrays).
/// The histogram path is moreover **equal** to the exact path here: the scores are multiples
/// of 1/16, so with 65536 or with 16 bins no bin holds two distinct scores and the binned walk
/// visits exactly sklearn's thresholds (bin `k` of 16 holds `k/16` alone; 16/16 never occurs).
/// With real softmax outputs a bin may mix distinct scores, which reorders pixels within
/// 1/65536 of each other (the module test `agrees_with_exact_on_random_data` bounds that at
/// 1e-3 on random data).
#[test]
fn pr_auc_per_class_matches_sklearn() {
    let ex = lesion_example();
    let modes = [
        PrMode::Exact,
        PrMode::default(),
        PrMode::Histogram { bins: 16 },
    ];
    // (mean, averaged classes, mIoU, mDice, mAUC, mAP) from the sklearn output.
    let means = [
        (
            ClassMean::Foreground,
            1..5,
            0.2375,
            0.37976190476190474,
            0.39588874264280605,
            0.3356312101426266,
        ),
        (
            ClassMean::All,
            0..5,
            0.3057894736842105,
            0.4504761904761905,
            0.4699225565169837,
            0.4212204987708084,
        ),
    ];
    for (mean, classes, miou, mdice, mauc, map) in means {
        let mut exact_json = None;
        for pr_mode in modes {
            let cfg = EvaluationConfig {
                class_mean: mean,
                pr_mode,
                ..EvaluationConfig::default()
            };
            let s = lesion_eval(&ex, &cfg);
            let label = format!("{mean:?} {pr_mode:?}");
            let cm: Vec<Vec<u64>> = SK_CM.iter().map(|r| r.to_vec()).collect();
            assert_eq!(s.confusion_matrix, cm, "{label}");
            for k in 0..5 {
                assert!(close(s.pooled[k].iou, SK_IOU[k], 1e-15), "{label}: iou {k}");
                assert!(
                    close(s.pooled[k].dice, SK_DICE[k], 1e-15),
                    "{label}: dice {k}"
                );
            }
            assert!(close(s.reported.iou, miou, 1e-15), "{label}");
            assert!(close(s.reported.dice, mdice, 1e-15), "{label}");
            let got: Vec<usize> = s.pr_auc.iter().map(|p| p.class).collect();
            assert_eq!(got, classes.clone().collect::<Vec<_>>(), "{label}");
            for pr in &s.pr_auc {
                let k = pr.class;
                assert!(
                    close(pr.trapezoid, SK_PR_AUC[k], 1e-12),
                    "{label}: class {k} PR-AUC {} vs sklearn {}",
                    pr.trapezoid,
                    SK_PR_AUC[k]
                );
                assert!(
                    close(pr.average_precision, SK_AP[k], 1e-12),
                    "{label}: class {k} AP {} vs sklearn {}",
                    pr.average_precision,
                    SK_AP[k]
                );
                // 26 counted pixels (2 ignored), positives = row sum of the class.
                assert_eq!(pr.positives, SK_CM[k].iter().sum::<u64>());
                assert_eq!(pr.positives + pr.negatives, 26);
            }
            assert!(close(s.reported_pr_auc, mauc, 1e-12), "{label}: mAUC");
            assert!(close(s.reported_average_precision, map, 1e-12), "{label}");
            // Histogram == exact, bit for bit.
            match &exact_json {
                None => exact_json = Some(json(&s)),
                Some(e) => assert_eq!(&json(&s), e, "{label}"),
            }
        }
    }
}

#[test]
fn foreground_planes_layout_equals_all_planes() {
    let ex = lesion_example();
    let fg_only = |p: &[f32], n: usize| p[n..].to_vec();
    let mut all = Evaluation::new(5);
    let mut fg = Evaluation::new(5);
    for i in 0..2 {
        let n = ex.truth[i].len();
        all.add_image("i", &ex.truth[i], &ex.pred[i], Some(&ex.probs[i]), None)
            .unwrap();
        fg.add_image(
            "i",
            &ex.truth[i],
            &ex.pred[i],
            Some(&fg_only(&ex.probs[i], n)),
            None,
        )
        .unwrap();
    }
    assert_eq!(json(&all.summary()), json(&fg.summary()));
    assert!(close(
        all.summary().reported_pr_auc,
        0.39588874264280605,
        1e-12
    ));
    // With the background averaged, its plane is required.
    let mut every = Evaluation::with_config(5, config(ClassMean::All)).unwrap();
    let n = ex.truth[0].len();
    assert_eq!(
        every
            .add_image(
                "i",
                &ex.truth[0],
                &ex.pred[0],
                Some(&fg_only(&ex.probs[0], n)),
                None
            )
            .unwrap_err(),
        MetricsError::ProbabilityLayout {
            len: 4 * n,
            pixels: n,
            num_classes: 5
        }
    );
}

#[test]
fn merge_multi_class_equals_single_accumulation() {
    let ex = lesion_example();
    for pr_mode in [PrMode::Exact, PrMode::default()] {
        let cfg = EvaluationConfig {
            class_mean: ClassMean::All,
            pr_mode,
            class_names: ["background", "MA", "HE", "EX", "SE"]
                .map(String::from)
                .to_vec(),
            ..EvaluationConfig::default()
        };
        let single = lesion_eval(&ex, &cfg);
        let mut a = Evaluation::with_config(5, cfg.clone()).unwrap();
        let mut b = Evaluation::with_config(5, cfg.clone()).unwrap();
        a.add_image("img0", &ex.truth[0], &ex.pred[0], Some(&ex.probs[0]), None)
            .unwrap();
        b.add_image("img1", &ex.truth[1], &ex.pred[1], Some(&ex.probs[1]), None)
            .unwrap();
        // An empty worker merges as a no-op.
        a.merge(Evaluation::with_config(5, cfg.clone()).unwrap())
            .unwrap();
        a.merge(b).unwrap();
        assert_eq!(json(&a.summary()), json(&single), "{pr_mode:?}");
        assert_eq!(
            a.pr_curve(0).map(|c| c.num_positives()),
            Some(SK_CM[0].iter().sum())
        );
    }
    // Settings must agree.
    let base = EvaluationConfig::default();
    let cases = [
        (config(ClassMean::All), "class_mean"),
        (
            EvaluationConfig {
                ignore_label: None,
                ..base.clone()
            },
            "ignore_label",
        ),
        (
            EvaluationConfig {
                class_names: (0..5).map(|k| k.to_string()).collect(),
                ..base.clone()
            },
            "class_names",
        ),
        (
            EvaluationConfig {
                pr_mode: PrMode::Exact,
                ..base.clone()
            },
            "pr_mode",
        ),
    ];
    let mut eval = Evaluation::with_config(5, base.clone()).unwrap();
    for (other, what) in cases {
        let other = Evaluation::with_config(5, other).unwrap();
        assert_eq!(
            eval.merge(other).unwrap_err(),
            MetricsError::ConfigMismatch { what }
        );
    }
    let other = Evaluation::with_config(
        5,
        EvaluationConfig {
            pr_mode: PrMode::Histogram { bins: 10 },
            ..base
        },
    )
    .unwrap();
    assert_eq!(
        eval.merge(other).unwrap_err(),
        MetricsError::BinCountMismatch {
            expected: 65536,
            actual: 10
        }
    );
}

/// `C = 2` with the default (foreground) convention is exactly the class-1 binary path.
#[test]
fn two_classes_foreground_is_class_one() {
    // Three images, probabilities on an irregular grid (not bin centres) with ties.
    let images: Vec<(Vec<u8>, Vec<f32>)> = (0..3u32)
        .map(|k| {
            let n = 40 + 7 * k;
            let truth = (0..n).map(|i| u8::from((i * 5 + k) % 7 < 3)).collect();
            let p1 = (0..n)
                .map(|i| ((i * 13 + k * 3) % 29) as f32 / 29.0)
                .collect();
            (truth, p1)
        })
        .collect();
    let pred_of = |p: &[f32]| p.iter().map(|&x| u8::from(x >= 0.5)).collect::<Vec<_>>();
    let mut eval = Evaluation::new(2);
    let mut planes = Evaluation::new(2);
    let mut cm = ConfusionMatrix::new(2);
    let mut hist = PrHistogram::default();
    let (mut all_p, mut all_l) = (Vec::new(), Vec::new());
    for (k, (truth, p1)) in images.iter().enumerate() {
        let pred = pred_of(p1);
        eval.add_image(k.to_string(), truth, &pred, Some(p1), None)
            .unwrap();
        let two: Vec<f32> = p1
            .iter()
            .map(|x| 1.0 - x)
            .chain(p1.iter().copied())
            .collect();
        planes
            .add_image(k.to_string(), truth, &pred, Some(&two), None)
            .unwrap();
        cm.add(truth, &pred).unwrap();
        let labels: Vec<bool> = truth.iter().map(|&t| t == 1).collect();
        hist.add(p1, &labels).unwrap();
        all_p.extend_from_slice(p1);
        all_l.extend(labels);
    }
    let s = eval.summary();
    assert_eq!(json(&s), json(&planes.summary()));
    // Bit for bit: the headline is class 1's scores, the mAUC class 1's PR-AUC.
    let class1: Scores = cm.scores(1);
    assert_eq!(json_scores(&s.reported), json_scores(&class1));
    assert_eq!(s.reported.iou.to_bits(), class1.iou.to_bits());
    assert_eq!(s.reported.mcc.to_bits(), class1.mcc.to_bits());
    assert_eq!(
        s.reported_pr_auc.to_bits(),
        hist.pr_auc_trapezoid().to_bits()
    );
    assert_eq!(
        s.reported_average_precision.to_bits(),
        hist.average_precision().to_bits()
    );
    assert_eq!(s.pr_auc.len(), 1);
    assert_eq!(s.pr_auc[0].class, 1);
    // Scores on /29 are far apart at 65536 bins: the histogram equals the exact trapezoid.
    assert!(close(
        s.reported_pr_auc,
        pr_auc_trapezoid(&all_p, &all_l),
        1e-15
    ));
    // Per-image headline = the per-image class-1 scores.
    for img in &s.images {
        assert_eq!(
            json_scores(&s.image_reported(img)),
            json_scores(&img.scores[1])
        );
    }

    // The "all" convention averages background and vessel.
    let mut both = Evaluation::with_config(2, config(ClassMean::All)).unwrap();
    for (k, (truth, p1)) in images.iter().enumerate() {
        let two: Vec<f32> = p1
            .iter()
            .map(|x| 1.0 - x)
            .chain(p1.iter().copied())
            .collect();
        both.add_image(k.to_string(), truth, &pred_of(p1), Some(&two), None)
            .unwrap();
    }
    let b = both.summary();
    assert!(close(
        b.reported.iou,
        (cm.scores(0).iou + cm.scores(1).iou) / 2.0,
        1e-15
    ));
    assert_eq!(b.pr_auc.iter().map(|p| p.class).collect::<Vec<_>>(), [0, 1]);
}

fn json_scores(s: &Scores) -> String {
    serde_json::to_string(s).unwrap()
}

#[test]
fn class_names_rows_and_json() {
    let ex = lesion_example();
    let names = ["background", "MA", "HE", "EX", "SE"]
        .map(String::from)
        .to_vec();
    let cfg = EvaluationConfig {
        class_names: names.clone(),
        pr_mode: PrMode::Exact,
        ..EvaluationConfig::default()
    };
    let s = lesion_eval(&ex, &cfg);
    assert_eq!(s.class_name(2), "HE");
    let rows = s.class_rows();
    assert_eq!(rows.len(), 5);
    let bg = &rows[0];
    assert_eq!(
        (bg.name, bg.averaged, bg.pr_auc),
        (Some("background"), false, None)
    );
    // Background: TP 11, FP 7 (column 0 minus TP), FN 1, TN 26 - 19 = 7.
    assert_eq!(
        bg.counts,
        Counts {
            tp: 11,
            fp: 7,
            fn_: 1,
            tn: 7
        }
    );
    let ex_row = &rows[3];
    assert_eq!(
        (ex_row.class, ex_row.name, ex_row.averaged),
        (3, Some("EX"), true)
    );
    assert!(close(ex_row.pooled.iou, 0.25, 1e-15));
    assert!(close(ex_row.pr_auc.unwrap().trapezoid, SK_PR_AUC[3], 1e-12));
    // Per image, EX: image 0 TP 0 of 2 (iou 0/3 = 0), image 1 TP 1 (iou 1/1): mean 1/2.
    assert!(
        close(ex_row.per_image.iou.mean, 0.5, 1e-15),
        "{:?}",
        ex_row.per_image
    );

    let text = serde_json::to_string_pretty(&s).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["class_names"][1], "MA");
    assert_eq!(value["class_mean"], "foreground");
    assert_eq!(value["ignore_label"], 255);
    let back: Summary = serde_json::from_str(&text).unwrap();
    assert_eq!(serde_json::to_string_pretty(&back).unwrap(), text);

    // A summary.json written before these settings existed reads back with the defaults.
    let mut old = value.clone();
    for key in ["class_mean", "ignore_label", "class_names"] {
        old.as_object_mut().unwrap().remove(key);
    }
    let back: Summary = serde_json::from_value(old).unwrap();
    assert_eq!(back.class_mean, ClassMean::Foreground);
    assert_eq!(back.ignore_label, Some(255));
    assert!(back.class_names.is_empty());
    assert_eq!(back.class_name(1), "class 1");
    assert_eq!(json(&back.clone()), {
        let mut s = s.clone();
        s.class_names.clear();
        json(&s)
    });
}

#[test]
fn config_errors() {
    let cases = [
        (
            1,
            EvaluationConfig::default(),
            MetricsError::ClassCount { num_classes: 1 },
        ),
        (
            257,
            EvaluationConfig::default(),
            MetricsError::ClassCount { num_classes: 257 },
        ),
        (
            3,
            EvaluationConfig {
                pr_mode: PrMode::Histogram { bins: 0 },
                ..EvaluationConfig::default()
            },
            MetricsError::ZeroBins,
        ),
        (
            3,
            EvaluationConfig {
                class_names: vec!["a".into(), "b".into()],
                ..EvaluationConfig::default()
            },
            MetricsError::ClassNames {
                expected: 3,
                actual: 2,
            },
        ),
    ];
    for (c, cfg, want) in cases {
        assert_eq!(Evaluation::with_config(c, cfg).unwrap_err(), want);
    }
}
