//! The training objective of each framework (eq. 7 of the paper, as the reference weights it):
//! seg loss + w_sr·MSE(SR, HR image) + α·proxy_seg + β·proxy_sr + w_f·feature loss, plus
//! w_aux·seg loss on ESPNetv2's auxiliary output. Each term is kept apart ([`LossTerm`]) so
//! that a NaN names its term and the terms can be logged.
use burn::prelude::*;

use super::LossTerm;
use crate::config::{
    ExperimentConfig, GdiceKind, LossConfig, ProxySegKind, ProxySrKind, SegLossKind,
};
use crate::loss::{
    ClassBalancedCe, CrossEntropy, DiceLoss, DiceVariant, FaLoss, FocalLoss, Mse, RmiLoss, SsimLoss,
};
use crate::model::{Framework, TrainOutputs};

/// A seg loss on `[n, C, H, W]` logits against `[n, H, W]` classes.
#[derive(Debug, Clone)]
enum SegLoss {
    Ce(CrossEntropy),
    Cbce(ClassBalancedCe),
    Focal(FocalLoss),
    Rmi(RmiLoss),
    Gdice(DiceLoss),
}

impl SegLoss {
    /// The main seg loss of `train.loss.seg` (`class_weights` apply to cross-entropy).
    fn main(kind: SegLossKind, class_weights: Option<Vec<f32>>) -> Self {
        match kind {
            SegLossKind::Ce => SegLoss::Ce(CrossEntropy {
                weights: class_weights,
            }),
            SegLossKind::Cbce => SegLoss::Cbce(ClassBalancedCe::default()),
            SegLossKind::Focal => SegLoss::Focal(FocalLoss::default()),
        }
    }

    fn forward(&self, logits: Tensor<4>, target: Tensor<3, Int>) -> Tensor<1> {
        match self {
            SegLoss::Ce(l) => l.forward(logits, target),
            SegLoss::Cbce(l) => l.forward(logits, target),
            SegLoss::Focal(l) => l.forward(logits, target),
            SegLoss::Rmi(l) => l.forward(logits, target),
            SegLoss::Gdice(l) => l.forward(logits, target),
        }
    }
}

/// An image loss on `[n, 3, H, W]` images in normalised space.
#[derive(Debug, Clone)]
enum ImageLoss {
    Mse(Mse),
    Ssim(SsimLoss),
}

impl ImageLoss {
    fn forward(&self, x: Tensor<4>, y: Tensor<4>) -> Tensor<1> {
        match self {
            ImageLoss::Mse(l) => l.forward(x, y),
            ImageLoss::Ssim(l) => l.forward(x, y),
        }
    }
}

/// The feature loss of CogSeg (L1 per level, summed) or DSRL (feature affinity).
#[derive(Debug, Clone)]
enum FeatureLoss {
    L1,
    Fa(FaLoss),
}

/// One weighted loss term of a step.
#[derive(Debug, Clone)]
pub struct Term {
    /// Which term.
    pub term: LossTerm,
    /// The weighted value (a scalar tensor on the training device).
    pub value: Tensor<1>,
}

/// The configured objective of a framework.
#[derive(Debug, Clone)]
pub struct Objective {
    seg: SegLoss,
    sr: Option<(f64, Mse)>,
    proxy_seg: Option<(f64, SegLoss)>,
    proxy_sr: Option<(f64, ImageLoss)>,
    feature: Option<(f64, FeatureLoss)>,
    aux: Option<(f64, SegLoss)>,
}

impl Objective {
    /// The objective of `framework` with the `[train.loss]` choices, for `num_classes` classes
    /// (`class_weights` apply to a cross-entropy main loss).
    pub fn new(
        framework: Framework,
        config: &LossConfig,
        num_classes: usize,
        class_weights: Option<Vec<f32>>,
    ) -> Self {
        let seg = SegLoss::main(config.seg, class_weights);
        let sr = framework.has_sr_stream().then_some((config.sr_weight, Mse));
        let proxy_seg_kind = match (framework, config.proxy_seg) {
            (Framework::Ds2f | Framework::Ssmaf, ProxySegKind::Auto) => ProxySegKind::Rmi,
            (Framework::Supervessel, ProxySegKind::Auto) => ProxySegKind::Ce,
            (Framework::Ds2f | Framework::Ssmaf | Framework::Supervessel, kind) => kind,
            _ => ProxySegKind::None,
        };
        let proxy_seg = match proxy_seg_kind {
            ProxySegKind::Rmi => Some(SegLoss::Rmi(RmiLoss::new(num_classes))),
            ProxySegKind::Ce => Some(SegLoss::Ce(CrossEntropy::default())),
            ProxySegKind::Gdice => Some(SegLoss::Gdice(DiceLoss::new(match config.gdice {
                GdiceKind::Sudre => DiceVariant::Sudre,
                // The reference's construction: DiceLoss(smooth=1.0, gdice=True, eps=1e-9).
                GdiceKind::Reference => DiceVariant::Reference {
                    smooth: 1.0,
                    gdice: true,
                    eps: 1e-9,
                },
            }))),
            ProxySegKind::Auto | ProxySegKind::None => None,
        }
        .map(|l| (config.alpha, l));
        let proxy_sr_kind = match (framework, config.proxy_sr) {
            (Framework::Ds2f, ProxySrKind::Auto) => ProxySrKind::Ssim,
            (Framework::Ssmaf, ProxySrKind::Auto) => ProxySrKind::Mse,
            (Framework::Ds2f | Framework::Ssmaf, kind) => kind,
            _ => ProxySrKind::None,
        };
        let proxy_sr = match proxy_sr_kind {
            ProxySrKind::Ssim => Some(ImageLoss::Ssim(SsimLoss {
                data_range: config.ssim_data_range as f32,
                ..SsimLoss::default()
            })),
            ProxySrKind::Mse => Some(ImageLoss::Mse(Mse)),
            ProxySrKind::Auto | ProxySrKind::None => None,
        }
        .map(|l| (config.beta, l));
        let feature = match framework {
            Framework::Cogseg => Some(FeatureLoss::L1),
            Framework::Dsrl => Some(FeatureLoss::Fa(FaLoss::default())),
            _ => None,
        }
        .map(|l| (config.feature_weight, l));
        Self {
            seg,
            sr,
            proxy_seg,
            proxy_sr,
            feature,
            aux: None,
        }
    }

    /// The objective a training of `config` uses: [`Objective::new`] with the config's
    /// framework, losses and class weights, plus the auxiliary term on an ESPNetv2 backbone
    /// (`train.loss.aux_weight`, 0 turns it off).
    pub fn from_config(config: &ExperimentConfig) -> Self {
        let objective = Self::new(
            config.model.framework,
            &config.train.loss,
            config.model.num_classes,
            config.train.class_weights.clone(),
        );
        let aux_weight = config.train.loss.aux_weight;
        if config.model.backbone.has_aux_output() && aux_weight > 0.0 {
            objective.with_aux(aux_weight)
        } else {
            objective
        }
    }

    /// Adds the auxiliary term: the main seg loss (same kind and class weights) on
    /// [`TrainOutputs::aux`], times `weight` (the reference ESPNetv2 training adds it with
    /// weight 1).
    pub fn with_aux(mut self, weight: f64) -> Self {
        self.aux = Some((weight, self.seg.clone()));
        self
    }

    /// The terms this objective computes, in the order [`Objective::terms`] returns them.
    pub fn loss_terms(&self) -> Vec<LossTerm> {
        let present = [
            true,
            self.sr.is_some(),
            self.proxy_seg.is_some(),
            self.proxy_sr.is_some(),
            self.feature.is_some(),
            self.aux.is_some(),
        ];
        LossTerm::ALL
            .into_iter()
            .zip(present)
            .filter_map(|(t, p)| p.then_some(t))
            .collect()
    }

    /// The names of [`Objective::loss_terms`].
    pub fn term_names(&self) -> Vec<&'static str> {
        self.loss_terms().into_iter().map(LossTerm::name).collect()
    }

    /// The weighted terms of one step, in the order of [`Objective::loss_terms`].
    ///
    /// # Shapes
    /// - `mask`: `[n, H, W]` HR classes; `hr`: `[n, 3, H, W]` HR image in [−1, 1]
    ///
    /// # Panics
    /// If the model did not produce an output this objective needs (a framework/objective
    /// mismatch is a programming error: both come from the same config).
    pub fn terms(&self, out: TrainOutputs, mask: Tensor<3, Int>, hr: Tensor<4>) -> Vec<Term> {
        let weighted = |w: f64, t: Tensor<1>| if w == 1.0 { t } else { t.mul_scalar(w) };
        let mut terms = vec![Term {
            term: LossTerm::Seg,
            value: self.seg.forward(out.seg, mask.clone()),
        }];
        if let Some((w, mse)) = &self.sr {
            let sr = out.sr.clone().expect("the SR stream's output");
            terms.push(Term {
                term: LossTerm::Sr,
                value: weighted(*w, mse.forward(sr, hr.clone())),
            });
        }
        if let Some((w, loss)) = &self.proxy_seg {
            let p = out.proxy_seg.clone().expect("the seg proxy output");
            terms.push(Term {
                term: LossTerm::ProxySeg,
                value: weighted(*w, loss.forward(p, mask.clone())),
            });
        }
        if let Some((w, loss)) = &self.proxy_sr {
            let p = out.proxy_sr.clone().expect("the SR proxy output");
            terms.push(Term {
                term: LossTerm::ProxySr,
                value: weighted(*w, loss.forward(p, hr)),
            });
        }
        if let Some((w, loss)) = &self.feature {
            assert!(!out.feature_pairs.is_empty(), "feature pairs");
            let value = out
                .feature_pairs
                .into_iter()
                .map(|(a, b)| match loss {
                    FeatureLoss::L1 => a.sub(b).abs().mean(),
                    FeatureLoss::Fa(fa) => {
                        // Pool by 32 as the reference, less for maps under 128 px, so
                        // that the affinity still compares at least 4×4 positions.
                        let [_, _, h, w] = a.dims();
                        let kernel = fa.kernel().min(h.min(w) / 4).max(1);
                        FaLoss {
                            scale: 1.0 / kernel as f64,
                            ..*fa
                        }
                        .forward(a, b)
                    }
                })
                .reduce(|x, y| x.add(y))
                .expect("at least one pair");
            terms.push(Term {
                term: LossTerm::Feature,
                value: weighted(*w, value),
            });
        }
        if let Some((w, loss)) = &self.aux {
            let aux = out.aux.clone().expect("the auxiliary output");
            terms.push(Term {
                term: LossTerm::Aux,
                value: weighted(*w, loss.forward(aux, mask)),
            });
        }
        terms
    }
}
