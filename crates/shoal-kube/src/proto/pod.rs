//! core/v1 pod templates: PodSpec, containers, probes, volumes, scheduling.
//!
//! Carried: everything a pod template holds but ephemeral containers, dynamic resource claims,
//! the volume plugins of cloud providers and network storage (GCE, AWS, Azure, vSphere, Ceph,
//! iSCSI, Gluster, Cinder, FC, Flocker, Flex, Quobyte, Photon, Portworx, ScaleIO, StorageOS,
//! CSI, ephemeral, gitRepo) and fields newer than Kubernetes 1.33 (container restart rules,
//! `fileKeyRef`, `hostnameOverride`, `workloadRef`, cluster trust bundle and pod certificate
//! projections): those are an error when set.

use k8s_openapi::api::core::v1 as api;
use k8s_pb::api::core::v1 as pb;

use super::conv::{At, Conv, PbMsg, R, Zero as _, convert, pb_msg, required};

required!(
    api::PodTemplateSpec,
    api::NodeSelectorTerm,
    api::PodAffinityTerm
);
pb_msg!(
    pb::FileKeySelector,
    pb::WorkloadReference,
    pb::ClusterTrustBundleProjection,
    pb::PodCertificateProjection,
    pb::GcePersistentDiskVolumeSource,
    pb::AwsElasticBlockStoreVolumeSource,
    pb::GitRepoVolumeSource,
    pb::IscsiVolumeSource,
    pb::GlusterfsVolumeSource,
    pb::RbdVolumeSource,
    pb::FlexVolumeSource,
    pb::CinderVolumeSource,
    pb::CephFsVolumeSource,
    pb::FlockerVolumeSource,
    pb::FcVolumeSource,
    pb::AzureFileVolumeSource,
    pb::VsphereVirtualDiskVolumeSource,
    pb::QuobyteVolumeSource,
    pb::AzureDiskVolumeSource,
    pb::PhotonPersistentDiskVolumeSource,
    pb::PortworxVolumeSource,
    pb::ScaleIoVolumeSource,
    pb::StorageOsVolumeSource,
    pb::CSIVolumeSource,
    pb::EphemeralVolumeSource,
);

convert!(pb::PodTemplateSpec => api::PodTemplateSpec {
    fields: metadata, spec;
});

convert!(pb::PodSpec => api::PodSpec {
    fields: volumes, init_containers, containers, restart_policy, termination_grace_period_seconds,
        active_deadline_seconds, dns_policy, node_selector, service_account_name, service_account,
        automount_service_account_token, node_name, share_process_namespace, security_context,
        image_pull_secrets, hostname, subdomain, affinity, scheduler_name, tolerations,
        host_aliases, priority_class_name, priority, dns_config, readiness_gates,
        runtime_class_name, enable_service_links, preemption_policy, overhead,
        topology_spread_constraints, set_hostname_as_fqdn, os, host_users, scheduling_gates,
        resource_claims, resources;
    zero: host_network, host_pid, host_ipc;
    reject: ephemeral_containers, hostname_override, workload_ref;
});

convert!(pb::Container => api::Container {
    fields: name, image, command, args, working_dir, ports, env_from, env, resources,
        resize_policy, restart_policy, volume_mounts, volume_devices, liveness_probe,
        readiness_probe, startup_probe, lifecycle, termination_message_path,
        termination_message_policy, image_pull_policy, security_context;
    zero: stdin, stdin_once, tty;
    reject: restart_policy_rules;
});

convert!(pb::ContainerPort => api::ContainerPort {
    fields: name, container_port, protocol, host_ip;
    zero: host_port;
});

convert!(pb::EnvVar => api::EnvVar {
    fields: name, value, value_from;
});

convert!(pb::EnvVarSource => api::EnvVarSource {
    fields: field_ref, resource_field_ref, config_map_key_ref, secret_key_ref;
    reject: file_key_ref;
});

convert!(pb::ObjectFieldSelector => api::ObjectFieldSelector {
    fields: api_version, field_path;
});

convert!(pb::ResourceFieldSelector => api::ResourceFieldSelector {
    fields: container_name, resource, divisor;
});

/// The name of a `LocalObjectReference` Go embeds (JSON `name` beside the other fields).
fn name_of(r: Option<pb::LocalObjectReference>, at: At<'_>) -> R<String> {
    r.and_then(|r| r.name).conv(at.field("name"))
}

impl PbMsg for pb::ConfigMapKeySelector {}
impl Conv<api::ConfigMapKeySelector> for pb::ConfigMapKeySelector {
    fn conv(self, at: At<'_>) -> R<api::ConfigMapKeySelector> {
        let pb::ConfigMapKeySelector {
            local_object_reference,
            key,
            optional,
        } = self;
        Ok(api::ConfigMapKeySelector {
            name: name_of(local_object_reference, at)?,
            key: key.conv(at.field("key"))?,
            optional: optional.conv(at.field("optional"))?,
        })
    }
}

impl PbMsg for pb::SecretKeySelector {}
impl Conv<api::SecretKeySelector> for pb::SecretKeySelector {
    fn conv(self, at: At<'_>) -> R<api::SecretKeySelector> {
        let pb::SecretKeySelector {
            local_object_reference,
            key,
            optional,
        } = self;
        Ok(api::SecretKeySelector {
            name: name_of(local_object_reference, at)?,
            key: key.conv(at.field("key"))?,
            optional: optional.conv(at.field("optional"))?,
        })
    }
}

convert!(pb::EnvFromSource => api::EnvFromSource {
    fields: prefix, config_map_ref, secret_ref;
});

impl PbMsg for pb::ConfigMapEnvSource {}
impl Conv<api::ConfigMapEnvSource> for pb::ConfigMapEnvSource {
    fn conv(self, at: At<'_>) -> R<api::ConfigMapEnvSource> {
        let pb::ConfigMapEnvSource {
            local_object_reference,
            optional,
        } = self;
        Ok(api::ConfigMapEnvSource {
            name: name_of(local_object_reference, at)?,
            optional: optional.conv(at.field("optional"))?,
        })
    }
}

impl PbMsg for pb::SecretEnvSource {}
impl Conv<api::SecretEnvSource> for pb::SecretEnvSource {
    fn conv(self, at: At<'_>) -> R<api::SecretEnvSource> {
        let pb::SecretEnvSource {
            local_object_reference,
            optional,
        } = self;
        Ok(api::SecretEnvSource {
            name: name_of(local_object_reference, at)?,
            optional: optional.conv(at.field("optional"))?,
        })
    }
}

convert!(pb::ResourceRequirements => api::ResourceRequirements {
    fields: limits, requests, claims;
});

convert!(pb::ResourceClaim => api::ResourceClaim {
    fields: name, request;
});

convert!(pb::ContainerResizePolicy => api::ContainerResizePolicy {
    fields: resource_name, restart_policy;
});

convert!(pb::VolumeMount => api::VolumeMount {
    fields: name, recursive_read_only, mount_path, sub_path, mount_propagation, sub_path_expr;
    zero: read_only;
});

convert!(pb::VolumeDevice => api::VolumeDevice {
    fields: name, device_path;
});

// A probe's handler is embedded in Go: its fields sit beside the timings in JSON.
convert!(pb::ProbeHandler => api::Probe {
    fields: exec, http_get, tcp_socket, grpc;
});

impl PbMsg for pb::Probe {}
impl Conv<api::Probe> for pb::Probe {
    fn conv(self, at: At<'_>) -> R<api::Probe> {
        let pb::Probe {
            handler,
            initial_delay_seconds,
            timeout_seconds,
            period_seconds,
            success_threshold,
            failure_threshold,
            termination_grace_period_seconds,
        } = self;
        let probe: api::Probe = handler.unwrap_or_default().conv(at)?;
        Ok(api::Probe {
            initial_delay_seconds: initial_delay_seconds.nz(),
            timeout_seconds: timeout_seconds.nz(),
            period_seconds: period_seconds.nz(),
            success_threshold: success_threshold.nz(),
            failure_threshold: failure_threshold.nz(),
            termination_grace_period_seconds,
            ..probe
        })
    }
}

convert!(pb::ExecAction => api::ExecAction {
    fields: command;
});

convert!(pb::HttpGetAction => api::HTTPGetAction {
    fields: path, port, host, scheme, http_headers;
});

convert!(pb::HttpHeader => api::HTTPHeader {
    fields: name, value;
});

convert!(pb::TcpSocketAction => api::TCPSocketAction {
    fields: port, host;
});

convert!(pb::GrpcAction => api::GRPCAction {
    fields: port, service;
});

convert!(pb::Lifecycle => api::Lifecycle {
    fields: post_start, pre_stop, stop_signal;
});

convert!(pb::LifecycleHandler => api::LifecycleHandler {
    fields: exec, http_get, tcp_socket, sleep;
});

convert!(pb::SleepAction => api::SleepAction {
    fields: seconds;
});

convert!(pb::SecurityContext => api::SecurityContext {
    fields: capabilities, privileged, se_linux_options, windows_options, run_as_user, run_as_group,
        run_as_non_root, read_only_root_filesystem, allow_privilege_escalation, proc_mount,
        seccomp_profile, app_armor_profile;
});

convert!(pb::Capabilities => api::Capabilities {
    fields: add, drop;
});

convert!(pb::SeLinuxOptions => api::SELinuxOptions {
    fields: user, role, level;
    renamed: r#type => type_;
});

convert!(pb::SeccompProfile => api::SeccompProfile {
    fields: localhost_profile;
    renamed: r#type => type_;
});

convert!(pb::AppArmorProfile => api::AppArmorProfile {
    fields: localhost_profile;
    renamed: r#type => type_;
});

convert!(pb::WindowsSecurityContextOptions => api::WindowsSecurityContextOptions {
    fields: gmsa_credential_spec_name, gmsa_credential_spec, run_as_user_name, host_process;
});

convert!(pb::PodSecurityContext => api::PodSecurityContext {
    fields: se_linux_options, windows_options, run_as_user, run_as_group, run_as_non_root,
        supplemental_groups, supplemental_groups_policy, fs_group, sysctls,
        fs_group_change_policy, seccomp_profile, app_armor_profile, se_linux_change_policy;
});

convert!(pb::Sysctl => api::Sysctl {
    fields: name, value;
});

// A volume's source is embedded in Go: its one set field sits beside `name` in JSON.
convert!(pb::VolumeSource => api::Volume {
    fields: host_path, empty_dir, secret, nfs, persistent_volume_claim, downward_api, config_map,
        projected, image;
    reject: gce_persistent_disk, aws_elastic_block_store, git_repo, iscsi, glusterfs, rbd,
        flex_volume, cinder, cephfs, flocker, fc, azure_file, vsphere_volume, quobyte, azure_disk,
        photon_persistent_disk, portworx_volume, scale_io, storageos, csi, ephemeral;
});

impl PbMsg for pb::Volume {}
impl Conv<api::Volume> for pb::Volume {
    fn conv(self, at: At<'_>) -> R<api::Volume> {
        let pb::Volume {
            name,
            volume_source,
        } = self;
        let volume: api::Volume = volume_source.unwrap_or_default().conv(at)?;
        Ok(api::Volume {
            name: name.conv(at.field("name"))?,
            ..volume
        })
    }
}

convert!(pb::HostPathVolumeSource => api::HostPathVolumeSource {
    fields: path;
    renamed: r#type => type_;
});

convert!(pb::EmptyDirVolumeSource => api::EmptyDirVolumeSource {
    fields: medium, size_limit;
});

convert!(pb::SecretVolumeSource => api::SecretVolumeSource {
    fields: secret_name, items, default_mode, optional;
});

convert!(pb::KeyToPath => api::KeyToPath {
    fields: key, path, mode;
});

convert!(pb::PersistentVolumeClaimVolumeSource => api::PersistentVolumeClaimVolumeSource {
    fields: claim_name;
    zero: read_only;
});

convert!(pb::NfsVolumeSource => api::NFSVolumeSource {
    fields: server, path;
    zero: read_only;
});

convert!(pb::DownwardAPIVolumeSource => api::DownwardAPIVolumeSource {
    fields: items, default_mode;
});

convert!(pb::DownwardAPIVolumeFile => api::DownwardAPIVolumeFile {
    fields: path, field_ref, resource_field_ref, mode;
});

impl PbMsg for pb::ConfigMapVolumeSource {}
impl Conv<api::ConfigMapVolumeSource> for pb::ConfigMapVolumeSource {
    fn conv(self, at: At<'_>) -> R<api::ConfigMapVolumeSource> {
        let pb::ConfigMapVolumeSource {
            local_object_reference,
            items,
            default_mode,
            optional,
        } = self;
        Ok(api::ConfigMapVolumeSource {
            name: name_of(local_object_reference, at)?,
            items: items.conv(at.field("items"))?,
            default_mode: default_mode.conv(at.field("default_mode"))?,
            optional: optional.conv(at.field("optional"))?,
        })
    }
}

convert!(pb::ProjectedVolumeSource => api::ProjectedVolumeSource {
    fields: sources, default_mode;
});

convert!(pb::VolumeProjection => api::VolumeProjection {
    fields: secret, downward_api, config_map, service_account_token;
    reject: cluster_trust_bundle, pod_certificate;
});

impl PbMsg for pb::SecretProjection {}
impl Conv<api::SecretProjection> for pb::SecretProjection {
    fn conv(self, at: At<'_>) -> R<api::SecretProjection> {
        let pb::SecretProjection {
            local_object_reference,
            items,
            optional,
        } = self;
        Ok(api::SecretProjection {
            name: name_of(local_object_reference, at)?,
            items: items.conv(at.field("items"))?,
            optional: optional.conv(at.field("optional"))?,
        })
    }
}

impl PbMsg for pb::ConfigMapProjection {}
impl Conv<api::ConfigMapProjection> for pb::ConfigMapProjection {
    fn conv(self, at: At<'_>) -> R<api::ConfigMapProjection> {
        let pb::ConfigMapProjection {
            local_object_reference,
            items,
            optional,
        } = self;
        Ok(api::ConfigMapProjection {
            name: name_of(local_object_reference, at)?,
            items: items.conv(at.field("items"))?,
            optional: optional.conv(at.field("optional"))?,
        })
    }
}

convert!(pb::DownwardAPIProjection => api::DownwardAPIProjection {
    fields: items;
});

convert!(pb::ServiceAccountTokenProjection => api::ServiceAccountTokenProjection {
    fields: audience, expiration_seconds, path;
});

convert!(pb::ImageVolumeSource => api::ImageVolumeSource {
    fields: reference, pull_policy;
});

convert!(pb::Toleration => api::Toleration {
    fields: key, operator, value, effect, toleration_seconds;
});

convert!(pb::LocalObjectReference => api::LocalObjectReference {
    fields: name;
});

convert!(pb::PodDnsConfig => api::PodDNSConfig {
    fields: nameservers, searches, options;
});

convert!(pb::PodDnsConfigOption => api::PodDNSConfigOption {
    fields: name, value;
});

convert!(pb::HostAlias => api::HostAlias {
    fields: ip, hostnames;
});

convert!(pb::PodReadinessGate => api::PodReadinessGate {
    fields: condition_type;
});

convert!(pb::PodOs => api::PodOS {
    fields: name;
});

convert!(pb::PodSchedulingGate => api::PodSchedulingGate {
    fields: name;
});

convert!(pb::PodResourceClaim => api::PodResourceClaim {
    fields: name, resource_claim_name, resource_claim_template_name;
});

convert!(pb::Affinity => api::Affinity {
    fields: node_affinity, pod_affinity, pod_anti_affinity;
});

convert!(pb::NodeAffinity => api::NodeAffinity {
    fields: required_during_scheduling_ignored_during_execution,
        preferred_during_scheduling_ignored_during_execution;
});

convert!(pb::NodeSelector => api::NodeSelector {
    fields: node_selector_terms;
});

convert!(pb::NodeSelectorTerm => api::NodeSelectorTerm {
    fields: match_expressions, match_fields;
});

convert!(pb::NodeSelectorRequirement => api::NodeSelectorRequirement {
    fields: key, operator, values;
});

convert!(pb::PreferredSchedulingTerm => api::PreferredSchedulingTerm {
    fields: weight, preference;
});

convert!(pb::PodAffinity => api::PodAffinity {
    fields: required_during_scheduling_ignored_during_execution,
        preferred_during_scheduling_ignored_during_execution;
});

convert!(pb::PodAntiAffinity => api::PodAntiAffinity {
    fields: required_during_scheduling_ignored_during_execution,
        preferred_during_scheduling_ignored_during_execution;
});

convert!(pb::PodAffinityTerm => api::PodAffinityTerm {
    fields: label_selector, namespaces, topology_key, namespace_selector, match_label_keys,
        mismatch_label_keys;
});

convert!(pb::WeightedPodAffinityTerm => api::WeightedPodAffinityTerm {
    fields: weight, pod_affinity_term;
});

convert!(pb::TopologySpreadConstraint => api::TopologySpreadConstraint {
    fields: max_skew, topology_key, when_unsatisfiable, label_selector, min_domains,
        node_affinity_policy, node_taints_policy, match_label_keys;
});
