//! Secrets and configs on the wire: Docker's `SecretSpec`/`ConfigSpec` in, `Secret`/`Config`
//! out (a secret's data never; a config's as Docker returns it), and a service's references to
//! them. shoal's one addition is versions: `"Version": N` in a reference pins version N (and is
//! shown on a pinned reference, so a client that reads a spec and writes it back keeps the pin;
//! clients that do not know it see Docker's shapes unchanged), and `DataVersion` on a payload.

use base64::Engine as _;
use bollard_stubs::models as w;
use serde_json::Value;
use shoal_types::payload::{self, DEFAULT_MODE, FileRef, Payload, PayloadKind, PayloadSpec};
use shoal_types::service::{ContainerSpec, ServiceSpec};
use shoal_types::{Id, TaskSpec};

use super::{labels_in, labels_out, time, version};
use crate::error::ApiError;

/// A create request, secret or config (a config has no `Driver`).
pub struct PayloadIn {
    pub spec: PayloadSpec,
    pub data: payload::Bytes,
}

fn data_in(data: Option<String>) -> Result<payload::Bytes, ApiError> {
    let text = zeroize::Zeroizing::new(data.unwrap_or_default());
    base64::engine::general_purpose::STANDARD
        .decode(text.as_bytes())
        .map(payload::Bytes::new)
        .map_err(|e| ApiError::invalid("Data", format!("not valid base64: {e}")))
}

fn templating_in(t: Option<w::Driver>) -> Option<String> {
    t.map(|d| d.name).filter(|n| !n.is_empty())
}

pub fn secret_in(s: w::SecretSpec) -> Result<PayloadIn, ApiError> {
    if let Some(d) = s.driver.as_ref().filter(|d| !d.name.is_empty()) {
        return Err(ApiError::invalid(
            "Driver",
            format!(
                "{:?}: external secret drivers are not supported by shoal; secrets are kept in the cluster's encrypted Raft log",
                d.name
            ),
        ));
    }
    Ok(PayloadIn {
        spec: PayloadSpec {
            name: s.name.unwrap_or_default(),
            labels: labels_in(s.labels),
            templating: templating_in(s.templating),
        },
        data: data_in(s.data)?,
    })
}

pub fn config_in(s: w::ConfigSpec) -> Result<PayloadIn, ApiError> {
    Ok(PayloadIn {
        spec: PayloadSpec {
            name: s.name.unwrap_or_default(),
            labels: labels_in(s.labels),
            templating: templating_in(s.templating),
        },
        data: data_in(s.data)?,
    })
}

/// A secret or config as `GET /secrets/{id}` and `GET /configs/{id}` show it.
pub fn payload_out(p: &Payload) -> Value {
    let mut spec = serde_json::json!({
        "Name": p.spec.name,
        "Labels": labels_out(&p.spec.labels),
    });
    if let Some(t) = &p.spec.templating {
        spec["Templating"] = serde_json::json!({ "Name": t });
    }
    if p.kind == PayloadKind::Config
        && let Some(v) = p.current()
    {
        spec["Data"] =
            Value::String(base64::engine::general_purpose::STANDARD.encode(v.data.as_slice()));
    }
    serde_json::json!({
        "ID": p.id.to_string(),
        "Version": version(p.meta.version),
        "CreatedAt": time(p.meta.created_at),
        "UpdatedAt": time(p.meta.updated_at),
        "Spec": spec,
        "DataVersion": p.current().map_or(0, |v| v.version),
    })
}

fn field(kind: PayloadKind, i: usize) -> String {
    match kind {
        PayloadKind::Secret => format!("TaskTemplate.ContainerSpec.Secrets[{i}]"),
        PayloadKind::Config => format!("TaskTemplate.ContainerSpec.Configs[{i}]"),
    }
}

/// A reference's file as the wire gives it: name (target), UID, GID, mode.
type WireFile = (Option<String>, Option<String>, Option<String>, Option<u32>);

fn ref_in(
    kind: PayloadKind,
    i: usize,
    id: Option<String>,
    name: Option<String>,
    file: Option<WireFile>,
) -> Result<FileRef, ApiError> {
    let (id, name) = (id.unwrap_or_default(), name.unwrap_or_default());
    if id.is_empty() && name.is_empty() {
        return Err(ApiError::invalid(
            &field(kind, i),
            format!("a {}ID or {}Name is required", title(kind), title(kind)),
        ));
    }
    let Some((target, uid, gid, mode)) = file else {
        // Docker's runtime-only configs (credential specs) have no file.
        return Err(ApiError::invalid(
            &format!("{}.File", field(kind, i)),
            "a file is required (shoal gives secrets and configs to tasks as files)",
        ));
    };
    Ok(FileRef {
        id: Id::from_raw(&id),
        name,
        version: 0,
        pinned: false,
        target: target.unwrap_or_default(),
        uid: uid.unwrap_or_default(),
        gid: gid.unwrap_or_default(),
        mode: mode.unwrap_or(DEFAULT_MODE),
    })
}

fn title(kind: PayloadKind) -> &'static str {
    match kind {
        PayloadKind::Secret => "Secret",
        PayloadKind::Config => "Config",
    }
}

pub fn secrets_in(
    s: Option<Vec<w::TaskSpecContainerSpecSecrets>>,
) -> Result<Vec<FileRef>, ApiError> {
    s.unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            ref_in(
                PayloadKind::Secret,
                i,
                r.secret_id,
                r.secret_name,
                r.file.map(|f| (f.name, f.uid, f.gid, f.mode)),
            )
        })
        .collect()
}

pub fn configs_in(
    c: Option<Vec<w::TaskSpecContainerSpecConfigs>>,
) -> Result<Vec<FileRef>, ApiError> {
    c.unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            if r.runtime.is_some() && r.file.is_none() {
                return Err(ApiError::invalid(
                    &format!("{}.Runtime", field(PayloadKind::Config, i)),
                    "runtime configs (credential specs) are Windows-only and not supported",
                ));
            }
            ref_in(
                PayloadKind::Config,
                i,
                r.config_id,
                r.config_name,
                r.file.map(|f| (f.name, f.uid, f.gid, f.mode)),
            )
        })
        .collect()
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

pub fn secrets_out(refs: &[FileRef]) -> Option<Vec<w::TaskSpecContainerSpecSecrets>> {
    (!refs.is_empty()).then(|| {
        refs.iter()
            .map(|r| w::TaskSpecContainerSpecSecrets {
                file: Some(w::TaskSpecContainerSpecFile {
                    name: Some(r.target.clone()),
                    uid: non_empty(&r.uid),
                    gid: non_empty(&r.gid),
                    mode: Some(r.mode),
                }),
                secret_id: Some(r.id.to_string()),
                secret_name: Some(r.name.clone()),
            })
            .collect()
    })
}

pub fn configs_out(refs: &[FileRef]) -> Option<Vec<w::TaskSpecContainerSpecConfigs>> {
    (!refs.is_empty()).then(|| {
        refs.iter()
            .map(|r| w::TaskSpecContainerSpecConfigs {
                file: Some(w::TaskSpecContainerSpecFile1 {
                    name: Some(r.target.clone()),
                    uid: non_empty(&r.uid),
                    gid: non_empty(&r.gid),
                    mode: Some(r.mode),
                }),
                runtime: None,
                config_id: Some(r.id.to_string()),
                config_name: Some(r.name.clone()),
            })
            .collect()
    })
}

/// The `"Version"` of each reference in a raw service spec body (`TaskTemplate.ContainerSpec`),
/// applied as pins to the spec parsed from it: N pins version N, 0 follows the newest. A
/// reference without one keeps the pin the same reference (payload and target) has in
/// `current`, the spec it replaces: the docker CLI reads a spec and writes it back without the
/// field it does not know, and must not unpin what it never saw.
pub fn pins_in(
    raw: &[u8],
    spec: &mut ServiceSpec,
    current: Option<&ServiceSpec>,
) -> Result<(), ApiError> {
    let Ok(v) = serde_json::from_slice::<Value>(raw) else {
        return Ok(());
    };
    let empty = ContainerSpec::default();
    let cur = current.map_or(&empty, |c| &c.task.container);
    let c = &mut spec.task.container;
    for (kind, list, refs, before) in [
        (PayloadKind::Secret, "Secrets", &mut c.secrets, &cur.secrets),
        (PayloadKind::Config, "Configs", &mut c.configs, &cur.configs),
    ] {
        for (i, r) in refs.iter_mut().enumerate() {
            let ptr = format!("/TaskTemplate/ContainerSpec/{list}/{i}/Version");
            match v.pointer(&ptr) {
                None | Some(Value::Null) => {
                    let same = |b: &&FileRef| {
                        b.pinned
                            && b.target == r.target
                            && (b.id == r.id || (r.id.as_str().is_empty() && b.name == r.name))
                    };
                    if let Some(b) = before.iter().find(same) {
                        r.version = b.version;
                        r.pinned = true;
                    }
                }
                Some(n) => match n.as_u64() {
                    Some(0) => {}
                    Some(n) => {
                        r.version = n;
                        r.pinned = true;
                    }
                    None => {
                        return Err(ApiError::invalid(
                            &format!("{}.Version", field(kind, i)),
                            format!("expected a version number (0: follow the newest), got {n}"),
                        ));
                    }
                },
            }
        }
    }
    Ok(())
}

/// Adds `"Version"` to the references of a spec as shown at `at` (a JSON pointer to a
/// `ContainerSpec`): for a service's spec only where pinned, for a task's always (which
/// version it was given).
pub fn pins_out(out: &mut Value, at: &str, c: &ContainerSpec, all: bool) {
    for (list, refs) in [("Secrets", &c.secrets), ("Configs", &c.configs)] {
        for (i, r) in refs.iter().enumerate() {
            if !(all || r.pinned) {
                continue;
            }
            if let Some(Value::Object(o)) = out.pointer_mut(&format!("{at}/{list}/{i}")) {
                o.insert("Version".into(), Value::from(r.version));
            }
        }
    }
}

/// [`pins_out`] for a service as `GET /services` shows it: its spec and previous spec.
pub fn service_pins_out(out: &mut Value, spec: &ServiceSpec, previous: Option<&ServiceSpec>) {
    pins_out(
        out,
        "/Spec/TaskTemplate/ContainerSpec",
        &spec.task.container,
        false,
    );
    if let Some(p) = previous {
        pins_out(
            out,
            "/PreviousSpec/TaskTemplate/ContainerSpec",
            &p.task.container,
            false,
        );
    }
}

/// [`pins_out`] for a task: the version each of its files was given.
pub fn task_pins_out(out: &mut Value, spec: &TaskSpec) {
    pins_out(out, "/Spec/ContainerSpec", &spec.container, true);
}
