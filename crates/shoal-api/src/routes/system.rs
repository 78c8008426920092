//! `/_ping`, `/version`, `/info`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bollard_stubs::models as w;
use http::HeaderValue;
use shoal_types::node::NodeRole;

use crate::AppState;
use crate::convert::swarm::cluster_info;

pub async fn ping(State(state): State<AppState>) -> Response {
    let swarm = match state.daemon.swarm().await {
        Some(_) => "active/manager",
        None if state.daemon.locked() => "locked",
        None => "inactive",
    };
    let mut r = "OK".into_response();
    let h = r.headers_mut();
    h.insert("Swarm", HeaderValue::from_static(swarm));
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert(http::header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn kernel_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

pub async fn version(State(state): State<AppState>) -> axum::Json<w::SystemVersion> {
    axum::Json(w::SystemVersion {
        platform: Some(w::SystemVersionPlatform {
            name: "shoal".into(),
        }),
        components: Some(vec![w::SystemVersionComponents {
            name: "Engine".into(),
            version: state.engine_version.clone(),
            details: None,
        }]),
        version: Some(state.engine_version.clone()),
        api_version: Some("1.50".into()),
        min_api_version: Some("1.41".into()),
        git_commit: Some(option_env!("SHOAL_GIT_COMMIT").unwrap_or("unknown").into()),
        go_version: Some("n/a (rust)".into()),
        os: Some("linux".into()),
        arch: Some(go_arch().into()),
        kernel_version: Some(kernel_version()),
        experimental: Some(false),
        build_time: None,
    })
}

pub async fn info(State(state): State<AppState>) -> axum::Json<w::SystemInfo> {
    let host = nix_hostname();
    let mut warnings: Vec<String> = Vec::new();
    let swarm = match state.daemon.swarm().await {
        None => w::SwarmInfo {
            node_id: Some(String::new()),
            node_addr: Some(String::new()),
            local_node_state: Some(if state.daemon.locked() {
                w::LocalNodeState::LOCKED
            } else {
                w::LocalNodeState::INACTIVE
            }),
            control_available: Some(false),
            error: Some(String::new()),
            remote_managers: None,
            nodes: None,
            managers: None,
            cluster: None,
        },
        Some(h) => {
            let node_addr = Some(crate::routes::host_part(&h.advertise_addr));
            match &h.manager {
                // A worker knows only itself and where the managers are.
                None => w::SwarmInfo {
                    node_id: Some(h.node_id.to_string()),
                    node_addr,
                    local_node_state: Some(w::LocalNodeState::ACTIVE),
                    control_available: Some(false),
                    error: Some(String::new()),
                    remote_managers: Some(
                        h.managers
                            .iter()
                            .map(|m| w::PeerNode {
                                node_id: None,
                                addr: Some(m.clone()),
                            })
                            .collect(),
                    ),
                    nodes: None,
                    managers: None,
                    cluster: None,
                },
                Some(control) => {
                    let view = control.view();
                    let managers: Vec<_> = view
                        .nodes()
                        .filter(|n| n.spec.role == NodeRole::Manager)
                        .collect();
                    let quorum = control.quorum(&*view);
                    let (reachable, total) = (quorum.reachable, quorum.voters);
                    if !quorum.holds() {
                        warnings.push(format!(
                            "WARNING: the swarm has lost its quorum: {reachable} of {total} managers reachable, {} needed. Writes fail until enough managers return, or recover with `swarm init --force-new-cluster`.",
                            quorum.needed()
                        ));
                    } else if total == 2 {
                        warnings.push("WARNING: Running Swarm in a two-manager configuration. This configuration provides no fault tolerance, and poses a high risk to lose control over the cluster. Refer to https://docs.docker.com/engine/swarm/admin_guide/ to configure the Swarm for fault-tolerance.".into());
                    }
                    w::SwarmInfo {
                        node_id: Some(h.node_id.to_string()),
                        node_addr,
                        local_node_state: Some(w::LocalNodeState::ACTIVE),
                        control_available: Some(true),
                        error: Some(String::new()),
                        remote_managers: Some(
                            managers
                                .iter()
                                .filter_map(|n| {
                                    n.manager.as_ref().map(|m| w::PeerNode {
                                        node_id: Some(n.id.to_string()),
                                        addr: Some(m.addr.clone()),
                                    })
                                })
                                .collect(),
                        ),
                        nodes: Some(view.nodes().count() as i64),
                        managers: Some(managers.len() as i64),
                        cluster: view.cluster().map(|c| cluster_info(c)),
                    }
                }
            }
        }
    };
    let (cpus, mem) = host_resources();
    let containers = state.daemon.engine().containers().await.unwrap_or_default();
    let count = |s: shoal_control::engine::ContainerStatus| {
        containers.iter().filter(|c| c.state.status == s).count() as i64
    };
    let running = count(shoal_control::engine::ContainerStatus::Running);
    axum::Json(w::SystemInfo {
        containers: Some(containers.len() as i64),
        containers_running: Some(running),
        containers_paused: Some(0),
        containers_stopped: Some(containers.len() as i64 - running),
        id: Some(host.clone()),
        name: Some(host),
        server_version: Some(state.engine_version.clone()),
        operating_system: Some(os_name()),
        os_type: Some("linux".into()),
        architecture: Some(std::env::consts::ARCH.into()),
        kernel_version: Some(kernel_version()),
        ncpu: Some(cpus),
        mem_total: Some(mem),
        docker_root_dir: Some(state.daemon.data_dir().display().to_string()),
        driver: Some(state.daemon.runtime_name().into()),
        default_runtime: Some(state.daemon.runtime_name().into()),
        swarm: Some(swarm),
        warnings: Some(warnings),
        ..Default::default()
    })
}

fn nix_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn os_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| "Linux".into())
}

fn host_resources() -> (i64, i64) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as i64);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("MemTotal:")
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
            })
        })
        .map_or(0, |kb| kb * 1024);
    (cpus, mem)
}
