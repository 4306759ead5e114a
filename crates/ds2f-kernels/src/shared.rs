//! A raw output pointer shared by parallel jobs that write disjoint parts of one buffer.

/// A raw output pointer shared by jobs that write disjoint parts of one buffer.
#[derive(Clone, Copy)]
pub(crate) struct SharedMut(pub(crate) *mut f32);
// SAFETY: every use writes a region no other job touches (see the call sites).
unsafe impl Send for SharedMut {}
// SAFETY: as above: the jobs never touch one another's regions.
unsafe impl Sync for SharedMut {}

impl SharedMut {
    /// The pointer `offset` floats further (a method, so that closures capture the whole
    /// `Send` wrapper rather than its raw-pointer field).
    ///
    /// # Safety
    /// `offset` must stay inside the buffer.
    pub(crate) unsafe fn at(self, offset: usize) -> *mut f32 {
        // SAFETY: the caller keeps offset inside the buffer.
        unsafe { self.0.add(offset) }
    }
}
