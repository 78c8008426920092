//! The simulation's clock: tokio's virtual time (the runtime runs with time paused, so it only
//! moves when every task waits on a timer) seen as wall-clock [`Timestamp`]s. Managers and agents
//! read it through the [`Clock`] seam, so their timers and their timestamps agree.

use shoal_types::{Clock, Timestamp};

/// 2023-11-14T22:13:20Z: any fixed start works; a realistic one keeps printed times readable.
pub(crate) const EPOCH: Timestamp = Timestamp(1_700_000_000_000_000_000);

pub(crate) struct SimClock {
    start: tokio::time::Instant,
}

impl SimClock {
    /// Must be called inside the simulation's runtime.
    pub fn new() -> Self {
        SimClock {
            start: tokio::time::Instant::now(),
        }
    }

    pub fn elapsed(&self) -> std::time::Duration {
        self.start.elapsed()
    }
}

impl Clock for SimClock {
    fn now(&self) -> Timestamp {
        EPOCH.add(self.start.elapsed())
    }
}
