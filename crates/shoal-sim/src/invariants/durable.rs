//! Every acknowledged write survives. A write a client was told succeeded (the probes that bump
//! a service label) was committed at some Raft index in some term; every leader of that term or
//! later must have that index in its log (Raft's leader completeness), and once it has applied
//! that far, its state must hold the write (or a later one: probes only count up).

use super::{Invariant, Observation};
use crate::plan::PROBE_LABEL;

pub struct Durable;

impl Invariant for Durable {
    fn name(&self) -> &'static str {
        "every acknowledged write is in every later leader's state"
    }

    fn check(&mut self, obs: &Observation) -> Result<(), String> {
        for m in obs.managers.iter().filter(|m| m.leader) {
            for a in obs.acked.iter().filter(|a| m.term >= a.term) {
                if m.last_log < a.version {
                    return Err(format!(
                        "leader m{} (term {}) has log up to {} but {a:?} was acknowledged",
                        m.idx, m.term, m.last_log
                    ));
                }
                if m.applied < a.version {
                    continue;
                }
                let seq = m
                    .state
                    .service_by_name(&a.service)
                    .and_then(|s| s.spec.labels.get(PROBE_LABEL))
                    .and_then(|v| v.parse::<u64>().ok());
                if seq.is_none_or(|s| s < a.seq) {
                    return Err(format!(
                        "leader m{} (term {}, applied {}) has {PROBE_LABEL}={seq:?} on service {}, but {a:?} was acknowledged",
                        m.idx, m.term, m.applied, a.service
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invariants::Acked;
    use crate::invariants::fixtures::*;
    use shoal_store::Op;
    use shoal_types::service::ServiceMode;

    fn with_label(seq: u64) -> Op {
        let mut s = service("web", ServiceMode::Global);
        s.spec.labels.insert(PROBE_LABEL.into(), seq.to_string());
        Op::CreateService(s)
    }

    #[test]
    fn a_lost_or_rolled_back_write_fails() {
        let acked = [Acked {
            service: "web".into(),
            seq: 3,
            version: 1,
            term: 1,
        }];
        let mut o = obs(vec![manager(0, state(vec![with_label(3)]))], vec![]);
        o.acked = &acked;
        assert!(Durable.check(&o).is_ok());
        let mut o = obs(vec![manager(0, state(vec![with_label(2)]))], vec![]);
        o.acked = &acked;
        assert!(
            Durable
                .check(&o)
                .expect_err("rolled back")
                .contains("sim.seq=Some(2)")
        );
        // A leader whose log is too short for an acknowledged write.
        let mut m = manager(0, state(vec![with_label(3)]));
        m.last_log = 0;
        m.applied = 0;
        let mut o = obs(vec![m.clone()], vec![]);
        o.acked = &acked;
        assert!(
            Durable
                .check(&o)
                .expect_err("lost")
                .contains("has log up to 0")
        );
        // ... unless it is a deposed leader of an older term.
        m.term = 0;
        let mut o = obs(vec![m], vec![]);
        o.acked = &acked;
        assert!(Durable.check(&o).is_ok());
    }
}
