//! Reading `.deb` files: the `ar` container, `control.tar.{gz,xz,zst,}` members, and the
//! `data.tar.{xz,zst,gz,bz2?,}` payload as a streaming tar reader.
//!
//! Format (deb(5)): `!<arch>\n`, then 60-byte member headers (name 16, mtime 12, uid 6,
//! gid 6, mode 8, size 10, magic "`\n") each followed by the member and a pad byte to an even
//! offset. Members: `debian-binary` (`2.0\n`), `control.tar.*`, `data.tar.*`. The member
//! offsets are found once at open; [`DebFile::data`] opens its own file handle, so the
//! returned archive owns its reader. Limits: bzip2 and lzma data members are refused (none
//! in Debian or Ubuntu releases vmimage targets).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::deb822::{Paragraph, parse_paragraphs};

/// The `ar` global header.
const AR_MAGIC: &[u8; 8] = b"!<arch>\n";
/// Size of an `ar` member header.
const AR_HEADER_LEN: usize = 60;

/// A malformed or unreadable `.deb`.
#[derive(Debug, thiserror::Error)]
pub enum DebError {
    /// Reading the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The `.deb`.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The container or a member is malformed.
    #[error("{path}: {message}")]
    Format {
        /// The `.deb`.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// One file of the control archive (`postinst`, `conffiles`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlMember {
    /// Name without leading `./`.
    pub name: String,
    /// Permission bits from the tar header.
    pub mode: u32,
    /// Content.
    pub data: Vec<u8>,
}

/// The control archive of a `.deb`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlInfo {
    /// The parsed `control` file.
    pub control: Paragraph,
    /// Every member except `control`, by name (scripts, `conffiles`, `md5sums`, `triggers`,
    /// `shlibs`, `symbols`, ...). dpkg copies these to `/var/lib/dpkg/info/<pkg>.<name>`.
    pub members: BTreeMap<String, ControlMember>,
}

impl ControlInfo {
    /// A maintainer script (`preinst`, `postinst`, `prerm`, `postrm`, `config`), if present.
    pub fn script(&self, name: &str) -> Option<&[u8]> {
        self.members.get(name).map(|m| m.data.as_slice())
    }

    /// Conffile paths the package ships, from `conffiles` (absolute paths, in file order).
    /// Flagged lines (`remove-on-upgrade /path`, deb-conffiles(5)) name files the package
    /// does not ship and are left out.
    pub fn conffiles(&self) -> Vec<String> {
        self.text_member("conffiles")
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with('/'))
            .map(str::to_string)
            .collect()
    }

    /// `(md5 hex, path)` pairs from `md5sums` (paths relative to `/`, as dpkg writes them).
    pub fn md5sums(&self) -> Vec<(String, String)> {
        self.text_member("md5sums")
            .lines()
            .filter_map(|l| {
                let (sum, path) = l.split_once(char::is_whitespace)?;
                Some((sum.to_string(), path.trim_start().to_string()))
            })
            .collect()
    }

    /// `triggers`, if present.
    pub fn triggers(&self) -> Option<&str> {
        self.members
            .get("triggers")
            .and_then(|m| std::str::from_utf8(&m.data).ok())
    }

    /// `shlibs`, if present.
    pub fn shlibs(&self) -> Option<&str> {
        self.members
            .get("shlibs")
            .and_then(|m| std::str::from_utf8(&m.data).ok())
    }

    fn text_member(&self, name: &str) -> &str {
        self.members
            .get(name)
            .and_then(|m| std::str::from_utf8(&m.data).ok())
            .unwrap_or("")
    }
}

/// Where one `ar` member lies in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Member {
    name: String,
    offset: u64,
    size: u64,
}

/// An opened `.deb`.
#[derive(Debug, Clone)]
pub struct DebFile {
    path: PathBuf,
    control: Member,
    data: Member,
    /// The first member's modification time (when the package was built).
    mtime: i64,
}

impl DebFile {
    /// Opens a `.deb` and locates its members.
    pub fn open(path: &Path) -> Result<DebFile, DebError> {
        let format = |message: String| DebError::Format {
            path: path.to_path_buf(),
            message,
        };
        let io = |source| DebError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let mut magic = [0u8; 8];
        file.read_exact(&mut magic)
            .map_err(|_| format("too short for an ar archive".into()))?;
        if &magic != AR_MAGIC {
            return Err(format("not an ar archive (bad magic)".into()));
        }
        let mut members = Vec::new();
        let mut first_mtime = None;
        let mut offset = AR_MAGIC.len() as u64;
        while offset < len {
            let mut header = [0u8; AR_HEADER_LEN];
            file.seek(SeekFrom::Start(offset)).map_err(io)?;
            file.read_exact(&mut header)
                .map_err(|_| format(format!("truncated member header at offset {offset}")))?;
            if &header[58..60] != b"`\n" {
                return Err(format(format!(
                    "bad member header magic at offset {offset}"
                )));
            }
            let field = |r: std::ops::Range<usize>| {
                String::from_utf8_lossy(&header[r]).trim_end().to_string()
            };
            // GNU ar ends names with '/'.
            let name = field(0..16).trim_end_matches('/').to_string();
            let size: u64 = field(48..58)
                .parse()
                .map_err(|_| format(format!("member {name:?}: bad size {:?}", field(48..58))))?;
            if first_mtime.is_none() {
                first_mtime = Some(field(16..28).parse::<i64>().map_err(|_| {
                    format(format!("member {name:?}: bad mtime {:?}", field(16..28)))
                })?);
            }
            let data_offset = offset + AR_HEADER_LEN as u64;
            if data_offset + size > len {
                return Err(format(format!(
                    "member {name:?} ({size} bytes at {data_offset}) runs past the end ({len} bytes)"
                )));
            }
            members.push(Member {
                name,
                offset: data_offset,
                size,
            });
            // Members are padded to an even offset.
            offset = data_offset + size + (size & 1);
        }
        let Some(first) = members.first() else {
            return Err(format("empty ar archive".into()));
        };
        if first.name != "debian-binary" {
            return Err(format(format!(
                "first member is {:?}, expected \"debian-binary\"",
                first.name
            )));
        }
        let mut version = String::new();
        file.seek(SeekFrom::Start(first.offset)).map_err(io)?;
        (&mut file)
            .take(first.size.min(64))
            .read_to_string(&mut version)
            .map_err(|_| format("debian-binary is not text".into()))?;
        if !version.trim().starts_with("2.") {
            return Err(format(format!(
                "unsupported format version {:?} (expected 2.x)",
                version.trim()
            )));
        }
        let find = |prefix: &str| {
            members
                .iter()
                .find(|m| m.name == prefix || m.name.starts_with(&format!("{prefix}.")))
                .cloned()
                .ok_or_else(|| format(format!("no {prefix} member")))
        };
        Ok(DebFile {
            path: path.to_path_buf(),
            control: find("control.tar")?,
            data: find("data.tar")?,
            mtime: first_mtime.unwrap_or(0),
        })
    }

    /// A decompressing reader over one member.
    fn member_reader(&self, member: &Member) -> Result<Box<dyn Read + Send>, DebError> {
        let io = |source| DebError::Io {
            path: self.path.clone(),
            source,
        };
        let mut file = File::open(&self.path).map_err(io)?;
        file.seek(SeekFrom::Start(member.offset)).map_err(io)?;
        let raw = file.take(member.size);
        let ext = member.name.rsplit_once(".tar").map_or("", |(_, e)| e);
        Ok(match ext {
            "" => Box::new(raw),
            ".gz" => Box::new(flate2::read::GzDecoder::new(raw)),
            ".xz" => Box::new(liblzma::read::XzDecoder::new(raw)),
            ".zst" => Box::new(zstd::stream::read::Decoder::new(raw).map_err(io)?),
            other => {
                return Err(DebError::Format {
                    path: self.path.clone(),
                    message: format!("member {}: unsupported compression {other:?}", member.name),
                });
            }
        })
    }

    /// Modification time of the first `ar` member, in seconds since the
    /// epoch: when the package was built, a reproducible SOURCE_DATE_EPOCH.
    pub fn mtime(&self) -> i64 {
        self.mtime
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the control archive.
    pub fn control(&self) -> Result<ControlInfo, DebError> {
        let format = |message: String| DebError::Format {
            path: self.path.clone(),
            message: format!("{}: {message}", self.control.name),
        };
        let mut archive = tar::Archive::new(self.member_reader(&self.control)?);
        let mut control = None;
        let mut members = BTreeMap::new();
        for entry in archive.entries().map_err(|e| format(e.to_string()))? {
            let mut entry = entry.map_err(|e| format(e.to_string()))?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let name = entry
                .path()
                .map_err(|e| format(e.to_string()))?
                .to_string_lossy()
                .trim_start_matches("./")
                .to_string();
            let mode = entry.header().mode().map_err(|e| format(e.to_string()))?;
            let mut data = Vec::new();
            entry
                .read_to_end(&mut data)
                .map_err(|e| format(format!("{name}: {e}")))?;
            if name == "control" {
                let text = String::from_utf8(data)
                    .map_err(|_| format("control file is not UTF-8".into()))?;
                let mut ps =
                    parse_paragraphs(&text).map_err(|e| format(format!("control file: {e}")))?;
                if ps.len() != 1 {
                    return Err(format(format!(
                        "control file has {} paragraphs, expected 1",
                        ps.len()
                    )));
                }
                control = ps.pop();
            } else {
                members.insert(name.clone(), ControlMember { name, mode, data });
            }
        }
        Ok(ControlInfo {
            control: control.ok_or_else(|| format("no control file".into()))?,
            members,
        })
    }

    /// The data archive as a streaming tar reader (decompressing on the fly).
    pub fn data(&self) -> Result<tar::Archive<Box<dyn Read + Send>>, DebError> {
        Ok(tar::Archive::new(self.member_reader(&self.data)?))
    }

    /// The data member's name (`data.tar.xz`, `data.tar.zst`, ...).
    pub fn data_member_name(&self) -> &str {
        &self.data.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_conffiles_leave_out_flagged_lines() {
        let info = ControlInfo {
            control: crate::deb822::parse_paragraphs("Package: p\n")
                .unwrap()
                .remove(0),
            members: BTreeMap::from([(
                "conffiles".to_string(),
                ControlMember {
                    name: "conffiles".into(),
                    mode: 0o644,
                    data: b"/etc/a.conf\nremove-on-upgrade /etc/old.conf\n\n/etc/b.conf\n".to_vec(),
                },
            )]),
        };
        assert_eq!(info.conffiles(), ["/etc/a.conf", "/etc/b.conf"]);
    }
}
