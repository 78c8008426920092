//! Strategic merge patch (`application/strategic-merge-patch+json`), applied as the Kubernetes
//! API server applies it (apimachinery's `strategicpatch`, server side): what `kubectl apply`,
//! `kubectl patch`, `set image`, `rollout restart` and `cordon` send.
//!
//! - Maps merge recursively; `null` deletes a key (and is dropped where there is nothing to
//!   delete). A value of another JSON type than the original's replaces it.
//! - A list whose field has patch strategy `merge` and a merge key merges element by element on
//!   that key: a patch element whose key is in the original merges into it, one with a new key
//!   is added; `{"$patch": "delete", key: v}` deletes every element with that key;
//!   `{"$patch": "replace"}` makes the patch's other elements the whole list.
//! - A list of primitives with strategy `merge` (`finalizers`) is a union;
//!   `$deleteFromPrimitiveList/<field>` removes values from it (from any list of primitives).
//! - Other lists are replaced whole.
//! - `$patch: replace` in a map replaces the map; `$patch: delete` empties it.
//! - `$retainKeys: [..]` in a map clears the original's keys it does not list; every key the
//!   patch sets must be listed.
//! - `$setElementOrder/<field>` (a merge list's keys as `{key: v}`, or a primitive list's values)
//!   orders the merged list. The order checks against the patch list (its elements must be in
//!   the same relative order).
//! - The order of a merged list, as the API server makes it: elements named by the patch (or
//!   `$setElementOrder`) in that order, the original's others in their order, the two
//!   interleaved by their places in the original list; a patch element the original lacks is
//!   placed at the first point it can be — without `$setElementOrder` a new element goes
//!   *before* the original's (`kubectl apply` always sends the order, so there it lands where
//!   the manifest has it).
//! - A patch value where nothing is merged into (a new key, a replaced list, an added element)
//!   is taken with its directives worked out on nothing: `$patch: delete` maps and list
//!   directives vanish, `$retainKeys`/`$setElementOrder`/`$deleteFromPrimitiveList` are dropped,
//!   and so are null fields. Directives never reach the result.
//! - Any other `$`-key, or `$patch` value, is an error (no Kubernetes field starts with `$`).
//!
//! Deviations from apimachinery, all on inputs `kubectl` does not send: `$patch: replace` on a
//! new key keeps the replacement (apimachinery drops the key); a field the schema does not know
//! merges as a map or is replaced as a list (apimachinery refuses it); a merge key compares as
//! JSON (`80` and `80.0` differ, as they do there); a `$setElementOrder` for an absent or null
//! list is ignored.
//!
//! The merge strategies and keys are `openapi::PATCH_STRATEGIES` (the same the OpenAPI
//! documents give `kubectl`), read along the types of k8s-openapi's JSON schemas: a field's
//! schema is found by following `$ref`s (`allOf`, list `items`, map `additionalProperties`)
//! from the kind's. [`Kind::Other`] has no schema: every list is replaced.
//!
//! Concurrency: pure functions; the schemas are built once, on first use, behind a `OnceLock`.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::{apps::v1 as apps, batch::v1 as batch};
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value};

use crate::openapi::PATCH_STRATEGIES;

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER: &str = "$setElementOrder/";
const DELETE_FROM: &str = "$deleteFromPrimitiveList/";
const SCHEMAS: &str = "#/components/schemas/";
/// Deeper patches are refused rather than recursed into (Kubernetes objects nest ~15 levels).
const MAX_DEPTH: usize = 128;

/// Which schema the top-level object has (the patch strategies are looked up from there, walking
/// nested fields by their types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pod,
    Deployment,
    DaemonSet,
    ReplicaSet,
    Job,
    CronJob,
    Node,
    Namespace,
    ConfigMap,
    Secret,
    Service,
    /// No schema: maps merge, lists are replaced.
    Other,
}

impl Kind {
    /// The kind named `kind` (`"Deployment"`), or [`Kind::Other`].
    pub fn from_name(kind: &str) -> Kind {
        match kind {
            "Pod" => Kind::Pod,
            "Deployment" => Kind::Deployment,
            "DaemonSet" => Kind::DaemonSet,
            "ReplicaSet" => Kind::ReplicaSet,
            "Job" => Kind::Job,
            "CronJob" => Kind::CronJob,
            "Node" => Kind::Node,
            "Namespace" => Kind::Namespace,
            "ConfigMap" => Kind::ConfigMap,
            "Secret" => Kind::Secret,
            "Service" => Kind::Service,
            _ => Kind::Other,
        }
    }
}

/// Why a patch cannot be applied; the message starts with the path in the patch
/// (`spec.template.spec.containers[0]`, list indices being the patch's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmpError {
    /// The patch or the original is not a JSON object.
    #[error("{path}: {what} is not a JSON object")]
    NotAnObject { path: String, what: &'static str },
    /// A `$`-key, or a `$patch` value, that strategic merge patch does not define.
    #[error("{path}: unknown patch directive {directive}")]
    UnknownDirective { path: String, directive: String },
    /// A known directive with a value of the wrong shape, or where it cannot apply.
    #[error("{path}: {directive} {problem}")]
    BadDirective {
        path: String,
        directive: String,
        problem: &'static str,
    },
    /// An element of a list merged by key lacks the key (or is not an object).
    #[error("{path}: the element does not contain the merge key {key:?}")]
    MissingMergeKey { path: String, key: String },
    /// A list of objects merged without a merge key.
    #[error("{path}: a list of objects cannot be merged without a merge key")]
    NoMergeKey { path: String },
    /// A merged list whose elements (original and patch together) differ in JSON type.
    #[error("{path}: the list elements are not all of one JSON type")]
    MixedList { path: String },
    /// A merged list of lists.
    #[error("{path}: lists of lists cannot be merged")]
    ListOfLists { path: String },
    /// A key the patch sets that its `$retainKeys` does not list.
    #[error("{path}: {key:?} is set by the patch but not listed in $retainKeys")]
    NotRetained { path: String, key: String },
    /// The patch list's elements are not in the order `$setElementOrder` gives.
    #[error("{path}: the order of the patch list does not match {directive}")]
    OrderMismatch { path: String, directive: String },
    /// `$setElementOrder` for a field whose patch strategy is not `merge`.
    #[error("{path}: {directive} needs a list with patch strategy merge, which {field:?} is not")]
    NotMergeList {
        path: String,
        directive: String,
        field: String,
    },
    /// Nested deeper than 128 levels.
    #[error("{path}: nested more than {MAX_DEPTH} levels deep")]
    TooDeep { path: String },
}

/// Applies a strategic merge patch to `original` (an object of the given Kubernetes kind, as
/// JSON) and returns the result.
pub fn apply(kind: Kind, original: &Value, patch: &Value) -> Result<Value, SmpError> {
    let root = Path::ROOT;
    let Value::Object(patch) = patch else {
        return Err(SmpError::NotAnObject {
            path: root.render(),
            what: "the patch",
        });
    };
    let Value::Object(original) = original else {
        return Err(SmpError::NotAnObject {
            path: root.render(),
            what: "the original object",
        });
    };
    merge_map(original.clone(), patch, root_schema(kind), &root).map(Value::Object)
}

// ---- paths, for error messages ---------------------------------------------------------------

#[derive(Clone, Copy)]
enum Seg<'a> {
    Root,
    Key(&'a str),
    Index(usize),
}

/// Where in the patch: a chain of segments up to the root, rendered only for an error.
#[derive(Clone, Copy)]
struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    seg: Seg<'a>,
    depth: usize,
}

impl<'a> Path<'a> {
    const ROOT: Path<'static> = Path {
        parent: None,
        seg: Seg::Root,
        depth: 0,
    };

    fn key<'b>(&'b self, key: &'b str) -> Path<'b> {
        Path {
            parent: Some(self),
            seg: Seg::Key(key),
            depth: self.depth + 1,
        }
    }

    fn index(&self, i: usize) -> Path<'_> {
        Path {
            parent: Some(self),
            seg: Seg::Index(i),
            depth: self.depth + 1,
        }
    }

    fn render(&self) -> String {
        let mut segs = Vec::with_capacity(self.depth + 1);
        let mut at = Some(self);
        while let Some(p) = at {
            segs.push(p.seg);
            at = p.parent;
        }
        let mut out = String::new();
        for seg in segs.into_iter().rev() {
            match seg {
                Seg::Root => {}
                Seg::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Seg::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        if out.is_empty() {
            out.push_str("(root)");
        }
        out
    }

    fn check_depth(&self) -> Result<(), SmpError> {
        if self.depth > MAX_DEPTH {
            return Err(SmpError::TooDeep {
                path: self.render(),
            });
        }
        Ok(())
    }
}

fn bad(path: &Path, directive: &str, problem: &'static str) -> SmpError {
    SmpError::BadDirective {
        path: path.render(),
        directive: directive.to_owned(),
        problem,
    }
}

// ---- the schemas -----------------------------------------------------------------------------

type Schema = Option<&'static Value>;

struct Graph {
    /// Component schemas by name, with the patch strategies written into their properties.
    defs: Map<String, Value>,
    roots: Vec<(Kind, String)>,
}

fn graph() -> &'static Graph {
    static GRAPH: OnceLock<Graph> = OnceLock::new();
    GRAPH.get_or_init(|| {
        let mut g = SchemaSettings::openapi3().into_generator();
        let roots = vec![
            (Kind::Pod, named::<core::Pod>(&mut g)),
            (Kind::Deployment, named::<apps::Deployment>(&mut g)),
            (Kind::DaemonSet, named::<apps::DaemonSet>(&mut g)),
            (Kind::ReplicaSet, named::<apps::ReplicaSet>(&mut g)),
            (Kind::Job, named::<batch::Job>(&mut g)),
            (Kind::CronJob, named::<batch::CronJob>(&mut g)),
            (Kind::Node, named::<core::Node>(&mut g)),
            (Kind::Namespace, named::<core::Namespace>(&mut g)),
            (Kind::ConfigMap, named::<core::ConfigMap>(&mut g)),
            (Kind::Secret, named::<core::Secret>(&mut g)),
            (Kind::Service, named::<core::Service>(&mut g)),
        ];
        let mut defs = g.take_definitions(true);
        for (schema, prop, strategy, key) in PATCH_STRATEGIES {
            let name = match schema.strip_prefix("meta.") {
                Some(_) => format!("io.k8s.apimachinery.pkg.apis.{schema}"),
                None => format!("io.k8s.api.{schema}"),
            };
            let property = defs
                .get_mut(&name)
                .and_then(|s| s.pointer_mut(&format!("/properties/{prop}")));
            let Some(Value::Object(p)) = property else {
                continue;
            };
            p.insert("x-kubernetes-patch-strategy".into(), Value::from(*strategy));
            if !key.is_empty() {
                p.insert("x-kubernetes-patch-merge-key".into(), Value::from(*key));
            }
        }
        Graph { defs, roots }
    })
}

fn named<T: JsonSchema>(g: &mut SchemaGenerator) -> String {
    g.subschema_for::<T>();
    T::schema_name().into_owned()
}

fn root_schema(kind: Kind) -> Schema {
    let g = graph();
    let (_, name) = g.roots.iter().find(|(k, _)| *k == kind)?;
    g.defs.get(name)
}

/// Follows `$ref`s (bare, or as the first of an `allOf`, `anyOf` or `oneOf`) to the schema
/// that describes the value.
fn resolve(mut v: &'static Value) -> &'static Value {
    for _ in 0..16 {
        if let Some(r) = v.get("$ref").and_then(Value::as_str) {
            match r.strip_prefix(SCHEMAS).and_then(|n| graph().defs.get(n)) {
                Some(d) => v = d,
                None => return v,
            }
        } else if let Some(first) = ["allOf", "anyOf", "oneOf"]
            .iter()
            .filter_map(|k| v.get(*k).and_then(Value::as_array))
            .find_map(|alts| {
                alts.iter()
                    .find(|a| a.get("type").and_then(Value::as_str) != Some("null"))
            })
        {
            v = first;
        } else {
            return v;
        }
    }
    v
}

/// A field's patch metadata and schema.
#[derive(Debug, Clone, Copy, Default)]
struct Field {
    merge: bool,
    replace: bool,
    key: Option<&'static str>,
    schema: Schema,
}

fn field(schema: Schema, name: &str) -> Field {
    let Some(s) = schema.map(resolve) else {
        return Field::default();
    };
    if let Some(p) = s.get("properties").and_then(|p| p.get(name)) {
        let strategy = p
            .get("x-kubernetes-patch-strategy")
            .and_then(Value::as_str)
            .unwrap_or_default();
        return Field {
            merge: strategy.split(',').any(|s| s == "merge"),
            replace: strategy.split(',').any(|s| s == "replace"),
            key: p
                .get("x-kubernetes-patch-merge-key")
                .and_then(Value::as_str),
            schema: Some(p),
        };
    }
    match s.get("additionalProperties") {
        Some(values @ Value::Object(_)) => Field {
            schema: Some(values),
            ..Field::default()
        },
        _ => Field::default(),
    }
}

/// The schema of a list's elements.
fn items(schema: Schema) -> Schema {
    schema.map(resolve)?.get("items")
}

// ---- directives ------------------------------------------------------------------------------

/// What a key of a patch map is.
#[derive(Clone, Copy)]
enum Key<'a> {
    Patch,
    RetainKeys,
    SetOrder(&'a str),
    DeleteFrom(&'a str),
    Field(&'a str),
}

fn classify<'a>(k: &'a str, path: &Path) -> Result<Key<'a>, SmpError> {
    if !k.starts_with('$') {
        return Ok(Key::Field(k));
    }
    if k == PATCH {
        Ok(Key::Patch)
    } else if k == RETAIN_KEYS {
        Ok(Key::RetainKeys)
    } else if let Some(f) = k.strip_prefix(SET_ORDER) {
        Ok(Key::SetOrder(f))
    } else if let Some(f) = k.strip_prefix(DELETE_FROM) {
        Ok(Key::DeleteFrom(f))
    } else {
        Err(SmpError::UnknownDirective {
            path: path.render(),
            directive: k.to_owned(),
        })
    }
}

enum Directive {
    Replace,
    Delete,
}

/// `$patch` in a map.
fn map_directive(v: &Value, path: &Path) -> Result<Directive, SmpError> {
    match v.as_str() {
        Some("replace") => Ok(Directive::Replace),
        Some("delete") => Ok(Directive::Delete),
        _ => Err(SmpError::UnknownDirective {
            path: path.render(),
            directive: format!("{PATCH}: {v}"),
        }),
    }
}

/// `$patch` in an element of a list.
fn list_directive(v: &Value, path: &Path) -> Result<Directive, SmpError> {
    if v.as_str() == Some("merge") {
        return Err(bad(path, "$patch: merge", "cannot be given for a list"));
    }
    map_directive(v, path)
}

fn retain_list<'v>(v: &'v Value, path: &Path) -> Result<Vec<&'v str>, SmpError> {
    v.as_array()
        .and_then(|a| a.iter().map(Value::as_str).collect::<Option<Vec<_>>>())
        .ok_or_else(|| bad(path, RETAIN_KEYS, "must be a list of field names"))
}

// ---- values placed where nothing merges ------------------------------------------------------

/// The patch value `v` where there is nothing to merge it into: its directives worked out on
/// nothing and its null fields dropped. None: nothing is left (a `$patch: delete` map).
fn clean(v: &Value, path: &Path) -> Result<Option<Value>, SmpError> {
    match v {
        Value::Object(m) => Ok(clean_map(m, path)?.map(Value::Object)),
        Value::Array(a) => Ok(Some(Value::Array(clean_list(a, path)?))),
        other => Ok(Some(other.clone())),
    }
}

fn clean_map(m: &Map<String, Value>, path: &Path) -> Result<Option<Map<String, Value>>, SmpError> {
    path.check_depth()?;
    if let Some(d) = m.get(PATCH)
        && let Directive::Delete = map_directive(d, path)?
    {
        return Ok(None);
    }
    let mut out = Map::new();
    for (k, v) in m {
        match classify(k, path)? {
            Key::Patch => {}
            Key::RetainKeys => {
                retain_list(v, path)?;
            }
            Key::SetOrder(_) | Key::DeleteFrom(_) => {
                if !v.is_array() {
                    return Err(bad(path, k, "must be a list"));
                }
            }
            Key::Field(f) => {
                if v.is_null() {
                    continue;
                }
                if let Some(c) = clean(v, &path.key(f))? {
                    out.insert(f.to_owned(), c);
                }
            }
        }
    }
    Ok(Some(out))
}

/// A list's elements without its directives (`{"$patch": ...}` elements).
fn clean_list(a: &[Value], path: &Path) -> Result<Vec<Value>, SmpError> {
    path.check_depth()?;
    let mut out = Vec::with_capacity(a.len());
    for (i, v) in a.iter().enumerate() {
        let at = path.index(i);
        if let Some(d) = v.get(PATCH) {
            list_directive(d, &at)?;
            continue;
        }
        if let Some(c) = clean(v, &at)? {
            out.push(c);
        }
    }
    Ok(out)
}

// ---- merging ---------------------------------------------------------------------------------

fn merge_map(
    mut orig: Map<String, Value>,
    patch: &Map<String, Value>,
    schema: Schema,
    path: &Path,
) -> Result<Map<String, Value>, SmpError> {
    path.check_depth()?;
    if let Some(d) = patch.get(PATCH) {
        return match map_directive(d, path)? {
            Directive::Delete => Ok(Map::new()),
            Directive::Replace => Ok(clean_map(patch, path)?.unwrap_or_default()),
        };
    }
    let mut keys = Vec::with_capacity(patch.len());
    for (k, v) in patch {
        keys.push((classify(k, path)?, k.as_str(), v));
    }

    if let Some(rk) = patch.get(RETAIN_KEYS) {
        let retain = retain_list(rk, path)?;
        for (key, _, v) in &keys {
            if let Key::Field(f) = key
                && !v.is_null()
                && !retain.contains(f)
            {
                return Err(SmpError::NotRetained {
                    path: path.render(),
                    key: (*f).to_owned(),
                });
            }
        }
        orig.retain(|k, _| retain.contains(&k.as_str()));
    }

    // `$setElementOrder/x` merges `x` too, which the loop below then leaves alone.
    let mut ordered: Vec<&str> = Vec::new();
    for (key, raw, v) in &keys {
        if let Key::SetOrder(name) = *key {
            set_element_order(&mut orig, patch, name, raw, v, schema, path)?;
            ordered.push(name);
        }
    }

    for (key, raw, v) in &keys {
        let (name, delete_from) = match *key {
            Key::Field(f) if !ordered.contains(&f) => (f, false),
            Key::DeleteFrom(f) => (f, true),
            _ => continue,
        };
        let at = path.key(raw);
        if delete_from && !v.is_array() {
            return Err(bad(path, raw, "must be a list"));
        }
        if v.is_null() {
            orig.remove(name);
            continue;
        }
        let replaced = match (orig.get_mut(name), v) {
            (None, _) if delete_from => continue,
            (None, _) => clean(v, &at)?,
            (Some(Value::Object(cur)), Value::Object(p)) => {
                let f = field(schema, name);
                if f.replace {
                    clean_map(p, &at)?.map(Value::Object)
                } else {
                    *cur = merge_map(std::mem::take(cur), p, f.schema, &at)?;
                    continue;
                }
            }
            (Some(Value::Array(cur)), Value::Array(p)) => {
                let f = field(schema, name);
                if f.merge || delete_from {
                    *cur = merge_list(std::mem::take(cur), p, &f, delete_from, &at)?;
                    continue;
                }
                Some(Value::Array(clean_list(p, &at)?))
            }
            (Some(_), _) if delete_from => continue,
            (Some(_), _) => clean(v, &at)?,
        };
        match replaced {
            Some(r) => orig.insert(name.to_owned(), r),
            None => orig.remove(name),
        };
    }
    Ok(orig)
}

/// Merges `patch[name]` into `orig[name]` and orders the result by `$setElementOrder/name`.
fn set_element_order(
    orig: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    name: &str,
    raw: &str,
    order: &Value,
    schema: Schema,
    path: &Path,
) -> Result<(), SmpError> {
    let dpath = path.key(raw);
    let Value::Array(order) = order else {
        return Err(bad(path, raw, "must be a list"));
    };
    let f = field(schema, name);
    if !f.merge {
        return Err(SmpError::NotMergeList {
            path: path.render(),
            directive: raw.to_owned(),
            field: name.to_owned(),
        });
    }
    let lpath = path.key(name);
    let old: Option<Vec<Value>> = match orig.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => Some(a.clone()),
        Some(_) => return Err(bad(path, raw, "names a field that is not a list")),
    };
    let patched = match patch.get(name) {
        None => None,
        Some(Value::Array(a)) => Some(a.as_slice()),
        Some(_) => {
            return Err(bad(
                path,
                raw,
                "names a field the patch does not set to a list",
            ));
        }
    };
    check_order(patched, order, f.key, &lpath, &dpath, raw)?;
    let merged = match (old.as_ref(), patched) {
        (Some(o), None) => o.clone(),
        (None, Some(p)) => clean_list(p, &lpath)?,
        (Some(o), Some(p)) => merge_list(o.clone(), p, &f, false, &lpath)?,
        (None, None) => return Ok(()),
    };
    let old = old.unwrap_or_default();
    element_kind(&old, &merged, &lpath)?;
    let order_pos = positions(order, f.key, &dpath)?;
    let server_pos = positions(&old, f.key, &lpath)?;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for (i, item) in merged.into_iter().enumerate() {
        let id = ident(&item, f.key, &lpath.index(i))?;
        if order_pos.contains_key(&id) {
            ours.push((id, item));
        } else {
            theirs.push((id, item));
        }
    }
    sort_by_position(&mut ours, &order_pos);
    sort_by_position(&mut theirs, &server_pos);
    orig.insert(
        name.to_owned(),
        Value::Array(interleave(theirs, ours, &server_pos)),
    );
    Ok(())
}

/// The patch list's elements (less directives) must come in `order`'s relative order.
fn check_order(
    patched: Option<&[Value]>,
    order: &[Value],
    key: Option<&str>,
    lpath: &Path,
    dpath: &Path,
    directive: &str,
) -> Result<(), SmpError> {
    let Some(patched) = patched else {
        return Ok(());
    };
    let mut items = patched
        .iter()
        .enumerate()
        .filter(|(_, v)| v.get(PATCH).is_none())
        .peekable();
    for (j, o) in order.iter().enumerate() {
        let Some((i, p)) = items.peek() else {
            break;
        };
        if ident(p, key, &lpath.index(*i))? == ident(o, key, &dpath.index(j))? {
            items.next();
        }
    }
    if items.peek().is_some() {
        return Err(SmpError::OrderMismatch {
            path: lpath.render(),
            directive: directive.to_owned(),
        });
    }
    Ok(())
}

/// Merges a list of strategy `merge` (or, `delete_from`, removes a
/// `$deleteFromPrimitiveList`'s values from a list).
fn merge_list(
    orig: Vec<Value>,
    patch: &[Value],
    f: &Field,
    delete_from: bool,
    path: &Path,
) -> Result<Vec<Value>, SmpError> {
    path.check_depth()?;
    if orig.is_empty() && patch.is_empty() {
        return Ok(orig);
    }
    if element_kind(&orig, patch, path)? != Some(JsonType::Object) {
        if delete_from {
            let gone: HashSet<String> = patch.iter().map(canon).collect();
            return Ok(orig
                .into_iter()
                .filter(|v| !gone.contains(&canon(v)))
                .collect());
        }
        let server_pos = positions(&orig, None, path)?;
        let patch_pos = positions(patch, None, path)?;
        let mut seen = HashSet::new();
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for v in orig.into_iter().chain(patch.iter().cloned()) {
            let id = canon(&v);
            if !seen.insert(id.clone()) {
                continue;
            }
            if patch_pos.contains_key(&id) {
                ours.push((id, v));
            } else {
                theirs.push((id, v));
            }
        }
        sort_by_position(&mut ours, &patch_pos);
        sort_by_position(&mut theirs, &server_pos);
        return Ok(interleave(theirs, ours, &server_pos));
    }
    if delete_from {
        return Err(bad(
            path,
            DELETE_FROM.trim_end_matches('/'),
            "applies to a list of primitives only",
        ));
    }
    let Some(key) = f.key else {
        return Err(SmpError::NoMergeKey {
            path: path.render(),
        });
    };

    let mut orig = orig;
    let mut replace = false;
    let mut plain: Vec<(usize, &Map<String, Value>)> = Vec::new();
    for (i, p) in patch.iter().enumerate() {
        let at = path.index(i);
        let Value::Object(pm) = p else {
            return Err(SmpError::MixedList {
                path: path.render(),
            });
        };
        let Some(d) = pm.get(PATCH) else {
            plain.push((i, pm));
            continue;
        };
        match list_directive(d, &at)? {
            Directive::Delete => {
                let Some(kv) = pm.get(key) else {
                    return Err(SmpError::MissingMergeKey {
                        path: at.render(),
                        key: key.to_owned(),
                    });
                };
                orig.retain(|o| o.get(key) != Some(kv));
            }
            Directive::Replace => replace = true,
        }
    }
    if replace {
        orig.clear();
        for (i, pm) in plain.drain(..) {
            if let Some(c) = clean_map(pm, &path.index(i))? {
                orig.push(Value::Object(c));
            }
        }
    }

    let server_pos = positions(&orig, Some(key), path)?;
    let mut find = server_pos.clone();
    let mut patch_pos = HashMap::new();
    let elem_schema = items(f.schema);
    for (n, (i, pm)) in plain.iter().enumerate() {
        let at = path.index(*i);
        let Some(kv) = pm.get(key) else {
            return Err(SmpError::MissingMergeKey {
                path: at.render(),
                key: key.to_owned(),
            });
        };
        let id = canon(kv);
        patch_pos.entry(id.clone()).or_insert(n);
        match find.get(&id).and_then(|&j| orig.get_mut(j)) {
            Some(slot) => {
                let cur = match std::mem::take(slot) {
                    Value::Object(m) => m,
                    _ => Map::new(),
                };
                *slot = Value::Object(merge_map(cur, pm, elem_schema, &at)?);
            }
            None => {
                if let Some(c) = clean_map(pm, &at)? {
                    find.insert(id, orig.len());
                    orig.push(Value::Object(c));
                }
            }
        }
    }

    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for (j, v) in orig.into_iter().enumerate() {
        let id = ident(&v, Some(key), &path.index(j))?;
        if patch_pos.contains_key(&id) {
            ours.push((id, v));
        } else {
            theirs.push((id, v));
        }
    }
    sort_by_position(&mut ours, &patch_pos);
    sort_by_position(&mut theirs, &server_pos);
    Ok(interleave(theirs, ours, &server_pos))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JsonType {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

fn json_type(v: &Value) -> JsonType {
    match v {
        Value::Null => JsonType::Null,
        Value::Bool(_) => JsonType::Bool,
        Value::Number(_) => JsonType::Number,
        Value::String(_) => JsonType::String,
        Value::Array(_) => JsonType::Array,
        Value::Object(_) => JsonType::Object,
    }
}

/// The one JSON type of the elements of `a` and `b` together (None when both are empty).
fn element_kind(a: &[Value], b: &[Value], path: &Path) -> Result<Option<JsonType>, SmpError> {
    let mut kind = None;
    for v in a.iter().chain(b) {
        let t = json_type(v);
        if t == JsonType::Array {
            return Err(SmpError::ListOfLists {
                path: path.render(),
            });
        }
        match kind {
            None => kind = Some(t),
            Some(k) if k != t => {
                return Err(SmpError::MixedList {
                    path: path.render(),
                });
            }
            Some(_) => {}
        }
    }
    Ok(kind)
}

/// What identifies a list element: its merge key's value, or itself (primitives), as
/// [`canon`] text.
fn ident(item: &Value, key: Option<&str>, path: &Path) -> Result<String, SmpError> {
    match (key, item) {
        (Some(k), _) => match item.get(k) {
            Some(v) => Ok(canon(v)),
            None => Err(SmpError::MissingMergeKey {
                path: path.render(),
                key: k.to_owned(),
            }),
        },
        (None, Value::Object(_)) => Err(SmpError::NoMergeKey {
            path: path.render(),
        }),
        (None, Value::Array(_)) => Err(SmpError::ListOfLists {
            path: path.render(),
        }),
        (None, v) => Ok(canon(v)),
    }
}

/// Each element's first position in `list`, by [`ident`].
fn positions(
    list: &[Value],
    key: Option<&str>,
    path: &Path,
) -> Result<HashMap<String, usize>, SmpError> {
    let mut out = HashMap::with_capacity(list.len());
    for (i, v) in list.iter().enumerate() {
        out.entry(ident(v, key, &path.index(i))?).or_insert(i);
    }
    Ok(out)
}

/// Stable sort by position; elements without one go last.
fn sort_by_position(items: &mut [(String, Value)], pos: &HashMap<String, usize>) {
    items.sort_by_key(|(id, _)| pos.get(id).copied().unwrap_or(usize::MAX));
}

/// Merges two ordered lists into one, keeping each one's order: a `left` element goes first
/// when both it and the `right` one are in the original and it comes earlier there, otherwise
/// the `right` one goes first (apimachinery's `mergeSortedSlice`).
fn interleave(
    left: Vec<(String, Value)>,
    right: Vec<(String, Value)>,
    server_pos: &HashMap<String, usize>,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut l = left.into_iter().peekable();
    let mut r = right.into_iter().peekable();
    loop {
        let take_left = match (l.peek(), r.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((a, _)), Some((b, _))) => {
                matches!((server_pos.get(a), server_pos.get(b)), (Some(x), Some(y)) if x < y)
            }
        };
        let next = if take_left { l.next() } else { r.next() };
        if let Some((_, v)) = next {
            out.push(v);
        }
    }
    out
}

/// A JSON value as text that is equal exactly for equal values (object keys sorted).
fn canon(v: &Value) -> String {
    fn write(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                let mut entries: Vec<_> = m.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                out.push('{');
                for (k, v) in entries {
                    out.push_str(&Value::from(k.as_str()).to_string());
                    out.push(':');
                    write(v, out);
                    out.push(',');
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for v in a {
                    write(v, out);
                    out.push(',');
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(v, &mut out);
    out
}

#[cfg(test)]
#[path = "smp_tests.rs"]
mod tests;
