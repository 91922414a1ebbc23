//! The fs-verity file digest computed in userspace, exactly as the kernel computes it
//! for `FS_IOC_ENABLE_VERITY` with sha256, 4096-byte blocks and no salt.
//!
//! The kernel hashes every 4096-byte data block (the last one zero-padded), packs the
//! 32-byte hashes into 4096-byte blocks of the next level, and repeats until a level
//! fits in one block. The root hash is the hash of that block (of the only data block
//! for files of at most one block; all zeroes for an empty file). The file digest is
//! the sha256 of the 256-byte `fsverity_descriptor` holding the root hash and size.

use sha2::{Digest, Sha256};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Merkle tree block size; also the data block size.
pub const BLOCK_SIZE: usize = 4096;
const HASH_SIZE: usize = 32;
/// `FS_VERITY_HASH_ALG_SHA256`.
pub const HASH_ALG_SHA256: u8 = 1;
const LOG_BLOCKSIZE: u8 = 12;

fn hash_block(data: &[u8]) -> [u8; HASH_SIZE] {
    debug_assert!(data.len() <= BLOCK_SIZE);
    let mut h = Sha256::new();
    h.update(data);
    if data.len() < BLOCK_SIZE {
        // Zero padding is part of the hashed block; feed it from a static buffer.
        static ZEROS: [u8; BLOCK_SIZE] = [0; BLOCK_SIZE];
        h.update(&ZEROS[data.len()..]);
    }
    h.finalize().into()
}

/// A streaming fs-verity (sha256, 4 KiB) hasher. Feed the file's bytes in any chunking
/// with [`update`](Self::update), then call [`finalize`](Self::finalize).
#[derive(Clone)]
pub struct FsVerityHasher {
    /// The partial data block not yet hashed.
    block: Vec<u8>,
    /// `levels[i]` holds the hashes of level `i` not yet packed into a full block.
    levels: Vec<Vec<u8>>,
    size: u64,
}

impl Default for FsVerityHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl FsVerityHasher {
    pub fn new() -> Self {
        FsVerityHasher {
            block: Vec::with_capacity(BLOCK_SIZE),
            levels: Vec::new(),
            size: 0,
        }
    }

    fn push_hash(&mut self, mut level: usize, mut hash: [u8; HASH_SIZE]) {
        loop {
            if self.levels.len() <= level {
                self.levels.push(Vec::with_capacity(BLOCK_SIZE));
            }
            let buf = &mut self.levels[level];
            buf.extend_from_slice(&hash);
            if buf.len() < BLOCK_SIZE {
                return;
            }
            // A full block of hashes: it becomes one hash of the level above.
            hash = hash_block(buf);
            buf.clear();
            level += 1;
        }
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.size += data.len() as u64;
        if !self.block.is_empty() {
            let take = (BLOCK_SIZE - self.block.len()).min(data.len());
            self.block.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.block.len() < BLOCK_SIZE {
                return;
            }
            let h = hash_block(&self.block);
            self.block.clear();
            self.push_hash(0, h);
        }
        // Whole blocks are hashed straight from the caller's buffer, without copying:
        // padding never changes a full block, so there is no need to hold one back.
        let mut chunks = data.chunks_exact(BLOCK_SIZE);
        for c in &mut chunks {
            let h = hash_block(c);
            self.push_hash(0, h);
        }
        self.block.extend_from_slice(chunks.remainder());
    }

    /// The Merkle tree root hash of everything fed so far.
    pub fn root_hash(&self) -> [u8; HASH_SIZE] {
        if self.size == 0 {
            return [0; HASH_SIZE];
        }
        let mut levels = self.levels.clone();
        if !self.block.is_empty() {
            let h = hash_block(&self.block);
            push_into(&mut levels, 0, h);
        }
        let mut i = 0;
        loop {
            let above_empty = levels[i + 1..].iter().all(|l| l.is_empty());
            if above_empty && levels[i].len() == HASH_SIZE {
                let mut root = [0; HASH_SIZE];
                root.copy_from_slice(&levels[i]);
                return root;
            }
            if !levels[i].is_empty() {
                let h = hash_block(&levels[i]);
                levels[i].clear();
                push_into(&mut levels, i + 1, h);
            }
            i += 1;
        }
    }

    /// The fs-verity file digest (what `FS_IOC_MEASURE_VERITY` reports).
    pub fn finalize(self) -> [u8; 32] {
        descriptor_digest(&self.root_hash(), self.size)
    }
}

fn push_into(levels: &mut Vec<Vec<u8>>, mut level: usize, mut hash: [u8; HASH_SIZE]) {
    loop {
        if levels.len() <= level {
            levels.push(Vec::with_capacity(BLOCK_SIZE));
        }
        levels[level].extend_from_slice(&hash);
        if levels[level].len() < BLOCK_SIZE {
            return;
        }
        hash = hash_block(&levels[level]);
        levels[level].clear();
        level += 1;
    }
}

/// sha256 of the kernel's `struct fsverity_descriptor` for this root hash and size.
fn descriptor_digest(root: &[u8; HASH_SIZE], size: u64) -> [u8; 32] {
    let mut d = [0u8; 256];
    d[0] = 1; // version
    d[1] = HASH_ALG_SHA256;
    d[2] = LOG_BLOCKSIZE;
    d[3] = 0; // salt_size
    // d[4..8]: sig_size / reserved, zero
    d[8..16].copy_from_slice(&size.to_le_bytes());
    d[16..16 + HASH_SIZE].copy_from_slice(root);
    // root_hash is a 64-byte field, then salt[32] and reserved[144]: all zero.
    Sha256::digest(d).into()
}

/// The fs-verity digest of `data`.
pub fn digest(data: &[u8]) -> [u8; 32] {
    let mut h = FsVerityHasher::new();
    h.update(data);
    h.finalize()
}

/// The fs-verity digest of the regular file at `path`, read in userspace.
pub fn digest_file(path: impl AsRef<Path>) -> io::Result<[u8; 32]> {
    let path = path.as_ref();
    let mut f = crate::fsutil::open_regular(path).map_err(|e| annotate(e, path))?;
    digest_reader(&mut f).map_err(|e| annotate(e, path))
}

/// The read size of [`digest_reader`] and [`digest_file`]. A multiple of the block size
/// keeps the hasher on its zero-copy path. Small enough that what read(2) copied is
/// still in a 256 KiB L2 when it is hashed: 1 MiB reads were measured at 2.5x OpenSSL's
/// system time on such a CPU. `make bench` prints the CPU time per read size against
/// `openssl dgst -sha256`.
pub const READ_BUFFER: usize = 32 * BLOCK_SIZE;

/// The fs-verity digest of everything `r` yields.
pub fn digest_reader(r: &mut impl Read) -> io::Result<[u8; 32]> {
    let mut h = FsVerityHasher::new();
    let mut buf = vec![0u8; READ_BUFFER];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
    }
    Ok(h.finalize())
}

fn annotate(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Digests many files on all available cores. Results are in the order of `paths`.
pub fn digest_files_parallel(paths: &[PathBuf]) -> Vec<io::Result<[u8; 32]>> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    digest_files_parallel_with(paths, threads)
}

/// As [`digest_files_parallel`], with an explicit thread count.
pub fn digest_files_parallel_with(paths: &[PathBuf], threads: usize) -> Vec<io::Result<[u8; 32]>> {
    let threads = threads.clamp(1, paths.len().max(1));
    if threads == 1 {
        return paths.iter().map(digest_file).collect();
    }
    // Work stealing by an atomic index: file sizes vary wildly, fixed partitions would
    // leave cores idle behind one large file.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<Option<io::Result<[u8; 32]>>> = Vec::new();
    results.resize_with(paths.len(), || None);
    let parts: Vec<Vec<(usize, io::Result<[u8; 32]>)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(p) = paths.get(i) else { break };
                        out.push((i, digest_file(p)));
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Vec::new()))
            .collect()
    });
    for part in parts {
        for (i, r) in part {
            results[i] = Some(r);
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(io::Error::other("digest worker thread panicked"))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hx(d: [u8; 32]) -> String {
        hex::encode(d)
    }

    #[test]
    fn moo() {
        assert_eq!(
            hx(digest(b"moo\n")),
            "ebaa23af194a798df610e5fe2bd10725c9c4a3a56a6b62d4d0ee551d4fc4be27"
        );
    }

    #[test]
    fn empty_file_has_zero_root() {
        let h = FsVerityHasher::new();
        assert_eq!(h.root_hash(), [0; 32]);
        // Known value of the empty file digest (sha256, 4k blocks, no salt).
        assert_eq!(
            hx(digest(b"")),
            "3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95"
        );
    }

    #[test]
    fn chunking_does_not_matter() {
        let data: Vec<u8> = (0..(4096 * 130 + 17))
            .map(|i| (i * 7 + i / 4096) as u8)
            .collect();
        let whole = digest(&data);
        for step in [1usize, 7, 4095, 4096, 4097, 65536] {
            let mut h = FsVerityHasher::new();
            for c in data.chunks(step) {
                h.update(c);
            }
            assert_eq!(h.finalize(), whole, "step {step}");
        }
    }

    /// A direct, unstreamed transcription of the kernel's definition, to check the
    /// streaming hasher on every tree shape.
    fn reference(data: &[u8]) -> [u8; 32] {
        let root = if data.is_empty() {
            [0; 32]
        } else {
            let mut level: Vec<[u8; 32]> = data.chunks(BLOCK_SIZE).map(hash_block).collect();
            while level.len() > 1 {
                let packed: Vec<u8> = level.iter().flatten().copied().collect();
                level = packed.chunks(BLOCK_SIZE).map(hash_block).collect();
            }
            level[0]
        };
        descriptor_digest(&root, data.len() as u64)
    }

    #[test]
    fn tree_shapes_match_reference() {
        for n in [
            1usize,
            4095,
            4096,
            4097,
            8192,
            128 * 4096,
            128 * 4096 + 1,
            129 * 4096,
            300 * 4096 + 5,
        ] {
            let data: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
            assert_eq!(digest(&data), reference(&data), "size {n}");
        }
    }
}
