//! What a running task uses, read where the kernel counts it: the cgroups of its process (from
//! `/proc/<pid>/cgroup`, v1 controllers or the v2 unified tree) and the network namespace it
//! runs in (`/proc/<pid>/net/dev`). Used for `docker stats` and `docker top`. The parsers are
//! pure; reading is blocking and runs on tokio's blocking pool.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use shoal_runtime::exec::{TaskStats, parse_net_dev};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Where each controller of a process's cgroups is on the node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CgroupPaths {
    /// v1: controller name → directory.
    pub v1: BTreeMap<String, PathBuf>,
    /// v2: the unified directory.
    pub v2: Option<PathBuf>,
}

impl CgroupPaths {
    /// Parses `/proc/<pid>/cgroup` against the cgroup mounts under `root`.
    pub fn parse(text: &str, root: &Path) -> CgroupPaths {
        let mut out = CgroupPaths::default();
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let rel = path.trim_start_matches('/');
            if ctrls.is_empty() {
                // On a hybrid node the unified tree sits under `unified/`.
                let unified = root.join("unified");
                let base = if unified.join("cgroup.controllers").exists() {
                    unified
                } else {
                    root.to_path_buf()
                };
                out.v2 = Some(base.join(rel));
                continue;
            }
            let mount = root.join(ctrls);
            for c in ctrls.split(',') {
                let c = c.trim_start_matches("name=");
                let dir = if mount.exists() {
                    mount.clone()
                } else {
                    root.join(c)
                };
                out.v1.insert(c.to_string(), dir.join(rel));
            }
        }
        out
    }

    fn v1(&self, controller: &str, file: &str) -> Option<String> {
        std::fs::read_to_string(self.v1.get(controller)?.join(file)).ok()
    }

    fn v2(&self, file: &str) -> Option<String> {
        std::fs::read_to_string(self.v2.as_ref()?.join(file)).ok()
    }

    /// The processes of the cgroup: a v1 controller that holds it, else the unified one.
    pub fn procs(&self) -> Vec<i64> {
        let text = ["pids", "memory", "cpu", "cpuacct", "systemd"]
            .iter()
            .find_map(|c| self.v1(c, "cgroup.procs"))
            .or_else(|| self.v2("cgroup.procs"))
            .unwrap_or_default();
        text.lines().filter_map(|l| l.trim().parse().ok()).collect()
    }
}

fn num(s: Option<String>) -> Option<u64> {
    s?.trim().parse().ok()
}

/// `key value` lines (memory.stat, cpu.stat, cpuacct.stat).
pub(crate) fn parse_kv(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// Read and write bytes from v1 `blkio.throttle.io_service_bytes` (`MAJ:MIN Read N` lines).
pub(crate) fn parse_blkio_v1(text: &str) -> (u64, u64) {
    let (mut r, mut w) = (0, 0);
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if let [_, op, n] = f.as_slice() {
            let n: u64 = n.parse().unwrap_or(0);
            match *op {
                "Read" => r += n,
                "Write" => w += n,
                _ => {}
            }
        }
    }
    (r, w)
}

/// Read and write bytes from v2 `io.stat` (`MAJ:MIN rbytes=N wbytes=N ...` lines).
pub(crate) fn parse_io_stat(text: &str) -> (u64, u64) {
    let (mut r, mut w) = (0, 0);
    for l in text.lines() {
        for kv in l.split_whitespace().skip(1) {
            match kv.split_once('=') {
                Some(("rbytes", n)) => r += n.parse().unwrap_or(0),
                Some(("wbytes", n)) => w += n.parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    (r, w)
}

/// USER_HZ, what `cpuacct.stat` counts in (100 on every Linux architecture shoal runs on).
const USER_HZ_NS: u64 = 10_000_000;

/// The usage of the task whose main process is `pid`; `node_memory` stands in for "no limit".
pub(crate) fn read(pid: i32, node_memory: u64, now: shoal_types::Timestamp) -> TaskStats {
    let cg = CgroupPaths::parse(
        &std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default(),
        Path::new(CGROUP_ROOT),
    );
    let mut s = TaskStats {
        read: now,
        ..Default::default()
    };
    if let Some(usage) = num(cg.v1("cpuacct", "cpuacct.usage")) {
        s.cpu_total_ns = usage;
        let st = parse_kv(&cg.v1("cpuacct", "cpuacct.stat").unwrap_or_default());
        s.cpu_user_ns = st.get("user").copied().unwrap_or(0) * USER_HZ_NS;
        s.cpu_system_ns = st.get("system").copied().unwrap_or(0) * USER_HZ_NS;
    } else if let Some(text) = cg.v2("cpu.stat") {
        let st = parse_kv(&text);
        s.cpu_total_ns = st.get("usage_usec").copied().unwrap_or(0) * 1000;
        s.cpu_user_ns = st.get("user_usec").copied().unwrap_or(0) * 1000;
        s.cpu_system_ns = st.get("system_usec").copied().unwrap_or(0) * 1000;
    }
    let limit;
    if let Some(usage) = num(cg.v1("memory", "memory.usage_in_bytes")) {
        s.memory_usage = usage;
        s.memory_stat = parse_kv(&cg.v1("memory", "memory.stat").unwrap_or_default());
        limit = num(cg.v1("memory", "memory.limit_in_bytes"));
    } else {
        s.memory_usage = num(cg.v2("memory.current")).unwrap_or(0);
        s.memory_stat = parse_kv(&cg.v2("memory.stat").unwrap_or_default());
        limit = num(cg.v2("memory.max"));
    }
    // An unlimited v1 cgroup shows a huge page-rounded i64::MAX; v2 says "max".
    s.memory_limit = limit
        .filter(|l| *l > 0 && *l < node_memory)
        .unwrap_or(node_memory);
    s.pids = num(cg.v1("pids", "pids.current"))
        .or_else(|| num(cg.v2("pids.current")))
        .unwrap_or_else(|| cg.procs().len() as u64);
    (s.block_read, s.block_write) = match cg.v1("blkio", "blkio.throttle.io_service_bytes") {
        Some(t) => parse_blkio_v1(&t),
        None => parse_io_stat(&cg.v2("io.stat").unwrap_or_default()),
    };
    s.networks =
        parse_net_dev(&std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap_or_default());
    s
}

/// The processes of the task whose main process is `pid`.
pub(crate) fn processes(pid: i32) -> Vec<i64> {
    let cg = CgroupPaths::parse(
        &std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default(),
        Path::new(CGROUP_ROOT),
    );
    let mut p = cg.procs();
    if p.is_empty() {
        p.push(i64::from(pid));
    }
    p.sort_unstable();
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_lines_name_their_directories() {
        let root = Path::new("/nonexistent-root");
        let cg = CgroupPaths::parse(
            "12:pids:/shoal/t1\n4:cpu,cpuacct:/shoal/t1\n1:name=systemd:/x\n0::/shoal/t1\n",
            root,
        );
        assert_eq!(cg.v1["pids"], root.join("pids/shoal/t1"));
        assert_eq!(cg.v1["cpuacct"], root.join("cpuacct/shoal/t1"));
        assert_eq!(cg.v1["systemd"], root.join("systemd/x"));
        assert_eq!(cg.v2, Some(root.join("shoal/t1")));
    }

    #[test]
    fn block_io_in_both_formats() {
        assert_eq!(
            parse_blkio_v1("8:0 Read 4096\n8:0 Write 512\n8:0 Total 4608\nTotal 4608\n"),
            (4096, 512)
        );
        assert_eq!(
            parse_io_stat("8:0 rbytes=10 wbytes=20 rios=1 wios=2\n8:16 rbytes=5 wbytes=0\n"),
            (15, 20)
        );
    }

    #[test]
    fn key_value_files() {
        let m = parse_kv("cache 10\nrss 20\nbad\n");
        assert_eq!(m.get("rss"), Some(&20));
        assert_eq!(m.len(), 2);
    }
}
