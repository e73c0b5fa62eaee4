//! [`Groups`]: the groups of one rollup dimension, a hash table laid out
//! for the writer's access pattern.
//!
//! Aggregating a minute of flows touches thousands of groups per dimension,
//! most of them new: in a general-purpose hash table each new group lands
//! in a random slot of a sparse array several times the L2 cache, so most
//! additions are cache misses. Here the groups live in a dense vector in
//! insertion order (a new group is an append, sequential in memory) and the
//! hash table holds only 4-byte indexes into it (32 KiB for 4096 groups),
//! which stay in cache. Iterating, compacting and encoding walk the dense
//! vector.
//!
//! Keys come from the network, so the hash is seeded per process: a sender
//! cannot aim its addresses at one probe chain. The number of groups is
//! bounded by the caller (`group_cap`), so the table is too.

use std::sync::OnceLock;

use crate::rollup::{Agg, Key};

/// A group key: hashed with the per-process seeds.
pub(crate) trait GroupKey: Copy + Eq {
    /// The key's hash under `seeds`.
    fn hash(&self, seeds: &[u64; 4]) -> u64;
}

impl GroupKey for Key {
    #[inline(always)]
    fn hash(&self, s: &[u64; 4]) -> u64 {
        let a = fold_mul(self.0 as u64 ^ s[0], (self.0 >> 64) as u64 ^ s[1]);
        let b = fold_mul(self.1 as u64 ^ s[2], (self.1 >> 64) as u64 ^ s[3]);
        fold_mul(a ^ s[1], b ^ s[2])
    }
}

impl GroupKey for u64 {
    #[inline(always)]
    fn hash(&self, s: &[u64; 4]) -> u64 {
        fold_mul(self ^ s[0], s[1])
    }
}

/// The groups of one dimension: `(key, aggregate)` pairs without
/// duplicates, in insertion order.
#[derive(Debug, Clone)]
pub(crate) struct Groups<K = Key> {
    entries: Vec<(K, Agg)>,
    /// Open addressing with linear probing: 0 is empty, else the index in
    /// `entries` plus one. Empty, or a power of two at least twice as long
    /// as `entries`.
    slots: Vec<u32>,
}

/// The per-process hash seeds.
fn seeds() -> &'static [u64; 4] {
    static SEEDS: OnceLock<[u64; 4]> = OnceLock::new();
    SEEDS.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        let state = std::collections::hash_map::RandomState::new();
        let mut s = [0u64; 4];
        for (i, v) in s.iter_mut().enumerate() {
            let mut h = state.build_hasher();
            h.write_usize(i);
            // Odd, so no seed is 0.
            *v = h.finish() | 1;
        }
        s
    })
}

/// A hint to load the cache line at `p` (any address: a hint never faults).
#[inline(always)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)]
    // SAFETY: `_mm_prefetch` needs only SSE (always present on x86_64) and
    // is a hint: it reads nothing into the program and never faults,
    // whatever the address. Exercised by `prefetching_changes_nothing`.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// The 128-bit product of `a` and `b`, its halves folded together.
#[inline(always)]
fn fold_mul(a: u64, b: u64) -> u64 {
    let m = u128::from(a) * u128::from(b);
    (m as u64) ^ ((m >> 64) as u64)
}

impl<K> Default for Groups<K> {
    fn default() -> Self {
        Groups {
            entries: Vec::new(),
            slots: Vec::new(),
        }
    }
}

impl<K: GroupKey> Groups<K> {
    /// Number of groups.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if there are none.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes every group, keeping the memory.
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.slots.fill(0);
    }

    /// Makes room for `additional` more groups without growing.
    pub(crate) fn reserve(&mut self, additional: usize) {
        self.entries.reserve(additional);
        self.grow_for(self.entries.len().saturating_add(additional));
    }

    /// Sizes `slots` for `n` groups (at most half full).
    fn grow_for(&mut self, n: usize) {
        let want = n.saturating_mul(2).max(16).next_power_of_two();
        if want <= self.slots.len() {
            return;
        }
        self.slots.clear();
        self.slots.resize(want, 0);
        let (mask, s) = (want - 1, seeds());
        for (i, (k, _)) in self.entries.iter().enumerate() {
            let mut p = k.hash(s) as usize & mask;
            while self.slots[p] != 0 {
                p = (p + 1) & mask;
            }
            self.slots[p] = i as u32 + 1;
        }
    }

    /// Sizes `slots` for one more group.
    #[inline(always)]
    fn make_room(&mut self) {
        if self.slots.len() < 2 * (self.entries.len() + 1) {
            self.grow_for(self.entries.len() + 1);
        }
    }

    /// The slot holding `k`, or the empty slot where it would go.
    #[inline(always)]
    fn probe(&self, k: &K) -> (usize, Option<usize>) {
        let mask = self.slots.len() - 1;
        let mut p = k.hash(seeds()) as usize & mask;
        loop {
            match self.slots[p] {
                0 => return (p, None),
                i => {
                    let i = i as usize - 1;
                    if self.entries[i].0 == *k {
                        return (p, Some(i));
                    }
                }
            }
            p = (p + 1) & mask;
        }
    }

    /// Hints the CPU to load the slot `k` hashes to. For tables far larger
    /// than the cache: call it some keys ahead of [`Groups::add`], and
    /// [`Groups::prefetch_group`] a few keys later, so the misses overlap.
    #[inline(always)]
    pub(crate) fn prefetch_slot(&self, k: &K) {
        if let Some(mask) = self.slots.len().checked_sub(1) {
            prefetch(
                self.slots
                    .as_ptr()
                    .wrapping_add(k.hash(seeds()) as usize & mask),
            );
        }
    }

    /// Hints the CPU to load the group in the slot `k` hashes to, if any.
    #[inline(always)]
    pub(crate) fn prefetch_group(&self, k: &K) {
        if let Some(mask) = self.slots.len().checked_sub(1) {
            let i = self.slots[k.hash(seeds()) as usize & mask] as usize;
            if i > 0 {
                prefetch(self.entries.as_ptr().wrapping_add(i - 1));
            }
        }
    }

    /// Adds `a` to the group `k`; a new group is created only if `insert`.
    /// Returns false if `k` is new and `insert` is false.
    #[inline(always)]
    pub(crate) fn add(&mut self, k: K, a: Agg, insert: bool) -> bool {
        self.make_room();
        match self.probe(&k) {
            (_, Some(i)) => {
                self.entries[i].1.add(a);
                true
            }
            (p, None) if insert => {
                self.entries.push((k, a));
                self.slots[p] = self.entries.len() as u32;
                true
            }
            (_, None) => false,
        }
    }

    /// Sets the group `k` to `a`.
    pub(crate) fn insert(&mut self, k: K, a: Agg) {
        self.make_room();
        match self.probe(&k) {
            (_, Some(i)) => self.entries[i].1 = a,
            (p, None) => {
                self.entries.push((k, a));
                self.slots[p] = self.entries.len() as u32;
            }
        }
    }

    /// The aggregate of group `k`.
    #[inline]
    pub(crate) fn get(&self, k: &K) -> Option<&Agg> {
        if self.entries.is_empty() {
            return None;
        }
        self.probe(k).1.map(|i| &self.entries[i].1)
    }

    /// Groups in insertion order.
    pub(crate) fn iter(&self) -> impl ExactSizeIterator<Item = (&K, &Agg)> {
        self.entries.iter().map(|(k, a)| (k, a))
    }

    /// Keys in insertion order.
    #[cfg(test)]
    pub(crate) fn keys(&self) -> impl Iterator<Item = &K> {
        self.entries.iter().map(|(k, _)| k)
    }

    /// Aggregates in insertion order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &Agg> {
        self.entries.iter().map(|(_, a)| a)
    }
}

impl<'a, K> IntoIterator for &'a Groups<K> {
    type Item = (&'a K, &'a Agg);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (K, Agg)>, fn(&(K, Agg)) -> (&K, &Agg)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(k, a)| (k, a))
    }
}

impl<K> IntoIterator for Groups<K> {
    type Item = (K, Agg);
    type IntoIter = std::vec::IntoIter<(K, Agg)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<K: GroupKey> std::ops::Index<&K> for Groups<K> {
    type Output = Agg;

    fn index(&self, k: &K) -> &Agg {
        self.get(k).expect("no such group")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn agg(bytes: u64) -> Agg {
        Agg {
            bytes,
            packets: 1,
            flows: 1,
            est_bytes: bytes,
            est_packets: 1,
        }
    }

    /// Against a `HashMap` model: adds with and without insertion, sets,
    /// lookups of present and absent keys, clears, across growth.
    #[test]
    fn behaves_like_a_map() {
        let mut g = Groups::default();
        let mut model: HashMap<Key, Agg> = HashMap::new();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for round in 0..3 {
            for i in 0..20_000u64 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Few distinct keys, some pairs, some with high bits set.
                let k = Key(u128::from(x % 3000) << (i % 3 * 40), u128::from(x % 7));
                let insert = i % 5 != 0;
                let expect = model.contains_key(&k) || insert;
                assert_eq!(g.add(k, agg(i), insert), expect, "round {round} add {i}");
                if expect {
                    model.entry(k).or_default().add(agg(i));
                }
                if i % 1000 == 0 {
                    g.insert(k, agg(7));
                    model.insert(k, agg(7));
                }
            }
            assert_eq!(g.len(), model.len());
            for (k, a) in &model {
                assert_eq!(g.get(k), Some(a));
                assert_eq!(&g[k], a);
            }
            assert_eq!(g.get(&Key(u128::MAX, 1)), None);
            let mut seen: Vec<_> = g.iter().map(|(k, a)| (*k, *a)).collect();
            let mut want: Vec<_> = model.iter().map(|(k, a)| (*k, *a)).collect();
            seen.sort_by_key(|e| e.0);
            want.sort_by_key(|e| e.0);
            assert_eq!(seen, want);
            g.clear();
            model.clear();
            assert!(g.is_empty() && g.get(&Key(0, 0)).is_none());
        }
    }

    #[test]
    fn prefetching_changes_nothing() {
        let mut g: Groups<u64> = Groups::default();
        g.prefetch_slot(&1);
        g.prefetch_group(&1);
        for i in 0..10_000u64 {
            g.prefetch_slot(&(i + 16));
            g.prefetch_group(&(i + 8));
            assert!(g.add(i % 5000, agg(i), true));
        }
        assert_eq!(g.len(), 5000);
        assert_eq!(g[&4999].bytes, 4999 + 9999);
        assert_eq!(g.get(&5000), None);
    }

    #[test]
    fn reserve_then_fill_keeps_the_table_half_empty() {
        let mut g = Groups::default();
        g.reserve(1000);
        let slots = g.slots.len();
        assert!(slots >= 2000);
        for i in 0..1000 {
            assert!(g.add(Key(i, 0), agg(1), true));
        }
        assert_eq!(g.slots.len(), slots, "no growth within the reservation");
        assert_eq!(g.values().map(|a| a.bytes).sum::<u64>(), 1000);
    }
}
