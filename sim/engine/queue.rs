//! The pending-event queue: a binary heap ordered by `(time, insertion sequence)`.
//!
//! The sequence number is what makes simultaneous events deterministic: among events due at
//! the same nanosecond, the one scheduled first is delivered first, on every run and platform.

use super::SimTime;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// An event together with its delivery time and tie-break sequence.
#[derive(Debug)]
pub struct Scheduled<E> {
    /// When the event is due.
    pub time: SimTime,
    /// Insertion order; unique within one queue.
    pub sequence: u64,
    /// The payload handed to the world.
    pub event: E,
}

impl<E> PartialEq for Scheduled<E> {
    fn eq(&self, other: &Self) -> bool {
        self.time == other.time && self.sequence == other.sequence
    }
}
impl<E> Eq for Scheduled<E> {}
impl<E> PartialOrd for Scheduled<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Scheduled<E> {
    fn cmp(&self, other: &Self) -> Ordering {
        // BinaryHeap is a max-heap: reverse so the earliest (time, sequence) is on top.
        (other.time, other.sequence).cmp(&(self.time, self.sequence))
    }
}

/// Pending events, earliest first.
#[derive(Debug)]
pub struct EventQueue<E> {
    heap: BinaryHeap<Scheduled<E>>,
    next_sequence: u64,
    now: SimTime,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> EventQueue<E> {
    /// An empty queue at time zero.
    pub fn new() -> Self {
        EventQueue { heap: BinaryHeap::new(), next_sequence: 0, now: SimTime::ZERO }
    }

    /// The time of the event being delivered (or the last one delivered).
    pub fn now(&self) -> SimTime {
        self.now
    }

    pub(super) fn set_now(&mut self, now: SimTime) {
        self.now = now;
    }

    /// Schedules `event` at absolute time `time`. Times before `now` are clamped to `now`, so
    /// time never goes back.
    pub fn schedule_at(&mut self, time: SimTime, event: E) {
        let time = time.max(self.now);
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.heap.push(Scheduled { time, sequence, event });
    }

    /// Schedules `event` `delay_ns` nanoseconds after `now`.
    pub fn schedule_after(&mut self, delay_ns: u64, event: E) {
        self.schedule_at(self.now + delay_ns, event);
    }

    /// Removes and returns the earliest event.
    pub fn pop(&mut self) -> Option<Scheduled<E>> {
        self.heap.pop()
    }

    /// The due time of the earliest event.
    pub fn peek_time(&self) -> Option<SimTime> {
        self.heap.peek().map(|s| s.time)
    }

    /// Number of pending events.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether no events are pending.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}
