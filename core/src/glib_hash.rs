//! The iteration order of a GLib `GHashTable` of strings (`g_str_hash`,
//! `g_str_equal`) after a sequence of insertions, so that what libostree writes by
//! iterating one (the BLS entry keys it does not know, `ostree-bootconfig-parser.c`)
//! comes out in the same order.
//!
//! Modelled on GLib's `ghash.c` (2.58+): 8 buckets to start (`prime_mod` 7), index
//! `(hash * 11) % mod`, quadratic probing `index += ++step` masked to the size, a grow
//! when `size <= noccupied + noccupied / 16` to the power of two closest above
//! `nnodes * 1.333`, rehashed in place in bucket order with eviction. Only insertions
//! (and replacements, which keep the slot) are modelled: libostree's parser never
//! removes a key. Checked against libglib itself in the tests (vectors made by
//! `core/tests/data/ghash-ref.c`).

const MIN_SHIFT: u32 = 3;
const PRIME_MOD: [u32; 32] = [
    1, 2, 3, 7, 13, 31, 61, 127, 251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071,
    262139, 524287, 1048573, 2097143, 4194301, 8388593, 16777213, 33554393, 67108859, 134217689,
    268435399, 536870909, 1073741789, 2147483647,
];

/// `g_str_hash`: djb2 over the bytes as signed chars.
pub fn str_hash(s: &str) -> u32 {
    let mut h: u32 = 5381;
    for &b in s.as_bytes() {
        h = (h << 5).wrapping_add(h).wrapping_add(b as i8 as i32 as u32);
    }
    h
}

struct Table {
    shift: u32,
    hashes: Vec<u32>,
    keys: Vec<Option<usize>>,
    nnodes: usize,
    noccupied: usize,
}

impl Table {
    fn size(&self) -> usize {
        1 << self.shift
    }
    fn mask(&self) -> usize {
        self.size() - 1
    }
    fn index(&self, hash: u32) -> usize {
        (hash.wrapping_mul(11) % PRIME_MOD[self.shift as usize]) as usize
    }

    fn resize(&mut self) {
        let old_size = self.size();
        let want = (self.nnodes as f64 * 1.333) as u64;
        let mut shift = 0;
        let mut n = want;
        while n > 0 {
            n >>= 1;
            shift += 1;
        }
        self.shift = shift.max(MIN_SHIFT);
        let size = self.size();
        if size > old_size {
            self.hashes.resize(size, 0);
            self.keys.resize(size, None);
        }
        let mut placed = vec![false; size.max(old_size)];
        for i in 0..old_size {
            let mut hash = self.hashes[i];
            if hash < 2 {
                self.hashes[i] = 0;
                continue;
            }
            if placed[i] {
                continue;
            }
            self.hashes[i] = 0;
            let mut key = self.keys[i].take();
            loop {
                let mut at = self.index(hash);
                let mut step = 0;
                while placed[at] {
                    step += 1;
                    at = (at + step) & self.mask();
                }
                placed[at] = true;
                let replaced = self.hashes[at];
                self.hashes[at] = hash;
                let evicted = std::mem::replace(&mut self.keys[at], key);
                if replaced < 2 {
                    break;
                }
                hash = replaced;
                key = evicted;
            }
        }
        if size < old_size {
            self.hashes.truncate(size);
            self.keys.truncate(size);
        }
        self.noccupied = self.nnodes;
    }

    fn insert(&mut self, keys: &[&str], k: usize) {
        let hash = match str_hash(keys[k]) {
            h if h < 2 => 2,
            h => h,
        };
        let mut at = self.index(hash);
        let mut step = 0;
        while self.hashes[at] != 0 {
            if self.hashes[at] == hash && self.keys[at].is_some_and(|o| keys[o] == keys[k]) {
                return; // replaced in place
            }
            step += 1;
            at = (at + step) & self.mask();
        }
        self.hashes[at] = hash;
        self.keys[at] = Some(k);
        self.nnodes += 1;
        self.noccupied += 1;
        let size = self.size();
        if (size > self.nnodes * 4 && size > 1 << MIN_SHIFT)
            || size <= self.noccupied + self.noccupied / 16
        {
            self.resize();
        }
    }
}

/// The keys, inserted in this order (repeats replace), in the order iterating the
/// table gives them: indexes into `keys` of each key's first occurrence.
pub fn iteration_order(keys: &[&str]) -> Vec<usize> {
    let mut t = Table {
        shift: MIN_SHIFT,
        hashes: vec![0; 1 << MIN_SHIFT],
        keys: vec![None; 1 << MIN_SHIFT],
        nnodes: 0,
        noccupied: 0,
    };
    for k in 0..keys.len() {
        t.insert(keys, k);
    }
    t.keys.iter().filter_map(|k| *k).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order<'a>(keys: &[&'a str]) -> Vec<&'a str> {
        iteration_order(keys).into_iter().map(|i| keys[i]).collect()
    }

    /// Orders printed by libglib 2.74 (Debian 12) for these insertion sequences.
    #[test]
    fn matches_libglib() {
        assert_eq!(
            order(&[
                "options", "title", "version", "linux", "initrd", "aboot", "abootcfg", "fdtdir"
            ]),
            [
                "options", "initrd", "version", "abootcfg", "linux", "fdtdir", "aboot", "title"
            ]
        );
        assert_eq!(
            order(&[
                "title", "version", "options", "linux", "initrd", "abootcfg", "fdtdir", "aboot"
            ]),
            [
                "options", "initrd", "version", "abootcfg", "linux", "aboot", "title", "fdtdir"
            ]
        );
    }

    #[test]
    fn str_hash_values() {
        assert_eq!(str_hash(""), 5381);
        assert_eq!(str_hash("a"), 5381 * 33 + 97);
        // High bytes are signed chars.
        assert_eq!(str_hash("\u{e9}"), (5381u32 * 33 - 61) * 33 - 87);
    }
}
