//! The k-fold split against the reference: the folds the project's reference spec lists for
//! HRF and PRIME-FP20, scikit-learn's own output for a few other cases, and the properties any
//! k-fold split must have.

use ds2f_protocol::kfold::{KFoldError, kfold_names, kfold_test_indices};

/// The 45 HRF stems `01_dr 01_g 01_h ... 15_h`, deliberately not in sorted order.
fn hrf_names() -> Vec<String> {
    let mut names = Vec::new();
    for kind in ["h", "g", "dr"] {
        for nn in (1..=15).rev() {
            names.push(format!("{nn:02}_{kind}"));
        }
    }
    names
}

fn split_words(fold: &str) -> Vec<String> {
    fold.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn hrf_folds_match_the_reference_spec() {
    let folds = kfold_names(&hrf_names(), 5, 66).unwrap();
    let expected = [
        "01_g 02_g 02_h 05_h 08_g 09_g 12_dr 12_g 13_g",
        "02_dr 03_g 06_h 07_g 09_dr 11_dr 13_dr 14_g 15_dr",
        "01_h 03_dr 03_h 04_dr 05_dr 08_h 11_h 12_h 15_h",
        "01_dr 04_h 07_dr 10_dr 10_g 10_h 11_g 14_dr 14_h",
        "04_g 05_g 06_dr 06_g 07_h 08_dr 09_h 13_h 15_g",
    ];
    assert_eq!(folds.len(), 5);
    for (f, (got, want)) in folds.iter().zip(expected).enumerate() {
        assert_eq!(got, &split_words(want), "HRF fold {f}");
    }
}

#[test]
fn prime_fp20_folds_match_the_reference_spec() {
    let folds = kfold_test_indices(15, 5, 66).unwrap();
    let expected: [&[usize]; 5] = [
        &[1, 6, 13],
        &[0, 8, 14],
        &[2, 9, 11],
        &[3, 5, 10],
        &[4, 7, 12],
    ];
    assert_eq!(folds, expected);
}

// The expected folds below are scikit-learn 1.9.1's own output (numpy 2.4.6, Python 3.11.7),
// printed by:
//
//     import numpy as np
//     from sklearn.model_selection import KFold
//     for n, k, seed in [(20, 5, 0), (23, 4, 12345), (7, 7, 66), (1000, 10, 2**31 - 1)]:
//         folds = [test.tolist() for _, test in
//                  KFold(n_splits=k, shuffle=True, random_state=seed).split(np.arange(n))]
//         print(n, k, seed, folds)
//
// `split` yields each fold's test indices in ascending order; the lists are compared as they are.

/// `KFold(n_splits=5, shuffle=True, random_state=0)` over 20 items.
const N20_K5_SEED0: &[&[usize]] = &[
    &[1, 8, 18, 19],
    &[6, 10, 13, 17],
    &[2, 4, 5, 14],
    &[7, 9, 11, 16],
    &[0, 3, 12, 15],
];

/// `KFold(n_splits=4, shuffle=True, random_state=12345)` over 23 items.
const N23_K4_SEED12345: &[&[usize]] = &[
    &[3, 8, 10, 12, 17, 19],
    &[0, 7, 11, 15, 16, 18],
    &[6, 13, 14, 20, 21, 22],
    &[1, 2, 4, 5, 9],
];

/// `KFold(n_splits=7, shuffle=True, random_state=66)` over 7 items.
const N7_K7_SEED66: &[&[usize]] = &[&[0], &[5], &[1], &[2], &[3], &[6], &[4]];

/// `KFold(n_splits=10, shuffle=True, random_state=2147483647)` over 1000 items.
const N1000_K10_SEED2147483647: &[&[usize]] = &[
    &[
        14, 26, 35, 38, 42, 55, 61, 68, 69, 74, 80, 88, 90, 96, 110, 123, 140, 143, 154, 164, 203,
        214, 240, 241, 256, 257, 262, 276, 278, 293, 294, 326, 329, 330, 358, 368, 378, 391, 394,
        404, 423, 438, 443, 463, 482, 496, 501, 508, 516, 532, 537, 545, 549, 552, 561, 578, 581,
        617, 620, 642, 648, 655, 660, 666, 683, 702, 711, 727, 729, 742, 745, 746, 767, 768, 770,
        779, 785, 798, 800, 817, 828, 831, 842, 860, 876, 896, 901, 903, 904, 913, 926, 939, 962,
        964, 966, 992, 995, 997, 998, 999,
    ],
    &[
        10, 20, 46, 52, 53, 56, 58, 60, 144, 145, 150, 157, 163, 169, 175, 192, 196, 215, 218, 220,
        227, 246, 248, 253, 259, 268, 284, 303, 310, 315, 318, 333, 334, 341, 343, 353, 380, 384,
        390, 396, 422, 432, 439, 451, 455, 456, 460, 491, 505, 510, 520, 541, 570, 580, 594, 600,
        603, 604, 623, 624, 628, 650, 653, 654, 659, 679, 685, 693, 714, 719, 722, 723, 738, 755,
        763, 796, 809, 815, 823, 826, 834, 836, 843, 859, 864, 865, 868, 891, 895, 908, 918, 927,
        929, 933, 947, 952, 971, 975, 982, 986,
    ],
    &[
        1, 7, 15, 23, 29, 63, 94, 101, 117, 120, 122, 134, 148, 177, 195, 201, 205, 213, 224, 226,
        228, 230, 235, 260, 263, 264, 272, 281, 283, 300, 308, 312, 314, 325, 328, 339, 347, 361,
        363, 371, 375, 388, 389, 406, 416, 425, 434, 445, 449, 473, 474, 475, 492, 500, 504, 507,
        509, 511, 514, 534, 582, 587, 607, 633, 636, 639, 649, 656, 658, 671, 686, 687, 688, 694,
        707, 724, 750, 753, 757, 769, 777, 788, 790, 805, 813, 821, 837, 845, 853, 867, 878, 886,
        893, 902, 944, 949, 963, 965, 968, 991,
    ],
    &[
        25, 33, 36, 70, 79, 81, 85, 107, 108, 118, 129, 136, 149, 151, 160, 166, 171, 172, 174,
        178, 179, 191, 204, 208, 219, 223, 231, 247, 249, 252, 258, 274, 304, 319, 337, 352, 356,
        369, 403, 405, 409, 419, 421, 427, 429, 430, 436, 442, 457, 477, 483, 489, 502, 556, 557,
        565, 566, 568, 579, 591, 599, 609, 622, 629, 630, 635, 667, 674, 695, 697, 699, 706, 721,
        739, 741, 787, 791, 803, 808, 816, 832, 833, 844, 850, 879, 880, 881, 899, 905, 907, 914,
        920, 923, 932, 940, 941, 948, 956, 959, 996,
    ],
    &[
        0, 2, 4, 8, 11, 19, 24, 30, 39, 48, 77, 84, 86, 91, 97, 131, 137, 138, 142, 146, 170, 183,
        185, 190, 197, 212, 216, 222, 229, 233, 255, 271, 273, 280, 290, 292, 299, 309, 316, 344,
        348, 349, 350, 354, 370, 372, 407, 420, 426, 440, 441, 446, 464, 471, 485, 486, 512, 529,
        530, 531, 544, 558, 569, 583, 593, 596, 606, 613, 634, 646, 652, 664, 665, 668, 672, 678,
        725, 740, 748, 759, 772, 782, 829, 838, 839, 840, 848, 861, 863, 872, 882, 887, 892, 922,
        943, 955, 974, 978, 980, 983,
    ],
    &[
        5, 6, 13, 28, 31, 37, 43, 59, 62, 65, 67, 75, 87, 95, 102, 109, 113, 121, 139, 152, 156,
        158, 176, 180, 206, 207, 210, 225, 237, 238, 254, 267, 286, 288, 320, 324, 332, 336, 346,
        355, 376, 383, 386, 393, 399, 401, 424, 453, 459, 498, 499, 515, 517, 518, 523, 524, 528,
        533, 564, 575, 576, 584, 592, 610, 616, 643, 647, 662, 675, 700, 704, 705, 710, 715, 718,
        726, 730, 737, 760, 762, 774, 794, 797, 806, 807, 841, 849, 854, 871, 873, 889, 900, 911,
        917, 919, 921, 934, 937, 961, 969,
    ],
    &[
        3, 44, 51, 57, 66, 83, 99, 100, 104, 105, 111, 112, 126, 135, 141, 159, 162, 167, 189, 200,
        234, 242, 243, 244, 266, 270, 277, 279, 298, 302, 305, 317, 335, 345, 360, 365, 367, 377,
        385, 402, 408, 411, 415, 433, 458, 467, 478, 480, 481, 497, 503, 525, 526, 535, 573, 590,
        595, 611, 618, 645, 677, 684, 691, 692, 708, 713, 717, 720, 728, 744, 747, 758, 776, 781,
        784, 789, 792, 793, 801, 819, 827, 846, 855, 866, 884, 888, 890, 906, 909, 938, 945, 957,
        958, 960, 970, 984, 985, 989, 990, 993,
    ],
    &[
        18, 34, 40, 47, 54, 72, 78, 103, 116, 130, 161, 165, 188, 193, 198, 232, 236, 250, 269,
        275, 282, 297, 301, 307, 311, 313, 340, 342, 357, 359, 366, 381, 392, 395, 417, 431, 435,
        444, 448, 454, 468, 469, 470, 479, 484, 487, 490, 494, 495, 513, 519, 522, 540, 543, 547,
        554, 567, 585, 597, 602, 605, 612, 614, 621, 637, 638, 640, 644, 663, 670, 681, 682, 712,
        716, 731, 732, 735, 773, 780, 786, 799, 804, 822, 825, 835, 858, 862, 869, 885, 897, 898,
        910, 935, 946, 953, 954, 976, 977, 981, 994,
    ],
    &[
        16, 17, 22, 45, 49, 50, 71, 73, 76, 89, 93, 98, 125, 128, 132, 133, 153, 155, 184, 187,
        199, 217, 221, 239, 251, 285, 295, 321, 322, 364, 373, 379, 397, 400, 410, 412, 428, 437,
        447, 452, 465, 472, 493, 527, 536, 538, 539, 551, 562, 571, 598, 608, 615, 619, 625, 626,
        627, 631, 641, 669, 673, 680, 690, 701, 709, 733, 734, 743, 749, 751, 754, 761, 764, 771,
        775, 778, 783, 802, 810, 814, 818, 824, 830, 847, 852, 856, 877, 883, 894, 912, 915, 924,
        925, 928, 931, 950, 972, 973, 979, 988,
    ],
    &[
        9, 12, 21, 27, 32, 41, 64, 82, 92, 106, 114, 115, 119, 124, 127, 147, 168, 173, 181, 182,
        186, 194, 202, 209, 211, 245, 261, 265, 287, 289, 291, 296, 306, 323, 327, 331, 338, 351,
        362, 374, 382, 387, 398, 413, 414, 418, 450, 461, 462, 466, 476, 488, 506, 521, 542, 546,
        548, 550, 553, 555, 559, 560, 563, 572, 574, 577, 586, 588, 589, 601, 632, 651, 657, 661,
        676, 689, 696, 698, 703, 736, 752, 756, 765, 766, 795, 811, 812, 820, 851, 857, 870, 874,
        875, 916, 930, 936, 942, 951, 967, 987,
    ],
];

#[test]
fn folds_match_scikit_learn() {
    let cases: [(usize, usize, u32, &[&[usize]]); 4] = [
        (20, 5, 0, N20_K5_SEED0),
        (23, 4, 12345, N23_K4_SEED12345),
        (7, 7, 66, N7_K7_SEED66),
        (1000, 10, 2_147_483_647, N1000_K10_SEED2147483647),
    ];
    for (n, k, seed, expected) in cases {
        let folds = kfold_test_indices(n, k, seed).unwrap();
        assert_eq!(folds, expected, "n = {n}, k = {k}, seed = {seed}");
    }
}

#[test]
fn every_index_is_in_exactly_one_fold() {
    for n in 2..=60 {
        for k in 2..=n.min(12) {
            for seed in [0, 1, 66, u32::MAX] {
                let folds = kfold_test_indices(n, k, seed).unwrap();
                assert_eq!(folds.len(), k);
                let mut seen = vec![0u32; n];
                for (f, fold) in folds.iter().enumerate() {
                    // The first n % k folds hold one more than the others.
                    assert_eq!(fold.len(), n / k + usize::from(f < n % k));
                    for &i in fold {
                        seen[i] += 1;
                    }
                }
                assert!(
                    seen.iter().all(|&c| c == 1),
                    "n = {n}, k = {k}, seed = {seed}"
                );
            }
        }
    }
}

#[test]
fn names_are_split_like_sorted_indices() {
    // Whatever order the names come in, fold f holds the sorted names at fold f's indices.
    let names: Vec<String> = ["c", "a", "e", "b", "d", "g", "f"]
        .map(str::to_owned)
        .to_vec();
    let mut sorted = names.clone();
    sorted.sort();
    let folds = kfold_names(&names, 3, 7).unwrap();
    let index_folds = kfold_test_indices(names.len(), 3, 7).unwrap();
    for (got, indices) in folds.iter().zip(&index_folds) {
        let want: Vec<String> = indices.iter().map(|&i| sorted[i].clone()).collect();
        assert_eq!(got, &want);
    }
}

#[test]
fn too_few_or_too_many_folds_are_errors() {
    assert_eq!(
        kfold_test_indices(10, 0, 66),
        Err(KFoldError::TooFewFolds { k: 0 })
    );
    assert_eq!(
        kfold_test_indices(10, 1, 66),
        Err(KFoldError::TooFewFolds { k: 1 })
    );
    assert_eq!(
        kfold_test_indices(4, 5, 66),
        Err(KFoldError::MoreFoldsThanItems { n: 4, k: 5 })
    );
    assert_eq!(
        kfold_test_indices(0, 2, 66),
        Err(KFoldError::MoreFoldsThanItems { n: 0, k: 2 })
    );
    let names: Vec<String> = vec!["a".into(), "b".into()];
    assert_eq!(
        kfold_names(&names, 1, 66),
        Err(KFoldError::TooFewFolds { k: 1 })
    );
    assert_eq!(
        kfold_names(&names, 3, 66),
        Err(KFoldError::MoreFoldsThanItems { n: 2, k: 3 })
    );
    assert!(kfold_test_indices(5, 5, 66).is_ok());
}

#[cfg(target_pointer_width = "64")]
#[test]
fn more_than_two_to_the_32_items_is_an_error() {
    // Checked before anything is allocated, so this costs nothing.
    let n = (1usize << 32) + 1;
    assert_eq!(
        kfold_test_indices(n, 2, 66),
        Err(KFoldError::TooManyItems { n })
    );
}
