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
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::deb822::Paragraph;

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

    /// Conffile paths listed in `conffiles` (absolute paths, in file order).
    pub fn conffiles(&self) -> Vec<String> {
        self.text_member("conffiles")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| l.split_whitespace().next().unwrap_or(l).to_string())
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
}

impl DebFile {
    /// Opens a `.deb` and locates its members.
    pub fn open(path: &Path) -> Result<DebFile, DebError> {
        let _ = path;
        todo!()
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the control archive.
    pub fn control(&self) -> Result<ControlInfo, DebError> {
        todo!()
    }

    /// The data archive as a streaming tar reader (decompressing on the fly).
    pub fn data(&self) -> Result<tar::Archive<Box<dyn Read + Send>>, DebError> {
        todo!()
    }

    /// The data member's name (`data.tar.xz`, `data.tar.zst`, ...).
    pub fn data_member_name(&self) -> &str {
        &self.data.name
    }
}
