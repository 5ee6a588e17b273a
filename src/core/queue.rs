//! [`Queue`]: the connection's two output queues (actions, events), first in first out.
//!
//! Filled by inputs and commands, drained by `poll_*` until empty: a `Vec` being pushed and an
//! iterator over the batch being drained, which move into each other. Smaller in wasm than a
//! `VecDeque`, which the core then does not link at all.

/// A first-in-first-out queue; see the [module docs](self).
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

#[cfg(test)]
mod tests {
    use super::Queue;

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
