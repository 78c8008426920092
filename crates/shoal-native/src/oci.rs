//! The OCI runtime spec (`config.json`) of an image task's bundle, shaped like the one Docker
//! gives a container: its namespaces (PID, mount, UTS, IPC; the node's network namespace for
//! now, so a published port is reachable on the node), its cgroup, Docker's default
//! capabilities ± cap_add/cap_drop, rlimits, sysctls, a read-only root on request, and the
//! standard mounts (`/proc`, `/dev`, `/dev/pts`, `/dev/shm`, `/dev/mqueue`, `/sys` read-only,
//! the task's `/etc/hostname`, `/etc/hosts`, `/etc/resolv.conf`) followed by the spec's mounts.
//! Pure: everything comes in as arguments. The document is oci-spec's `runtime::Spec`, every
//! field set here: oci-spec's defaults (youki's namespaces, device rules, rlimits) are not ours.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::str::FromStr;

use oci_spec::runtime::{
    Capability, Linux, LinuxCapabilities, LinuxNamespace, LinuxNamespaceType, Mount, PosixRlimit,
    PosixRlimitBuilder, PosixRlimitType, Process as OciProcess, Root, Spec, User,
};
use shoal_types::container::Ulimit;

/// Docker's default capability set.
pub(crate) const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability, in kernel order (CAP_CHOWN = 0 ... CAP_CHECKPOINT_RESTORE = 40).
const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The capabilities this kernel knows (`/proc/sys/kernel/cap_last_cap`).
pub(crate) fn known_caps() -> &'static [&'static str] {
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(ALL_CAPS.len() - 1);
    &ALL_CAPS[..(last + 1).min(ALL_CAPS.len())]
}

fn normalize_cap(c: &str) -> String {
    let up = c.trim().to_ascii_uppercase();
    if up == "ALL" || up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    }
}

/// Docker's rules: start from the default set; `ALL` in cap_add gives every capability, `ALL`
/// in cap_drop drops every one not explicitly added; otherwise drops then adds.
pub(crate) fn capabilities(
    add: &[String],
    drop: &[String],
    known: &[&str],
) -> Result<Vec<String>, String> {
    let add: Vec<String> = add.iter().map(|c| normalize_cap(c)).collect();
    let drop: Vec<String> = drop.iter().map(|c| normalize_cap(c)).collect();
    for c in add.iter().chain(&drop) {
        if c != "ALL" && !known.contains(&c.as_str()) {
            return Err(format!("unknown capability: {c:?}"));
        }
    }
    let mut caps: Vec<String> = if add.iter().any(|c| c == "ALL") {
        known.iter().map(|c| c.to_string()).collect()
    } else if drop.iter().any(|c| c == "ALL") {
        Vec::new()
    } else {
        DEFAULT_CAPS
            .iter()
            .filter(|c| !drop.iter().any(|d| d == *c))
            .map(|c| c.to_string())
            .collect()
    };
    for c in add.iter().filter(|c| *c != "ALL") {
        if !caps.contains(c) {
            caps.push(c.clone());
        }
    }
    if !add.iter().any(|c| c == "ALL") {
        caps.retain(|c| !drop.contains(c) || add.contains(c));
    }
    caps.sort_by_key(|c| known.iter().position(|k| k == c));
    Ok(caps)
}

/// `nofile` → `RLIMIT_NOFILE`, checked against the names Linux has.
pub(crate) fn rlimits(ulimits: &[Ulimit]) -> Result<Vec<PosixRlimit>, String> {
    ulimits
        .iter()
        .map(|u| {
            let name = u.name.trim().to_ascii_lowercase();
            let invalid = || format!("invalid ulimit type: {}", u.name);
            if !shoal_types::container::ULIMIT_NAMES.contains(&name.as_str()) {
                return Err(invalid());
            }
            let typ = PosixRlimitType::from_str(&format!("RLIMIT_{}", name.to_ascii_uppercase()))
                .map_err(|_| invalid())?;
            // -1 is unlimited, as `ulimit` and Docker take it.
            let v = |n: i64| if n < 0 { u64::MAX } else { n as u64 };
            if v(u.soft) > v(u.hard) {
                return Err(format!(
                    "ulimit {name}: soft limit {} is above hard limit {}",
                    u.soft, u.hard
                ));
            }
            PosixRlimitBuilder::default()
                .typ(typ)
                .soft(v(u.soft))
                .hard(v(u.hard))
                .build()
                .map_err(|e| format!("ulimit {name}: {e}"))
        })
        .collect()
}

fn mount(destination: &str, typ: &str, source: impl Into<PathBuf>, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(destination.into());
    m.set_typ(Some(typ.to_string()));
    m.set_source(Some(source.into()));
    m.set_options(Some(options.iter().map(|o| o.to_string()).collect()));
    m
}

/// Only sysctls of namespaces the task has of its own (IPC, UTS), as Docker allows; `net.*`
/// would change the node's network namespace, which tasks share for now.
pub(crate) fn check_sysctls(sysctls: &BTreeMap<String, String>) -> Result<(), String> {
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    for k in sysctls.keys() {
        let ok =
            IPC.contains(&k.as_str()) || k.starts_with("fs.mqueue.") || k == "kernel.domainname";
        if !ok {
            return Err(format!(
                "sysctl {k:?} is not allowed: tasks share the node's network namespace, and only IPC and UTS sysctls are namespaced"
            ));
        }
    }
    Ok(())
}

/// An extra mount of the spec, resolved to what the runtime mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ExtraMount {
    Bind {
        source: PathBuf,
        target: String,
        read_only: bool,
    },
    Tmpfs {
        target: String,
        size: u64,
        mode: u32,
        read_only: bool,
    },
}

impl ExtraMount {
    fn to_oci(&self) -> Mount {
        match self {
            ExtraMount::Bind {
                source,
                target,
                read_only,
            } => {
                let mut o = vec!["rbind", "rprivate"];
                if *read_only {
                    o.push("ro");
                }
                mount(target, "bind", source, &o)
            }
            ExtraMount::Tmpfs {
                target,
                size,
                mode,
                read_only,
            } => {
                let mut o = vec![
                    "nosuid".to_string(),
                    "nodev".into(),
                    format!("mode={:o}", if *mode == 0 { 0o1777 } else { *mode }),
                ];
                if *size > 0 {
                    o.push(format!("size={size}"));
                }
                if *read_only {
                    o.push("ro".into());
                }
                let o: Vec<&str> = o.iter().map(String::as_str).collect();
                mount(target, "tmpfs", "tmpfs", &o)
            }
        }
    }
}

/// The process part, shared by the task and its health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Process {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub caps: Vec<String>,
    pub rlimits: Vec<PosixRlimit>,
}

impl Process {
    pub fn to_oci(&self) -> OciProcess {
        let mut user = User::default();
        user.set_uid(self.uid);
        user.set_gid(self.gid);
        user.set_additional_gids(Some(self.groups.clone()));
        // `capabilities` checked every name against the kernel's list, which oci-spec knows.
        let caps: HashSet<Capability> = self
            .caps
            .iter()
            .filter_map(|c| Capability::from_str(c.strip_prefix("CAP_").unwrap_or(c)).ok())
            .collect();
        let mut c = LinuxCapabilities::default();
        c.set_bounding(Some(caps.clone()));
        c.set_effective(Some(caps.clone()));
        c.set_permitted(Some(caps));
        c.set_inheritable(None);
        c.set_ambient(None);
        let mut p = OciProcess::default();
        p.set_terminal(Some(false));
        p.set_user(user);
        p.set_args(Some(self.args.clone()));
        p.set_env(Some(self.env.clone()));
        p.set_cwd(PathBuf::from(&self.cwd));
        p.set_capabilities(Some(c));
        p.set_rlimits(Some(self.rlimits.clone()));
        p.set_no_new_privileges(Some(false));
        p
    }
}

pub(crate) struct Bundle {
    pub process: Process,
    pub hostname: String,
    pub rootfs: PathBuf,
    pub read_only: bool,
    /// The task's own `/etc` files on the node: hostname, hosts, resolv.conf.
    pub etc_dir: PathBuf,
    /// `/<parent>/<task-id>`, absolute in each hierarchy; `None` without cgroups.
    pub cgroups_path: Option<String>,
    pub sysctls: BTreeMap<String, String>,
    pub mounts: Vec<ExtraMount>,
    /// The network namespace to join; `None`: the node's.
    pub netns: Option<PathBuf>,
    /// The task's process runs on a terminal (the OCI runtime makes it and hands the shim its
    /// master through `--console-socket`); its health check never does.
    pub terminal: bool,
}

const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

impl Bundle {
    pub fn to_oci(&self) -> Spec {
        let mut mounts = vec![
            mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
            mount(
                "/dev",
                "tmpfs",
                "tmpfs",
                &["nosuid", "strictatime", "mode=755", "size=65536k"],
            ),
            mount(
                "/dev/pts",
                "devpts",
                "devpts",
                &[
                    "nosuid",
                    "noexec",
                    "newinstance",
                    "ptmxmode=0666",
                    "mode=0620",
                ],
            ),
            mount(
                "/sys",
                "sysfs",
                "sysfs",
                &["nosuid", "noexec", "nodev", "ro"],
            ),
            mount(
                "/dev/mqueue",
                "mqueue",
                "mqueue",
                &["nosuid", "noexec", "nodev"],
            ),
            mount(
                "/dev/shm",
                "tmpfs",
                "shm",
                &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
            ),
        ];
        for f in ["hostname", "hosts", "resolv.conf"] {
            mounts.push(mount(
                &format!("/etc/{f}"),
                "bind",
                self.etc_dir.join(f),
                &["rbind", "rprivate"],
            ));
        }
        mounts.extend(self.mounts.iter().map(ExtraMount::to_oci));
        // PID, mount, UTS and IPC of its own; the network namespace shoal wired for it, or
        // the node's when it has no networks.
        let mut namespaces: Vec<LinuxNamespace> = [
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::Mount,
            LinuxNamespaceType::Uts,
            LinuxNamespaceType::Ipc,
        ]
        .into_iter()
        .map(|t| {
            let mut n = LinuxNamespace::default();
            n.set_typ(t);
            n.set_path(None);
            n
        })
        .collect();
        if let Some(path) = &self.netns {
            let mut n = LinuxNamespace::default();
            n.set_typ(LinuxNamespaceType::Network);
            n.set_path(Some(path.clone()));
            namespaces.push(n);
        }
        let strings = |v: &[&str]| Some(v.iter().map(|p| p.to_string()).collect());
        let mut linux = Linux::default();
        linux.set_namespaces(Some(namespaces));
        linux.set_sysctl(Some(self.sysctls.clone().into_iter().collect()));
        linux.set_masked_paths(strings(MASKED_PATHS));
        linux.set_readonly_paths(strings(READONLY_PATHS));
        linux.set_cgroups_path(self.cgroups_path.as_ref().map(PathBuf::from));
        // The limits live in the cgroup shoal makes; no device rules beyond runc's own.
        linux.set_resources(None);
        linux.set_uid_mappings(None);
        linux.set_gid_mappings(None);
        linux.set_devices(None);
        let mut root = Root::default();
        root.set_path(self.rootfs.clone());
        root.set_readonly(Some(self.read_only));
        let mut spec = Spec::default();
        spec.set_version("1.0.2".to_string());
        let mut process = self.process.to_oci();
        process.set_terminal(Some(self.terminal));
        spec.set_process(Some(process));
        spec.set_root(Some(root));
        spec.set_hostname(Some(self.hostname.clone()));
        spec.set_domainname(None);
        spec.set_mounts(Some(mounts));
        spec.set_annotations(None);
        spec.set_linux(Some(linux));
        spec
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn capabilities_follow_docker() {
        let known = ALL_CAPS;
        let def = capabilities(&[], &[], known).expect("default");
        assert_eq!(def.len(), DEFAULT_CAPS.len());
        let c = capabilities(&s(&["net_admin"]), &s(&["CAP_CHOWN", "kill"]), known).expect("ok");
        assert!(c.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!c.contains(&"CAP_CHOWN".to_string()));
        assert!(!c.contains(&"CAP_KILL".to_string()));
        let c = capabilities(&s(&["NET_BIND_SERVICE"]), &s(&["ALL"]), known).expect("ok");
        assert_eq!(c, s(&["CAP_NET_BIND_SERVICE"]));
        let c = capabilities(&s(&["ALL"]), &[], known).expect("ok");
        assert_eq!(c.len(), known.len());
        assert!(capabilities(&s(&["NOPE"]), &[], known).is_err());
    }

    #[test]
    fn bundle_is_shaped_like_dockers() {
        let b = Bundle {
            process: Process {
                args: s(&["sh"]),
                env: s(&["PATH=/bin"]),
                cwd: "/".into(),
                uid: 1,
                gid: 2,
                groups: vec![3],
                caps: s(&["CAP_KILL"]),
                rlimits: Vec::new(),
            },
            hostname: "h".into(),
            rootfs: PathBuf::from("/t/bundle/rootfs"),
            read_only: true,
            etc_dir: PathBuf::from("/t/etc"),
            cgroups_path: Some("/shoal/t1".into()),
            sysctls: BTreeMap::new(),
            mounts: vec![ExtraMount::Tmpfs {
                target: "/scratch".into(),
                size: 1024,
                mode: 0,
                read_only: false,
            }],
            netns: None,
            terminal: false,
        };
        let j = serde_json::to_value(b.to_oci()).expect("serialises");
        // Only what shoal sets: no defaults of oci-spec's (youki's) leak into the bundle.
        let mut keys: Vec<&str> = j
            .as_object()
            .expect("object")
            .keys()
            .map(|k| k.as_str())
            .collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "hostname",
                "linux",
                "mounts",
                "ociVersion",
                "process",
                "root"
            ]
        );
        let mut lkeys: Vec<&str> = j["linux"]
            .as_object()
            .expect("linux")
            .keys()
            .map(|k| k.as_str())
            .collect();
        lkeys.sort();
        assert_eq!(
            lkeys,
            [
                "cgroupsPath",
                "maskedPaths",
                "namespaces",
                "readonlyPaths",
                "sysctl"
            ]
        );
        assert_eq!(j["process"]["rlimits"], json!([]));
        assert_eq!(j["process"]["noNewPrivileges"], false);
        assert!(j["process"]["capabilities"].get("ambient").is_none());
        assert_eq!(j["mounts"].as_array().map(Vec::len), Some(10));
        let ns: Vec<&str> = j["linux"]["namespaces"]
            .as_array()
            .expect("namespaces")
            .iter()
            .filter_map(|n| n["type"].as_str())
            .collect();
        assert_eq!(
            ns,
            vec!["pid", "mount", "uts", "ipc"],
            "the node's network without networks of its own"
        );
        assert_eq!(j["linux"]["cgroupsPath"], "/shoal/t1");
        assert_eq!(j["root"]["readonly"], true);
        assert_eq!(j["process"]["user"]["uid"], 1);
        assert_eq!(j["process"]["capabilities"]["bounding"][0], "CAP_KILL");
        let mounts = j["mounts"].as_array().expect("mounts");
        let last = mounts.last().expect("a mount");
        assert_eq!(last["destination"], "/scratch");
        assert!(
            last["options"]
                .as_array()
                .expect("opts")
                .contains(&json!("mode=1777"))
        );
        assert!(
            mounts
                .iter()
                .any(|m| m["destination"] == "/etc/resolv.conf"
                    && m["source"] == "/t/etc/resolv.conf")
        );

        // A task with networks joins the namespace shoal wired, by path.
        let mut b = b;
        b.netns = Some(PathBuf::from("/d/net/task/t1"));
        let j = serde_json::to_value(b.to_oci()).expect("serialises");
        let net: Vec<&serde_json::Value> = j["linux"]["namespaces"]
            .as_array()
            .expect("namespaces")
            .iter()
            .filter(|n| n["type"] == "network")
            .collect();
        assert_eq!(net, [&json!({"type": "network", "path": "/d/net/task/t1"})]);
    }

    #[test]
    fn rlimits_and_sysctls_are_checked() {
        let u = |n: &str, s, h| Ulimit {
            name: n.into(),
            soft: s,
            hard: h,
        };
        let r = rlimits(&[u("nofile", 1024, 2048), u("core", -1, -1)]).expect("ok");
        assert_eq!(r[0].typ(), PosixRlimitType::RlimitNofile);
        assert_eq!((r[0].soft(), r[0].hard()), (1024, 2048));
        assert_eq!(r[1].typ(), PosixRlimitType::RlimitCore);
        assert_eq!(r[1].hard(), u64::MAX);
        let j = serde_json::to_value(r[0]).expect("serialises");
        assert_eq!(
            j,
            json!({"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 2048})
        );
        assert!(rlimits(&[u("bogus", 1, 1)]).is_err());
        assert!(rlimits(&[u("nofile", 10, 5)]).is_err());
        let mut ok = BTreeMap::new();
        ok.insert("kernel.shmmax".to_string(), "1".to_string());
        ok.insert("fs.mqueue.msg_max".to_string(), "1".to_string());
        assert!(check_sysctls(&ok).is_ok());
        let mut bad = BTreeMap::new();
        bad.insert("net.ipv4.ip_forward".to_string(), "1".to_string());
        assert!(check_sysctls(&bad).is_err());
    }
}
