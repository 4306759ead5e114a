//! `ds2f check-data DIR [--classes C]`: reads every image, mask and FOV of a data folder and
//! lists all problems at once (duplicate stems, missing masks, unreadable files, size
//! mismatches, mask values).
use std::path::PathBuf;

use anyhow::{Result, bail};

/// Arguments of `check-data`.
#[derive(clap::Args)]
pub struct Args {
    /// The data folder (any supported layout).
    pub dir: PathBuf,
    /// Number of classes, background included (2: binary vessel masks).
    #[arg(long, default_value_t = 2)]
    pub classes: usize,
    /// Layout (default: detected).
    #[arg(long, default_value = "auto")]
    pub layout: String,
}

/// Runs `check-data`.
pub fn run(args: Args) -> Result<()> {
    if args.classes < 2 {
        bail!(
            "--classes {}: at least 2 (background + one class)",
            args.classes
        );
    }
    let found = ds2f::dataset::discover_items_all(&args.dir, &args.layout, None)?;
    let items = found.items;
    let mut problems = found.problems;
    problems.extend(ds2f_data::layout::check_items(
        &items,
        ds2f::dataset::mask_kind(args.classes),
    ));
    if problems.is_empty() {
        println!("{}: {} items, no problems", args.dir.display(), items.len());
        return Ok(());
    }
    for p in &problems {
        println!("{p}");
    }
    bail!(
        "{}: {} problem(s) in {} items",
        args.dir.display(),
        problems.len(),
        items.len()
    )
}
