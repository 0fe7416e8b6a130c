//! The two checksums Cloud Storage publishes for an object (`crc32c`, `md5Hash`, and the
//! `X-Goog-Hash` header): CRC-32C (Castagnoli) and MD5, both as base64 of the big-endian
//! digest. Neither is in aws-lc-rs's API, and both are a few lines.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), bit by bit: objects are small.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
        }
    }
    !crc
}

/// Per-round shift amounts of MD5 (RFC 1321).
const SHIFTS: [u32; 16] = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];

/// MD5 (RFC 1321). Cloud Storage's `md5Hash`; not used for anything secret.
pub fn md5(data: &[u8]) -> [u8; 16] {
    let k: Vec<u32> = (0..64).map(|i: i32| (f64::from(i + 1).sin().abs() * 4_294_967_296.0) as u32).collect();
    let mut state: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64).wrapping_mul(8)).to_le_bytes());
    for chunk in msg.chunks_exact(64) {
        let w: Vec<u32> = chunk.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        let [mut a, mut b, mut c, mut d] = state;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let rotated =
                a.wrapping_add(f).wrapping_add(k[i]).wrapping_add(w[g]).rotate_left(SHIFTS[(i / 16) * 4 + i % 4]);
            (a, d, c) = (d, c, b);
            b = b.wrapping_add(rotated);
        }
        for (s, v) in state.iter_mut().zip([a, b, c, d]) {
            *s = s.wrapping_add(v);
        }
    }
    let mut out = [0u8; 16];
    for (i, s) in state.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&s.to_le_bytes());
    }
    out
}

/// `crc32c` as Cloud Storage gives it: base64 of the big-endian value.
pub fn crc32c_b64(data: &[u8]) -> String {
    STANDARD.encode(crc32c(data).to_be_bytes())
}

/// `md5Hash` as Cloud Storage gives it: base64 of the digest.
pub fn md5_b64(data: &[u8]) -> String {
    STANDARD.encode(md5(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_values() {
        // The standard check value, and the RFC 3720 (iSCSI) vector of 32 zero bytes.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(b""), 0);
        // What Cloud Storage shows for "hello world" (gsutil hash).
        assert_eq!(crc32c_b64(b"hello world"), "yZRlqg==");
    }

    #[test]
    fn md5_rfc1321_vectors() {
        let hex = |d: &[u8]| hex::encode(md5(d));
        assert_eq!(hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(hex(b"message digest"), "f96b697d7cb7938d525a2f31aaf161d0");
        assert_eq!(
            hex(b"12345678901234567890123456789012345678901234567890123456789012345678901234567890"),
            "57edf4a22be3c955ac49da2e2107b67a"
        );
        assert_eq!(md5_b64(b"hello world"), "XrY7u+Ae7tCTyyK7j1rNww==");
    }
}
