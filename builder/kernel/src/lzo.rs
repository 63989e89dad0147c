//! LZO payloads as the kernel stores them: an `lzop` file (the kernel's
//! `cmd_lzo` runs `lzop -9`) whose blocks are LZO1X-compressed.
//!
//! The container parser follows lzop's `p_header`/`x_decompress` (as does the
//! kernel's `lib/decompress_unlzo.c`); the block decoder is a safe Rust
//! translation of the kernel's `lib/lzo/lzo1x_decompress_safe.c` for the
//! classic LZO1X bitstream (lzop never writes the kernel-only LZO-RLE
//! variant). Checksums (Adler-32 or CRC-32) are verified when present.
//!
//! Limits: no multi-part archives and no filters (lzop never writes them
//! for a pipe).

/// An lzop stream or an LZO1X block is malformed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LzoError {
    /// Not an lzop stream.
    #[error("not an lzop stream (bad magic)")]
    BadMagic,
    /// The stream ends early.
    #[error("lzop stream truncated at byte {0}")]
    Truncated(usize),
    /// A header field lzop never writes.
    #[error("lzop: unsupported {0}")]
    Unsupported(String),
    /// A compressed block does not decode.
    #[error("LZO1X block at byte {offset}: {what}")]
    Corrupt {
        /// Offset of the block in the stream.
        offset: usize,
        /// What went wrong.
        what: &'static str,
    },
    /// A checksum does not match.
    #[error(
        "lzop {what} checksum mismatch at byte {offset}: expected {expected:08x}, got {actual:08x}"
    )]
    Checksum {
        /// Which checksum.
        what: &'static str,
        /// Offset of the block.
        offset: usize,
        /// Stored value.
        expected: u32,
        /// Computed value.
        actual: u32,
    },
}

/// The lzop file magic.
pub const LZOP_MAGIC: [u8; 9] = [0x89, b'L', b'Z', b'O', 0x00, 0x0d, 0x0a, 0x1a, 0x0a];

// Header flags (lzop's conf.h).
const F_ADLER32_D: u32 = 0x0000_0001;
const F_ADLER32_C: u32 = 0x0000_0002;
const F_H_EXTRA_FIELD: u32 = 0x0000_0040;
const F_CRC32_D: u32 = 0x0000_0100;
const F_CRC32_C: u32 = 0x0000_0200;
const F_MULTIPART: u32 = 0x0000_0400;
const F_H_FILTER: u32 = 0x0000_0800;
const F_H_CRC32: u32 = 0x0000_1000;

/// lzop's largest block (256 KiB); bigger claims are corrupt.
const MAX_BLOCK: usize = 64 * 1024 * 1024;

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], LzoError> {
        let s = self
            .b
            .get(self.pos..self.pos + n)
            .ok_or(LzoError::Truncated(self.pos))?;
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, LzoError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, LzoError> {
        Ok(u16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn u32(&mut self) -> Result<u32, LzoError> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
}

/// Adler-32 as lzop computes it (seed 1).
pub fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65521;
    let (mut a, mut b) = (1u32, 0u32);
    // 5552 is the largest n with 255n(n+1)/2 + (n+1)(MOD-1) < 2^32.
    for chunk in data.chunks(5552) {
        for &x in chunk {
            a += u32::from(x);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = flate2::Crc::new();
    c.update(data);
    c.sum()
}

/// Decompresses an lzop stream; returns the data and the number of input
/// bytes consumed (the kernel appends its 4-byte size after the stream).
pub fn decompress_lzop(input: &[u8]) -> Result<(Vec<u8>, usize), LzoError> {
    if !input.starts_with(&LZOP_MAGIC) {
        return Err(LzoError::BadMagic);
    }
    let mut r = Reader {
        b: input,
        pos: LZOP_MAGIC.len(),
    };
    let header_start = r.pos;
    let version = r.u16()?;
    let _lib_version = r.u16()?;
    if version >= 0x0940 {
        let _version_needed = r.u16()?;
    }
    let method = r.u8()?;
    if !(1..=3).contains(&method) {
        return Err(LzoError::Unsupported(format!("method {method}")));
    }
    if version >= 0x0940 {
        let _level = r.u8()?;
    }
    let flags = r.u32()?;
    if flags & F_MULTIPART != 0 {
        return Err(LzoError::Unsupported("multi-part archive".into()));
    }
    if flags & F_H_FILTER != 0 {
        let _filter = r.u32()?;
    }
    let _mode = r.u32()?;
    let _mtime_low = r.u32()?;
    if version >= 0x0940 {
        let _mtime_high = r.u32()?;
    }
    let name_len = usize::from(r.u8()?);
    r.take(name_len)?;
    let header_end = r.pos;
    let stored = r.u32()?;
    let header = &input[header_start..header_end];
    let computed = if flags & F_H_CRC32 != 0 {
        crc32(header)
    } else {
        adler32(header)
    };
    if stored != computed {
        return Err(LzoError::Checksum {
            what: "header",
            offset: header_start,
            expected: stored,
            actual: computed,
        });
    }
    if flags & F_H_EXTRA_FIELD != 0 {
        let len = r.u32()? as usize;
        r.take(len)?;
        let _extra_checksum = r.u32()?;
    }
    let mut out = Vec::new();
    loop {
        let block_at = r.pos;
        let dst_len = r.u32()? as usize;
        if dst_len == 0 {
            break;
        }
        if dst_len > MAX_BLOCK {
            return Err(LzoError::Corrupt {
                offset: block_at,
                what: "block larger than lzop writes",
            });
        }
        let src_len = r.u32()? as usize;
        let d_sum = if flags & (F_ADLER32_D | F_CRC32_D) != 0 {
            Some(r.u32()?)
        } else {
            None
        };
        let c_sum = if src_len < dst_len && flags & (F_ADLER32_C | F_CRC32_C) != 0 {
            Some(r.u32()?)
        } else {
            None
        };
        let src = r.take(src_len)?;
        let check = |what, stored: Option<u32>, data: &[u8], crc: bool| match stored {
            Some(expected) => {
                let actual = if crc { crc32(data) } else { adler32(data) };
                if expected == actual {
                    Ok(())
                } else {
                    Err(LzoError::Checksum {
                        what,
                        offset: block_at,
                        expected,
                        actual,
                    })
                }
            }
            None => Ok(()),
        };
        check("compressed block", c_sum, src, flags & F_CRC32_C != 0)?;
        let start = out.len();
        if src_len == dst_len {
            out.extend_from_slice(src); // stored: did not compress
        } else if src_len > dst_len {
            return Err(LzoError::Corrupt {
                offset: block_at,
                what: "compressed size larger than the block",
            });
        } else {
            out.resize(start + dst_len, 0);
            let n = lzo1x_decompress(src, &mut out[start..]).map_err(|what| LzoError::Corrupt {
                offset: block_at,
                what,
            })?;
            if n != dst_len {
                return Err(LzoError::Corrupt {
                    offset: block_at,
                    what: "block decodes to a different length than its header says",
                });
            }
        }
        check("data", d_sum, &out[start..], flags & F_CRC32_D != 0)?;
    }
    Ok((out, r.pos))
}

/// Offset of the first M2 match beyond which the M3/M4 encodings start.
const M2_MAX_OFFSET: usize = 0x0800;

/// Decodes one LZO1X block into `out` (which must be large enough) and
/// returns the number of bytes written. Every read and write is bounds
/// checked: corrupt input gives an error, never a panic.
pub fn lzo1x_decompress(input: &[u8], out: &mut [u8]) -> Result<usize, &'static str> {
    const OVERRUN_IN: &str = "input overrun";
    const OVERRUN_OUT: &str = "output overrun";
    const LOOKBEHIND: &str = "match distance before the start of the output";
    let mut ip = 0usize;
    let mut op = 0usize;
    let byte = |ip: usize| input.get(ip).copied().ok_or(OVERRUN_IN);
    let le16 = |ip: usize| -> Result<usize, &'static str> {
        Ok(usize::from(byte(ip)?) | (usize::from(byte(ip + 1)?) << 8))
    };
    // A run of zero bytes extends a length by 255 each, then the next byte.
    let extend = |ip: &mut usize, base: usize| -> Result<usize, &'static str> {
        let mut t = 0usize;
        while byte(*ip)? == 0 {
            t += 255;
            *ip += 1;
        }
        t += base + usize::from(byte(*ip)?);
        *ip += 1;
        Ok(t)
    };
    fn copy_literals(
        input: &[u8],
        ip: &mut usize,
        out: &mut [u8],
        op: &mut usize,
        n: usize,
    ) -> Result<(), &'static str> {
        let src = input.get(*ip..*ip + n).ok_or("input overrun")?;
        out.get_mut(*op..*op + n)
            .ok_or("output overrun")?
            .copy_from_slice(src);
        *ip += n;
        *op += n;
        Ok(())
    }
    fn copy_match(
        out: &mut [u8],
        op: &mut usize,
        dist_back: usize,
        n: usize,
    ) -> Result<(), &'static str> {
        let from = op
            .checked_sub(dist_back)
            .ok_or("match distance before the start of the output")?;
        if *op + n > out.len() {
            return Err("output overrun");
        }
        // Byte by byte: a match may overlap the bytes it produces.
        for k in 0..n {
            out[*op + k] = out[from + k];
        }
        *op += n;
        Ok(())
    }

    if input.len() < 3 {
        return Err(OVERRUN_IN);
    }
    let mut state: usize = 0;
    let mut t: usize;
    let mut next: usize;
    // The first byte may start with a literal run (> 17) or a short
    // literal tail (18..=20).
    let first = usize::from(input[0]);
    if first > 17 {
        ip = 1;
        t = first - 17;
        copy_literals(input, &mut ip, out, &mut op, t)?;
        state = if t < 4 { t } else { 4 };
    }
    loop {
        t = usize::from(byte(ip)?);
        ip += 1;
        let dist: usize; // distance back from op
        if t < 16 {
            if state == 0 {
                // A literal run.
                if t == 0 {
                    t = extend(&mut ip, 15)?;
                }
                t += 3;
                copy_literals(input, &mut ip, out, &mut op, t)?;
                state = 4;
                continue;
            } else if state != 4 {
                // A 2-byte match right after a short literal tail.
                next = t & 3;
                let d = 1 + (t >> 2) + (usize::from(byte(ip)?) << 2);
                ip += 1;
                copy_match(out, &mut op, d, 2)?;
                copy_literals(input, &mut ip, out, &mut op, next)?;
                state = next;
                continue;
            } else {
                // A 3-byte match after a literal run of 4 or more.
                next = t & 3;
                dist = 1 + M2_MAX_OFFSET + (t >> 2) + (usize::from(byte(ip)?) << 2);
                ip += 1;
                t = 3;
            }
        } else if t >= 64 {
            // M2: length 3..8, distance up to 2 KiB.
            next = t & 3;
            dist = 1 + ((t >> 2) & 7) + (usize::from(byte(ip)?) << 3);
            ip += 1;
            t = (t >> 5) - 1 + 2;
        } else if t >= 32 {
            // M3: distance up to 16 KiB.
            t = (t & 31) + 2;
            if t == 2 {
                t = extend(&mut ip, 31)? + 2;
            }
            let v = le16(ip)?;
            ip += 2;
            dist = 1 + (v >> 2);
            next = v & 3;
        } else {
            // M4 (16..31): distance 16..48 KiB, or the end-of-stream marker.
            let high = (t & 8) << 11;
            t = (t & 7) + 2;
            if t == 2 {
                t = extend(&mut ip, 7)? + 2;
            }
            let v = le16(ip)?;
            ip += 2;
            next = v & 3;
            let d = high + (v >> 2);
            if d == 0 {
                // End of stream: the marker is a length-3 match at distance 0.
                return if t != 3 {
                    Err("bad end-of-stream marker")
                } else if ip == input.len() {
                    Ok(op)
                } else if ip < input.len() {
                    Err("input not fully consumed")
                } else {
                    Err(OVERRUN_IN)
                };
            }
            dist = d + 0x4000;
        }
        if dist > op {
            return Err(LOOKBEHIND);
        }
        if t < 3 {
            return Err("match shorter than 3");
        }
        copy_match(out, &mut op, dist, t).map_err(|_| OVERRUN_OUT)?;
        // match_next: up to 3 literals follow a match.
        copy_literals(input, &mut ip, out, &mut op, next)?;
        state = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_adler32_known_value() {
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
        assert_eq!(adler32(b""), 1);
    }

    #[test]
    fn test_lzo1x_literal_only_stream() {
        // 17 + 5 = a 5-byte literal run, then the end marker (M4, length 3,
        // distance 0): 0x11 0x00 0x00.
        let block = [22, b'h', b'e', b'l', b'l', b'o', 0x11, 0x00, 0x00];
        let mut out = [0u8; 16];
        let n = lzo1x_decompress(&block, &mut out).unwrap();
        assert_eq!(&out[..n], b"hello");
    }

    #[test]
    fn test_lzo1x_rejects_corrupt_input_without_panicking() {
        let mut out = [0u8; 64];
        // A match reaching before the start of the output.
        assert!(lzo1x_decompress(&[0x40, 0xff, 0x11, 0, 0], &mut out).is_err());
        // Truncated literal run.
        assert_eq!(
            lzo1x_decompress(&[30, 1, 2], &mut out),
            Err("input overrun")
        );
        // Output too small.
        let block = [22, b'h', b'e', b'l', b'l', b'o', 0x11, 0x00, 0x00];
        assert_eq!(
            lzo1x_decompress(&block, &mut [0u8; 3]),
            Err("output overrun")
        );
    }

    #[test]
    fn test_lzop_real_tool_round_trip() {
        // Needs lzop (scripts/deps.sh installs it); real data with long
        // and short matches, literal runs and a stored block.
        let Some(lzop) = ["/usr/bin/lzop", "/bin/lzop"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
        else {
            panic!("lzop is not installed: run scripts/deps.sh");
        };
        let mut data = Vec::new();
        for i in 0..200_000u32 {
            data.extend_from_slice(format!("line {i} {}\n", i % 97).as_bytes());
        }
        // Incompressible bytes make lzop store a block as is.
        let mut x = 12345u32;
        for _ in 0..300_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            data.push((x >> 16) as u8);
        }
        let mut child = std::process::Command::new(lzop)
            .args(["-9", "-c"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let d2 = data.clone();
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            stdin.write_all(&d2).unwrap();
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        assert!(out.status.success());
        let mut stream = out.stdout.clone();
        stream.extend_from_slice(&[1, 2, 3, 4]); // the kernel's size trailer
        let (decoded, used) = decompress_lzop(&stream).unwrap();
        assert_eq!(used, out.stdout.len());
        assert_eq!(decoded, data);
        // Flipping a byte in the middle trips the checksum or the decoder.
        let mut bad = out.stdout;
        let mid = bad.len() / 3;
        bad[mid] ^= 0x55;
        assert!(decompress_lzop(&bad).is_err());
    }
}
