//! apimachinery: ObjectMeta, label selectors, times, quantities, IntOrString, DeleteOptions.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_pb::apimachinery::pkg::api::resource as pbres;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as pbmeta;
use k8s_pb::apimachinery::pkg::util::intstr as pbint;

use super::conv::{At, Conv, PbMsg, R, Zero, convert, pb_msg, required};

required!(meta::ObjectMeta, meta::LabelSelector, IntOrString);
pb_msg!(pbmeta::ManagedFieldsEntry);

convert!(pbmeta::ObjectMeta => meta::ObjectMeta {
    fields: name, generate_name, namespace, self_link, uid, resource_version, creation_timestamp,
        deletion_timestamp, deletion_grace_period_seconds, labels, annotations, owner_references,
        finalizers;
    zero: generation;
    reject: managed_fields;
});

convert!(pbmeta::OwnerReference => meta::OwnerReference {
    fields: api_version, kind, name, uid, controller, block_owner_deletion;
});

convert!(pbmeta::LabelSelector => meta::LabelSelector {
    fields: match_labels, match_expressions;
});

convert!(pbmeta::LabelSelectorRequirement => meta::LabelSelectorRequirement {
    fields: key, operator, values;
});

convert!(pbmeta::DeleteOptions => meta::DeleteOptions {
    fields: grace_period_seconds, preconditions, orphan_dependents, propagation_policy, dry_run,
        ignore_store_read_error_with_cluster_breaking_potential;
});

convert!(pbmeta::Preconditions => meta::Preconditions {
    fields: uid, resource_version;
});

/// A time: Go writes the zero time as an empty message (JSON `null`), which is left out.
impl Conv<Option<meta::Time>> for Option<pbmeta::Time> {
    fn conv(self, at: At<'_>) -> R<Option<meta::Time>> {
        let Some(t) = self else { return Ok(None) };
        let (seconds, nanos) = (t.seconds.unwrap_or(0), t.nanos.unwrap_or(0));
        if seconds == 0 && nanos == 0 {
            return Ok(None);
        }
        k8s_openapi::jiff::Timestamp::new(seconds, nanos)
            .map(|ts| Some(meta::Time(ts)))
            .map_err(|e| at.invalid(format!("time {seconds}s {nanos}ns: {e}")))
    }
}

impl PbMsg for pbres::Quantity {}
impl Conv<Quantity> for pbres::Quantity {
    fn conv(self, _: At<'_>) -> R<Quantity> {
        Ok(Quantity(self.string.unwrap_or_default()))
    }
}

impl PbMsg for pbint::IntOrString {}
impl Conv<IntOrString> for pbint::IntOrString {
    fn conv(self, at: At<'_>) -> R<IntOrString> {
        match self.r#type.unwrap_or(0) {
            0 => Ok(IntOrString::Int(self.int_val.unwrap_or(0))),
            1 => Ok(IntOrString::String(self.str_val.unwrap_or_default())),
            t => Err(at.invalid(format!("IntOrString of type {t} (0 is int, 1 string)"))),
        }
    }
}

/// A non-pointer IntOrString (a Service port's `targetPort`): Go writes its zero, the int 0,
/// which the API server reads as unset.
impl Zero for Option<pbint::IntOrString> {
    fn nz(self) -> Self {
        self.filter(|v| {
            !(v.r#type.unwrap_or(0) == 0
                && v.int_val.unwrap_or(0) == 0
                && v.str_val.as_deref().unwrap_or("").is_empty())
        })
    }
}
