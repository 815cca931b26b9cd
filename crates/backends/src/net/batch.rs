//! Groups a record stream into batches per container, bounded by rows and bytes, for bulk
//! paths that send many records per statement or request (multi-row INSERT, `unnest`
//! arrays, RowBinary bodies, pipelines).
//!
//! Every batch holds at most `max_rows` items and at most `max_bytes` bytes, except a batch of
//! one item that alone is larger than `max_bytes` (it has to go somehow). Items keep their
//! order within a container; nothing is dropped: [`Batcher::finish`] returns what is left.

/// One batch: items of one container, in the order they were pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch<T> {
    pub container: usize,
    pub items: Vec<T>,
    /// The sum of the sizes given to [`Batcher::push`].
    pub bytes: usize,
}

#[derive(Debug)]
pub struct Batcher<T> {
    pending: Vec<(Vec<T>, usize)>,
    max_rows: usize,
    max_bytes: usize,
}

impl<T> Batcher<T> {
    /// A batcher for `containers` containers; limits below 1 count as 1.
    pub fn new(containers: usize, max_rows: usize, max_bytes: usize) -> Batcher<T> {
        Batcher {
            pending: (0..containers).map(|_| (Vec::new(), 0)).collect(),
            max_rows: max_rows.max(1),
            max_bytes: max_bytes.max(1),
        }
    }

    /// Adds `item` of `bytes` bytes to `container` (which must be below the count given to
    /// [`new`](Self::new)). Returns a batch that is ready to send: the container's earlier
    /// items when `item` would push them over `max_bytes`, or the batch `item` completed.
    pub fn push(&mut self, container: usize, item: T, bytes: usize) -> Option<Batch<T>> {
        let (items, size) = &mut self.pending[container];
        // Send what is pending first when this item would overflow it.
        if !items.is_empty() && size.saturating_add(bytes) > self.max_bytes {
            let ready = Batch { container, items: std::mem::take(items), bytes: *size };
            items.push(item);
            *size = bytes;
            return Some(ready);
        }
        items.push(item);
        *size += bytes;
        if items.len() >= self.max_rows || *size >= self.max_bytes {
            let ready = Batch { container, items: std::mem::take(items), bytes: *size };
            *size = 0;
            return Some(ready);
        }
        None
    }

    /// The batches still pending, in container order.
    pub fn finish(self) -> impl Iterator<Item = Batch<T>> {
        self.pending
            .into_iter()
            .enumerate()
            .filter(|(_, (items, _))| !items.is_empty())
            .map(|(container, (items, bytes))| Batch { container, items, bytes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pushes (container, size) items numbered in order; returns every batch, the ones
    /// returned by push first, then the ones from finish.
    fn run(items: &[(usize, usize)], containers: usize, rows: usize, bytes: usize) -> Vec<Batch<(usize, usize)>> {
        let mut b = Batcher::new(containers, rows, bytes);
        let mut out = Vec::new();
        for (n, &(c, size)) in items.iter().enumerate() {
            out.extend(b.push(c, (n, size), size));
        }
        out.extend(b.finish());
        out
    }

    fn check(items: &[(usize, usize)], containers: usize, rows: usize, bytes: usize) {
        let batches = run(items, containers, rows, bytes);
        // Bounds.
        for b in &batches {
            assert!(!b.items.is_empty());
            assert!(b.items.len() <= rows, "{b:?}");
            assert_eq!(b.bytes, b.items.iter().map(|i| i.1).sum::<usize>());
            assert!(b.bytes <= bytes || b.items.len() == 1, "over {bytes} bytes: {b:?}");
            assert!(b.items.iter().all(|i| items[i.0].0 == b.container));
        }
        // Nothing lost or duplicated, and per-container order kept.
        for c in 0..containers {
            let sent: Vec<usize> =
                batches.iter().filter(|b| b.container == c).flat_map(|b| b.items.iter().map(|i| i.0)).collect();
            let want: Vec<usize> = (0..items.len()).filter(|&n| items[n].0 == c).collect();
            assert_eq!(sent, want, "container {c}");
        }
    }

    #[test]
    fn bounds_order_and_completeness() {
        // Deterministic pseudo-random mixes of containers and sizes.
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for round in 0..50 {
            let n = 1 + round * 7;
            let items: Vec<(usize, usize)> = (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    ((x % 3) as usize, (x >> 8) as usize % 300)
                })
                .collect();
            check(&items, 3, 1 + round % 9, 100 + round * 13);
        }
    }

    #[test]
    fn row_limit_and_flush_at_end() {
        let batches = run(&[(0, 1); 7], 1, 3, 1000);
        let sizes: Vec<usize> = batches.iter().map(|b| b.items.len()).collect();
        assert_eq!(sizes, [3, 3, 1], "the last, partial batch comes from finish");
    }

    #[test]
    fn byte_limit_sends_before_overflowing() {
        let batches = run(&[(0, 40), (0, 40), (0, 40), (1, 10)], 2, 100, 100);
        let shape: Vec<(usize, usize)> = batches.iter().map(|b| (b.container, b.bytes)).collect();
        assert_eq!(shape, [(0, 80), (0, 40), (1, 10)]);
        // An item larger than the limit goes alone.
        let batches = run(&[(0, 10), (0, 500), (0, 10)], 1, 100, 100);
        let shape: Vec<usize> = batches.iter().map(|b| b.bytes).collect();
        assert_eq!(shape, [10, 500, 10]);
    }

    #[test]
    fn nothing_pushed_nothing_sent() {
        assert!(run(&[], 2, 10, 10).is_empty());
    }
}
