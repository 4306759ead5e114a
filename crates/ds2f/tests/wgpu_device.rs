//! The DS2F model trains on a `wgpu` device: three SGD steps of a small DS2F U-Net (all four
//! outputs, all losses) on fixed data give finite, decreasing losses and change the weights.
//!
//! Built only with `--features wgpu` and run explicitly, on a machine with a Vulkan driver
//! (with no driver, burn's wgpu device hangs instead of failing). Without a GPU, Mesa's
//! software driver (Debian `mesa-vulkan-drivers`, lavapipe) serves:
//!
//! ```text
//! apt-get install -y mesa-vulkan-drivers
//! cargo test --release -p ds2f --features wgpu --test wgpu_device
//! ```
//!
//! This caught that burn 0.22.1's GPU backends have no bilinear backward pass (the reason for
//! `model::unet::bilinear_separable`).
#![cfg(feature = "wgpu")]

use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::Distribution;
use ds2f::config::{ExperimentConfig, LossConfig};
use ds2f::model::{Framework, ModelConfig};
use ds2f::train::Objective;

#[test]
fn ds2f_trains_on_wgpu() {
    let device = ds2f::device::select("wgpu")
        .expect("a wgpu build")
        .autodiff();
    let model_config = ModelConfig {
        framework: Framework::Ds2f,
        base: 8,
        upscale: 2,
        ..ExperimentConfig::default().model
    };
    let mut model = model_config.init_train(&device);
    let config = ExperimentConfig {
        model: model_config.clone(),
        ..ExperimentConfig::default()
    };
    let mut optim = ds2f::train::optimizer(&config);
    let objective = Objective::new(Framework::Ds2f, &LossConfig::default(), 2, None);
    device.seed(5);
    let (n, h, w) = (2, 32, 32);
    let x = Tensor::<4>::random([n, 3, h, w], Distribution::Uniform(-1.0, 1.0), &device);
    let y = Tensor::<3, Int>::random([n, 2 * h, 2 * w], Distribution::Uniform(0.0, 2.0), &device);
    let hr = Tensor::<4>::random(
        [n, 3, 2 * h, 2 * w],
        Distribution::Uniform(-1.0, 1.0),
        &device,
    );
    let before = model.seg_head.conv.weight.val().into_data();
    let mut losses = Vec::new();
    for _ in 0..3 {
        let terms = objective.terms(model.forward_train(x.clone()), y.clone(), hr.clone());
        let loss = terms
            .into_iter()
            .map(|t| t.value)
            .reduce(|a, b| a.add(b))
            .expect("the seg term");
        losses.push(loss.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(0.01, model, grads);
    }
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(
        losses[2] < losses[0],
        "the same batch three times: {losses:?}"
    );
    let after = model.seg_head.conv.weight.val().into_data();
    assert_ne!(before, after, "the step changed the segmentation head");
}
