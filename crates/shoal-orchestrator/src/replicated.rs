//! Replicated services: slots `1..=replicas`, each holding one live task.
//!
//! Tasks in slot 0 or above `replicas` are retired (scale-down shuts the highest slots down);
//! every slot in range is reconciled on its own (see `slot`), and then the rolling update
//! decides which out-of-date slots to replace.

use shoal_types::{IdGen, Service, Task};

use crate::slot;
use crate::view;
use crate::{Context, Reconciled, moves, update};

pub(crate) fn reconcile(
    ctx: &Context,
    service: &Service,
    replicas: u64,
    tasks: &[&Task],
    ids: &mut IdGen,
) -> Reconciled {
    slot::plan_service(ctx, service, false, |plan, env| {
        let mut summaries = Vec::new();
        for (number, mut group) in slot::by_number(replicas, tasks.iter().copied()) {
            view::sort_by_age(&mut group);
            if number == 0 || number > replicas {
                slot::retire(plan, env, &group);
                continue;
            }
            let mut s = slot::reconcile_numbered(plan, env, number, group);
            s.fulfil(plan, env, ids);
            summaries.push(s);
        }
        update::drive(plan, env, &mut summaries, ids);
        moves::drive(plan, env, &mut summaries, ids);
    })
}
