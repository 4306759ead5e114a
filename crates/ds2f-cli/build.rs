//! With the `tch` feature, embeds an rpath to the libtorch the build linked against, so that
//! `ds2f` runs without `LD_LIBRARY_PATH` (torch-sys's own rpath reaches only its C++ wrapper,
//! not the final binary). Without the feature this does nothing.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=LIBTORCH_USE_PYTORCH");
    if std::env::var_os("CARGO_FEATURE_TCH").is_none() {
        return;
    }
    // The same two places torch-sys looks in: `$LIBTORCH/lib`, else the `torch` package of the
    // `python3` on PATH (with LIBTORCH_USE_PYTORCH=1).
    let lib = match std::env::var_os("LIBTORCH") {
        Some(root) => Some(PathBuf::from(root).join("lib")),
        None => Command::new("python3")
            .args([
                "-c",
                "import os, torch; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))",
            ])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())),
    };
    match lib {
        Some(lib) if lib.is_dir() => {
            println!("cargo:rustc-link-arg-bins=-Wl,-rpath,{}", lib.display());
        }
        _ => println!(
            "cargo:warning=libtorch's lib folder not found: run ds2f with LD_LIBRARY_PATH set to it"
        ),
    }
}
