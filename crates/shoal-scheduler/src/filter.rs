//! Filters: whether a node may take a task, and the text that explains a refusal in Swarm's words.
//!
//! The filters run in a fixed order and a node is counted under the first one that rejects it:
//! ready, constraints, platform, resources, generic resources, max replicas. swarmkit checks
//! resources before constraints and platforms; we put first the three that never change within a
//! batch, so a node the operator excluded reads as "constraints not satisfied" rather than as
//! full, and so their verdicts can be cached: `Ready`, `Constraints` and `Platform` depend only on
//! the node and the spec, so [`crate::schedule`] evaluates them once per (constraint list,
//! platform list, node); `Resources`, `GenericResources` and `MaxReplicas` depend on what the node
//! already carries, so they are re-checked as placements change the view.
//!
//! swarmkit checks generic resources inside its resource filter and says "insufficient resources"
//! for both; shoal gives them their own filter and words, so an operator waiting for a GPU is not
//! sent looking at CPU and memory.

use shoal_types::Resources;
use shoal_types::node::Platform;

use crate::constraint::{self, Constraint};
use crate::view::NodeEntry;

/// One filter of the pipeline, in evaluation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Filter {
    /// The node is `ready` and its availability is `active`.
    Ready,
    /// Every placement constraint matches the node.
    Constraints,
    /// The node's platform is one of `placement.platforms` (when the spec lists any).
    Platform,
    /// The task's CPU and memory reservations fit in what the node has left.
    Resources,
    /// The node has enough free units of every generic resource kind the task reserves.
    GenericResources,
    /// The node runs fewer than `placement.max_replicas` tasks of the service.
    MaxReplicas,
}

impl Filter {
    /// Every filter, in the order they run.
    pub const ALL: [Filter; 6] = [
        Filter::Ready,
        Filter::Constraints,
        Filter::Platform,
        Filter::Resources,
        Filter::GenericResources,
        Filter::MaxReplicas,
    ];

    /// Why `nodes` nodes were rejected by this filter, in Swarm's words.
    pub fn explain(self, nodes: usize) -> String {
        let noun = if nodes == 1 { "node" } else { "nodes" };
        match self {
            Filter::Ready => format!("{nodes} {noun} not available for new tasks"),
            Filter::Constraints => {
                format!("scheduling constraints not satisfied on {nodes} {noun}")
            }
            Filter::Platform => format!("unsupported platform on {nodes} {noun}"),
            Filter::Resources => format!("insufficient resources on {nodes} {noun}"),
            Filter::GenericResources => {
                format!("insufficient generic resources on {nodes} {noun}")
            }
            // Swarm's text carries no count (and keeps its grammar): users search for it verbatim.
            Filter::MaxReplicas => "max replicas per node limit exceed".to_owned(),
        }
    }

    fn slot(self) -> usize {
        self as usize
    }
}

/// What a group of identical tasks asks of a node, compiled once per group.
#[derive(Debug, Clone)]
pub(crate) struct Demand {
    /// Reservation per task; all zero disables the resource filter (as in Swarm).
    pub(crate) reservation: Resources,
    /// Generic resources per task, (kind, count) with positive counts; empty disables the
    /// generic resource filter.
    pub(crate) generic: Vec<(String, i64)>,
    /// 0 means no limit.
    pub(crate) max_replicas: u64,
}

impl Demand {
    /// The dynamic filters (resources, then max replicas) for one more task on a node that already
    /// carries `service_tasks` tasks of the service.
    pub(crate) fn check(&self, node: &NodeEntry, service_tasks: u32) -> Result<(), Filter> {
        let r = self.reservation;
        // Swarm compares both dimensions once any is reserved, so a task reserving only memory does
        // not land on a node whose CPU is already overcommitted.
        if !r.is_zero()
            && (r.nano_cpus > node.available.nano_cpus
                || r.memory_bytes > node.available.memory_bytes)
        {
            return Err(Filter::Resources);
        }
        if !self.generic.is_empty() && !node.generic.fits(&self.generic) {
            return Err(Filter::GenericResources);
        }
        if self.max_replicas > 0 && u64::from(service_tasks) >= self.max_replicas {
            return Err(Filter::MaxReplicas);
        }
        Ok(())
    }
}

/// The static filters (ready, constraints, then platform) for one node.
pub(crate) fn check_static(
    node: &NodeEntry,
    constraints: &[Constraint],
    platforms: &[Platform],
) -> Result<(), Filter> {
    if !node.node.accepts_new_tasks() {
        return Err(Filter::Ready);
    }
    if !constraint::all_match(constraints, &node.node) {
        return Err(Filter::Constraints);
    }
    if !platforms.is_empty()
        && !platforms
            .iter()
            .any(|p| platform_matches(p, &node.node.description.platform))
    {
        return Err(Filter::Platform);
    }
    Ok(())
}

/// Whether a node reporting `node` runs what `wanted` names, as swarmkit's platform filter
/// decides: an empty OS or architecture matches any, and the kernel's names for the two common
/// architectures (`x86_64`, `aarch64`, which nodes report) are the image's (`amd64`, `arm64`,
/// which the docker CLI sends from the image's manifest).
pub fn platform_matches(wanted: &Platform, node: &Platform) -> bool {
    fn arch(a: &str) -> &str {
        match a {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        }
    }
    (wanted.arch.is_empty() || arch(&wanted.arch) == arch(&node.arch))
        && (wanted.os.is_empty() || wanted.os == node.os)
}

/// Counts of rejected nodes per filter, turned into the user-facing reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Rejections([usize; Filter::ALL.len()]);

impl Rejections {
    pub(crate) fn add(&mut self, f: Filter) {
        self.0[f.slot()] += 1;
    }

    /// `no suitable node (a; b)`: filters with the most rejected nodes first, ties in filter
    /// order, as swarmkit's `Pipeline.Explain` sorts them. With no nodes at all, just
    /// `no suitable node`.
    pub(crate) fn reason(&self) -> String {
        let mut hits: Vec<(Filter, usize)> = Filter::ALL
            .into_iter()
            .map(|f| (f, self.0[f.slot()]))
            .filter(|&(_, n)| n > 0)
            .collect();
        // Stable sort: equal counts keep the pipeline order, so the text is deterministic.
        hits.sort_by_key(|&(_, n)| std::cmp::Reverse(n));
        if hits.is_empty() {
            return "no suitable node".to_owned();
        }
        let parts: Vec<String> = hits.into_iter().map(|(f, n)| f.explain(n)).collect();
        format!("no suitable node ({})", parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_types::{Availability, Id, Node, NodeState};

    fn entry(available: Resources) -> NodeEntry {
        let mut node = Node {
            id: Id::from_raw("n1"),
            ..Node::default()
        };
        node.status.state = NodeState::Ready;
        NodeEntry {
            node,
            available,
            tasks: 0,
            generic: crate::generic::GenericPool::default(),
        }
    }

    #[test]
    fn explain_texts_match_swarm_in_singular_and_plural() {
        assert_eq!(
            Filter::Ready.explain(1),
            "1 node not available for new tasks"
        );
        assert_eq!(
            Filter::Ready.explain(3),
            "3 nodes not available for new tasks"
        );
        assert_eq!(
            Filter::Constraints.explain(1),
            "scheduling constraints not satisfied on 1 node"
        );
        assert_eq!(
            Filter::Constraints.explain(2),
            "scheduling constraints not satisfied on 2 nodes"
        );
        assert_eq!(
            Filter::Resources.explain(1),
            "insufficient resources on 1 node"
        );
        assert_eq!(
            Filter::Resources.explain(10),
            "insufficient resources on 10 nodes"
        );
        assert_eq!(
            Filter::MaxReplicas.explain(1),
            "max replicas per node limit exceed"
        );
        assert_eq!(
            Filter::MaxReplicas.explain(4),
            "max replicas per node limit exceed"
        );
    }

    #[test]
    fn reason_orders_by_count_then_pipeline_order() {
        let mut r = Rejections::default();
        assert_eq!(r.reason(), "no suitable node");
        r.add(Filter::Resources);
        r.add(Filter::Ready);
        assert_eq!(
            r.reason(),
            "no suitable node (1 node not available for new tasks; insufficient resources on 1 node)"
        );
        r.add(Filter::Resources);
        r.add(Filter::MaxReplicas);
        assert_eq!(
            r.reason(),
            "no suitable node (insufficient resources on 2 nodes; 1 node not available for new tasks; \
             max replicas per node limit exceed)"
        );
    }

    #[test]
    fn ready_filter_needs_ready_and_active() {
        let mut e = entry(Resources::default());
        assert_eq!(check_static(&e, &[], &[]), Ok(()));
        e.node.spec.availability = Availability::Drain;
        assert_eq!(check_static(&e, &[], &[]), Err(Filter::Ready));
        e.node.spec.availability = Availability::Pause;
        assert_eq!(check_static(&e, &[], &[]), Err(Filter::Ready));
        e.node.spec.availability = Availability::Active;
        for s in [NodeState::Down, NodeState::Unknown, NodeState::Disconnected] {
            e.node.status.state = s;
            assert_eq!(check_static(&e, &[], &[]), Err(Filter::Ready));
        }
    }

    #[test]
    fn constraint_filter_runs_after_ready() {
        let mut e = entry(Resources::default());
        let cs = constraint::parse_all(&["node.role==manager".to_owned()]).unwrap_or_default();
        assert_eq!(check_static(&e, &cs, &[]), Err(Filter::Constraints));
        e.node.spec.availability = Availability::Drain;
        assert_eq!(
            check_static(&e, &cs, &[]),
            Err(Filter::Ready),
            "a node counts under the first filter"
        );
    }

    #[test]
    fn platform_filter_runs_after_constraints_and_matches_like_swarm() {
        let mut e = entry(Resources::default());
        e.node.description.platform = Platform {
            os: "linux".into(),
            arch: "x86_64".into(),
        };
        let p = |os: &str, arch: &str| Platform {
            os: os.into(),
            arch: arch.into(),
        };
        for fits in [
            vec![p("linux", "amd64")],
            vec![p("windows", "amd64"), p("linux", "x86_64")],
            vec![p("", "amd64")],
            vec![p("linux", "")],
            vec![],
        ] {
            assert_eq!(check_static(&e, &[], &fits), Ok(()), "{fits:?}");
        }
        for misfit in [
            vec![p("linux", "arm64")],
            vec![p("windows", "")],
            vec![p("Linux", "amd64")],
        ] {
            assert_eq!(
                check_static(&e, &[], &misfit),
                Err(Filter::Platform),
                "{misfit:?}"
            );
        }
        e.node.description.platform.arch = "aarch64".into();
        assert_eq!(check_static(&e, &[], &[p("linux", "arm64")]), Ok(()));
        let cs = constraint::parse_all(&["node.role==manager".to_owned()]).unwrap_or_default();
        assert_eq!(
            check_static(&e, &cs, &[p("windows", "")]),
            Err(Filter::Constraints),
            "a node counts under the first filter"
        );
        assert_eq!(
            Filter::Platform.explain(1),
            "unsupported platform on 1 node"
        );
        assert_eq!(
            Filter::Platform.explain(2),
            "unsupported platform on 2 nodes"
        );
    }

    #[test]
    fn resource_filter_compares_both_dimensions_when_any_is_reserved() {
        let e = entry(Resources {
            nano_cpus: 1_000_000_000,
            memory_bytes: 512,
        });
        let d = |nano_cpus, memory_bytes| Demand {
            reservation: Resources {
                nano_cpus,
                memory_bytes,
            },
            generic: Vec::new(),
            max_replicas: 0,
        };
        assert_eq!(d(1_000_000_000, 512).check(&e, 0), Ok(()));
        assert_eq!(d(1_000_000_001, 0).check(&e, 0), Err(Filter::Resources));
        assert_eq!(d(0, 513).check(&e, 0), Err(Filter::Resources));
        let overcommitted = entry(Resources {
            nano_cpus: -1,
            memory_bytes: 4096,
        });
        assert_eq!(d(0, 1).check(&overcommitted, 0), Err(Filter::Resources));
        // No reservation: the filter is off, even on an overcommitted node.
        assert_eq!(d(0, 0).check(&overcommitted, 0), Ok(()));
    }

    #[test]
    fn generic_filter_runs_after_resources_and_before_max_replicas() {
        use shoal_types::GenericResource;
        let mut e = entry(Resources {
            nano_cpus: 1,
            memory_bytes: 1,
        });
        e.generic = crate::generic::GenericPool::new(&[
            GenericResource::named("gpu", "a"),
            GenericResource::discrete("ssd", 1),
        ]);
        let d = |cpu, gpus, max_replicas| Demand {
            reservation: Resources {
                nano_cpus: cpu,
                memory_bytes: 0,
            },
            generic: vec![("gpu".to_owned(), gpus)],
            max_replicas,
        };
        assert_eq!(d(0, 1, 0).check(&e, 0), Ok(()));
        assert_eq!(d(0, 2, 0).check(&e, 0), Err(Filter::GenericResources));
        assert_eq!(d(2, 2, 0).check(&e, 0), Err(Filter::Resources));
        assert_eq!(d(0, 2, 1).check(&e, 5), Err(Filter::GenericResources));
        assert_eq!(d(0, 1, 1).check(&e, 5), Err(Filter::MaxReplicas));
        let fpga = Demand {
            reservation: Resources::default(),
            generic: vec![("fpga".to_owned(), 1)],
            max_replicas: 0,
        };
        assert_eq!(fpga.check(&e, 0), Err(Filter::GenericResources));
        assert_eq!(
            Filter::GenericResources.explain(1),
            "insufficient generic resources on 1 node"
        );
        assert_eq!(
            Filter::GenericResources.explain(3),
            "insufficient generic resources on 3 nodes"
        );
    }

    #[test]
    fn max_replicas_filter_counts_the_service_on_the_node() {
        let e = entry(Resources::default());
        let d = Demand {
            reservation: Resources::default(),
            generic: Vec::new(),
            max_replicas: 2,
        };
        assert_eq!(d.check(&e, 1), Ok(()));
        assert_eq!(d.check(&e, 2), Err(Filter::MaxReplicas));
        let unlimited = Demand {
            reservation: Resources::default(),
            generic: Vec::new(),
            max_replicas: 0,
        };
        assert_eq!(unlimited.check(&e, 1_000), Ok(()));
        // Resources are checked first: a node failing both counts as "insufficient resources".
        let both = Demand {
            reservation: Resources {
                nano_cpus: 1,
                memory_bytes: 0,
            },
            generic: Vec::new(),
            max_replicas: 1,
        };
        assert_eq!(both.check(&e, 5), Err(Filter::Resources));
    }
}
