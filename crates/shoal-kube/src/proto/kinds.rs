//! The kinds decoded: core/v1 Secret, ConfigMap, Namespace, Service, Pod, Node; apps/v1
//! Deployment, DaemonSet; batch/v1 Job, CronJob; policy/v1 Eviction. Status is ignored (a
//! create body carries an empty one).

use k8s_openapi::api::apps::v1 as apps;
use k8s_openapi::api::batch::v1 as batch;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::policy::v1 as policy;
use k8s_pb::api::apps::v1 as pbapps;
use k8s_pb::api::batch::v1 as pbbatch;
use k8s_pb::api::core::v1 as pbcore;
use k8s_pb::api::policy::v1 as pbpolicy;

use super::conv::{convert, pb_msg, required};

required!(batch::JobTemplateSpec);
pb_msg!(pbcore::NodeConfigSource);

convert!(pbcore::Secret => core::Secret {
    fields: metadata, immutable, data, string_data;
    renamed: r#type => type_;
});

convert!(pbcore::ConfigMap => core::ConfigMap {
    fields: metadata, immutable, data, binary_data;
});

convert!(pbcore::Namespace => core::Namespace {
    fields: metadata, spec;
    ignore: status;
});

convert!(pbcore::NamespaceSpec => core::NamespaceSpec {
    fields: finalizers;
});

convert!(pbcore::Service => core::Service {
    fields: metadata, spec;
    ignore: status;
});

convert!(pbcore::ServiceSpec => core::ServiceSpec {
    fields: ports, selector, cluster_ip, cluster_ips, external_ips, session_affinity,
        load_balancer_ip, load_balancer_source_ranges, external_name, external_traffic_policy,
        session_affinity_config, ip_families, ip_family_policy, allocate_load_balancer_node_ports,
        load_balancer_class, internal_traffic_policy, traffic_distribution;
    zero: health_check_node_port, publish_not_ready_addresses;
    renamed: r#type => type_;
});

convert!(pbcore::ServicePort => core::ServicePort {
    fields: name, protocol, app_protocol, port;
    zero: node_port, target_port;
});

convert!(pbcore::SessionAffinityConfig => core::SessionAffinityConfig {
    fields: client_ip;
});

convert!(pbcore::ClientIpConfig => core::ClientIPConfig {
    fields: timeout_seconds;
});

convert!(pbcore::Pod => core::Pod {
    fields: metadata, spec;
    ignore: status;
});

convert!(pbcore::Node => core::Node {
    fields: metadata, spec;
    ignore: status;
});

convert!(pbcore::NodeSpec => core::NodeSpec {
    fields: pod_cidr, provider_id, taints, external_id;
    zero: unschedulable;
    renamed: pod_cid_rs => pod_cidrs;
    reject: config_source;
});

convert!(pbcore::Taint => core::Taint {
    fields: key, value, effect, time_added;
});

convert!(pbapps::Deployment => apps::Deployment {
    fields: metadata, spec;
    ignore: status;
});

convert!(pbapps::DeploymentSpec => apps::DeploymentSpec {
    fields: replicas, selector, template, strategy, revision_history_limit,
        progress_deadline_seconds;
    zero: min_ready_seconds, paused;
});

convert!(pbapps::DeploymentStrategy => apps::DeploymentStrategy {
    fields: rolling_update;
    renamed: r#type => type_;
});

convert!(pbapps::RollingUpdateDeployment => apps::RollingUpdateDeployment {
    fields: max_unavailable, max_surge;
});

convert!(pbapps::DaemonSet => apps::DaemonSet {
    fields: metadata, spec;
    ignore: status;
});

convert!(pbapps::DaemonSetSpec => apps::DaemonSetSpec {
    fields: selector, template, update_strategy, revision_history_limit;
    zero: min_ready_seconds;
});

convert!(pbapps::DaemonSetUpdateStrategy => apps::DaemonSetUpdateStrategy {
    fields: rolling_update;
    renamed: r#type => type_;
});

convert!(pbapps::RollingUpdateDaemonSet => apps::RollingUpdateDaemonSet {
    fields: max_unavailable, max_surge;
});

convert!(pbbatch::Job => batch::Job {
    fields: metadata, spec;
    ignore: status;
});

convert!(pbbatch::JobSpec => batch::JobSpec {
    fields: parallelism, completions, active_deadline_seconds, pod_failure_policy,
        success_policy, backoff_limit, backoff_limit_per_index, max_failed_indexes, selector,
        manual_selector, template, ttl_seconds_after_finished, completion_mode, suspend,
        pod_replacement_policy, managed_by;
});

convert!(pbbatch::PodFailurePolicy => batch::PodFailurePolicy {
    fields: rules;
});

convert!(pbbatch::PodFailurePolicyRule => batch::PodFailurePolicyRule {
    fields: action, on_exit_codes, on_pod_conditions;
});

convert!(pbbatch::PodFailurePolicyOnExitCodesRequirement => batch::PodFailurePolicyOnExitCodesRequirement {
    fields: container_name, operator, values;
});

convert!(pbbatch::PodFailurePolicyOnPodConditionsPattern => batch::PodFailurePolicyOnPodConditionsPattern {
    fields: status;
    renamed: r#type => type_;
});

convert!(pbbatch::SuccessPolicy => batch::SuccessPolicy {
    fields: rules;
});

convert!(pbbatch::SuccessPolicyRule => batch::SuccessPolicyRule {
    fields: succeeded_indexes, succeeded_count;
});

convert!(pbbatch::CronJob => batch::CronJob {
    fields: metadata, spec;
    ignore: status;
});

convert!(pbbatch::CronJobSpec => batch::CronJobSpec {
    fields: schedule, time_zone, starting_deadline_seconds, concurrency_policy, suspend,
        job_template, successful_jobs_history_limit, failed_jobs_history_limit;
});

convert!(pbbatch::JobTemplateSpec => batch::JobTemplateSpec {
    fields: metadata, spec;
});

convert!(pbpolicy::Eviction => policy::Eviction {
    fields: metadata, delete_options;
});
