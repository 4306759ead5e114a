//! Reporting: overlays in the paper's Fig. 5 colours (or a colour-blind-safe palette),
//! training curves, the evaluation figure and the HTML report of an evaluation.
pub mod curves;
pub mod eval_figure;
pub mod html;
pub mod overlay;
