//! DeepLabV3+'s ASPP (`deeplab.py::ASPP`, SPEC §1.3): the same module as the MSCG's ASPP
//! ablation ([`crate::model::shared_feature::aspp`], which reproduces `deeplab.py::ASPP`
//! layer by layer: four Conv+BN+ReLU branches of 256 channels (1×1 and 3×3 at the three
//! rates), image pooling (avgpool → 1×1 Conv+BN+ReLU → broadcast, which is the reference's
//! bilinear align_corners = false from 1×1), concat 1280 → 1×1 Conv+BN+ReLU → the reference's
//! extra BN + ReLU, no dropout), here on `layer4`'s 2048 channels with the rates of the
//! output stride.
pub use crate::model::shared_feature::aspp::Aspp;
