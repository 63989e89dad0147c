//! Block-group geometry and the sequential block allocator.
//!
//! Blocks are handed out in one ascending sweep (file data while entries
//! stream in, then metadata in `finish`), skipping the superblock/GDT
//! backup region of every `sparse_super` group (0, 1, 3^n, 5^n, 7^n). The
//! backup region's size is fixed up front (`gdt_reserve` GDT blocks, a bound
//! on the final group count), because data lands before the final size is
//! known; reserved blocks the final GDT does not need stay free.
//!
//! Limits: no `meta_bg`, so the GDT must fit in the reservation (see
//! [`gdt_reserve_for`]).

use crate::format::{BLOCKS_PER_GROUP, EXT_INIT_MAX_LEN, GROUPS_PER_DESC_BLOCK};

/// Whether group `g` carries a superblock backup under `sparse_super`.
pub fn has_super(g: u64) -> bool {
    fn is_power_of(mut n: u64, base: u64) -> bool {
        while n % base == 0 {
            n /= base;
        }
        n == 1
    }
    g == 0 || g == 1 || is_power_of(g, 3) || is_power_of(g, 5) || is_power_of(g, 7)
}

/// GDT blocks for `groups` groups.
pub fn gdt_blocks(groups: u64) -> u64 {
    groups.div_ceil(GROUPS_PER_DESC_BLOCK)
}

/// GDT blocks to reserve in every backup group while streaming: exact for a
/// fixed size, else enough for 256 GiB (2048 groups, 32 blocks), the largest
/// image `ImageSize::Auto` makes. The unused part stays free space.
pub fn gdt_reserve_for(fixed_blocks: Option<u64>) -> u64 {
    match fixed_blocks {
        Some(b) => gdt_blocks(b.div_ceil(BLOCKS_PER_GROUP)).max(1),
        None => 32,
    }
}

/// Hands out blocks in ascending order, never inside a backup region.
#[derive(Debug, Clone)]
pub struct Allocator {
    /// Next block to hand out.
    pub next: u64,
    /// Length of each backup region: superblock + reserved GDT blocks.
    pub region: u64,
}

impl Allocator {
    /// Starts right after group 0's superblock and GDT reservation.
    pub fn new(gdt_reserve: u64) -> Self {
        let region = 1 + gdt_reserve;
        Self {
            next: region,
            region,
        }
    }

    /// Moves `next` out of a backup region if it is in one.
    fn skip_reserved(&mut self) {
        let g = self.next / BLOCKS_PER_GROUP;
        let start = g * BLOCKS_PER_GROUP;
        if has_super(g) && self.next < start + self.region {
            self.next = start + self.region;
        }
    }

    /// Up to `want` contiguous blocks (at least one, at most one extent's
    /// worth): returns (first block, count).
    pub fn run(&mut self, want: u64) -> (u64, u64) {
        debug_assert!(want > 0);
        self.skip_reserved();
        let mut g = self.next / BLOCKS_PER_GROUP + 1;
        while !has_super(g) {
            g += 1;
        }
        let limit = g * BLOCKS_PER_GROUP;
        let n = want.min(limit - self.next).min(EXT_INIT_MAX_LEN);
        let start = self.next;
        self.next += n;
        (start, n)
    }

    /// `n` contiguous blocks that do not cross a backup region (for an inode
    /// table); blocks skipped to find them stay free.
    pub fn contiguous(&mut self, n: u64) -> u64 {
        loop {
            self.skip_reserved();
            let mut g = self.next / BLOCKS_PER_GROUP + 1;
            while !has_super(g) {
                g += 1;
            }
            let limit = g * BLOCKS_PER_GROUP;
            if limit - self.next >= n {
                let start = self.next;
                self.next += n;
                return start;
            }
            self.next = limit;
        }
    }

    /// `n` blocks as runs (start, len), each run at most one extent long.
    pub fn runs(&mut self, mut n: u64) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = Vec::new();
        while n > 0 {
            let (s, l) = self.run(n);
            match out.last_mut() {
                Some(last) if last.0 + last.1 == s && last.1 + l <= EXT_INIT_MAX_LEN => last.1 += l,
                _ => out.push((s, l)),
            }
            n -= l;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_sparse_super_groups() {
        let got: Vec<u64> = (0..130).filter(|&g| has_super(g)).collect();
        assert_eq!(got, vec![0, 1, 3, 5, 7, 9, 25, 27, 49, 81, 125]);
    }

    #[test]
    fn test_allocator_skips_backup_regions() {
        let mut a = Allocator::new(2);
        assert_eq!(a.run(1), (3, 1));
        a.next = BLOCKS_PER_GROUP - 2;
        // Stops at the end of group 0 because group 1 holds a backup.
        assert_eq!(a.run(10), (BLOCKS_PER_GROUP - 2, 2));
        assert_eq!(a.run(10), (BLOCKS_PER_GROUP + 3, 10));
        // Group 2 has no backup: a run may cross from group 1 into it.
        a.next = 2 * BLOCKS_PER_GROUP - 1;
        assert_eq!(a.run(5), (2 * BLOCKS_PER_GROUP - 1, 5));
    }

    #[test]
    fn test_contiguous_never_crosses_a_backup_region() {
        let mut a = Allocator::new(1);
        a.next = BLOCKS_PER_GROUP - 5;
        assert_eq!(a.contiguous(10), BLOCKS_PER_GROUP + 2);
    }
}
