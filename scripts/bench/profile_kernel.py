#!/usr/bin/env python3
"""Splits the kernel part of a perf profile by the system call (or fault) it was in, from
`perf script` output with call chains on stdin, for the named process commands.

usage: perf script -i perf.data --comms conn,wif-serve | profile_kernel.py
"""
import re
import sys
from collections import Counter

RULES = [
    ("thread create (clone3, stack mmap)", r"sys_clone|copy_process|kernel_clone|wake_up_new_task"),
    ("thread exit / stack munmap", r"do_exit|sys_exit|sys_munmap|__vm_munmap|exit_mm|mmput"),
    ("mmap / mprotect (stacks, allocator)", r"sys_mmap|sys_mprotect|vm_mmap|do_mmap|sys_madvise"),
    ("page faults", r"exc_page_fault|do_user_addr_fault|handle_mm_fault"),
    ("accept", r"sys_accept"),
    ("socket write (TCP send)", r"sys_write|sys_sendto|sys_sendmsg|tcp_sendmsg"),
    ("socket read (TCP receive)", r"sys_read|sys_recvfrom|tcp_recvmsg"),
    ("close / shutdown", r"sys_close|sys_shutdown|__fput|tcp_close"),
    ("stat of files (reload checks)", r"sys_statx|sys_newfstatat|sys_newstat|sys_stat|vfs_statx|filename_lookup"),
    ("futex / scheduling", r"sys_futex|schedule|sys_sched_yield|finish_task_switch"),
    ("poll / setsockopt / other syscalls", r"sys_poll|sys_ppoll|sys_setsockopt|sys_getsockopt|sys_ioctl|sys_fcntl|sys_getpeername"),
    ("softirq / network receive", r"softirq|net_rx|tcp_v4_rcv|ip_rcv"),
]


def main():
    counts = Counter()
    user = 0
    stack = []
    kernel = False
    for line in sys.stdin:
        if not line.strip():
            if stack:
                if kernel:
                    text = " ".join(stack)
                    for name, rx in RULES:
                        if re.search(rx, text):
                            counts[name] += 1
                            break
                    else:
                        counts["other kernel: " + stack[0]] += 1
                else:
                    user += 1
            stack, kernel = [], False
            continue
        if not line.startswith((" ", "\t")):
            continue
        parts = line.split()
        if len(parts) >= 2:
            sym = parts[1]
            if not stack:
                kernel = "kernel" in line
            stack.append(sym)
    total = user + sum(counts.values())
    if not total:
        sys.exit("profile_kernel.py: no samples")
    print("| kernel time by system call | share of the server's CPU |")
    print("|---|---:|")
    for name, n in counts.most_common(14):
        print(f"| {name} | {100 * n / total:.1f}% |")
    print(f"| (user space, all) | {100 * user / total:.1f}% |")


if __name__ == "__main__":
    main()
