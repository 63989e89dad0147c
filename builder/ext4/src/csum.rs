//! metadata_csum: the crc32c checksums e2fsck and the kernel verify, with the
//! kernel's conventions (`ext4_chksum` is a raw crc32c update with no final
//! inversion; the filesystem seed is `crc32c(~0, uuid)`; per-inode seeds
//! add the inode number and generation). Also the directory-name hash
//! (half-MD4, `ext2fs_dirhash`) and the xattr entry hashes.

use crate::format::{
    DIR_TAIL_SIZE, DX_TAIL_SIZE, GROUP_DESC_SIZE, INODE_CSUM_HI_OFFSET, INODE_CSUM_LO_OFFSET,
    INODE_SIZE, SUPERBLOCK_CSUM_OFFSET,
};

/// The kernel's `crc32c_le(seed, data)`: no pre/post inversion. The crate
/// computes the standard (inverted) form, hence the `!`s.
pub fn crc32c_raw(seed: u32, data: &[u8]) -> u32 {
    !crc32c::crc32c_append(!seed, data)
}

/// `s_csum_seed`: the seed every other checksum starts from.
pub fn fs_seed(uuid: &[u8; 16]) -> u32 {
    crc32c_raw(!0, uuid)
}

/// Per-inode seed (`ei->i_csum_seed`).
pub fn inode_seed(fs_seed: u32, ino: u32, generation: u32) -> u32 {
    let s = crc32c_raw(fs_seed, &ino.to_le_bytes());
    crc32c_raw(s, &generation.to_le_bytes())
}

/// Superblock checksum over the bytes before `s_checksum`.
pub fn superblock(sb: &[u8]) -> u32 {
    crc32c_raw(!0, &sb[..SUPERBLOCK_CSUM_OFFSET])
}

/// Group descriptor checksum (low 16 bits of the crc), with `bg_checksum`
/// zero in `desc`.
pub fn group_desc(fs_seed: u32, group: u32, desc: &[u8]) -> u16 {
    debug_assert_eq!(desc.len() as u64, GROUP_DESC_SIZE);
    let s = crc32c_raw(fs_seed, &group.to_le_bytes());
    (crc32c_raw(s, desc) & 0xFFFF) as u16
}

/// Block or inode bitmap checksum over the bitmap's meaningful bytes.
pub fn bitmap(fs_seed: u32, bits: &[u8]) -> u32 {
    crc32c_raw(fs_seed, bits)
}

/// Fills in `l_i_checksum_lo` and `i_checksum_hi` of a full on-disk inode.
pub fn set_inode(fs_seed: u32, ino: u32, raw: &mut [u8]) {
    debug_assert_eq!(raw.len() as u64, INODE_SIZE);
    raw[INODE_CSUM_LO_OFFSET..INODE_CSUM_LO_OFFSET + 2].fill(0);
    raw[INODE_CSUM_HI_OFFSET..INODE_CSUM_HI_OFFSET + 2].fill(0);
    let generation = u32::from_le_bytes(raw[0x64..0x68].try_into().expect("4 bytes"));
    let c = crc32c_raw(inode_seed(fs_seed, ino, generation), raw);
    raw[INODE_CSUM_LO_OFFSET..INODE_CSUM_LO_OFFSET + 2].copy_from_slice(&(c as u16).to_le_bytes());
    raw[INODE_CSUM_HI_OFFSET..INODE_CSUM_HI_OFFSET + 2]
        .copy_from_slice(&((c >> 16) as u16).to_le_bytes());
}

/// Fills in the `ext4_extent_tail` right after `eh_max` entries of an extent
/// tree block.
pub fn set_extent_block(inode_seed: u32, block: &mut [u8], eh_max: usize) {
    let off = 12 + 12 * eh_max;
    let c = crc32c_raw(inode_seed, &block[..off]);
    block[off..off + 4].copy_from_slice(&c.to_le_bytes());
}

/// Fills in the checksum of the dirent tail closing a directory leaf block.
pub fn set_dir_leaf(inode_seed: u32, block: &mut [u8]) {
    let off = block.len() - DIR_TAIL_SIZE;
    let c = crc32c_raw(inode_seed, &block[..off]);
    let n = block.len();
    block[n - 4..].copy_from_slice(&c.to_le_bytes());
}

/// Fills in the `dx_tail` of an htree root or node. `count_offset` is where
/// `dx_countlimit` sits; the tail follows the `limit` entries.
pub fn set_dx_node(inode_seed: u32, block: &mut [u8], count_offset: usize) {
    let limit = u16::from_le_bytes([block[count_offset], block[count_offset + 1]]) as usize;
    let count = u16::from_le_bytes([block[count_offset + 2], block[count_offset + 3]]) as usize;
    let tail = count_offset + limit * 8;
    debug_assert!(tail + DX_TAIL_SIZE <= block.len());
    let c = crc32c_raw(inode_seed, &block[..count_offset + count * 8]);
    // dt_reserved, then the checksum field as zero.
    let c = crc32c_raw(c, &block[tail..tail + 4]);
    let c = crc32c_raw(c, &[0u8; 4]);
    block[tail + 4..tail + 8].copy_from_slice(&c.to_le_bytes());
}

/// Fills in `h_checksum` of an external xattr block stored at `block_nr`.
pub fn set_xattr_block(fs_seed: u32, block_nr: u64, block: &mut [u8]) {
    block[0x10..0x14].fill(0);
    let c = crc32c_raw(fs_seed, &block_nr.to_le_bytes());
    let c = crc32c_raw(c, block);
    block[0x10..0x14].copy_from_slice(&c.to_le_bytes());
}

/// `str2hashbuf` with signed chars (`EXT2_FLAGS_SIGNED_HASH`): what mke2fs
/// picks on x86, so readers that assume it (ext4-view) agree with us.
fn str2hashbuf(msg: &[u8], len: usize, buf: &mut [u32], num: usize) {
    let mut pad = (len as u32) | ((len as u32) << 8);
    pad |= pad << 16;
    let mut val = pad;
    let len = len.min(num * 4);
    let mut num = num as isize;
    let mut i_out = 0;
    for (i, &c) in msg[..len].iter().enumerate() {
        val = (c as i8 as i32 as u32).wrapping_add(val << 8);
        if i % 4 == 3 {
            buf[i_out] = val;
            i_out += 1;
            val = pad;
            num -= 1;
        }
    }
    num -= 1;
    if num >= 0 {
        buf[i_out] = val;
        i_out += 1;
    }
    loop {
        num -= 1;
        if num < 0 {
            break;
        }
        buf[i_out] = pad;
        i_out += 1;
    }
}

fn half_md4_transform(buf: &mut [u32; 4], inp: &[u32; 8]) {
    const K2: u32 = 0o13240474631;
    const K3: u32 = 0o15666365641;
    let f = |x: u32, y: u32, z: u32| z ^ (x & (y ^ z));
    let g = |x: u32, y: u32, z: u32| (x & y).wrapping_add((x ^ y) & z);
    let h = |x: u32, y: u32, z: u32| x ^ y ^ z;
    let [mut a, mut b, mut c, mut d] = *buf;
    macro_rules! round {
        ($f:expr, $a:ident, $b:ident, $c:ident, $d:ident, $x:expr, $s:expr) => {
            $a = $a.wrapping_add($f($b, $c, $d)).wrapping_add($x);
            $a = $a.rotate_left($s);
        };
    }
    round!(f, a, b, c, d, inp[0], 3);
    round!(f, d, a, b, c, inp[1], 7);
    round!(f, c, d, a, b, inp[2], 11);
    round!(f, b, c, d, a, inp[3], 19);
    round!(f, a, b, c, d, inp[4], 3);
    round!(f, d, a, b, c, inp[5], 7);
    round!(f, c, d, a, b, inp[6], 11);
    round!(f, b, c, d, a, inp[7], 19);
    round!(g, a, b, c, d, inp[1].wrapping_add(K2), 3);
    round!(g, d, a, b, c, inp[3].wrapping_add(K2), 5);
    round!(g, c, d, a, b, inp[5].wrapping_add(K2), 9);
    round!(g, b, c, d, a, inp[7].wrapping_add(K2), 13);
    round!(g, a, b, c, d, inp[0].wrapping_add(K2), 3);
    round!(g, d, a, b, c, inp[2].wrapping_add(K2), 5);
    round!(g, c, d, a, b, inp[4].wrapping_add(K2), 9);
    round!(g, b, c, d, a, inp[6].wrapping_add(K2), 13);
    round!(h, a, b, c, d, inp[3].wrapping_add(K3), 3);
    round!(h, d, a, b, c, inp[7].wrapping_add(K3), 9);
    round!(h, c, d, a, b, inp[2].wrapping_add(K3), 11);
    round!(h, b, c, d, a, inp[6].wrapping_add(K3), 15);
    round!(h, a, b, c, d, inp[1].wrapping_add(K3), 3);
    round!(h, d, a, b, c, inp[5].wrapping_add(K3), 9);
    round!(h, c, d, a, b, inp[0].wrapping_add(K3), 11);
    round!(h, b, c, d, a, inp[4].wrapping_add(K3), 15);
    buf[0] = buf[0].wrapping_add(a);
    buf[1] = buf[1].wrapping_add(b);
    buf[2] = buf[2].wrapping_add(c);
    buf[3] = buf[3].wrapping_add(d);
}

/// `ext2fs_dirhash` for `DX_HASH_HALF_MD4` (signed chars): returns (hash, minor
/// hash). The major hash has its low bit clear (the bit marks collisions
/// continuing into the next block in dx entries).
pub fn dx_hash_half_md4(name: &[u8], seed: &[u32; 4]) -> (u32, u32) {
    let mut buf = if seed.iter().all(|&s| s == 0) {
        [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476]
    } else {
        *seed
    };
    let mut p = name;
    let mut len = name.len() as isize;
    // An empty name still runs zero rounds, as the C loop does.
    while len > 0 {
        let mut inp = [0u32; 8];
        str2hashbuf(p, len as usize, &mut inp, 8);
        half_md4_transform(&mut buf, &inp);
        len -= 32;
        if len > 0 {
            p = &p[32..];
        }
    }
    let mut hash = buf[1] & !1;
    // EXT2_HTREE_EOF_32BIT << 1 is reserved for end-of-directory.
    if hash == 0x7fff_ffff << 1 {
        hash = (0x7fff_ffff - 1) << 1;
    }
    (hash, buf[2])
}

/// `ext2fs_ext_attr_hash_entry` (signed-char name bytes, as older x86
/// kernels computed it; newer kernels and e2fsck 1.47 accept both).
pub fn xattr_entry_hash(name: &[u8], value: &[u8]) -> u32 {
    let mut hash: u32 = 0;
    for &c in name {
        hash = (hash << 5) ^ (hash >> 27) ^ (c as i8 as i32 as u32);
    }
    for chunk in value.chunks(4) {
        let mut w = [0u8; 4];
        w[..chunk.len()].copy_from_slice(chunk);
        hash = (hash << 16) ^ (hash >> 16) ^ u32::from_le_bytes(w);
    }
    hash
}

/// `ext4_xattr_rehash`: the block header hash from the entry hashes.
pub fn xattr_block_hash(entry_hashes: &[u32]) -> u32 {
    let mut hash: u32 = 0;
    for &h in entry_hashes {
        if h == 0 {
            return 0;
        }
        hash = (hash << 16) ^ (hash >> 16) ^ h;
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_crc32c_raw_matches_kernel_convention() {
        // crc32c("123456789") standard check value is 0xE3069283; the raw
        // form with seed ~0 is its bitwise complement.
        assert_eq!(crc32c_raw(!0, b"123456789"), !0xE306_9283);
    }
}
