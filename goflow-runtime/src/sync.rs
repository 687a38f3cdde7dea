//! A poison-free lock, as tokio's `loom/std/mutex.rs` has: a panic while a lock is held (in a
//! node, say) must not make every later lock of the same state panic too; the state behind
//! each lock here stays consistent between statements.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, ignoring poisoning.
pub(crate) fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
