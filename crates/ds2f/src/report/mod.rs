//! Reporting: overlays in the paper's Fig. 5 colours and training curves.
pub mod curves;
pub mod overlay;
