fn main() -> std::process::ExitCode {
    limit_malloc_arenas();
    wif::tools::serve::main()
}

/// glibc gives a thread that allocates while another holds the lock an arena of its own, up
/// to eight per core, and memory freed in one arena is never reused by another: with a
/// thread per open connection that is peak memory spent for nothing. One arena per CPU the
/// server may run on keeps the lock uncontended. An operator's own MALLOC_ARENA_MAX (or
/// GLIBC_TUNABLES) wins. Called first, before any other thread exists.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    let set_by_operator = ["MALLOC_ARENA_MAX", "GLIBC_TUNABLES"].iter().any(|v| std::env::var_os(v).is_some());
    if set_by_operator {
        return;
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let arenas = libc::c_int::try_from(cpus).unwrap_or(libc::c_int::MAX);
    // SAFETY: mallopt only sets one of the allocator's tunables; no pointer is passed, and no
    // other thread exists yet to allocate concurrently.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, arenas);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}
