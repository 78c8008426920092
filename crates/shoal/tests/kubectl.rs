//! The Kubernetes API driven by the real `kubectl` (1.32, through the machine's dispatcher),
//! over TLS with a client certificate from `shoal kubeconfig`, on the same objects the Docker
//! API serves: a service made with `docker service create` is a Deployment with pods, scaled
//! from either side; a node is cordoned and labelled with kubectl and Swarm sees it; watches
//! see the changes; discovery, OpenAPI (`explain`), selectors and kubectl's error wording.

// The tests wait on real processes, in wall-clock time; no logic under test reads it.
#![allow(clippy::disallowed_methods)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::{Daemon, wait_for};
use shoal_testkit::{Need, need};

const IMAGE: &str = "shoal-test/busybox:latest";
const MINUTE: Duration = Duration::from_secs(60);

/// kubectl with its own kubeconfig, cache and home, so nothing of the machine's is read.
struct Kubectl {
    kubeconfig: PathBuf,
    home: PathBuf,
}

impl Kubectl {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("kubectl");
        c.args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &self.home)
            .env("KUBECACHEDIR", self.home.join("cache"));
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run kubectl")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `args` until its output satisfies `want`.
    fn wait(&self, what: &str, args: &[&str], want: impl Fn(&str) -> bool) -> String {
        wait_for(what, MINUTE, || {
            let out = self.run(args);
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if out.status.success() && want(&text) {
                Ok(text)
            } else {
                Err(text)
            }
        })
    }
}

/// A background `kubectl get -w`, killed when dropped.
struct Watch {
    child: Child,
    out: PathBuf,
}

impl Watch {
    fn text(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn watch(k: &Kubectl, args: &[&str], out: &Path) -> Watch {
    let file = std::fs::File::create(out).expect("watch output");
    let child = k
        .command(args)
        .stdout(file)
        .stderr(Stdio::null())
        .spawn()
        .expect("start kubectl get -w");
    Watch {
        child,
        out: out.to_path_buf(),
    }
}

fn node_spec(d: &Daemon) -> serde_json::Value {
    let (code, nodes) = d.api("GET", "/v1.45/nodes", None);
    assert_eq!(code, 200, "{nodes}");
    nodes[0]["Spec"].clone()
}

fn replicas(d: &Daemon) -> Option<u64> {
    let (_, svc) = d.api("GET", "/v1.45/services/web", None);
    svc["Spec"]["Mode"]["Replicated"]["Replicas"].as_u64()
}

#[test]
fn kubectl_drives_the_same_services_and_nodes_as_docker() {
    if !need(&[
        Need::Root,
        Need::Tool("kubectl"),
        Need::DockerEngine,
        Need::TestImage,
    ]) {
        return;
    }
    let port = common::free_port();
    let addr = format!("127.0.0.1:{port}");
    let d = Daemon::start_with_flags(
        Vec::new(),
        vec![
            "--runtime".into(),
            "docker".into(),
            "--kube-addr".into(),
            addr.clone(),
        ],
    );
    d.swarm_init();
    d.service_create(&format!("--name web --replicas 2 {IMAGE} sleep 1000"));

    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    let server = format!("https://{addr}");
    let out = d.shoal(&[
        "kubeconfig",
        "--server",
        &server,
        "-o",
        &kubeconfig.to_string_lossy(),
    ]);
    assert!(out.status.success(), "shoal kubeconfig: {out:?}");
    let k = Kubectl {
        kubeconfig,
        home: dir.path().to_path_buf(),
    };

    // Without a client certificate from the cluster's root, nothing is served.
    let anon = Command::new("curl")
        .args(["-sk", "--max-time", "5", &format!("{server}/version")])
        .output()
        .expect("curl");
    assert!(
        !anon.status.success(),
        "served without a client certificate: {anon:?}"
    );

    let version = k.ok(&["version"]);
    assert!(version.contains("Server Version: v1.32"), "{version}");
    let resources = k.ok(&["api-resources"]);
    for kind in ["deployments", "pods", "nodes", "namespaces", "daemonsets"] {
        assert!(resources.contains(kind), "{resources}");
    }

    // The Swarm service is a Deployment, its tasks are pods.
    k.wait("the deployment ready", &["get", "deployments"], |t| {
        t.lines()
            .any(|l| l.starts_with("web ") && l.contains(" 2/2 "))
    });
    let pods = k.wait("two running pods", &["get", "pods", "-o", "wide"], |t| {
        t.lines().filter(|l| l.contains(" Running ")).count() == 2
    });
    assert!(pods.contains("web.1.") && pods.contains("web.2."), "{pods}");
    let yaml = k.ok(&["get", "deployment", "web", "-o", "yaml"]);
    assert!(yaml.contains(&format!("image: {IMAGE}")), "{yaml}");
    let names = k.ok(&[
        "get",
        "pods",
        "-l",
        "com.docker.swarm.service.name=web",
        "--field-selector",
        "status.phase=Running",
        "-o",
        "name",
    ]);
    assert_eq!(names.lines().count(), 2, "{names}");
    let none = k.ok(&[
        "get",
        "pods",
        "-l",
        "com.docker.swarm.service.name!=web",
        "-o",
        "name",
    ]);
    assert!(none.trim().is_empty(), "{none}");

    // Scaled with kubectl, seen by Swarm; a watch sees the new pod come.
    let w = watch(&k, &["get", "pods", "-w"], &dir.path().join("watch.txt"));
    wait_for("the watch's first lines", MINUTE, || {
        let t = w.text();
        if t.contains("web.2.") { Ok(()) } else { Err(t) }
    });
    assert!(
        k.ok(&["scale", "deployment", "web", "--replicas=3"])
            .contains("scaled")
    );
    assert_eq!(replicas(&d), Some(3));
    wait_for("the watch seeing the third pod run", MINUTE, || {
        let t = w.text();
        if t.lines()
            .any(|l| l.starts_with("web.3.") && l.contains("Running"))
        {
            Ok(())
        } else {
            Err(t)
        }
    });
    drop(w);

    // Scaled with docker, seen by kubectl.
    let out = d.shoal(&["service", "scale", "web=1", "--detach"]);
    assert!(out.status.success(), "{out:?}");
    k.wait(
        "the deployment at one replica",
        &["get", "deployments"],
        |t| {
            t.lines()
                .any(|l| l.starts_with("web ") && l.contains(" 1/1 "))
        },
    );

    // Cordon and labels: Swarm's availability and node labels.
    let nodes = k.ok(&["get", "nodes", "-o", "name"]);
    let node = nodes.trim().to_string();
    assert!(node.starts_with("node/"), "{nodes}");
    k.ok(&["cordon", &node]);
    assert_eq!(node_spec(&d)["Availability"], "pause");
    let listed = k.ok(&["get", "nodes"]);
    assert!(listed.contains("Ready,SchedulingDisabled"), "{listed}");
    k.ok(&["uncordon", &node]);
    assert_eq!(node_spec(&d)["Availability"], "active");
    k.ok(&["label", &node, "zone=a"]);
    assert_eq!(node_spec(&d)["Labels"]["zone"], "a");
    let shown = k.ok(&["get", "nodes", "-L", "zone"]);
    assert!(shown.contains("ZONE"), "{shown}");

    // Discovery's and the API server's errors, as kubectl prints them.
    let out = k.run(&["get", "widgets"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the server doesn't have a resource type \"widgets\""),
        "{err}"
    );
    let out = k.run(&["get", "deployment", "nope"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Error from server (NotFound): deployments.apps \"nope\" not found"),
        "{err}"
    );
    // kubectl refuses a negative --replicas itself; a patch reaches the server's check.
    let out = k.run(&[
        "patch",
        "deployment",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":-1}}"#,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("spec.replicas: Invalid value: -1: must be greater than or equal to 0"),
        "{err}"
    );
    assert_eq!(replicas(&d), Some(1), "the refused patch changed nothing");

    // The OpenAPI documents serve `explain`.
    let explained = k.ok(&["explain", "pods.spec.containers"]);
    assert!(
        explained.contains("FIELD: containers <[]Container>"),
        "{explained}"
    );

    // A DaemonSet is a global service: a pod on the node.
    let ds = dir.path().join("ds.yaml");
    std::fs::write(
        &ds,
        format!(
            "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: agent\nspec:\n  selector:\n    matchLabels: {{app: agent}}\n  template:\n    metadata:\n      labels: {{app: agent}}\n    spec:\n      containers:\n      - name: agent\n        image: {IMAGE}\n        command: [sleep, '1000']\n"
        ),
    )
    .expect("write");
    assert!(
        k.ok(&["apply", "-f", &ds.to_string_lossy()])
            .contains("daemonset.apps/agent created")
    );
    let (_, svc) = d.api("GET", "/v1.45/services/agent", None);
    assert!(svc["Spec"]["Mode"]["Global"].is_object(), "{svc}");
    k.wait("the daemon set ready", &["get", "daemonsets"], |t| {
        t.lines()
            .any(|l| l.starts_with("agent ") && l.split_whitespace().nth(3) == Some("1"))
    });
    let status = k.ok(&["rollout", "status", "daemonset/agent", "--timeout=60s"]);
    assert!(status.contains("successfully rolled out"), "{status}");
    assert!(
        k.ok(&["delete", "-f", &ds.to_string_lossy()])
            .contains("deleted")
    );

    // Deleted with kubectl: the service is gone.
    assert!(k.ok(&["delete", "deployment", "web"]).contains("deleted"));
    let (code, _) = d.api("GET", "/v1.45/services/web", None);
    assert_eq!(code, 404);
    k.wait("no pods left", &["get", "pods", "-o", "name"], |t| {
        !t.contains("pod/web.")
    });
}

/// A daemon serving the Kubernetes API, and kubectl configured for it.
fn kube_daemon(dir: &Path) -> (Daemon, Kubectl) {
    let addr = format!("127.0.0.1:{}", common::free_port());
    let d = Daemon::start_with_flags(
        Vec::new(),
        vec![
            "--runtime".into(),
            "docker".into(),
            "--kube-addr".into(),
            addr.clone(),
        ],
    );
    d.swarm_init();
    let kubeconfig = dir.join("kubeconfig");
    let out = d.shoal(&[
        "kubeconfig",
        "--server",
        &format!("https://{addr}"),
        "-o",
        &kubeconfig.to_string_lossy(),
    ]);
    assert!(out.status.success(), "shoal kubeconfig: {out:?}");
    (
        d,
        Kubectl {
            kubeconfig,
            home: dir.to_path_buf(),
        },
    )
}

const HELLO: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello
  labels: {app: hello}
spec:
  replicas: REPLICAS
  selector:
    matchLabels: {app: hello}
  template:
    metadata:
      labels: {app: hello}
    spec:
      containers:
      - name: main
        image: shoal-test/busybox:latest
        command: [sleep, '1000']
        ports: [{containerPort: 80}]
        env: [{name: GREETING, value: VALUE}]
";

fn write_hello(dir: &Path, replicas: u32, value: &str) -> PathBuf {
    let file = dir.join("hello.yaml");
    let text = HELLO
        .replace("REPLICAS", &replicas.to_string())
        .replace("VALUE", value);
    std::fs::write(&file, text).expect("write manifest");
    file
}

/// kubectl's error output for applying `manifest`.
fn apply_error(k: &Kubectl, dir: &Path, manifest: &str) -> String {
    let file = dir.join("bad.yaml");
    std::fs::write(&file, manifest).expect("write manifest");
    let out = k.run(&["apply", "-f", &file.to_string_lossy()]);
    assert!(!out.status.success(), "applied: {out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn kubectl_apply_makes_services_and_refuses_bad_manifests() {
    if !need(&[
        Need::Root,
        Need::Tool("kubectl"),
        Need::DockerEngine,
        Need::TestImage,
    ]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (d, k) = kube_daemon(dir.path());

    // Created from a manifest: a service Swarm runs, shown back as written.
    let file = write_hello(dir.path(), 2, "hi");
    let file_arg = file.to_string_lossy().to_string();
    let out = k.ok(&["apply", "-f", &file_arg]);
    assert!(out.contains("deployment.apps/hello created"), "{out}");
    let status = k.ok(&["rollout", "status", "deployment/hello", "--timeout=60s"]);
    assert!(status.contains("successfully rolled out"), "{status}");
    let (code, svc) = d.api("GET", "/v1.45/services/hello", None);
    assert_eq!(code, 200, "{svc}");
    assert_eq!(svc["Spec"]["Mode"]["Replicated"]["Replicas"], 2);
    assert_eq!(svc["Spec"]["Labels"]["app"], "hello");
    let env = svc["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"].to_string();
    assert!(env.contains("GREETING=hi"), "{env}");
    let port = k.ok(&[
        "get",
        "deployment",
        "hello",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].ports[0].containerPort}",
    ]);
    assert_eq!(port, "80");
    let pods = k.ok(&[
        "get",
        "pods",
        "-l",
        "app=hello",
        "-o",
        "jsonpath={.items[*].spec.containers[0].name}",
    ]);
    assert_eq!(pods, "main main");

    // Applied again with changes: the three-way patch reaches the service.
    let file = write_hello(dir.path(), 3, "hello");
    let out = k.ok(&["apply", "-f", &file_arg]);
    assert!(out.contains("deployment.apps/hello configured"), "{out}");
    let (_, svc) = d.api("GET", "/v1.45/services/hello", None);
    assert_eq!(svc["Spec"]["Mode"]["Replicated"]["Replicas"], 3);
    let env = svc["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"].to_string();
    assert!(env.contains("GREETING=hello"), "{env}");
    let out = k.ok(&["apply", "-f", &file.to_string_lossy()]);
    assert!(out.contains("deployment.apps/hello unchanged"), "{out}");
    k.ok(&["rollout", "status", "deployment/hello", "--timeout=60s"]);

    // Two revisions, one undone; a restart rolls the pods.
    let history = k.ok(&["rollout", "history", "deployment/hello"]);
    assert!(
        history.contains("REVISION")
            && history.lines().any(|l| l.starts_with("1 "))
            && history.lines().any(|l| l.starts_with("2 ")),
        "{history}"
    );
    let rs = k.ok(&["get", "replicasets", "-l", "app=hello", "-o", "name"]);
    assert_eq!(rs.lines().count(), 2, "{rs}");
    assert!(
        k.ok(&["rollout", "undo", "deployment/hello"])
            .contains("rolled back")
    );
    let (_, svc) = d.api("GET", "/v1.45/services/hello", None);
    let env = svc["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"].to_string();
    assert!(env.contains("GREETING=hi"), "{env}");
    k.ok(&["rollout", "status", "deployment/hello", "--timeout=60s"]);
    let before = svc["Spec"]["TaskTemplate"]["ForceUpdate"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        k.ok(&["rollout", "restart", "deployment/hello"])
            .contains("restarted")
    );
    let (_, svc) = d.api("GET", "/v1.45/services/hello", None);
    assert_eq!(
        svc["Spec"]["TaskTemplate"]["ForceUpdate"].as_u64(),
        Some(before + 1),
        "{svc}"
    );
    k.ok(&["rollout", "status", "deployment/hello", "--timeout=60s"]);

    // Scaled through Swarm, seen by kubectl; the manifest's other fields survive.
    let out = d.shoal(&["service", "scale", "hello=1", "--detach"]);
    assert!(out.status.success(), "{out:?}");
    k.wait("one replica", &["get", "deployment", "hello"], |t| {
        t.contains(" 1/1 ")
    });
    let port = k.ok(&[
        "get",
        "deployment",
        "hello",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].ports[0].containerPort}",
    ]);
    assert_eq!(port, "80");

    // A namespace is a stack.
    let out = k.ok(&["apply", "-n", "shop", "-f", &file_arg]);
    assert!(out.contains("deployment.apps/hello created"), "{out}");
    let (code, svc) = d.api("GET", "/v1.45/services/shop_hello", None);
    assert_eq!(code, 200, "{svc}");
    assert_eq!(svc["Spec"]["Labels"]["com.docker.stack.namespace"], "shop");
    let ns = k.ok(&["get", "namespaces"]);
    assert!(ns.lines().any(|l| l.starts_with("shop ")), "{ns}");

    // An empty namespace, made from a manifest.
    let ns_file = dir.path().join("ns.yaml");
    std::fs::write(
        &ns_file,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: dev\n",
    )
    .expect("write manifest");
    let out = k.ok(&["apply", "-f", &ns_file.to_string_lossy()]);
    assert!(out.contains("namespace/dev created"), "{out}");
    let ns = k.ok(&["get", "namespace", "dev"]);
    assert!(ns.contains("Active"), "{ns}");
    let out = k.run(&["delete", "namespace", "default"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("this namespace may not be deleted"), "{err}");
    assert!(
        k.ok(&["delete", "-f", &ns_file.to_string_lossy()])
            .contains("deleted")
    );

    // Bad manifests: the server's errors name the field.
    let bad = HELLO
        .replace("REPLICAS", "1")
        .replace("VALUE", "x")
        .replace("name: hello\n", "name: bad\n");
    let err = apply_error(&k, dir.path(), &bad.replace("replicas: 1", "replica: 1"));
    assert!(err.contains("unknown field \"spec.replica\""), "{err}");
    let err = apply_error(
        &k,
        dir.path(),
        &bad.replace("        image: shoal-test/busybox:latest\n", ""),
    );
    assert!(
        err.contains("spec.template.spec.containers[0].image: Required value"),
        "{err}"
    );
    let err = apply_error(
        &k,
        dir.path(),
        &bad.replace("name: bad\n", "name: Hello_World\n"),
    );
    assert!(
        err.contains("metadata.name: Invalid value: \"Hello_World\""),
        "{err}"
    );
    let err = apply_error(
        &k,
        dir.path(),
        &bad.replace("labels: {app: hello}\nspec", "labels: {app: -bad-}\nspec"),
    );
    assert!(err.contains("Invalid value: \"-bad-\""), "{err}");
    // An unknown kind: with validation, kubectl looks for its schema in /openapi/v2 too,
    // which is not served (it is protobuf only); without, discovery says what is wrong.
    let widget = dir.path().join("widget.yaml");
    std::fs::write(&widget, bad.replace("kind: Deployment", "kind: Widget")).expect("write");
    let out = k.run(&["apply", "--validate=false", "-f", &widget.to_string_lossy()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no matches for kind \"Widget\" in version \"apps/v1\""),
        "{err}"
    );
    let err = apply_error(
        &k,
        dir.path(),
        &bad.replace(
            "      containers:\n",
            "      volumes: [{name: v, emptyDir: {}}]\n      containers:\n",
        ),
    );
    assert!(
        err.contains("spec.template.spec.volumes: Forbidden"),
        "{err}"
    );
    let err = apply_error(
        &k,
        dir.path(),
        &bad.replace("matchLabels: {app: hello}", "matchLabels: {app: other}"),
    );
    assert!(
        err.contains("`selector` does not match template `labels`"),
        "{err}"
    );

    // Deleted with the manifest: the services are gone.
    assert!(k.ok(&["delete", "-f", &file_arg]).contains("deleted"));
    // Deleting a namespace deletes what is in it.
    assert!(k.ok(&["delete", "namespace", "shop"]).contains("deleted"));
    for name in ["hello", "shop_hello"] {
        let (code, _) = d.api("GET", &format!("/v1.45/services/{name}"), None);
        assert_eq!(code, 404, "{name}");
    }
}

#[test]
fn kubectl_create_makes_secrets_configs_namespaces_and_deployments() {
    if !need(&[
        Need::Root,
        Need::Tool("kubectl"),
        Need::DockerEngine,
        Need::TestImage,
    ]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (d, k) = kube_daemon(dir.path());

    // kubectl's generators send protobuf.
    let out = k.ok(&[
        "create",
        "secret",
        "generic",
        "s",
        "--from-literal=a=b",
        "--from-literal=c=d",
    ]);
    assert!(out.contains("secret/s created"), "{out}");
    assert_eq!(
        k.ok(&["get", "secret", "s", "-o", "jsonpath={.data.a}"]),
        "Yg=="
    );
    assert_eq!(
        k.ok(&["get", "secret", "s", "-o", "jsonpath={.type}"]),
        "Opaque"
    );
    let listed = String::from_utf8_lossy(&d.shoal(&["secret", "ls"]).stdout).into_owned();
    assert!(listed.lines().any(|l| l.contains(" s ")), "{listed}");
    let out = k.ok(&[
        "create",
        "secret",
        "docker-registry",
        "reg",
        "--docker-server=registry.example",
        "--docker-username=u",
        "--docker-password=p",
    ]);
    assert!(out.contains("secret/reg created"), "{out}");
    assert_eq!(
        k.ok(&["get", "secret", "reg", "-o", "jsonpath={.type}"]),
        "kubernetes.io/dockerconfigjson"
    );
    let out = k.ok(&["create", "configmap", "cfg", "--from-literal=x=1"]);
    assert!(out.contains("configmap/cfg created"), "{out}");
    assert_eq!(k.ok(&["get", "cm", "cfg", "-o", "jsonpath={.data.x}"]), "1");
    let (code, configs) = d.api("GET", "/v1.45/configs", None);
    assert_eq!(code, 200);
    assert!(configs.to_string().contains("\"cfg\""), "{configs}");

    // A secret made with docker is a Secret keyed by its name.
    let file = dir.path().join("pass");
    std::fs::write(&file, "hunter2").expect("write");
    let out = d.shoal(&["secret", "create", "dbpass", &file.to_string_lossy()]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        k.ok(&["get", "secret", "dbpass", "-o", "jsonpath={.data.dbpass}"]),
        "aHVudGVyMg=="
    );

    // Applied again with new data: the config's data moves on (a rotation).
    let cm = dir.path().join("cm.yaml");
    std::fs::write(
        &cm,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  mode: one\n",
    )
    .expect("write");
    assert!(
        k.ok(&["apply", "-f", &cm.to_string_lossy()])
            .contains("configmap/app created")
    );
    std::fs::write(
        &cm,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  mode: two\n",
    )
    .expect("write");
    assert!(
        k.ok(&["apply", "-f", &cm.to_string_lossy()])
            .contains("configmap/app configured")
    );
    assert_eq!(
        k.ok(&["get", "cm", "app", "-o", "jsonpath={.data.mode}"]),
        "two"
    );
    k.ok(&["label", "cm", "app", "tier=web"]);
    let (_, app) = d.api("GET", "/v1.45/configs/app", None);
    assert_eq!(app["Spec"]["Labels"]["tier"], "web", "{app}");

    // A namespace and a deployment from the generators.
    assert!(
        k.ok(&["create", "namespace", "team"])
            .contains("namespace/team created")
    );
    let out = k.ok(&[
        "create",
        "deployment",
        "web2",
        "-n",
        "team",
        "--image",
        IMAGE,
        "--replicas=2",
        "--",
        "sleep",
        "1000",
    ]);
    assert!(out.contains("deployment.apps/web2 created"), "{out}");
    let status = k.ok(&[
        "rollout",
        "status",
        "-n",
        "team",
        "deployment/web2",
        "--timeout=60s",
    ]);
    assert!(status.contains("successfully rolled out"), "{status}");
    let (code, svc) = d.api("GET", "/v1.45/services/team_web2", None);
    assert_eq!(code, 200, "{svc}");

    // A pod's output, read from its node.
    d.service_create_with(
        &format!("--name talker {IMAGE} sh -c"),
        &["echo line1; sleep 1; echo line2 >&2; sleep 1000"],
    );
    let pod = k.wait("the talker's pod", &["get", "pods", "-o", "name"], |t| {
        t.contains("pod/talker.1.")
    });
    let pod = pod
        .lines()
        .find(|l| l.starts_with("pod/talker.1."))
        .unwrap_or_default()
        .to_string();
    let logs = k.wait("the talker's output", &["logs", &pod], |t| {
        t.contains("line2")
    });
    assert!(logs.contains("line1\n"), "{logs}");
    assert_eq!(k.ok(&["logs", "--tail=1", &pod]), "line2\n");
    let stamped = k.ok(&["logs", "--timestamps", "--tail=1", &pod]);
    assert!(stamped.ends_with("Z line2\n"), "{stamped}");
    let followed = Command::new("timeout")
        .args(["3"])
        .arg("kubectl")
        .args(["logs", "-f", &pod])
        .env("KUBECONFIG", &k.kubeconfig)
        .env("HOME", &k.home)
        .env("KUBECACHEDIR", k.home.join("cache"))
        .output()
        .expect("kubectl logs -f");
    assert!(
        String::from_utf8_lossy(&followed.stdout).contains("line1"),
        "{followed:?}"
    );
    let out = k.run(&["logs", "--previous", &pod]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("previous terminated container"), "{err}");

    // A bad secret is refused with the field named.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: t\ntype: kubernetes.io/tls\ndata:\n  tls.crt: Y2VydA==\n",
    )
    .expect("write");
    let out = k.run(&["apply", "-f", &bad.to_string_lossy()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("data[tls.key]: Required value"), "{err}");

    for (kind, name) in [
        ("secret", "s"),
        ("secret", "reg"),
        ("configmap", "cfg"),
        ("configmap", "app"),
    ] {
        assert!(
            k.ok(&["delete", kind, name]).contains("deleted"),
            "{kind} {name}"
        );
    }
    assert!(k.ok(&["delete", "namespace", "team"]).contains("deleted"));
    let (code, _) = d.api("GET", "/v1.45/services/team_web2", None);
    assert_eq!(code, 404);
}

#[test]
fn kubectl_runs_pods_and_jobs_as_swarm_services() {
    if !need(&[
        Need::Root,
        Need::Tool("kubectl"),
        Need::Tool("script"),
        Need::DockerEngine,
        Need::TestImage,
    ]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (d, k) = kube_daemon(dir.path());
    let image = format!("--image={IMAGE}");

    // Bare pods: one that keeps running, one that runs once.
    assert!(
        k.ok(&["run", "sleeper", &image, "--", "sleep", "1000"])
            .contains("pod/sleeper created")
    );
    assert!(
        k.ok(&[
            "run",
            "once",
            &image,
            "--restart=Never",
            "--",
            "echo",
            "done"
        ])
        .contains("pod/once created")
    );
    k.wait("sleeper running", &["get", "pod", "sleeper"], |t| {
        t.contains(" Running ")
    });
    k.wait("once completed", &["get", "pod", "once"], |t| {
        t.contains(" Completed ")
    });

    // Events of what the pods went through, for describe and get events.
    let described = k.ok(&["describe", "pod", "sleeper"]);
    assert!(
        described.contains("Successfully assigned default/sleeper to "),
        "{described}"
    );
    assert!(
        described.contains("Started container sleeper"),
        "{described}"
    );
    k.ok(&[
        "run",
        "bad",
        &image,
        "--restart=Never",
        "--",
        "sh",
        "-c",
        "exit 3",
    ]);
    let warned = k.wait(
        "a warning for the failed pod",
        &["get", "events", "--field-selector", "type=Warning"],
        |t| t.contains("Error: container bad exited with code 3"),
    );
    assert!(warned.contains("pod/bad"), "{warned}");

    // exec over kubectl's WebSocket protocol: output, exit codes, stdin, a terminal.
    assert_eq!(k.ok(&["exec", "sleeper", "--", "echo", "hi"]), "hi\n");
    let out = k.run(&["exec", "sleeper", "--", "sh", "-c", "echo oops >&2; exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).lines().next(),
        Some("oops")
    );
    let mut cat = k
        .command(&["exec", "-i", "sleeper", "--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("kubectl exec -i");
    {
        use std::io::Write;
        let mut stdin = cat.stdin.take().expect("stdin");
        stdin.write_all(b"typed\n").expect("write");
    }
    let out = cat.wait_with_output().expect("kubectl exec -i");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "typed\n");
    let script = format!(
        "KUBECONFIG={} HOME={} KUBECACHEDIR={} kubectl exec -it sleeper -- sh -c '[ -t 0 ] && echo on-a-tty; exit 5'",
        k.kubeconfig.display(),
        k.home.display(),
        k.home.join("cache").display()
    );
    let out = Command::new("script")
        .args(["-qec", &script, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("on-a-tty"),
        "{out:?}"
    );
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    assert_eq!(k.ok(&["logs", "once"]), "done\n");
    let (_, svc) = d.api("GET", "/v1.45/services/once", None);
    assert!(svc["Spec"]["Mode"]["ReplicatedJob"].is_object(), "{svc}");

    // A Job with parallelism finishes its completions.
    let job = dir.path().join("job.yaml");
    std::fs::write(
        &job,
        format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: calc\nspec:\n  completions: 3\n  parallelism: 2\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: calc\n        image: {IMAGE}\n        command: [sh, -c, 'echo computed']\n"
        ),
    )
    .expect("write");
    assert!(
        k.ok(&["apply", "-f", &job.to_string_lossy()])
            .contains("job.batch/calc created")
    );
    let jobs = k.wait("the job complete", &["get", "jobs"], |t| {
        t.lines()
            .any(|l| l.starts_with("calc ") && l.contains("Complete") && l.contains(" 3/3 "))
    });
    assert!(jobs.contains("COMPLETIONS"), "{jobs}");
    let (_, svc) = d.api("GET", "/v1.45/services/calc", None);
    assert_eq!(
        svc["Spec"]["Mode"]["ReplicatedJob"]["MaxConcurrent"], 2,
        "{svc}"
    );
    assert_eq!(
        svc["Spec"]["Mode"]["ReplicatedJob"]["TotalCompletions"], 3,
        "{svc}"
    );
    let done = k.ok(&["get", "pods", "-o", "name"]);
    assert_eq!(
        done.lines().filter(|l| l.starts_with("pod/calc.")).count(),
        3,
        "{done}"
    );

    // A Swarm job is a Job.
    let out = d.shoal(&[
        "service",
        "create",
        "--name",
        "swarmjob",
        "--mode",
        "replicated-job",
        "--detach",
        IMAGE,
        "true",
    ]);
    assert!(out.status.success(), "{out:?}");
    k.wait("the Swarm job complete", &["get", "job", "swarmjob"], |t| {
        t.contains("Complete")
    });

    // A Job needs its restart policy; a Pod's must be one of Kubernetes'.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        format!("apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: bad\nspec:\n  template:\n    spec:\n      containers:\n      - name: c\n        image: {IMAGE}\n"),
    )
    .expect("write");
    let out = k.run(&["apply", "-f", &bad.to_string_lossy()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("spec.template.spec.restartPolicy: Required value"),
        "{err}"
    );

    assert!(
        k.ok(&["delete", "pod", "sleeper", "once", "bad"])
            .contains("deleted")
    );
    assert!(
        k.ok(&["delete", "job", "calc", "swarmjob"])
            .contains("deleted")
    );
    for name in ["sleeper", "once", "bad", "calc", "swarmjob"] {
        let (code, _) = d.api("GET", &format!("/v1.45/services/{name}"), None);
        assert_eq!(code, 404, "{name}");
    }
}
