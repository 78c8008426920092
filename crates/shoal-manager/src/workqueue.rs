//! The keyed work queue behind every manager loop (the shape of kube-rs's controller scheduler
//! and runner, without their streams): what is due now, what is due later, and what is being
//! worked on.
//!
//! - **Deduplicated**: a key is queued at most once. Waking a key that is already queued does
//!   nothing; asking for it at several times keeps the earliest.
//! - **One in flight per key**: a key taken for work stays out of [`WorkQueue::take`] until
//!   [`WorkQueue::done`], even when it is woken meanwhile; it is then taken again, once, so a
//!   change seen during the work is never lost and never worked on twice at the same time.
//! - **Requeue at a time**: a reconciler says when it wants to look again as a value
//!   ([`WorkQueue::wake_at`]); the driver sleeps until [`WorkQueue::next_due`].
//! - **Fair**: keys are taken in the order they were woken (first woken, first taken), so a
//!   full resync queued behind a burst of writes does not hold those writes back, and the
//!   order is deterministic for a deterministic sequence of wakes.
//!
//! Plain data: time comes in as an argument, so the queue is tested on a fake clock and runs
//! deterministically under the simulator.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use shoal_types::Timestamp;

#[derive(Debug, Clone)]
pub struct WorkQueue<K> {
    /// Due now, in wake order. A key here that is also in flight waits for its turn.
    ready: VecDeque<K>,
    /// The keys in `ready`.
    queued: BTreeSet<K>,
    /// Due later: key → when (the earliest asked for).
    later: BTreeMap<K, Timestamp>,
    /// `later`, ordered by time.
    by_time: BTreeSet<(Timestamp, K)>,
    in_flight: BTreeSet<K>,
}

impl<K: Ord + Clone> Default for WorkQueue<K> {
    fn default() -> Self {
        WorkQueue {
            ready: VecDeque::new(),
            queued: BTreeSet::new(),
            later: BTreeMap::new(),
            by_time: BTreeSet::new(),
            in_flight: BTreeSet::new(),
        }
    }
}

impl<K: Ord + Clone> WorkQueue<K> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues `key` now, unless it already is. A later wake-up it had is superseded.
    pub fn wake(&mut self, key: K) {
        if self.queued.contains(&key) {
            return;
        }
        if let Some(t) = self.later.remove(&key) {
            self.by_time.remove(&(t, key.clone()));
        }
        self.queued.insert(key.clone());
        self.ready.push_back(key);
    }

    /// Queues `key` for `at`, unless it is queued now or for an earlier time.
    pub fn wake_at(&mut self, key: K, at: Timestamp) {
        if self.queued.contains(&key) {
            return;
        }
        match self.later.get(&key) {
            Some(&t) if t <= at => return,
            Some(&t) => {
                self.by_time.remove(&(t, key.clone()));
            }
            None => {}
        }
        self.later.insert(key.clone(), at);
        self.by_time.insert((at, key));
    }

    /// Takes up to `max` keys that are due at `now` and not in flight, in wake order, and marks
    /// them in flight.
    pub fn take(&mut self, now: Timestamp, max: usize) -> Vec<K> {
        while let Some((t, _)) = self.by_time.first()
            && *t <= now
        {
            let Some((_, key)) = self.by_time.pop_first() else {
                break;
            };
            self.later.remove(&key);
            if self.queued.insert(key.clone()) {
                self.ready.push_back(key);
            }
        }
        let mut out = Vec::new();
        let mut held = Vec::new();
        while out.len() < max {
            let Some(key) = self.ready.pop_front() else {
                break;
            };
            if self.in_flight.contains(&key) {
                held.push(key);
                continue;
            }
            self.queued.remove(&key);
            self.in_flight.insert(key.clone());
            out.push(key);
        }
        // Keys held back for being in flight keep their place at the front.
        for key in held.into_iter().rev() {
            self.ready.push_front(key);
        }
        out
    }

    /// The work on `keys` has finished (whatever its outcome).
    pub fn done(&mut self, keys: &[K]) {
        for k in keys {
            self.in_flight.remove(k);
        }
    }

    /// Whether some key could be taken right now.
    pub fn has_ready(&self) -> bool {
        self.ready.iter().any(|k| !self.in_flight.contains(k))
    }

    /// The earliest time a key waiting for later becomes due.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.by_time.first().map(|(t, _)| *t)
    }

    /// Keys queued now or for later (not counting those only in flight).
    pub fn len(&self) -> usize {
        self.queued.len() + self.later.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets everything queued (this manager stopped leading: a new leader starts from a full
    /// resync). Keys in flight stay in flight until `done`.
    pub fn clear(&mut self) {
        self.ready.clear();
        self.queued.clear();
        self.later.clear();
        self.by_time.clear();
    }
}

/// When the next full resync is due: the safety net under keyed wake-ups, so a change a loop's
/// key mapping missed is still acted on within one period.
#[derive(Debug, Clone)]
pub struct Resync {
    every: std::time::Duration,
    next: Option<Timestamp>,
}

impl Resync {
    pub fn every(every: std::time::Duration) -> Self {
        Resync { every, next: None }
    }

    /// True (and the next one is set a period from `now`) when a resync is due: the first call,
    /// after [`Resync::reset`], and then once a period.
    pub fn due(&mut self, now: Timestamp) -> bool {
        match self.next {
            Some(t) if now < t => false,
            _ => {
                self.next = Some(now.add(self.every));
                true
            }
        }
    }

    /// The next resync happens at the next call of [`Resync::due`].
    pub fn reset(&mut self) {
        self.next = None;
    }

    pub fn next(&self) -> Option<Timestamp> {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use shoal_types::clock::FakeClock;
    use shoal_types::{Clock, Timestamp};

    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn a_key_woken_many_times_is_taken_once() {
        let clock = FakeClock::new(Timestamp(1_000));
        let mut q = WorkQueue::new();
        for k in ["b", "a", "b", "b", "a", "c"] {
            q.wake(k);
        }
        assert_eq!(q.len(), 3);
        assert_eq!(q.take(clock.now(), 100), vec!["b", "a", "c"]);
        assert!(q.take(clock.now(), 100).is_empty());
        assert!(q.is_empty());
    }

    #[test]
    fn batches_are_bounded_and_keep_wake_order() {
        let now = Timestamp(0);
        let mut q = WorkQueue::new();
        for k in 0..10 {
            q.wake(k);
        }
        assert_eq!(q.take(now, 4), vec![0, 1, 2, 3]);
        q.wake(0);
        assert_eq!(q.take(now, 4), vec![4, 5, 6, 7]);
        q.done(&[0, 1, 2, 3]);
        assert_eq!(q.take(now, 4), vec![8, 9, 0]);
    }

    #[test]
    fn a_key_in_flight_is_not_taken_again_until_done_and_then_once() {
        let now = Timestamp(0);
        let mut q = WorkQueue::new();
        q.wake("svc");
        q.wake("other");
        assert_eq!(q.take(now, 1), vec!["svc"]);
        // Woken twice while being worked on: held, not lost, not doubled.
        q.wake("svc");
        q.wake("svc");
        assert!(q.has_ready(), "other is still ready");
        assert_eq!(q.take(now, 10), vec!["other"]);
        assert!(!q.has_ready());
        assert!(q.take(now, 10).is_empty());
        q.done(&["svc"]);
        assert_eq!(q.take(now, 10), vec!["svc"]);
        q.done(&["svc", "other"]);
        assert!(q.take(now, 10).is_empty());
    }

    #[test]
    fn requeue_times_fire_on_the_clock_and_the_earliest_wins() {
        let clock = FakeClock::new(Timestamp(1_000_000_000));
        let mut q = WorkQueue::new();
        let t0 = clock.now();
        q.wake_at("restart", t0.add(secs(10)));
        q.wake_at("restart", t0.add(secs(5)));
        q.wake_at("restart", t0.add(secs(30)));
        q.wake_at("update", t0.add(secs(7)));
        assert_eq!(q.next_due(), Some(t0.add(secs(5))));
        assert!(q.take(clock.now(), 10).is_empty());
        clock.advance(secs(5));
        assert_eq!(q.take(clock.now(), 10), vec!["restart"]);
        q.done(&["restart"]);
        assert_eq!(q.next_due(), Some(t0.add(secs(7))));
        clock.advance(secs(10));
        assert_eq!(q.take(clock.now(), 10), vec!["update"]);
        assert_eq!(q.next_due(), None);
    }

    #[test]
    fn waking_now_supersedes_a_later_time_and_later_never_delays_now() {
        let now = Timestamp(100);
        let mut q = WorkQueue::new();
        q.wake_at("a", Timestamp(500));
        q.wake("a");
        assert_eq!(q.next_due(), None);
        q.wake_at("a", Timestamp(900));
        assert_eq!(q.take(now, 10), vec!["a"]);
        assert_eq!(
            q.next_due(),
            None,
            "a later time for a queued key is dropped"
        );
    }

    #[test]
    fn a_requeue_for_a_key_in_flight_waits_for_done() {
        let mut q = WorkQueue::new();
        q.wake("a");
        assert_eq!(q.take(Timestamp(0), 10), vec!["a"]);
        q.wake_at("a", Timestamp(5));
        assert!(q.take(Timestamp(10), 10).is_empty());
        q.done(&["a"]);
        assert_eq!(q.take(Timestamp(10), 10), vec!["a"]);
    }

    #[test]
    fn resync_is_due_first_then_once_a_period() {
        let clock = FakeClock::new(Timestamp(0));
        let mut r = Resync::every(secs(30));
        assert!(r.due(clock.now()));
        assert!(!r.due(clock.now()));
        clock.advance(secs(29));
        assert!(!r.due(clock.now()));
        clock.advance(secs(1));
        assert!(r.due(clock.now()));
        assert_eq!(r.next(), Some(Timestamp(0).add(secs(60))));
        r.reset();
        assert!(r.due(clock.now()));
    }

    #[test]
    fn clear_forgets_queued_keys_but_not_work_in_flight() {
        let mut q = WorkQueue::new();
        q.wake(1);
        q.wake(2);
        q.wake_at(3, Timestamp(9));
        assert_eq!(q.take(Timestamp(0), 1), vec![1]);
        q.clear();
        assert!(q.is_empty());
        q.wake(1);
        assert!(q.take(Timestamp(10), 10).is_empty(), "1 is still in flight");
        q.done(&[1]);
        assert_eq!(q.take(Timestamp(10), 10), vec![1]);
    }
}
