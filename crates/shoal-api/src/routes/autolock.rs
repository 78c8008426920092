//! Autolock: `POST /swarm/unlock`, `GET /swarm/unlockkey`, and the guard that makes a locked
//! manager answer every other request with Docker's "needs to be unlocked" (503).

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use shoal_control::NodeError;

use super::manager;
use crate::AppState;
use crate::body::Json;
use crate::error::{ApiError, ApiResult};

/// What a locked manager still answers: liveness, what it is, and the way out.
fn served_while_locked(path: &str) -> bool {
    matches!(
        path,
        "/_ping" | "/version" | "/info" | "/swarm/unlock" | "/swarm/leave"
    )
}

/// Refuses everything but [`served_while_locked`] while the node waits for its unlock key.
pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if state.daemon.locked() && !served_while_locked(req.uri().path()) {
        // Read the request to its end first: a client still writing its body when the answer
        // comes sees a broken pipe instead of the message.
        let _ = axum::body::to_bytes(req.into_body(), crate::body::MAX_BODY).await;
        return ApiError::from(NodeError::Locked).into_response();
    }
    next.run(req).await
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UnlockBody {
    #[serde(default)]
    unlock_key: Option<String>,
}

pub async fn unlock(State(state): State<AppState>, Json(body): Json<UnlockBody>) -> ApiResult<()> {
    let key = body
        .unlock_key
        .filter(|k| !k.trim().is_empty())
        .ok_or_else(|| ApiError::invalid("UnlockKey", "an unlock key is required"))?;
    state.daemon.swarm_unlock(&key).await?;
    Ok(())
}

#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UnlockKeyOut {
    unlock_key: String,
}

/// The key, or `""` when autolock is off (as Docker answers).
pub async fn unlock_key(State(state): State<AppState>) -> ApiResult<axum::Json<UnlockKeyOut>> {
    let h = manager(&state).await?;
    let c = h.cluster()?;
    Ok(axum::Json(UnlockKeyOut {
        unlock_key: c
            .unlock_key
            .clone()
            .filter(|_| c.spec.autolock)
            .unwrap_or_default(),
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_locked_manager_serves_only_the_way_out() {
        for p in [
            "/_ping",
            "/version",
            "/info",
            "/swarm/unlock",
            "/swarm/leave",
        ] {
            assert!(super::served_while_locked(p), "{p}");
        }
        for p in [
            "/swarm",
            "/services",
            "/nodes",
            "/swarm/unlockkey",
            "/swarm/init",
        ] {
            assert!(!super::served_while_locked(p), "{p}");
        }
    }
}
