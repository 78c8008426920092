//! Per-task cgroups (`<cgroup_parent>/<task-id>`) through `cgroups-rs`, on v1 (one hierarchy per
//! controller) or v2 (unified). The driver creates a task's cgroup and sets its limits at
//! prepare, the task's process joins it itself before exec (by writing "0" to `cgroup.procs` fds
//! the shim opened, so nothing it allocates escapes accounting), the shim reads the OOM-kill
//! counter when the process ends, and the driver deletes the cgroup at remove.
//!
//! Only the memory, cpu and pids controllers are used. A limit whose controller is missing is an
//! error at prepare, never silently ignored. All calls are blocking filesystem IO on cgroupfs: async
//! callers run them on a blocking thread.

use std::path::{Path, PathBuf};

use cgroups_rs::fs::cpu::CpuController;
use cgroups_rs::fs::memory::MemController;
use cgroups_rs::fs::pid::PidController;
use cgroups_rs::fs::{Cgroup, Controller, MaxValue, hierarchies};
use shoal_types::service::Limits;

use super::layout::OomSource;

/// CFS period Docker uses (100 ms), in microseconds.
const CFS_PERIOD_US: u64 = 100_000;
/// Docker's floor for a memory limit.
const MIN_MEMORY: i64 = 6 * 1024 * 1024;
/// Docker's floor for a CPU limit: 0.01 CPU.
const MIN_NANO_CPUS: i64 = 10_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CgroupVersion {
    /// No cgroup filesystem this process can use.
    Unavailable,
    V1,
    V2,
}

/// What the node's cgroups can enforce for tasks under the configured parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CgroupSupport {
    pub version: CgroupVersion,
    pub memory: bool,
    pub cpu: bool,
    pub pids: bool,
}

impl CgroupSupport {
    pub const NONE: CgroupSupport = CgroupSupport {
        version: CgroupVersion::Unavailable,
        memory: false,
        cpu: false,
        pids: false,
    };

    fn controllers(&self) -> Vec<String> {
        let mut c = Vec::new();
        if self.memory {
            c.push("memory".to_string());
        }
        if self.cpu {
            c.push("cpu".to_string());
        }
        if self.pids {
            c.push("pids".to_string());
        }
        c
    }
}

/// The cgroup filesystem in use: v2 when `/sys/fs/cgroup` is cgroup2, v1 when some v1 hierarchy
/// is mounted, else none (checked before handing anything to cgroups-rs, which assumes a mount).
fn detect_version() -> CgroupVersion {
    if hierarchies::is_cgroup2_unified_mode() {
        return CgroupVersion::V2;
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let v1 = mounts.lines().any(|l| {
        l.split_once(" - ")
            .is_some_and(|(_, rest)| rest.split_whitespace().next() == Some("cgroup"))
    });
    if v1 {
        CgroupVersion::V1
    } else {
        CgroupVersion::Unavailable
    }
}

fn load(support: &CgroupSupport, path: &str) -> Cgroup {
    Cgroup::load_with_specified_controllers(hierarchies::auto(), path, support.controllers())
}

/// Creates the parent cgroup and reports which controllers tasks under it can use.
pub(crate) fn probe(parent: &str) -> CgroupSupport {
    let version = detect_version();
    if version == CgroupVersion::Unavailable || parent.is_empty() {
        return CgroupSupport::NONE;
    }
    // Ask for all; keep what the hierarchy has and what this process may create.
    let mut wanted = CgroupSupport {
        version,
        memory: true,
        cpu: true,
        pids: true,
    };
    if version == CgroupVersion::V2 {
        let available =
            std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").unwrap_or_default();
        let has = |c: &str| available.split_whitespace().any(|a| a == c);
        wanted.memory = has("memory");
        wanted.cpu = has("cpu");
        wanted.pids = has("pids");
    }
    let mut cg = load(&wanted, parent);
    let mut created = cg.create().is_ok();
    if !created && wanted.pids {
        // Newest of the three, and the one a node is likeliest to lack or lock: without it,
        // memory and CPU limits still hold.
        wanted.pids = false;
        cg = load(&wanted, parent);
        created = cg.create().is_ok();
    }
    if !created {
        return CgroupSupport {
            version,
            ..CgroupSupport::NONE
        };
    }
    let has = |ctl: &str, v1_file: &str, v2_file: &str| {
        cg.subsystems().iter().any(|s| {
            let c = s.to_controller();
            s.controller_name() == ctl
                && c.path()
                    .join(if c.v2() { v2_file } else { v1_file })
                    .exists()
        })
    };
    CgroupSupport {
        version,
        memory: wanted.memory && has("memory", "memory.limit_in_bytes", "memory.max"),
        cpu: wanted.cpu && has("cpu", "cpu.cfs_quota_us", "cpu.max"),
        pids: wanted.pids && has("pids", "pids.max", "pids.max"),
    }
}

/// Checks requested limits against what the node enforces. `Err((field, why))`.
pub(crate) fn validate_limits(
    limits: &Limits,
    support: &CgroupSupport,
    ncpus: i64,
) -> Result<(), (&'static str, String)> {
    if limits.memory_bytes != 0 {
        let field = "resources.limits.memory_bytes";
        if limits.memory_bytes < MIN_MEMORY {
            return Err((field, "Minimum memory limit allowed is 6MB".into()));
        }
        if !support.memory {
            return Err((field, "a memory limit was requested but the memory cgroup controller is not available on this node".into()));
        }
    }
    if limits.nano_cpus != 0 {
        let field = "resources.limits.nano_cpus";
        if limits.nano_cpus < MIN_NANO_CPUS
            || limits.nano_cpus > ncpus.saturating_mul(1_000_000_000)
        {
            return Err((
                field,
                format!(
                    "range of CPUs is from 0.01 to {ncpus}.00, as there are only {ncpus} CPUs available"
                ),
            ));
        }
        if !support.cpu {
            return Err((field, "a CPU limit was requested but the cpu cgroup controller is not available on this node".into()));
        }
    }
    if limits.pids != 0 {
        let field = "resources.limits.pids";
        if limits.pids < 0 {
            return Err((
                field,
                format!("expected a number >= 0, got {}", limits.pids),
            ));
        }
        if !support.pids {
            return Err((field, "a PIDs limit was requested but the pids cgroup controller is not available on this node".into()));
        }
    }
    Ok(())
}

/// What the shim needs of a created task cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TaskCgroup {
    pub procs: Vec<PathBuf>,
    pub oom: Option<OomSource>,
}

fn task_path(parent: &str, task_id: &str) -> String {
    format!("{parent}/{task_id}")
}

/// The directories of a task's cgroup, one per controller hierarchy (one in all on v2).
pub(crate) fn task_dirs(support: &CgroupSupport, parent: &str, task_id: &str) -> Vec<PathBuf> {
    if support.controllers().is_empty() {
        return Vec::new();
    }
    let mut dirs: Vec<PathBuf> = load(support, &task_path(parent, task_id))
        .subsystems()
        .iter()
        .map(|s| s.to_controller().path().to_path_buf())
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// Creates the task's cgroup with its limits. `Ok(None)` when the node has no usable controller
/// (nothing was requested, or `validate_limits` would have refused).
pub(crate) fn create(
    support: &CgroupSupport,
    parent: &str,
    task_id: &str,
    limits: &Limits,
) -> Result<Option<TaskCgroup>, String> {
    if support.controllers().is_empty() {
        return Ok(None);
    }
    let path = task_path(parent, task_id);
    let cg = load(support, &path);
    cg.create()
        .map_err(|e| format!("creating cgroup {path}: {e}"))?;
    let applied = apply_limits(&cg, limits);
    if let Err(e) = applied {
        let _ = cg.delete();
        return Err(format!("setting limits on cgroup {path}: {e}"));
    }
    let dirs = task_dirs(support, parent, task_id);
    let oom = cg.controller_of::<MemController>().map(|m| {
        let file = if m.v2() {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        OomSource {
            path: m.path().join(file),
        }
    });
    Ok(Some(TaskCgroup {
        procs: dirs.iter().map(|d| d.join("cgroup.procs")).collect(),
        oom,
    }))
}

fn apply_limits(cg: &Cgroup, limits: &Limits) -> Result<(), cgroups_rs::fs::error::Error> {
    if limits.memory_bytes > 0
        && let Some(mem) = cg.controller_of::<MemController>()
    {
        mem.set_limit(limits.memory_bytes)?;
        // A limit means memory, not memory plus swap: on v1 cap memory+swap at the same value,
        // on v2 allow no swap. Kernels without swap accounting lack the file; that is fine.
        let swap = if mem.v2() { 0 } else { limits.memory_bytes };
        let swap_file = if mem.v2() {
            "memory.swap.max"
        } else {
            "memory.memsw.limit_in_bytes"
        };
        if mem.path().join(swap_file).exists() {
            mem.set_memswap_limit(swap)?;
        }
    }
    if limits.nano_cpus > 0
        && let Some(cpu) = cg.controller_of::<CpuController>()
    {
        let quota = limits.nano_cpus.saturating_mul(CFS_PERIOD_US as i64) / 1_000_000_000;
        cpu.set_cfs_quota_and_period(Some(quota.max(1000)), Some(CFS_PERIOD_US))?;
    }
    // Processes and threads alike, as Docker's `PidsLimit`: a fork or clone past it fails with
    // EAGAIN, and nothing already running is killed.
    if limits.pids > 0
        && let Some(pids) = cg.controller_of::<PidController>()
    {
        pids.set_pid_max(MaxValue::Value(limits.pids))?;
    }
    Ok(())
}

/// Kills whatever is left in the task's cgroup (only possible without a PID namespace, where the
/// task's orphans outlive it) and deletes the cgroup. Missing cgroups are fine.
pub(crate) fn remove(support: &CgroupSupport, parent: &str, task_id: &str) -> Result<(), String> {
    if support.controllers().is_empty() {
        return Ok(());
    }
    let path = task_path(parent, task_id);
    let cg = load(support, &path);
    for dir in task_dirs(support, parent, task_id) {
        for pid in read_pids(&dir.join("cgroup.procs")) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    if !cg.exists() {
        return Ok(());
    }
    cg.delete()
        .map_err(|e| format!("removing cgroup {path}: {e}"))
}

/// Removes the (empty) parent cgroup; for tests and node teardown.
pub(crate) fn remove_parent(support: &CgroupSupport, parent: &str) -> Result<(), String> {
    if support.controllers().is_empty() || parent.is_empty() {
        return Ok(());
    }
    let cg = load(support, parent);
    if !cg.exists() {
        return Ok(());
    }
    cg.delete()
        .map_err(|e| format!("removing cgroup {parent}: {e}"))
}

fn read_pids(path: &Path) -> Vec<i32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// The `oom_kill N` counter of `memory.oom_control` (v1) or `memory.events` (v2).
pub(crate) fn parse_oom_kills(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: CgroupSupport = CgroupSupport {
        version: CgroupVersion::V1,
        memory: true,
        cpu: true,
        pids: true,
    };

    #[test]
    fn parses_oom_counters_of_both_versions() {
        assert_eq!(
            parse_oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"),
            2
        );
        assert_eq!(
            parse_oom_kills("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\noom_group_kill 0\n"),
            1
        );
        assert_eq!(parse_oom_kills("oom_kill_disable 0\nunder_oom 0\n"), 0);
        assert_eq!(parse_oom_kills(""), 0);
    }

    #[test]
    fn validates_limits_like_docker() {
        let mem = |m| Limits {
            memory_bytes: m,
            ..Default::default()
        };
        let cpu = |c| Limits {
            nano_cpus: c,
            ..Default::default()
        };
        let pids = |p| Limits {
            pids: p,
            ..Default::default()
        };
        assert_eq!(
            validate_limits(&Limits::default(), &CgroupSupport::NONE, 2),
            Ok(())
        );
        assert_eq!(validate_limits(&mem(64 << 20), &ALL, 2), Ok(()));
        assert_eq!(validate_limits(&cpu(500_000_000), &ALL, 2), Ok(()));
        let (field, why) = validate_limits(&mem(1024), &ALL, 2).expect_err("too small");
        assert_eq!(field, "resources.limits.memory_bytes");
        assert!(why.contains("6MB"), "{why}");
        let (field, why) = validate_limits(&cpu(3_000_000_000), &ALL, 2).expect_err("too many");
        assert_eq!(field, "resources.limits.nano_cpus");
        assert!(why.contains("0.01 to 2.00"), "{why}");
        let no_mem = CgroupSupport {
            memory: false,
            ..ALL
        };
        let (_, why) = validate_limits(&mem(64 << 20), &no_mem, 2).expect_err("no controller");
        assert!(
            why.contains("memory cgroup controller is not available"),
            "{why}"
        );
        let no_cpu = CgroupSupport { cpu: false, ..ALL };
        let (_, why) = validate_limits(&cpu(1_000_000_000), &no_cpu, 2).expect_err("no controller");
        assert!(
            why.contains("cpu cgroup controller is not available"),
            "{why}"
        );
        assert_eq!(validate_limits(&pids(20), &ALL, 2), Ok(()));
        let (field, why) = validate_limits(&pids(-1), &ALL, 2).expect_err("negative");
        assert_eq!(field, "resources.limits.pids");
        assert!(why.contains(">= 0, got -1"), "{why}");
        let no_pids = CgroupSupport { pids: false, ..ALL };
        let (field, why) = validate_limits(&pids(20), &no_pids, 2).expect_err("no controller");
        assert_eq!(field, "resources.limits.pids");
        assert!(
            why.contains("pids cgroup controller is not available"),
            "{why}"
        );
    }
}
