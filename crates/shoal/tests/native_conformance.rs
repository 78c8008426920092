//! The native runtime passes the driver conformance suite (`shoal_runtime::conformance`):
//! real processes under the real `shoal shim`, image tasks of the busybox test image (see
//! `common/busybox.rs`) run by crun or runc. It needs root, an OCI runtime and the image
//! (`shoal_testkit::need` fails without them). Each behaviour has its own root and cgroup
//! parent; the harness kills its shims and tasks, unmounts and removes its cgroups on drop,
//! even when the test fails.

#[path = "common/busybox.rs"]
mod busybox;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use busybox::{DirStore, IMAGE, busybox_rootfs, have_prerequisites};
use shoal_native::{NativeConfig, NativeDriver};
use shoal_runtime::conformance::{Harness, Limits};
use shoal_types::Id;

struct Native {
    root: tempfile::TempDir,
    parent: String,
    behaviour: &'static str,
    dirs: AtomicUsize,
}

impl Native {
    fn driver_on(&self, root: PathBuf) -> NativeDriver {
        let mut cfg = NativeConfig::new(root, PathBuf::from(env!("CARGO_BIN_EXE_shoal")));
        cfg.cgroup_parent = self.parent.clone();
        cfg.images = Some(Arc::new(DirStore {
            rootfs: busybox_rootfs(),
            healthcheck: None,
        }));
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
        if !have_prerequisites() {
            return None;
        }
        Some(Native {
            root: tempfile::tempdir().expect("tempdir"),
            parent: shoal_testkit::scoped_name(
                "conf",
                &format!("{}-{behaviour}", std::process::id()),
            ),
            behaviour,
            dirs: AtomicUsize::new(0),
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
}

impl Drop for Native {
    fn drop(&mut self) {
        shoal_testkit::reap(self.root.path(), &self.parent);
    }
}

shoal_runtime::conformance_tests!(Native);
