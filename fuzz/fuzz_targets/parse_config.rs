//! Experiment config parsing (TOML text and `--set` overrides) on arbitrary input: a config or
//! a typed error, never a panic.
#![no_main]
use ds2f::config::ExperimentConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // The first line, if it looks like `key=value`, is also tried as an override.
    let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
    let _ = ExperimentConfig::parse(&text, &[], "fuzz.toml");
    let _ = ExperimentConfig::parse(rest, &[first.to_string()], "fuzz.toml");
    if let Ok(config) = ExperimentConfig::parse(&text, &[], "fuzz.toml") {
        // A valid config round-trips through its saved form.
        let again = ExperimentConfig::parse(&config.to_toml(), &[], "saved.toml")
            .expect("a saved config parses");
        assert_eq!(config, again);
    }
});
