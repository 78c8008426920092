//! Secrets and configs through the control API: create, relabel, rotate and remove, and the
//! resolution of a service's references to them. The state machine checks names and
//! references again as each write applies (see `shoal-store`'s `payloads`), so these checks
//! give the clear errors and the store keeps the invariants.

use std::collections::BTreeSet;
use std::sync::Arc;

use shoal_control::views::Rotated;
use shoal_store::{Op, State};
use shoal_types::payload::{
    self, FileRef, MAX_SIZE, Payload, PayloadKind, PayloadSpec, PayloadVersion, TEMPLATE_GOLANG,
};
use shoal_types::service::{ContainerSpec, Service, ServiceSpec};
use shoal_types::{Id, TaskState};

use crate::control::{Control, unique_prefix};
use crate::error::ControlError;

/// Checks a payload's data as Swarm does (more than 0 bytes, less than 500 KiB) and, for a
/// template, that it parses, so a typo is refused here rather than failing every task.
fn check_data(spec: &PayloadSpec, data: &[u8]) -> Result<(), ControlError> {
    if data.is_empty() || data.len() >= MAX_SIZE {
        return Err(ControlError::invalid(
            "Data",
            format!(
                "{} bytes: the data must be larger than 0 and smaller than {} KiB",
                data.len(),
                MAX_SIZE / 1024
            ),
        ));
    }
    if spec.templating.is_some() {
        let text = std::str::from_utf8(data)
            .map_err(|_| ControlError::invalid("Data", "a template must be UTF-8 text"))?;
        shoal_types::template::parse_named(&spec.name, text)
            .map_err(|e| ControlError::invalid("Data", format!("template: {e}")))?;
    }
    Ok(())
}

fn check_spec(spec: &PayloadSpec) -> Result<(), ControlError> {
    payload::check_name(&spec.name).map_err(|why| ControlError::invalid("Name", why))?;
    crate::validate::check_labels("Labels", spec.labels.keys())?;
    match spec.templating.as_deref() {
        None | Some(TEMPLATE_GOLANG) => Ok(()),
        Some(other) => Err(ControlError::invalid(
            "Templating.Name",
            format!("{other:?}: the only template driver is {TEMPLATE_GOLANG:?}"),
        )),
    }
}

/// Every reference of a spec, with its kind, mutably.
fn refs_mut(spec: &mut ServiceSpec) -> impl Iterator<Item = (PayloadKind, usize, &mut FileRef)> {
    let c = &mut spec.task.container;
    c.secrets
        .iter_mut()
        .enumerate()
        .map(|(i, r)| (PayloadKind::Secret, i, r))
        .chain(
            c.configs
                .iter_mut()
                .enumerate()
                .map(|(i, r)| (PayloadKind::Config, i, r)),
        )
}

fn refs(c: &ContainerSpec) -> impl Iterator<Item = (PayloadKind, &FileRef)> {
    c.secrets
        .iter()
        .map(|r| (PayloadKind::Secret, r))
        .chain(c.configs.iter().map(|r| (PayloadKind::Config, r)))
}

fn field(kind: PayloadKind, i: usize, name: &str) -> String {
    let list = match kind {
        PayloadKind::Secret => "Secrets",
        PayloadKind::Config => "Configs",
    };
    format!("TaskTemplate.ContainerSpec.{list}[{i}].{name}")
}

fn numeric_id(kind: PayloadKind, i: usize, name: &str, v: &mut String) -> Result<(), ControlError> {
    if v.is_empty() {
        *v = "0".into();
    }
    v.parse::<u32>().map(|_| ()).map_err(|_| {
        ControlError::invalid(
            field(kind, i, name),
            format!("{v:?}: expected a numeric ID"),
        )
    })
}

impl Control {
    /// By full ID, then name, then unambiguous ID prefix, as Docker resolves secrets.
    pub fn find_payload(
        view: &State,
        kind: PayloadKind,
        key: &str,
    ) -> Result<Arc<Payload>, ControlError> {
        if let Some(p) = view.payload(kind, &Id::from_raw(key)) {
            return Ok(p.clone());
        }
        if let Some(p) = view.payload_by_name(kind, key) {
            return Ok(p.clone());
        }
        unique_prefix(
            kind.as_str(),
            key,
            view.payloads(kind)
                .filter(|p| p.id.as_str().starts_with(key))
                .cloned(),
        )
    }

    pub async fn create_payload(
        &self,
        kind: PayloadKind,
        spec: PayloadSpec,
        data: payload::Bytes,
    ) -> Result<Arc<Payload>, ControlError> {
        check_spec(&spec)?;
        check_data(&spec, data.as_slice())?;
        if self.view().payload_by_name(kind, &spec.name).is_some() {
            return Err(ControlError::Conflict(format!(
                "{} {:?} already exists",
                kind.as_str(),
                spec.name
            )));
        }
        let p = Payload {
            id: self.next_id(),
            meta: Default::default(),
            kind,
            spec,
            versions: vec![PayloadVersion {
                version: 1,
                data,
                created_at: self.clock.now(),
            }],
        };
        let id = p.id.clone();
        self.write(vec![Op::CreatePayload(p)]).await?;
        self.view()
            .payload(kind, &id)
            .cloned()
            .ok_or_else(|| ControlError::Internal(format!("created {} vanished", kind.as_str())))
    }

    /// Swarm's update: only the labels may change.
    pub async fn update_payload_labels(
        &self,
        kind: PayloadKind,
        key: &str,
        version: u64,
        spec: PayloadSpec,
    ) -> Result<Arc<Payload>, ControlError> {
        let cur = Self::find_payload(&self.view(), kind, key)?;
        if cur.meta.version != version {
            return Err(ControlError::Conflict(format!(
                "update out of sequence: {} {} is at version {}, the update was based on version {version}; inspect it and retry",
                kind.as_str(),
                cur.spec.name,
                cur.meta.version
            )));
        }
        if spec.name != cur.spec.name || spec.templating != cur.spec.templating {
            return Err(ControlError::invalid(
                "Spec",
                format!(
                    "only updates to Labels are allowed (use `shoal {} rotate` to change the data)",
                    kind.as_str()
                ),
            ));
        }
        crate::validate::check_labels("Labels", spec.labels.keys())?;
        let mut next = (*cur).clone();
        next.spec.labels = spec.labels;
        self.write(vec![Op::UpdatePayload {
            payload: next,
            expect_version: Some(version),
        }])
        .await?;
        Self::find_payload(&self.view(), kind, cur.id.as_str())
    }

    /// Beyond Swarm: a new version under the same name and ID; every service that follows the
    /// newest version moves to it in the same write, as an ordinary spec change, so the
    /// orchestrator rolls it with its update policy (and `service rollback` returns to the old
    /// version). Versions nothing refers to any more are dropped.
    pub async fn rotate_payload(
        &self,
        kind: PayloadKind,
        key: &str,
        data: payload::Bytes,
    ) -> Result<Rotated, ControlError> {
        let view = self.view();
        let cur = Self::find_payload(&view, kind, key)?;
        check_data(&cur.spec, data.as_slice())?;
        let newest = cur.current().map_or(0, |v| v.version);
        let version = newest + 1;
        let mut ops = Vec::new();
        let mut rolled = Vec::new();
        for s in view.services() {
            let follows =
                refs(&s.spec.task.container).any(|(k, r)| k == kind && r.id == cur.id && !r.pinned);
            if !follows {
                continue;
            }
            let mut next: Service = (**s).clone();
            for (k, _, r) in refs_mut(&mut next.spec) {
                if k == kind && r.id == cur.id && !r.pinned {
                    r.version = version;
                }
            }
            next.previous_spec = Some(s.spec.clone());
            next.update_status = None;
            rolled.push(s.id.clone());
            ops.push(Op::UpdateService {
                service: next,
                expect_version: Some(s.meta.version),
            });
        }
        let mut next = (*cur).clone();
        next.versions.push(PayloadVersion {
            version,
            data,
            created_at: self.clock.now(),
        });
        let kept = versions_in_use(&view, &cur.id, &ops);
        next.versions
            .retain(|v| v.version == version || kept.contains(&v.version));
        let mut all = vec![Op::UpdatePayload {
            payload: next,
            expect_version: Some(cur.meta.version),
        }];
        all.extend(ops);
        self.write(all).await?;
        Ok(Rotated {
            payload: Self::find_payload(&self.view(), kind, cur.id.as_str())?,
            version,
            services: rolled,
        })
    }

    pub async fn remove_payload(&self, kind: PayloadKind, key: &str) -> Result<(), ControlError> {
        let view = self.view();
        let cur = Self::find_payload(&view, kind, key)?;
        let users = view.payload_users(&cur.id, None);
        if !users.is_empty() {
            return Err(ControlError::FailedPrecondition(format!(
                "{} {:?} is in use by the following service(s): {}",
                kind.as_str(),
                cur.spec.name,
                users.join(", ")
            )));
        }
        self.write(vec![Op::DeletePayload {
            kind,
            id: cur.id.clone(),
        }])
        .await
        .map(|_| ())
    }

    /// Turns a spec's secret and config references (by ID, name or ID prefix) into IDs and the
    /// names and versions they stand for, fills in defaults (target = the name, uid and gid 0),
    /// and refuses unknown ones, a version that does not exist, a target outside the task, a
    /// file named twice and a mode beyond 0777.
    pub fn resolve_service_payloads(
        view: &State,
        spec: &mut ServiceSpec,
    ) -> Result<(), ControlError> {
        let mut targets = BTreeSet::new();
        for (kind, i, r) in refs_mut(spec) {
            let key = if r.id.as_str().is_empty() {
                r.name.clone()
            } else {
                r.id.to_string()
            };
            let p = Self::find_payload(view, kind, &key).map_err(|e| match e {
                ControlError::NotFound { .. } => ControlError::invalid(
                    field(kind, i, "ID"),
                    format!("{} {key} not found", kind.as_str()),
                ),
                e => ControlError::invalid(field(kind, i, "ID"), e.to_string()),
            })?;
            r.id = p.id.clone();
            r.name = p.spec.name.clone();
            if r.pinned {
                if p.version(r.version).is_none() {
                    return Err(ControlError::invalid(
                        field(kind, i, "Version"),
                        format!(
                            "{} {:?} has no version {} (it has {})",
                            kind.as_str(),
                            p.spec.name,
                            r.version,
                            p.versions
                                .iter()
                                .map(|v| v.version.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
            } else {
                r.version = p.current().map_or(0, |v| v.version);
            }
            if r.target.is_empty() {
                r.target = p.spec.name.clone();
            }
            payload::check_target(&r.target)
                .map_err(|why| ControlError::invalid(field(kind, i, "File.Name"), why))?;
            if !targets.insert(kind.file_path(&r.target)) {
                return Err(ControlError::invalid(
                    field(kind, i, "File.Name"),
                    format!("{} is the target of two files", kind.file_path(&r.target)),
                ));
            }
            if r.mode > 0o777 {
                return Err(ControlError::invalid(
                    field(kind, i, "File.Mode"),
                    format!("{:o}: expected a file mode of at most 0777", r.mode),
                ));
            }
            numeric_id(kind, i, "File.UID", &mut r.uid)?;
            numeric_id(kind, i, "File.GID", &mut r.gid)?;
        }
        Ok(())
    }
}

/// The versions of payload `id` that something still needs after the rotation `ops` apply:
/// services' specs and previous specs (a rollback returns to them), and tasks not yet ended.
fn versions_in_use(view: &State, id: &Id, ops: &[Op]) -> BTreeSet<u64> {
    let mut kept = BTreeSet::new();
    let mut note = |c: &ContainerSpec| {
        kept.extend(refs(c).filter(|(_, r)| &r.id == id).map(|(_, r)| r.version));
    };
    for s in view.services() {
        note(&s.spec.task.container);
        if let Some(p) = &s.previous_spec {
            note(&p.task.container);
        }
    }
    for op in ops {
        if let Op::UpdateService { service, .. } = op {
            note(&service.spec.task.container);
        }
    }
    for t in view.tasks() {
        if t.status.state < TaskState::Complete && t.desired_state <= TaskState::Running {
            note(&t.spec.container);
        }
    }
    kept
}
