//! Discrete-event engine: simulated time, an event queue with a total order and cancellation,
//! components addressed by id that message each other, and seeded random streams.
//!
//! The engine knows nothing about LLMs, devices or requests. A [`Simulation`] owns its
//! components (each a [`Component`] with its own state, added once and addressed by the
//! [`ComponentId`] it gets) and a value `S` that every component may reach (records, published
//! gauges). A component reacts to each message delivered to it through a [`Context`], which
//! lets it schedule its own future events, send messages to other components, and cancel what
//! it scheduled. Determinism rests on four rules kept here: integer time, a stable tie-break
//! (`(time, phase, insertion sequence)`), scheduling in the past being an error, and random
//! streams derived from `(seed, component name)` instead of one shared generator.

mod queue;
mod rng;
mod time;

pub use queue::{EventId, EventQueue, Phase, Scheduled};
pub use rng::{stream_rng, SimRng};
pub use time::{secs_to_nanos, SimTime};

use std::any::Any;

/// The address of a component within its simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ComponentId(pub u32);

impl ComponentId {
    /// The index of the component.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Something with state that reacts to messages: a router, a replica, a link.
pub trait Component<M, S>: Any {
    /// Reacts to `message`, delivered now.
    fn handle(&mut self, message: M, ctx: &mut Context<'_, M, S>);
}

/// What a component can do while it handles a message.
pub struct Context<'a, M, S> {
    queue: &'a mut EventQueue<M>,
    me: ComponentId,
    /// State shared by all components of the simulation.
    pub shared: &'a mut S,
}

impl<M, S> Context<'_, M, S> {
    /// The current time.
    #[inline]
    pub fn now(&self) -> SimTime {
        self.queue.now()
    }

    /// The component handling the message.
    pub fn me(&self) -> ComponentId {
        self.me
    }

    /// Delivers `message` to this component `delay_ns` from now.
    #[inline]
    pub fn schedule_in(&mut self, delay_ns: u64, message: M) -> EventId {
        let time = self.now() + delay_ns;
        self.queue.push(time, Phase::Normal, self.me, message)
    }

    /// Delivers `message` to this component at `time` (not before now).
    #[inline]
    pub fn schedule_at(&mut self, time: SimTime, message: M) -> EventId {
        self.queue.push(time, Phase::Normal, self.me, message)
    }

    /// Delivers `message` to this component at the end of the current instant, after every
    /// normal event due now (including any scheduled meanwhile).
    #[inline]
    pub fn schedule_late(&mut self, message: M) -> EventId {
        let now = self.now();
        self.queue.push(now, Phase::Late, self.me, message)
    }

    /// Sends `message` to `to`, delivered now (after the events already due now).
    #[inline]
    pub fn send(&mut self, to: ComponentId, message: M) -> EventId {
        let now = self.now();
        self.queue.push(now, Phase::Normal, to, message)
    }

    /// Sends `message` to `to`, delivered at `time` (not before now).
    #[inline]
    pub fn send_at(&mut self, to: ComponentId, time: SimTime, message: M) -> EventId {
        self.queue.push(time, Phase::Normal, to, message)
    }

    /// Cancels an event scheduled earlier.
    pub fn cancel(&mut self, id: EventId) {
        self.queue.cancel(id);
    }

    /// Whether another normal event is still due now (so acting at the end of the instant
    /// would see more than acting immediately).
    pub fn more_due_now(&mut self) -> bool {
        self.queue.has_normal_now()
    }
}

/// Counters the run loop keeps about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Events delivered to components.
    pub events_delivered: u64,
    /// Time of the last delivered event.
    pub end_time: SimTime,
}

/// Components, their pending events and their shared state.
pub struct Simulation<M, S> {
    components: Vec<Box<dyn Component<M, S>>>,
    queue: EventQueue<M>,
    shared: S,
    stats: RunStats,
}

impl<M: 'static, S: 'static> Simulation<M, S> {
    /// An empty simulation at time zero around `shared`.
    pub fn new(shared: S) -> Self {
        Simulation { components: Vec::new(), queue: EventQueue::new(), shared, stats: RunStats::default() }
    }

    /// Adds a component; returns its address.
    pub fn add(&mut self, component: Box<dyn Component<M, S>>) -> ComponentId {
        self.components.push(component);
        ComponentId((self.components.len() - 1) as u32)
    }

    /// The id the next added component will get (for wiring components that refer to each
    /// other).
    pub fn next_id(&self) -> ComponentId {
        ComponentId(self.components.len() as u32)
    }

    /// Schedules `message` for `target` at `time` (initial events).
    pub fn schedule(&mut self, target: ComponentId, time: SimTime, message: M) -> EventId {
        self.queue.push(time, Phase::Normal, target, message)
    }

    /// Delivers the next event; returns its time, or None when nothing is pending or the next
    /// event lies beyond `until`.
    #[inline]
    pub fn step(&mut self, until: Option<SimTime>) -> Option<SimTime> {
        let Scheduled { time, target, message, .. } = self.queue.pop_due(until)?;
        debug_assert!(time >= self.stats.end_time, "time went backwards");
        self.stats.end_time = time;
        self.stats.events_delivered += 1;
        let component = &mut self.components[target.index()];
        let mut ctx = Context { queue: &mut self.queue, me: target, shared: &mut self.shared };
        component.handle(message, &mut ctx);
        Some(time)
    }

    /// Delivers events until none is pending or the next lies beyond `until`, or after
    /// `max_events` (so a caller can report progress between slices). True when the run is
    /// over.
    pub fn run(&mut self, until: Option<SimTime>, max_events: u64) -> bool {
        for _ in 0..max_events {
            if self.step(until).is_none() {
                return true;
            }
        }
        self.queue.peek_time().is_none_or(|next| until.is_some_and(|limit| next > limit))
    }

    /// Counters so far.
    pub fn stats(&self) -> RunStats {
        self.stats
    }

    /// The current time.
    pub fn now(&self) -> SimTime {
        self.queue.now()
    }

    /// The shared state.
    pub fn shared(&self) -> &S {
        &self.shared
    }

    /// The shared state, mutably (between events).
    pub fn shared_mut(&mut self) -> &mut S {
        &mut self.shared
    }

    /// The component at `id` as a `T`, if it is one.
    pub fn component<T: Component<M, S>>(&self, id: ComponentId) -> Option<&T> {
        let component: &dyn Any = self.components.get(id.index())?.as_ref();
        component.downcast_ref::<T>()
    }

    /// Every component that is a `T`, with its id.
    pub fn components_of<T: Component<M, S>>(&self) -> impl Iterator<Item = (ComponentId, &T)> {
        self.components.iter().enumerate().filter_map(|(i, c)| {
            let component: &dyn Any = c.as_ref();
            component.downcast_ref::<T>().map(|t| (ComponentId(i as u32), t))
        })
    }

    /// The component at `id` as a `T`, mutably (between events).
    pub fn component_mut<T: Component<M, S>>(&mut self, id: ComponentId) -> Option<&mut T> {
        let component: &mut dyn Any = self.components.get_mut(id.index())?.as_mut();
        component.downcast_mut::<T>()
    }

    /// Takes the simulation apart: its shared state and counters (components are dropped).
    pub fn into_parts(self) -> (S, RunStats) {
        (self.shared, self.stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what it sees; forwards a message to its peer and reschedules itself.
    struct Echo {
        peer: ComponentId,
        seen: Vec<(SimTime, u32)>,
    }

    impl Component<u32, Vec<u32>> for Echo {
        fn handle(&mut self, message: u32, ctx: &mut Context<'_, u32, Vec<u32>>) {
            self.seen.push((ctx.now(), message));
            ctx.shared.push(message);
            if message < 3 {
                // Reschedule at the same instant: after everything already due then.
                ctx.schedule_in(0, message + 10);
                ctx.send(self.peer, message + 100);
            }
        }
    }

    #[test]
    fn simultaneous_events_are_delivered_in_scheduling_order() {
        let mut sim = Simulation::new(Vec::new());
        let a = sim.add(Box::new(Echo { peer: ComponentId(1), seen: Vec::new() }));
        let b = sim.add(Box::new(Echo { peer: ComponentId(0), seen: Vec::new() }));
        sim.schedule(a, SimTime::from_nanos(5), 1);
        sim.schedule(b, SimTime::from_nanos(5), 2);
        sim.schedule(a, SimTime::from_nanos(1), 0);
        sim.schedule(b, SimTime::from_nanos(9), 7);
        assert!(sim.run(None, u64::MAX));
        assert_eq!(sim.shared(), &vec![0, 10, 100, 1, 2, 11, 101, 12, 102, 7]);
        assert_eq!(sim.stats().events_delivered, 10);
        assert_eq!(sim.stats().end_time, SimTime::from_nanos(9));
        let echo: &Echo = sim.component(b).unwrap();
        assert_eq!(echo.seen.first(), Some(&(SimTime::from_nanos(1), 100)));
    }

    #[test]
    fn run_stops_at_the_horizon_and_after_max_events() {
        let mut sim = Simulation::new(Vec::new());
        let a = sim.add(Box::new(Echo { peer: ComponentId(0), seen: Vec::new() }));
        sim.schedule(a, SimTime::from_nanos(5), 5);
        sim.schedule(a, SimTime::from_nanos(6), 6);
        sim.schedule(a, SimTime::from_nanos(50), 7);
        assert!(!sim.run(Some(SimTime::from_nanos(10)), 1));
        assert!(sim.run(Some(SimTime::from_nanos(10)), 5));
        assert_eq!(sim.shared(), &vec![5, 6]);
    }
}
