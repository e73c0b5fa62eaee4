//! A fixed-capacity hash map with least-recently-refreshed eviction.
//!
//! Open addressing with linear probing and backward-shift deletion over an
//! index of `u32` slot numbers, plus an intrusive doubly linked list through
//! the slots in refresh order. Every operation is O(1) expected and none
//! allocates: capacity is fixed by the storage it is given.

use core::hash::{Hash, Hasher};

use crate::managed::Managed;

const NIL: u32 = u32::MAX;

/// One entry of the decoder's fixed-capacity tables; storage for
/// `capacity` of them is provided at construction. Fields are private:
/// create empty ones with `netflow9::empty_template_slot` and
/// `netflow9::empty_domain_slot`.
#[derive(Debug, Clone, Copy)]
pub struct Slot<K, V> {
    key: K,
    value: V,
    prev: u32,
    next: u32,
    used: bool,
}

impl<K: Copy, V: Copy> Slot<K, V> {
    pub(crate) const fn empty(key: K, value: V) -> Self {
        Slot {
            key,
            value,
            prev: NIL,
            next: NIL,
            used: false,
        }
    }
}

/// A small, seeded FxHash-style hasher (no allocation, no `std`).
pub(crate) struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(w));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        // final avalanche (splitmix64) so low bits are usable
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl FxHasher {
    /// A hasher starting from `seed`.
    pub(crate) const fn new(seed: u64) -> Self {
        FxHasher(seed)
    }

    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// The fixed-capacity map.
#[derive(Debug)]
pub(crate) struct Table<'a, K, V> {
    slots: Managed<'a, Slot<K, V>>,
    index: Managed<'a, u32>,
    /// `index` length in use (a power of two) minus one.
    mask: usize,
    cap: usize,
    len: usize,
    /// Least recently refreshed.
    head: u32,
    /// Most recently refreshed.
    tail: u32,
    /// Free slots, linked through `next`.
    free: u32,
    seed: u64,
}

/// Length of the index for `capacity` slots: a power of two ≥ 2 × capacity.
pub(crate) const fn index_len(capacity: usize) -> usize {
    let mut n = 2;
    while n < capacity.saturating_mul(2) {
        n *= 2;
    }
    n
}

impl<'a, K: Copy + Eq + Hash, V: Copy> Table<'a, K, V> {
    /// A table over `slots`; `index` should hold `index_len(slots.len())`
    /// entries (fewer shrink the usable capacity to half of it).
    pub(crate) fn new(
        mut slots: Managed<'a, Slot<K, V>>,
        mut index: Managed<'a, u32>,
        seed: u64,
    ) -> Self {
        let mut ilen = 1usize;
        while ilen * 2 <= index.len() {
            ilen *= 2;
        }
        for i in index.iter_mut() {
            *i = NIL;
        }
        let cap = slots.len().min(ilen / 2).min(NIL as usize - 1);
        for (i, s) in slots.iter_mut().enumerate() {
            s.used = false;
            s.prev = NIL;
            s.next = if i + 1 < cap { i as u32 + 1 } else { NIL };
        }
        let free = if cap > 0 { 0 } else { NIL };
        Table {
            slots,
            index,
            mask: ilen - 1,
            cap,
            len: 0,
            head: NIL,
            tail: NIL,
            free,
            seed,
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.cap
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn home(&self, key: &K) -> usize {
        let mut h = FxHasher(self.seed);
        key.hash(&mut h);
        (h.finish() as usize) & self.mask
    }

    /// Index position holding `key`, if present.
    fn find(&self, key: &K) -> Option<usize> {
        let mut pos = self.home(key);
        // At most `mask + 1` probes: the index is never full (cap ≤ len/2).
        for _ in 0..=self.mask {
            let s = *self.index.get(pos)?;
            if s == NIL {
                return None;
            }
            if let Some(slot) = self.slots.get(s as usize) {
                if slot.used && slot.key == *key {
                    return Some(pos);
                }
            }
            pos = (pos + 1) & self.mask;
        }
        None
    }

    /// The slot number of `key`.
    pub(crate) fn get(&self, key: &K) -> Option<usize> {
        let pos = self.find(key)?;
        self.index.get(pos).map(|&s| s as usize)
    }

    pub(crate) fn value(&self, slot: usize) -> Option<&V> {
        self.slots.get(slot).filter(|s| s.used).map(|s| &s.value)
    }

    pub(crate) fn value_mut(&mut self, slot: usize) -> Option<&mut V> {
        self.slots
            .get_mut(slot)
            .filter(|s| s.used)
            .map(|s| &mut s.value)
    }

    pub(crate) fn key(&self, slot: usize) -> Option<&K> {
        self.slots.get(slot).filter(|s| s.used).map(|s| &s.key)
    }

    fn unlink(&mut self, s: u32) {
        let Some(slot) = self.slots.get(s as usize) else {
            return;
        };
        let (prev, next) = (slot.prev, slot.next);
        match self.slots.get_mut(prev as usize) {
            Some(p) => p.next = next,
            None => self.head = next,
        }
        match self.slots.get_mut(next as usize) {
            Some(n) => n.prev = prev,
            None => self.tail = prev,
        }
    }

    fn push_tail(&mut self, s: u32) {
        let tail = self.tail;
        if let Some(slot) = self.slots.get_mut(s as usize) {
            slot.prev = tail;
            slot.next = NIL;
        }
        match self.slots.get_mut(tail as usize) {
            Some(t) => t.next = s,
            None => self.head = s,
        }
        self.tail = s;
    }

    /// Marks `slot` as most recently refreshed.
    pub(crate) fn touch(&mut self, slot: usize) {
        if self.slots.get(slot).is_some_and(|s| s.used) && self.tail != slot as u32 {
            self.unlink(slot as u32);
            self.push_tail(slot as u32);
        }
    }

    /// Inserts or replaces `key`, refreshing it. Returns the slot and the key
    /// evicted to make room, if any. `None` only for a zero-capacity table.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<(usize, Option<K>)> {
        if let Some(s) = self.get(&key) {
            if let Some(slot) = self.slots.get_mut(s) {
                slot.value = value;
            }
            self.touch(s);
            return Some((s, None));
        }
        let mut evicted = None;
        if self.free == NIL {
            let oldest = self.head;
            let k = *self.key(oldest as usize)?;
            self.remove(&k);
            evicted = Some(k);
        }
        let s = self.free;
        let slot = self.slots.get_mut(s as usize)?;
        self.free = slot.next;
        *slot = Slot {
            key,
            value,
            prev: NIL,
            next: NIL,
            used: true,
        };
        self.push_tail(s);
        let mut pos = self.home(&key);
        for _ in 0..=self.mask {
            match self.index.get_mut(pos) {
                Some(i) if *i == NIL => {
                    *i = s;
                    break;
                }
                _ => pos = (pos + 1) & self.mask,
            }
        }
        self.len += 1;
        Some((s as usize, evicted))
    }

    /// Removes `key`; returns whether it was present.
    pub(crate) fn remove(&mut self, key: &K) -> bool {
        let Some(mut hole) = self.find(key) else {
            return false;
        };
        let Some(&s) = self.index.get(hole) else {
            return false;
        };
        self.unlink(s);
        if let Some(slot) = self.slots.get_mut(s as usize) {
            slot.used = false;
            slot.prev = NIL;
            slot.next = self.free;
        }
        self.free = s;
        self.len -= 1;
        // Backward-shift deletion: move later entries of the probe run into
        // the hole when their home position allows it.
        let mut pos = (hole + 1) & self.mask;
        for _ in 0..self.mask {
            let Some(&t) = self.index.get(pos) else { break };
            if t == NIL {
                break;
            }
            let Some(k) = self.slots.get(t as usize).map(|x| x.key) else {
                break;
            };
            let home = self.home(&k);
            // distance from home to pos vs. home to hole, cyclically
            let d_pos = pos.wrapping_sub(home) & self.mask;
            let d_hole = hole.wrapping_sub(home) & self.mask;
            if d_hole <= d_pos {
                if let Some(h) = self.index.get_mut(hole) {
                    *h = t;
                }
                hole = pos;
            }
            pos = (pos + 1) & self.mask;
        }
        if let Some(h) = self.index.get_mut(hole) {
            *h = NIL;
        }
        true
    }

    /// Removes every entry whose key matches; returns how many.
    pub(crate) fn remove_where(&mut self, mut pred: impl FnMut(&K) -> bool) -> usize {
        let mut removed = 0;
        for i in 0..self.slots.len() {
            let key = match self.slots.get(i) {
                Some(s) if s.used && pred(&s.key) => s.key,
                _ => continue,
            };
            if self.remove(&key) {
                removed += 1;
            }
        }
        removed
    }

    /// Entries in refresh order, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
        let mut cur = self.head;
        core::iter::from_fn(move || {
            let slot = self.slots.get(cur as usize)?;
            cur = slot.next;
            Some((&slot.key, &slot.value))
        })
    }
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use super::*;

    fn table(cap: usize) -> Table<'static, u32, u32> {
        Table::new(
            Managed::owned(cap, Slot::empty(0, 0)),
            Managed::owned(index_len(cap), 0),
            7,
        )
    }

    #[test]
    fn insert_get_replace_remove() {
        let mut t = table(4);
        assert_eq!(t.capacity(), 4);
        for k in 0..4 {
            assert_eq!(t.insert(k, k * 10).unwrap().1, None);
        }
        assert_eq!(t.value(t.get(&2).unwrap()), Some(&20));
        t.insert(2, 21);
        assert_eq!(t.len(), 4);
        assert_eq!(t.value(t.get(&2).unwrap()), Some(&21));
        assert!(t.remove(&1));
        assert!(!t.remove(&1));
        assert_eq!(t.get(&1), None);
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn evicts_least_recently_refreshed() {
        let mut t = table(3);
        t.insert(1, 0);
        t.insert(2, 0);
        t.insert(3, 0);
        t.touch(t.get(&1).unwrap());
        assert_eq!(t.insert(4, 0).unwrap().1, Some(2));
        assert_eq!(t.insert(5, 0).unwrap().1, Some(3));
        let keys: [u32; 3] = {
            let mut it = t.iter().map(|(k, _)| *k);
            [it.next().unwrap(), it.next().unwrap(), it.next().unwrap()]
        };
        assert_eq!(keys, [1, 4, 5]);
    }

    #[test]
    fn many_operations_stay_consistent() {
        let mut t = table(64);
        let mut shadow = [None::<u32>; 1000];
        let mut x = 12345u32;
        for _ in 0..20_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let k = (x >> 8) % 1000;
            if x & 3 == 0 {
                t.remove(&k);
                shadow[k as usize] = None;
            } else {
                if let Some((_, Some(ev))) = t.insert(k, x) {
                    shadow[ev as usize] = None;
                }
                shadow[k as usize] = Some(x);
            }
            assert!(t.len() <= 64);
        }
        let mut n = 0;
        for (k, v) in shadow.iter().enumerate() {
            if let Some(v) = v {
                n += 1;
                assert_eq!(t.value(t.get(&(k as u32)).unwrap()), Some(v));
            } else {
                assert_eq!(t.get(&(k as u32)), None);
            }
        }
        assert_eq!(n, t.len());
        assert_eq!(t.remove_where(|k| k % 2 == 0) + t.len(), n);
    }

    #[test]
    fn zero_capacity_inserts_nothing() {
        let mut t = table(0);
        assert!(t.insert(1, 1).is_none());
    }
}
