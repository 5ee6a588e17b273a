//! The inbox: per-session server `seq` tracking — duplicates dropped, gaps caught, the batched
//! cumulative ack and the resume point, which are always the highest *contiguous* seq.

/// What to do with an incoming durable event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// The next seq: deliver it.
    Deliver,
    /// Already seen (`seq` at or below the last one): drop it.
    Duplicate,
    /// Ahead of the next seq: frames were lost; the contiguous point stays where it is.
    Gap {
        /// The seq that should have come.
        expected: u64,
    },
}

/// Tracks the server's event sequence numbers within one session.
#[derive(Debug, Default, Clone)]
pub(crate) struct Inbox {
    last_seq: u64,
    acked_seq: u64,
    duplicates: u64,
}

impl Inbox {
    /// Classifies the event numbered `seq`, advancing the contiguous point when it is next.
    pub(crate) fn accept(&mut self, seq: u64) -> Arrival {
        if seq <= self.last_seq {
            self.duplicates += 1;
            return Arrival::Duplicate;
        }
        let expected = self.last_seq + 1;
        if seq != expected {
            return Arrival::Gap { expected };
        }
        self.last_seq = seq;
        Arrival::Deliver
    }

    /// The highest contiguous seq received: where a resume picks up.
    pub(crate) fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// How many received events have not been acknowledged to the server yet.
    pub(crate) fn unacked(&self) -> u64 {
        self.last_seq - self.acked_seq
    }

    /// Marks everything received as acknowledged and returns the seq to put in the `ack` frame,
    /// or `None` when there is nothing new to acknowledge.
    pub(crate) fn take_ack(&mut self) -> Option<u64> {
        if self.last_seq > self.acked_seq {
            self.acked_seq = self.last_seq;
            Some(self.last_seq)
        } else {
            None
        }
    }

    /// Picks up a session at `seq` (everything up to it was received, and acknowledged, by an
    /// earlier life of the client).
    pub(crate) fn resume_at(&mut self, seq: u64) {
        self.last_seq = seq;
        self.acked_seq = seq;
    }

    /// Starts over for a new session. The duplicate count is a lifetime total and stays.
    pub(crate) fn reset(&mut self) {
        self.last_seq = 0;
        self.acked_seq = 0;
    }

    /// How many duplicate events were dropped over the connection's life.
    pub(crate) fn duplicates(&self) -> u64 {
        self.duplicates
    }
}
