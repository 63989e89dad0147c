//! One on-disk inode (256 bytes): ownership split into low/high halves,
//! nanosecond timestamps with the two epoch bits that carry them past 2038,
//! `i_blocks` in 512-byte units, device numbers in `i_block` as the kernel
//! encodes them, in-inode xattrs after `i_extra_isize`, and the checksum.

use zerocopy::byteorder::little_endian::{U16, U32};
use zerocopy::{FromZeros, IntoBytes};

use crate::csum;
use crate::entry::Timestamp;
use crate::format::{EXTRA_ISIZE, INODE_SIZE, Inode, InodeFlags};

/// Everything that varies between inodes.
#[derive(Debug, Clone)]
pub struct InodeSpec<'a> {
    /// File type and permission bits.
    pub mode: u16,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// `i_size`.
    pub size: u64,
    /// `i_links_count`.
    pub links: u16,
    /// Blocks charged to the inode (data, tree, xattr), in 4 KiB units.
    pub blocks: u64,
    /// `i_flags`.
    pub flags: InodeFlags,
    /// Extent root, symlink target or device number.
    pub i_block: [u8; 60],
    /// External xattr block, 0 for none.
    pub file_acl: u64,
    /// Times.
    pub atime: Timestamp,
    /// Times.
    pub mtime: Timestamp,
    /// Times (also used as the creation time).
    pub ctime: Timestamp,
    /// In-inode xattr area (magic included), if any.
    pub ibody_xattr: Option<&'a [u8]>,
}

/// Seconds range ext4 can store: 32 signed bits plus two epoch bits.
const MIN_SEC: i64 = -(1 << 31);
const MAX_SEC: i64 = (1 << 31) - 1 + 3 * (1 << 32);

/// Encodes a time as (`i_*time`, `i_*time_extra`), clamped to the
/// representable range.
pub fn encode_time(t: Timestamp) -> (u32, u32) {
    let sec = t.sec.clamp(MIN_SEC, MAX_SEC);
    let lo = sec as u32;
    let epoch = ((sec - lo as i32 as i64) >> 32) as u32 & 3;
    let nsec = t.nsec.min(999_999_999);
    (lo, (nsec << 2) | epoch)
}

/// Device number in `i_block` (`ext4_inode` `old_encode_dev` when both
/// parts fit in a byte, else `new_encode_dev` in the second word).
pub fn encode_dev(major: u32, minor: u32) -> [u8; 60] {
    let mut b = [0u8; 60];
    if major < 256 && minor < 256 {
        b[..4].copy_from_slice(&((major << 8) | minor).to_le_bytes());
    } else {
        let v = (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12);
        b[4..8].copy_from_slice(&v.to_le_bytes());
    }
    b
}

/// The checksummed on-disk inode `ino`.
pub fn encode(spec: &InodeSpec<'_>, ino: u32, fs_seed: u32) -> [u8; INODE_SIZE as usize] {
    let mut i = Inode::new_zeroed();
    let (at, atx) = encode_time(spec.atime);
    let (mt, mtx) = encode_time(spec.mtime);
    let (ct, ctx) = encode_time(spec.ctime);
    let sectors = spec.blocks * 8;
    i.i_mode = U16::new(spec.mode);
    i.i_uid = U16::new(spec.uid as u16);
    i.l_i_uid_high = U16::new((spec.uid >> 16) as u16);
    i.i_gid = U16::new(spec.gid as u16);
    i.l_i_gid_high = U16::new((spec.gid >> 16) as u16);
    i.i_size_lo = U32::new(spec.size as u32);
    i.i_size_high = U32::new((spec.size >> 32) as u32);
    i.i_atime = U32::new(at);
    i.i_atime_extra = U32::new(atx);
    i.i_mtime = U32::new(mt);
    i.i_mtime_extra = U32::new(mtx);
    i.i_ctime = U32::new(ct);
    i.i_ctime_extra = U32::new(ctx);
    i.i_crtime = U32::new(ct);
    i.i_crtime_extra = U32::new(ctx);
    i.i_links_count = U16::new(spec.links);
    i.i_blocks_lo = U32::new(sectors as u32);
    i.l_i_blocks_high = U16::new((sectors >> 32) as u16);
    i.i_flags = U32::new(spec.flags.bits());
    i.i_block = spec.i_block;
    i.i_file_acl_lo = U32::new(spec.file_acl as u32);
    i.l_i_file_acl_high = U16::new((spec.file_acl >> 32) as u16);
    i.i_extra_isize = U16::new(EXTRA_ISIZE);
    let mut raw = [0u8; INODE_SIZE as usize];
    raw[..size_of::<Inode>()].copy_from_slice(i.as_bytes());
    if let Some(x) = spec.ibody_xattr {
        raw[size_of::<Inode>()..size_of::<Inode>() + x.len()].copy_from_slice(x);
    }
    csum::set_inode(fs_seed, ino, &mut raw);
    raw
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_time_encoding_carries_epoch_bits() {
        assert_eq!(encode_time(Timestamp { sec: 1, nsec: 5 }), (1, 20));
        let (lo, x) = encode_time(Timestamp { sec: -1, nsec: 0 });
        assert_eq!((lo, x), (u32::MAX, 0));
        // 2040 is past 2^31: epoch bit 1.
        let (lo, x) = encode_time(Timestamp {
            sec: 1 << 31,
            nsec: 0,
        });
        assert_eq!((lo, x & 3), (1 << 31, 1));
    }

    #[test]
    fn test_large_device_numbers_use_new_encoding() {
        let b = encode_dev(8, 1);
        assert_eq!(&b[..4], &0x0801u32.to_le_bytes());
        let b = encode_dev(259, 300);
        assert_eq!(&b[..4], &[0; 4]);
        let v = u32::from_le_bytes(b[4..8].try_into().expect("4"));
        assert_eq!(v, (300 & 0xff) | (259 << 8) | ((300 & !0xff) << 12));
    }
}
