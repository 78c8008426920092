//! `POST /shoal/certificates` (a shoal extension): signs a user's API client certificate with
//! the cluster's root. The caller sends a CSR for a key it made itself, so the key never crosses
//! the wire and the root's key never leaves the manager. Managers only (503 on workers, as every
//! manager-only call).

use axum::extract::State;
use serde::{Deserialize, Serialize};
use shoal_control::{ApiCertRequest, ApiCertUse};
use std::time::Duration;

use super::manager;
use crate::AppState;
use crate::body::Json;
use crate::error::{ApiError, ApiResult};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueBody {
    /// Who the certificate is for (its common name).
    #[serde(rename = "Name")]
    name: String,
    /// A PEM certificate signing request.
    #[serde(rename = "CSR")]
    csr: String,
    /// Validity in nanoseconds, as the Docker API writes durations; the swarm's node
    /// certificate expiry when absent.
    #[serde(rename = "Expiry", default)]
    expiry: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct Issued {
    /// The certificate, then the intermediate during a root rotation (`cert.pem`).
    #[serde(rename = "Certificate")]
    certificate: String,
    /// The roots to trust (`ca.pem`).
    #[serde(rename = "CA")]
    ca: String,
    #[serde(rename = "NotAfter")]
    not_after: String,
}

pub async fn issue(
    State(state): State<AppState>,
    Json(body): Json<IssueBody>,
) -> ApiResult<axum::Json<Issued>> {
    let m = manager(&state).await?;
    let expiry = match body.expiry {
        None => None,
        Some(ns) if ns > 0 => Some(Duration::from_nanos(ns.unsigned_abs())),
        Some(ns) => {
            return Err(ApiError::bad_request(format!(
                "Expiry: must be longer than zero, got {ns}ns"
            )));
        }
    };
    let req = ApiCertRequest {
        usage: ApiCertUse::Client {
            name: body.name.clone(),
        },
        csr_pem: body.csr,
        expiry,
    };
    let cert = m.issue_api_certificate(&req, state.clock.now())?;
    tracing::info!(client.name = %body.name, not_after = %cert.not_after, "issued an API client certificate");
    Ok(axum::Json(Issued {
        certificate: cert.cert_pem,
        ca: cert.trust.concat(),
        not_after: cert.not_after.to_string(),
    }))
}
