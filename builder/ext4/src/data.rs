//! File contents: where they land and how they get there. Blocks are
//! allocated in entry order from the sequential [`Allocator`]; all-zero
//! 4 KiB blocks are left unallocated (holes), as `mke2fs -d` does, and
//! `SEEK_DATA`/`SEEK_HOLE` skip the source's holes without reading them.
//!
//! The caller's thread reads and allocates; a writer thread hashes and
//! writes. Parallel `pwrite`s into one file only contend for its inode
//! lock, so one thread writes everything, coalescing the runs that are
//! adjacent on disk into `pwritev` calls, while reading and the directory
//! walk go on. Placement is decided before bytes leave the caller's thread,
//! so the image never depends on thread timing.
//!
//! Small `Content::Path` files are queued and read in parallel batches
//! (rayon). Large files and streams are copied in 1 MiB chunks, never whole.
//!
//! Each file also yields a content digest (sha256 over its non-zero blocks
//! and their positions) that feeds the derived UUID and hash seed; it does
//! not depend on how the source stores holes.

use std::fs::File;
use std::io::{IoSlice, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

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
/// Queued bytes handed to the writer thread at once.
const SEND_BYTES: usize = 8 << 20;
/// Messages in flight to the writer thread (bounds memory to a few batches).
const QUEUE: usize = 2;
/// Linux's `IOV_MAX`.
const IOV_MAX: usize = 1024;
static ZEROS: [u8; BS] = [0; BS];

/// A planned write: bytes `buf[off..off + n * BS]` (clipped to the buffer)
/// to block `phys`.
#[derive(Debug, Clone, Copy)]
struct Write {
    off: usize,
    phys: u64,
    n: u64,
}

/// Part of one file's bytes, bound for the writer thread.
struct Piece {
    /// Index of the file in the writer's digest table.
    file: usize,
    /// The file block `buf` starts at.
    first_logical: u64,
    buf: Vec<u8>,
    writes: Vec<Write>,
    /// The file's last piece: its digest is final.
    last: bool,
    /// The file's digest, when the reader already computed it.
    digest: Option<[u8; 32]>,
}

/// What the writer thread gives back: each file's digest, by file index.
type Digests = Vec<(usize, [u8; 32])>;
/// The writer thread: its queue and its handle.
type Worker = (SyncSender<Vec<Piece>>, JoinHandle<std::io::Result<Digests>>);

/// Where data goes: the image file, the allocator and the writer thread.
pub struct DataSink {
    /// The image.
    pub file: File,
    /// Next free block.
    pub alloc: Allocator,
    /// Blocks past this are not written (a fixed size already exceeded:
    /// `finish` reports `TooSmall`).
    pub limit: Option<u64>,
    /// Pieces not yet handed to the writer thread, and their size.
    queued: Vec<Piece>,
    queued_bytes: usize,
    files: usize,
    worker: Option<Worker>,
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
    /// A sink writing into `file`, data from block `alloc.next` on.
    pub fn new(file: File, alloc: Allocator, limit: Option<u64>) -> DataSink {
        DataSink {
            file,
            alloc,
            limit,
            queued: Vec::new(),
            queued_bytes: 0,
            files: 0,
            worker: None,
        }
    }

    /// Allocates the non-zero blocks of `buf` (file bytes from block
    /// `first_logical`) and extends `extents`.
    fn plan(
        &mut self,
        first_logical: u64,
        zero: &[bool],
        extents: &mut Vec<FileExtent>,
    ) -> Vec<Write> {
        let mut writes = Vec::new();
        let mut i = 0;
        while i < zero.len() {
            if zero[i] {
                i += 1;
                continue;
            }
            let start = i;
            while i < zero.len() && !zero[i] {
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

    /// Plans `buf` and queues it for the writer thread. `scanned` is the file's digest
    /// and zero-block map when the reader already made them.
    fn put(
        &mut self,
        file: usize,
        buf: Vec<u8>,
        first_logical: u64,
        extents: &mut Vec<FileExtent>,
        last: bool,
        scanned: Option<([u8; 32], Vec<bool>)>,
    ) -> Result<(), Ext4WriteError> {
        let (digest, zero) = match scanned {
            Some((d, z)) => (Some(d), z),
            None => (None, zero_blocks(&buf)),
        };
        let writes = self.plan(first_logical, &zero, extents);
        self.queued_bytes += buf.len();
        self.queued.push(Piece {
            file,
            first_logical,
            buf,
            writes,
            last,
            digest,
        });
        if self.queued_bytes >= SEND_BYTES {
            self.send()?;
        }
        Ok(())
    }

    fn new_file(&mut self) -> usize {
        self.files += 1;
        self.files - 1
    }

    /// Hands the queued pieces to the writer thread (started on first use).
    fn send(&mut self) -> Result<(), Ext4WriteError> {
        if self.queued.is_empty() {
            return Ok(());
        }
        let pieces = std::mem::take(&mut self.queued);
        self.queued_bytes = 0;
        if self.worker.is_none() {
            let file = self
                .file
                .try_clone()
                .map_err(io("duplicating the image handle"))?;
            let (tx, rx) = sync_channel(QUEUE);
            let limit = self.limit;
            let handle = std::thread::Builder::new()
                .name("ext4-data".into())
                .spawn(move || write_loop(&file, rx, limit))
                .map_err(io("starting the writer thread"))?;
            self.worker = Some((tx, handle));
        }
        let (tx, _) = self.worker.as_ref().expect("started above");
        if tx.send(pieces).is_err() {
            // The thread ended early: its error is reported by `drain`.
            return self.drain().map(|_| ());
        }
        Ok(())
    }

    /// Waits until every queued byte is written; returns each file's digest
    /// in the order the files were added.
    pub fn drain(&mut self) -> Result<Vec<[u8; 32]>, Ext4WriteError> {
        if !self.queued.is_empty() {
            self.send()?;
        }
        let mut digests = vec![[0u8; 32]; self.files];
        if let Some((tx, handle)) = self.worker.take() {
            drop(tx);
            let got = handle
                .join()
                .map_err(|_| Ext4WriteError::Io {
                    context: "writing the image".into(),
                    source: std::io::Error::other("the writer thread panicked"),
                })?
                .map_err(io("writing the image"))?;
            for (i, d) in got {
                digests[i] = d;
            }
        }
        Ok(digests)
    }

    /// Copies in-memory bytes; returns the file's extents.
    pub fn bytes(&mut self, buf: Vec<u8>) -> Result<Vec<FileExtent>, Ext4WriteError> {
        let file = self.new_file();
        let mut extents = Vec::new();
        self.put(file, buf, 0, &mut extents, true, None)?;
        Ok(extents)
    }

    /// Copies exactly `size` bytes from a stream.
    pub fn reader(
        &mut self,
        r: &mut dyn Read,
        size: u64,
        path: &str,
    ) -> Result<Vec<FileExtent>, Ext4WriteError> {
        let file = self.new_file();
        let mut extents = Vec::new();
        let mut pos = 0u64;
        loop {
            let want = (size - pos).min(CHUNK as u64) as usize;
            let mut buf = vec![0u8; want];
            let mut got = 0;
            while got < want {
                let n = r
                    .read(&mut buf[got..])
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
            let at = pos / BLOCK_SIZE;
            pos += want as u64;
            self.put(file, buf, at, &mut extents, pos == size, None)?;
            if pos == size {
                return Ok(extents);
            }
        }
    }

    /// Copies a large file in chunks, visiting only its data segments.
    pub fn large_file(
        &mut self,
        src: &Path,
        size: u64,
        path: &str,
    ) -> Result<Vec<FileExtent>, Ext4WriteError> {
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
        let file = self.new_file();
        let mut extents = Vec::new();
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
                let mut buf = vec![0u8; want];
                f.read_exact_at(&mut buf, pos)
                    .map_err(io(format!("{path}: reading {}", src.display())))?;
                self.put(file, buf, pos / BLOCK_SIZE, &mut extents, false, None)?;
                pos += want as u64;
            }
            done = done.max(pos);
        }
        // The digest is final with an empty last piece.
        self.put(file, Vec::new(), 0, &mut extents, true, None)?;
        Ok(extents)
    }

    /// Copies a batch of small files: parallel read and hash, then
    /// allocation in batch order. Results are in batch order.
    pub fn batch(
        &mut self,
        files: &[(PathBuf, u64, String)],
    ) -> Result<Vec<Vec<FileExtent>>, Ext4WriteError> {
        let contents: Vec<Result<_, Ext4WriteError>> = files
            .par_iter()
            .map(|(src, size, path)| {
                let buf = read_small(src, *size, path)?;
                let zero = zero_blocks(&buf);
                let mut h = Sha256::new();
                hash_blocks(&mut h, &buf, 0, |k| zero[k]);
                let digest: [u8; 32] = h.finalize().into();
                Ok((buf, (digest, zero)))
            })
            .collect();
        let mut out = Vec::with_capacity(files.len());
        for c in contents {
            let (buf, scanned) = c?;
            let file = self.new_file();
            let mut extents = Vec::new();
            self.put(file, buf, 0, &mut extents, true, Some(scanned))?;
            out.push(extents);
        }
        Ok(out)
    }
}

/// Which 4 KiB blocks of `buf` are all zeros (left as holes).
fn zero_blocks(buf: &[u8]) -> Vec<bool> {
    buf.chunks(BS).map(is_zero).collect()
}

/// Feeds the blocks of `buf` (file bytes from block `first_logical`) that are not
/// `zero(k)`, each with its position, to `h`.
fn hash_blocks(h: &mut Sha256, buf: &[u8], first_logical: u64, zero: impl Fn(usize) -> bool) {
    for (k, block) in buf.chunks(BS).enumerate() {
        if !zero(k) {
            h.update((first_logical + k as u64).to_le_bytes());
            h.update(block);
        }
    }
}

/// The writer thread: hashes each piece's blocks and writes them, adjacent
/// runs together. After an error it keeps receiving (so the sender never
/// blocks) but writes nothing more.
fn write_loop(
    file: &File,
    rx: Receiver<Vec<Piece>>,
    limit: Option<u64>,
) -> std::io::Result<Digests> {
    let mut digests = Vec::new();
    let mut open: Vec<(usize, Sha256)> = Vec::new();
    let mut failed = None;
    let mut out = Out::new(file);
    for pieces in rx {
        if failed.is_some() {
            continue;
        }
        for p in &pieces {
            if let Some(d) = p.digest {
                digests.push((p.file, d));
                continue;
            }
            let at = open.iter().position(|(f, _)| *f == p.file);
            let mut h = match at {
                Some(i) => open.swap_remove(i).1,
                None => Sha256::new(),
            };
            for w in &p.writes {
                let end = (w.off + w.n as usize * BS).min(p.buf.len());
                // A planned run holds only non-zero blocks.
                hash_blocks(
                    &mut h,
                    &p.buf[w.off..end],
                    p.first_logical + (w.off / BS) as u64,
                    |_| false,
                );
            }
            if p.last {
                digests.push((p.file, h.finalize().into()));
            } else {
                open.push((p.file, h));
            }
        }
        if let Err(e) = out.write(&pieces, limit) {
            failed = Some(e);
        }
    }
    if failed.is_none()
        && let Err(e) = out.flush()
    {
        failed = Some(e);
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(digests),
    }
}

/// Where the writer thread puts blocks: through a second, `O_DIRECT`
/// handle when the file system takes one (no page-cache copy of the data,
/// and no first-touch cost for fresh page-cache memory), else buffered with
/// one `pwritev` per stretch of adjacent blocks.
struct Out<'a> {
    buffered: &'a File,
    direct: Option<File>,
    /// 4 KiB-aligned staging area for direct writes: `stage[at..at + len]`.
    stage: Vec<u8>,
    at: usize,
    len: usize,
    /// Block the staged bytes start at.
    start: u64,
}

/// Bytes staged before a direct write.
const STAGE: usize = 8 << 20;

impl<'a> Out<'a> {
    fn new(buffered: &'a File) -> Out<'a> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::OpenOptionsExt;
        // Reopening through /proc gives a handle of its own, so O_DIRECT
        // does not leak to the caller's (unaligned, buffered) metadata
        // writes.
        let direct = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(format!("/proc/self/fd/{}", buffered.as_raw_fd()))
            .ok();
        let (stage, at) = match direct {
            Some(_) => {
                let v = vec![0u8; STAGE + BS];
                let at = v.as_ptr().align_offset(BS);
                (v, at)
            }
            None => (Vec::new(), 0),
        };
        Out {
            buffered,
            direct,
            stage,
            at,
            len: 0,
            start: 0,
        }
    }

    fn write(&mut self, pieces: &[Piece], limit: Option<u64>) -> std::io::Result<()> {
        if self.direct.is_none() {
            return write_pieces(self.buffered, pieces, limit);
        }
        for p in pieces {
            for w in &p.writes {
                if limit.is_some_and(|l| w.phys + w.n > l) {
                    continue;
                }
                let end = (w.off + w.n as usize * BS).min(p.buf.len());
                let mut src = &p.buf[w.off..end];
                let mut phys = w.phys;
                let mut left = w.n as usize;
                while left > 0 {
                    if self.len > 0
                        && (self.start + (self.len / BS) as u64 != phys || self.len == STAGE)
                    {
                        self.flush()?;
                    }
                    if self.len == 0 {
                        self.start = phys;
                    }
                    let blocks = left.min((STAGE - self.len) / BS);
                    let take = src.len().min(blocks * BS);
                    let dst = &mut self.stage[self.at + self.len..self.at + self.len + blocks * BS];
                    dst[..take].copy_from_slice(&src[..take]);
                    dst[take..].fill(0);
                    src = &src[take..];
                    self.len += blocks * BS;
                    phys += blocks as u64;
                    left -= blocks;
                }
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.len == 0 {
            return Ok(());
        }
        let data = &self.stage[self.at..self.at + self.len];
        let off = self.start * BLOCK_SIZE;
        let res = match &self.direct {
            Some(f) => f.write_all_at(data, off),
            None => self.buffered.write_all_at(data, off),
        };
        match res {
            // A file system that opens O_DIRECT but refuses the write:
            // fall back to buffered writes from here on.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && self.direct.is_some() => {
                self.direct = None;
                self.buffered.write_all_at(data, off)?;
            }
            r => r?,
        }
        self.len = 0;
        Ok(())
    }
}

/// Writes the pieces' runs, one `pwritev` per stretch of adjacent blocks.
fn write_pieces(file: &File, pieces: &[Piece], limit: Option<u64>) -> std::io::Result<()> {
    let mut iov: Vec<IoSlice<'_>> = Vec::new();
    let mut start = 0u64; // first block of the stretch in `iov`
    let mut next = 0u64; // block just past it
    for p in pieces {
        for w in &p.writes {
            if limit.is_some_and(|l| w.phys + w.n > l) {
                continue;
            }
            if iov.is_empty() || w.phys != next || iov.len() + 2 > IOV_MAX {
                write_iov(file, &mut iov, start)?;
                start = w.phys;
            } else {
                // The previous run ended inside its last block: fill it.
                let len: usize = iov.iter().map(|s| s.len()).sum();
                let pad = len.next_multiple_of(BS) - len;
                if pad > 0 {
                    iov.push(IoSlice::new(&ZEROS[..pad]));
                }
            }
            let end = (w.off + w.n as usize * BS).min(p.buf.len());
            iov.push(IoSlice::new(&p.buf[w.off..end]));
            next = w.phys + w.n;
        }
    }
    write_iov(file, &mut iov, start)
}

fn write_iov(file: &File, iov: &mut Vec<IoSlice<'_>>, block: u64) -> std::io::Result<()> {
    let mut off = block * BLOCK_SIZE;
    let mut slices: &mut [IoSlice<'_>] = iov;
    while !slices.is_empty() {
        let n = rustix::io::pwritev(file, slices, off).map_err(std::io::Error::from)?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        off += n as u64;
        IoSlice::advance_slices(&mut slices, n);
    }
    iov.clear();
    Ok(())
}

/// Reads a whole small file of the size the walk saw. (A tree that changes
/// during the build is outside the contract; a file that shrank is caught.)
fn read_small(src: &Path, size: u64, path: &str) -> Result<Vec<u8>, Ext4WriteError> {
    let f = File::open(src).map_err(io(format!("{path}: opening {}", src.display())))?;
    let mut buf = vec![0u8; size as usize];
    let mut got = 0;
    while got < buf.len() {
        let n = f
            .read_at(&mut buf[got..], got as u64)
            .map_err(io(format!("{path}: reading {}", src.display())))?;
        if n == 0 {
            return Err(Ext4WriteError::SizeMismatch {
                path: path.to_string(),
                expected: size,
                actual: got as u64,
            });
        }
        got += n;
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

    fn sink() -> DataSink {
        DataSink::new(tempfile::tempfile().expect("tmp"), Allocator::new(1), None)
    }

    #[test]
    fn test_zero_blocks_become_holes() {
        let mut sink = sink();
        let mut buf = vec![0u8; 3 * BS];
        buf[0] = 1;
        buf[2 * BS + 5] = 2;
        let e = sink.bytes(buf).expect("write");
        sink.drain().expect("drain");
        assert_eq!(e.len(), 2);
        assert_eq!((e[0].logical, e[0].len), (0, 1));
        assert_eq!((e[1].logical, e[1].len), (2, 1));
        // Contiguous on disk even though the file has a hole.
        assert_eq!(e[1].phys, e[0].phys + 1);
    }

    #[test]
    fn test_adjacent_files_are_written_padded_and_in_place() {
        let mut sink = sink();
        let a = sink.bytes(b"abc".to_vec()).expect("a");
        let b = sink.bytes(vec![7u8; BS + 1]).expect("b");
        let digests = sink.drain().expect("drain");
        assert_eq!(b[0].phys, a[0].phys + 1, "allocated back to back");
        let mut img = vec![0u8; 3 * BS];
        sink.file
            .read_exact_at(&mut img, a[0].phys * BLOCK_SIZE)
            .expect("read back");
        assert_eq!(&img[..3], b"abc");
        assert!(img[3..BS].iter().all(|&x| x == 0), "padding is zeros");
        assert!(img[BS..2 * BS + 1].iter().all(|&x| x == 7));
        assert!(img[2 * BS + 1..].iter().all(|&x| x == 0));
        assert_eq!(digests.len(), 2);
        assert_ne!(digests[0], digests[1]);
    }

    #[test]
    fn test_digest_ignores_how_the_bytes_were_split() {
        let data: Vec<u8> = (0..(CHUNK + 3 * BS)).map(|i| (i % 251) as u8).collect();
        let mut one = sink();
        one.bytes(data.clone()).expect("bytes");
        let mut two = sink();
        two.reader(&mut data.as_slice(), data.len() as u64, "f")
            .expect("reader");
        assert_eq!(one.drain().expect("one"), two.drain().expect("two"));
    }
}
