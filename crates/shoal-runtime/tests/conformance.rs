//! The fake driver passes the same conformance suite as the real ones, on paused tokio time as
//! the simulation runs it.

use async_trait::async_trait;
use shoal_runtime::conformance::{Harness, Limits};
use shoal_runtime::fake::{FakeDriver, FakeNode};
use shoal_types::Id;

struct Fake {
    node: FakeNode,
    behaviour: &'static str,
    dirs: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl Harness for Fake {
    type Driver = FakeDriver;

    async fn new(behaviour: &'static str) -> Option<Self> {
        let node = FakeNode::new();
        // The node has the harness's image before any task asks for it, as the real
        // harnesses' nodes do.
        node.add_image("shoal-test/busybox:latest");
        Some(Fake {
            node,
            behaviour,
            dirs: Default::default(),
        })
    }

    fn name(&self) -> &'static str {
        "fake"
    }

    async fn driver(&self) -> FakeDriver {
        FakeDriver::on(&self.node)
    }

    async fn stranger(&self) -> FakeDriver {
        FakeDriver::new()
    }

    fn image(&self) -> String {
        "shoal-test/busybox:latest".into()
    }

    fn unique(&self) -> String {
        self.behaviour.replace('_', "-")
    }

    async fn kill(&self, driver: &FakeDriver, task: &Id, _pid: i64, signal: i32) {
        driver.kill(task, signal);
    }

    async fn limits(&self, driver: &FakeDriver, task: &Id, _pid: i64) -> Option<Limits> {
        let l = driver.limits(task)?.limits;
        Some(Limits {
            memory_bytes: u64::try_from(l.memory_bytes).ok(),
            nano_cpus: u64::try_from(l.nano_cpus).ok(),
        })
    }

    async fn host_dir(&self, files: &[(&str, &str)]) -> String {
        let n = self.dirs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = format!("/fake/host/{n}");
        for (name, content) in files {
            self.node
                .write_file(&format!("{dir}/{name}"), content.as_bytes());
        }
        dir
    }
}

shoal_runtime::conformance_tests!(Fake, [tokio::test(start_paused = true)]);

/// The whole suite on one node, as openraft's `Suite::test_all` runs it.
#[tokio::test(start_paused = true)]
async fn all_behaviours_on_one_node() {
    let h = Fake::new("all").await.expect("fake");
    shoal_runtime::conformance::run_all(&h).await;
}
