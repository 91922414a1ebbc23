//! On-disk constants and helpers of the EROFS composefs image (composefs 1.0.8
//! `lcfs-erofs.h`, `erofs_fs.h`), shared by the writer and the reader.

/// Longest inline content (`LCFS_INLINE_CONTENT_MAX`).
pub const MAX_INLINE_CONTENT: usize = 5000;

pub const BLOCK_SIZE: u64 = 4096;
pub const BLOCK_BITS: u32 = 12;
pub const SLOT_SIZE: u64 = 32;
pub const SUPER_OFFSET: u64 = 1024;
pub const SUPER_SIZE: u64 = 128;
pub const COMPACT_INODE_SIZE: u64 = 32;
pub const EXTENDED_INODE_SIZE: u64 = 64;
pub const XATTR_HEADER_SIZE: u64 = 12;
pub const XATTR_ENTRY_SIZE: u64 = 4;
pub const DIRENT_SIZE: u64 = 12;

/// composefs header at offset 0.
pub const COMPOSEFS_MAGIC: u32 = 0xd078629a;
/// `LCFS_EROFS_VERSION`: the header layout version, not the format version.
pub const COMPOSEFS_HEADER_VERSION: u32 = 1;
pub const COMPOSEFS_FLAG_HAS_ACL: u32 = 1;
/// Highest composefs format version this implementation writes (`LCFS_VERSION_MAX`).
pub const COMPOSEFS_VERSION_MAX: u32 = 1;

pub const EROFS_MAGIC: u32 = 0xe0f5e1e2;
pub const FEATURE_COMPAT_MTIME: u32 = 2;
pub const FEATURE_COMPAT_XATTR_FILTER: u32 = 4;

pub const LAYOUT_FLAT_PLAIN: u16 = 0;
pub const LAYOUT_FLAT_INLINE: u16 = 2;
pub const LAYOUT_CHUNK_BASED: u16 = 4;
pub const CHUNK_FORMAT_BLKBITS_MASK: u32 = 0x1f;
pub const CHUNK_FORMAT_INDEXES: u16 = 0x20;
/// Chunk indexes of a file without data must fit in one block.
pub const MAX_NONINLINE_CHUNKS: u64 = 1024;
pub const NULL_ADDR: u32 = 0xffff_ffff;

pub const XATTR_INDEX_USER: u8 = 1;
pub const XATTR_INDEX_POSIX_ACL_ACCESS: u8 = 2;
pub const XATTR_INDEX_POSIX_ACL_DEFAULT: u8 = 3;
pub const XATTR_INDEX_TRUSTED: u8 = 4;
pub const XATTR_INDEX_LUSTRE: u8 = 5;
pub const XATTR_INDEX_SECURITY: u8 = 6;
pub const XATTR_FILTER_SEED: u32 = 0x25BB_E08F;
/// At most this many shared xattrs per inode (`EROFS_XATTR_LONG_PREFIX`).
pub const MAX_SHARED_PER_INODE: usize = 0x80;

pub const FT_UNKNOWN: u8 = 0;
pub const FT_REG_FILE: u8 = 1;
pub const FT_DIR: u8 = 2;
pub const FT_CHRDEV: u8 = 3;
pub const FT_BLKDEV: u8 = 4;
pub const FT_FIFO: u8 = 5;
pub const FT_SOCK: u8 = 6;
pub const FT_SYMLINK: u8 = 7;

/// The prefixes libcomposefs abbreviates to an index, in its matching order (it never
/// uses the lustre index).
pub const XATTR_PREFIXES: [(&[u8], u8); 5] = [
    (b"user.", XATTR_INDEX_USER),
    (b"system.posix_acl_access", XATTR_INDEX_POSIX_ACL_ACCESS),
    (b"system.posix_acl_default", XATTR_INDEX_POSIX_ACL_DEFAULT),
    (b"trusted.", XATTR_INDEX_TRUSTED),
    (b"security.", XATTR_INDEX_SECURITY),
];

/// `(index, suffix)` of an xattr name.
#[cfg(feature = "writer")]
pub fn xattr_index(key: &[u8]) -> (u8, &[u8]) {
    for (p, i) in XATTR_PREFIXES {
        if let Some(rest) = key.strip_prefix(p) {
            return (i, rest);
        }
    }
    (0, key)
}

/// The full name for an index and suffix as the kernel reconstructs it.
pub fn xattr_prefix(index: u8) -> Option<&'static [u8]> {
    Some(match index {
        0 => b"",
        XATTR_INDEX_USER => b"user.",
        XATTR_INDEX_POSIX_ACL_ACCESS => b"system.posix_acl_access",
        XATTR_INDEX_POSIX_ACL_DEFAULT => b"system.posix_acl_default",
        XATTR_INDEX_TRUSTED => b"trusted.",
        XATTR_INDEX_LUSTRE => b"lustre.",
        XATTR_INDEX_SECURITY => b"security.",
        _ => return None,
    })
}

pub fn round_up(x: u64, to: u64) -> u64 {
    x.div_ceil(to) * to
}

/// The 32-bit xxHash the kernel uses for the xattr name filter.
#[cfg(feature = "writer")]
pub fn xxh32(input: &[u8], seed: u32) -> u32 {
    const P1: u32 = 2654435761;
    const P2: u32 = 2246822519;
    const P3: u32 = 3266489917;
    const P4: u32 = 668265263;
    const P5: u32 = 374761393;
    let rd = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let round = |acc: u32, lane: u32| {
        acc.wrapping_add(lane.wrapping_mul(P2))
            .rotate_left(13)
            .wrapping_mul(P1)
    };
    let len = input.len();
    let mut p = input;
    let mut h: u32;
    if len >= 16 {
        let mut v = [
            seed.wrapping_add(P1).wrapping_add(P2),
            seed.wrapping_add(P2),
            seed,
            seed.wrapping_sub(P1),
        ];
        while p.len() >= 16 {
            for (i, vi) in v.iter_mut().enumerate() {
                *vi = round(*vi, rd(&p[i * 4..]));
            }
            p = &p[16..];
        }
        h = v[0]
            .rotate_left(1)
            .wrapping_add(v[1].rotate_left(7))
            .wrapping_add(v[2].rotate_left(12))
            .wrapping_add(v[3].rotate_left(18));
    } else {
        h = seed.wrapping_add(P5);
    }
    h = h.wrapping_add(len as u32);
    while p.len() >= 4 {
        h = h
            .wrapping_add(rd(p).wrapping_mul(P3))
            .rotate_left(17)
            .wrapping_mul(P4);
        p = &p[4..];
    }
    for &b in p {
        h = h
            .wrapping_add((b as u32).wrapping_mul(P5))
            .rotate_left(11)
            .wrapping_mul(P1);
    }
    h ^= h >> 15;
    h = h.wrapping_mul(P2);
    h ^= h >> 13;
    h = h.wrapping_mul(P3);
    h ^= h >> 16;
    h
}

/// `(chunk bits, chunk count)` for a file without data of this size
/// (`erofs_compute_chunking`): one chunk where possible, at least a block.
#[cfg(feature = "writer")]
pub fn chunking(size: u64) -> (u32, u64) {
    let ilog = if size <= 1 {
        0
    } else {
        63 - (size - 1).leading_zeros()
    };
    let mut bits = ilog + 1;
    if bits < BLOCK_BITS {
        bits = BLOCK_BITS;
    }
    if bits - BLOCK_BITS > CHUNK_FORMAT_BLKBITS_MASK {
        bits = CHUNK_FORMAT_BLKBITS_MASK + BLOCK_BITS;
    }
    (bits, size.div_ceil(1u64 << bits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xxh32_known_values() {
        // Reference values of the xxHash32 specification.
        assert_eq!(xxh32(b"", 0), 0x02cc5d05);
        assert_eq!(xxh32(b"a", 0), 0x550d7456);
        assert_eq!(xxh32(b"abc", 0), 0x32d153ff);
        assert_eq!(
            xxh32(b"Nobody inspects the spammish repetition", 0),
            0xe2293b2f
        );
    }

    #[test]
    fn chunking_matches_upstream() {
        assert_eq!(chunking(1), (12, 1));
        assert_eq!(chunking(4096), (12, 1));
        assert_eq!(chunking(4097), (13, 1));
        assert_eq!(chunking(9_000_000_000_000_000), (43, 1024));
        assert!(chunking(9_500_000_000_000_000).1 > MAX_NONINLINE_CHUNKS);
    }
}
