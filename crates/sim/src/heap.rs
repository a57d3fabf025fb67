//! A 4-ary min-heap of `u128` keys, the simulator's future event list.
//!
//! Versus `std::collections::BinaryHeap`: half as many levels, the four children of a node
//! share a cache line or two, and the smallest child is chosen with selects rather than
//! branches. Random event times make every "which child is smaller" branch a coin toss, and the
//! mispredictions were most of the heap's cost. `pop` moves the hole to the bottom without
//! comparing against the element being re-inserted (Floyd's trick, as std does), then sifts
//! that element up, which for a key taken from the bottom rarely goes far.

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct QuadHeap {
    keys: Vec<u128>,
}

impl QuadHeap {
    pub(crate) fn peek(&self) -> Option<u128> {
        self.keys.first().copied()
    }

    pub(crate) fn push(&mut self, key: u128) {
        self.keys.push(key);
        self.sift_up(self.keys.len() - 1, key);
    }

    pub(crate) fn pop(&mut self) -> Option<u128> {
        let last = self.keys.pop()?;
        let Some(&top) = self.keys.first() else {
            return Some(last);
        };
        let n = self.keys.len();
        let mut hole = 0;
        loop {
            let c = 4 * hole + 1;
            let m = if c + 4 <= n {
                let k = &self.keys[c..c + 4];
                // Branch-free: the index of the smallest of four.
                let a = c + usize::from(k[1] < k[0]);
                let b = c + 2 + usize::from(k[3] < k[2]);
                if self.keys[b] < self.keys[a] {
                    b
                } else {
                    a
                }
            } else if c < n {
                (c..n).min_by_key(|&i| self.keys[i]).unwrap_or(c)
            } else {
                break;
            };
            self.keys[hole] = self.keys[m];
            hole = m;
        }
        self.sift_up(hole, last);
        Some(top)
    }

    fn sift_up(&mut self, mut i: usize, key: u128) {
        while i > 0 {
            let parent = (i - 1) / 4;
            if self.keys[parent] <= key {
                break;
            }
            self.keys[i] = self.keys[parent];
            i = parent;
        }
        self.keys[i] = key;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foresight_core::rng::mix64;

    #[test]
    fn pops_in_order_like_a_sort() {
        let mut heap = QuadHeap::default();
        let mut all = Vec::new();
        let mut x = 7u64;
        // Interleaved pushes and pops, with duplicates, checked against a sorted model.
        let mut model: Vec<u128> = Vec::new();
        for round in 0..5000u64 {
            x = mix64(x ^ round);
            let key = u128::from(x % 1000) << 64 | u128::from(round);
            heap.push(key);
            model.push(key);
            if x.is_multiple_of(3) {
                model.sort_unstable();
                let want = model.remove(0);
                assert_eq!(heap.pop(), Some(want));
                all.push(want);
            }
        }
        model.sort_unstable();
        for want in model {
            assert_eq!(heap.peek(), Some(want));
            assert_eq!(heap.pop(), Some(want));
        }
        assert_eq!(heap.pop(), None);
        assert!(!all.is_empty());
    }
}
