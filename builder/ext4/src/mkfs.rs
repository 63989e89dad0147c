//! `mkfs`: one call from a source (directory, tar file, tar on stdin) to a
//! finished image file. Owns the output's life cycle: the image is written
//! to a temporary file beside the output (`.NAME.tmp-PID`), checked
//! (superblock magic, block count against the file length), flushed to
//! disk and renamed over the output. On any error the temporary file is
//! removed and an existing output is left exactly as it was.
//!
//! Limits: the check is a sanity check of what the writer produced, not a
//! filesystem check (the tests run `e2fsck` for that).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::source::dir::DirWalk;
use crate::source::tar::read_tar;
use crate::source::{ReadSourceError, display_path};
use crate::{Content, Entry, Ext4WriteError, Ext4Writer, ImageSummary, Node, Options};

/// Where the tree comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A directory on disk, walked without following symlinks.
    Dir(PathBuf),
    /// A tar archive file (plain, gzip or zstd).
    Tar(PathBuf),
    /// A tar archive on standard input.
    Stdin,
}

impl Source {
    /// `-` is stdin, a directory (or a symlink to one) is a tree, anything
    /// else is read as a tar archive (its format told by magic bytes).
    pub fn detect(path: &Path) -> Self {
        if path.as_os_str() == "-" {
            Self::Stdin
        } else if path.is_dir() {
            Self::Dir(path.to_path_buf())
        } else {
            Self::Tar(path.to_path_buf())
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dir(p) => write!(f, "directory {}", p.display()),
            Self::Tar(p) => write!(f, "tar archive {}", p.display()),
            Self::Stdin => f.write_str("tar archive on stdin"),
        }
    }
}

/// Making an image failed; nothing was left at the output path.
#[derive(Debug, thiserror::Error)]
pub enum MkfsError {
    /// The source could not be read (names the entry or file).
    #[error(transparent)]
    Source(#[from] ReadSourceError),
    /// The writer refused an entry or the image (names the entry).
    #[error(transparent)]
    Write(#[from] Ext4WriteError),
    /// An I/O failure while the writer took in one entry.
    #[error("entry `{entry}`: {source}")]
    Entry {
        /// The source entry being added.
        entry: String,
        /// The writer's error.
        source: Ext4WriteError,
    },
    /// The source file could not be opened.
    #[error("opening {path}: {source}")]
    OpenSource {
        /// The source path.
        path: String,
        /// What the system said.
        source: io::Error,
    },
    /// The output (or its temporary file) could not be created, synced or
    /// renamed.
    #[error("{action} {path}: {source}")]
    Output {
        /// What was being done.
        action: &'static str,
        /// The file involved.
        path: String,
        /// What the system said.
        source: io::Error,
    },
    /// The written image failed the after-write check.
    #[error("checking the written image {path}: {reason}")]
    Verify {
        /// The temporary file checked.
        path: String,
        /// What did not match.
        reason: String,
    },
}

/// What [`mkfs_with_progress`] reports as it goes.
#[derive(Debug, Clone, Copy)]
pub enum MkfsProgress<'a> {
    /// An entry was added.
    Entry {
        /// Its image path.
        path: &'a [u8],
        /// Entries added so far.
        entries: u64,
        /// Regular-file bytes added so far.
        file_bytes: u64,
    },
    /// All entries are in; file copies and metadata are being written.
    Finishing,
}

/// Writes an ext4 image of `source` to `output`. See the module docs for
/// what happens on failure.
///
/// ```no_run
/// use vmimage_ext4::{Options, mkfs::{Source, mkfs}};
/// let summary = mkfs(&Source::detect("rootfs.tar.zst".as_ref()), "rootfs.ext4".as_ref(),
///                    Options { source_date_epoch: Some(0), ..Options::default() })?;
/// println!("{} bytes", summary.size_bytes);
/// # Ok::<(), vmimage_ext4::mkfs::MkfsError>(())
/// ```
pub fn mkfs(source: &Source, output: &Path, options: Options) -> Result<ImageSummary, MkfsError> {
    mkfs_with_progress(source, output, options, &mut |_| {})
}

/// [`mkfs`], calling `progress` after each entry and before finishing.
pub fn mkfs_with_progress(
    source: &Source,
    output: &Path,
    options: Options,
    progress: &mut dyn FnMut(MkfsProgress<'_>),
) -> Result<ImageSummary, MkfsError> {
    let out_err = |action: &'static str, path: &Path| {
        let path = path.display().to_string();
        move |source| MkfsError::Output {
            action,
            path,
            source,
        }
    };
    let name = output.file_name().ok_or_else(|| MkfsError::Output {
        action: "writing",
        path: output.display().to_string(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "not a file name"),
    })?;
    let dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if output.is_dir() {
        return Err(MkfsError::Output {
            action: "writing",
            path: output.display().to_string(),
            source: io::Error::new(io::ErrorKind::IsADirectory, "is a directory"),
        });
    }
    let tmp = TempFile {
        path: dir.join(format!(
            ".{}.tmp-{}",
            name.to_string_lossy(),
            std::process::id()
        )),
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp.path)
        .map_err(out_err("creating", &tmp.path))?;
    let tmp_md = file.metadata().map_err(out_err("creating", &tmp.path))?;

    let mut writer = Ext4Writer::new(file, options)?;
    let mut entries = 0u64;
    let mut file_bytes = 0u64;
    let mut add = |entry: Entry, content: Option<Content<'_>>| -> Result<(), MkfsError> {
        let path = entry.path.clone();
        if let Node::File { size } = entry.node {
            file_bytes += size;
        }
        writer.add(entry, content).map_err(|e| match e {
            // The writer's other errors already name the entry.
            Ext4WriteError::Io { .. } => MkfsError::Entry {
                entry: display_path(&path),
                source: e,
            },
            e => MkfsError::Write(e),
        })?;
        entries += 1;
        progress(MkfsProgress::Entry {
            path: &path,
            entries,
            file_bytes,
        });
        Ok(())
    };
    match source {
        Source::Dir(root) => {
            // Leave the image out of its own tree, old or new.
            let mut walk = DirWalk::new(root).skip_inode(tmp_md.dev(), tmp_md.ino());
            if let Ok(md) = fs::symlink_metadata(output) {
                walk = walk.skip_inode(md.dev(), md.ino());
            }
            walk.run(&mut add)?
        }
        Source::Tar(path) => {
            let f = File::open(path).map_err(|source| MkfsError::OpenSource {
                path: path.display().to_string(),
                source,
            })?;
            read_tar(f, &mut add)?
        }
        Source::Stdin => read_tar(io::stdin().lock(), &mut add)?,
    }
    progress(MkfsProgress::Finishing);
    let summary = writer.finish()?;

    let mut check = File::open(&tmp.path).map_err(out_err("reopening", &tmp.path))?;
    verify(&mut check, &summary).map_err(|reason| MkfsError::Verify {
        path: tmp.path.display().to_string(),
        reason,
    })?;
    // Durable before it takes the output's name: a crash must not leave a
    // renamed but empty image.
    check.sync_all().map_err(out_err("syncing", &tmp.path))?;
    fs::rename(&tmp.path, output).map_err(out_err("renaming to", output))?;
    tmp.keep();
    if let Ok(d) = File::open(dir) {
        // Best effort: the rename itself is already done.
        let _ = d.sync_all();
    }
    Ok(summary)
}

/// The superblock's magic, block count and block size against the file.
fn verify(file: &mut File, summary: &ImageSummary) -> Result<(), String> {
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    if len != summary.size_bytes {
        return Err(format!(
            "file is {len} bytes, the writer reported {}",
            summary.size_bytes
        ));
    }
    let mut sb = [0u8; 1024];
    file.seek(SeekFrom::Start(1024))
        .and_then(|_| file.read_exact(&mut sb))
        .map_err(|e| format!("reading the superblock: {e}"))?;
    let le32 = |o: usize| u32::from_le_bytes(sb[o..o + 4].try_into().expect("4 bytes"));
    let magic = u16::from_le_bytes([sb[0x38], sb[0x39]]);
    if magic != 0xEF53 {
        return Err(format!("superblock magic is {magic:#06x}, expected 0xef53"));
    }
    // s_blocks_count_lo at 0x4, s_blocks_count_hi at 0x150 (64bit feature).
    let blocks = u64::from(le32(0x4)) | (u64::from(le32(0x150)) << 32);
    let block_size = 1024u64 << le32(0x18); // s_log_block_size
    if blocks != summary.blocks || block_size != u64::from(summary.block_size) {
        return Err(format!(
            "superblock says {blocks} blocks of {block_size} bytes, the writer reported {} of {}",
            summary.blocks, summary.block_size
        ));
    }
    if blocks * block_size > len {
        return Err(format!(
            "{blocks} blocks of {block_size} bytes do not fit a {len}-byte file"
        ));
    }
    Ok(())
}

/// A temporary file removed on drop unless kept.
struct TempFile {
    path: PathBuf,
}

impl TempFile {
    fn keep(self) {
        std::mem::forget(self);
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_with(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(1);
            h.set_uid(0);
            h.set_gid(0);
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn test_mkfs_from_tar_writes_an_image_and_no_temp_file() {
        let t = tempfile::tempdir().unwrap();
        let tar = t.path().join("in.tar");
        fs::write(&tar, tar_with(&[("etc/hostname", b"vm\n")])).unwrap();
        let out = t.path().join("out.ext4");
        let summary = mkfs(&Source::detect(&tar), &out, Options::default()).unwrap();
        assert_eq!(fs::metadata(&out).unwrap().len(), summary.size_bytes);
        assert_eq!(names_in(t.path()), ["in.tar", "out.ext4"]);
    }

    #[test]
    fn test_mkfs_failure_leaves_existing_output_untouched_and_no_temp() {
        let t = tempfile::tempdir().unwrap();
        let tar = t.path().join("bad.tar");
        let mut data = tar_with(&[("a", b"hello")]);
        data.truncate(512 + 2);
        fs::write(&tar, data).unwrap();
        let out = t.path().join("out.ext4");
        fs::write(&out, b"previous").unwrap();
        let err = mkfs(&Source::Tar(tar), &out, Options::default()).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
        assert_eq!(fs::read(&out).unwrap(), b"previous");
        assert_eq!(names_in(t.path()), ["bad.tar", "out.ext4"]);
    }

    #[test]
    fn test_mkfs_of_a_directory_leaves_out_its_own_image() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("file"), b"x").unwrap();
        let out = t.path().join("image.ext4");
        let mut seen = Vec::new();
        mkfs_with_progress(
            &Source::Dir(t.path().to_path_buf()),
            &out,
            Options::default(),
            &mut |p| {
                if let MkfsProgress::Entry { path, .. } = p {
                    seen.push(path.to_vec());
                }
            },
        )
        .unwrap();
        assert_eq!(seen, [b"".to_vec(), b"file".to_vec()]);
    }

    #[test]
    fn test_source_detect_tells_stdin_dir_and_tar() {
        assert_eq!(Source::detect(Path::new("-")), Source::Stdin);
        assert_eq!(
            Source::detect(Path::new("/")),
            Source::Dir(PathBuf::from("/"))
        );
        assert_eq!(
            Source::detect(Path::new("x.tar")),
            Source::Tar(PathBuf::from("x.tar"))
        );
    }
}
