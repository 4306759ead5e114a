//! A progress bar for training (loss, learning rate, ETA); it draws nothing when standard
//! error is not a terminal, where one line per epoch is printed instead.
use std::io::IsTerminal;

use ds2f::train::{EpochRecord, TrainObserver};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Draws training progress.
pub struct Progress {
    bar: Option<ProgressBar>,
    terminal: bool,
    epochs: usize,
}

impl Progress {
    /// A progress reporter on standard error.
    pub fn new() -> Self {
        Self {
            bar: None,
            terminal: std::io::stderr().is_terminal(),
            epochs: 0,
        }
    }
}

impl TrainObserver for Progress {
    fn epoch_start(&mut self, epoch: usize, epochs: usize, steps: usize) {
        self.epochs = epochs;
        let bar = ProgressBar::with_draw_target(
            Some(steps as u64),
            if self.terminal {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            },
        );
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} (ETA {eta})")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{epoch}/{epochs}"));
        self.bar = Some(bar);
    }

    fn step(&mut self, _iteration: usize, loss: f64, lr: f64) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("loss {loss:.4} lr {lr:.2e}"));
            bar.inc(1);
        }
    }

    fn epoch_end(&mut self, r: &EpochRecord) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        // The terms, when there is more than the seg loss.
        let terms: Vec<String> = ds2f::train::LossTerm::ALL
            .into_iter()
            .map(|t| (t, r.term_loss(t)))
            .filter(|(_, v)| !v.is_nan())
            .map(|(t, v)| format!("{t} {v:.4}"))
            .collect();
        let terms = if terms.len() > 1 {
            format!(" ({})", terms.join(", "))
        } else {
            String::new()
        };
        eprintln!(
            "epoch {}/{}: loss {:.4}{terms}  val IoU {:.4} Dice {:.4}  {:.1}s{}",
            r.epoch,
            self.epochs,
            r.train_loss,
            r.val_iou,
            r.val_dice,
            r.seconds,
            if r.best { "  (best)" } else { "" }
        );
    }
}
