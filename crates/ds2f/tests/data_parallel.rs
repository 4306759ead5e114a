//! Data-parallel training on two devices (two handles of the CPU device: the same code path as
//! two GPUs, each shard on its own thread with its own autodiff graph).
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use ds2f::config::{ExperimentConfig, LossConfig, ProxySegKind};
use ds2f::model::complexity::trainable_parameters;
use ds2f::model::{DualStream, Framework, ModelConfig};
use ds2f::train::parallel::forward_backward;
use ds2f::train::{Objective, Silent, train};
use ds2f_data::loader::Batch;

fn tiny() -> ModelConfig {
    let mut config = ModelConfig {
        framework: Framework::Ds2f,
        base: 8,
        ..ModelConfig::default()
    };
    config.shared_feature.hidden = 8;
    config
}

/// One LR 40×36 sample (HR ×2) with thin diagonal "vessels", repeated `n` times. Large enough
/// that the U-Net's bottleneck (1/16) keeps 2×2 pixels: at 1×1 a one-sample shard's batch norm
/// normalises single values, where any rounding of the mean is amplified by 1/√ε (libtorch's
/// vectorised mean of two equal values is not always exactly that value).
fn repeated_sample(n: usize) -> Batch {
    let (h, w, r) = (40usize, 36usize, 2usize);
    let (hh, hw) = (r * h, r * w);
    let lr: Vec<f32> = (0..3 * h * w)
        .map(|k| (0.37 * k as f32).sin() * 0.8)
        .collect();
    let hr: Vec<f32> = (0..3 * hh * hw)
        .map(|k| (0.11 * k as f32).cos() * 0.7)
        .collect();
    let mask: Vec<u8> = (0..hh * hw)
        .map(|k| u8::from((k % hw + 2 * (k / hw)) % 9 < 2))
        .collect();
    Batch {
        lr: lr.repeat(n),
        hr: hr.repeat(n),
        mask: mask.repeat(n),
        fov: None,
        names: (0..n).map(|i| format!("s{i}")).collect(),
        n,
        lr_size: (h as u32, w as u32),
        hr_size: (hh as u32, hw as u32),
    }
}

/// Every parameter's gradient, flattened, in visiting order.
fn flat_grads(model: &DualStream, grads: &GradientsParams) -> Vec<(String, Vec<f32>)> {
    trainable_parameters(model)
        .into_iter()
        .map(|p| {
            let values = match p.shape.len() {
                1 => grads.get::<1>(p.id).map(|g| g.into_data()),
                2 => grads.get::<2>(p.id).map(|g| g.into_data()),
                3 => grads.get::<3>(p.id).map(|g| g.into_data()),
                4 => grads.get::<4>(p.id).map(|g| g.into_data()),
                _ => None,
            };
            let values = values.unwrap_or_else(|| panic!("{} has no gradient", p.path));
            (p.path, values.iter::<f32>().collect())
        })
        .collect()
}

/// Every BN running mean and variance (the floats that are not trainable parameters).
struct RunningStats(Vec<burn::module::ParamId>, Vec<f32>);
impl ModuleVisitor for RunningStats {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if !self.0.contains(&param.id) {
            self.1.extend(param.val().into_data().iter::<f32>());
        }
    }
}

fn running_stats(model: &DualStream) -> Vec<f32> {
    let trainable = trainable_parameters(model).into_iter().map(|p| p.id);
    let mut v = RunningStats(trainable.collect(), Vec::new());
    // `valid` folds each thread's pending update into the running value.
    model.valid().visit(&mut v);
    v.1
}

/// With the same sample twice, each device's shard has the statistics of the whole batch, so
/// two devices must give the one-device gradients: shard losses weighted by their share,
/// gradients moved to and summed on the first device. (Unweighted shards give twice the
/// gradient, a lost shard half of it.)
#[test]
fn two_devices_give_the_one_device_gradient() {
    two_devices_match_one(Device::flex().autodiff());
}

/// The same on two handles of the libtorch device (`tch` feature; see tests/libtorch_device.rs
/// for how to run it).
#[cfg(feature = "tch")]
#[test]
fn two_libtorch_devices_give_the_one_device_gradient() {
    two_devices_match_one(
        ds2f::device::select("libtorch")
            .expect("a tch build")
            .autodiff(),
    );
}

fn two_devices_match_one(device: Device) {
    device.seed(3);
    let model = tiny().init_train(&device);
    // The RMI proxy's BCE part divides by (#valid pixels + 1), as the reference does, so a
    // shard's value differs from the batch's by O(1 / #pixels); CE is a plain mean.
    let losses = LossConfig {
        proxy_seg: ProxySegKind::Ce,
        ..LossConfig::default()
    };
    let objective = Objective::new(Framework::Ds2f, &losses, 2, None);
    let batch = repeated_sample(2);
    // Independent copies (fresh leaves and BN running state) of the same weights.
    let (one_model, two_model) = (model.valid().train(), model.valid().train());
    let one = forward_backward(
        &one_model,
        &batch,
        std::slice::from_ref(&device),
        &objective,
    )
    .unwrap();
    let two = forward_backward(
        &two_model,
        &batch,
        &[device.clone(), device.clone()],
        &objective,
    )
    .unwrap();

    assert_eq!(one.terms.len(), 4, "DS2F has seg, sr, proxy_seg, proxy_sr");
    for ((n1, v1), (n2, v2)) in one.terms.iter().zip(&two.terms) {
        assert_eq!(n1, n2);
        assert!(
            (v1 - v2).abs() <= 1e-5 * v1.abs().max(1.0),
            "{n1}: {v1} vs {v2}"
        );
    }
    let (g1, g2) = (
        flat_grads(&one_model, &one.grads),
        flat_grads(&two_model, &two.grads),
    );
    assert_eq!(g1.len(), g2.len());
    // The bias of a convolution followed by a training-mode batch norm (MSCG's fusion conv, an
    // image-pooling branch) has a gradient of zero up to rounding: it is measured against the
    // model's largest gradient, not its own.
    let largest = g1
        .iter()
        .flat_map(|(_, a)| a.iter())
        .fold(0f32, |m, v| m.max(v.abs()));
    let mut checked = 0;
    for ((path, a), (_, b)) in g1.iter().zip(&g2) {
        let own = a.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(own > 0.0, "{path}: zero gradient");
        let scale = own.max(1e-4 * largest);
        for (x, y) in a.iter().zip(b) {
            assert!(
                (x - y).abs() <= 1e-3 * scale + 1e-7,
                "{path}: {x} vs {y} (max |g| {scale})"
            );
        }
        checked += 1;
    }
    assert!(checked > 50, "{checked} parameters");

    // The first device's BN running averages are kept, untouched by the other thread's shard.
    let (s1, s2) = (running_stats(&one_model), running_stats(&two_model));
    assert!(!s1.is_empty());
    let initial = running_stats(&model);
    assert!(s1.iter().zip(&initial).any(|(a, b)| a != b), "stats moved");
    for (a, b) in s1.iter().zip(&s2) {
        assert!((a - b).abs() <= 1e-4 * a.abs().max(1.0), "{a} vs {b}");
    }
}

/// A NaN in a shard names its term, whichever device it is on.
#[test]
fn a_non_finite_shard_names_its_term() {
    let device = Device::flex().autodiff();
    device.seed(4);
    let model = tiny().init_train(&device);
    let objective = Objective::new(Framework::Ds2f, &LossConfig::default(), 2, None);
    let mut batch = repeated_sample(2);
    let half = batch.hr.len() / 2;
    batch.hr[half + 5] = f32::NAN; // the second shard's SR target
    let err = forward_backward(&model, &batch, &[device.clone(), device], &objective).unwrap_err();
    match err {
        ds2f::train::parallel::StepError::NonFinite { term, value } => {
            assert_eq!(term, ds2f::train::LossTerm::Sr);
            assert!(value.is_nan());
        }
        other => panic!("{other:?}"),
    }
}

/// `train.devices = ["cpu", "cpu"]`: a whole training runs, its checkpoints load, and the
/// config rejects more devices than samples per batch.
#[test]
fn training_on_two_devices_runs_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ds2f_data::synth::write_dataset(&data, 6, 48, 40, 3, "").unwrap();
    let text = format!(
        "[data]\nroot = {:?}\nval_count = 2\nlr_size = [24, 20]\nworkers = 1\n\
         [model]\nframework = \"ds2f\"\nbase = 4\nsr_head_widths = [8, 4]\n[model.shared_feature]\nhidden = 8\n\
         [train]\nepochs = 2\nbatch_size = 2\ndevices = [\"cpu\", \"cpu\"]\n",
        data.display().to_string()
    );
    let config = ExperimentConfig::parse(&text, &[], "test").unwrap();
    let too_many = ExperimentConfig::parse(&text, &["train.batch_size=1".into()], "test")
        .unwrap_err()
        .to_string();
    assert!(too_many.contains("train.devices"), "{too_many}");

    let splits = ds2f::dataset::split(
        &config.data,
        config.train.seed,
        ds2f::dataset::mask_kind(config.model.num_classes),
    )
    .unwrap();
    let devices = [Device::flex(), Device::flex()];
    let run = tmp.path().join("run");
    let outcome = train(&config, &splits, &run, &devices, false, &mut Silent).unwrap();
    assert_eq!(outcome.history.len(), 2);
    assert_eq!(outcome.history[1].iteration, 4, "2 steps of 2 per epoch");
    for record in &outcome.history {
        assert!(record.train_loss.is_finite() && record.train_loss > 0.0);
        // seg, sr, proxy_seg, proxy_sr; DS2F on the U-Net has no feature or auxiliary term.
        use ds2f::train::LossTerm;
        for term in LossTerm::ALL {
            let expected = !matches!(term, LossTerm::Feature | LossTerm::Aux);
            assert_eq!(
                record.term_loss(term).is_finite(),
                expected,
                "{term}: {record:?}"
            );
        }
    }
    let saved = ExperimentConfig::load(&run.join("config.toml"), &[]).unwrap();
    assert_eq!(saved.train.devices, vec!["cpu", "cpu"]);
    let last = ds2f::train::RunFolder::new(&run).last_checkpoint();
    let ckpt = ds2f::checkpoint::Checkpoint::load(&last).unwrap();
    assert_eq!(ckpt.state.iteration, 4);
    ckpt.apply_model(config.model.init_train(&Device::flex()), &last)
        .unwrap();
}
