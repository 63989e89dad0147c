//! Extended attributes: name prefixes to the kernel's name indexes, POSIX
//! ACLs from the VFS (`getxattr`) format to ext4's on-disk format, and the
//! two places they are stored: the inode's spare 96 bytes past
//! `i_extra_isize`, or (when they do not all fit) one external block.
//!
//! Limits: no `ea_inode` (values in their own inodes), so one inode's
//! attributes must fit in one 4 KiB block; no sharing of identical blocks.

use zerocopy::IntoBytes;
use zerocopy::byteorder::little_endian::{U16, U32};

use crate::csum;
use crate::format::{
    BLOCK_SIZE, EXTRA_ISIZE, GOOD_OLD_INODE_SIZE, INODE_SIZE, XATTR_BLOCK_HEADER_SIZE, XATTR_MAGIC,
    XattrEntry,
};

/// One attribute in on-disk form: name index, name suffix, value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskXattr {
    /// `e_name_index`.
    pub index: u8,
    /// Name after the prefix.
    pub name: Vec<u8>,
    /// Value as stored.
    pub value: Vec<u8>,
}

/// Why an attribute cannot be stored.
#[derive(Debug, PartialEq, Eq)]
pub enum XattrProblem {
    /// No ext4 name index for this prefix.
    UnknownPrefix,
    /// Name after the prefix longer than 255 bytes.
    NameTooLong,
    /// A POSIX ACL value that does not parse.
    BadAcl,
    /// All attributes together exceed one block.
    TooLarge {
        /// Bytes needed.
        needed: usize,
    },
}

impl std::fmt::Display for XattrProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownPrefix => write!(
                f,
                "no ext4 name index for this prefix (user., trusted., security., system.)"
            ),
            Self::NameTooLong => write!(f, "name longer than 255 bytes after its prefix"),
            Self::BadAcl => write!(f, "not a valid POSIX ACL value"),
            Self::TooLarge { needed } => write!(
                f,
                "the attributes need {needed} bytes, more than one {BLOCK_SIZE}-byte block"
            ),
        }
    }
}

/// Prefixes, longest first where one is a prefix of another
/// (`fs/ext4/xattr.c`: `ext4_xattr_handler_map`).
const PREFIXES: &[(&[u8], u8, bool)] = &[
    (b"system.posix_acl_access", 2, true),
    (b"system.posix_acl_default", 3, true),
    (b"system.richacl", 8, true),
    (b"user.", 1, false),
    (b"trusted.", 4, false),
    (b"security.", 6, false),
    (b"system.", 7, false),
];

/// Maps a full attribute name and its value to on-disk form.
pub fn to_disk(full: &[u8], value: &[u8]) -> Result<DiskXattr, XattrProblem> {
    for &(prefix, index, exact) in PREFIXES {
        let hit = if exact {
            full == prefix
        } else {
            full.starts_with(prefix) && full.len() > prefix.len()
        };
        if hit {
            let name = full[if exact { full.len() } else { prefix.len() }..].to_vec();
            if name.len() > 255 {
                return Err(XattrProblem::NameTooLong);
            }
            let value = if index == 2 || index == 3 {
                acl_to_disk(value)?
            } else {
                value.to_vec()
            };
            return Ok(DiskXattr { index, name, value });
        }
    }
    Err(XattrProblem::UnknownPrefix)
}

/// `posix_acl_xattr` (version 2, 8-byte entries) to `ext4_acl` (version 1,
/// 4-byte entries except named users/groups). Already-converted values
/// pass through.
fn acl_to_disk(v: &[u8]) -> Result<Vec<u8>, XattrProblem> {
    const ACL_USER: u16 = 0x02;
    const ACL_GROUP: u16 = 0x08;
    if v.len() < 4 {
        return Err(XattrProblem::BadAcl);
    }
    let version = u32::from_le_bytes(v[..4].try_into().expect("4 bytes"));
    if version == 1 {
        return Ok(v.to_vec());
    }
    if version != 2 || (v.len() - 4) % 8 != 0 {
        return Err(XattrProblem::BadAcl);
    }
    let mut out = 1u32.to_le_bytes().to_vec();
    for e in v[4..].chunks(8) {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        out.extend_from_slice(&e[0..4]);
        if tag == ACL_USER || tag == ACL_GROUP {
            out.extend_from_slice(&e[4..8]);
        }
    }
    Ok(out)
}

fn pad4(n: usize) -> usize {
    n.div_ceil(4) * 4
}

fn entry_size(x: &DiskXattr) -> usize {
    16 + pad4(x.name.len())
}

/// Sorts as the kernel's sorted block lookup expects: index, name length, name.
pub fn sort(xs: &mut [DiskXattr]) {
    xs.sort_by(|a, b| (a.index, a.name.len(), &a.name).cmp(&(b.index, b.name.len(), &b.name)));
}

/// Bytes available for in-inode attributes (after the 4-byte magic).
const IBODY_SPACE: usize = INODE_SIZE as usize - GOOD_OLD_INODE_SIZE - EXTRA_ISIZE as usize - 4;

/// Lays out `xs` (sorted) as entries + terminator in `area`, values from
/// the end of `area` down; value offsets are relative to `base` within
/// `area`. Returns the entry hashes, or None if they do not fit.
fn lay_out(
    xs: &[DiskXattr],
    area: &mut [u8],
    entries_start: usize,
    base: usize,
) -> Option<Vec<u32>> {
    let need: usize = xs
        .iter()
        .map(|x| entry_size(x) + pad4(x.value.len()))
        .sum::<usize>()
        + 4;
    if entries_start + need > area.len() {
        return None;
    }
    let mut off = entries_start;
    let mut vend = area.len();
    let mut hashes = Vec::with_capacity(xs.len());
    for x in xs {
        let voff = if x.value.is_empty() {
            0
        } else {
            vend -= pad4(x.value.len());
            area[vend..vend + x.value.len()].copy_from_slice(&x.value);
            vend - base
        };
        let hash = csum::xattr_entry_hash(&x.name, &x.value);
        let e = XattrEntry {
            e_name_len: x.name.len() as u8,
            e_name_index: x.index,
            e_value_offs: U16::new(voff as u16),
            e_value_inum: U32::new(0),
            e_value_size: U32::new(x.value.len() as u32),
            e_hash: U32::new(hash),
        };
        area[off..off + 16].copy_from_slice(e.as_bytes());
        area[off + 16..off + 16 + x.name.len()].copy_from_slice(&x.name);
        off += entry_size(x);
        hashes.push(hash);
    }
    Some(hashes)
}

/// Where an inode's attributes go.
pub enum Placement {
    /// None at all.
    None,
    /// All in the inode: the bytes from `i_extra_isize`'s end to the end of
    /// the inode (magic included).
    Inode(Vec<u8>),
    /// All in one external block; the block is finished (hash, checksum) by
    /// [`finish_block`] once its number is known.
    Block(Vec<u8>),
}

/// Decides where `xs` (sorted) go and lays them out.
pub fn place(xs: &[DiskXattr]) -> Result<Placement, XattrProblem> {
    if xs.is_empty() {
        return Ok(Placement::None);
    }
    let mut area = vec![0u8; IBODY_SPACE + 4];
    if lay_out(xs, &mut area, 4, 4).is_some() {
        area[..4].copy_from_slice(&XATTR_MAGIC.to_le_bytes());
        return Ok(Placement::Inode(area));
    }
    let mut b = vec![0u8; BLOCK_SIZE as usize];
    let hashes =
        lay_out(xs, &mut b, XATTR_BLOCK_HEADER_SIZE, 0).ok_or_else(|| XattrProblem::TooLarge {
            needed: XATTR_BLOCK_HEADER_SIZE
                + xs.iter()
                    .map(|x| entry_size(x) + pad4(x.value.len()))
                    .sum::<usize>()
                + 4,
        })?;
    b[0..4].copy_from_slice(&XATTR_MAGIC.to_le_bytes());
    b[4..8].copy_from_slice(&1u32.to_le_bytes()); // h_refcount
    b[8..12].copy_from_slice(&1u32.to_le_bytes()); // h_blocks
    b[12..16].copy_from_slice(&csum::xattr_block_hash(&hashes).to_le_bytes());
    Ok(Placement::Block(b))
}

/// Sets the block checksum once the block's disk address is known.
pub fn finish_block(b: &mut [u8], fs_seed: u32, block_nr: u64) {
    csum::set_xattr_block(fs_seed, block_nr, b);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_prefixes_map_to_kernel_indexes() {
        let x = to_disk(b"security.capability", b"v").expect("known");
        assert_eq!((x.index, x.name.as_slice()), (6, b"capability".as_slice()));
        let x = to_disk(b"system.data", b"").expect("known");
        assert_eq!(x.index, 7);
        assert_eq!(to_disk(b"bogus.x", b""), Err(XattrProblem::UnknownPrefix));
    }

    #[test]
    fn test_acl_converts_to_short_entries() {
        // version 2; USER_OBJ rw; USER 1000 r; GROUP_OBJ r; MASK r; OTHER r
        let mut v = 2u32.to_le_bytes().to_vec();
        for (tag, perm, id) in [
            (1u16, 6u16, u32::MAX),
            (2, 4, 1000),
            (4, 4, u32::MAX),
            (0x10, 4, u32::MAX),
            (0x20, 4, u32::MAX),
        ] {
            v.extend_from_slice(&tag.to_le_bytes());
            v.extend_from_slice(&perm.to_le_bytes());
            v.extend_from_slice(&id.to_le_bytes());
        }
        let d = to_disk(b"system.posix_acl_access", &v).expect("acl");
        assert_eq!(d.value.len(), 4 + 4 + 8 + 4 + 4 + 4);
        assert_eq!(&d.value[..4], &1u32.to_le_bytes());
    }

    #[test]
    fn test_large_attributes_go_to_a_block() {
        let small = vec![to_disk(b"user.a", b"1").expect("ok")];
        assert!(matches!(place(&small), Ok(Placement::Inode(_))));
        let big = vec![to_disk(b"user.a", &[7u8; 200]).expect("ok")];
        assert!(matches!(place(&big), Ok(Placement::Block(_))));
        let huge = vec![to_disk(b"user.a", &[7u8; 5000]).expect("ok")];
        assert!(matches!(place(&huge), Err(XattrProblem::TooLarge { .. })));
    }
}
