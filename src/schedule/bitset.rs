//! A fixed 256-bit set of small integers, used for the compiled cron fields.

/// A set of integers in `0..256`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub(super) struct BitSet([u64; 4]);

impl BitSet {
    /// Number of representable values.
    const CAPACITY: u32 = 256;

    /// Adds `i`; values outside the capacity are ignored.
    pub(super) fn insert(&mut self, i: u32) {
        if i < Self::CAPACITY {
            self.0[(i / 64) as usize] |= 1 << (i % 64);
        }
    }

    /// Whether `i` is in the set.
    pub(super) fn contains(&self, i: u32) -> bool {
        i < Self::CAPACITY && self.0[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    /// The smallest member that is `>= i`.
    pub(super) fn next_from(&self, i: u32) -> Option<u32> {
        let mut word = (i / 64) as usize;
        let mut mask = u64::MAX << (i % 64);
        while word < self.0.len() {
            let bits = self.0[word] & mask;
            if bits != 0 {
                return Some(word as u32 * 64 + bits.trailing_zeros());
            }
            word += 1;
            mask = u64::MAX;
        }
        None
    }

    /// Union with `other`.
    pub(super) fn union(mut self, other: BitSet) -> BitSet {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a |= b;
        }
        self
    }

    /// The members below 64 as a bit mask (bit `i` set when `i` is a member).
    pub(super) fn low_word(&self) -> u64 {
        self.0[0]
    }
}

#[cfg(test)]
mod tests {
    use super::BitSet;

    #[test]
    fn next_from_crosses_words() {
        let mut s = BitSet::default();
        for i in [3, 63, 64, 200, 255, 256, 999] {
            s.insert(i);
        }
        assert_eq!(s.next_from(0), Some(3));
        assert_eq!(s.next_from(4), Some(63));
        assert_eq!(s.next_from(64), Some(64));
        assert_eq!(s.next_from(65), Some(200));
        assert_eq!(s.next_from(201), Some(255));
        assert_eq!(s.next_from(256), None);
        assert!(s.contains(255) && !s.contains(256) && !s.contains(4));
    }

    #[test]
    fn union_and_low_word() {
        let mut a = BitSet::default();
        a.insert(1);
        let mut b = BitSet::default();
        b.insert(2);
        b.insert(100);
        let u = a.union(b);
        assert_eq!(u.low_word(), 0b110);
        assert!(u.contains(100));
    }
}
