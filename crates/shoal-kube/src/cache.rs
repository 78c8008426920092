//! The Kubernetes objects of the cluster's state, kept current, with the log of their changes
//! that watches replay (the API server's watch cache).
//!
//! Each object's `resourceVersion` is the highest store version among what it is made of (a
//! pod: its task, its service and its node), so the versions of one sync's changes all lie
//! between the previous sync's store version and this one's, and the log stays in order. An
//! object is converted again only when one of those versions moved, so a sync costs what
//! changed, plus one comparison per object.
//!
//! Reads sync first when the state has moved on, so a client reads its own writes.
//!
//! Concurrency: one mutex around the objects and the log, held for a sync or a read; watchers
//! subscribe to a broadcast under that lock, so none misses or repeats an event.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;
use shoal_control::ClusterView;
use tokio::sync::broadcast;

use crate::objects;
use crate::registry::{self, ResourceInfo};

/// How many changes watches can replay.
const LOG_LEN: usize = 20_000;

/// An object's place: kind (its plural), namespace (empty for cluster-scoped), name.
pub type Key = (&'static str, String, String);

#[derive(Debug, Clone)]
pub struct Entry {
    pub rv: u64,
    /// What the object was made of: it is converted again only when this moves.
    fingerprint: [u64; 3],
    pub object: Arc<Value>,
}

#[derive(Debug)]
pub struct Change {
    pub rv: u64,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub typ: &'static str,
    pub resource: &'static ResourceInfo,
    pub namespace: String,
    pub name: String,
    pub object: Arc<Value>,
    /// The object before a modification, to tell a watch with a selector that it left it.
    pub before: Option<Arc<Value>>,
}

struct Inner {
    /// The store version of the last sync.
    version: u64,
    objects: BTreeMap<Key, Entry>,
    log: VecDeque<Arc<Change>>,
    /// Watches from before this version cannot be replayed (410 Gone).
    oldest: u64,
    synced_once: bool,
}

pub struct Cache {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<Change>>,
}

impl Default for Cache {
    fn default() -> Self {
        Cache::new()
    }
}

/// A watch's start: what happened since its version, and the feed of what comes next.
pub struct Subscription {
    pub backlog: Vec<Arc<Change>>,
    pub rx: broadcast::Receiver<Arc<Change>>,
    pub version: u64,
}

impl Cache {
    pub fn new() -> Cache {
        let (tx, _) = broadcast::channel(4096);
        Cache {
            inner: Mutex::new(Inner {
                version: 0,
                objects: BTreeMap::new(),
                log: VecDeque::new(),
                oldest: 0,
                synced_once: false,
            }),
            tx,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Brings the objects to `view` if it is newer; answers the version they are at.
    pub fn sync(&self, view: &dyn ClusterView) -> u64 {
        let mut inner = self.lock();
        let version = view.version();
        if inner.synced_once && version <= inner.version {
            return inner.version;
        }
        let mut fresh = collect(view, &inner.objects);
        if inner.synced_once {
            add_events(&inner, &mut fresh, version);
        }
        let mut changes: Vec<Change> = Vec::new();
        for (key, e) in &fresh {
            match inner.objects.get(key) {
                None => changes.push(change(key, "ADDED", e, None)),
                Some(old) if old.object != e.object => {
                    changes.push(change(key, "MODIFIED", e, Some(old.object.clone())));
                }
                Some(_) => {}
            }
        }
        for (key, old) in &inner.objects {
            if !fresh.contains_key(key) {
                let gone = Entry {
                    rv: version,
                    fingerprint: old.fingerprint,
                    object: Arc::new(with_rv(&old.object, version)),
                };
                changes.push(change(key, "DELETED", &gone, None));
            }
        }
        changes.sort_by_key(|c| c.rv);
        if !inner.synced_once {
            // The first sync is the starting point, not a change anyone watched.
            changes.clear();
            inner.oldest = version;
            inner.synced_once = true;
        }
        inner.objects = fresh;
        inner.version = version;
        for c in changes {
            let c = Arc::new(c);
            inner.log.push_back(c.clone());
            let _ = self.tx.send(c);
        }
        while inner.log.len() > LOG_LEN {
            if let Some(c) = inner.log.pop_front() {
                inner.oldest = c.rv;
            }
        }
        version
    }

    /// The objects of one kind (in one namespace, or all), at the cache's version.
    pub fn list(&self, r: &ResourceInfo, namespace: Option<&str>) -> (u64, Vec<Arc<Value>>) {
        let inner = self.lock();
        let items = inner
            .objects
            .iter()
            .filter(|((kind, ns, _), _)| *kind == r.plural && namespace.is_none_or(|n| n == ns))
            .map(|(_, e)| e.object.clone())
            .collect();
        (inner.version, items)
    }

    pub fn get(&self, r: &ResourceInfo, namespace: &str, name: &str) -> Option<Arc<Value>> {
        let inner = self.lock();
        inner
            .objects
            .get(&(r.plural, namespace.to_string(), name.to_string()))
            .map(|e| e.object.clone())
    }

    /// Starts a watch from `version` (the changes after it), or from now with `None`.
    pub fn subscribe(&self, version: Option<u64>) -> Result<Subscription, (u64, u64)> {
        let inner = self.lock();
        let rx = self.tx.subscribe();
        let backlog = match version {
            None => Vec::new(),
            Some(v) if v < inner.oldest => return Err((v, inner.oldest)),
            Some(v) => inner.log.iter().filter(|c| c.rv > v).cloned().collect(),
        };
        Ok(Subscription {
            backlog,
            rx,
            version: inner.version,
        })
    }

    pub fn version(&self) -> u64 {
        self.lock().version
    }
}

/// Carries the events kept over, adds those of the pods that moved, and drops the oldest past
/// [`crate::events::KEEP`].
fn add_events(inner: &Inner, fresh: &mut BTreeMap<Key, Entry>, version: u64) {
    let mut kept: Vec<(Key, Entry)> = inner
        .objects
        .iter()
        .filter(|(k, _)| k.0 == "events")
        .map(|(k, e)| (k.clone(), e.clone()))
        .collect();
    let mut seq = 0u32;
    for (key, e) in fresh.iter().filter(|(k, _)| k.0 == "pods") {
        let old = inner.objects.get(key).map(|o| o.object.as_ref());
        if old == Some(e.object.as_ref()) {
            continue;
        }
        for mut ev in crate::events::of_pod(old, &e.object) {
            seq += 1;
            let name = format!("{}.{version:x}{seq:04x}", key.2);
            if let Some(m) = ev.get_mut("metadata").and_then(Value::as_object_mut) {
                m.insert("name".into(), Value::String(name.clone()));
                m.insert(
                    "uid".into(),
                    Value::String(format!("event-{version:x}-{seq:x}")),
                );
                m.insert("resourceVersion".into(), Value::String(version.to_string()));
            }
            kept.push((
                ("events", key.1.clone(), name),
                Entry {
                    rv: version,
                    fingerprint: [version, u64::from(seq), 0],
                    object: Arc::new(ev),
                },
            ));
        }
    }
    kept.sort_by_key(|(_, e)| (e.rv, e.fingerprint[1]));
    let drop = kept.len().saturating_sub(crate::events::KEEP);
    for (k, e) in kept.into_iter().skip(drop) {
        fresh.insert(k, e);
    }
}

fn change(key: &Key, typ: &'static str, e: &Entry, before: Option<Arc<Value>>) -> Change {
    Change {
        rv: e.rv,
        typ,
        resource: registry::all()
            .iter()
            .find(|r| r.plural == key.0)
            .unwrap_or(&registry::all()[0]),
        namespace: key.1.clone(),
        name: key.2.clone(),
        object: e.object.clone(),
        before,
    }
}

fn with_rv(v: &Value, rv: u64) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
    v
}

fn resource(plural: &str) -> Option<&'static ResourceInfo> {
    registry::all().iter().find(|r| r.plural == plural)
}

/// Every object in `view`, reusing the conversions in `old` whose inputs did not move.
fn collect(view: &dyn ClusterView, old: &BTreeMap<Key, Entry>) -> BTreeMap<Key, Entry> {
    let mut out = BTreeMap::new();
    let mut put = |key: Key, fingerprint: [u64; 3], make: &dyn Fn() -> Option<Value>| {
        if let Some(e) = old.get(&key)
            && e.fingerprint == fingerprint
        {
            out.insert(key, e.clone());
            return;
        }
        let Some(mut object) = make() else {
            return;
        };
        // An input moved without changing what the object shows (a pod's node was
        // relabelled): it keeps its version, and no watch hears of it.
        if let Some(e) = old.get(&key)
            && with_rv(&object, e.rv) == *e.object
        {
            out.insert(
                key,
                Entry {
                    rv: e.rv,
                    fingerprint,
                    object: e.object.clone(),
                },
            );
            return;
        }
        let rv = fingerprint.iter().copied().max().unwrap_or(0);
        object = with_rv(&object, rv);
        out.insert(
            key,
            Entry {
                rv,
                fingerprint,
                object: Arc::new(object),
            },
        );
    };
    if resource("nodes").is_some() {
        for n in view.nodes() {
            put(
                ("nodes", String::new(), objects::node_name(n)),
                [n.meta.version, 0, 0],
                &|| serde_json::to_value(objects::node(n)).ok(),
            );
        }
    }
    let mut versions: HashMap<&shoal_types::Id, u64> = HashMap::new();
    for t in view.tasks() {
        let v = versions.entry(&t.service_id).or_insert(0);
        *v = (*v).max(t.meta.version);
    }
    for s in view.services() {
        let (ns, name) = objects::split_service_name(s);
        let fp = [s.meta.version, versions.get(&s.id).copied().unwrap_or(0), 0];
        put(("deployments", ns.clone(), name.clone()), fp, &|| {
            objects::deployment(view, s)
                .and_then(|d| serde_json::to_value(d).ok())
                .map(|v| objects::with_kube_extras(v, s))
        });
        for (rs_name, rs) in objects::replica_sets(view, s) {
            put(("replicasets", ns.clone(), rs_name), fp, &|| {
                let mut v = serde_json::to_value(&rs).ok()?;
                if let Some(k) = &s.spec.kube
                    && let Ok(extra) = serde_json::from_str::<Value>(&k.container_extra)
                    && let Some(c) = v.pointer_mut("/spec/template/spec/containers/0")
                {
                    crate::writes::merge_patch(c, &extra);
                }
                Some(v)
            });
        }
        put(("jobs", ns.clone(), name.clone()), fp, &|| {
            objects::job(view, s)
                .and_then(|d| serde_json::to_value(d).ok())
                .map(|v| objects::with_kube_extras(v, s))
        });
        put(("daemonsets", ns, name), fp, &|| {
            objects::daemon_set(view, s)
                .and_then(|d| serde_json::to_value(d).ok())
                .map(|v| objects::with_kube_extras(v, s))
        });
    }
    let mut tasks: Vec<&std::sync::Arc<shoal_types::task::Task>> =
        view.tasks().filter(|t| objects::is_pod(t)).collect();
    // A bare Pod's tasks share its name: the newest is the pod.
    tasks.sort_by_key(|t| t.meta.created_at);
    tasks.reverse();
    let mut seen_pods: std::collections::HashSet<Key> = std::collections::HashSet::new();
    for t in tasks {
        let svc = view.service(&t.service_id);
        let (ns, svc_name) = match svc {
            Some(s) => objects::split_service_name(s),
            None => (
                objects::DEFAULT_NAMESPACE.to_string(),
                t.service_name.clone(),
            ),
        };
        let node_v = t
            .node_id
            .as_ref()
            .and_then(|n| view.node(n))
            .map_or(0, |n| n.meta.version);
        let key = ("pods", ns, objects::pod_name(t, &svc_name));
        if !seen_pods.insert(key.clone()) {
            continue;
        }
        put(
            key,
            [t.meta.version, svc.map_or(0, |s| s.meta.version), node_v],
            &|| serde_json::to_value(objects::pod(view, t)).ok(),
        );
    }
    for (plural, kind) in [
        ("configmaps", shoal_types::payload::PayloadKind::Config),
        ("secrets", shoal_types::payload::PayloadKind::Secret),
    ] {
        for p in view.payloads(kind) {
            let (ns, name) = crate::payloads::split_name(p);
            put((plural, ns, name), [p.meta.version, 0, 0], &|| match kind {
                shoal_types::payload::PayloadKind::Config => {
                    serde_json::to_value(crate::payloads::config_map(p)).ok()
                }
                shoal_types::payload::PayloadKind::Secret => {
                    serde_json::to_value(crate::payloads::secret(p)).ok()
                }
            });
        }
    }
    for (name, (created, version)) in objects::namespaces(view) {
        put(
            ("namespaces", String::new(), name.clone()),
            [version, 0, 0],
            &|| serde_json::to_value(objects::namespace(&name, created, version)).ok(),
        );
    }
    out
}
