//! The Docker runtime passes the driver conformance suite (`shoal_runtime::conformance`),
//! against the real Docker Engine with the locally built `shoal-test/busybox:latest`
//! (tests/images/build.sh). Each behaviour has its own owner label; the harness removes the
//! containers and volumes of it (and of its "stranger"), and the image tags it made, even when
//! the test fails.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use async_trait::async_trait;
use shoal_docker::{DockerDriver, LABEL_OWNER, LABEL_SANDBOX_TASK_ID, LABEL_TASK_ID};
use shoal_runtime::conformance::{Harness, Limits, add_link_with_ip};
use shoal_testkit::{Need, TEST_IMAGE, need};
use shoal_types::Id;

struct Docker {
    owner: String,
    behaviour: &'static str,
    dirs: Mutex<Vec<tempfile::TempDir>>,
}

impl Docker {
    fn stranger_owner(&self) -> String {
        format!("{}-other", self.owner)
    }
}

async fn connect(owner: &str) -> DockerDriver {
    match DockerDriver::connect(owner).await {
        Ok(d) => d,
        Err(e) => panic!("the Docker Engine answers the CLI but not the driver: {e}"),
    }
}

#[async_trait]
impl Harness for Docker {
    type Driver = DockerDriver;

    async fn new(behaviour: &'static str) -> Option<Self> {
        if !need(&[Need::Tool("docker"), Need::DockerEngine, Need::TestImage]) {
            return None;
        }
        // The cleanup finds a test's containers by the label the driver sets.
        assert_eq!(LABEL_OWNER, shoal_testkit::reap::OWNER_LABEL);
        let owner =
            shoal_testkit::scoped_name("docker", &format!("{}-{behaviour}", std::process::id()));
        Some(Docker {
            owner,
            behaviour,
            dirs: Mutex::default(),
        })
    }

    fn name(&self) -> &'static str {
        "docker"
    }

    async fn driver(&self) -> DockerDriver {
        connect(&self.owner).await
    }

    async fn stranger(&self) -> DockerDriver {
        connect(&self.stranger_owner()).await
    }

    fn image(&self) -> String {
        TEST_IMAGE.into()
    }

    fn unique(&self) -> String {
        format!(
            "{}-{}",
            std::process::id(),
            self.behaviour.replace('_', "-")
        )
    }

    async fn kill(&self, _driver: &DockerDriver, _task: &Id, pid: i64, signal: i32) {
        shoal_testkit::probe::signal(pid, signal);
    }

    async fn limits(&self, _driver: &DockerDriver, _task: &Id, pid: i64) -> Option<Limits> {
        let (memory_bytes, nano_cpus) = shoal_testkit::probe::cgroup_limits(pid);
        Some(Limits {
            memory_bytes,
            nano_cpus,
        })
    }

    async fn host_dir(&self, files: &[(&str, &str)]) -> String {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, content) in files {
            std::fs::write(dir.path().join(name), content).expect("write");
        }
        let path = dir.path().display().to_string();
        self.dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(dir);
        path
    }

    async fn memory_mounts(&self, task: &Id) -> Option<Vec<String>> {
        Some(shoal_runtime::conformance::tmpfs_mounts_naming(task))
    }

    async fn leftovers(&self, _driver: &DockerDriver, task: &Id) -> Vec<String> {
        let mut left = Vec::new();
        for (label, what) in [
            (LABEL_TASK_ID, "container"),
            (LABEL_SANDBOX_TASK_ID, "network sandbox"),
        ] {
            let out = Command::new("docker")
                .args(["ps", "-aq", "--filter"])
                .arg(format!("label={label}={task}"))
                .output()
                .expect("docker ps");
            left.extend(
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .map(|c| format!("{what} {c}")),
            );
        }
        left
    }

    /// The driver makes the namespaces itself (its sandboxes), in which the node's network
    /// layer adds interfaces as root.
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

impl Drop for Docker {
    fn drop(&mut self) {
        shoal_testkit::reap::remove_docker_objects(&self.owner);
        shoal_testkit::reap::remove_docker_objects(&self.stranger_owner());
        // The tags the image behaviours made on the shared engine (untagging only: the
        // image itself keeps its own tag).
        for repo in shoal_runtime::conformance::image_repositories(&self.unique()) {
            let Ok(out) = Command::new("docker")
                .args(["image", "ls", "--format", "{{.Repository}}:{{.Tag}}", &repo])
                .output()
            else {
                continue;
            };
            for tag in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("docker").args(["image", "rm", tag]).output();
            }
        }
    }
}

shoal_runtime::conformance_tests!(Docker);
