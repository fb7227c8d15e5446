//! Giving freed memory back to the system.

/// Returns the free memory of the allocator's heaps to the system (glibc's `malloc_trim`).
/// glibc keeps freed blocks below its mmap threshold in its arenas: after a large network
/// was dropped, or grew by reallocation during a task, the process kept up to a gigabyte it
/// no longer used. Walks every arena, so call it after large structures were freed, on a
/// blocking thread.
pub(crate) fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only hands free pages of the allocator back to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}
