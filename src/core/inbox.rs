//! The inbox: per-session server `seq` tracking, duplicate dropping, the batched cumulative ack
//! and the resume point.

/// What to do with an incoming event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// New: deliver it to the application.
    Deliver,
    /// Already seen (`seq` at or below the last one): drop it.
    Duplicate,
}

/// Tracks the server's event sequence numbers within one session.
#[derive(Debug, Default, Clone)]
pub struct Inbox {
    last_seq: u64,
    acked_seq: u64,
    duplicates: u64,
}

impl Inbox {
    /// Classifies the event numbered `seq`, advancing the last seen seq when it is new.
    ///
    /// A `seq` that skips ahead (the server could not replay everything) is delivered; the app
    /// learns about lost history through `ResumeFailed`, not here.
    pub fn accept(&mut self, seq: u64) -> Arrival {
        if seq <= self.last_seq {
            self.duplicates += 1;
            return Arrival::Duplicate;
        }
        self.last_seq = seq;
        Arrival::Deliver
    }

    /// The highest seq received: where a resume picks up.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// How many received events have not been acknowledged to the server yet.
    pub fn unacked(&self) -> u64 {
        self.last_seq - self.acked_seq
    }

    /// Marks everything received as acknowledged and returns the seq to put in the `ack` frame,
    /// or `None` when there is nothing new to acknowledge.
    pub fn take_ack(&mut self) -> Option<u64> {
        if self.last_seq > self.acked_seq {
            self.acked_seq = self.last_seq;
            Some(self.last_seq)
        } else {
            None
        }
    }

    /// Starts over for a new session. The duplicate count is a lifetime total and stays.
    pub fn reset(&mut self) {
        self.last_seq = 0;
        self.acked_seq = 0;
    }

    /// How many duplicate events were dropped over the connection's life.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }
}
