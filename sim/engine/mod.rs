//! Discrete-event engine: simulated time, an event queue with a total order, and seeded
//! random streams.
//!
//! The engine knows nothing about LLMs, devices or requests. It orders events by
//! `(time, insertion sequence)` so that simultaneous events are always delivered in the order
//! they were scheduled, and hands each one to a [`World`] that owns all component state.
//! Determinism rests on three rules kept here: integer time, a stable tie-break, and random
//! streams derived from `(seed, component name)` instead of one shared generator.

mod queue;
mod rng;
mod time;

pub use queue::{EventQueue, Scheduled};
pub use rng::{stream_rng, SimRng};
pub use time::{secs_to_nanos, SimTime};

/// The state of a simulation: it reacts to each delivered event and may schedule more.
pub trait World {
    /// The event payload type.
    type Event;
    /// Reacts to `event`, delivered at `now`; new events go into `queue`.
    fn handle(&mut self, now: SimTime, event: Self::Event, queue: &mut EventQueue<Self::Event>);
}

/// Counters the run loop keeps about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Events delivered to the world.
    pub events_delivered: u64,
    /// Time of the last delivered event.
    pub end_time: SimTime,
}

/// Delivers events from `queue` to `world` in order until the queue is empty or the next event
/// lies beyond `until`.
pub fn run<W: World>(world: &mut W, queue: &mut EventQueue<W::Event>, until: Option<SimTime>) -> RunStats {
    let mut stats = RunStats::default();
    run_limited(world, queue, until, u64::MAX, &mut stats);
    stats
}

/// As [`run`], but returns after at most `max_events` deliveries (so a caller can report
/// progress between slices); `stats` accumulates across calls. True when the run is over.
pub fn run_limited<W: World>(
    world: &mut W,
    queue: &mut EventQueue<W::Event>,
    until: Option<SimTime>,
    max_events: u64,
    stats: &mut RunStats,
) -> bool {
    let mut delivered = 0;
    while let Some(next_time) = queue.peek_time() {
        if delivered == max_events {
            return false;
        }
        delivered += 1;
        if until.is_some_and(|limit| next_time > limit) {
            break;
        }
        let Scheduled { time, event, .. } = queue.pop().expect("peeked event exists");
        debug_assert!(time >= stats.end_time, "time went backwards");
        stats.end_time = time;
        stats.events_delivered += 1;
        queue.set_now(time);
        world.handle(time, event, queue);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Recorder {
        seen: Vec<(SimTime, u32)>,
    }

    impl World for Recorder {
        type Event = u32;
        fn handle(&mut self, now: SimTime, event: u32, queue: &mut EventQueue<u32>) {
            self.seen.push((now, event));
            if event < 3 {
                // Reschedule at the same instant: must come after everything already queued then.
                queue.schedule_at(now, event + 10);
            }
        }
    }

    #[test]
    fn simultaneous_events_are_delivered_in_scheduling_order() {
        let mut queue = EventQueue::new();
        queue.schedule_at(SimTime::from_nanos(5), 1);
        queue.schedule_at(SimTime::from_nanos(5), 2);
        queue.schedule_at(SimTime::from_nanos(1), 0);
        queue.schedule_at(SimTime::from_nanos(9), 7);
        let mut world = Recorder { seen: Vec::new() };
        let stats = run(&mut world, &mut queue, None);
        let order: Vec<u32> = world.seen.iter().map(|(_, e)| *e).collect();
        assert_eq!(order, vec![0, 10, 1, 2, 11, 12, 7]);
        assert_eq!(stats.events_delivered, 7);
        assert_eq!(stats.end_time, SimTime::from_nanos(9));
    }

    #[test]
    fn run_stops_at_the_horizon() {
        let mut queue = EventQueue::new();
        queue.schedule_at(SimTime::from_nanos(5), 5);
        queue.schedule_at(SimTime::from_nanos(50), 6);
        let mut world = Recorder { seen: Vec::new() };
        run(&mut world, &mut queue, Some(SimTime::from_nanos(10)));
        assert_eq!(world.seen, vec![(SimTime::from_nanos(5), 5)]);
        assert_eq!(queue.len(), 1);
    }
}
