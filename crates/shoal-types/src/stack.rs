//! Stacks: the labels that tie services, networks, secrets and configs to a stack, and the
//! start-order dependencies between a stack's services (compose's `depends_on`).
//!
//! A dependency travels as a service label, [`DEPENDS_ON_LABEL`], rather than as a field of the
//! spec: the docker CLI rewrites a whole spec on `service update` and drops fields it does not
//! know, while it keeps labels. Its value is a comma-separated list of `SERVICE:CONDITION`, where
//! SERVICE is the full service name (`app_db`) and CONDITION is one of compose's conditions.

use std::collections::BTreeMap;
use std::fmt;

/// The label docker puts on everything `docker stack deploy` creates; its value is the stack name.
pub const NAMESPACE_LABEL: &str = "com.docker.stack.namespace";

/// The label on a service that holds its start-order dependencies.
pub const DEPENDS_ON_LABEL: &str = "com.shoal.stack.depends-on";

/// What must hold of a dependency before a dependent service gets its first tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Condition {
    /// Every desired task of the dependency is running.
    Started,
    /// Every desired task of the dependency is running and reports healthy.
    Healthy,
    /// Every desired task of the dependency has exited with status 0.
    CompletedSuccessfully,
}

impl Condition {
    pub const ALL: [Condition; 3] = [
        Condition::Started,
        Condition::Healthy,
        Condition::CompletedSuccessfully,
    ];

    /// The name compose uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Started => "service_started",
            Condition::Healthy => "service_healthy",
            Condition::CompletedSuccessfully => "service_completed_successfully",
        }
    }

    pub fn parse(s: &str) -> Option<Condition> {
        Condition::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One start-order dependency of a service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dependency {
    /// The full name of the service depended on.
    pub service: String,
    pub condition: Condition,
}

/// Why a [`DEPENDS_ON_LABEL`] value is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("label {DEPENDS_ON_LABEL}: {0}")]
pub struct DependsOnError(pub String);

/// The label value for `deps` (sorted, so equal sets give equal labels).
pub fn format_depends_on(deps: &[Dependency]) -> String {
    let mut deps = deps.to_vec();
    deps.sort();
    deps.dedup();
    deps.iter()
        .map(|d| format!("{}:{}", d.service, d.condition))
        .collect::<Vec<_>>()
        .join(",")
}

/// Parses a [`DEPENDS_ON_LABEL`] value. An empty value means no dependencies.
pub fn parse_depends_on(value: &str) -> Result<Vec<Dependency>, DependsOnError> {
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (service, cond) = item.rsplit_once(':').ok_or_else(|| {
            DependsOnError(format!(
                "{item:?}: expected SERVICE:CONDITION (CONDITION one of {})",
                condition_names()
            ))
        })?;
        let service = service.trim();
        if service.is_empty() {
            return Err(DependsOnError(format!(
                "{item:?}: the service name is empty"
            )));
        }
        let condition = Condition::parse(cond.trim()).ok_or_else(|| {
            DependsOnError(format!(
                "{item:?}: unknown condition {:?} (expected one of {})",
                cond.trim(),
                condition_names()
            ))
        })?;
        out.push(Dependency {
            service: service.to_string(),
            condition,
        });
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The dependencies a service's labels declare (none when the label is absent).
pub fn depends_on(labels: &BTreeMap<String, String>) -> Result<Vec<Dependency>, DependsOnError> {
    labels
        .get(DEPENDS_ON_LABEL)
        .map_or(Ok(Vec::new()), |v| parse_depends_on(v))
}

fn condition_names() -> String {
    Condition::ALL
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Finds a cycle in a dependency graph given as `service -> services it depends on`, returning
/// it as a path that starts and ends with the same service (`a -> b -> a`), if there is one.
pub fn find_cycle(graph: &BTreeMap<String, Vec<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    let mut marks: BTreeMap<&str, Mark> = BTreeMap::new();
    // Iterative DFS: a hostile graph (thousands of services in a chain) must not overflow the stack.
    for start in graph.keys() {
        if marks.contains_key(start.as_str()) {
            continue;
        }
        let mut stack: Vec<(&str, usize)> = vec![(start.as_str(), 0)];
        marks.insert(start.as_str(), Mark::Visiting);
        while let Some((node, next)) = stack.last().copied() {
            let edges = graph.get(node).map(Vec::as_slice).unwrap_or(&[]);
            if next < edges.len() {
                if let Some(top) = stack.last_mut() {
                    top.1 += 1;
                }
                let to = edges[next].as_str();
                match marks.get(to) {
                    Some(Mark::Visiting) => {
                        let from = stack.iter().position(|(n, _)| *n == to).unwrap_or(0);
                        let mut cycle: Vec<String> =
                            stack[from..].iter().map(|(n, _)| n.to_string()).collect();
                        cycle.push(to.to_string());
                        return Some(cycle);
                    }
                    Some(Mark::Done) => {}
                    None => {
                        marks.insert(to, Mark::Visiting);
                        stack.push((to, 0));
                    }
                }
            } else {
                marks.insert(node, Mark::Done);
                stack.pop();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_round_trips_sorted() {
        let deps =
            parse_depends_on("app_db:service_healthy, app_cache:service_started").expect("ok");
        assert_eq!(
            format_depends_on(&deps),
            "app_cache:service_started,app_db:service_healthy"
        );
        assert_eq!(
            parse_depends_on(&format_depends_on(&deps)).expect("ok"),
            deps
        );
        assert!(parse_depends_on("").expect("ok").is_empty());
    }

    #[test]
    fn bad_labels_name_the_item() {
        let e = parse_depends_on("app_db")
            .expect_err("an error")
            .to_string();
        assert!(
            e.contains("\"app_db\"") && e.contains("SERVICE:CONDITION"),
            "{e}"
        );
        let e = parse_depends_on("app_db:healthy")
            .expect_err("an error")
            .to_string();
        assert!(e.contains("unknown condition \"healthy\""), "{e}");
        let e = parse_depends_on(":service_started")
            .expect_err("an error")
            .to_string();
        assert!(e.contains("empty"), "{e}");
    }

    #[test]
    fn cycles_are_found_with_their_path() {
        let g = |edges: &[(&str, &[&str])]| -> BTreeMap<String, Vec<String>> {
            edges
                .iter()
                .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
                .collect()
        };
        assert_eq!(
            find_cycle(&g(&[("a", &["b"]), ("b", &["c"]), ("c", &[])])),
            None
        );
        assert_eq!(
            find_cycle(&g(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"])])),
            Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
        );
        assert_eq!(
            find_cycle(&g(&[("a", &["a"])])),
            Some(vec!["a".into(), "a".into()])
        );
        // A diamond is not a cycle.
        assert_eq!(
            find_cycle(&g(&[("a", &["b", "c"]), ("b", &["d"]), ("c", &["d"])])),
            None
        );
        // A long chain does not overflow the stack.
        let chain: BTreeMap<String, Vec<String>> = (0..100_000)
            .map(|i| (format!("s{i}"), vec![format!("s{}", i + 1)]))
            .collect();
        assert_eq!(find_cycle(&chain), None);
    }
}
