//! Replicated services: slots `1..=replicas`, each holding one live task.
//!
//! Tasks in slot 0 or above `replicas` are retired (scale-down shuts the highest slots down);
//! every slot in range is reconciled on its own (see `slot`), and then the rolling update
//! decides which out-of-date slots to replace.

use std::collections::BTreeMap;

use shoal_types::{IdGen, Service, Task};

use crate::plan::{Place, Plan};
use crate::slot::{self, Env, Slot};
use crate::view::{self, Nodes};
use crate::{Context, Reconciled, moves, update};

pub(crate) fn reconcile(
    ctx: &Context,
    service: &Service,
    replicas: u64,
    tasks: &[&Task],
    ids: &mut IdGen,
) -> Reconciled {
    let nodes = Nodes::new(ctx.nodes);
    let env = Env {
        service,
        target: &service.spec.task,
        nodes: &nodes,
        job: false,
    };
    let mut plan = Plan::new(ctx.now);

    let mut by_slot: BTreeMap<u64, Vec<&Task>> = (1..=replicas).map(|s| (s, Vec::new())).collect();
    for &t in tasks {
        by_slot.entry(t.slot).or_default().push(t);
    }

    let mut summaries = Vec::new();
    for (number, mut group) in by_slot {
        view::sort_by_age(&mut group);
        if number == 0 || number > replicas {
            slot::retire(&mut plan, &env, &group);
            continue;
        }
        let mut s = slot::reconcile(
            &mut plan,
            &env,
            Slot {
                place: Place::Slot(number),
                tasks: group,
                can_create: true,
            },
        );
        s.fulfil(&mut plan, &env, ids);
        summaries.push(s);
    }
    update::drive(&mut plan, &env, &mut summaries, ids);
    moves::drive(&mut plan, &env, &mut summaries, ids);
    plan.finish()
}
