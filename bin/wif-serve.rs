fn main() -> std::process::ExitCode {
    malloc::tune();
    wif::tools::serve::main()
}

/// glibc's allocator, tuned for a server with a thread per open connection.
///
/// - **Arenas**: glibc gives a thread that allocates while another holds the lock an arena of
///   its own, up to eight per core, and memory freed in one arena is never reused by another:
///   peak memory spent for nothing. One arena per CPU the server may run on keeps the lock
///   uncontended.
/// - **Per-thread caches**: each thread keeps up to seven freed chunks of every small size
///   for itself (the tcache), and only gives them back when it exits. Connection threads are
///   reused and live on, so with a few dozen of them most of the heap was chunks parked in
///   caches (measured: 1.7 MiB of heap at 16 connections, 0.7 MiB without the caches, and no
///   measurable CPU cost per handshake or request; scripts/bench/analysis.md).
///
/// Both are glibc tunables, which glibc reads only as a process starts. So when the operator
/// has set neither `GLIBC_TUNABLES` nor `MALLOC_ARENA_MAX`, wif-serve executes itself again
/// (the same program, arguments and process id) with `GLIBC_TUNABLES` set, and removes the
/// variable again once it runs, so that nothing it starts inherits it. An operator's own
/// setting wins, and so does a preloaded library (`LD_PRELOAD`: another allocator, or a tool
/// such as valgrind, which must see the program it started); if the program cannot be
/// executed again, it runs untuned.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod malloc {
    use std::ffi::OsString;
    use std::os::unix::process::CommandExt;

    const VARIABLE: &str = "GLIBC_TUNABLES";

    /// Runs first, before any other thread exists.
    pub fn tune() {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let ours = tunables(cpus);
        match std::env::var_os(VARIABLE) {
            // Set by the execution below: in force now; children need not inherit it.
            Some(v) if v == ours.as_str() => std::env::remove_var(VARIABLE),
            Some(_) => {}
            None if ["MALLOC_ARENA_MAX", "LD_PRELOAD"].iter().any(|v| std::env::var_os(v).is_some()) => {}
            None => {
                let mut args = std::env::args_os();
                let arg0 = args.next().unwrap_or_else(|| OsString::from("wif-serve"));
                // Returns only if the program could not be executed again.
                let _ = std::process::Command::new("/proc/self/exe").arg0(arg0).args(args).env(VARIABLE, &ours).exec();
            }
        }
    }

    /// The tunables for a server that may run on `cpus` CPUs.
    fn tunables(cpus: usize) -> String {
        format!("glibc.malloc.arena_max={cpus}:glibc.malloc.tcache_count=0")
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn one_arena_per_cpu_and_no_thread_caches() {
            assert_eq!(super::tunables(2), "glibc.malloc.arena_max=2:glibc.malloc.tcache_count=0");
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod malloc {
    pub fn tune() {}
}
