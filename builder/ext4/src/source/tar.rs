//! Reads a tar archive (plain, gzip or zstd, told apart by magic bytes) as a
//! stream of entries. A file's bytes go straight to the callback as
//! [`Content::Reader`]: nothing is extracted to disk or held whole in memory.
//!
//! Understood: ustar, GNU (long names and link names, base-256 numbers)
//! and PAX (`path`, `linkpath`, `size`, `uid`,
//! `gid`, `mtime`/`atime`/`ctime` with fractions, `SCHILY.xattr.*`,
//! `LIBARCHIVE.xattr.*`, `SCHILY.devmajor`/`devminor`). Ownership, modes
//! and xattrs are taken as the archive states them; `uname`/`gname` are
//! ignored. A leading `./` is dropped; absolute paths and `..` components
//! are refused, as are name components over 255 bytes.
//!
//! The archive must end with its end-of-archive block: a stream that simply
//! stops (even at an entry boundary) is reported as truncated, and what
//! follows the end block is read through so a decompressor's checksum is
//! checked and a producer writing into a pipe is not cut off.
//!
//! PAX and GNU long-name members are decoded here, not by the `tar` crate,
//! whose PAX parser misreads values that contain a newline.
//!
//! Limits: sparse files (GNU `S` entries and PAX `GNU.sparse.*`), PAX
//! `size` records (files over 8 GiB), multi-volume and other exotic entry
//! types are refused with the entry named; xz/bzip2 are not decoded.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::{self, BufReader, Read};
use std::rc::Rc;

use super::{ReadSourceError, check_name_lengths, display_path};
use crate::{Content, Entry, Metadata, Node, Timestamp};

/// How a tar stream is compressed, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar archive.
    None,
    /// gzip (`1f 8b`); concatenated members are read as one stream.
    Gzip,
    /// Zstandard (`28 b5 2f fd`).
    Zstd,
}

impl Compression {
    /// Tells the compression from the first bytes of a stream; refuses
    /// formats that are recognisable but not decoded here.
    pub fn detect(head: &[u8]) -> Result<Self, ReadSourceError> {
        let unsupported = |name: &str| ReadSourceError::Unsupported {
            entry: "-".into(),
            what: format!(
                "{name}-compressed tar archives are not supported; \
                 decompress to a pipe (`{name} -dc FILE | vmimage mkfs - OUT`)"
            ),
        };
        Ok(match head {
            [0x1f, 0x8b, ..] => Self::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Self::Zstd,
            [0xfd, b'7', b'z', b'X', b'Z', ..] => return Err(unsupported("xz")),
            [b'B', b'Z', b'h', ..] => return Err(unsupported("bzip2")),
            _ => Self::None,
        })
    }
}

/// Reads the tar archive on `reader` (compressed or not), calling `add` for
/// each entry in archive order. Stops at the first error, from the archive
/// or from `add`.
pub fn read_tar<R, E, F>(mut reader: R, add: F) -> Result<(), E>
where
    R: Read,
    E: From<ReadSourceError>,
    F: FnMut(Entry, Option<Content<'_>>) -> Result<(), E>,
{
    // Peek at up to 6 bytes; a pipe may hand them over a few at a time.
    let mut head = [0u8; 6];
    let mut n = 0;
    while n < head.len() {
        match reader.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(ReadSourceError::Io {
                    path: "tar archive".into(),
                    source: e,
                }
                .into());
            }
        }
    }
    let whole = io::Cursor::new(head[..n].to_vec()).chain(reader);
    match Compression::detect(&head[..n])? {
        Compression::None => read_plain(BufReader::with_capacity(256 << 10, whole), add),
        Compression::Gzip => read_plain(flate2::read::MultiGzDecoder::new(whole), add),
        Compression::Zstd => {
            let dec =
                zstd::stream::read::Decoder::new(whole).map_err(|e| ReadSourceError::Corrupt {
                    last: String::new(),
                    source: e,
                })?;
            read_plain(dec, add)
        }
    }
}

/// Notes when the stream under the tar reader ends, which is how a missing
/// end-of-archive block is told from a present one.
struct EofTracker<R> {
    inner: R,
    hit_eof: Rc<Cell<bool>>,
}

impl<R: Read> Read for EofTracker<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.hit_eof.set(true);
        }
        Ok(n)
    }
}

/// Hands the writer exactly `remaining` bytes, turning an early end of the
/// entry's data into an error (and remembering it, so the source's error is
/// reported rather than whatever the writer makes of it).
struct ExactReader<'a, R> {
    inner: &'a mut R,
    remaining: u64,
    failed: Option<io::Error>,
}

impl<R: Read> Read for ExactReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let max = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = match self.inner.read(&mut buf[..max]) {
            Ok(0) => {
                let e = io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("file data ends {} bytes early", self.remaining),
                );
                self.failed = Some(io::Error::new(e.kind(), e.to_string()));
                return Err(e);
            }
            Ok(n) => n,
            Err(e) => {
                self.failed = Some(io::Error::new(e.kind(), e.to_string()));
                return Err(e);
            }
        };
        self.remaining -= n as u64;
        Ok(n)
    }
}

fn read_plain<R, E, F>(reader: R, mut add: F) -> Result<(), E>
where
    R: Read,
    E: From<ReadSourceError>,
    F: FnMut(Entry, Option<Content<'_>>) -> Result<(), E>,
{
    let hit_eof = Rc::new(Cell::new(false));
    let mut archive = tar::Archive::new(EofTracker {
        inner: reader,
        hit_eof: hit_eof.clone(),
    });
    // The last entry read whole, for messages.
    let mut last = String::new();
    let stream_error = |e: io::Error, last: &str| -> ReadSourceError {
        if hit_eof.get() || e.kind() == io::ErrorKind::UnexpectedEof {
            ReadSourceError::Truncated {
                detail: e.to_string(),
                last: last.to_string(),
            }
        } else {
            ReadSourceError::Corrupt {
                last: last.to_string(),
                source: e,
            }
        }
    };
    // Raw mode: the tar crate's PAX parser splits records at newlines, so
    // a name or binary xattr value holding one would be misread; PAX and
    // GNU long-name members are decoded here instead.
    let entries = archive
        .entries()
        .map_err(|e| stream_error(e, &last))?
        .raw(true);
    let mut pax: Option<PaxRecords> = None;
    let mut long_name: Option<Vec<u8>> = None;
    let mut long_link: Option<Vec<u8>> = None;
    for item in entries {
        let mut te = item.map_err(|e| stream_error(e, &last))?;
        let kind = te.header().entry_type();
        if kind.is_pax_local_extensions()
            || kind.is_pax_global_extensions()
            || kind.is_gnu_longname()
            || kind.is_gnu_longlink()
        {
            let mut data = Vec::new();
            te.read_to_end(&mut data)
                .map_err(|e| stream_error(e, &last))?;
            if kind.is_pax_local_extensions() {
                pax = Some(parse_pax(&data).map_err(|what| ReadSourceError::Corrupt {
                    last: last.clone(),
                    source: io::Error::new(io::ErrorKind::InvalidData, what),
                })?);
            } else if kind.is_gnu_longname() {
                long_name = Some(trim_nuls(data));
            } else if kind.is_gnu_longlink() {
                long_link = Some(trim_nuls(data));
            }
            // Global PAX headers (`g`) hold archive-wide defaults that
            // tar writers use for comments; nothing here needs them.
            continue;
        }
        let pax = pax.take().unwrap_or_default();
        let find = |key: &[u8]| pax.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        let raw_path = find(b"path")
            .or(long_name.take())
            .unwrap_or_else(|| te.path_bytes().into_owned());
        let link = find(b"linkpath")
            .or(long_link.take())
            .or_else(|| te.link_name_bytes().map(|l| l.into_owned()));
        let shown = display_path(&raw_path);
        let (entry, size) = match to_entry(&mut te, &raw_path, link, &pax) {
            Ok(Some(x)) => x,
            Ok(None) => continue,
            Err(e) => return Err(e.into()),
        };
        if matches!(entry.node, Node::File { .. }) {
            let mut body = ExactReader {
                inner: &mut te,
                remaining: size,
                failed: None,
            };
            let res = add(entry, Some(Content::Reader(&mut body)));
            if let Some(e) = body.failed.take() {
                let err = stream_error(e, &last);
                return Err(match err {
                    ReadSourceError::Truncated { detail, last } => ReadSourceError::Truncated {
                        detail: format!("in entry `{shown}`: {detail}"),
                        last,
                    },
                    ReadSourceError::Corrupt { source, .. } => ReadSourceError::Corrupt {
                        last: shown,
                        source,
                    },
                    other => other,
                }
                .into());
            }
            res?;
        } else {
            add(entry, None)?;
        }
        last = shown;
    }
    if hit_eof.get() {
        return Err(ReadSourceError::Truncated {
            detail: "the stream ends without an end-of-archive block".into(),
            last,
        }
        .into());
    }
    // Read past the end block: the record padding, and for compressed
    // streams the trailer whose checksum catches damage.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| ReadSourceError::Corrupt {
        last: format!("{last}` (after the end-of-archive block"),
        source: e,
    })?;
    Ok(())
}

/// The entry for one archive member and its data length, or `None` for
/// members that carry no file (global PAX headers).
fn to_entry<R: Read>(
    te: &mut tar::Entry<'_, R>,
    raw_path: &[u8],
    link: Option<Vec<u8>>,
    pax: &[(Vec<u8>, Vec<u8>)],
) -> Result<Option<(Entry, u64)>, ReadSourceError> {
    let shown = display_path(raw_path);
    let bad = |source: io::Error| ReadSourceError::BadHeader {
        entry: shown.clone(),
        source,
    };
    let unsupported = |what: String| ReadSourceError::Unsupported {
        entry: shown.clone(),
        what,
    };
    let kind = te.header().entry_type();
    let header = te.header();
    let mut path = normalize(raw_path).map_err(|reason| ReadSourceError::UnsafePath {
        entry: shown.clone(),
        reason,
    })?;
    check_name_lengths(&path, raw_path)?;

    let num = |v: io::Result<u64>| -> Result<u32, ReadSourceError> {
        let v = v.map_err(bad)?;
        u32::try_from(v).map_err(|_| unsupported(format!("id {v} does not fit 32 bits")))
    };
    // A header field that a PAX record replaces may be left blank.
    let has = |key: &[u8]| pax.iter().any(|(k, _)| k == key);
    let or_pax = |v: io::Result<u64>, key: &[u8]| match v {
        Err(_) if has(key) => Ok(0),
        v => v,
    };
    let mtime = or_pax(header.mtime(), b"mtime").map_err(bad)?;
    let mtime = Timestamp {
        sec: i64::try_from(mtime).unwrap_or(i64::MAX),
        nsec: 0,
    };
    let gnu_time = |t: Option<io::Result<u64>>| match t {
        Some(Ok(s)) if s != 0 => Some(Timestamp {
            sec: i64::try_from(s).unwrap_or(i64::MAX),
            nsec: 0,
        }),
        _ => None,
    };
    let mut meta = Metadata {
        mode: (header.mode().map_err(bad)? & 0o7777) as u16,
        uid: num(or_pax(header.uid(), b"uid"))?,
        gid: num(or_pax(header.gid(), b"gid"))?,
        mtime,
        atime: gnu_time(header.as_gnu().map(|g| g.atime())).unwrap_or(mtime),
        ctime: gnu_time(header.as_gnu().map(|g| g.ctime())).unwrap_or(mtime),
        xattrs: BTreeMap::new(),
    };
    // Only device entries fill the device fields; others may leave them
    // blank, which the tar crate cannot parse.
    let mut dev = if matches!(kind, tar::EntryType::Char | tar::EntryType::Block) {
        (
            header.device_major().map_err(bad)?.unwrap_or(0),
            header.device_minor().map_err(bad)?.unwrap_or(0),
        )
    } else {
        (0, 0)
    };
    let mut libarchive_xattrs = BTreeMap::new();
    for (key, value) in pax {
        let text = std::str::from_utf8(value).unwrap_or("");
        let bad_value = || {
            unsupported(format!(
                "PAX record `{}` has a bad value `{}`",
                display_path(key),
                display_path(value)
            ))
        };
        let int = || text.parse::<u64>().map_err(|_| bad_value());
        match key.as_slice() {
            b"mtime" => meta.mtime = parse_pax_time(text).ok_or_else(bad_value)?,
            b"atime" => meta.atime = parse_pax_time(text).ok_or_else(bad_value)?,
            b"ctime" => meta.ctime = parse_pax_time(text).ok_or_else(bad_value)?,
            b"uid" => meta.uid = num(Ok(int()?))?,
            b"gid" => meta.gid = num(Ok(int()?))?,
            b"SCHILY.devmajor" => dev.0 = num(Ok(int()?))?,
            b"SCHILY.devminor" => dev.1 = num(Ok(int()?))?,
            k if k.starts_with(b"SCHILY.xattr.") => {
                meta.xattrs
                    .insert(k[b"SCHILY.xattr.".len()..].to_vec(), value.clone());
            }
            k if k.starts_with(b"LIBARCHIVE.xattr.") => {
                let name = percent_decode(&k[b"LIBARCHIVE.xattr.".len()..]);
                let value = base64_decode(value).ok_or_else(bad_value)?;
                libarchive_xattrs.insert(name, value);
            }
            // The tar reader frames entries by the header's size; a PAX
            // size (files over 8 GiB) that differs cannot be followed.
            b"size" if int()? != te.size() => {
                return Err(unsupported(
                    "PAX `size` records (files over 8 GiB) are not supported".into(),
                ));
            }
            k if k.starts_with(b"GNU.sparse.") => {
                return Err(unsupported(
                    "PAX sparse files (GNU.sparse.*) are not supported; \
                     repack without --sparse"
                        .into(),
                ));
            }
            _ => {}
        }
    }
    // SCHILY names are the common spelling; libarchive writes both for the
    // same attribute, so SCHILY wins where both are present.
    for (k, v) in libarchive_xattrs {
        meta.xattrs.entry(k).or_insert(v);
    }

    let size = te.size();
    let node = match kind {
        // Pre-POSIX archives mark directories only by a trailing slash.
        tar::EntryType::Regular | tar::EntryType::Continuous if raw_path.ends_with(b"/") => {
            Node::Directory
        }
        tar::EntryType::Regular | tar::EntryType::Continuous => Node::File { size },
        tar::EntryType::Directory => Node::Directory,
        tar::EntryType::Symlink => Node::Symlink {
            target: link.unwrap_or_default(),
        },
        tar::EntryType::Link => {
            let raw = link.unwrap_or_default();
            let target = normalize(&raw).map_err(|reason| ReadSourceError::UnsafePath {
                entry: shown.clone(),
                reason: match reason {
                    "absolute path" => "hard link to an absolute path",
                    _ => "hard link target has a `..` component",
                },
            })?;
            if target.is_empty() {
                return Err(unsupported("hard link to the root directory".into()));
            }
            Node::HardLink { target }
        }
        tar::EntryType::Char => Node::CharDevice {
            major: dev.0,
            minor: dev.1,
        },
        tar::EntryType::Block => Node::BlockDevice {
            major: dev.0,
            minor: dev.1,
        },
        tar::EntryType::Fifo => Node::Fifo,
        other => {
            return Err(unsupported(format!(
                "tar entry type {:?} ({:?}) is not supported",
                other,
                other.as_byte() as char
            )));
        }
    };
    if path.is_empty() && node != Node::Directory {
        return Err(unsupported(
            "the archive root `.` is not a directory".into(),
        ));
    }
    // A directory's trailing slash is not part of its name.
    while path.last() == Some(&b'/') {
        path.pop();
    }
    Ok(Some((Entry { path, node, meta }, size)))
}

/// PAX records as (key, value) pairs, in archive order.
type PaxRecords = Vec<(Vec<u8>, Vec<u8>)>;

/// PAX extended header records: `LEN KEY=VALUE\n`, where LEN counts the
/// whole record, so values may hold any byte (newlines included).
fn parse_pax(mut data: &[u8]) -> Result<PaxRecords, String> {
    let mut out = Vec::new();
    while !data.is_empty() && !data.iter().all(|&b| b == 0) {
        let sp = data
            .iter()
            .position(|&b| b == b' ')
            .ok_or("PAX record without a length")?;
        let len: usize = std::str::from_utf8(&data[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("PAX record with a bad length")?;
        if len < sp + 3 || len > data.len() || data[len - 1] != b'\n' {
            return Err(format!("PAX record length {len} does not fit its header"));
        }
        let kv = &data[sp + 1..len - 1];
        let eq = kv
            .iter()
            .position(|&b| b == b'=')
            .ok_or("PAX record without `=`")?;
        out.push((kv[..eq].to_vec(), kv[eq + 1..].to_vec()));
        data = &data[len..];
    }
    Ok(out)
}

fn trim_nuls(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

/// An archive path as an image path: drops a leading `./`, empty and `.`
/// components; refuses absolute paths and `..`.
fn normalize(raw: &[u8]) -> Result<Vec<u8>, &'static str> {
    if raw.starts_with(b"/") {
        return Err("absolute path");
    }
    let mut out = Vec::with_capacity(raw.len());
    for comp in raw.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => return Err("path has a `..` component"),
            c => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(c);
            }
        }
    }
    Ok(out)
}

/// A PAX time: `[-]SECONDS[.FRACTION]`, the fraction cut to nanoseconds.
fn parse_pax_time(text: &str) -> Option<Timestamp> {
    let (neg, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (secs, frac) = body.split_once('.').unwrap_or((body, ""));
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let mut nsec: u32 = 0;
    for (i, d) in frac.bytes().take(9).enumerate() {
        nsec += u32::from(d - b'0') * 10u32.pow(8 - i as u32);
    }
    Some(if !neg {
        Timestamp { sec: secs, nsec }
    } else if nsec == 0 {
        Timestamp {
            sec: -secs,
            nsec: 0,
        }
    } else {
        Timestamp {
            sec: -secs - 1,
            nsec: 1_000_000_000 - nsec,
        }
    })
}

/// libarchive escapes xattr names in PAX keys as `%XX`.
fn percent_decode(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' && i + 2 < s.len() {
            if let (Some(h), Some(l)) = (hex(s[i + 1]), hex(s[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

/// Standard base64, padding optional (libarchive leaves it off).
fn base64_decode(s: &[u8]) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let s: Vec<u8> = s.iter().copied().take_while(|&c| c != b'=').collect();
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= val(c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Reads `archive` into (entry, content) pairs.
    /// Entries with their content read out.
    type Collected = Vec<(Entry, Option<Vec<u8>>)>;

    fn collect(archive: &[u8]) -> Result<Collected, ReadSourceError> {
        let mut out = Vec::new();
        read_tar(archive, |entry, content| {
            let bytes = match content {
                Some(Content::Reader(r)) => {
                    let mut v = Vec::new();
                    r.read_to_end(&mut v).map_err(|e| ReadSourceError::Io {
                        path: "test".into(),
                        source: e,
                    })?;
                    Some(v)
                }
                Some(_) => panic!("tar gives readers"),
                None => None,
            };
            out.push((entry, bytes));
            Ok::<(), ReadSourceError>(())
        })?;
        Ok(out)
    }

    fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h
    }

    fn sample() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        b.append_data(
            &mut header(tar::EntryType::Directory, 0, 0o755),
            "./",
            &[][..],
        )
        .unwrap();
        b.append_data(
            &mut header(tar::EntryType::Directory, 0, 0o755),
            "./etc/",
            &[][..],
        )
        .unwrap();
        let mut h = header(tar::EntryType::Regular, 5, 0o4755);
        h.set_uid(1000);
        h.set_gid(100);
        b.append_data(&mut h, "./etc/hello", &b"world"[..]).unwrap();
        let mut h = header(tar::EntryType::Symlink, 0, 0o777);
        b.append_link(&mut h, "./etc/link", "/etc/hello").unwrap();
        let mut h = header(tar::EntryType::Link, 0, 0o644);
        b.append_link(&mut h, "./etc/hard", "./etc/hello").unwrap();
        let mut h = header(tar::EntryType::Char, 0, 0o600);
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
        b.append_data(&mut h, "./dev-null", &[][..]).unwrap();
        b.append_data(&mut header(tar::EntryType::Fifo, 0, 0o600), "fifo", &[][..])
            .unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn test_reads_every_entry_type_with_owner_mode_and_content() {
        let entries = collect(&sample()).unwrap();
        let paths: Vec<&[u8]> = entries.iter().map(|(e, _)| e.path.as_slice()).collect();
        assert_eq!(
            paths,
            [
                &b""[..],
                b"etc",
                b"etc/hello",
                b"etc/link",
                b"etc/hard",
                b"dev-null",
                b"fifo"
            ]
        );
        let (hello, content) = &entries[2];
        assert_eq!(hello.node, Node::File { size: 5 });
        assert_eq!(content.as_deref(), Some(&b"world"[..]));
        assert_eq!(
            (hello.meta.uid, hello.meta.gid, hello.meta.mode),
            (1000, 100, 0o4755)
        );
        assert_eq!(
            hello.meta.mtime,
            Timestamp {
                sec: 1_700_000_000,
                nsec: 0
            }
        );
        assert_eq!(
            entries[3].0.node,
            Node::Symlink {
                target: b"/etc/hello".to_vec()
            }
        );
        assert_eq!(
            entries[4].0.node,
            Node::HardLink {
                target: b"etc/hello".to_vec()
            }
        );
        assert_eq!(entries[5].0.node, Node::CharDevice { major: 1, minor: 3 });
        assert_eq!(entries[6].0.node, Node::Fifo);
    }

    #[test]
    fn test_reads_gzip_and_zstd_by_magic() {
        let plain = sample();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::encode_all(&plain[..], 3).unwrap();
        let want = collect(&plain).unwrap();
        assert_eq!(collect(&gz).unwrap(), want);
        assert_eq!(collect(&zst).unwrap(), want);
    }

    fn pax_archive(records: &[(&str, &[u8])], name: &str, data: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions(records.iter().map(|(k, v)| (*k, *v)))
            .unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn test_pax_records_set_path_times_ids_and_xattrs() {
        let long = "d/".repeat(100) + "file";
        let archive = pax_archive(
            &[
                ("path", long.as_bytes()),
                ("mtime", b"1700000000.123456789"),
                ("atime", b"-1.25"),
                ("uid", b"4000000000"),
                ("gid", b"70000"),
                ("SCHILY.xattr.security.capability", b"\x01\x00\x00\x02\x00"),
                ("LIBARCHIVE.xattr.user.caf%C3%A9", b"dmFsdWU"),
            ],
            "short",
            b"abc",
        );
        let entries = collect(&archive).unwrap();
        assert_eq!(entries.len(), 1);
        let e = &entries[0].0;
        assert_eq!(e.path, long.as_bytes());
        assert_eq!(
            e.meta.mtime,
            Timestamp {
                sec: 1_700_000_000,
                nsec: 123_456_789
            }
        );
        assert_eq!(
            e.meta.atime,
            Timestamp {
                sec: -2,
                nsec: 750_000_000
            }
        );
        assert_eq!((e.meta.uid, e.meta.gid), (4_000_000_000, 70000));
        assert_eq!(
            e.meta.xattrs.get(&b"security.capability"[..]).unwrap(),
            b"\x01\x00\x00\x02\x00"
        );
        assert_eq!(e.meta.xattrs.get("user.café".as_bytes()).unwrap(), b"value");
    }

    #[test]
    fn test_pax_values_may_hold_newlines_and_binary() {
        let archive = pax_archive(
            &[
                ("path", b"dir/new\nline"),
                ("SCHILY.xattr.user.bin", b"\n\x00\xff\n"),
            ],
            "short",
            b"",
        );
        let entries = collect(&archive).unwrap();
        assert_eq!(entries[0].0.path, b"dir/new\nline");
        assert_eq!(
            entries[0].0.meta.xattrs.get(&b"user.bin"[..]).unwrap(),
            b"\n\x00\xff\n"
        );
    }

    #[test]
    fn test_parse_pax_rejects_bad_lengths() {
        assert!(parse_pax(b"99 path=x\n").is_err());
        assert!(parse_pax(b"x path=x\n").is_err());
        assert_eq!(
            parse_pax(b"11 path=ab\n").unwrap(),
            [(b"path".to_vec(), b"ab".to_vec())]
        );
    }

    #[test]
    fn test_gnu_long_names_and_link_names_are_read() {
        let name = "x".repeat(200) + "/" + &"y".repeat(150);
        let target = "t".repeat(300);
        let mut b = tar::Builder::new(Vec::new());
        let mut h = header(tar::EntryType::Symlink, 0, 0o777);
        b.append_link(&mut h, &name, &target).unwrap();
        let entries = collect(&b.into_inner().unwrap()).unwrap();
        assert_eq!(entries[0].0.path, name.as_bytes());
        assert_eq!(
            entries[0].0.node,
            Node::Symlink {
                target: target.into_bytes()
            }
        );
    }

    #[test]
    fn test_refuses_parent_components_and_absolute_paths_naming_the_entry() {
        for (name, want) in [("a/../../etc/passwd", "`..`"), ("/etc/passwd", "absolute")] {
            let archive = pax_archive(&[("path", name.as_bytes())], "x", b"");
            let err = collect(&archive).unwrap_err().to_string();
            assert!(err.contains(name) && err.contains(want), "{err}");
        }
    }

    #[test]
    fn test_refuses_hard_link_escaping_the_root() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = header(tar::EntryType::Link, 0, 0o644);
        b.append_link(&mut h, "ok", "../outside").unwrap();
        let err = collect(&b.into_inner().unwrap()).unwrap_err().to_string();
        assert!(err.contains("`ok`") && err.contains("hard link"), "{err}");
    }

    #[test]
    fn test_refuses_name_component_over_255_bytes() {
        let name = format!("dir/{}", "n".repeat(256));
        let archive = pax_archive(&[("path", name.as_bytes())], "x", b"");
        let err = collect(&archive).unwrap_err().to_string();
        assert!(
            err.contains("256 bytes") && err.contains("dir/nnn"),
            "{err}"
        );
    }

    #[test]
    fn test_truncation_anywhere_is_reported() {
        let full = sample();
        // Cut inside a header, inside file data, at an entry boundary, and
        // just before the end-of-archive block.
        let data_start = full
            .windows(5)
            .position(|w| w == b"world")
            .expect("data in archive");
        for cut in [
            100,
            data_start + 2,
            data_start + 512 - data_start % 512,
            512 * 2,
            full.len() - 1024,
        ] {
            let err = collect(&full[..cut]).unwrap_err();
            assert!(
                matches!(err, ReadSourceError::Truncated { .. }),
                "cut at {cut}: {err}"
            );
        }
        // The empty stream is not an archive either.
        assert!(matches!(
            collect(b"").unwrap_err(),
            ReadSourceError::Truncated { .. }
        ));
    }

    #[test]
    fn test_truncated_file_data_names_the_entry() {
        let full = sample();
        let data_start = full.windows(5).position(|w| w == b"world").unwrap();
        let err = collect(&full[..data_start + 2]).unwrap_err().to_string();
        assert!(err.contains("etc/hello"), "{err}");
    }

    #[test]
    fn test_truncated_zstd_is_reported() {
        let zst = zstd::encode_all(&sample()[..], 3).unwrap();
        assert!(collect(&zst[..zst.len() - 8]).is_err());
    }

    #[test]
    fn test_garbage_is_reported_as_corrupt() {
        let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 13) as u8).collect();
        let err = collect(&garbage).unwrap_err();
        assert!(matches!(err, ReadSourceError::Corrupt { .. }), "{err}");
    }

    #[test]
    fn test_xz_is_refused_with_advice() {
        let err = collect(b"\xfd7zXZ\x00rest").unwrap_err().to_string();
        assert!(err.contains("xz"), "{err}");
    }

    #[test]
    fn test_pax_time_parses_fractions_and_signs() {
        assert_eq!(parse_pax_time("5"), Some(Timestamp { sec: 5, nsec: 0 }));
        assert_eq!(
            parse_pax_time("5.1234567891"),
            Some(Timestamp {
                sec: 5,
                nsec: 123_456_789
            })
        );
        assert_eq!(
            parse_pax_time("-0.5"),
            Some(Timestamp {
                sec: -1,
                nsec: 500_000_000
            })
        );
        assert_eq!(parse_pax_time("x"), None);
        assert_eq!(parse_pax_time("1.x"), None);
    }

    #[test]
    fn test_base64_decodes_with_and_without_padding() {
        assert_eq!(base64_decode(b"aGk=").unwrap(), b"hi");
        assert_eq!(base64_decode(b"aGk").unwrap(), b"hi");
        assert_eq!(base64_decode(b"AAEC").unwrap(), [0, 1, 2]);
        assert!(base64_decode(b"a").is_none());
    }
}
