//! A growable `f32` scratch buffer whose slice starts on a 64-byte (cache-line) boundary.
//!
//! Why: the AVX-512 micro-kernels load 64-byte vectors at offsets that are multiples of 16
//! floats from the start of their scratch buffers. A `Vec<f32>` is only 16-byte aligned (glibc
//! returns large blocks at a page start + 16 bytes), so every such load would straddle two
//! cache lines. std has no aligned `Vec`, and a crate for one buffer type is not worth it.

/// Floats per cache line.
const LINE: usize = 16;

/// A `Vec<f32>` with up to one cache line of slack in front of the aligned slice.
#[derive(Default)]
pub struct AlignedBuf {
    data: Vec<f32>,
    offset: usize,
    len: usize,
}

impl AlignedBuf {
    /// A buffer of `len` zeros.
    pub fn zeroed(len: usize) -> Self {
        let mut buf = Self::default();
        buf.resize(len);
        buf
    }

    /// Makes the aligned slice `len` floats long. Values kept from before are not preserved
    /// when the buffer has to grow (callers overwrite what they use).
    pub fn resize(&mut self, len: usize) {
        if self.data.len() < len + LINE {
            self.data = vec![0.0; len + LINE];
            let misalignment = (self.data.as_ptr() as usize / 4) % LINE;
            self.offset = (LINE - misalignment) % LINE;
        }
        self.len = len;
    }

    /// The aligned floats.
    pub fn as_slice(&self) -> &[f32] {
        &self.data[self.offset..][..self.len]
    }

    /// The aligned floats, writable.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.data[self.offset..][..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_start_on_a_cache_line_and_have_the_asked_length() {
        let mut buf = AlignedBuf::zeroed(5);
        for len in [5, 1, 100_000, 3, 1 << 20] {
            buf.resize(len);
            assert_eq!(buf.as_slice().len(), len);
            assert_eq!(buf.as_mut_slice().as_ptr() as usize % 64, 0, "len {len}");
        }
        assert!(AlignedBuf::zeroed(7).as_slice().iter().all(|&v| v == 0.0));
    }
}
