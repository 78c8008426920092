//! Checks of the merged project that docker's stack does not make, because it ignores
//! `depends_on` and shoal does not: every dependency names a service of the stack (an optional
//! one, `required: false`, is dropped with a warning, as the Compose Specification says), no
//! cycles, and `service_healthy` only on a service that can become healthy.
//!
//! A dependency on a service with no healthcheck in the file is only a warning: its image may
//! define a `HEALTHCHECK` (docker compose decides at run time from the container's config, which
//! includes the image's). A healthcheck turned off (`disable: true`, `test: [NONE]`) can never
//! report healthy, so that is an error.

use std::collections::BTreeMap;

use shoal_types::stack::{Condition, find_cycle};

use crate::error::{Error, join};
use crate::load::Ctx;
use crate::model::Project;

pub(crate) fn depends_on(cx: &mut Ctx<'_>, project: &mut Project) {
    let names: std::collections::BTreeSet<String> = project.services.keys().cloned().collect();
    let health: BTreeMap<String, Option<bool>> = project
        .services
        .iter()
        .map(|(n, s)| (n.clone(), s.healthcheck.as_ref().map(|h| !h.disables())))
        .collect();
    for (name, svc) in project.services.iter_mut() {
        let key = join(&join("services", name), "depends_on");
        let mut kept = Vec::new();
        for dep in std::mem::take(&mut svc.depends_on) {
            if !names.contains(&dep.service) {
                if dep.required {
                    cx.diag.errors.push(Error::new(
                        Some(dep.at.clone()),
                        &key,
                        format!("depends on undefined service {:?}", dep.service),
                    ));
                } else {
                    cx.diag.warn(format!(
                        "{}: {key}: optional dependency {:?} is not in the stack; ignored",
                        dep.at, dep.service
                    ));
                }
                continue;
            }
            if dep.condition == Condition::Healthy {
                match health.get(&dep.service).copied().flatten() {
                    Some(true) => {}
                    Some(false) => cx.diag.errors.push(Error::new(
                        Some(dep.at.clone()),
                        &key,
                        format!(
                            "condition service_healthy on {:?}, whose healthcheck is disabled",
                            dep.service
                        ),
                    )),
                    None => cx.diag.warn(format!(
                        "{}: {key}: condition service_healthy on {:?}, which has no healthcheck in the file: its image must define one",
                        dep.at, dep.service
                    )),
                }
            }
            kept.push(dep);
        }
        svc.depends_on = kept;
    }
    let graph: BTreeMap<String, Vec<String>> = project
        .services
        .iter()
        .map(|(n, s)| {
            (
                n.clone(),
                s.depends_on.iter().map(|d| d.service.clone()).collect(),
            )
        })
        .collect();
    if let Some(cycle) = find_cycle(&graph) {
        let first = &cycle[0];
        let at = project.services.get(first).and_then(|s| {
            s.depends_on
                .iter()
                .find(|d| Some(&d.service) == cycle.get(1))
                .map(|d| d.at.clone())
        });
        cx.diag.errors.push(Error::new(
            at,
            join(&join("services", first), "depends_on"),
            format!("dependency cycle {}", cycle.join(" -> ")),
        ));
    }
}
