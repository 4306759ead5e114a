//! Marks the real-data tests `ignored` when `../shared/data` (the public fundus images beside
//! the repository) is absent, as in a bare `git clone`: they then show in `cargo test`'s output
//! as "ignored, needs ../shared/data" instead of failing. `.ci/run` fails without the folder, so
//! CI always runs them.
use std::path::Path;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(no_shared_data)");
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let data = Path::new(&manifest).join("../../../shared/data");
    // Re-checked whenever the folder appears, disappears or changes.
    println!("cargo::rerun-if-changed={}", data.display());
    if !data.is_dir() {
        println!("cargo::rustc-cfg=no_shared_data");
    }
}
