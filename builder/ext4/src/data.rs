//! File contents: where they land and how they get there. Blocks are
//! allocated in entry order from the sequential [`Allocator`]; all-zero
//! 4 KiB blocks are left unallocated (holes), as `mke2fs -d` does, and
//! `SEEK_DATA`/`SEEK_HOLE` skip the source's holes without reading them.
//!
//! Small `Content::Path` files are queued and copied in batches: read in
//! parallel (rayon), allocated in queue order, written in parallel with
//! positional writes. The bytes therefore never depend on thread timing.
//! Large files and streams are copied in 1 MiB chunks, never whole.
//!
//! Each file also yields a content digest (sha256 over its non-zero blocks
//! and their positions) that feeds the derived UUID and hash seed; it does
//! not depend on how the source stores holes.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::error::{Ext4WriteError, io};
use crate::extent::{self, FileExtent};
use crate::format::BLOCK_SIZE;
use crate::layout::Allocator;

const BS: usize = BLOCK_SIZE as usize;
/// Files up to this size are read whole in a parallel batch.
pub const BATCH_FILE_MAX: u64 = 4 << 20;
/// A batch is copied once it holds this many bytes ...
pub const BATCH_BYTES: u64 = 32 << 20;
/// ... or this many files.
pub const BATCH_FILES: usize = 1024;
/// Chunk size for streamed copies.
const CHUNK: usize = 1 << 20;

/// A file's placement and digest.
#[derive(Debug, Default)]
pub struct Placed {
    /// Mapped runs, ascending.
    pub extents: Vec<FileExtent>,
    /// sha256 over (block index, block) of every non-zero block.
    pub digest: [u8; 32],
}

/// Where data goes: the image file and the allocator.
pub struct DataSink {
    /// The image.
    pub file: File,
    /// Next free block.
    pub alloc: Allocator,
    /// Blocks past this are not written (a fixed size already exceeded:
    /// `finish` reports `TooSmall`).
    pub limit: Option<u64>,
}

/// A planned write: bytes `buf[off..off + n * BS]` to block `phys`.
struct Write {
    off: usize,
    phys: u64,
    n: u64,
}

fn is_zero(b: &[u8]) -> bool {
    // OR-fold 8-byte words (vectorizes); blocks are only 4 KiB.
    let chunks = b.chunks_exact(8);
    let tail = chunks.remainder();
    chunks.fold(0u64, |a, c| {
        a | u64::from_le_bytes(c.try_into().expect("8 bytes"))
    }) == 0
        && tail.iter().all(|&x| x == 0)
}

impl DataSink {
    /// Plans `buf` (file bytes starting at block `first_logical`): allocates
    /// its non-zero blocks, extends `extents` and `hasher`.
    fn plan(
        &mut self,
        buf: &[u8],
        first_logical: u64,
        extents: &mut Vec<FileExtent>,
        hasher: &mut Sha256,
    ) -> Vec<Write> {
        let mut writes = Vec::new();
        let nblocks = buf.len().div_ceil(BS);
        let mut i = 0;
        while i < nblocks {
            let block = |k: usize| &buf[k * BS..((k + 1) * BS).min(buf.len())];
            if is_zero(block(i)) {
                i += 1;
                continue;
            }
            let start = i;
            while i < nblocks && !is_zero(block(i)) {
                hasher.update((first_logical + i as u64).to_le_bytes());
                hasher.update(block(i));
                i += 1;
            }
            let mut done = start;
            for (phys, n) in self.alloc.runs((i - start) as u64) {
                extent::push(extents, first_logical + done as u64, phys, n);
                writes.push(Write {
                    off: done * BS,
                    phys,
                    n,
                });
                done += n as usize;
            }
        }
        writes
    }

    fn write(&self, buf: &[u8], w: &Write) -> std::io::Result<()> {
        if self.limit.is_some_and(|l| w.phys + w.n > l) {
            return Ok(());
        }
        let end = (w.off + w.n as usize * BS).min(buf.len());
        self.file
            .write_all_at(&buf[w.off..end], w.phys * BLOCK_SIZE)
    }

    /// Copies in-memory bytes.
    pub fn bytes(&mut self, buf: &[u8]) -> Result<Placed, Ext4WriteError> {
        let mut placed = Placed::default();
        let mut h = Sha256::new();
        let writes = self.plan(buf, 0, &mut placed.extents, &mut h);
        for w in &writes {
            self.write(buf, w).map_err(io("writing the image"))?;
        }
        placed.digest = h.finalize().into();
        Ok(placed)
    }

    /// Copies exactly `size` bytes from a stream.
    pub fn reader(
        &mut self,
        r: &mut dyn Read,
        size: u64,
        path: &str,
    ) -> Result<Placed, Ext4WriteError> {
        let mut placed = Placed::default();
        let mut h = Sha256::new();
        let mut buf = vec![0u8; CHUNK];
        let mut pos = 0u64;
        while pos < size {
            let want = (size - pos).min(CHUNK as u64) as usize;
            let mut got = 0;
            while got < want {
                let n = r
                    .read(&mut buf[got..want])
                    .map_err(io(format!("{path}: reading content")))?;
                if n == 0 {
                    return Err(Ext4WriteError::SizeMismatch {
                        path: path.to_string(),
                        expected: size,
                        actual: pos + got as u64,
                    });
                }
                got += n;
            }
            let writes = self.plan(&buf[..want], pos / BLOCK_SIZE, &mut placed.extents, &mut h);
            for w in &writes {
                self.write(&buf[..want], w)
                    .map_err(io("writing the image"))?;
            }
            pos += want as u64;
        }
        placed.digest = h.finalize().into();
        Ok(placed)
    }

    /// Copies a large file in chunks, visiting only its data segments.
    pub fn large_file(
        &mut self,
        src: &Path,
        size: u64,
        path: &str,
    ) -> Result<Placed, Ext4WriteError> {
        let f = File::open(src).map_err(io(format!("{path}: opening {}", src.display())))?;
        let actual = f
            .metadata()
            .map_err(io(format!("{path}: reading {}", src.display())))?
            .len();
        if actual != size {
            return Err(Ext4WriteError::SizeMismatch {
                path: path.to_string(),
                expected: size,
                actual,
            });
        }
        let mut placed = Placed::default();
        let mut h = Sha256::new();
        let mut buf = vec![0u8; CHUNK];
        // Segments rounded out to whole blocks may touch the same block when
        // the source filesystem has smaller blocks: never visit one twice.
        let mut done = 0u64;
        for (seg_start, seg_end) in data_segments(&f, size) {
            let mut pos = (seg_start / BLOCK_SIZE * BLOCK_SIZE).max(done);
            let end = seg_end
                .div_ceil(BLOCK_SIZE)
                .saturating_mul(BLOCK_SIZE)
                .min(size);
            while pos < end {
                let want = (end - pos).min(CHUNK as u64) as usize;
                f.read_exact_at(&mut buf[..want], pos)
                    .map_err(io(format!("{path}: reading {}", src.display())))?;
                let writes = self.plan(&buf[..want], pos / BLOCK_SIZE, &mut placed.extents, &mut h);
                for w in &writes {
                    self.write(&buf[..want], w)
                        .map_err(io("writing the image"))?;
                }
                pos += want as u64;
            }
            done = done.max(pos);
        }
        placed.digest = h.finalize().into();
        Ok(placed)
    }

    /// Copies a batch of small files: parallel read, sequential allocation,
    /// parallel write. Results are in batch order.
    pub fn batch(
        &mut self,
        files: &[(PathBuf, u64, String)],
    ) -> Result<Vec<Placed>, Ext4WriteError> {
        let contents: Vec<Result<Vec<u8>, Ext4WriteError>> = files
            .par_iter()
            .map(|(src, size, path)| read_small(src, *size, path))
            .collect();
        let mut bufs = Vec::with_capacity(files.len());
        for c in contents {
            bufs.push(c?);
        }
        let mut placed = Vec::with_capacity(files.len());
        let mut writes: Vec<(usize, Write)> = Vec::new();
        for (i, buf) in bufs.iter().enumerate() {
            let mut p = Placed::default();
            let mut h = Sha256::new();
            for w in self.plan(buf, 0, &mut p.extents, &mut h) {
                writes.push((i, w));
            }
            p.digest = h.finalize().into();
            placed.push(p);
        }
        let this = &*self;
        let results: Vec<std::io::Result<()>> = writes
            .par_iter()
            .map(|(i, w)| this.write(&bufs[*i], w))
            .collect();
        for r in results {
            r.map_err(io("writing the image"))?;
        }
        Ok(placed)
    }
}

fn read_small(src: &Path, size: u64, path: &str) -> Result<Vec<u8>, Ext4WriteError> {
    let mut f = File::open(src).map_err(io(format!("{path}: opening {}", src.display())))?;
    let mut buf = Vec::with_capacity(size as usize);
    (&mut f)
        .take(size + 1)
        .read_to_end(&mut buf)
        .map_err(io(format!("{path}: reading {}", src.display())))?;
    if buf.len() as u64 != size {
        return Err(Ext4WriteError::SizeMismatch {
            path: path.to_string(),
            expected: size,
            actual: buf.len() as u64,
        });
    }
    Ok(buf)
}

/// The file's data segments `[start, end)` from `SEEK_DATA`/`SEEK_HOLE`;
/// the whole file when the source filesystem cannot tell.
fn data_segments(f: &File, size: u64) -> Vec<(u64, u64)> {
    use rustix::fs::{SeekFrom, seek};
    let mut out = Vec::new();
    let mut pos = 0u64;
    while pos < size {
        let start = match seek(f, SeekFrom::Data(pos)) {
            Ok(s) => s,
            Err(rustix::io::Errno::NXIO) => break,
            Err(_) => return vec![(0, size)],
        };
        let end = match seek(f, SeekFrom::Hole(start)) {
            Ok(e) => e.min(size),
            Err(_) => return vec![(0, size)],
        };
        if end <= start {
            break;
        }
        out.push((start, end));
        pos = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_zero_blocks_become_holes() {
        let tmp = tempfile::tempfile().expect("tmp");
        let mut sink = DataSink {
            file: tmp,
            alloc: Allocator::new(1),
            limit: None,
        };
        let mut buf = vec![0u8; 3 * BS];
        buf[0] = 1;
        buf[2 * BS + 5] = 2;
        let p = sink.bytes(&buf).expect("write");
        assert_eq!(p.extents.len(), 2);
        assert_eq!((p.extents[0].logical, p.extents[0].len), (0, 1));
        assert_eq!((p.extents[1].logical, p.extents[1].len), (2, 1));
        // Contiguous on disk even though the file has a hole.
        assert_eq!(p.extents[1].phys, p.extents[0].phys + 1);
    }
}
