//! Images and volumes as a Docker Engine serves them, on both runtimes: a real daemon
//! (`--runtime native`, the test image loaded with `docker load`; `--runtime docker`, the
//! engine's own), driven by the real `docker` CLI, the Python SDK and raw API calls.
//! `docker image inspect|history|tag|save|load|search` and `docker volume
//! create|inspect|ls|rm|prune`, and bad input refused with Docker's statuses.
//!
//! An archive `docker save` writes from the native runtime is loaded into the real Docker
//! Engine: a hand-made image with a layer the engine cannot already have, so the engine unpacks
//! and checks every byte shoal wrote. What a test leaves on the shared engine (tags, the
//! hand-made image) goes in its `EngineTags` guard's drop, even when it fails; daemons and their
//! volumes go with `Daemon`'s drop.

mod common;

use std::process::{Command, Output};

use common::{Daemon, urlencode};
use serde_json::Value;
use shoal_testkit::{Need, TEST_ARCHIVE, TEST_IMAGE, need};

const ENGINE: &str = "unix:///var/run/docker.sock";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Runtime {
    Native,
    Docker,
}

impl Runtime {
    fn flag(self) -> &'static str {
        match self {
            Runtime::Native => "native",
            Runtime::Docker => "docker",
        }
    }

    fn ready(self) -> bool {
        match self {
            Runtime::Native => need(&[Need::Root, Need::Tool("docker"), Need::TestArchive]),
            Runtime::Docker => need(&[
                Need::Root,
                Need::Tool("docker"),
                Need::DockerEngine,
                Need::TestImage,
            ]),
        }
    }
}

/// A daemon on `rt` that has the test image: the native runtime's loaded through shoal's
/// `/images/load` (`docker load`), the Docker runtime's the engine's.
fn daemon(rt: Runtime) -> Option<Daemon> {
    if !rt.ready() {
        return None;
    }
    let d = Daemon::start_with_flags(Vec::new(), vec!["--runtime".into(), rt.flag().into()]);
    if rt == Runtime::Native {
        let out = d.docker_ok(&["load", "-i", TEST_ARCHIVE]);
        assert!(
            out.contains(&format!("Loaded image: {TEST_IMAGE}")),
            "{out}"
        );
    }
    Some(d)
}

/// The real `docker` CLI against the real engine.
fn engine(args: &[&str]) -> Output {
    Command::new("docker")
        .arg("-H")
        .arg(ENGINE)
        .args(args)
        .env_remove("DOCKER_CONTEXT")
        .output()
        .expect("run docker")
}

/// Image references this test made on the shared engine, removed on drop.
struct EngineTags(Vec<String>);

impl Drop for EngineTags {
    fn drop(&mut self) {
        for t in &self.0 {
            let _ = engine(&["image", "rm", "-f", t]);
        }
    }
}

/// A repository name of this test process, for tags on a shared engine.
fn repo(test: &str) -> String {
    format!("shoal-it/{}-{test}", std::process::id())
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn inspect(d: &Daemon, name: &str) -> Value {
    let out = d.docker_ok(&["image", "inspect", name]);
    let v: Value = serde_json::from_str(&out).expect("inspect prints JSON");
    v[0].clone()
}

fn image_inspect_history_and_tag(rt: Runtime) {
    let Some(d) = daemon(rt) else { return };
    let tagged = format!("localhost:5000/{}:v1", repo(&format!("tag-{}", rt.flag())));
    let _guard = EngineTags(vec![tagged.clone()]);

    let img = inspect(&d, TEST_IMAGE);
    let id = img["Id"].as_str().expect("Id").to_string();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{img}");
    assert!(
        img["RepoTags"]
            .as_array()
            .is_some_and(|t| t.contains(&Value::from(TEST_IMAGE))),
        "{img}"
    );
    assert_eq!(
        img["Config"]["Cmd"],
        serde_json::json!(["/bin/sh"]),
        "{img}"
    );
    assert!(
        img["Config"]["Env"]
            .as_array()
            .is_some_and(|e| e.contains(&Value::from("PATH=/bin"))),
        "{img}"
    );
    assert_eq!(
        (img["Os"].as_str(), img["RootFS"]["Type"].as_str()),
        (Some("linux"), Some("layers"))
    );
    let created = img["Created"].as_str().unwrap_or_default();
    assert!(
        chrono::DateTime::parse_from_rfc3339(created).is_ok(),
        "Created is RFC 3339: {created:?}"
    );
    assert!(img["Size"].as_u64().is_some_and(|s| s > 0), "{img}");
    assert!(img["Metadata"]["LastTagTime"].is_string(), "{img}");
    // The same image the engine built: same ID, same layers (the native runtime loaded the
    // engine's own `docker save`).
    let theirs: Value = serde_json::from_slice(&engine(&["image", "inspect", TEST_IMAGE]).stdout)
        .expect("the engine's inspect");
    assert_eq!(img["Id"], theirs[0]["Id"]);
    assert_eq!(img["RootFS"]["Layers"], theirs[0]["RootFS"]["Layers"]);

    // Stable, and the same by every name it has.
    for by in [TEST_IMAGE, "shoal-test/busybox", &id, &id[7..19]] {
        let again = d.docker_ok(&["image", "inspect", "--format", "{{.Id}}", by]);
        assert_eq!(again.trim(), id, "{by}");
    }
    // compose (API 1.41) reads `Id` and, recreating a container, `ContainerConfig.Volumes`.
    let (status, v) = d.api("GET", "/v1.41/images/shoal-test/busybox/json", None);
    assert_eq!((status, v["Id"].as_str()), (200, Some(id.as_str())), "{v}");
    assert!(v["ContainerConfig"].is_object(), "{v}");
    let (status, v) = d.api("GET", "/v1.41/images/shoal-test/nope:1/json", None);
    assert_eq!(status, 404, "{v}");
    assert_eq!(v["message"], "No such image: shoal-test/nope:1");
    let out = d.docker(&["image", "inspect", "shoal-test/nope:1"]);
    assert!(
        !out.status.success() && stderr(&out).contains("No such image: shoal-test/nope:1"),
        "{out:?}"
    );

    let history = d.docker_ok(&["history", TEST_IMAGE]);
    let header: Vec<&str> = history
        .lines()
        .next()
        .unwrap_or_default()
        .split("  ")
        .filter(|c| !c.is_empty())
        .map(str::trim)
        .collect();
    assert_eq!(
        header,
        ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
        "{history}"
    );
    let steps = d.docker_ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.ID}}|{{.CreatedBy}}|{{.Size}}",
        TEST_IMAGE,
    ]);
    let steps: Vec<&str> = steps.lines().collect();
    assert!(
        steps
            .first()
            .is_some_and(|s| s.starts_with(&format!("{id}|"))),
        "{steps:?}"
    );
    assert!(
        steps.iter().any(|s| s.contains("busybox --install")),
        "{steps:?}"
    );
    let theirs = stdout(&engine(&["history", "-q", TEST_IMAGE]));
    assert_eq!(
        steps.len(),
        theirs.lines().count(),
        "as many steps as the engine shows"
    );

    d.docker_ok(&["tag", TEST_IMAGE, &tagged]);
    let again = inspect(&d, &tagged);
    assert_eq!(again["Id"], id.as_str());
    assert!(
        again["RepoTags"]
            .as_array()
            .is_some_and(|t| t.contains(&Value::from(tagged.as_str()))),
        "{again}"
    );
    let out = d.docker(&["tag", "shoal-test/nope:1", &tagged]);
    assert!(
        !out.status.success() && stderr(&out).contains("No such image"),
        "{out:?}"
    );
    d.docker_ok(&["rmi", &tagged]);
    let out = d.docker(&["image", "inspect", &tagged]);
    assert!(!out.status.success(), "untagged: {out:?}");
}

#[test]
fn image_inspect_history_and_tag_native() {
    image_inspect_history_and_tag(Runtime::Native);
}

#[test]
fn image_inspect_history_and_tag_docker() {
    image_inspect_history_and_tag(Runtime::Docker);
}

/// Writes a `docker save` archive of a one-layer image whose layer holds `unique`, so no
/// engine has it already; returns the archive's path.
fn handmade_archive(dir: &std::path::Path, tag: &str, unique: &str) -> String {
    let out = dir.join("handmade.tar");
    let arch = match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "amd64",
    };
    common::python(&format!(
        r#"
import hashlib, io, json, tarfile
def tar(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.mtime = 1700000000
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                t.addfile(info)
            else:
                info.size = len(data)
                info.mode = 0o644
                t.addfile(info, io.BytesIO(data))
    return buf.getvalue()
layer = tar([("hello/", None), ("hello/unique.txt", {unique:?}.encode())])
diff = "sha256:" + hashlib.sha256(layer).hexdigest()
config = json.dumps({{"architecture": "{arch}", "os": "linux", "created": "2024-01-02T03:04:05Z",
    "config": {{"Cmd": ["/hello/unique.txt"], "Labels": {{"it": {unique:?}}}}},
    "rootfs": {{"type": "layers", "diff_ids": [diff]}},
    "history": [{{"created": "2024-01-02T03:04:05Z", "created_by": "ADD unique.txt /hello/"}}]}}).encode()
name = hashlib.sha256(config).hexdigest() + ".json"
manifest = json.dumps([{{"Config": name, "RepoTags": [{tag:?}], "Layers": ["l/layer.tar"]}}]).encode()
open({out:?}, "wb").write(tar([("l/", None), ("l/layer.tar", layer), (name, config), ("manifest.json", manifest)]))
"#,
        out = out.display().to_string(),
    ));
    out.display().to_string()
}

/// `docker save` from the native runtime: the real engine loads it as the same image, and so
/// does shoal itself after the image was removed; `GET /images/get` takes several names.
#[test]
fn native_save_loads_into_the_docker_engine_and_back() {
    if !need(&[Need::DockerEngine, Need::Tool("python3")]) {
        return;
    }
    let Some(d) = daemon(Runtime::Native) else {
        return;
    };
    let unique = format!("{}-{}", std::process::id(), d.data_dir().display());
    let tag = format!("{}:hand", repo("save"));
    let _guard = EngineTags(vec![tag.clone()]);
    let made = handmade_archive(d.data_dir(), &tag, &unique);
    let out = d.docker_ok(&["load", "-i", &made]);
    assert!(out.contains(&format!("Loaded image: {tag}")), "{out}");
    let id = inspect(&d, &tag)["Id"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    let saved = d.data_dir().join("saved.tar");
    let saved = saved.display().to_string();
    d.docker_ok(&["save", "-o", &saved, &tag]);
    let loaded = engine(&["load", "-i", &saved]);
    assert!(
        loaded.status.success() && stdout(&loaded).contains(&format!("Loaded image: {tag}")),
        "the engine loads shoal's archive: {loaded:?}"
    );
    let theirs = stdout(&engine(&["image", "inspect", "--format", "{{.Id}}", &tag]));
    assert_eq!(theirs.trim(), id, "the engine has the same image");
    let labels = stdout(&engine(&[
        "image",
        "inspect",
        "--format",
        "{{.Config.Labels.it}}",
        &tag,
    ]));
    assert_eq!(labels.trim(), unique);

    // And back into shoal: `docker save | docker load` with the same ID.
    d.docker_ok(&["rmi", &tag]);
    assert!(!d.docker(&["image", "inspect", &tag]).status.success());
    let out = d.docker_ok(&["load", "-i", &saved]);
    assert!(out.contains(&format!("Loaded image: {tag}")), "{out}");
    assert_eq!(inspect(&d, &tag)["Id"], id.as_str());

    // Several names at once, the form `docker save A B` sends.
    let q = format!(
        "/v1.50/images/get?names={}&names={}",
        urlencode(&tag),
        urlencode(TEST_IMAGE)
    );
    let (status, body) = common::http(&d.socket(), "GET", &q, None).expect("save");
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("manifest.json") && text.contains(&tag),
        "a tar naming both"
    );
    let (status, body) = common::http(
        &d.socket(),
        "GET",
        "/v1.50/images/shoal-test/nope:1/get",
        None,
    )
    .expect("save");
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
}

fn save_and_load_round_trip(rt: Runtime) {
    let Some(d) = daemon(rt) else { return };
    let tag = format!("{}:copy", repo(&format!("rt-{}", rt.flag())));
    let _guard = EngineTags(vec![tag.clone()]);
    let id = inspect(&d, TEST_IMAGE)["Id"].clone();
    d.docker_ok(&["tag", TEST_IMAGE, &tag]);
    let saved = d.data_dir().join("copy.tar").display().to_string();
    d.docker_ok(&["save", "-o", &saved, &tag]);
    d.docker_ok(&["rmi", &tag]);
    let out = d.docker_ok(&["load", "-i", &saved]);
    assert!(out.contains(&format!("Loaded image: {tag}")), "{out}");
    assert_eq!(
        inspect(&d, &tag)["Id"],
        id,
        "the same image after the round trip"
    );
    d.docker_ok(&["rmi", &tag]);
}

#[test]
fn save_and_load_round_trip_native() {
    save_and_load_round_trip(Runtime::Native);
}

#[test]
fn save_and_load_round_trip_docker() {
    save_and_load_round_trip(Runtime::Docker);
}

fn volume(d: &Daemon, name: &str) -> Value {
    let out = d.docker_ok(&["volume", "inspect", name]);
    let v: Value = serde_json::from_str(&out).expect("JSON");
    v[0].clone()
}

fn volume_names(d: &Daemon, filters: &[&str]) -> Vec<String> {
    let mut args = vec!["volume", "ls", "-q"];
    for f in filters {
        args.extend(["--filter", f]);
    }
    let mut names: Vec<String> = d.docker_ok(&args).lines().map(str::to_string).collect();
    names.sort();
    names
}

fn volumes_through_the_cli(rt: Runtime) {
    let Some(d) = daemon(rt) else { return };
    // Every volume of this test carries the mark and every listing and prune is scoped to it:
    // the Docker runtime lists the volumes of every shoal daemon on the shared engine.
    let mark = format!("shoal-it={}-{}", std::process::id(), rt.flag());
    let ours = format!("label={mark}");
    let named = format!("vol-{}-{}", std::process::id(), rt.flag());
    let out = d.docker_ok(&[
        "volume", "create", "--label", &mark, "--label", "team=a", &named,
    ]);
    assert_eq!(out.trim(), named);
    let v = volume(&d, &named);
    assert_eq!(
        (
            v["Name"].as_str(),
            v["Driver"].as_str(),
            v["Scope"].as_str()
        ),
        (Some(named.as_str()), Some("local"), Some("local")),
        "{v}"
    );
    assert_eq!(v["Labels"]["team"], "a", "{v}");
    assert!(
        v["Mountpoint"].as_str().is_some_and(|m| !m.is_empty()),
        "{v}"
    );
    assert!(
        chrono::DateTime::parse_from_rfc3339(v["CreatedAt"].as_str().unwrap_or_default()).is_ok(),
        "{v}"
    );
    // Again, as compose does for a volume it did not find: the same volume, as it was.
    d.docker_ok(&["volume", "create", "--label", "team=b", &named]);
    assert_eq!(volume(&d, &named)["Labels"]["team"], "a");
    let anon = d
        .docker_ok(&["volume", "create", "--label", &mark])
        .trim()
        .to_string();
    assert!(
        anon.len() == 64 && anon.bytes().all(|b| b.is_ascii_hexdigit()),
        "a nameless volume gets 64 hex digits: {anon:?}"
    );
    assert!(volume(&d, &anon)["Labels"]["com.docker.volume.anonymous"].is_string());

    let mut both = vec![anon.clone(), named.clone()];
    both.sort();
    assert_eq!(volume_names(&d, &[&ours]), both);
    assert_eq!(
        volume_names(&d, &[&ours, "label=team=a"]),
        vec![named.clone()]
    );
    assert_eq!(
        volume_names(&d, &[&ours, "name=^vol-"]),
        vec![named.clone()]
    );
    assert_eq!(volume_names(&d, &[&ours, "dangling=true"]), both);
    assert!(volume_names(&d, &[&ours, "dangling=false"]).is_empty());
    let out = d.docker(&["volume", "ls", "--filter", "dangling=maybe"]);
    assert!(
        !out.status.success() && stderr(&out).contains("invalid filter"),
        "{out:?}"
    );

    // The CLI speaks API 1.50: a prune takes unused anonymous volumes only, unless --all.
    let out = d.docker_ok(&["volume", "prune", "-f", "--filter", &ours]);
    assert!(out.contains(&anon) && !out.contains(&named), "{out}");
    assert_eq!(volume_names(&d, &[&ours]), vec![named.clone()]);
    let out = d.docker_ok(&[
        "volume",
        "prune",
        "-f",
        "--all",
        "--filter",
        &ours,
        "--filter",
        "label!=team=a",
    ]);
    assert!(!out.contains(&named), "label! keeps it: {out}");
    let out = d.docker_ok(&["volume", "prune", "-f", "--all", "--filter", &ours]);
    assert!(out.contains(&named), "{out}");
    assert!(volume_names(&d, &[&ours]).is_empty());

    // An API 1.41 client (compose) prunes named volumes too, as Docker does for it.
    let compose = format!("proj{}{}_data", std::process::id(), rt.flag());
    let (k, val) = mark.split_once('=').unwrap_or_default();
    let body = format!(
        r#"{{"Name":"{compose}","Labels":{{"com.docker.compose.project":"proj","com.docker.compose.volume":"data","{k}":"{val}"}}}}"#
    );
    let (status, v) = d.api("POST", "/v1.41/volumes/create", Some(body.as_bytes()));
    assert_eq!(
        (status, v["Name"].as_str()),
        (201, Some(compose.as_str())),
        "{v}"
    );
    assert_eq!(v["Labels"]["com.docker.compose.volume"], "data");
    let (status, _) = d.api("GET", &format!("/v1.41/volumes/{compose}"), None);
    assert_eq!(status, 200);
    let filters = urlencode(&format!(r#"{{"label":["{mark}"]}}"#));
    let (status, v) = d.api(
        "POST",
        &format!("/v1.41/volumes/prune?filters={filters}"),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(v["VolumesDeleted"], serde_json::json!([compose]), "{v}");
    assert!(v["SpaceReclaimed"].is_u64(), "{v}");

    let again = format!("{named}-rm");
    d.docker_ok(&["volume", "create", "--label", &mark, &again]);
    d.docker_ok(&["volume", "rm", &again]);
    let out = d.docker(&["volume", "inspect", &again]);
    assert!(
        !out.status.success() && stderr(&out).contains("No such volume"),
        "{out:?}"
    );
    let out = d.docker(&["volume", "create", "bad/name"]);
    assert!(
        !out.status.success() && stderr(&out).contains("invalid characters"),
        "{out:?}"
    );
    let out = d.docker(&["volume", "create", "-d", "nfs-plugin", "x"]);
    assert!(
        !out.status.success() && stderr(&out).contains("plugin \"nfs-plugin\" not found"),
        "{out:?}"
    );
}

#[test]
fn volumes_through_the_cli_native() {
    volumes_through_the_cli(Runtime::Native);
}

#[test]
fn volumes_through_the_cli_docker() {
    volumes_through_the_cli(Runtime::Docker);
}

fn python_sdk(rt: Runtime) {
    if !need(&[Need::PythonDockerSdk]) {
        return;
    }
    let Some(d) = daemon(rt) else { return };
    let r = repo(&format!("py-{}", rt.flag()));
    let _guard = EngineTags(vec![format!("{r}:py")]);
    let vol = format!("pyvol-{}-{}", std::process::id(), rt.flag());
    let mark = format!("{}-{}", std::process::id(), rt.flag());
    let script = format!(
        r#"
import docker
c = docker.DockerClient(base_url="{host}", version="auto")
img = c.images.get("{image}")
assert img.id.startswith("sha256:"), img.id
assert "{image}" in img.tags, img.tags
assert img.attrs["Config"]["Cmd"] == ["/bin/sh"], img.attrs
assert img.history()[0]["Id"] == img.id
assert img.tag("{repo}", "py")
data = b"".join(c.images.get("{repo}:py").save(named="{repo}:py"))
c.images.remove("{repo}:py")
try:
    c.images.get("{repo}:py")
    raise SystemExit("still there")
except docker.errors.ImageNotFound:
    pass
loaded = c.images.load(data)
assert [i.id for i in loaded] == [img.id], loaded
c.images.remove("{repo}:py")
try:
    c.images.search("busybox")
    raise SystemExit("search answered")
except docker.errors.APIError as e:
    assert e.status_code == 501, e
v = c.volumes.create(name="{vol}", labels={{"sdk": "{mark}"}})
assert v.attrs["Labels"]["sdk"] == "{mark}", v.attrs
assert [x.name for x in c.volumes.list(filters={{"label": "sdk={mark}"}})] == ["{vol}"]
assert c.volumes.get("{vol}").attrs["Driver"] == "local"
p = c.volumes.prune(filters={{"all": "true", "label": "sdk={mark}"}})
assert p["VolumesDeleted"] == ["{vol}"], p
print("ok")
"#,
        host = d.host(),
        image = TEST_IMAGE,
        repo = r,
    );
    assert_eq!(common::python(&script).trim(), "ok");
}

#[test]
fn python_sdk_native() {
    python_sdk(Runtime::Native);
}

#[test]
fn python_sdk_docker() {
    python_sdk(Runtime::Docker);
}

/// Bad input gets Docker's status and a message naming what is wrong; the daemon carries on.
fn bad_input_is_refused(rt: Runtime) {
    let Some(d) = daemon(rt) else { return };
    let check = |method: &str, path: &str, body: Option<&[u8]>, status: u16, needle: &str| {
        let (got, v) = d.api(method, path, body);
        assert_eq!(got, status, "{method} {path}: {v}");
        let message = v["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{method} {path}: {message:?}");
    };
    let images = "/v1.50/images";
    check(
        "GET",
        &format!("{images}/Bad%20Name/json"),
        None,
        400,
        "invalid reference format",
    );
    check(
        "GET",
        &format!("{images}/Bad/history"),
        None,
        400,
        "lowercase",
    );
    let tag = format!("{images}/shoal-test/busybox/tag");
    check("POST", &format!("{tag}?repo=Bad&tag=x"), None, 400, "repo");
    check("POST", &format!("{tag}?repo=ok&tag=-x"), None, 400, "tag");
    check("POST", &format!("{tag}?tag=x"), None, 400, "repo");
    let missing = "No such image: shoal-test/nope";
    check(
        "POST",
        &format!("{images}/shoal-test/nope/tag?repo=ok&tag=x"),
        None,
        404,
        missing,
    );
    check("GET", &format!("{images}/get"), None, 400, "names");
    check(
        "GET",
        &format!("{images}/search?term=busybox"),
        None,
        501,
        "not supported",
    );

    let filters = |f: &str| format!("filters={}", urlencode(f));
    check(
        "GET",
        &format!("/v1.50/volumes?{}", filters("{bad")),
        None,
        400,
        "filters",
    );
    let bogus = filters(r#"{"bogus":["x"]}"#);
    check(
        "GET",
        &format!("/v1.50/volumes?{bogus}"),
        None,
        400,
        "invalid filter 'bogus'",
    );
    let all = filters(r#"{"all":["perhaps"]}"#);
    let why = "invalid filter 'all=perhaps'";
    check(
        "POST",
        &format!("/v1.50/volumes/prune?{all}"),
        None,
        400,
        why,
    );
    let create = "/v1.50/volumes/create";
    check("POST", create, Some(b"not json"), 400, "invalid JSON");
    let bad_name = br#"{"Name":"bad/name"}"#;
    check("POST", create, Some(bad_name), 400, "invalid characters");
    let plugin = br#"{"Name":"x","Driver":"nfs"}"#;
    check(
        "POST",
        create,
        Some(plugin),
        404,
        "plugin \"nfs\" not found",
    );

    let out = d.docker(&["search", "busybox"]);
    assert!(
        !out.status.success() && stderr(&out).contains("image search is not supported"),
        "{out:?}"
    );
    let (status, _) = d.api("GET", "/_ping", None);
    assert_eq!(status, 200, "the daemon still answers");
}

#[test]
fn bad_input_is_refused_native() {
    bad_input_is_refused(Runtime::Native);
}

#[test]
fn bad_input_is_refused_docker() {
    bad_input_is_refused(Runtime::Docker);
}
