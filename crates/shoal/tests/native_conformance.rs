//! The native runtime passes the driver conformance suite (`shoal_runtime::conformance`):
//! real processes under the real `shoal shim`, image tasks of the busybox test image run by
//! crun or runc from the node's real image store (`shoal-image`), loaded from the image's
//! `docker save` archive (tests/images/build.sh), as a daemon's store is. It needs root, an
//! OCI runtime and the archive (`shoal_testkit::need` fails without them). Each behaviour has its own root and cgroup
//! parent; the harness kills its shims and tasks, unmounts and removes its cgroups on drop,
//! even when the test fails. The native driver makes no network namespace of its own: for a
//! task with networks the harness makes one as the node's network layer does (`ip netns add`),
//! and deletes it on drop, after the tasks in it are killed.

#[path = "common/busybox.rs"]
mod busybox;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use busybox::{IMAGE, have_prerequisites};
use shoal_image::LocalImageStore;
use shoal_native::{NativeConfig, NativeDriver};
use shoal_runtime::conformance::{Harness, Limits, add_link_with_ip};
use shoal_runtime::image::ImageStore;
use shoal_testkit::{Need, need};
use shoal_types::Id;

struct Native {
    root: tempfile::TempDir,
    parent: String,
    behaviour: &'static str,
    dirs: AtomicUsize,
    /// The `ip netns` names made for tasks, deleted on drop.
    netns: Mutex<Vec<String>>,
    /// The node's image store, holding the test image; every driver of the harness shares it.
    images: Arc<LocalImageStore>,
}

impl Native {
    fn driver_on(&self, root: PathBuf) -> NativeDriver {
        let mut cfg = NativeConfig::new(root, PathBuf::from(env!("CARGO_BIN_EXE_shoal")));
        cfg.cgroup_parent = self.parent.clone();
        cfg.images = Some(self.images.clone());
        match NativeDriver::new(cfg) {
            Ok(d) => d,
            Err(e) => panic!("native driver: {e}"),
        }
    }
}

#[async_trait]
impl Harness for Native {
    type Driver = NativeDriver;

    async fn new(behaviour: &'static str) -> Option<Self> {
        if !have_prerequisites() || !need(&[Need::TestArchive]) {
            return None;
        }
        let root = tempfile::tempdir().expect("tempdir");
        let images = match LocalImageStore::open(&root.path().join("images"), Vec::new()) {
            Ok(s) => s,
            Err(e) => panic!("opening the image store: {e}"),
        };
        if let Err(e) = images.load(Path::new(shoal_testkit::TEST_ARCHIVE)).await {
            panic!("loading {}: {e}", shoal_testkit::TEST_ARCHIVE);
        }
        Some(Native {
            root,
            images: Arc::new(images),
            parent: shoal_testkit::scoped_name(
                "conf",
                &format!("{}-{behaviour}", std::process::id()),
            ),
            behaviour,
            dirs: AtomicUsize::new(0),
            netns: Mutex::default(),
        })
    }

    fn name(&self) -> &'static str {
        "native"
    }

    async fn driver(&self) -> NativeDriver {
        self.driver_on(self.root.path().join("native"))
    }

    /// Another daemon on the same machine: another data directory.
    async fn stranger(&self) -> NativeDriver {
        self.driver_on(self.root.path().join("other/native"))
    }

    fn image(&self) -> String {
        IMAGE.into()
    }

    fn unique(&self) -> String {
        self.behaviour.replace('_', "-")
    }

    async fn kill(&self, _driver: &NativeDriver, _task: &Id, pid: i64, signal: i32) {
        shoal_testkit::probe::signal(pid, signal);
    }

    async fn limits(&self, _driver: &NativeDriver, _task: &Id, pid: i64) -> Option<Limits> {
        let (memory_bytes, nano_cpus) = shoal_testkit::probe::cgroup_limits(pid);
        Some(Limits {
            memory_bytes,
            nano_cpus,
        })
    }

    async fn host_dir(&self, files: &[(&str, &str)]) -> String {
        let n = self.dirs.fetch_add(1, Ordering::SeqCst);
        let dir = self.root.path().join(format!("host-{n}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        for (name, content) in files {
            std::fs::write(dir.join(name), content).expect("write");
        }
        dir.display().to_string()
    }

    async fn leftovers(&self, driver: &NativeDriver, task: &Id) -> Vec<String> {
        let mut left: Vec<String> = driver
            .task_cgroup_dirs(task)
            .into_iter()
            .filter(|d| d.exists())
            .map(|d| format!("cgroup {}", d.display()))
            .collect();
        let dir = driver.task_dir(task);
        if dir.exists() {
            left.push(format!("task directory {}", dir.display()));
        }
        left
    }

    /// A namespace as the node's network layer makes one for a task (the native driver makes
    /// none): `ip netns add`, named for this run so `tests/run` finds it if a crash leaves it.
    async fn memory_mounts(&self, task: &Id) -> Option<Vec<String>> {
        Some(shoal_runtime::conformance::tmpfs_mounts_naming(task))
    }

    async fn netns(&self, name: &str) -> Option<PathBuf> {
        if !need(&[Need::Root, Need::Tool("ip")]) {
            return None;
        }
        let netns = shoal_testkit::scoped_name("netns", &format!("{}-{name}", std::process::id()));
        // Recorded before it exists, so a failure half-way still deletes it on drop.
        self.netns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(netns.clone());
        let out = std::process::Command::new("ip")
            .args(["netns", "add", &netns])
            .output()
            .unwrap_or_else(|e| panic!("running ip netns add: {e}"));
        assert!(
            out.status.success(),
            "ip netns add {netns}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Some(PathBuf::from("/run/netns").join(netns))
    }

    async fn add_link(&self, netns: &Path, link: &str) -> bool {
        if !need(&[Need::Root, Need::Tool("ip"), Need::Tool("nsenter")]) {
            return false;
        }
        if let Err(e) = add_link_with_ip(netns, link) {
            panic!("{e}");
        }
        true
    }
}

impl Drop for Native {
    fn drop(&mut self) {
        shoal_testkit::reap(self.root.path(), &self.parent);
        let names = std::mem::take(self.netns.get_mut().unwrap_or_else(|p| p.into_inner()));
        for name in names {
            let path = PathBuf::from("/run/netns").join(&name);
            shoal_testkit::hosts::kill_processes_in_netns(&path);
            let _ = std::process::Command::new("ip")
                .args(["netns", "delete", &name])
                .output();
        }
    }
}

shoal_runtime::conformance_tests!(Native);
