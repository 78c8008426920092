//! The test image for the native runtime's image tasks: `shoal-test/busybox:latest` (built by
//! `tests/images/build.sh`), unpacked once into /var/tmp/shoal-images/busybox-rootfs with
//! `docker create` + `docker export`; without Docker the same tree is assembled from the
//! node's static busybox. [`DirStore`] serves it as an `ImageStore`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use shoal_runtime::ImageInfo;
use shoal_runtime::RuntimeError;
use shoal_runtime::image::{ImageConfig, ImageStore, ResolvedImage};
use shoal_testkit::{Need, need};
use shoal_types::container::HealthConfig;

pub const IMAGE: &str = "shoal-test/busybox:latest";

/// Root, an OCI runtime, and something to build the busybox rootfs from.
pub fn have_prerequisites() -> bool {
    let rootfs_source = Path::new("/var/tmp/shoal-images/busybox-rootfs/bin/sh").exists()
        || Need::Tool("busybox").present()
        || Need::TestImage.present();
    need(&[
        Need::Root,
        Need::AnyTool(&["crun", "runc"]),
        Need::Probed {
            key: "busybox",
            present: rootfs_source,
            what: format!("{IMAGE} or Debian's static busybox, to build the test rootfs from"),
            fix: "apt-get install busybox-static (or run tests/images/build.sh)".into(),
        },
    ])
}

/// The unpacked image, made once per machine (atomically, so parallel test processes agree).
pub fn busybox_rootfs() -> PathBuf {
    let base = PathBuf::from("/var/tmp/shoal-images");
    let dir = base.join("busybox-rootfs");
    if dir.join("bin/sh").exists() {
        return dir;
    }
    std::fs::create_dir_all(&base).expect("create /var/tmp/shoal-images");
    let tmp = tempfile::tempdir_in(&base).expect("tempdir");
    let out = tmp.path().join("rootfs");
    std::fs::create_dir_all(&out).expect("mkdir");
    if !export_with_docker(&out) {
        assemble_from_busybox(&out);
    }
    // Losing the race to another test process is fine: its tree is the same.
    let _ = std::fs::rename(&out, &dir);
    assert!(
        dir.join("bin/sh").exists(),
        "no usable busybox rootfs at {}",
        dir.display()
    );
    dir
}

fn export_with_docker(out: &Path) -> bool {
    let have_image = std::process::Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have_image {
        return false;
    }
    let Ok(created) = std::process::Command::new("docker")
        .args(["create", IMAGE])
        .output()
    else {
        return false;
    };
    let id = String::from_utf8_lossy(&created.stdout).trim().to_string();
    if !created.status.success() || id.is_empty() {
        return false;
    }
    let ok = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("docker export {id} | tar -x -C {}", out.display()))
        .status()
        .is_ok_and(|s| s.success());
    let _ = std::process::Command::new("docker")
        .args(["rm", "-f", &id])
        .output();
    ok && out.join("bin/sh").exists()
}

/// The same tree as the test image, from the node's static busybox (tests/images/build.sh).
fn assemble_from_busybox(out: &Path) {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("no docker image and no busybox-static to build the test rootfs from");
    for d in ["bin", "tmp", "etc", "var/www", "proc", "dev", "sys"] {
        std::fs::create_dir_all(out.join(d)).expect("mkdir");
    }
    std::fs::copy(&busybox, out.join("bin/busybox")).expect("copy busybox");
    let list = std::process::Command::new(&busybox)
        .arg("--list")
        .output()
        .expect("busybox --list");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let _ = std::os::unix::fs::symlink("/bin/busybox", out.join("bin").join(applet));
    }
    std::fs::write(
        out.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .expect("passwd");
    std::fs::write(out.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").expect("group");
    std::fs::write(out.join("var/www/index.html"), "hello from shoal\n").expect("index");
}

/// Serves the one test image under its name (and a bare name), with the image's config.
pub struct DirStore {
    pub rootfs: PathBuf,
    pub healthcheck: Option<HealthConfig>,
}

#[async_trait::async_trait]
impl ImageStore for DirStore {
    async fn resolve(&self, reference: &str, _pull: bool) -> Result<ResolvedImage, RuntimeError> {
        if reference != IMAGE && reference != "shoal-test/busybox" {
            return Err(RuntimeError::ImageNotFound(reference.to_string()));
        }
        Ok(ResolvedImage {
            id: "sha256:0000000000000000000000000000000000000000000000000000000000000001".into(),
            layers: vec![self.rootfs.clone()],
            config: ImageConfig {
                cmd: vec!["/bin/sh".into()],
                env: vec!["PATH=/bin".into()],
                healthcheck: self.healthcheck.clone(),
                ..Default::default()
            },
        })
    }

    async fn list(&self) -> Result<Vec<ImageInfo>, RuntimeError> {
        Ok(Vec::new())
    }

    async fn load(&self, _archive: &Path) -> Result<Vec<String>, RuntimeError> {
        Ok(Vec::new())
    }

    async fn pull(&self, reference: &str) -> Result<ImageInfo, RuntimeError> {
        Err(RuntimeError::ImageNotFound(reference.to_string()))
    }

    async fn remove(
        &self,
        reference: &str,
        _force: bool,
        _in_use: &[String],
    ) -> Result<Vec<String>, RuntimeError> {
        Err(RuntimeError::ImageNotFound(reference.to_string()))
    }
}
