//! `version` and `info`: the client/daemon versions and a short docker-like system view with
//! docker's Swarm section; plus [`swarm_info`], the `/info` Swarm block other commands need.

use bollard_stubs::models::{LocalNodeState, SwarmInfo, SystemInfo, SystemVersion};

use crate::client::Client;
use crate::error::Result;
use crate::units::{bytes_size, human_duration};

/// The Swarm block of `GET /info`, decoded on its own so an unexpected field elsewhere in `/info`
/// cannot break `node ls`.
pub async fn swarm_info(client: &Client) -> Result<SwarmInfo> {
    #[derive(serde::Deserialize)]
    struct InfoSwarm {
        #[serde(rename = "Swarm", default)]
        swarm: Option<SwarmInfo>,
    }
    let info: InfoSwarm = client.get("/info", &[]).await?;
    Ok(info.swarm.unwrap_or_default())
}

/// Go's `GOARCH` name for this machine.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

/// Aligns `key:\tvalue` lines like docker's `tabwriter.NewWriter(out, 20, 1, 1, ' ', 0)`.
fn align(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        match line.split_once('\t') {
            Some((k, v)) => {
                let width = (k.chars().count() + 1).max(20);
                out.push_str(&format!("{k:<width$}{v}\n"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

pub async fn version(client: &Client) -> Result<()> {
    // The client part prints even when the daemon is unreachable, as docker does.
    let negotiated = client.version().await;
    let mut text = String::from("Client:\n");
    text += &format!(" Version:\t{}\n", env!("CARGO_PKG_VERSION"));
    match &negotiated {
        Ok(v) if *v < crate::client::ApiVersion::MAX => {
            text += &format!(
                " API version:\t{v} (downgraded from {})\n",
                crate::client::ApiVersion::MAX
            )
        }
        Ok(v) => text += &format!(" API version:\t{v}\n"),
        Err(_) => text += &format!(" API version:\t{}\n", crate::client::ApiVersion::MAX),
    }
    text += &format!(" OS/Arch:\t{}/{}\n", std::env::consts::OS, go_arch());
    print!("{}", align(&text));
    negotiated?;
    let server: SystemVersion = client.get("/version", &[]).await?;
    println!();
    print!("{}", align(&render_server_version(&server)));
    Ok(())
}

/// The `Server:` half of `version`.
pub fn render_server_version(v: &SystemVersion) -> String {
    let mut t = String::from("Server:");
    if let Some(p) = v.platform.as_ref().filter(|p| !p.name.is_empty()) {
        t += &format!(" {}", p.name);
    }
    t += "\n";
    let mut components = v.components.clone().unwrap_or_default();
    if !components.iter().any(|c| c.name == "Engine") {
        // Daemons without components describe the engine at the top level, as docker assumes.
        let field = |f: &Option<String>| f.clone().unwrap_or_default();
        let details = [
            ("ApiVersion", field(&v.api_version)),
            ("MinAPIVersion", field(&v.min_api_version)),
            ("GitCommit", field(&v.git_commit)),
            ("GoVersion", field(&v.go_version)),
            ("Os", field(&v.os)),
            ("Arch", field(&v.arch)),
            ("BuildTime", field(&v.build_time)),
            ("Experimental", v.experimental.unwrap_or(false).to_string()),
        ];
        components.insert(
            0,
            bollard_stubs::models::SystemVersionComponents {
                name: "Engine".to_string(),
                version: field(&v.version),
                details: Some(
                    details
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect(),
                ),
            },
        );
    }
    for c in components {
        let details = c.details.clone().unwrap_or_default();
        let d = |k: &str| details.get(k).cloned().unwrap_or_default();
        t += &format!(" {}:\n", c.name);
        t += &format!("  Version:\t{}\n", c.version);
        if c.name == "Engine" {
            t += &format!(
                "  API version:\t{} (minimum version {})\n",
                d("ApiVersion"),
                d("MinAPIVersion")
            );
            t += &format!("  Go version:\t{}\n", d("GoVersion"));
            t += &format!("  Git commit:\t{}\n", d("GitCommit"));
            t += &format!("  Built:\t{}\n", reformat_date(&d("BuildTime")));
            t += &format!("  OS/Arch:\t{}/{}\n", d("Os"), d("Arch"));
            t += &format!("  Experimental:\t{}\n", d("Experimental"));
        } else {
            let mut keys: Vec<&String> = details.keys().collect();
            keys.sort();
            for k in keys {
                t += &format!("  {k}:\t{}\n", details[k]);
            }
        }
    }
    t
}

/// docker's `reformatDate`: RFC 3339 build times as Go's ANSIC layout.
fn reformat_date(s: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(s) {
        Ok(t) => t.format("%a %b %e %H:%M:%S %Y").to_string(),
        Err(_) => s.to_string(),
    }
}

pub async fn info(client: &Client) -> Result<()> {
    println!("Client:\n Version:    {}\n", env!("CARGO_PKG_VERSION"));
    let info: SystemInfo = client.get("/info", &[]).await?;
    // A blank line ends the server part; the daemon's warnings follow on stderr, as docker does.
    println!("{}", render_info(&info));
    for w in info.warnings.as_deref().unwrap_or_default() {
        eprintln!("{w}");
    }
    Ok(())
}

/// How many managers a Raft quorum needs and how many may fail (shoal's addition to docker's
/// `Managers:` line); nothing without managers.
pub fn quorum_note(managers: i64) -> String {
    if managers <= 0 {
        return String::new();
    }
    let quorum = managers / 2 + 1;
    let tolerates = managers - quorum;
    let plural = if tolerates == 1 { "" } else { "s" };
    format!(" (quorum {quorum}, tolerates {tolerates} failure{plural})")
}

/// The `Server:` part of `info`: counts, versions, the Swarm section as docker prints it, and the
/// machine.
pub fn render_info(info: &SystemInfo) -> String {
    let mut o = String::from("Server:\n");
    let num = |v: Option<i64>| v.unwrap_or(0);
    let line = |o: &mut String, k: &str, v: &Option<String>| {
        if let Some(v) = v.as_deref().filter(|s| !s.is_empty()) {
            *o += &format!("{k} {v}\n");
        }
    };
    if info.containers.is_some() {
        o += &format!(" Containers: {}\n", num(info.containers));
        o += &format!("  Running: {}\n", num(info.containers_running));
        o += &format!("  Paused: {}\n", num(info.containers_paused));
        o += &format!("  Stopped: {}\n", num(info.containers_stopped));
    }
    if info.images.is_some() {
        o += &format!(" Images: {}\n", num(info.images));
    }
    line(&mut o, " Server Version:", &info.server_version);
    let swarm = info.swarm.clone().unwrap_or_default();
    o += &render_swarm(&swarm);
    line(&mut o, " Kernel Version:", &info.kernel_version);
    line(&mut o, " Operating System:", &info.operating_system);
    line(&mut o, " OSType:", &info.os_type);
    line(&mut o, " Architecture:", &info.architecture);
    o += &format!(" CPUs: {}\n", num(info.ncpu));
    o += &format!(
        " Total Memory: {}\n",
        bytes_size(num(info.mem_total) as f64)
    );
    line(&mut o, " Name:", &info.name);
    line(&mut o, " ID:", &info.id);
    o
}

/// docker's `printSwarmInfo`, preceded by the ` Swarm: <state>` line.
pub fn render_swarm(s: &SwarmInfo) -> String {
    let state = s.local_node_state.unwrap_or(LocalNodeState::EMPTY);
    let mut o = format!(" Swarm: {state}\n");
    if matches!(state, LocalNodeState::INACTIVE | LocalNodeState::LOCKED) {
        return o;
    }
    let control = s.control_available.unwrap_or(false);
    let error = s.error.clone().unwrap_or_default();
    o += &format!("  NodeID: {}\n", s.node_id.clone().unwrap_or_default());
    if !error.is_empty() {
        o += &format!("  Error: {error}\n");
    }
    o += &format!("  Is Manager: {control}\n");
    if let Some(c) = s
        .cluster
        .as_ref()
        .filter(|_| control && error.is_empty() && state != LocalNodeState::ERROR)
    {
        let spec = c.spec.clone().unwrap_or_default();
        o += &format!("  ClusterID: {}\n", c.id.clone().unwrap_or_default());
        let managers = s.managers.unwrap_or(0);
        o += &format!("  Managers: {managers}{}\n", quorum_note(managers));
        o += &format!("  Nodes: {}\n", s.nodes.unwrap_or(0));
        if let Some(pools) = &c.default_addr_pool {
            let joined: String = pools.iter().map(|p| format!("{p}  ")).collect();
            o += &format!("  Default Address Pool: {joined}\n");
            o += &format!("  SubnetSize: {}\n", c.subnet_size.unwrap_or(0));
        }
        if let Some(port) = c.data_path_port.filter(|p| *p > 0) {
            o += &format!("  Data Path Port: {port}\n");
        }
        let orch = spec.orchestration.unwrap_or_default();
        o += "  Orchestration:\n";
        o += &format!(
            "   Task History Retention Limit: {}\n",
            orch.task_history_retention_limit.unwrap_or(0)
        );
        let raft = spec.raft.unwrap_or_default();
        o += "  Raft:\n";
        o += &format!(
            "   Snapshot Interval: {}\n",
            raft.snapshot_interval.unwrap_or(0)
        );
        if let Some(keep) = raft.keep_old_snapshots {
            o += &format!("   Number of Old Snapshots to Retain: {keep}\n");
        }
        o += &format!("   Heartbeat Tick: {}\n", raft.heartbeat_tick.unwrap_or(0));
        o += &format!("   Election Tick: {}\n", raft.election_tick.unwrap_or(0));
        let dispatcher = spec.dispatcher.unwrap_or_default();
        o += "  Dispatcher:\n";
        o += &format!(
            "   Heartbeat Period: {}\n",
            human_duration(dispatcher.heartbeat_period.unwrap_or(0))
        );
        let ca = spec.ca_config.unwrap_or_default();
        o += "  CA Configuration:\n";
        o += &format!(
            "   Expiry Duration: {}\n",
            human_duration(ca.node_cert_expiry.unwrap_or(0))
        );
        o += &format!("   Force Rotate: {}\n", ca.force_rotate.unwrap_or(0));
        if let Some(cert) = ca
            .signing_ca_cert
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            o += &format!("   Signing CA Certificate: \n{cert}\n\n");
        }
        if let Some(cas) = ca.external_cas.filter(|c| !c.is_empty()) {
            o += "   External CAs:\n";
            for e in cas {
                let protocol = e.protocol.map(|p| p.to_string()).unwrap_or_default();
                o += &format!("     {protocol}: {}\n", e.url.unwrap_or_default());
            }
        }
        let autolock = spec
            .encryption_config
            .and_then(|e| e.auto_lock_managers)
            .unwrap_or(false);
        o += &format!("  Autolock Managers: {autolock}\n");
        o += &format!(
            "  Root Rotation In Progress: {}\n",
            c.root_rotation_in_progress.unwrap_or(false)
        );
    }
    o += &format!(
        "  Node Address: {}\n",
        s.node_addr.clone().unwrap_or_default()
    );
    let mut managers: Vec<String> = s
        .remote_managers
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.addr)
        .collect();
    if !managers.is_empty() {
        managers.sort();
        o += "  Manager Addresses:\n";
        for m in managers {
            o += &format!("   {m}\n");
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `GET /info`'s Swarm block from Docker 20.10 on this machine.
    const SWARM: &str = r#"{"NodeID":"n3fvkg7m4vj2v5j6u0r6b2x8g","NodeAddr":"192.0.2.2","LocalNodeState":"active","ControlAvailable":true,"Error":"","RemoteManagers":[{"NodeID":"n3fvkg7m4vj2v5j6u0r6b2x8g","Addr":"192.0.2.2:2377"}],"Nodes":1,"Managers":1,"Cluster":{"ID":"l1gwik77ei0n1vx3bhdgkeau9","Version":{"Index":10},"CreatedAt":"2026-11-24T12:55:22.7Z","UpdatedAt":"2026-11-24T12:55:23.3Z","Spec":{"Name":"default","Labels":{},"Orchestration":{"TaskHistoryRetentionLimit":5},"Raft":{"SnapshotInterval":10000,"KeepOldSnapshots":0,"LogEntriesForSlowFollowers":500,"ElectionTick":10,"HeartbeatTick":1},"Dispatcher":{"HeartbeatPeriod":5000000000},"CAConfig":{"NodeCertExpiry":7776000000000000},"TaskDefaults":{},"EncryptionConfig":{"AutoLockManagers":false}},"TLSInfo":{"TrustRoot":"x"},"RootRotationInProgress":false,"DataPathPort":4789}}"#;

    #[test]
    fn swarm_section_matches_docker_info() {
        let s: SwarmInfo = serde_json::from_str(SWARM).expect("valid swarm info");
        let expected = " Swarm: active
  NodeID: n3fvkg7m4vj2v5j6u0r6b2x8g
  Is Manager: true
  ClusterID: l1gwik77ei0n1vx3bhdgkeau9
  Managers: 1 (quorum 1, tolerates 0 failures)
  Nodes: 1
  Data Path Port: 4789
  Orchestration:
   Task History Retention Limit: 5
  Raft:
   Snapshot Interval: 10000
   Number of Old Snapshots to Retain: 0
   Heartbeat Tick: 1
   Election Tick: 10
  Dispatcher:
   Heartbeat Period: 5 seconds
  CA Configuration:
   Expiry Duration: 3 months
   Force Rotate: 0
  Autolock Managers: false
  Root Rotation In Progress: false
  Node Address: 192.0.2.2
  Manager Addresses:
   192.0.2.2:2377
";
        assert_eq!(render_swarm(&s), expected);
        let inactive = SwarmInfo {
            local_node_state: Some(LocalNodeState::INACTIVE),
            ..Default::default()
        };
        assert_eq!(render_swarm(&inactive), " Swarm: inactive\n");
    }

    #[test]
    fn managers_line_adds_the_quorum() {
        assert_eq!(quorum_note(0), "");
        assert_eq!(quorum_note(1), " (quorum 1, tolerates 0 failures)");
        assert_eq!(quorum_note(2), " (quorum 2, tolerates 0 failures)");
        assert_eq!(quorum_note(3), " (quorum 2, tolerates 1 failure)");
        assert_eq!(quorum_note(5), " (quorum 3, tolerates 2 failures)");
        let s: SwarmInfo =
            serde_json::from_str(&SWARM.replace(r#""Managers":1"#, r#""Managers":3"#))
                .expect("valid swarm info");
        assert!(
            render_swarm(&s)
                .contains("\n  Managers: 3 (quorum 2, tolerates 1 failure)\n  Nodes: 1\n")
        );
    }

    #[test]
    fn worker_swarm_section_is_docker_s() {
        // `GET /info` on a shoal worker, and what docker 28.2 printed for it.
        let s: SwarmInfo = serde_json::from_str(
            r#"{"NodeID": "79ad4sx0776rv3e563is0uh0v", "NodeAddr": "127.0.0.1", "LocalNodeState": "active", "ControlAvailable": false, "Error": "", "RemoteManagers": [{"Addr": "127.0.0.1:24773"}, {"Addr": "127.0.0.1:24771"}]}"#,
        )
        .expect("valid swarm info");
        assert_eq!(
            render_swarm(&s),
            " Swarm: active\n  NodeID: 79ad4sx0776rv3e563is0uh0v\n  Is Manager: false\n  Node Address: 127.0.0.1\n  Manager Addresses:\n   127.0.0.1:24771\n   127.0.0.1:24773\n"
        );
    }

    #[test]
    fn server_version_aligns_like_docker() {
        let v: SystemVersion = serde_json::from_str(
            r#"{"Platform":{"Name":""},"Components":[{"Name":"Engine","Version":"20.10.24+dfsg1","Details":{"ApiVersion":"1.41","Arch":"amd64","BuildTime":"Thu May  7 21:09:36 2026","Experimental":"false","GitCommit":"5d6db84","GoVersion":"go1.19.8","KernelVersion":"6","MinAPIVersion":"1.12","Os":"linux"}},{"Name":"runc","Version":"1.1.5","Details":{"GitCommit":"abc"}}],"Version":"20.10.24+dfsg1","ApiVersion":"1.41"}"#,
        )
        .expect("valid version");
        let expected = "Server:
 Engine:
  Version:          20.10.24+dfsg1
  API version:      1.41 (minimum version 1.12)
  Go version:       go1.19.8
  Git commit:       5d6db84
  Built:            Thu May  7 21:09:36 2026
  OS/Arch:          linux/amd64
  Experimental:     false
 runc:
  Version:          1.1.5
  GitCommit:        abc
";
        assert_eq!(align(&render_server_version(&v)), expected);
        assert_eq!(
            reformat_date("2026-05-07T21:09:36.000000000+00:00"),
            "Thu May  7 21:09:36 2026"
        );
        let bare: SystemVersion = serde_json::from_str(
            r#"{"Version":"0.1.0","ApiVersion":"1.50","MinAPIVersion":"1.41","Os":"linux","Arch":"amd64"}"#,
        )
        .expect("valid version");
        let text = align(&render_server_version(&bare));
        assert!(text.starts_with("Server:\n Engine:\n  Version:          0.1.0\n  API version:      1.50 (minimum version 1.41)\n"), "{text}");
    }
}
