//! Scoring: which eligible node gets the next task of a group.
//!
//! The eligible nodes of a group are arranged as Swarm's placement-preference tree: each
//! `spread=DESCRIPTOR` preference is one level whose branches are the nodes' values of the
//! attribute it names (`node.labels.X`, `engine.labels.X`, `node.platform.os`, `node.hostname`...;
//! a node without the label sits under the empty value), and the nodes hang off the leaves. Each task
//! walks from the root to a node, at every level taking the branch that holds the fewest tasks of
//! the service, then the node that has the fewest tasks of the service, then the fewest tasks in
//! all, then the lowest ID. With no preferences the tree is a single leaf: plain spread.
//!
//! swarmkit computes how many tasks each branch should get and fills branches in bulk; placing one
//! task at a time into the emptiest branch gives the same water-filling result, with a
//! deterministic tie-break instead of Go's map order, and lets each placement update the view.
//!
//! Every level is a binary heap, so a placement costs O(levels · log width) rather than a scan of
//! all nodes. Branch counts include tasks on nodes that are not eligible (as in swarmkit: a zone
//! already running the service on a drained node still counts as served). Invariant: every node
//! in a leaf heap passes every filter for the group right now; the group's own placements are the
//! only change to the view while the tree lives, and each placement re-checks its node.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::binary_heap::PeekMut;
use std::collections::{BTreeMap, BinaryHeap};

use shoal_types::Node;
use shoal_types::constraint::{Descriptor, parse_descriptor};
use shoal_types::service::SpreadPreference;

/// A node's rank in its leaf, lowest first: (tasks of the service, tasks in all, node index).
/// Node indices follow node ID order, so the last field is the ID tie-break.
pub(crate) type NodeKey = (u32, u32, u32);

/// A branch's rank in its parent, lowest first: (tasks of the service in the subtree, rank of the
/// branch's value in byte order, branch index).
type BranchKey = (u64, u32, u32);

/// One level of the tree: the node attribute whose values split it.
pub(crate) type SpreadOver = Descriptor;

/// The levels a task's preferences ask for. As in swarmkit, a descriptor that names no node
/// attribute is skipped (the API refuses such descriptors; the scheduler must not refuse a task
/// for one a spec stored by an older writer holds).
pub(crate) fn spread_levels(prefs: &[SpreadPreference]) -> Vec<SpreadOver> {
    prefs
        .iter()
        .filter_map(|p| parse_descriptor(&p.spread).ok())
        .collect()
}

enum Branch {
    Inner(BinaryHeap<Reverse<BranchKey>>),
    Leaf(BinaryHeap<Reverse<NodeKey>>),
}

/// The tree's structure for one list of preferences over the view's nodes: which branches exist
/// and which leaf each node hangs off. It depends only on the nodes, so [`crate::schedule`]
/// builds it once per preference list and reuses it for every group that shares the list; each
/// group then only fills in its own counts and eligible nodes ([`Tree::build`]).
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    /// Per branch (root first; a child always after its parent): its parent, or `u32::MAX` for the
    /// root.
    parent: Vec<u32>,
    /// Per branch: the rank of its value among its siblings', in byte order (the tie-break).
    rank: Vec<u32>,
    /// Per branch: whether nodes hang off it (every branch at the deepest level, or the root alone
    /// when there are no levels).
    leaf: Vec<bool>,
    /// Per node, in view order: its leaf.
    leaf_of: Vec<u32>,
}

impl Shape {
    pub(crate) fn new<'n>(levels: &[SpreadOver], nodes: impl Iterator<Item = &'n Node>) -> Shape {
        let mut children: Vec<BTreeMap<Cow<'n, str>, u32>> = vec![BTreeMap::new()];
        let mut parent = vec![u32::MAX];
        let mut leaf_of = Vec::new();
        for node in nodes {
            let mut b = 0u32;
            for level in levels {
                let value = level.value(node);
                b = match children[b as usize].get(value.as_ref()) {
                    Some(&c) => c,
                    None => {
                        let c = children.len() as u32;
                        children[b as usize].insert(value, c);
                        children.push(BTreeMap::new());
                        parent.push(b);
                        c
                    }
                };
            }
            leaf_of.push(b);
        }
        let mut rank = vec![0; children.len()];
        for kids in &children {
            for (r, &c) in (0u32..).zip(kids.values()) {
                rank[c as usize] = r;
            }
        }
        // Inner branches always have children, except a root with no nodes under it.
        let leaf = (0..children.len())
            .map(|b| children[b].is_empty() && (b != 0 || levels.is_empty()))
            .collect();
        Shape {
            parent,
            rank,
            leaf,
            leaf_of,
        }
    }
}

/// The eligible nodes of one group, ready to hand out the best node task after task.
pub(crate) struct Tree {
    /// `branches[0]` is the root; a child always has a higher index than its parent.
    branches: Vec<Branch>,
    /// Scratch: the inner branches walked by the current placement.
    path: Vec<usize>,
}

impl Tree {
    /// Builds one group's tree on `shape` from every node in view order: `(tasks of the service on
    /// it, its key if it is eligible)`. Ineligible nodes still count towards their branches.
    pub(crate) fn build(
        shape: &Shape,
        nodes: impl Iterator<Item = (u32, Option<NodeKey>)>,
    ) -> Tree {
        let n = shape.parent.len();
        let mut tasks = vec![0u64; n];
        let mut members: Vec<Vec<Reverse<NodeKey>>> = vec![Vec::new(); n];
        for (&leaf, (service_tasks, key)) in shape.leaf_of.iter().zip(nodes) {
            tasks[leaf as usize] += u64::from(service_tasks);
            if let Some(key) = key {
                members[leaf as usize].push(Reverse(key));
            }
        }
        // Children come after their parent, so one backwards pass sees every child before its
        // parent: it sums counts upwards and leaves out subtrees without eligible nodes.
        let mut kids: Vec<Vec<Reverse<BranchKey>>> = vec![Vec::new(); n];
        let mut branches: Vec<Option<Branch>> = (0..n).map(|_| None).collect();
        for b in (0..n).rev() {
            let branch = if shape.leaf[b] {
                Branch::Leaf(BinaryHeap::from(std::mem::take(&mut members[b])))
            } else {
                Branch::Inner(BinaryHeap::from(std::mem::take(&mut kids[b])))
            };
            let usable = match &branch {
                Branch::Leaf(h) => !h.is_empty(),
                Branch::Inner(h) => !h.is_empty(),
            };
            let p = shape.parent[b];
            if p != u32::MAX {
                tasks[p as usize] += tasks[b];
                if usable {
                    kids[p as usize].push(Reverse((tasks[b], shape.rank[b], b as u32)));
                }
            }
            branches[b] = Some(branch);
        }
        Tree {
            branches: branches.into_iter().flatten().collect(),
            path: Vec::new(),
        }
    }

    /// Places one task: finds the best node, lets `commit` book the task on it, and re-ranks.
    /// `commit` returns the node's new key if it can take another task of the group, or `None` to
    /// retire it. Returns the node index, or `None` when no eligible node is left.
    pub(crate) fn place(&mut self, commit: impl FnOnce(u32) -> Option<NodeKey>) -> Option<u32> {
        self.path.clear();
        let mut b = 0;
        let node = loop {
            match self.branches.get_mut(b)? {
                Branch::Inner(h) => {
                    let Reverse((_, _, child)) = *h.peek()?;
                    self.path.push(b);
                    b = child as usize;
                }
                Branch::Leaf(h) => {
                    let mut top = h.peek_mut()?;
                    let node = top.0.2;
                    match commit(node) {
                        Some(key) => top.0 = key,
                        None => drop(PeekMut::pop(top)),
                    }
                    break node;
                }
            }
        };
        let mut emptied = matches!(&self.branches[b], Branch::Leaf(h) if h.is_empty());
        // Bottom-up: each parent's top is still the child we came through until we touch it.
        for &p in self.path.iter().rev() {
            let Branch::Inner(h) = &mut self.branches[p] else {
                continue;
            };
            if let Some(mut top) = h.peek_mut() {
                if emptied {
                    PeekMut::pop(top);
                } else {
                    top.0.0 += 1;
                }
            }
            emptied = h.is_empty();
        }
        Some(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_types::Id;

    fn pref(s: &str) -> SpreadPreference {
        SpreadPreference {
            spread: s.to_owned(),
        }
    }

    fn node(id: &str, zone: Option<&str>) -> Node {
        let mut n = Node {
            id: Id::from_raw(id),
            ..Node::default()
        };
        if let Some(z) = zone {
            n.spec.labels.insert("zone".into(), z.into());
        }
        n
    }

    #[test]
    fn spread_levels_take_any_node_attribute_and_skip_the_rest() {
        let levels = spread_levels(&[
            pref("node.labels.zone"),
            pref("Engine.Labels.rack"),
            pref("node.hostname"),
            pref("node.labels."),
            pref("node.lables.zone"),
            pref(" NODE.LABELS.Zone "),
            pref("node.platform.arch"),
        ]);
        assert_eq!(
            levels,
            vec![
                SpreadOver::NodeLabel("zone".into()),
                SpreadOver::EngineLabel("rack".into()),
                SpreadOver::Hostname,
                SpreadOver::NodeLabel("Zone".into()),
                SpreadOver::Arch,
            ]
        );
    }

    /// Nodes grouped by platform, two arm64 and one amd64: each architecture gets half of the
    /// tasks, so the lone amd64 node takes as many as the two arm64 nodes together.
    #[test]
    fn spread_over_the_platform_groups_nodes_by_architecture() {
        let mut nodes = [node("a", None), node("b", None), node("c", None)];
        for (n, arch) in nodes.iter_mut().zip(["aarch64", "aarch64", "x86_64"]) {
            n.description.platform.arch = arch.into();
        }
        let levels = spread_levels(&[pref("node.platform.arch")]);
        let shape = Shape::new(&levels, nodes.iter());
        let mut counts = [0u32; 3];
        let mut tree = Tree::build(&shape, (0u32..3).map(|i| (0, Some((0, 0, i)))));
        for _ in 0..4 {
            let placed = tree
                .place(|i| {
                    counts[i as usize] += 1;
                    Some((counts[i as usize], counts[i as usize], i))
                })
                .expect("a node");
            assert!(placed < 3);
        }
        assert_eq!(counts, [1, 1, 2]);
    }

    #[test]
    fn picks_the_emptiest_branch_then_the_best_node_and_retires_full_nodes() {
        let nodes = [
            node("a", Some("x")),
            node("b", Some("y")),
            node("c", Some("y")),
            node("d", None),
        ];
        let levels = spread_levels(&[pref("node.labels.zone")]);
        let shape = Shape::new(&levels, nodes.iter());
        // Zone y already runs 2 tasks of the service (on b); node d is not eligible, so the empty
        // value's branch is left out.
        let counts = [
            (0, Some((0, 0, 0))),
            (2, Some((2, 2, 1))),
            (0, Some((0, 0, 2))),
            (0, None),
        ];
        let mut tree = Tree::build(&shape, counts.into_iter());
        let mut order = Vec::new();
        // Each node takes at most one more task.
        while let Some(n) = tree.place(|_| None) {
            order.push(n);
        }
        // Zone x (0 tasks) goes first; its only node then retires, so zone y follows: c (0 tasks
        // of the service) before b (2).
        assert_eq!(order, vec![0, 2, 1]);
    }

    #[test]
    fn no_levels_is_one_leaf_and_no_nodes_places_nothing() {
        let shape = Shape::new(&[], std::iter::empty());
        let mut tree = Tree::build(&shape, std::iter::empty());
        assert_eq!(tree.place(|_| None), None);
        let levels = spread_levels(&[pref("node.labels.zone")]);
        let shape = Shape::new(&levels, std::iter::empty());
        let mut tree = Tree::build(&shape, std::iter::empty());
        assert_eq!(tree.place(|_| None), None);

        let nodes = [node("a", None), node("b", None)];
        let shape = Shape::new(&[], nodes.iter());
        let mut tree = Tree::build(
            &shape,
            [(0, Some((0, 5, 0))), (0, Some((0, 1, 1)))].into_iter(),
        );
        // Same count of the service: fewer tasks in all wins; keys move as tasks land.
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.extend(
                tree.place(|i| Some((1 + seen.iter().filter(|&&s| s == i).count() as u32, 9, i))),
            );
        }
        assert_eq!(seen, vec![1, 0, 0, 1]);
    }
}
