//! [`convert`]: a [`Project`] to what `docker stack deploy` creates, as Docker Engine API bodies
//! (bollard's wire types), field for field what docker's `cli/compose/convert` sends. Fields that
//! Go sends even when empty (`ForceUpdate: 0`, an update config's `Order: ""`, a network's
//! `Scope: ""`) are set, and fields Go leaves out (`omitempty`) are `None`, so the JSON matches
//! docker's byte for byte up to key order.
//!
//! Objects are named `<stack>_<name>` unless the file gives a `name`; everything carries the
//! `com.docker.stack.namespace` label. Lists are sorted by name (docker walks Go maps, in no
//! order). Secret and config references carry names only: the IDs are the daemon's, looked up
//! by the deploy command (docker's `ParseSecrets`/`ParseConfigs`) once the objects exist.

mod network;
mod payload;
mod service;
mod task;

use bollard_stubs::models::{ConfigSpec, NetworkCreateRequest, SecretSpec, ServiceSpec};
use shoal_types::stack::Dependency;

use crate::error::{Error, Errors, Location};
use crate::model::Project;
use crate::{Files, Options};

/// Everything one deploy creates or updates, in docker's order: networks, secrets, configs,
/// services.
#[derive(Debug, Clone, PartialEq)]
pub struct Stack {
    pub networks: Vec<StackNetwork>,
    pub secrets: Vec<StackPayload<SecretSpec>>,
    pub configs: Vec<StackPayload<ConfigSpec>>,
    pub services: Vec<StackService>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StackNetwork {
    /// The full name (`<stack>_<name>`, or the file's `name`).
    pub name: String,
    /// An external network is not created; it must exist (swarm-scoped) before the deploy.
    /// Its `create` holds only the name.
    pub external: bool,
    pub create: NetworkCreateRequest,
}

/// A secret (`S` = [`SecretSpec`]) or a config ([`ConfigSpec`]).
#[derive(Debug, Clone, PartialEq)]
pub struct StackPayload<S = SecretSpec> {
    pub name: String,
    /// An external one is not created (docker skips it); its `spec` holds only the name.
    pub external: bool,
    pub spec: S,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StackService {
    /// `<stack>_<service>`.
    pub name: String,
    pub spec: ServiceSpec,
    /// Start order (full service names); also in the spec's labels under
    /// [`shoal_types::stack::DEPENDS_ON_LABEL`].
    pub depends_on: Vec<Dependency>,
}

/// Converts `project` for the stack `namespace`, reading secret and config files through `fs`
/// and `environment:` sources from `opts` (the process environment, then `.env` when asked).
pub fn convert(
    project: &Project,
    namespace: &str,
    fs: &dyn Files,
    opts: &Options,
) -> Result<Stack, Errors> {
    let mut errors = Vec::new();
    let ns = Namespace(namespace);
    let networks = network::networks(project, ns);
    let secrets = payload::secrets(project, ns, fs, opts, &mut errors);
    let configs = payload::configs(project, ns, fs, opts, &mut errors);
    let mut services = Vec::new();
    for (name, svc) in &project.services {
        if let Some(s) = service::service(project, ns, name, svc, &mut errors) {
            services.push(s);
        }
    }
    if !errors.is_empty() {
        return Err(Errors(errors));
    }
    Ok(Stack {
        networks,
        secrets,
        configs,
        services,
    })
}

/// docker's `convert.Namespace`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Namespace<'a>(pub &'a str);

impl Namespace<'_> {
    pub fn scope(&self, name: &str) -> String {
        format!("{}_{name}", self.0)
    }

    /// `labels` with the namespace label added.
    pub fn labels(
        &self,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> std::collections::HashMap<String, String> {
        let mut out: std::collections::HashMap<String, String> =
            labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        out.insert(
            shoal_types::stack::NAMESPACE_LABEL.to_string(),
            self.0.to_string(),
        );
        out
    }
}

pub(crate) fn err(errors: &mut Vec<Error>, at: &Location, key: String, message: impl Into<String>) {
    let at = (!at.file.is_empty()).then(|| at.clone());
    errors.push(Error::new(at, key, message));
}

/// `Some(v)` unless `v` is empty: Go's `omitempty`.
pub(crate) fn nonempty<T: IsEmpty>(v: T) -> Option<T> {
    (!v.is_empty()).then_some(v)
}

pub(crate) trait IsEmpty {
    fn is_empty(&self) -> bool;
}

impl<T> IsEmpty for Vec<T> {
    fn is_empty(&self) -> bool {
        Vec::is_empty(self)
    }
}

impl IsEmpty for String {
    fn is_empty(&self) -> bool {
        String::is_empty(self)
    }
}

impl<K, V> IsEmpty for std::collections::HashMap<K, V> {
    fn is_empty(&self) -> bool {
        std::collections::HashMap::is_empty(self)
    }
}
