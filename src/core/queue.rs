//! [`Queue`]: the connection's two output queues (actions, events), first in first out.
//!
//! Natively a `VecDeque`: it keeps its capacity from drain to drain, so a burst of frames
//! allocates nothing per beat. In wasm, [`small::Queue`]: smaller code than a `VecDeque`, which
//! the browser build then does not link at all (a fresh buffer per drained batch costs the
//! browser little: its bursts are what one `message` event at a time delivers).

#[cfg(not(target_arch = "wasm32"))]
pub(crate) type Queue<T> = std::collections::VecDeque<T>;

#[cfg(target_arch = "wasm32")]
pub(crate) use small::Queue;

#[cfg_attr(not(any(test, target_arch = "wasm32")), allow(dead_code))]
mod small {
    /// A first-in-first-out queue: a `Vec` being pushed and an iterator over the batch being
    /// drained, which move into each other.
    #[derive(Debug)]
    pub(crate) struct Queue<T> {
        /// Pushed since the drain in progress began.
        pushed: Vec<T>,
        /// The batch being drained.
        draining: std::vec::IntoIter<T>,
    }

    impl<T> Default for Queue<T> {
        fn default() -> Self {
            Queue {
                pushed: Vec::new(),
                draining: Vec::new().into_iter(),
            }
        }
    }

    impl<T> Queue<T> {
        /// Adds `item` at the back.
        pub(crate) fn push_back(&mut self, item: T) {
            self.pushed.push(item);
        }

        /// Takes the item at the front.
        pub(crate) fn pop_front(&mut self) -> Option<T> {
            if let Some(item) = self.draining.next() {
                return Some(item);
            }
            if self.pushed.is_empty() {
                return None;
            }
            self.draining = std::mem::take(&mut self.pushed).into_iter();
            self.draining.next()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::small::Queue;

    /// A burst drained and pushed again reuses the buffer it grew (one growth for all beats).
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn natively_a_drained_queue_keeps_its_capacity() {
        let mut q: super::Queue<u32> = super::Queue::default();
        for round in 0..3 {
            q.extend(0..256);
            while q.pop_front().is_some() {}
            assert!(q.capacity() >= 256, "round {round}");
        }
    }

    #[test]
    fn first_in_first_out_across_drains() {
        let mut q = Queue::default();
        q.push_back(1);
        q.push_back(2);
        assert_eq!(q.pop_front(), Some(1));
        q.push_back(3);
        assert_eq!(q.pop_front(), Some(2));
        assert_eq!(q.pop_front(), Some(3));
        assert_eq!(q.pop_front(), None);
        q.push_back(4);
        assert_eq!(q.pop_front(), Some(4));
        assert_eq!(q.pop_front(), None);
    }
}
