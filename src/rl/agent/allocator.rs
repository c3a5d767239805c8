//! The C allocator's settings for training, process-wide.
//!
//! dfdx allocates and frees a few hundred small-to-medium tensors per minibatch. With glibc's
//! defaults, a free that leaves 128 KiB or more at the top of the heap hands it back to the kernel
//! (trim), and the next minibatch faults the same pages in again, zeroed: 11% of GAT-PPO training
//! ran in the kernel's page-fault and page-clearing paths. Keeping freed memory (and serving large
//! blocks from the heap rather than fresh mappings) removes that: measured with
//! `cargo bench --bench agents`, GAT-PPO 2,600 -> 4,700 steps/s and GCN-PPO 7,000 -> 13,500; the
//! MLP is unchanged. The cost is that a training process keeps its peak heap until it exits.
//! Results do not depend on it (allocation never changes arithmetic).

/// Tells glibc's allocator to keep freed memory for reuse instead of returning it to the kernel.
/// Call once, before training; a no-op on other C libraries.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any training thread starts.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
    }
}
