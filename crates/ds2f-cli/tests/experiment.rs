//! `ds2f experiment` as a process: a killed experiment resumes without retraining its finished
//! runs; two workers (shards, or plain workers racing on claims) run each run exactly once; a
//! diverging run is kept, counted and not retried; the tables come out.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ds2f")
}

/// 12 synthetic 64×64 images, 3 OOD images, a tiny base config and an experiment file with
/// `variants` (name, overrides) on k = 3 folds, `folds` of them run.
fn setup(dir: &Path, variants: &[(&str, &str)], folds: &str, epochs: usize) -> PathBuf {
    ds2f_data::synth::write_dataset(dir.join("data"), 12, 64, 64, 4, "").unwrap();
    ds2f_data::synth::write_dataset(dir.join("ood"), 3, 64, 64, 9, "o").unwrap();
    std::fs::write(
        dir.join("base.toml"),
        format!(
            "description = \"tiny\"\n[data]\nroot = \"data\"\nval_count = 2\n\
             lr_size = [32, 32]\n[model]\nframework = \"unet_inter\"\nbase = 4\n\
             sr_head_widths = [8, 4]\n[model.shared_feature]\nhidden = 8\n\
             [train]\nepochs = {epochs}\nbatch_size = 2\nlr = 0.05\nseed = 7\n"
        ),
    )
    .unwrap();
    let mut text = format!(
        "description = \"\"\"\nTiny experiment.\n\"\"\"\nbase = \"base.toml\"\n\
         baseline = \"{}\"\n[split]\nscheme = \"kfold\"\nk = 3\nseed = 66\nfolds = {folds}\n\
         [[ood]]\nname = \"synth\"\nroot = \"ood\"\n",
        variants[0].0
    );
    for (name, set) in variants {
        text += &format!("[[variants]]\nname = \"{name}\"\nset = [{set}]\n");
    }
    let path = dir.join("exp.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn experiment(exp: &Path, dir: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.arg("experiment")
        .arg(exp)
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .env_remove("SLURM_ARRAY_TASK_ID")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn run_ok(mut cmd: Command) -> String {
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    err
}

/// The runs a worker trained, from its `[i/n] variant/unit (dir)` lines.
fn trained(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.starts_with('[') && l.ends_with(')'))
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
        .collect()
}

/// Runs the workers at once; how often each run was trained over all of them, and their logs.
fn concurrently<const N: usize>(workers: [Command; N]) -> (BTreeMap<String, usize>, Vec<String>) {
    let children: Vec<_> = workers
        .map(|mut w| w.spawn().unwrap())
        .into_iter()
        .collect();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut logs = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{err}");
        for r in trained(&err) {
            *seen.entry(r).or_default() += 1;
        }
        logs.push(err);
    }
    (seen, logs)
}

fn epochs_done(run: &Path) -> usize {
    std::fs::read_to_string(run.join("metrics.csv"))
        .map(|t| t.lines().count().saturating_sub(1))
        .unwrap_or(0)
}

#[test]
fn a_killed_experiment_resumes_without_retraining_finished_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let variants = [
        ("unet_inter", "\"model.framework=unet_inter\""),
        ("ds2f", "\"model.framework=ds2f\""),
    ];
    let exp = setup(tmp.path(), &variants, "[0, 1]", 3);
    let dir = tmp.path().join("out");
    let first = dir.join("runs/unet_inter/f0");
    let second = dir.join("runs/ds2f/f0");

    let mut child = experiment(&exp, &dir, &[])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill while the second run trains its second epoch.
    let started = Instant::now();
    while epochs_done(&second) < 1 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the experiment ended before it could be killed"
        );
        assert!(started.elapsed() < Duration::from_secs(300), "too slow");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(first.join("done.json").is_file());
    assert!(!second.join("done.json").exists());
    assert!(epochs_done(&second) < 3);
    let before = std::fs::read(first.join("metrics.csv")).unwrap();
    let done_before = std::fs::read(first.join("done.json")).unwrap();

    let listing = experiment(&exp, &dir, &["--list"]).output().unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
    assert!(
        listing.contains("unet_inter") && listing.contains("done"),
        "{listing}"
    );
    assert!(listing.contains("epoch "), "{listing}");

    let err = run_ok(experiment(&exp, &dir, &[]));
    let again = trained(&err);
    assert_eq!(again, ["ds2f/f0", "unet_inter/f1", "ds2f/f1"], "{err}");
    // The finished run was not touched.
    assert_eq!(std::fs::read(first.join("metrics.csv")).unwrap(), before);
    assert_eq!(std::fs::read(first.join("done.json")).unwrap(), done_before);
    // The killed run was resumed, not restarted: its epochs are numbered on.
    let metrics = std::fs::read_to_string(second.join("metrics.csv")).unwrap();
    let epochs: Vec<&str> = metrics
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(epochs, ["1", "2", "3"]);
    for run in ["unet_inter/f0", "ds2f/f0", "unet_inter/f1", "ds2f/f1"] {
        let r = dir.join("runs").join(run);
        assert!(r.join("done.json").is_file(), "{run}");
        assert!(r.join("evaluation/test/summary.json").is_file(), "{run}");
        assert!(
            r.join("evaluation/ood-synth/summary.json").is_file(),
            "{run}"
        );
        assert!(!r.join("claim.json").exists(), "{run}: claim left behind");
    }
    let md = std::fs::read_to_string(dir.join("results.md")).unwrap();
    assert!(md.contains("| `unet_inter` (baseline) | 2/2 |"), "{md}");
    assert!(md.contains("| `ds2f` | 2/2 |"), "{md}");
    assert!(md.contains("## Out of distribution: `synth`"), "{md}");
    // Nothing left to do: a third call trains nothing and rewrites the tables.
    let err = run_ok(experiment(&exp, &dir, &[]));
    assert!(trained(&err).is_empty(), "{err}");
}

#[test]
fn two_workers_run_each_run_once_and_a_diverging_run_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let variants = [
        ("a", "\"model.framework=unet_inter\""),
        ("b", "\"model.framework=unet_inter\", \"train.seed=8\""),
        (
            "diverged",
            "\"model.framework=unet_inter\", \"train.lr=1e30\"",
        ),
    ];
    let exp = setup(tmp.path(), &variants, "[0, 1]", 2);
    // Shards: disjoint halves of the six runs.
    let dir = tmp.path().join("sharded");
    let (seen, logs) =
        concurrently(["1/2", "2/2"].map(|s| experiment(&exp, &dir, &["--shard", s])));
    assert!(
        logs.iter().all(|e| e.contains("of 6 pending runs")),
        "{logs:?}"
    );
    assert_eq!(seen.len(), 6, "{seen:?}");
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");
    // The diverging runs failed, are kept with their error, and are counted.
    for f in ["f0", "f1"] {
        let failed = dir.join("runs/diverged").join(f).join("failed.txt");
        let text = std::fs::read_to_string(&failed).unwrap();
        assert!(text.contains("loss is"), "{text}");
    }
    run_ok(experiment(&exp, &dir, &["--report"]));
    let md = std::fs::read_to_string(dir.join("results.md")).unwrap();
    let row = md
        .lines()
        .find(|l| l.starts_with("| `diverged` | 0/2 |"))
        .unwrap_or_else(|| panic!("{md}"));
    assert!(row.starts_with("| `diverged` | 0/2 | 0 | 2 |"), "{row}");
    // Not retried.
    let err = run_ok(experiment(&exp, &dir, &[]));
    assert!(trained(&err).is_empty(), "{err}");

    // No shards: two workers race on the claims and still train each run once.
    let dir = tmp.path().join("racing");
    let (seen, _) = concurrently([0, 1].map(|_| experiment(&exp, &dir, &[])));
    assert_eq!(seen.len(), 6, "{seen:?}");
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");
}

#[test]
fn bad_experiment_files_name_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = setup(
        tmp.path(),
        &[("a", "\"model.framework=unet_inter\"")],
        "[0]",
        1,
    );
    let text = std::fs::read_to_string(&exp).unwrap();
    for (bad, expected) in [
        (
            text.replace("seed = 66", "sede = 66"),
            "unknown field `sede`",
        ),
        (
            text.replace("model.framework=unet_inter", "model.framwork=unet_inter"),
            "model.framwork",
        ),
        (
            text.replace("baseline = \"a\"", "baseline = \"z\""),
            "baseline `z`",
        ),
    ] {
        std::fs::write(&exp, bad).unwrap();
        let out = experiment(&exp, &tmp.path().join("o"), &["--list"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{err}");
    }
}

#[test]
fn every_shipped_experiment_file_builds_valid_run_configs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let file = ds2f_protocol::experiment::ExperimentFile::load(&path)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            file.description.len() > 80,
            "{}: no description",
            path.display()
        );
        let cpu = path.to_string_lossy().ends_with("-cpu.toml");
        assert_eq!(
            file.description.contains("CPU"),
            cpu,
            "{}: a CPU twin says what it scales down, a paper-scale file does not",
            path.display()
        );
        for v in &file.variants {
            let mut overrides = file.set.clone();
            overrides.extend(v.set.iter().cloned());
            ds2f::config::ExperimentConfig::load(&file.base, &overrides)
                .unwrap_or_else(|e| panic!("{} / {}: {e}", path.display(), v.name));
        }
        files += 1;
    }
    assert!(files >= 23, "{files} experiment files");
}

#[test]
fn a_run_folder_of_another_config_is_never_adopted() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = setup(
        tmp.path(),
        &[("a", "\"model.framework=unet_inter\"")],
        "[0]",
        1,
    );
    let dir = tmp.path().join("out");
    run_ok(experiment(&exp, &dir, &[]));
    assert!(dir.join("runs/a/f0/done.json").is_file());
    // The base config changes afterwards: the finished run no longer belongs to the experiment.
    let base = tmp.path().join("base.toml");
    let text = std::fs::read_to_string(&base).unwrap();
    std::fs::write(&base, text.replace("lr = 0.05", "lr = 0.01")).unwrap();
    for extra in [&[][..], &["--report"], &["--list"]] {
        let out = experiment(&exp, &dir, extra).output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("runs/a/f0 holds a run whose config differs"),
            "{err}"
        );
    }
}
