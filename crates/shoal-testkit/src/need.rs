//! The one guard for "a tool or privilege this test needs is missing".
//!
//! A test states what it needs from the machine with [`need`]. When everything is there it runs.
//! When something is missing the test FAILS, naming what is missing and how to install it, on
//! every machine and not only in CI: a test that passes because it did not run is a lie in the
//! summary. The one way out is explicit: `SHOAL_TEST_ALLOW_MISSING=docker,root` (or `=all`) lets
//! the named prerequisites be absent; such a test then prints loudly that it did NOT run, and
//! appends a line to the file named by `SHOAL_TEST_NOT_RUN_LOG` (set by `tests/run`) so the
//! test command can list every test that did not run. Stateless and thread-safe: each call probes
//! the machine afresh.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The opt-out variable: a comma-separated list of [`Need::key`]s, or `all`.
pub const ALLOW_MISSING: &str = "SHOAL_TEST_ALLOW_MISSING";
/// Where opted-out tests record that they did not run (one line each), when set.
pub const NOT_RUN_LOG: &str = "SHOAL_TEST_NOT_RUN_LOG";
/// The image `tests/images/build.sh` tags in the local Docker Engine.
pub const TEST_IMAGE: &str = "shoal-test/busybox:latest";
/// The `docker save` archive of [`TEST_IMAGE`] that `tests/images/build.sh` writes.
pub const TEST_ARCHIVE: &str = "/var/tmp/shoal-images/busybox.tar";

/// Something a test needs from the machine it runs on.
#[derive(Clone, Debug)]
pub enum Need {
    /// Effective user ID 0 (namespaces, cgroups, mounts, device nodes, switching users).
    Root,
    /// An executable on PATH (or in the sbin directories a bare root PATH may lack).
    Tool(&'static str),
    /// At least one of these executables (e.g. an OCI runtime: `crun` or `runc`).
    AnyTool(&'static [&'static str]),
    /// A Docker Engine answering the `docker` CLI (`docker version` reaches the server).
    DockerEngine,
    /// [`TEST_IMAGE`] in the local Docker Engine.
    TestImage,
    /// [`TEST_ARCHIVE`] on disk.
    TestArchive,
    /// The Python `docker` SDK (`import docker` in `python3`).
    PythonDockerSdk,
    /// A capability the test probed itself (e.g. trusted xattrs on the temp filesystem).
    Probed {
        /// The opt-out key.
        key: &'static str,
        /// Whether the probe found it.
        present: bool,
        /// What is missing, for the message.
        what: String,
        /// How to get it.
        fix: String,
    },
}

impl Need {
    /// The name `SHOAL_TEST_ALLOW_MISSING` uses for this prerequisite.
    pub fn key(&self) -> String {
        match self {
            Need::Root => "root".into(),
            Need::Tool(t) => (*t).into(),
            Need::AnyTool(ts) => ts.join("|"),
            Need::DockerEngine => "docker".into(),
            Need::TestImage | Need::TestArchive => "image".into(),
            Need::PythonDockerSdk => "python-docker".into(),
            Need::Probed { key, .. } => (*key).into(),
        }
    }

    /// Whether the machine has it.
    pub fn present(&self) -> bool {
        match self {
            Need::Root => nix::unistd::geteuid().is_root(),
            Need::Tool(t) => find_tool(t).is_some(),
            Need::AnyTool(ts) => ts.iter().any(|t| find_tool(t).is_some()),
            Need::DockerEngine => {
                succeeds("docker", &["version", "--format", "{{.Server.Version}}"])
            }
            Need::TestImage => succeeds("docker", &["image", "inspect", TEST_IMAGE]),
            Need::TestArchive => Path::new(TEST_ARCHIVE).is_file(),
            Need::PythonDockerSdk => succeeds("python3", &["-c", "import docker"]),
            Need::Probed { present, .. } => *present,
        }
    }

    /// What is missing and how to get it, in one line.
    pub fn describe(&self) -> String {
        match self {
            Need::Root => "root (namespaces, cgroups, mounts): run the tests as root".into(),
            Need::Tool(t) => format!("`{t}` on PATH: {}", install_hint(t)),
            Need::AnyTool(ts) => format!(
                "one of {} on PATH: {}",
                ts.iter()
                    .map(|t| format!("`{t}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                ts.iter()
                    .map(|t| install_hint(t))
                    .collect::<Vec<_>>()
                    .join(", or ")
            ),
            Need::DockerEngine => "a running Docker Engine reachable by the `docker` CLI \
                 (DOCKER_HOST or /var/run/docker.sock): apt-get install docker.io, \
                 then systemctl start docker"
                .into(),
            Need::TestImage => format!(
                "the image {TEST_IMAGE} in the Docker Engine: run tests/images/build.sh \
                 (needs a Docker Engine and busybox-static)"
            ),
            Need::TestArchive => format!(
                "{TEST_ARCHIVE}: run tests/images/build.sh (needs a Docker Engine and \
                 busybox-static)"
            ),
            Need::PythonDockerSdk => {
                "the Python docker SDK: python3 -m pip install docker==7.1.0".into()
            }
            Need::Probed { what, fix, .. } => format!("{what}: {fix}"),
        }
    }
}

/// The Debian package (or other step) that provides a tool.
fn install_hint(tool: &str) -> String {
    let package = match tool {
        "docker" => "docker-cli (or docker.io)",
        "busybox" => "busybox-static",
        "ip" => "iproute2",
        other => other,
    };
    format!("apt-get install {package}")
}

/// Whether a test that needs `needs` should run: true when everything is there. When something
/// is missing this panics naming it and how to install it, unless `SHOAL_TEST_ALLOW_MISSING`
/// allows every missing piece: then it prints that the test did NOT run and returns false.
pub fn need(needs: &[Need]) -> bool {
    let missing: Vec<&Need> = needs.iter().filter(|n| !n.present()).collect();
    if missing.is_empty() {
        return true;
    }
    let test = current_test();
    let allow = std::env::var(ALLOW_MISSING).unwrap_or_default();
    let lines: Vec<String> = missing
        .iter()
        .map(|n| format!("  - {}", n.describe()))
        .collect();
    let keys: Vec<String> = missing.iter().map(|n| n.key()).collect();
    if !missing.iter().all(|n| allowed(&allow, n)) {
        panic!(
            "{test} cannot run: this machine lacks\n{}\n`tests/run` (as root) installs the \
             packages and test images. To run the tests without them anyway, opt out \
             explicitly: {ALLOW_MISSING}={} (or =all); such tests then report that they did \
             not run.",
            lines.join("\n"),
            keys.join(",")
        );
    }
    eprintln!(
        "\n!!!!!!!!!! NOT RUN: {test} !!!!!!!!!!\n{ALLOW_MISSING}={allow} allows what it \
         lacks:\n{}\n!!!!!!!!!! this test did NOT run !!!!!!!!!!\n",
        lines.join("\n")
    );
    if let Some(log) = std::env::var_os(NOT_RUN_LOG) {
        // One short append per line: concurrent test processes do not interleave it.
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = writeln!(f, "{test}: lacks {}", keys.join(", "));
        }
    }
    false
}

/// Whether `SHOAL_TEST_ALLOW_MISSING`'s value lets `n` be missing.
fn allowed(allow: &str, n: &Need) -> bool {
    let keys: Vec<&str> = allow
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .collect();
    if keys.contains(&"all") {
        return true;
    }
    match n {
        // Any one of the alternatives' names (or the whole `a|b` key) opts the group out.
        Need::AnyTool(ts) => keys.iter().any(|k| ts.contains(k) || *k == n.key()),
        Need::TestImage | Need::TestArchive => keys.contains(&"image"),
        _ => keys.contains(&n.key().as_str()),
    }
}

/// The running test's name: libtest names each test's thread after it.
fn current_test() -> String {
    std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .map(str::to_string)
        .unwrap_or_else(|| {
            std::env::args()
                .next()
                .unwrap_or_else(|| "this test".into())
        })
}

/// `tool` on PATH, or in the sbin directories (runc lives in /usr/sbin).
pub fn find_tool(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(tool))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn absent(key: &'static str) -> Need {
        Need::Probed {
            key,
            present: false,
            what: format!("the {key} probe"),
            fix: "nothing to install".into(),
        }
    }

    #[test]
    fn opt_out_names_each_missing_piece_or_all() {
        assert!(allowed("all", &Need::Root));
        assert!(allowed("docker, root", &Need::Root));
        assert!(!allowed("docker", &Need::Root));
        assert!(!allowed("", &Need::Root));
        assert!(allowed("image", &Need::TestArchive));
        assert!(allowed("runc", &Need::AnyTool(&["crun", "runc"])));
        assert!(allowed("crun|runc", &Need::AnyTool(&["crun", "runc"])));
        assert!(!allowed(
            "docker-registry",
            &Need::AnyTool(&["crun", "runc"])
        ));
        assert!(allowed("xattr", &absent("xattr")));
    }

    #[test]
    fn what_is_there_passes() {
        let here = Need::Probed {
            key: "here",
            present: true,
            what: String::new(),
            fix: String::new(),
        };
        assert!(need(&[here, Need::Tool("sh")]));
    }

    #[test]
    fn a_missing_tool_says_what_to_install() {
        let d = Need::Tool("docker-registry").describe();
        assert!(d.contains("apt-get install docker-registry"), "{d}");
        assert!(Need::Tool("busybox").describe().contains("busybox-static"));
        assert!(Need::TestImage.describe().contains("tests/images/build.sh"));
        assert!(find_tool("no-such-tool-shoal").is_none());
    }

    #[test]
    fn a_missing_piece_fails_the_test_naming_it_unless_all_are_allowed() {
        let allow = std::env::var(ALLOW_MISSING).unwrap_or_default();
        let probe = absent("testkit-probe");
        if allowed(&allow, &probe) {
            // The caller opted out of everything: the test reports it did not run.
            assert!(!need(&[probe]));
            return;
        }
        let r = std::panic::catch_unwind(|| need(&[probe]));
        let msg = r
            .err()
            .and_then(|e| e.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        assert!(msg.contains("the testkit-probe probe"), "{msg}");
        assert!(
            msg.contains("SHOAL_TEST_ALLOW_MISSING=testkit-probe"),
            "{msg}"
        );
    }
}
