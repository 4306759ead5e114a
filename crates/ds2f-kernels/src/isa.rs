//! The instruction set the micro-kernels run with, detected once per process.

/// An instruction set of the micro-kernels. Every one adds the same products in the same order,
/// so their results are bitwise equal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512F: a tile in 16-lane registers (`avx512.rs`).
    Avx512,
    /// AVX2 + FMA (x86-64 CPUs without AVX-512: AMD up to Zen 3, Intel's client cores since
    /// Alder Lake): the same tile in passes over 8-lane registers (`avx2.rs`).
    Avx2,
    /// Portable Rust with `f32::mul_add` (`scalar.rs`): every CPU. Slow; the drivers' logic is
    /// tested with it on CPUs without SIMD, but [`crate::Kernel::Auto`] picks im2col + `gemm`
    /// there instead.
    Scalar,
}

impl Isa {
    /// The instruction set this process's kernels use: AVX-512F where present, else AVX2 + FMA,
    /// else [`Isa::Scalar`]; `DS2F_ISA=avx2` or `DS2F_ISA=none` picks a lesser one (to compare
    /// them on one machine; `none` also keeps [`crate::Kernel::Auto`] on im2col + `gemm`).
    /// Resolved once.
    pub fn best() -> Isa {
        static ISA: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *ISA.get_or_init(|| {
            let detected = detect();
            match std::env::var("DS2F_ISA").ok().as_deref() {
                Some("none") => Isa::Scalar,
                Some("avx2") if detected != Isa::Scalar => Isa::Avx2,
                _ => detected,
            }
        })
    }

    /// Whether this is a SIMD instruction set (the fast kernels run only with one).
    pub fn is_simd(self) -> bool {
        self != Isa::Scalar
    }

    /// Every instruction set this CPU runs, best first ([`Isa::Scalar`] always, last).
    pub fn available() -> Vec<Isa> {
        match detect() {
            Isa::Avx512 => vec![Isa::Avx512, Isa::Avx2, Isa::Scalar],
            Isa::Avx2 => vec![Isa::Avx2, Isa::Scalar],
            Isa::Scalar => vec![Isa::Scalar],
        }
    }

    /// Whether this CPU runs `self`.
    pub fn runs_here(self) -> bool {
        Isa::available().contains(&self)
    }
}

/// The best instruction set of this CPU (std caches the answers).
fn detect() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Isa::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Isa::Avx2;
        }
    }
    Isa::Scalar
}
