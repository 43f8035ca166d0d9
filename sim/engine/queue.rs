//! The pending-event queue: a binary heap ordered by `(time, phase, insertion sequence)`, with
//! cancellation.
//!
//! The sequence number is what makes simultaneous events deterministic: among events due at
//! the same nanosecond and phase, the one scheduled first is delivered first, on every run and
//! platform. The phase lets a component act once everything else due at an instant has
//! happened (a replica forms its batch after every request arriving at that instant is in).
//! Cancelled events stay in the heap and are skipped when they reach the top.

use super::{ComponentId, SimTime};
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashSet};

/// When, within one instant, an event is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// With the other events of its instant, in scheduling order.
    Normal = 0,
    /// After every normal event of its instant (including those scheduled meanwhile).
    Late = 1,
}

/// Identifies a scheduled event, for cancelling it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(pub u64);

/// Bit of the packed order key that holds the phase (above every sequence number).
const LATE_BIT: u64 = 1 << 63;

/// An event together with its delivery time, tie-break and target.
#[derive(Debug)]
pub struct Scheduled<M> {
    /// When the event is due.
    pub time: SimTime,
    /// Phase and insertion order packed into one key (`LATE_BIT` set for late events), so
    /// ordering compares two integers.
    order: u64,
    /// The component it is delivered to.
    pub target: ComponentId,
    /// The payload.
    pub message: M,
}

impl<M> Scheduled<M> {
    /// Insertion order; unique within one queue.
    pub fn sequence(&self) -> u64 {
        self.order & !LATE_BIT
    }

    /// Phase within the instant.
    pub fn phase(&self) -> Phase {
        if self.order & LATE_BIT == 0 {
            Phase::Normal
        } else {
            Phase::Late
        }
    }
}

impl<M> PartialEq for Scheduled<M> {
    fn eq(&self, other: &Self) -> bool {
        self.order == other.order
    }
}
impl<M> Eq for Scheduled<M> {}
impl<M> PartialOrd for Scheduled<M> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<M> Ord for Scheduled<M> {
    fn cmp(&self, other: &Self) -> Ordering {
        // BinaryHeap is a max-heap: reverse so the earliest key is on top.
        (other.time, other.order).cmp(&(self.time, self.order))
    }
}

/// Pending events, earliest first.
#[derive(Debug)]
pub struct EventQueue<M> {
    heap: BinaryHeap<Scheduled<M>>,
    cancelled: HashSet<u64>,
    next_sequence: u64,
    now: SimTime,
}

impl<M> Default for EventQueue<M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M> EventQueue<M> {
    /// An empty queue at time zero.
    pub fn new() -> Self {
        EventQueue { heap: BinaryHeap::new(), cancelled: HashSet::new(), next_sequence: 0, now: SimTime::ZERO }
    }

    /// The time of the event being delivered (or the last one delivered).
    #[inline]
    pub fn now(&self) -> SimTime {
        self.now
    }

    /// Schedules `message` for `target` at `time` in `phase`. Scheduling before `now` is a
    /// bug in the caller: it panics in debug builds (which tests use) and is delivered at
    /// `now` otherwise, so time never goes back.
    #[inline]
    pub fn push(&mut self, time: SimTime, phase: Phase, target: ComponentId, message: M) -> EventId {
        debug_assert!(time >= self.now, "an event was scheduled at {time}, before now ({})", self.now);
        let time = time.max(self.now);
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let order = if phase == Phase::Late { sequence | LATE_BIT } else { sequence };
        self.heap.push(Scheduled { time, order, target, message });
        EventId(sequence)
    }

    /// Cancels a pending event; cancelling one already delivered or cancelled does nothing.
    pub fn cancel(&mut self, id: EventId) {
        if id.0 < self.next_sequence {
            self.cancelled.insert(id.0);
        }
    }

    /// Removes and returns the earliest event that was not cancelled, advancing `now` to it.
    pub fn pop(&mut self) -> Option<Scheduled<M>> {
        loop {
            let event = self.heap.pop()?;
            if !self.cancelled.is_empty() && self.cancelled.remove(&event.sequence()) {
                continue;
            }
            self.now = event.time;
            return Some(event);
        }
    }

    /// Removes and returns the earliest event that was not cancelled if it is due by `until`
    /// (always when `until` is None), advancing `now` to it.
    #[inline]
    pub fn pop_due(&mut self, until: Option<SimTime>) -> Option<Scheduled<M>> {
        loop {
            let top = self.heap.peek()?;
            if until.is_some_and(|limit| top.time > limit) {
                return None;
            }
            let event = self.heap.pop().expect("peeked event exists");
            if !self.cancelled.is_empty() && self.cancelled.remove(&event.sequence()) {
                continue;
            }
            self.now = event.time;
            return Some(event);
        }
    }

    /// The due time of the earliest pending event (a cancelled one may stand in for the next
    /// live one, which is never earlier).
    pub fn peek_time(&mut self) -> Option<SimTime> {
        while let Some(top) = self.heap.peek() {
            if !self.cancelled.is_empty() && self.cancelled.contains(&top.sequence()) {
                let sequence = top.sequence();
                self.heap.pop();
                self.cancelled.remove(&sequence);
                continue;
            }
            return Some(top.time);
        }
        None
    }

    /// Whether a live normal-phase event is due at `now`.
    pub fn has_normal_now(&mut self) -> bool {
        self.peek_time();
        self.heap.peek().is_some_and(|top| top.time == self.now && top.phase() == Phase::Normal)
    }

    /// Number of pending events (cancelled ones included until they are skipped).
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether no events are pending.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(queue: &mut EventQueue<u32>) -> Vec<u32> {
        std::iter::from_fn(|| queue.pop().map(|e| e.message)).collect()
    }

    #[test]
    fn late_events_follow_every_normal_event_of_their_instant() {
        let mut queue = EventQueue::new();
        let target = ComponentId(0);
        queue.push(SimTime::from_nanos(5), Phase::Late, target, 1);
        queue.push(SimTime::from_nanos(5), Phase::Normal, target, 2);
        queue.push(SimTime::from_nanos(4), Phase::Late, target, 0);
        queue.push(SimTime::from_nanos(5), Phase::Normal, target, 3);
        queue.push(SimTime::from_nanos(6), Phase::Normal, target, 4);
        assert_eq!(drain(&mut queue), vec![0, 2, 3, 1, 4]);
    }

    #[test]
    fn cancelled_events_are_never_delivered() {
        let mut queue = EventQueue::new();
        let target = ComponentId(0);
        let a = queue.push(SimTime::from_nanos(1), Phase::Normal, target, 1);
        queue.push(SimTime::from_nanos(2), Phase::Normal, target, 2);
        let c = queue.push(SimTime::from_nanos(3), Phase::Normal, target, 3);
        queue.cancel(a);
        queue.cancel(c);
        assert_eq!(queue.peek_time(), Some(SimTime::from_nanos(2)));
        assert_eq!(drain(&mut queue), vec![2]);
        assert!(queue.cancelled.is_empty(), "skipped cancellations are forgotten");
    }

    #[test]
    #[should_panic(expected = "before now")]
    fn scheduling_in_the_past_is_caught() {
        let mut queue = EventQueue::new();
        queue.push(SimTime::from_nanos(10), Phase::Normal, ComponentId(0), 1);
        queue.pop();
        queue.push(SimTime::from_nanos(9), Phase::Normal, ComponentId(0), 2);
    }
}
