//! The swarm (cluster) object and its spec.

use base64::Engine;
use bollard_stubs::models as w;
use shoal_types::cluster::{Cluster, ClusterSpec, REBALANCE_LABEL, RootCa};

use super::{labels_in, labels_out, nanos, opt_duration, time, version};
use crate::error::ApiError;

/// Applies the fields a client sent onto `base`: Docker clients send partial specs on init and
/// full ones on update, and absent means "keep".
pub fn spec_in(base: &ClusterSpec, s: w::SwarmSpec) -> Result<ClusterSpec, ApiError> {
    let mut out = base.clone();
    if let Some(n) = s.name.filter(|n| !n.is_empty()) {
        out.name = n;
    }
    if s.labels.is_some() {
        out.labels = labels_in(s.labels);
        out.rebalance = match out.labels.remove(REBALANCE_LABEL).as_deref() {
            None | Some("true") => true,
            Some("false") => false,
            Some(other) => {
                return Err(ApiError::invalid(
                    &format!("Labels[{REBALANCE_LABEL}]"),
                    format!("must be true or false, got {other:?}"),
                ));
            }
        };
    }
    if let Some(o) = s.orchestration
        && let Some(l) = o.task_history_retention_limit
    {
        out.task_history_limit = l;
    }
    if let Some(r) = s.raft {
        if let Some(v) = r.snapshot_interval.filter(|v| *v > 0) {
            out.snapshot_interval = v;
        }
        if let Some(v) = r.keep_old_snapshots {
            out.keep_old_snapshots = v;
        }
        if let Some(v) = r.log_entries_for_slow_followers.filter(|v| *v > 0) {
            out.log_entries_for_slow_followers = v;
        }
        if let Some(v) = r.election_tick.filter(|v| *v > 0) {
            out.election_tick = u32::try_from(v)
                .map_err(|_| ApiError::invalid("Raft.ElectionTick", "is too large"))?;
        }
        if let Some(v) = r.heartbeat_tick.filter(|v| *v > 0) {
            out.heartbeat_tick = u32::try_from(v)
                .map_err(|_| ApiError::invalid("Raft.HeartbeatTick", "is too large"))?;
        }
    }
    if let Some(d) = s.dispatcher
        && let Some(p) =
            opt_duration("Dispatcher.HeartbeatPeriod", d.heartbeat_period)?.filter(|p| !p.is_zero())
    {
        out.heartbeat_period = p;
    }
    if let Some(ca) = s.ca_config {
        if let Some(e) =
            opt_duration("CAConfig.NodeCertExpiry", ca.node_cert_expiry)?.filter(|e| !e.is_zero())
        {
            // Docker's floor is 1h; shoal allows 30 s so renewal can be watched (and tested).
            if e < std::time::Duration::from_secs(30) {
                return Err(ApiError::invalid(
                    "CAConfig.NodeCertExpiry",
                    "must be at least 30s",
                ));
            }
            out.node_cert_expiry = e;
        }
        if let Some(r) = ca.force_rotate {
            out.ca_force_rotate = r;
        }
        if ca.signing_ca_cert.as_ref().is_some_and(|v| !v.is_empty())
            || ca.signing_ca_key.as_ref().is_some_and(|v| !v.is_empty())
        {
            return Err(ApiError::invalid(
                "CAConfig.SigningCACert",
                "bringing your own root CA is not supported by shoal yet",
            ));
        }
        if ca.external_cas.as_ref().is_some_and(|v| !v.is_empty()) {
            return Err(ApiError::invalid(
                "CAConfig.ExternalCAs",
                "is not supported by shoal yet",
            ));
        }
    }
    if let Some(e) = s.encryption_config
        && let Some(a) = e.auto_lock_managers
    {
        out.autolock = a;
    }
    Ok(out)
}

pub fn spec_out(s: &ClusterSpec) -> w::SwarmSpec {
    let mut labels = s.labels.clone();
    if !s.rebalance {
        labels.insert(REBALANCE_LABEL.into(), "false".into());
    }
    w::SwarmSpec {
        name: Some(s.name.clone()),
        labels: labels_out(&labels),
        orchestration: Some(w::SwarmSpecOrchestration {
            task_history_retention_limit: Some(s.task_history_limit),
        }),
        raft: Some(w::SwarmSpecRaft {
            snapshot_interval: Some(s.snapshot_interval),
            keep_old_snapshots: Some(s.keep_old_snapshots),
            log_entries_for_slow_followers: Some(s.log_entries_for_slow_followers),
            election_tick: Some(i64::from(s.election_tick)),
            heartbeat_tick: Some(i64::from(s.heartbeat_tick)),
        }),
        dispatcher: Some(w::SwarmSpecDispatcher {
            heartbeat_period: Some(nanos(s.heartbeat_period)),
        }),
        ca_config: Some(w::SwarmSpecCaConfig {
            node_cert_expiry: Some(nanos(s.node_cert_expiry)),
            force_rotate: Some(s.ca_force_rotate),
            ..Default::default()
        }),
        encryption_config: Some(w::SwarmSpecEncryptionConfig {
            auto_lock_managers: Some(s.autolock),
        }),
        task_defaults: Some(Default::default()),
    }
}

pub fn cluster_info(c: &Cluster) -> w::ClusterInfo {
    w::ClusterInfo {
        id: Some(c.id.to_string()),
        version: version(c.meta.version),
        created_at: time(c.meta.created_at),
        updated_at: time(c.meta.updated_at),
        spec: Some(spec_out(&c.spec)),
        tls_info: tls_info(&c.root_ca),
        root_rotation_in_progress: Some(c.root_rotation.is_some()),
        data_path_port: Some(u32::from(c.network.data_path_port)),
        default_addr_pool: Some(c.network.default_addr_pool.clone()),
        subnet_size: Some(u32::from(c.network.subnet_size)),
    }
}

pub fn swarm_out(c: &Cluster) -> w::Swarm {
    let i = cluster_info(c);
    w::Swarm {
        id: i.id,
        version: i.version,
        created_at: i.created_at,
        updated_at: i.updated_at,
        spec: i.spec,
        tls_info: i.tls_info,
        root_rotation_in_progress: i.root_rotation_in_progress,
        data_path_port: i.data_path_port,
        default_addr_pool: i.default_addr_pool,
        subnet_size: i.subnet_size,
        join_tokens: Some(w::JoinTokens {
            worker: Some(c.join_tokens.worker.clone()),
            manager: Some(c.join_tokens.manager.clone()),
        }),
    }
}

/// Docker's `TLSInfo` for a root: its certificate, and its subject and public key (DER, base64
/// as Go encodes bytes). `docker swarm ca` prints the certificate; `swarm ca --rotate` waits
/// until every node's issuer matches the swarm's.
pub fn tls_info(ca: &RootCa) -> Option<w::TlsInfo> {
    let root = shoal_pki::RootCa::from_pem(&ca.cert_pem, None).ok()?;
    let (subject, key) = root.subject_and_public_key_der().ok()?;
    let b64 = base64::engine::general_purpose::STANDARD;
    Some(w::TlsInfo {
        trust_root: Some(ca.cert_pem.clone()),
        cert_issuer_subject: Some(b64.encode(subject)),
        cert_issuer_public_key: Some(b64.encode(key)),
    })
}

/// A node's `TLSInfo`: the root that issued its current certificate (the cluster's, or the one a
/// rotation moves to), by the digest the managers recorded when they issued it.
pub fn node_tls_info(c: Option<&Cluster>, issuer_digest: &str) -> Option<w::TlsInfo> {
    let c = c?;
    if c.root_ca.digest == issuer_digest {
        return tls_info(&c.root_ca);
    }
    c.root_rotation
        .as_ref()
        .filter(|r| r.next.digest == issuer_digest)
        .and_then(|r| tls_info(&r.next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_labels(labels: &[(&str, &str)]) -> w::SwarmSpec {
        w::SwarmSpec {
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn rebalance_travels_as_a_label_and_survives_a_round_trip() {
        let base = ClusterSpec::default();
        assert!(base.rebalance);
        let off = spec_in(
            &base,
            with_labels(&[(REBALANCE_LABEL, "false"), ("a", "1")]),
        )
        .expect("valid");
        assert!(!off.rebalance);
        assert_eq!(
            off.labels.len(),
            1,
            "the setting is not kept as a user label"
        );
        // What a client reads back and sends again (the docker CLI's `swarm update`) keeps it.
        let again = spec_in(&off, spec_out(&off)).expect("round trip");
        assert!(!again.rebalance);
        // Labels without it turn it back on; a spec without labels keeps it.
        assert!(
            spec_in(&off, with_labels(&[("a", "1")]))
                .expect("valid")
                .rebalance
        );
        let no_labels = w::SwarmSpec::default();
        assert!(!spec_in(&off, no_labels).expect("valid").rebalance);
        assert!(
            !spec_out(&base)
                .labels
                .unwrap_or_default()
                .contains_key(REBALANCE_LABEL)
        );
    }

    #[test]
    fn a_bad_rebalance_value_names_the_label() {
        let e = spec_in(
            &ClusterSpec::default(),
            with_labels(&[(REBALANCE_LABEL, "maybe")]),
        )
        .expect_err("not a bool");
        assert_eq!(e.status, http::StatusCode::BAD_REQUEST);
        let text = e.message;
        assert!(
            text.contains("Labels[shoal.orchestration.rebalance]") && text.contains("\"maybe\""),
            "{text}"
        );
    }
}
