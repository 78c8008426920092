//! The paths of one group-version's document and their operations, as Kubernetes writes them:
//! the collection (`list`, `post`, `deletecollection`), the object (`get`, `put`, `patch`,
//! `delete`), the all-namespaces list of namespaced kinds, and subresources (`/scale`). Every
//! operation names the kind it serves (`x-kubernetes-group-version-kind`, the item kind for
//! lists) and Kubernetes' `x-kubernetes-action`; every write declares `fieldValidation`.

use serde_json::{Map, Value, json};

use super::{gvk, schema_ref};
use crate::registry::{ResourceInfo, Subresource};

/// What every operation of one document shares.
pub(super) struct GroupVersion {
    /// Component names of `meta.v1` Patch, Status and DeleteOptions.
    patch: String,
    status: String,
    delete_options: String,
    /// `apps_v1`, `core_v1`.
    tag: String,
    /// `AppsV1`, `CoreV1`: the middle of Kubernetes' operation ids.
    op_prefix: String,
}

/// What operations act on: a kind's objects, or one subresource of them.
struct Target<'a> {
    kind: &'a str,
    /// `the specified Deployment`, `scale of the specified Deployment`.
    what: String,
    /// `NamespacedDeployment`, `NamespacedDeploymentScale`: the tail of operation ids.
    op_kind: String,
    gvk: Value,
    schema: &'a str,
    list: &'a str,
}

/// One operation, before it is written out.
struct Spec<'a> {
    on_collection: bool,
    /// The HTTP method, lowercase.
    method: &'static str,
    action: &'static str,
    id: String,
    description: String,
    params: Vec<Value>,
    body: Option<Value>,
    response: &'a str,
    codes: &'static [u16],
}

impl GroupVersion {
    pub(super) fn new(
        group: &str,
        version: &str,
        patch: String,
        status: String,
        delete_options: String,
    ) -> GroupVersion {
        let group = if group.is_empty() { "core" } else { group };
        let short = group.split('.').next().unwrap_or(group);
        GroupVersion {
            patch,
            status,
            delete_options,
            tag: format!("{}_{version}", group.replace('.', "_")),
            op_prefix: format!("{}{}", camel(short), camel(version)),
        }
    }

    /// The paths of kind `r`, whose schema is `schema` and list schema `list`.
    pub(super) fn add_resource(
        &self,
        paths: &mut Map<String, Value>,
        r: &ResourceInfo,
        schema: &str,
        list: &str,
    ) {
        let ns = if r.namespaced { "Namespaced" } else { "" };
        let target = Target {
            kind: r.kind,
            what: format!("the specified {}", r.kind),
            op_kind: format!("{ns}{}", r.kind),
            gvk: gvk(r.group, r.version, r.kind),
            schema,
            list,
        };
        let (mut collection, mut item) = (Map::new(), Map::new());
        for verb in r.verbs {
            if let Some((on_collection, method, op)) = self.operation(&target, verb) {
                let ops = if on_collection {
                    &mut collection
                } else {
                    &mut item
                };
                ops.insert(method.into(), op);
            }
        }
        if let (true, Some(list)) = (r.namespaced, collection.get("get")) {
            let mut list = list.clone();
            list["operationId"] =
                json!(format!("list{}{}ForAllNamespaces", self.op_prefix, r.kind));
            let all = json!({ "get": list, "parameters": [pretty()] });
            paths.insert(format!("{}/{}", r.prefix(), r.plural), all);
        }
        if !collection.is_empty() {
            collection.insert("parameters".into(), path_params(r, false));
            paths.insert(collection_path(r), Value::Object(collection));
        }
        if !item.is_empty() {
            item.insert("parameters".into(), path_params(r, true));
            paths.insert(item_path(r), Value::Object(item));
        }
    }

    /// The path of subresource `sub` of kind `r`, whose schema is `schema`.
    pub(super) fn add_subresource(
        &self,
        paths: &mut Map<String, Value>,
        r: &ResourceInfo,
        sub: &Subresource,
        schema: &str,
    ) {
        let ns = if r.namespaced { "Namespaced" } else { "" };
        let target = Target {
            kind: r.kind,
            what: format!("{} of the specified {}", sub.name, r.kind),
            op_kind: format!("{ns}{}{}", r.kind, camel(sub.name)),
            gvk: gvk(sub.group, sub.version, sub.kind),
            schema,
            list: schema,
        };
        let mut ops = Map::new();
        for verb in sub.verbs {
            if let Some((false, method, op)) = self.operation(&target, verb) {
                ops.insert(method.into(), op);
            }
        }
        ops.insert("parameters".into(), path_params(r, true));
        paths.insert(format!("{}/{}", item_path(r), sub.name), Value::Object(ops));
    }

    /// The operation for `verb`: whether it is on the collection, its HTTP method, and itself.
    fn operation(&self, t: &Target, verb: &str) -> Option<(bool, &'static str, Value)> {
        let (p, k) = (&self.op_prefix, &t.op_kind);
        let spec = match verb {
            "list" => Spec {
                on_collection: true,
                method: "get",
                action: "list",
                id: format!("list{p}{k}"),
                description: format!("list or watch objects of kind {}", t.kind),
                params: list_params(),
                body: None,
                response: t.list,
                codes: &[200],
            },
            "create" => Spec {
                on_collection: true,
                method: "post",
                action: "post",
                id: format!("create{p}{k}"),
                description: format!("create a {}", t.kind),
                params: write_params(false),
                body: Some(body(t.schema, true)),
                response: t.schema,
                codes: &[200, 201, 202],
            },
            "deletecollection" => Spec {
                on_collection: true,
                method: "delete",
                action: "deletecollection",
                id: format!("delete{p}Collection{k}"),
                description: format!("delete collection of {}", t.kind),
                params: [list_params(), delete_params()].concat(),
                body: Some(body(&self.delete_options, false)),
                response: &self.status,
                codes: &[200],
            },
            "get" => Spec {
                on_collection: false,
                method: "get",
                action: "get",
                id: format!("read{p}{k}"),
                description: format!("read {}", t.what),
                params: Vec::new(),
                body: None,
                response: t.schema,
                codes: &[200],
            },
            "update" => Spec {
                on_collection: false,
                method: "put",
                action: "put",
                id: format!("replace{p}{k}"),
                description: format!("replace {}", t.what),
                params: write_params(false),
                body: Some(body(t.schema, true)),
                response: t.schema,
                codes: &[200, 201],
            },
            "patch" => Spec {
                on_collection: false,
                method: "patch",
                action: "patch",
                id: format!("patch{p}{k}"),
                description: format!("partially update {}", t.what),
                params: write_params(true),
                body: Some(self.patch_body()),
                response: t.schema,
                codes: &[200, 201],
            },
            "delete" => Spec {
                on_collection: false,
                method: "delete",
                action: "delete",
                id: format!("delete{p}{k}"),
                description: format!("delete {}", t.what),
                params: delete_params(),
                body: Some(body(&self.delete_options, false)),
                response: &self.status,
                codes: &[200, 202],
            },
            _ => return None,
        };
        Some((spec.on_collection, spec.method, self.render(t, spec)))
    }

    fn render(&self, t: &Target, spec: Spec) -> Value {
        let mut op = json!({
            "tags": [self.tag],
            "description": spec.description,
            "operationId": spec.id,
            "responses": responses(spec.response, spec.codes),
            "x-kubernetes-action": spec.action,
            "x-kubernetes-group-version-kind": t.gvk,
        });
        if !spec.params.is_empty() {
            op["parameters"] = Value::Array(spec.params);
        }
        if let Some(body) = spec.body {
            op["requestBody"] = body;
        }
        op
    }

    /// The patch types Kubernetes accepts; listing strategic merge patch sends kubectl's apply
    /// to the component schemas' patch strategies.
    fn patch_body(&self) -> Value {
        let patch = json!({ "schema": schema_ref(&self.patch) });
        let content: Map<String, Value> = [
            "application/apply-patch+yaml",
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
        ]
        .into_iter()
        .map(|t| (t.to_string(), patch.clone()))
        .collect();
        json!({ "content": content, "required": true })
    }
}

/// A request body of any content type, holding `schema`.
fn body(schema: &str, required: bool) -> Value {
    json!({ "content": { "*/*": { "schema": schema_ref(schema) } }, "required": required })
}

fn camel(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn collection_path(r: &ResourceInfo) -> String {
    if r.namespaced {
        format!("{}/namespaces/{{namespace}}/{}", r.prefix(), r.plural)
    } else {
        format!("{}/{}", r.prefix(), r.plural)
    }
}

fn item_path(r: &ResourceInfo) -> String {
    format!("{}/{{name}}", collection_path(r))
}

/// `schema` for each success code, and 401, as Kubernetes lists them.
fn responses(schema: &str, codes: &[u16]) -> Value {
    let content = json!({
        "application/json": { "schema": schema_ref(schema) },
        "application/yaml": { "schema": schema_ref(schema) },
    });
    let mut out = Map::new();
    for code in codes {
        let description = match code {
            201 => "Created",
            202 => "Accepted",
            _ => "OK",
        };
        out.insert(
            code.to_string(),
            json!({ "description": description, "content": content }),
        );
    }
    out.insert("401".into(), json!({ "description": "Unauthorized" }));
    Value::Object(out)
}

fn query(name: &str, ty: &str, description: &str) -> Value {
    json!({
        "name": name,
        "in": "query",
        "description": description,
        "schema": { "type": ty, "uniqueItems": true },
    })
}

fn pretty() -> Value {
    query(
        "pretty",
        "string",
        "If 'true', then the output is pretty printed.",
    )
}

/// The path-level parameters: `{name}` on object paths, `{namespace}` for namespaced kinds.
fn path_params(r: &ResourceInfo, item: bool) -> Value {
    let path = |name: &str, description: String| {
        json!({
            "name": name,
            "in": "path",
            "description": description,
            "required": true,
            "schema": { "type": "string", "uniqueItems": true },
        })
    };
    let mut out = Vec::new();
    if item {
        out.push(path("name", format!("name of the {}", r.kind)));
    }
    if r.namespaced {
        let scope = "object name and auth scope, such as for teams and projects";
        out.push(path("namespace", scope.into()));
    }
    out.push(pretty());
    Value::Array(out)
}

const DRY_RUN: &str = "When present, indicates that modifications should not be persisted. \
    An invalid or unrecognized dryRun directive will result in an error response and no further \
    processing of the request. Valid values are: - All: all dry run stages will be processed";

fn write_params(patch: bool) -> Vec<Value> {
    let mut out = vec![
        query("dryRun", "string", DRY_RUN),
        query(
            "fieldManager",
            "string",
            "fieldManager is a name associated with the actor or entity that is making these \
             changes. The value must be less than or 128 characters long, and only contain \
             printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint.",
        ),
        query(
            "fieldValidation",
            "string",
            "fieldValidation instructs the server on how to handle objects in the request \
             (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore \
             - Warn - Strict: This will fail the request with a BadRequest error if any unknown \
             fields would be dropped from the object, or if any duplicate fields are present.",
        ),
    ];
    if patch {
        let force = "Force is going to \"force\" Apply requests. It means user will re-acquire \
            conflicting fields owned by other people. Force flag must be unset for non-apply \
            patch requests.";
        out.push(query("force", "boolean", force));
    }
    out
}

fn delete_params() -> Vec<Value> {
    vec![
        query("dryRun", "string", DRY_RUN),
        query(
            "gracePeriodSeconds",
            "integer",
            "The duration in seconds before the object should be deleted. Value must be \
             non-negative integer. The value zero indicates delete immediately.",
        ),
        query(
            "propagationPolicy",
            "string",
            "Whether and how garbage collection will be performed. Acceptable values are: \
             'Orphan', 'Background', 'Foreground'.",
        ),
    ]
}

fn list_params() -> Vec<Value> {
    [
        (
            "allowWatchBookmarks",
            "boolean",
            "Requests watch events of type \"BOOKMARK\".",
        ),
        (
            "continue",
            "string",
            "Continues a list where a limited one stopped.",
        ),
        (
            "fieldSelector",
            "string",
            "Restricts the returned objects by their fields.",
        ),
        (
            "labelSelector",
            "string",
            "Restricts the returned objects by their labels.",
        ),
        ("limit", "integer", "The most objects a list call returns."),
        (
            "resourceVersion",
            "string",
            "Which resource versions a request may be served from.",
        ),
        (
            "resourceVersionMatch",
            "string",
            "How resourceVersion applies to list calls.",
        ),
        (
            "sendInitialEvents",
            "boolean",
            "With watch=true, first sends the current objects.",
        ),
        (
            "timeoutSeconds",
            "integer",
            "Timeout for the list/watch call.",
        ),
        (
            "watch",
            "boolean",
            "Streams the changes to the described resources.",
        ),
    ]
    .into_iter()
    .map(|(name, ty, description)| query(name, ty, description))
    .collect()
}
