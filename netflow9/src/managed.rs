//! Storage that is either borrowed from the caller (no allocator needed) or
//! owned, allocated once at construction (feature `alloc`).

use core::ops::{Deref, DerefMut};

#[cfg(feature = "alloc")]
use alloc::boxed::Box;

/// A fixed-length slice: borrowed, or owned and allocated once.
#[derive(Debug)]
pub(crate) enum Managed<'a, T> {
    /// Caller-provided storage.
    Borrowed(&'a mut [T]),
    /// Owned storage, allocated at construction and never resized.
    #[cfg(feature = "alloc")]
    Owned(Box<[T]>),
}

impl<T> Deref for Managed<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match self {
            Managed::Borrowed(s) => s,
            #[cfg(feature = "alloc")]
            Managed::Owned(b) => b,
        }
    }
}

impl<T> DerefMut for Managed<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match self {
            Managed::Borrowed(s) => s,
            #[cfg(feature = "alloc")]
            Managed::Owned(b) => b,
        }
    }
}

impl<'a, T> From<&'a mut [T]> for Managed<'a, T> {
    fn from(s: &'a mut [T]) -> Self {
        Managed::Borrowed(s)
    }
}

#[cfg(feature = "alloc")]
impl<T: Clone> Managed<'static, T> {
    /// Allocates `len` copies of `value`, once.
    pub(crate) fn owned(len: usize, value: T) -> Self {
        Managed::Owned(alloc::vec![value; len].into_boxed_slice())
    }
}
