#!/usr/bin/env python3
"""Groups a perf profile of wif-serve by what the time went to (reads
`perf report --stdio --no-children -g none --sort dso,sym` on stdin, percentages of all
samples); prints a table of shares of the server's own samples.

usage: perf report ... | profile_summary.py [TITLE]
"""
import re
import sys

GROUPS = [
    ("jitter entropy (aws-lc RNG seeding)", r"jent_|keccak|xoshiro|rol64|ptr_to_le32|le32_to_ptr|uint32rotl"),
    ("P-256 ECDSA (sign + verify)", r"nistz256|ecdsa|ec_GFp|p256|beeu_mod_inverse|ec_point|ec_scalar|ec_simple|ec_wNAF|ec_felem|ecp_"),
    ("SHA-384/512 (TLS 1.3 transcript + key schedule of TLS_AES_256_GCM_SHA384; ECDSA nonce)", r"sha512|SHA384|sha384|SHA512"),
    ("X25519", r"x25519|curve25519|fiat_25519|x25519"),
    ("SHA-256 / HKDF / HMAC (transcript, key schedule)", r"sha256|hmac|hkdf|HMAC|SHA256"),
    ("AES-GCM (records, DRBG)", r"aes|gcm|ghash|gcm_|CTR_DRBG|ctr_drbg"),
    ("RSA / bignum", r"rsa|RSA|bn_|mont"),
    ("certificate parsing / webpki / x509", r"webpki|x509|der::|asn1|untrusted|pki_types"),
    ("rustls state machine / codec", r"rustls::"),
    ("allocator (malloc/free)", r"malloc|free|_int_|cfree|tcache|realloc|calloc"),
    ("memcpy/memset (user)", r"memmove|memcpy|memset"),
    ("JSON log / formatting", r"serde_json|fmt::|core::fmt|alloc::fmt|itoa|ryu|zmij"),
]


def main():
    total = 0.0
    kernel = 0.0
    groups = {name: 0.0 for name, _ in GROUPS}
    other = {}
    for line in sys.stdin:
        m = re.match(r"\s+([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)$", line)
        if not m:
            continue
        pct, dso, kind, sym = float(m.group(1)), m.group(2), m.group(3), m.group(4).strip()
        total += pct
        if kind == "k":
            kernel += pct
            continue
        for name, rx in GROUPS:
            if re.search(rx, sym):
                groups[name] += pct
                break
        else:
            other[sym] = other.get(sym, 0) + pct
    if total == 0:
        sys.exit("profile_summary.py: no samples")
    title = sys.argv[1] if len(sys.argv) > 1 else "where the server's CPU time went"
    print(f"| {title} | share |")
    print("|---|---:|")
    print(f"| kernel (system calls, TCP, threads, page faults) | {100 * kernel / total:.1f}% |")
    for name, pct in sorted(groups.items(), key=lambda kv: -kv[1]):
        if pct > 0:
            print(f"| {name} | {100 * pct / total:.1f}% |")
    rest = sum(other.values())
    top = ", ".join(f"`{k[:60]}` {100 * v / total:.1f}%" for k, v in sorted(other.items(), key=lambda kv: -kv[1])[:5])
    print(f"| other user-space code (largest: {top}) | {100 * rest / total:.1f}% |")


if __name__ == "__main__":
    main()
