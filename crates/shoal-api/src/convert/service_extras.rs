//! The parts of a service spec that shoal keeps and shows as sent but no runtime applies
//! (`Privileges`, `LogDriver`), the warnings that say so on create and update, as Docker reports
//! what it could not do in `Warnings`; and Docker's spelling of the container spec's health
//! check key, which bollard's model spells otherwise.

use bollard_stubs::models as w;
use shoal_types::container::{AppArmor, CredentialSpec, Privileges, SeLinuxContext, Seccomp};
use shoal_types::service::{LogDriver, ServiceSpec};

use crate::error::ApiError;

pub fn log_driver_in(l: Option<w::TaskSpecLogDriver>) -> Option<LogDriver> {
    l.map(|l| LogDriver {
        name: l.name.unwrap_or_default(),
        options: l.options.unwrap_or_default().into_iter().collect(),
    })
}

pub fn log_driver_out(l: &LogDriver) -> w::TaskSpecLogDriver {
    w::TaskSpecLogDriver {
        name: Some(l.name.clone()),
        options: (!l.options.is_empty()).then(|| l.options.clone().into_iter().collect()),
    }
}

/// The privileges as Docker keeps them. A credential spec must name exactly one source, as
/// Docker requires.
pub fn privileges_in(
    field: &str,
    p: Option<w::TaskSpecContainerSpecPrivileges>,
) -> Result<Option<Privileges>, ApiError> {
    let Some(p) = p else {
        return Ok(None);
    };
    let credential_spec = match p.credential_spec {
        None => None,
        Some(c) => {
            let c = CredentialSpec {
                config: c.config.unwrap_or_default(),
                file: c.file.unwrap_or_default(),
                registry: c.registry.unwrap_or_default(),
            };
            let given: Vec<&str> = [
                ("config", &c.config),
                ("file", &c.file),
                ("registry", &c.registry),
            ]
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(name, _)| name)
            .collect();
            if given.len() != 1 {
                return Err(ApiError::invalid(
                    &format!("{field}.CredentialSpec"),
                    if given.is_empty() {
                        "give one of File, Registry and Config".to_owned()
                    } else {
                        format!(
                            "give only one of File, Registry and Config, got {}",
                            given.join(" and ")
                        )
                    },
                ));
            }
            Some(c)
        }
    };
    Ok(Some(Privileges {
        credential_spec,
        selinux_context: p.se_linux_context.map(|s| SeLinuxContext {
            disable: s.disable.unwrap_or(false),
            user: s.user.unwrap_or_default(),
            role: s.role.unwrap_or_default(),
            kind: s.typ.unwrap_or_default(),
            level: s.level.unwrap_or_default(),
        }),
        seccomp: p.seccomp.map(|s| Seccomp {
            mode: s.mode.map(|m| m.to_string()).unwrap_or_default(),
            profile: s.profile.unwrap_or_default(),
        }),
        app_armor: p.app_armor.map(|a| AppArmor {
            mode: a.mode.map(|m| m.to_string()).unwrap_or_default(),
        }),
        no_new_privileges: p.no_new_privileges.unwrap_or(false),
    }))
}

/// As Docker shows them: every field of a credential spec and an SELinux context, the modes and
/// profile only when set, `NoNewPrivileges` always (and [`docker_container_spec_keys`] adds the
/// objects left out, as nulls).
pub fn privileges_out(p: &Privileges) -> w::TaskSpecContainerSpecPrivileges {
    let set = |s: &String| (!s.is_empty()).then(|| s.clone());
    w::TaskSpecContainerSpecPrivileges {
        credential_spec: p.credential_spec.as_ref().map(|c| {
            w::TaskSpecContainerSpecPrivilegesCredentialSpec {
                config: Some(c.config.clone()),
                file: Some(c.file.clone()),
                registry: Some(c.registry.clone()),
            }
        }),
        se_linux_context: p.selinux_context.as_ref().map(|s| {
            w::TaskSpecContainerSpecPrivilegesSeLinuxContext {
                disable: Some(s.disable),
                user: Some(s.user.clone()),
                role: Some(s.role.clone()),
                typ: Some(s.kind.clone()),
                level: Some(s.level.clone()),
            }
        }),
        // Modes came in as the wire's words, so they parse back.
        seccomp: p
            .seccomp
            .as_ref()
            .map(|s| w::TaskSpecContainerSpecPrivilegesSeccomp {
                mode: s.mode.parse().ok().filter(|_| !s.mode.is_empty()),
                profile: set(&s.profile),
            }),
        app_armor: p
            .app_armor
            .as_ref()
            .map(|a| w::TaskSpecContainerSpecPrivilegesAppArmor {
                mode: a.mode.parse().ok().filter(|_| !a.mode.is_empty()),
            }),
        no_new_privileges: Some(p.no_new_privileges),
    }
}

/// What `spec` asks for that shoal keeps but does not apply, one line per field, for the
/// `Warnings` of a create or update (the docker CLI prints them).
pub fn warnings(spec: &ServiceSpec) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(l) = &spec.task.log_driver
        && (!l.name.is_empty() || !l.options.is_empty())
    {
        let what = if l.name.is_empty() {
            "log options are".to_owned()
        } else {
            format!("the {:?} log driver is", l.name)
        };
        out.push(format!(
            "TaskTemplate.LogDriver: {what} kept in the spec but not used: shoal captures each \
             task's output itself (see docker service logs)"
        ));
    }
    if let Some(p) = &spec.task.container.privileges {
        let asked = p.requested();
        if !asked.is_empty() {
            out.push(format!(
                "TaskTemplate.ContainerSpec.Privileges: {} kept in the spec but not applied: no \
                 shoal runtime sets {} yet",
                asked.join(", "),
                if asked.len() == 1 { "it" } else { "them" }
            ));
        }
    }
    out
}

/// Writes a container spec's JSON as the Docker daemon does (Go's `swarm.ContainerSpec`), where
/// bollard's model differs: the health check is `Healthcheck` (bollard spells it `HealthCheck`,
/// as the Engine API swagger does), and a privileges object carries `CredentialSpec` and
/// `SELinuxContext` even when they are null. Clients reading the JSON as it is (the Python SDK)
/// look for those keys.
pub fn docker_container_spec_keys(container_spec: Option<&mut serde_json::Value>) {
    let Some(obj) = container_spec.and_then(serde_json::Value::as_object_mut) else {
        return;
    };
    if let Some(h) = obj.remove("HealthCheck") {
        obj.insert("Healthcheck".to_owned(), h);
    }
    if let Some(p) = obj
        .get_mut("Privileges")
        .and_then(serde_json::Value::as_object_mut)
    {
        for key in ["CredentialSpec", "SELinuxContext"] {
            p.entry(key).or_insert(serde_json::Value::Null);
        }
    }
}

/// [`docker_container_spec_keys`] for a task spec (`TaskTemplate`, a task's `Spec`).
pub fn docker_task_spec_keys(task_spec: Option<&mut serde_json::Value>) {
    docker_container_spec_keys(task_spec.and_then(|t| t.get_mut("ContainerSpec")));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_spec_keys_are_dockers() {
        let mut t = serde_json::json!({"ContainerSpec": {
            "Image": "x",
            "HealthCheck": {"Test": ["NONE"]},
            "Privileges": {"NoNewPrivileges": false}
        }});
        docker_task_spec_keys(Some(&mut t));
        assert_eq!(
            t,
            serde_json::json!({"ContainerSpec": {
                "Image": "x",
                "Healthcheck": {"Test": ["NONE"]},
                "Privileges": {"CredentialSpec": null, "SELinuxContext": null, "NoNewPrivileges": false}
            }})
        );
        // Nothing to rename, or nothing there: left alone.
        let mut bare = serde_json::json!({"ContainerSpec": {"Image": "x"}});
        docker_task_spec_keys(Some(&mut bare));
        assert_eq!(bare, serde_json::json!({"ContainerSpec": {"Image": "x"}}));
        docker_task_spec_keys(None);
    }

    #[test]
    fn a_credential_spec_names_one_source() {
        let with = |c: w::TaskSpecContainerSpecPrivilegesCredentialSpec| {
            privileges_in(
                "P",
                Some(w::TaskSpecContainerSpecPrivileges {
                    credential_spec: Some(c),
                    ..Default::default()
                }),
            )
        };
        let none = with(Default::default()).expect_err("refused");
        assert_eq!(
            none.message,
            "P.CredentialSpec: give one of File, Registry and Config"
        );
        let two = with(w::TaskSpecContainerSpecPrivilegesCredentialSpec {
            file: Some("a.json".into()),
            registry: Some("r".into()),
            config: None,
        })
        .expect_err("refused");
        assert_eq!(
            two.message,
            "P.CredentialSpec: give only one of File, Registry and Config, got file and registry"
        );
        let one = with(w::TaskSpecContainerSpecPrivilegesCredentialSpec {
            config: Some("cfg".into()),
            file: Some(String::new()),
            registry: None,
        })
        .expect("accepted")
        .expect("kept");
        assert_eq!(
            one.credential_spec.map(|c| c.config).as_deref(),
            Some("cfg")
        );
    }
}
