//! The machinery of the conversions: a k8s-pb message becomes the k8s-openapi value of the same
//! field by [`Conv`], chosen by the target's type; [`convert!`] writes a message's conversion
//! from a list of its fields, destructuring it whole so that every field of the message is
//! named there (converted, rejected when set, or ignored), checked by the compiler.
//!
//! Go encodes every non-pointer field of an object, zero or not: an unset string arrives as
//! `Some("")`, an unset `int32` as `Some(0)`, an unset struct as an empty message. The JSON
//! encoder omits those (`omitempty`), so a string `""` converts to nothing; a number or a bool
//! is kept as sent unless its field is listed as `zero` (Go's non-pointer fields, where `0` and
//! `false` mean unset), because for a pointer field (`replicas`, `backoffLimit`, `runAsUser`…)
//! zero is a value.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;

/// Where a value sits in the object, for errors: rendered as Kubernetes' JSON path
/// (`spec.template.spec.containers[0].lifecycle`) only when an error needs it.
#[derive(Clone, Copy)]
pub(super) struct At<'a> {
    up: Option<&'a At<'a>>,
    seg: Seg<'a>,
}

#[derive(Clone, Copy)]
enum Seg<'a> {
    Root,
    Field(&'static str),
    Index(usize),
    Key(&'a str),
}

impl At<'static> {
    pub(super) fn root() -> Self {
        At {
            up: None,
            seg: Seg::Root,
        }
    }
}

impl<'a> At<'a> {
    pub(super) fn field(&'a self, name: &'static str) -> At<'a> {
        At {
            up: Some(self),
            seg: Seg::Field(name),
        }
    }

    pub(super) fn index(&'a self, i: usize) -> At<'a> {
        At {
            up: Some(self),
            seg: Seg::Index(i),
        }
    }

    pub(super) fn key(&'a self, k: &'a str) -> At<'a> {
        At {
            up: Some(self),
            seg: Seg::Key(k),
        }
    }

    pub(super) fn path(&self) -> String {
        let mut segs = Vec::new();
        let mut at = Some(self);
        while let Some(a) = at {
            segs.push(a.seg);
            at = a.up;
        }
        let mut out = String::new();
        for seg in segs.into_iter().rev() {
            match seg {
                Seg::Root => {}
                Seg::Field(name) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(&json_name(name));
                }
                Seg::Index(i) => out.push_str(&format!("[{i}]")),
                Seg::Key(k) => out.push_str(&format!("[{k:?}]")),
            }
        }
        out
    }

    /// The error for a field this conversion does not carry, set in the body.
    pub(super) fn unsupported(&self, name: &'static str) -> Fail {
        Fail {
            path: self.field(name).path(),
            why: Why::Unsupported,
        }
    }

    pub(super) fn invalid(&self, reason: impl Into<String>) -> Fail {
        Fail {
            path: self.path(),
            why: Why::Invalid(reason.into()),
        }
    }
}

/// Kubernetes' JSON name of a k8s-pb field (`host_ipc` → `hostIPC`, `r#type` → `type`).
fn json_name(rust: &str) -> String {
    let rust = rust.strip_prefix("r#").unwrap_or(rust);
    const ODD: &[(&str, &str)] = &[
        ("host_ipc", "hostIPC"),
        ("host_pid", "hostPID"),
        ("host_ip", "hostIP"),
        ("cluster_ip", "clusterIP"),
        ("cluster_ips", "clusterIPs"),
        ("external_ips", "externalIPs"),
        ("load_balancer_ip", "loadBalancerIP"),
        ("pod_cidr", "podCIDR"),
        ("pod_cid_rs", "podCIDRs"),
        ("provider_id", "providerID"),
        ("external_id", "externalID"),
        ("set_hostname_as_fqdn", "setHostnameAsFQDN"),
        ("downward_api", "downwardAPI"),
        ("client_ip", "clientIP"),
        ("scale_io", "scaleIO"),
        ("iscsi", "iscsi"),
    ];
    if let Some((_, json)) = ODD.iter().find(|(r, _)| *r == rust) {
        return (*json).to_owned();
    }
    let mut out = String::with_capacity(rust.len());
    let mut upper = false;
    for c in rust.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// A conversion failure, before the kind of the object is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Fail {
    pub(super) path: String,
    pub(super) why: Why,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Why {
    /// Set in the body, but not carried by these conversions.
    Unsupported,
    /// A value no JSON form has (a time out of range, an IntOrString of an unknown type).
    Invalid(String),
}

pub(super) type R<T> = Result<T, Fail>;

/// A k8s-pb value converted to the k8s-openapi value `T` of the same field.
pub(super) trait Conv<T> {
    fn conv(self, at: At<'_>) -> R<T>;
}

/// A k8s-pb message type with a conversion (or one only checked for being unset).
pub(super) trait PbMsg: prost::Message + Default {}

/// A k8s-openapi type a field holds without `Option` (a missing message becomes its default).
pub(super) trait Required: Default {}

impl Conv<Option<String>> for Option<String> {
    fn conv(self, _: At<'_>) -> R<Option<String>> {
        Ok(self.filter(|s| !s.is_empty()))
    }
}

impl Conv<String> for Option<String> {
    fn conv(self, _: At<'_>) -> R<String> {
        Ok(self.unwrap_or_default())
    }
}

impl Conv<String> for String {
    fn conv(self, _: At<'_>) -> R<String> {
        Ok(self)
    }
}

macro_rules! scalar {
    ($($t:ty),*) => {$(
        impl Conv<Option<$t>> for Option<$t> {
            fn conv(self, _: At<'_>) -> R<Option<$t>> {
                Ok(self)
            }
        }
        impl Conv<$t> for Option<$t> {
            fn conv(self, _: At<'_>) -> R<$t> {
                Ok(self.unwrap_or_default())
            }
        }
        impl Conv<$t> for $t {
            fn conv(self, _: At<'_>) -> R<$t> {
                Ok(self)
            }
        }
    )*};
}
scalar!(i32, i64, bool);

impl Conv<ByteString> for Vec<u8> {
    fn conv(self, _: At<'_>) -> R<ByteString> {
        Ok(ByteString(self))
    }
}

impl<P: Conv<T>, T> Conv<Vec<T>> for Vec<P> {
    fn conv(self, at: At<'_>) -> R<Vec<T>> {
        self.into_iter()
            .enumerate()
            .map(|(i, p)| p.conv(at.index(i)))
            .collect()
    }
}

/// A repeated field: absent when empty, as Go's JSON has it (`omitempty`).
impl<P: Conv<T>, T> Conv<Option<Vec<T>>> for Vec<P> {
    fn conv(self, at: At<'_>) -> R<Option<Vec<T>>> {
        if self.is_empty() {
            return Ok(None);
        }
        Conv::<Vec<T>>::conv(self, at).map(Some)
    }
}

impl<P: Conv<T>, T> Conv<BTreeMap<String, T>> for BTreeMap<String, P> {
    fn conv(self, at: At<'_>) -> R<BTreeMap<String, T>> {
        let mut out = BTreeMap::new();
        for (k, p) in self {
            let v = p.conv(at.key(&k))?;
            out.insert(k, v);
        }
        Ok(out)
    }
}

impl<P: Conv<T>, T> Conv<Option<BTreeMap<String, T>>> for BTreeMap<String, P> {
    fn conv(self, at: At<'_>) -> R<Option<BTreeMap<String, T>>> {
        if self.is_empty() {
            return Ok(None);
        }
        Conv::<BTreeMap<String, T>>::conv(self, at).map(Some)
    }
}

impl<P: PbMsg + Conv<T>, T> Conv<Option<T>> for Option<P> {
    fn conv(self, at: At<'_>) -> R<Option<T>> {
        self.map(|p| p.conv(at)).transpose()
    }
}

impl<P: PbMsg + Conv<T>, T: Required> Conv<T> for Option<P> {
    fn conv(self, at: At<'_>) -> R<T> {
        match self {
            Some(p) => p.conv(at),
            None => Ok(T::default()),
        }
    }
}

/// A Go non-pointer scalar: its zero means unset.
pub(super) trait Zero {
    fn nz(self) -> Self;
}

macro_rules! zero {
    ($($t:ty),*) => {$(
        impl Zero for Option<$t> {
            fn nz(self) -> Self {
                self.filter(|v| *v != <$t>::default())
            }
        }
    )*};
}
zero!(i32, i64, bool, String);

/// Whether a field the conversion does not carry is set in the body.
pub(super) trait IsSet {
    fn is_set(&self) -> bool;
}

impl IsSet for Option<String> {
    fn is_set(&self) -> bool {
        self.as_deref().is_some_and(|s| !s.is_empty())
    }
}

impl IsSet for Option<i32> {
    fn is_set(&self) -> bool {
        self.is_some_and(|v| v != 0)
    }
}

impl IsSet for Option<i64> {
    fn is_set(&self) -> bool {
        self.is_some_and(|v| v != 0)
    }
}

impl IsSet for Option<bool> {
    fn is_set(&self) -> bool {
        *self == Some(true)
    }
}

impl<T> IsSet for Vec<T> {
    fn is_set(&self) -> bool {
        !self.is_empty()
    }
}

impl<K, V> IsSet for BTreeMap<K, V> {
    fn is_set(&self) -> bool {
        !self.is_empty()
    }
}

/// A message is set when its encoding holds anything but zeros: Go writes a non-pointer struct
/// field as a message of zero values (`""`, `0`, empty sub-messages), which is unset.
impl<P: PbMsg> IsSet for Option<P> {
    fn is_set(&self) -> bool {
        self.as_ref()
            .is_some_and(|m| !all_zero(&m.encode_to_vec(), 0))
    }
}

/// Whether wire-format bytes hold only zero values: varints and fixed fields of 0, empty
/// length-delimited fields, or ones that themselves parse as all-zero messages (a nested empty
/// struct; a string whose bytes happen to read so counts as unset, which only ever spares a
/// set-but-meaningless value from an error). Nesting past 32 levels counts as set.
fn all_zero(mut buf: &[u8], depth: u32) -> bool {
    if depth > 32 {
        return false;
    }
    while !buf.is_empty() {
        let Some(key) = varint(&mut buf) else {
            return false;
        };
        if key >> 3 == 0 {
            return false;
        }
        match key & 7 {
            0 => {
                if varint(&mut buf) != Some(0) {
                    return false;
                }
            }
            1 => {
                let Some((v, rest)) = buf.split_at_checked(8) else {
                    return false;
                };
                if v.iter().any(|b| *b != 0) {
                    return false;
                }
                buf = rest;
            }
            5 => {
                let Some((v, rest)) = buf.split_at_checked(4) else {
                    return false;
                };
                if v.iter().any(|b| *b != 0) {
                    return false;
                }
                buf = rest;
            }
            2 => {
                let Some(len) = varint(&mut buf) else {
                    return false;
                };
                let Some((v, rest)) = usize::try_from(len)
                    .ok()
                    .and_then(|l| buf.split_at_checked(l))
                else {
                    return false;
                };
                if !v.is_empty() && !all_zero(v, depth + 1) {
                    return false;
                }
                buf = rest;
            }
            _ => return false,
        }
    }
    true
}

fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in 0..10 {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << (shift * 7);
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Marks k8s-pb messages that are only checked for being unset.
macro_rules! pb_msg {
    ($($p:path),* $(,)?) => {$(
        impl $crate::proto::conv::PbMsg for $p {}
    )*};
}
pub(super) use pb_msg;

macro_rules! required {
    ($($t:path),* $(,)?) => {$(
        impl $crate::proto::conv::Required for $t {}
    )*};
}
pub(super) use required;

/// The conversion of a k8s-pb message to its k8s-openapi struct, field by field:
///
/// - `fields`: converted to the field of the same name;
/// - `zero`: the same, with `0`/`false` meaning unset (Go's non-pointer numbers and bools);
/// - `renamed`: `pb_name => openapi_name` (`r#type => type_`);
/// - `reject`: not carried, an error when set;
/// - `ignore`: not carried, dropped (status, server-set fields).
///
/// The message is destructured whole, so a field missing from all lists does not compile.
macro_rules! convert {
    ($pb:path => $api:path {
        $(fields: $($f:ident),* ;)?
        $(zero: $($z:ident),* ;)?
        $(renamed: $($rf:ident => $rt:ident),* ;)?
        $(reject: $($x:ident),* ;)?
        $(ignore: $($i:ident),* ;)?
    }) => {
        impl $crate::proto::conv::PbMsg for $pb {}
        impl $crate::proto::conv::Conv<$api> for $pb {
            #[allow(clippy::needless_update, unused_variables)]
            fn conv(self, at: $crate::proto::conv::At<'_>) -> $crate::proto::conv::R<$api> {
                #[allow(unused_imports)]
                use $crate::proto::conv::{Conv as _, IsSet as _, Zero as _};
                let $pb {
                    $($($f,)*)? $($($z,)*)? $($($rf: $rt,)*)? $($($x,)*)? $($($i,)*)?
                } = self;
                $($(
                    if $x.is_set() {
                        return Err(at.unsupported(stringify!($x)));
                    }
                )*)?
                $($( let _ = $i; )*)?
                type Target = $api;
                Ok(Target {
                    $($( $f: $f.conv(at.field(stringify!($f)))?, )*)?
                    $($( $z: $z.nz().conv(at.field(stringify!($z)))?, )*)?
                    $($( $rt: $rt.conv(at.field(stringify!($rf)))?, )*)?
                    ..Default::default()
                })
            }
        }
    };
}
pub(super) use convert;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_in_json_names() {
        let root = At::root();
        let spec = root.field("spec");
        let tpl = spec.field("template");
        let pod = tpl.field("spec");
        let cs = pod.field("containers");
        let c0 = cs.index(0);
        assert_eq!(
            c0.field("host_ipc").path(),
            "spec.template.spec.containers[0].hostIPC"
        );
        assert_eq!(
            c0.field("r#type").path(),
            "spec.template.spec.containers[0].type"
        );
        let m = root.field("metadata");
        let l = m.field("labels");
        assert_eq!(l.key("a.b/c").path(), "metadata.labels[\"a.b/c\"]");
        assert_eq!(
            root.unsupported("termination_grace_period_seconds").path,
            "terminationGracePeriodSeconds"
        );
    }

    #[test]
    fn zero_messages() {
        assert!(all_zero(&[], 0));
        // name: "" and generation: 0 and an empty creationTimestamp.
        assert!(all_zero(&[0x0a, 0x00, 0x38, 0x00, 0x42, 0x00], 0));
        assert!(all_zero(&[0x12, 0x02, 0x0a, 0x00], 0));
        assert!(!all_zero(&[0x0a, 0x01, 0x61], 0));
        assert!(!all_zero(&[0x38, 0x01], 0));
        assert!(!all_zero(&[0x38], 0));
        assert!(!all_zero(&[0x12, 0x05, 0x0a], 0));
        // Deep nesting (60 levels of empty sub-messages) counts as set.
        let mut deep: Vec<u8> = vec![];
        for _ in 0..60 {
            let mut outer = vec![0x0a, u8::try_from(deep.len()).unwrap_or(0)];
            outer.extend_from_slice(&deep);
            deep = outer;
        }
        assert!(!all_zero(&deep, 0));
        assert!(all_zero(&deep[deep.len() - 20..], 0));
    }
}
