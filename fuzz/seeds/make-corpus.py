#!/usr/bin/env python3
"""Writes the committed seed corpora under fuzz/corpus/<target>/ from the material in this
folder: request bodies the real docker CLI 28.2 sent (docker-cli/, recorded by pointing the CLI
at a stub server), a CSR and a CA certificate made with openssl (csr.pem, ca.pem), and small
hand-made layers, archives and RPC messages built here. Run it again after changing a seed;
it rewrites only the files it owns."""

import base64, gzip, hashlib, io, json, os, tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(os.path.dirname(HERE), "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def cli(name):
    with open(os.path.join(HERE, "docker-cli", name), "rb") as f:
        return f.read()


def pem(name):
    with open(os.path.join(HERE, name)) as f:
        return f.read()


def js(v):
    return json.dumps(v, separators=(",", ":"))


# -- Docker API bodies -------------------------------------------------------------------------
for n in ["service-create-web", "service-create-global-templated", "service-create-job"]:
    put("api_service_spec", n + ".json", cli(n + ".json"))
# Hand-made: what Swarm keeps without applying everywhere (privileges, a log driver), platforms,
# a spread over a platform, a window of 0, partial update configs and Docker's `Healthcheck`.
put("api_service_spec", "service-create-fidelity.json", js({
    "Name": "fid",
    "TaskTemplate": {
        "ContainerSpec": {
            "Image": "host", "Init": False, "DNSConfig": {},
            "Healthcheck": {"Test": ["CMD", "true"], "Retries": 2},
            "Privileges": {"NoNewPrivileges": True, "Seccomp": {"Mode": "unconfined"},
                           "CredentialSpec": {"File": "spec.json"}}},
        "Resources": {"Limits": {"NanoCPUs": 1000}},
        "RestartPolicy": {"Condition": "on-failure", "Window": 0},
        "Placement": {"Platforms": [{"Architecture": "amd64", "OS": "linux"}],
                      "Preferences": [{"Spread": {"SpreadDescriptor": "node.platform.os"}}]},
        "LogDriver": {"Name": "syslog", "Options": {"tag": "x"}}},
    "UpdateConfig": {"Parallelism": 2},
    "RollbackConfig": {"Monitor": 0}}) + "\n")
for n in ["node-update-drain", "node-update-promote"]:
    put("api_node_spec", n + ".json", cli(n + ".json"))
put("api_swarm_spec", "init", b"\x00" + cli("swarm-init.json"))
put("api_swarm_spec", "join", b"\x01" + cli("swarm-join.json"))
put("api_swarm_spec", "update", b"\x02" + cli("swarm-update.json"))

put("api_filters", "service-ls", b"\x00" + cli("filters-service-ls.txt"))
put("api_filters", "service-ps-lookup", b"\x00" + cli("filters-service-ps-lookup.txt"))
put("api_filters", "node-ls", b"\x01" + cli("filters-node-ls.txt"))
put("api_filters", "tasks-old-shape", b"\x02" + js(
    {"service": ["web"], "desired-state": ["running", "shutdown"], "_up-to-date": ["true"]}).encode())
put("api_filters", "tasks", b"\x02" + js(
    {"service": {"web": True}, "node": {"n1": True}, "label": {"a=1": True, "b": True}}).encode())

# Image names, `docker tag`, `docker save` and volume filters and bodies as the CLI 28 and
# docker-compose 1.29 send them (COMPOSE-NOTES.md).
put("api_images_volumes", "name-registry", b"\x00host:5000/team/app:1")
put("api_images_volumes", "name-short-id", b"\x00sha256:c20e58960251")
put("api_images_volumes", "tag", b"\x01localhost:5000/shoal-it/app\nv1")
put("api_images_volumes", "save", b"\x02names=busybox:latest\nnames=shoal-test/busybox")
put("api_images_volumes", "volume-ls", b"\x03" + js(
    {"label": {"team=a": True}, "name": {"^proj_": True}, "dangling": {"true": True}}).encode())
put("api_images_volumes", "volume-prune-all", b"\x04" + js(
    {"all": {"true": True}, "label": ["a=1"], "label!": {"keep": True}}).encode())
put("api_images_volumes", "volume-create-compose", b"\x05" + js(
    {"Name": "probeproj_webdata", "Labels": {"com.docker.compose.project": "probeproj",
     "com.docker.compose.volume": "webdata", "com.docker.compose.version": "1.29.2"}}).encode())
put("api_images_volumes", "volume-create-cli", b"\x05" + js(
    {"Driver": "local", "DriverOpts": {}, "Labels": {"team": "a"}}).encode())

# -- Constraints, templates, tokens ------------------------------------------------------------
put("constraint", "docker-docs", "node.labels.zone==east\nnode.role!=manager\nnode.platform.os == linux")
put("constraint", "ip-and-engine", "node.ip==10.0.0.0/8\nnode.ip != 2001:db8::1\nengine.labels.disk==ssd")
put("constraint", "hostname-id", "node.hostname==node-1\nnode.id!=3n5m7b9v1c3x5z7l9k1j3h5g7\nnode.platform.arch==x86_64")

# Kubernetes selectors: what `kubectl get -l ... --field-selector ...` sends, each text going to
# both the label and the field selector parser.
put("kube_selector", "kubectl-l", "app=web,tier in (front,back),!canary")
put("kube_selector", "set-based", "environment in (production, qa),tier notin (frontend,backend),partition,!legacy")
put("kube_selector", "prefixed-and-ints", "app.kubernetes.io/name==web,replicas>2,replicas<10,x in (,a)")
put("kube_selector", "field-selector", "metadata.name=web-0,status.phase!=Running,spec.nodeName==")
put("kube_selector", "field-escapes", "metadata.name=a\\,b\\=c\\\\,status.phase!=")

# Kubernetes strategic merge patches: the object as the API shows it on the first line, then what
# kubectl 1.32 sends (`apply` of a changed manifest, `set image`, `rollout restart`, `cordon`).
patch_deploy = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "front"},
                 "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}\n"},
                 "finalizers": ["a", "b"]},
    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
             "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
             "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                 "containers": [{"name": "web", "image": "nginx:1.25", "args": ["--a"],
                                 "ports": [{"containerPort": 80, "protocol": "TCP"}],
                                 "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                                {"name": "log", "image": "busybox:1.36"}],
                 "volumes": [{"name": "data", "emptyDir": {}}]}}},
}


def kube_patch(name, patch, original=patch_deploy):
    put("kube_patch", name, js(original) + "\n" + js(patch))


tmpl = lambda spec: {"spec": {"template": {"spec": spec}}}
kube_patch("apply-image", {
    "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"new\":1}\n"}},
    **tmpl({"$setElementOrder/containers": [{"name": "web"}, {"name": "log"}],
            "containers": [{"image": "nginx:1.26", "name": "web"}]})})
kube_patch("apply-env-removed", tmpl({
    "$setElementOrder/containers": [{"name": "web"}, {"name": "log"}],
    "containers": [{"$setElementOrder/env": [{"name": "B"}], "env": [{"$patch": "delete", "name": "A"}],
                    "name": "web"}]}))
kube_patch("apply-container-added", tmpl({
    "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}, {"name": "log"}],
    "containers": [{"image": "busybox", "name": "sidecar", "command": ["sleep", "1d"]},
                   {"$patch": "delete", "name": "log"}]}))
kube_patch("apply-ports", tmpl({"containers": [{
    "$setElementOrder/ports": [{"containerPort": 80}, {"containerPort": 443}], "name": "web",
    "ports": [{"containerPort": 443, "name": "https"}]}]}))
kube_patch("set-image", tmpl({"containers": [{"image": "nginx:1.27", "name": "web"}]}))
kube_patch("rollout-restart", {"spec": {"template": {"metadata": {"annotations": {
    "kubectl.kubernetes.io/restartedAt": "2026-05-01T10:00:00Z"}}}}})
kube_patch("labels-null-finalizers", {"metadata": {
    "labels": {"tier": None}, "$setElementOrder/finalizers": ["b", "c"],
    "$deleteFromPrimitiveList/finalizers": ["a"], "finalizers": ["c"]}})
kube_patch("strategy-retain-keys", {"spec": {"strategy": {
    "$retainKeys": ["type"], "rollingUpdate": None, "type": "Recreate"}}})
kube_patch("replace-list-and-map", {"metadata": {"labels": {"$patch": "replace", "x": "1"}},
                                    **tmpl({"volumes": [{"$patch": "replace"}, {"name": "v", "configMap": {"name": "c"}}],
                                            "containers": [{"name": "web", "$retainKeys": ["name"]}]})})
kube_patch("cordon", {"spec": {"unschedulable": True}},
           {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
            "spec": {"podCIDRs": ["10.0.0.0/24"]}})

# Kubernetes protobuf bodies: what kubectl 1.32 sent for `create secret|configmap|namespace|
# deployment|job|cronjob|service|serviceaccount`, `create job --from`, `debug`, `auth can-i` and
# the DELETE of `drain` (shoal-kube's test fixtures, recorded against a stub server).
PROTO = os.path.join(os.path.dirname(os.path.dirname(HERE)), "crates", "shoal-kube", "tests", "fixtures", "proto")
for f in sorted(os.listdir(PROTO)):
    if f.endswith(".pb"):
        with open(os.path.join(PROTO, f), "rb") as fh:
            put("kube_proto", f[:-len(".pb")], fh.read())

put("template", "hostname", b"\x00{{.Service.Name}}-{{.Task.Slot}}.{{.Node.Hostname}}")
put("template", "labels-and-join", b"\x00{{index .Service.Labels \"tier\"}}/{{join \"-\" .Node.Platform.OS .Node.Platform.Architecture}}/{{.Service.Labels.tier}}")
put("template", "env", b"\x01SLOT={{.Task.Slot}}-{{- .Task.Name -}}")
put("template", "container", b"\x02{{.Node.ID}} {{/* a comment */}} {{.Task.ID}}\nA={{.Service.ID}}")

put("join_token", "worker", "SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-1awxwuwd3z9j1z3puu7rcgdbx")
put("join_token", "manager-with-space", " SWMTKN-1-0000000000000000000000000000000000000000000000000z-zzzzzzzzzzzzzzzzzzzzzzzzz\n")
put("unlock_key", "docker", "SWMKEY-1-7c37Cc8654o6p38HnroywCi19pllOnGtbdZEgtKxZu8")
put("unlock_key", "padded-with-newline", "SWMKEY-1-7c37Cc8654o6p38HnroywCi19pllOnGtbdZEgtKxZu8=\n")
put("unlock_key", "short", "SWMKEY-1-AAAA")

# -- Images ------------------------------------------------------------------------------------
for name, ref in [("short", "busybox"), ("tagged-registry", "127.0.0.1:5000/shoal-test/busybox:1.36"),
                  ("digest", "ghcr.io/a/b@sha256:" + "a" * 64),
                  ("tag-and-digest", "docker.io/library/alpine:3.20@sha256:" + "0123456789abcdef" * 4),
                  ("ipv6", "[::1]:5000/app:v1")]:
    put("image_reference", name, ref)


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def tar_of(members, fmt=tarfile.GNU_FORMAT):
    """members: (name, kind, payload) with kind file|dir|symlink|hardlink."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for name, kind, payload in members:
            ti = tarfile.TarInfo(name)
            ti.mtime = 1700000000
            ti.uid = ti.gid = 0
            if kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                t.addfile(ti)
            elif kind == "symlink":
                ti.type, ti.linkname = tarfile.SYMTYPE, payload
                t.addfile(ti)
            elif kind == "hardlink":
                ti.type, ti.linkname = tarfile.LNKTYPE, payload
                t.addfile(ti)
            else:
                ti.size, ti.mode = len(payload), 0o644
                t.addfile(ti, io.BytesIO(payload))
    # Drop the blocking factor's padding (10 KiB per archive): keep the entries and the two
    # zero blocks that end an archive, so the fuzzer mutates small inputs.
    data = buf.getvalue().rstrip(b"\0")
    data += b"\0" * (-len(data) % 512)
    return data + b"\0" * 1024


def gz(b):
    return gzip.compress(b, mtime=0)


layer = tar_of([
    ("bin/", "dir", None),
    ("bin/busybox", "file", b"#!/bin/sh\necho hi\n"),
    ("bin/sh", "symlink", "busybox"),
    ("bin/ls", "hardlink", "bin/busybox"),
    ("etc/", "dir", None),
    ("etc/passwd", "file", b"root:x:0:0:root:/root:/bin/sh\n"),
    ("etc/.wh.old", "file", b""),
    ("var/.wh..wh..opq", "file", b""),
])
put("layer_unpack", "plain.tar", layer)
put("layer_unpack", "layer.tar.gz", gz(layer))
# Escape attempts: the fuzz sandbox keeps a file at ../sentinel beside the destination.
for name, members in {
    "escape-overwrite-symlink.tar": [("escape", "symlink", "../sentinel"), ("escape", "file", b"x")],
    "escape-symlinked-parent.tar": [("up", "symlink", ".."), ("up/sentinel", "file", b"x")],
    "escape-hardlink.tar": [("hard", "hardlink", "../sentinel")],
    "escape-hardlink-symlink.tar": [("s", "symlink", "../sentinel"), ("h", "hardlink", "s")],
    "escape-dotdot.tar": [("./a/../../sentinel", "file", b"x")],
}.items():
    put("layer_unpack", name, tar_of(members))
put("layer_unpack", "pax.tar", tar_of([("a/", "dir", None), ("a/" + "long" * 40, "file", b"x")], tarfile.PAX_FORMAT))

config = js({
    "architecture": "amd64", "os": "linux", "created": "2026-01-02T03:04:05.123456789Z",
    "config": {"Entrypoint": ["/bin/sh"], "Cmd": ["-c", "echo hi"], "Env": ["PATH=/bin"],
               "WorkingDir": "/", "User": "0", "StopSignal": "SIGTERM",
               "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1000000000, "Retries": 3},
               "Volumes": {"/data": {}}, "Labels": {"a": "b"}},
    "rootfs": {"type": "layers", "diff_ids": [sha(layer)]},
}).encode()
put("image_config", "config.json", config)
put("image_config", "no-run-config.json", js({"rootfs": {"type": "layers", "diff_ids": []}}))

manifest = js({
    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(config), "size": len(config)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(gz(layer)),
                "size": len(gz(layer))}],
}).encode()
index = js({
    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(manifest),
         "size": len(manifest), "platform": {"architecture": "amd64", "os": "linux"},
         "annotations": {"org.opencontainers.image.ref.name": "shoal-test/busybox:latest"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + "b" * 64,
         "size": 1, "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
    ],
}).encode()
put("image_manifest", "oci-manifest.json", manifest)
put("image_manifest", "oci-index.json", index)
put("image_manifest", "docker-manifest.json", manifest.replace(
    b"application/vnd.oci.image.manifest.v1+json", b"application/vnd.docker.distribution.manifest.v2+json"))

# A `docker save` archive (config and layer under their digests, as Docker 25+ writes them)...
docker_save = tar_of([
    ("manifest.json", "file", js([{"Config": "blobs/sha256/" + sha(config)[7:],
                                   "RepoTags": ["shoal-test/busybox:latest"],
                                   "Layers": ["blobs/sha256/" + sha(layer)[7:]]}]).encode()),
    ("blobs/", "dir", None),
    ("blobs/sha256/", "dir", None),
    ("blobs/sha256/" + sha(config)[7:], "file", config),
    ("blobs/sha256/" + sha(layer)[7:], "file", layer),
    ("repositories", "file", js({"shoal-test/busybox": {"latest": sha(config)[7:]}}).encode()),
])
put("image_archive", "docker-save.tar", docker_save)
# ... an older one with a symlinked duplicate layer ...
put("image_archive", "docker-save-legacy.tar.gz", gz(tar_of([
    ("manifest.json", "file", js([{"Config": sha(config)[7:] + ".json", "RepoTags": None,
                                   "Layers": ["l1/layer.tar", "l2/layer.tar"]}]).encode()),
    (sha(config)[7:] + ".json", "file", js({"rootfs": {"type": "layers", "diff_ids": [sha(layer), sha(layer)]}}).encode()),
    ("l1/layer.tar", "file", layer),
    ("l2/layer.tar", "symlink", "../l1/layer.tar"),
])))
# ... and an OCI layout.
put("image_archive", "oci-layout.tar", tar_of([
    ("oci-layout", "file", b'{"imageLayoutVersion":"1.0.0"}'),
    ("index.json", "file", index),
    ("blobs/sha256/" + sha(manifest)[7:], "file", manifest),
    ("blobs/sha256/" + sha(config)[7:], "file", config),
    ("blobs/sha256/" + sha(gz(layer))[7:], "file", gz(layer)),
]))

# -- Node RPC (first byte: which message; see node_rpc.rs) -------------------------------------
ID = "3n5m7b9v1c3x5z7l9k1j3h5g7"
TASK = "1a2s3d4f5g6h7j8k9l0z1x2c3"
desc = {"hostname": "node-2", "platform": {"os": "linux", "arch": "x86_64"},
        "resources": {"nano_cpus": 2000000000, "memory_bytes": 1 << 30},
        "engine": {"version": "0.1.0", "labels": {"disk": "ssd"}}}
status = {"state": "running", "timestamp": 1780000000000000000, "message": "started",
          "err": "", "runtime": None}
join = {"token": "SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-1awxwuwd3z9j1z3puu7rcgdbx",
        "csr_pem": pem("csr.pem"), "advertise_addr": "10.0.0.3:2377", "availability": "active",
        "description": desc}
leader = {"term": 1, "node_id": 1}
service = {"id": "9b4r8k1y5q2w7e3t6u0i4o8p2", "meta": {"version": 0, "created_at": 0, "updated_at": 0},
           "spec": {"name": "web", "task": {"container": {"image": "host:latest", "args": ["sleep", "1000"]}},
                    "mode": {"replicated": {"replicas": 2}}}}
proposal = {"now": 1780000000000000000, "atomic": True, "ops": [
    {"CreateService": service},
    {"SetTaskStatus": {"id": TASK, "status": status}},
    {"DeleteService": {"id": "9b4r8k1y5q2w7e3t6u0i4o8p2"}},
]}
rpc = {
    "join": (0x00, join), "join-real-token": (0x80, join),
    "renew": (1, {"csr_pem": pem("csr.pem")}),
    "append": (2, {"vote": {"leader_id": leader, "committed": True},
                   "prev_log_id": {"leader_id": leader, "index": 1},
                   "entries": [{"log_id": {"leader_id": leader, "index": 2}, "payload": "Blank"},
                               {"log_id": {"leader_id": leader, "index": 3}, "payload": {"Normal": proposal}}],
                   "leader_commit": {"leader_id": leader, "index": 1}}),
    "vote": (3, {"vote": {"leader_id": {"term": 2, "node_id": 2}, "committed": False},
                 "last_log_id": {"leader_id": leader, "index": 3}}),
    "snapshot": (4, {"vote": {"leader_id": leader, "committed": True},
                     "meta": {"last_log_id": {"leader_id": leader, "index": 3},
                              "last_membership": {"log_id": {"leader_id": leader, "index": 1},
                                                  "membership": {"configs": [[1]], "nodes": {"1": {"addr": "10.0.0.1:4242"}}}},
                              "snapshot_id": "1-3-1"},
                     "offset": 0, "data": base64.b64encode(js({"objects": []}).encode()).decode(), "done": True}),
    "propose": (5, proposal),
    "raft-join": (6, {"raft_id": 7, "addr": "10.0.0.3:2377"}),
    "session": (7, {"description": desc, "endpoint": "10.0.0.3:2377"}),
    "report": (8, [{"task_id": TASK, "status": status}]),
    "logs": (9, {"task_id": TASK, "follow": True, "tail": 10, "since": 0, "stdout": True, "stderr": False}),
    "ca": (10, {"trust": [pem("ca.pem")]}),
    "propose-reply": (11, {"not_leader": {"leader": 2}}),
    "join-reply": (12, {"node_id": ID, "cluster_id": "9b4r8k1y5q2w7e3t6u0i4o8p2", "role": "worker",
                        "raft_id": None, "cert_pem": pem("ca.pem"), "intermediate_pem": None,
                        "trust": [pem("ca.pem")], "issuer_digest": "0" * 50, "managers": ["10.0.0.1:2377"]}),
    "renew-reply": (13, {"role": "manager", "cert_pem": pem("ca.pem"), "intermediate_pem": None,
                         "trust": [pem("ca.pem")], "issuer_digest": "0" * 50}),
    "heartbeat": (14, {"period": {"secs": 5, "nanos": 0}}),
    "session-node": (15, {"node": {"node_id": ID, "role": "worker", "raft_id": None, "removed": False}}),
    "log-line": (16, {"time": 1780000000000000000, "stderr": False, "line": base64.b64encode(b"hello\n").decode()}),
    "error": (17, {"message": "this manager is not the leader", "leader": "10.0.0.1:2377"}),
    "raft-replies": (18, {"vote": {"leader_id": leader, "committed": True}, "vote_granted": True,
                          "last_log_id": None}),
    "append-reply": (18, {"HigherVote": {"leader_id": {"term": 3, "node_id": 2}, "committed": False}}),
}
for name, (sel, msg) in rpc.items():
    put("node_rpc", name, bytes([sel]) + js(msg).encode())

print("corpus written under", CORPUS)
