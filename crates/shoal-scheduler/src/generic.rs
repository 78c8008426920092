//! Generic resources as the scheduler counts them: what each node still has free per kind, what
//! a group of tasks asks for, and which units a placed task takes.
//!
//! A node's free units start as its advertised `generic_resources`; every task that occupies the
//! node gives back nothing and takes what it was assigned (the specific named units, or its
//! discrete count). A placement takes the first free named units in the order the node advertised
//! them, so two tasks never hold the same unit and the choice is deterministic. Nodes and
//! demands without generic resources hold empty vectors: the common path costs one length check.

use shoal_types::GenericResource;

/// What is left of one kind on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Free {
    /// Interchangeable units left; may be negative when the store holds more than the node
    /// advertises now (it shrank).
    Count(i64),
    /// Named units not held by any task, in advertised order.
    Units(Vec<String>),
}

impl Free {
    fn available(&self) -> i64 {
        match self {
            Free::Count(n) => *n,
            Free::Units(u) => i64::try_from(u.len()).unwrap_or(i64::MAX),
        }
    }
}

/// A node's free generic resources, one entry per advertised kind (nodes advertise a handful).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct GenericPool {
    kinds: Vec<(String, Free)>,
}

impl GenericPool {
    /// Everything the node advertises, free. A kind advertised both ways (only an API bypassing
    /// the daemon's parser could do that) keeps its first form and ignores the other, so the
    /// pool never counts a unit twice.
    pub(crate) fn new(advertised: &[GenericResource]) -> Self {
        let mut pool = GenericPool::default();
        for r in advertised {
            match (r, pool.kind_mut(r.kind())) {
                (GenericResource::Discrete { kind, value }, None) => {
                    pool.kinds.push((kind.clone(), Free::Count(*value)));
                }
                (GenericResource::Named { kind, value }, None) => {
                    pool.kinds
                        .push((kind.clone(), Free::Units(vec![value.clone()])));
                }
                (GenericResource::Named { value, .. }, Some(Free::Units(u))) => {
                    if !u.contains(value) {
                        u.push(value.clone());
                    }
                }
                // A second count of a kind, or a mix: the first form stands.
                (_, Some(_)) => {}
            }
        }
        pool
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.kinds.is_empty()
    }

    fn kind_mut(&mut self, kind: &str) -> Option<&mut Free> {
        self.kinds
            .iter_mut()
            .find(|(k, _)| k == kind)
            .map(|(_, f)| f)
    }

    /// Units of `kind` still free (0 for a kind the node does not advertise).
    pub(crate) fn free(&self, kind: &str) -> i64 {
        self.kinds
            .iter()
            .find(|(k, _)| k == kind)
            .map_or(0, |(_, f)| f.available())
    }

    /// Whether one more task asking `demand` fits.
    pub(crate) fn fits(&self, demand: &[(String, i64)]) -> bool {
        demand.iter().all(|(kind, n)| self.free(kind) >= *n)
    }

    /// Takes what a task already holds (its assigned units, as stored). A named unit the node no
    /// longer advertises is ignored; a count of a kind the node no longer has is ignored too.
    pub(crate) fn hold(&mut self, assigned: &[GenericResource]) {
        for r in assigned {
            match (r, self.kind_mut(r.kind())) {
                (GenericResource::Named { value, .. }, Some(Free::Units(u))) => {
                    u.retain(|x| x != value);
                }
                (GenericResource::Discrete { value, .. }, Some(Free::Count(n))) => {
                    *n = n.saturating_sub(*value);
                }
                // A discrete count held against named units (the node changed how it advertises
                // the kind): give up that many units, so the node is not oversubscribed.
                (GenericResource::Discrete { value, .. }, Some(Free::Units(u))) => {
                    let k = usize::try_from(*value).unwrap_or(0).min(u.len());
                    u.drain(..k);
                }
                (GenericResource::Named { .. }, Some(Free::Count(n))) => {
                    *n = n.saturating_sub(1);
                }
                (_, None) => {}
            }
        }
    }

    /// Takes `demand` for one placed task and returns what it was given: the first free named
    /// units of each named kind, or the count of each discrete kind. The caller has checked
    /// [`GenericPool::fits`]; if a kind runs short anyway, the task gets what is left.
    pub(crate) fn claim(&mut self, demand: &[(String, i64)]) -> Vec<GenericResource> {
        let mut out = Vec::new();
        for (kind, n) in demand {
            match self.kind_mut(kind) {
                Some(Free::Count(left)) => {
                    *left = left.saturating_sub(*n);
                    out.push(GenericResource::discrete(kind.clone(), *n));
                }
                Some(Free::Units(u)) => {
                    let k = usize::try_from(*n).unwrap_or(0).min(u.len());
                    out.extend(
                        u.drain(..k)
                            .map(|value| GenericResource::named(kind.clone(), value)),
                    );
                }
                None => {}
            }
        }
        out
    }
}

/// A task spec's generic reservations as (kind, count) pairs, counts summed per kind. Named
/// reservations are refused by the API (as Swarm's CLI does); one stored by an older or buggy
/// writer counts as one unit of its kind, the safe reading. Zero and negative counts ask nothing.
pub(crate) fn demand(reservations: &[GenericResource]) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = Vec::new();
    for r in reservations {
        let n = match r {
            GenericResource::Discrete { value, .. } => *value,
            GenericResource::Named { .. } => 1,
        };
        if n <= 0 {
            continue;
        }
        match out.iter_mut().find(|(k, _)| k == r.kind()) {
            Some((_, total)) => *total = total.saturating_add(n),
            None => out.push((r.kind().to_owned(), n)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpus() -> GenericPool {
        GenericPool::new(&[
            GenericResource::named("gpu", "a"),
            GenericResource::named("gpu", "b"),
            GenericResource::discrete("ssd", 3),
        ])
    }

    #[test]
    fn claims_take_named_units_in_order_and_counts_down() {
        let mut pool = gpus();
        let d = demand(&[
            GenericResource::discrete("gpu", 1),
            GenericResource::discrete("ssd", 2),
        ]);
        assert!(pool.fits(&d));
        assert_eq!(
            pool.claim(&d),
            vec![
                GenericResource::named("gpu", "a"),
                GenericResource::discrete("ssd", 2)
            ]
        );
        // One GPU left but only one SSD: the next task does not fit.
        assert!(!pool.fits(&d));
        let gpu_only = demand(&[GenericResource::discrete("gpu", 1)]);
        assert_eq!(
            pool.claim(&gpu_only),
            vec![GenericResource::named("gpu", "b")]
        );
        assert!(!pool.fits(&gpu_only));
    }

    #[test]
    fn held_units_are_not_handed_out_again() {
        let mut pool = gpus();
        pool.hold(&[
            GenericResource::named("gpu", "a"),
            GenericResource::named("gpu", "gone"),
            GenericResource::discrete("ssd", 3),
            GenericResource::discrete("fpga", 1),
        ]);
        let d = demand(&[GenericResource::discrete("gpu", 1)]);
        assert_eq!(pool.claim(&d), vec![GenericResource::named("gpu", "b")]);
        assert!(!pool.fits(&demand(&[GenericResource::discrete("ssd", 1)])));
    }

    #[test]
    fn missing_kinds_and_empty_demands() {
        let pool = GenericPool::new(&[]);
        assert!(pool.is_empty());
        assert!(pool.fits(&[]));
        assert!(!pool.fits(&demand(&[GenericResource::discrete("gpu", 1)])));
        assert_eq!(
            demand(&[
                GenericResource::discrete("gpu", 1),
                GenericResource::discrete("gpu", 2),
                GenericResource::discrete("ssd", 0),
            ]),
            vec![("gpu".to_owned(), 3)]
        );
    }

    #[test]
    fn a_kind_advertised_twice_counts_once() {
        let pool = GenericPool::new(&[
            GenericResource::named("gpu", "a"),
            GenericResource::named("gpu", "a"),
            GenericResource::discrete("gpu", 5),
        ]);
        assert!(pool.fits(&[("gpu".to_owned(), 1)]));
        assert!(!pool.fits(&[("gpu".to_owned(), 2)]));
    }
}
