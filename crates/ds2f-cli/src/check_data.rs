//! `ds2f check-data DIR [--classes C] [--lesion L]`: reads every image, mask and FOV of a data folder and
//! lists all problems at once (duplicate stems, missing masks, unreadable files, size
//! mismatches, mask values); for a clean folder, prints each class's share of the labelled
//! pixels (the paper's Table I "RoI proportion").
use std::path::PathBuf;

use anyhow::{Result, bail};

/// Arguments of `check-data`.
#[derive(clap::Args)]
pub struct Args {
    /// The data folder (any supported layout).
    pub dir: PathBuf,
    /// Number of classes, background included. Default: the layout's (IDRiD/DDR 5,
    /// Cityscapes 19), else 2 (binary vessel masks).
    #[arg(long)]
    pub classes: Option<usize>,
    /// Layout (default: detected).
    #[arg(long, default_value = "auto")]
    pub layout: crate::choices::LayoutChoice,
    /// A lesion layout's binary per-lesion mode (`MA`, `HE`, `EX`, `SE`), as `data.lesion`.
    #[arg(long)]
    pub lesion: Option<crate::choices::LesionChoice>,
}

/// Runs `check-data`.
pub fn run(args: Args) -> Result<()> {
    let data = ds2f::config::DataConfig {
        root: args.dir.clone(),
        layout: args.layout.name().to_string(),
        lesion: args.lesion.map(|l| l.0.code().to_string()),
        ..Default::default()
    };
    let layout = ds2f::dataset::layout_of(&data)?;
    let layout_classes = match data.lesion {
        Some(_) => Some(2),
        None => layout.num_classes(),
    };
    let classes = args.classes.or(layout_classes).unwrap_or(2);
    if classes < 2 {
        bail!("--classes {classes}: at least 2 (background + one class)");
    }
    let found = ds2f::dataset::discover_data(&args.dir, &data, None)?;
    let items = found.items;
    let mut problems = found.problems;
    let kind = ds2f::dataset::mask_kind(classes);
    problems.extend(ds2f_data::layout::check_items(&items, kind));
    if problems.is_empty() {
        println!(
            "{}: {} items ({} layout, {classes} classes), no problems",
            args.dir.display(),
            items.len(),
            layout.name()
        );
        let labelled: Vec<_> = items.iter().filter(|i| i.has_labels()).cloned().collect();
        if !labelled.is_empty() {
            let limits = ds2f_data::io::LoadLimits::default();
            let pixels = ds2f_data::labels::class_pixels(&labelled, kind, &limits)?;
            let names = ds2f::dataset::class_names(&data, classes);
            println!("\n{:<14} {:>14} {:>10}", "class", "pixels", "share");
            for ((name, count), share) in names.iter().zip(&pixels.counts).zip(pixels.fractions()) {
                println!("{name:<14} {count:>14} {:>9.4}%", 100.0 * share);
            }
            if pixels.ignored > 0 {
                println!(
                    "{:<14} {:>14} {:>9.4}% of all pixels",
                    "ignored (255)",
                    pixels.ignored,
                    100.0 * pixels.ignored_fraction()
                );
            }
        }
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
