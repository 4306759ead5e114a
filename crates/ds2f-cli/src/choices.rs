//! The fixed choices of the command line as clap `ValueEnum`s: `--help` lists them, a typo is
//! refused by clap with the valid values, and the commands match on types instead of strings.
//! The library types they stand for (`Framework`, `Layout`, `Palette`, `Lesion`) stay free of
//! clap; the choices over them are built from their `ALL` lists and names, so a new framework
//! or layout appears here without an edit. (`--device` stays a string: it carries an index,
//! `cuda:1`, or a list, `cpu,cpu`.)
use std::sync::LazyLock;

use clap::ValueEnum;
use clap::builder::PossibleValue;
use ds2f::model::Framework;
use ds2f::report::overlay::Palette;
use ds2f_data::labels::{IDRID_LESIONS, Lesion};
use ds2f_data::layout::Layout;

/// `--checkpoint`: which checkpoint of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CheckpointChoice {
    /// `best.ckpt`: the inference graph of the best validation epoch.
    Best,
    /// `last.ckpt`: everything after the latest epoch (SR stream and optimiser included).
    Last,
}

impl CheckpointChoice {
    /// The file stem (`best`, `last`).
    pub fn name(self) -> &'static str {
        match self {
            CheckpointChoice::Best => "best",
            CheckpointChoice::Last => "last",
        }
    }
}

/// `--palette`: the colours of binary overlays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PaletteChoice {
    /// The paper's Fig. 5: miss green, false alarm red, hit yellow.
    Paper,
    /// Colour-blind safe (Okabe–Ito): miss sky blue, false alarm orange, hit white.
    OkabeIto,
}

impl From<PaletteChoice> for Palette {
    fn from(choice: PaletteChoice) -> Self {
        match choice {
            PaletteChoice::Paper => Palette::Paper,
            PaletteChoice::OkabeIto => Palette::OkabeIto,
        }
    }
}

/// `--layout`: `auto` (detected) or a named dataset layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutChoice {
    /// Detect the layout from the folder.
    Auto,
    /// This layout.
    Named(Layout),
}

impl LayoutChoice {
    /// The name `data.layout` takes (`auto`, `hrf`, `idrid_od`, ...).
    pub fn name(self) -> &'static str {
        match self {
            LayoutChoice::Auto => "auto",
            LayoutChoice::Named(layout) => layout.name(),
        }
    }
}

impl ValueEnum for LayoutChoice {
    fn value_variants<'a>() -> &'a [Self] {
        static ALL: LazyLock<Vec<LayoutChoice>> = LazyLock::new(|| {
            std::iter::once(LayoutChoice::Auto)
                .chain(Layout::ALL.map(LayoutChoice::Named))
                .collect()
        });
        &ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.name()))
    }
}

/// `--framework`: one of the frameworks of docs/frameworks.md, by its config name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameworkChoice(pub Framework);

impl ValueEnum for FrameworkChoice {
    fn value_variants<'a>() -> &'a [Self] {
        static ALL: LazyLock<Vec<FrameworkChoice>> =
            LazyLock::new(|| Framework::ALL.map(FrameworkChoice).to_vec());
        &ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.0.name()))
    }
}

/// `--lesion`: one lesion of IDRiD/DDR as a binary task (`MA`, `HE`, `EX`, `SE`; any case).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LesionChoice(pub Lesion);

impl ValueEnum for LesionChoice {
    fn value_variants<'a>() -> &'a [Self] {
        static ALL: LazyLock<Vec<LesionChoice>> =
            LazyLock::new(|| IDRID_LESIONS.map(LesionChoice).to_vec());
        &ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.0.code()))
    }

    fn from_str(input: &str, _ignore_case: bool) -> Result<Self, String> {
        // Lesion codes are matched in any case, as `data.lesion` is.
        Self::value_variants()
            .iter()
            .find(|l| l.0.code().eq_ignore_ascii_case(input))
            .copied()
            .ok_or_else(|| format!("invalid lesion `{input}` (expected MA, HE, EX or SE)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names<T: ValueEnum>() -> Vec<String> {
        T::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value())
            .map(|p| p.get_name().to_string())
            .collect()
    }

    #[test]
    fn choices_are_the_config_names() {
        // Every framework's choice name parses as `model.framework` and means that framework.
        for name in names::<FrameworkChoice>() {
            let choice = FrameworkChoice::from_str(&name, false).unwrap();
            let config = ds2f::config::ExperimentConfig::parse(
                "",
                &[format!("model.framework={name}")],
                "t",
            )
            .unwrap();
            assert_eq!(config.model.framework, choice.0, "{name}");
        }
        assert_eq!(names::<FrameworkChoice>().len(), 8);
        // Every layout's name parses back to it.
        let layouts = names::<LayoutChoice>();
        assert_eq!(layouts[0], "auto");
        assert_eq!(layouts.len(), Layout::ALL.len() + 1);
        for name in &layouts[1..] {
            let LayoutChoice::Named(l) = LayoutChoice::from_str(name, false).unwrap() else {
                panic!("{name}");
            };
            assert_eq!(name.parse::<Layout>().unwrap(), l);
        }
        assert_eq!(names::<LesionChoice>(), ["MA", "HE", "EX", "SE"]);
        assert_eq!(LesionChoice::from_str("ex", false).unwrap().0, Lesion::Ex);
        assert!(LesionChoice::from_str("OD", false).is_err());
        assert_eq!(names::<PaletteChoice>(), ["paper", "okabe-ito"]);
        assert_eq!(names::<CheckpointChoice>(), ["best", "last"]);
    }
}
