//! [`Queue`]: the connection's two output queues (actions, events), first in first out.
//!
//! Filled by inputs and commands, drained by `poll_*` until empty. One `Vec` of slots and the
//! index of the front: popping takes the front slot's item, and a queue drained to the end is
//! cleared, keeping its buffer, so a burst of frames allocates nothing per beat. Smaller in
//! wasm than a `VecDeque`, which the core then does not link at all.

/// A first-in-first-out queue; see the [module docs](self).
#[derive(Debug)]
pub(crate) struct Queue<T> {
    /// Every item pushed since the queue was last empty; those before `front` are taken.
    slots: Vec<Option<T>>,
    /// The slot of the next item to pop.
    front: usize,
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Queue {
            slots: Vec::new(),
            front: 0,
        }
    }
}

impl<T> Queue<T> {
    /// Adds `item` at the back.
    pub(crate) fn push_back(&mut self, item: T) {
        self.slots.push(Some(item));
    }

    /// Takes the item at the front.
    pub(crate) fn pop_front(&mut self) -> Option<T> {
        let item = self.slots.get_mut(self.front)?.take();
        self.front += 1;
        if self.front == self.slots.len() {
            // Drained: the buffer takes the next pushes from its start.
            self.slots.clear();
            self.front = 0;
        }
        item
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

    /// A burst drained and pushed again reuses the buffer it grew (one growth for all beats).
    #[test]
    fn a_drained_queue_keeps_its_buffer() {
        let mut q = Queue::default();
        for round in 0..3 {
            for i in 0..256 {
                q.push_back(i);
            }
            for i in 0..256 {
                assert_eq!(q.pop_front(), Some(i), "round {round}");
            }
            assert_eq!(q.pop_front(), None);
            assert!(q.slots.capacity() >= 256, "round {round}");
            assert_eq!(q.slots.len(), 0);
        }
    }
}
