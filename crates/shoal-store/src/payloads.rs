//! Secrets and configs in the state machine. The proposer checked names, sizes and references
//! against its view; this checks them again as the write applies, so two managers writing from
//! the same view cannot leave a service pointing at a payload (or a version) that is gone.

use std::sync::Arc;

use shoal_types::payload::{FileRef, Payload, PayloadKind};
use shoal_types::service::ServiceSpec;
use shoal_types::{Id, Timestamp};

use super::{Event, State, event, not_found};
use crate::ops::{Kind, OpError};

/// The references of a spec, with their kinds.
fn refs(spec: &ServiceSpec) -> impl Iterator<Item = (PayloadKind, &FileRef)> {
    let c = &spec.task.container;
    c.secrets
        .iter()
        .map(|r| (PayloadKind::Secret, r))
        .chain(c.configs.iter().map(|r| (PayloadKind::Config, r)))
}

impl State {
    pub fn payload(&self, kind: PayloadKind, id: &Id) -> Option<&Arc<Payload>> {
        self.payloads.get(id).filter(|p| p.kind == kind)
    }

    pub fn payload_by_name(&self, kind: PayloadKind, name: &str) -> Option<&Arc<Payload>> {
        self.payload_names
            .get(&(kind, name.to_string()))
            .and_then(|id| self.payloads.get(id))
    }

    /// Every secret or every config, in ID order.
    pub fn payloads(&self, kind: PayloadKind) -> impl Iterator<Item = &Arc<Payload>> {
        self.payloads.values().filter(move |p| p.kind == kind)
    }

    /// The names of the services whose spec uses `id` (at `version`, when given).
    pub fn payload_users(&self, id: &Id, version: Option<u64>) -> Vec<String> {
        self.services
            .values()
            .filter(|s| {
                refs(&s.spec).any(|(_, r)| &r.id == id && version.is_none_or(|v| r.version == v))
            })
            .map(|s| s.spec.name.clone())
            .collect()
    }

    /// Every reference of `spec` names a payload of its kind that has the version named.
    pub(super) fn check_refs(&self, spec: &ServiceSpec) -> Result<(), OpError> {
        for (kind, r) in refs(spec) {
            let p = self
                .payload(kind, &r.id)
                .ok_or_else(|| not_found(kind.into(), &r.id))?;
            if p.version(r.version).is_none() {
                return Err(OpError::NoSuchVersion {
                    kind: kind.into(),
                    name: p.spec.name.clone(),
                    version: r.version,
                });
            }
        }
        Ok(())
    }

    pub(super) fn create_payload(
        &mut self,
        version: u64,
        now: Timestamp,
        p: &Payload,
        ev: &mut Vec<Event>,
    ) -> Result<(), OpError> {
        let kind = Kind::from(p.kind);
        if self.payloads.contains_key(&p.id) {
            return Err(OpError::Exists {
                kind,
                id: p.id.clone(),
            });
        }
        let key = (p.kind, p.spec.name.clone());
        if self.payload_names.contains_key(&key) {
            return Err(OpError::NameInUse {
                kind,
                name: p.spec.name.clone(),
            });
        }
        let mut p = p.clone();
        p.meta.version = version;
        p.meta.created_at = now;
        p.meta.updated_at = now;
        self.payload_names.insert(key, p.id.clone());
        ev.push(event(kind, &p.id, false));
        self.payloads.insert(p.id.clone(), Arc::new(p));
        Ok(())
    }

    pub(super) fn update_payload(
        &mut self,
        version: u64,
        now: Timestamp,
        p: &Payload,
        expect_version: Option<u64>,
        ev: &mut Vec<Event>,
    ) -> Result<(), OpError> {
        let kind = Kind::from(p.kind);
        let cur = self
            .payload(p.kind, &p.id)
            .ok_or_else(|| not_found(kind, &p.id))?
            .clone();
        super::check_version(kind, &p.id, cur.meta.version, expect_version)?;
        if cur.spec.name != p.spec.name {
            // Swarm's payloads are immutable but for their labels; a rename would strand the
            // name every spec holds.
            return Err(OpError::Renamed {
                kind,
                name: cur.spec.name.clone(),
            });
        }
        if p.versions.is_empty() {
            return Err(OpError::NoSuchVersion {
                kind,
                name: p.spec.name.clone(),
                version: 0,
            });
        }
        for gone in cur
            .versions
            .iter()
            .filter(|v| p.version(v.version).is_none())
        {
            let users = self.payload_users(&p.id, Some(gone.version));
            if !users.is_empty() {
                return Err(OpError::InUse {
                    kind,
                    name: format!("{} version {}", p.spec.name, gone.version),
                    services: users,
                });
            }
        }
        let mut p = p.clone();
        p.meta.created_at = cur.meta.created_at;
        p.meta.version = version;
        p.meta.updated_at = now;
        ev.push(event(kind, &p.id, false));
        self.payloads.insert(p.id.clone(), Arc::new(p));
        Ok(())
    }

    pub(super) fn delete_payload(
        &mut self,
        kind: PayloadKind,
        id: &Id,
        ev: &mut Vec<Event>,
    ) -> Result<(), OpError> {
        let cur = self
            .payload(kind, id)
            .ok_or_else(|| not_found(kind.into(), id))?
            .clone();
        let users = self.payload_users(id, None);
        if !users.is_empty() {
            return Err(OpError::InUse {
                kind: kind.into(),
                name: cur.spec.name.clone(),
                services: users,
            });
        }
        self.payloads.remove(id);
        self.payload_names.remove(&(kind, cur.spec.name.clone()));
        ev.push(event(kind.into(), id, true));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use shoal_types::payload::{Bytes, PayloadSpec, PayloadVersion};
    use shoal_types::service::Service;

    use super::*;
    use crate::ops::{Op, Proposal};

    fn id(s: &str) -> Id {
        Id::from_raw(s)
    }

    fn secret(i: &str, name: &str, versions: &[u64]) -> Payload {
        Payload {
            id: id(i),
            meta: Default::default(),
            kind: PayloadKind::Secret,
            spec: PayloadSpec {
                name: name.into(),
                ..Default::default()
            },
            versions: versions
                .iter()
                .map(|v| PayloadVersion {
                    version: *v,
                    data: Bytes::new(format!("v{v}").into_bytes()),
                    created_at: Timestamp(0),
                })
                .collect(),
        }
    }

    fn using(i: &str, name: &str, secret: &str, version: u64) -> Service {
        let mut s = Service {
            id: id(i),
            ..Default::default()
        };
        s.spec.name = name.into();
        s.spec.task.container.secrets = vec![FileRef {
            id: id(secret),
            name: "pw".into(),
            version,
            target: "pw".into(),
            mode: 0o444,
            ..Default::default()
        }];
        s
    }

    fn apply(s: &mut State, v: u64, op: Op) -> Result<(), OpError> {
        s.apply(v, &Proposal::atomic(Timestamp(v as i64), vec![op]))
            .0
            .results
            .remove(0)
    }

    /// Names are unique per kind; a service cannot refer to a payload or version that is not
    /// there; a payload in use cannot go, nor can a version a service uses; all of it reloads.
    #[test]
    fn references_hold_payloads_and_versions_in_place() {
        let mut s = State::default();
        assert_eq!(
            apply(&mut s, 1, Op::CreatePayload(secret("p1", "pw", &[1]))),
            Ok(())
        );
        let mut config = secret("p2", "pw", &[1]);
        config.kind = PayloadKind::Config;
        assert_eq!(
            apply(&mut s, 2, Op::CreatePayload(config)),
            Ok(()),
            "another kind"
        );
        assert!(matches!(
            apply(&mut s, 3, Op::CreatePayload(secret("p3", "pw", &[1]))),
            Err(OpError::NameInUse { .. })
        ));
        assert!(matches!(
            apply(&mut s, 4, Op::CreateService(using("s1", "web", "p1", 2))),
            Err(OpError::NoSuchVersion { version: 2, .. })
        ));
        assert!(matches!(
            apply(&mut s, 5, Op::CreateService(using("s1", "web", "nope", 1))),
            Err(OpError::NotFound { .. })
        ));
        assert_eq!(
            apply(&mut s, 6, Op::CreateService(using("s1", "web", "p1", 1))),
            Ok(())
        );
        assert_eq!(
            apply(
                &mut s,
                7,
                Op::DeletePayload {
                    kind: PayloadKind::Secret,
                    id: id("p1")
                }
            ),
            Err(OpError::InUse {
                kind: Kind::Secret,
                name: "pw".into(),
                services: vec!["web".into()],
            })
        );
        // A rotation that drops the version the service uses is refused; one that keeps it is not.
        let cur = s
            .payload(PayloadKind::Secret, &id("p1"))
            .expect("p1")
            .meta
            .version;
        assert!(matches!(
            apply(
                &mut s,
                8,
                Op::UpdatePayload {
                    payload: secret("p1", "pw", &[2]),
                    expect_version: Some(cur)
                }
            ),
            Err(OpError::InUse { .. })
        ));
        assert_eq!(
            apply(
                &mut s,
                9,
                Op::UpdatePayload {
                    payload: secret("p1", "pw", &[1, 2]),
                    expect_version: Some(cur)
                }
            ),
            Ok(())
        );
        let mut reloaded = State::default();
        for o in s.all_objects() {
            reloaded.load(o);
        }
        let p = reloaded
            .payload_by_name(PayloadKind::Secret, "pw")
            .expect("reloaded");
        assert_eq!(p.versions.len(), 2);
        assert_eq!(
            reloaded.payload_users(&id("p1"), Some(1)),
            vec!["web".to_string()]
        );
        assert_eq!(
            apply(&mut s, 10, Op::DeleteService { id: id("s1") }),
            Ok(())
        );
        assert_eq!(
            apply(
                &mut s,
                11,
                Op::DeletePayload {
                    kind: PayloadKind::Secret,
                    id: id("p1")
                }
            ),
            Ok(())
        );
        assert!(s.payload_by_name(PayloadKind::Secret, "pw").is_none());
    }
}
