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
/// has set neither `GLIBC_TUNABLES` nor `MALLOC_ARENA_MAX`, wif-serve executes its own program
/// file once more (same arguments, process id and name) with `GLIBC_TUNABLES` set, and removes
/// the variable again once it runs, so that nothing it starts inherits it. It never does so
/// twice (a marker variable says it was done), nor when a library is preloaded (`LD_PRELOAD`:
/// another allocator, or a tool such as valgrind, which must see the program it started), nor
/// for a privileged process (setuid or file capabilities: glibc then ignores the tunables), nor
/// when its program file is not the one it was started as (through the dynamic loader, or
/// replaced since). If the execution fails, it says so and runs untuned.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod malloc {
    use std::ffi::OsString;
    use std::os::unix::process::CommandExt;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    const VARIABLE: &str = "GLIBC_TUNABLES";
    /// Set for the second start only: whatever becomes of `GLIBC_TUNABLES`, there is no third.
    const MARKER: &str = "WIF_SERVE_TUNED";

    /// Runs first, before any other thread exists.
    pub fn tune() {
        if std::env::var_os(MARKER).is_some() {
            // Ours, in force now (glibc may have cut it at its first ':' as it parsed it);
            // children need not inherit either.
            std::env::remove_var(MARKER);
            std::env::remove_var(VARIABLE);
            return;
        }
        if [VARIABLE, "MALLOC_ARENA_MAX", "LD_PRELOAD"].iter().any(|v| std::env::var_os(v).is_some()) || privileged() {
            return;
        }
        let Some(program) = own_program() else { return };
        let mut args = std::env::args_os();
        let arg0 = args.next().unwrap_or_else(|| OsString::from("wif-serve"));
        // Returns only if the program could not be executed again.
        let ours = tunables(std::thread::available_parallelism().map_or(1, |n| n.get()));
        let err =
            std::process::Command::new(&program).arg0(arg0).args(args).env(VARIABLE, ours).env(MARKER, "1").exec();
        // Preparing the execution set SIGPIPE back to its default (ending the process): a write
        // to a closed pipe or socket must stay an error, as Rust's start-up makes it.
        let _ = signal_hook::flag::register(signal_hook::consts::SIGPIPE, Arc::new(AtomicBool::new(false)));
        wif::core::diag::info(
            "wif-serve",
            format!(
                "warning: could not execute {} again to tune the allocator ({err}); running with glibc's defaults",
                program.display()
            ),
        );
    }

    /// The tunables for a server that may run on `cpus` CPUs.
    fn tunables(cpus: usize) -> String {
        format!("glibc.malloc.arena_max={cpus}:glibc.malloc.tcache_count=0")
    }

    /// The program file, when it is the one the process was started as: not the dynamic loader
    /// (`ld-linux.so wif-serve ...`), nor a file since deleted or replaced.
    fn own_program() -> Option<PathBuf> {
        let exe = std::env::current_exe().ok()?;
        let arg0 = std::env::args_os().next()?;
        (exe.file_name()? == Path::new(&arg0).file_name()?).then_some(exe)
    }

    /// Whether the kernel started the process privileged (setuid, setgid or file
    /// capabilities: AT_SECURE in its auxiliary vector); also when that cannot be read.
    fn privileged() -> bool {
        const AT_SECURE: usize = 23;
        const WORD: usize = std::mem::size_of::<usize>();
        let Ok(auxv) = std::fs::read("/proc/self/auxv") else { return true };
        auxv.chunks_exact(2 * WORD).any(|pair| {
            let (key, value) = pair.split_at(WORD);
            <[u8; WORD]>::try_from(key).is_ok_and(|k| usize::from_ne_bytes(k) == AT_SECURE)
                && value.iter().any(|b| *b != 0)
        })
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn one_arena_per_cpu_and_no_thread_caches() {
            assert_eq!(super::tunables(2), "glibc.malloc.arena_max=2:glibc.malloc.tcache_count=0");
        }

        #[test]
        fn a_test_process_is_not_privileged() {
            assert!(!super::privileged());
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod malloc {
    pub fn tune() {}
}
