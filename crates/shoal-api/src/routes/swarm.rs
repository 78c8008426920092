//! `/swarm`: inspect, init, join, leave, update.

use std::collections::HashMap;

use axum::extract::{Query, State};
use bollard_stubs::models as w;
use http::StatusCode;
use shoal_control::{InitRequest, JoinRequest};
use shoal_types::cluster::{DATA_PATH_PORTS, NetworkSettings};
use shoal_types::node::Availability;

use super::manager;
use crate::AppState;
use crate::body::{Json, query_bool, query_u64};
use crate::convert::swarm::{spec_in, swarm_out};
use crate::error::{ApiError, ApiResult};

pub async fn inspect(State(state): State<AppState>) -> ApiResult<axum::Json<w::Swarm>> {
    let h = manager(&state).await?;
    let cluster = h.cluster()?;
    Ok(axum::Json(swarm_out(&cluster)))
}

/// The Engine API's init request; bollard's model lacks `Availability`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InitBody {
    #[serde(default)]
    listen_addr: Option<String>,
    #[serde(default)]
    advertise_addr: Option<String>,
    #[serde(default)]
    force_new_cluster: Option<bool>,
    #[serde(default)]
    spec: Option<w::SwarmSpec>,
    #[serde(default)]
    availability: Option<String>,
    #[serde(default)]
    auto_lock_managers: Option<bool>,
    #[serde(default)]
    default_addr_pool: Option<Vec<String>>,
    #[serde(default)]
    subnet_size: Option<u32>,
    #[serde(default)]
    data_path_port: Option<u32>,
    #[serde(default)]
    data_path_addr: Option<String>,
}

impl InitBody {
    /// The request the body asks for, checked as the handler checks it (the spec converted onto
    /// the defaults, the availability parsed); no IO, so the fuzz targets call it too.
    pub fn into_request(self) -> Result<InitRequest, ApiError> {
        let mut spec = spec_in(&Default::default(), self.spec.unwrap_or_default())?;
        if self.auto_lock_managers == Some(true) {
            spec.autolock = true;
        }
        let availability = availability_in(self.availability.as_deref())?;
        let network = network_settings_in(
            self.default_addr_pool,
            self.subnet_size,
            self.data_path_port,
            self.data_path_addr,
        )?;
        let listen_addr = self
            .listen_addr
            .filter(|l| !l.is_empty())
            .unwrap_or_else(|| "0.0.0.0:2377".into());
        Ok(InitRequest {
            advertise_addr: self.advertise_addr,
            listen_addr,
            spec,
            availability,
            force_new_cluster: self.force_new_cluster.unwrap_or(false),
            network,
        })
    }
}

/// `swarm init`'s address pools, subnet size and data path port, checked; absent or zero means
/// Swarm's default, as the docker CLI sends them.
fn network_settings_in(
    pools: Option<Vec<String>>,
    subnet_size: Option<u32>,
    port: Option<u32>,
    data_path_addr: Option<String>,
) -> Result<NetworkSettings, ApiError> {
    if let Some(a) = data_path_addr.filter(|a| !a.is_empty()) {
        return Err(ApiError::invalid(
            "DataPathAddr",
            format!(
                "{a:?}: a separate data path address is not supported; overlay traffic uses the advertise address"
            ),
        ));
    }
    let mut n = NetworkSettings::default();
    if let Some(p) = pools.filter(|p| !p.is_empty()) {
        n.default_addr_pool = p;
    }
    match subnet_size {
        None | Some(0) => {}
        Some(s) => {
            n.subnet_size = u8::try_from(s).map_err(|_| {
                ApiError::invalid("SubnetSize", format!("{s} is not a prefix length"))
            })?
        }
    }
    match port {
        None | Some(0) => {}
        Some(p) => {
            n.data_path_port = u16::try_from(p)
                .ok()
                .filter(|p| DATA_PATH_PORTS.contains(p))
                .ok_or_else(|| {
                    ApiError::invalid(
                        "DataPathPort",
                        format!(
                            "{p} is outside {}-{}",
                            DATA_PATH_PORTS.start(),
                            DATA_PATH_PORTS.end()
                        ),
                    )
                })?
        }
    }
    n.pools()
        .map_err(|e| ApiError::invalid("DefaultAddrPool", e))?;
    Ok(n)
}

fn availability_in(a: Option<&str>) -> Result<Availability, ApiError> {
    match a {
        None | Some("") => Ok(Availability::Active),
        Some(a) => Availability::parse(a).ok_or_else(|| {
            ApiError::invalid(
                "Availability",
                format!("{a:?} is not one of active, pause, drain"),
            )
        }),
    }
}

pub async fn init(
    State(state): State<AppState>,
    Json(body): Json<InitBody>,
) -> ApiResult<axum::Json<String>> {
    let id = state.daemon.swarm_init(body.into_request()?).await?;
    Ok(axum::Json(id.to_string()))
}

/// The Engine API's join request.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JoinBody {
    #[serde(default)]
    listen_addr: Option<String>,
    #[serde(default)]
    advertise_addr: Option<String>,
    #[serde(default)]
    remote_addrs: Option<Vec<String>>,
    #[serde(default)]
    join_token: Option<String>,
    #[serde(default)]
    availability: Option<String>,
}

impl JoinBody {
    /// The request the body asks for, checked as the handler checks it; no IO.
    pub fn into_request(self) -> Result<JoinRequest, ApiError> {
        let availability = availability_in(self.availability.as_deref())?;
        let token = self
            .join_token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::invalid("JoinToken", "a join token is required"))?;
        Ok(JoinRequest {
            remote_addrs: self.remote_addrs.unwrap_or_default(),
            token,
            advertise_addr: self.advertise_addr,
            listen_addr: self
                .listen_addr
                .filter(|l| !l.is_empty())
                .unwrap_or_else(|| "0.0.0.0:2377".into()),
            availability,
        })
    }
}

pub async fn join(State(state): State<AppState>, Json(body): Json<JoinBody>) -> ApiResult<()> {
    state.daemon.swarm_join(body.into_request()?).await?;
    Ok(())
}

pub async fn leave(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<()> {
    let force = query_bool(&q, "force")?;
    state.daemon.swarm_leave(force).await?;
    Ok(())
}

pub async fn update(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    Json(body): Json<w::SwarmSpec>,
) -> ApiResult<()> {
    let h = manager(&state).await?;
    let version = query_u64(&q, "version")?.ok_or_else(|| {
        ApiError::bad_request("query parameter version: required (the swarm's Version.Index)")
    })?;
    let rotate_unlock_key = query_bool(&q, "rotateManagerUnlockKey")?;
    let rotate_worker = query_bool(&q, "rotateWorkerToken")?;
    let rotate_manager = query_bool(&q, "rotateManagerToken")?;
    let cur = h.cluster()?;
    let spec = spec_in(&cur.spec, body)?;
    if rotate_unlock_key && !spec.autolock {
        // Checked before anything is written: nothing half-done.
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "cannot rotate because autolock is not turned on",
        ));
    }
    let c = h
        .update_cluster(version, spec, rotate_worker, rotate_manager)
        .await?;
    if rotate_unlock_key {
        h.rotate_unlock_key(c.meta.version).await?;
    }
    Ok(())
}
