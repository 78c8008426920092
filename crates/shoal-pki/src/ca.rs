//! The cluster's root CA: generating it, loading it from PEM, issuing node certificates from
//! CSRs, and cross-signing the next root during a rotation.
//!
//! Concurrency: [`RootCa`] is an immutable value; signing re-reads the key from its PEM each
//! time, so a `RootCa` can be shared freely and costs nothing while it is not signing.
//!
//! Issuing follows Swarm's policy: only the public key is taken from a CSR; the subject, the
//! SANs, the usages and the validity all come from the arguments, so a node cannot ask for more
//! than the CA decides to give it.

use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, PublicKeyData, SanType, SerialNumber, SubjectPublicKeyInfo,
};
use ring::rand::SecureRandom;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use shoal_types::{Id, Timestamp};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::x509::X509Name;

use crate::{CA_COMMON_NAME, NodeRole, PkiError, role_ou};

/// How far back every certificate's validity starts, so a node whose clock runs a little behind
/// the issuer's still accepts it (Swarm's `CertBackdate`).
pub(crate) const BACKDATE: Duration = Duration::from_secs(3600);

/// A cluster root: its certificate and, on the nodes that sign (managers), its private key.
#[derive(Clone)]
pub struct RootCa {
    pub cert_pem: String,
    key_pem: Option<String>,
    der: CertificateDer<'static>,
}

impl std::fmt::Debug for RootCa {
    // Never print the key; the digest identifies the root.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootCa")
            .field("digest", &self.digest())
            .field("can_sign", &self.key_pem.is_some())
            .finish()
    }
}

impl RootCa {
    /// A new self-signed root (ECDSA P-256, CN `swarm-ca`, O = cluster ID) valid from an hour
    /// before `now` for `validity` (the daemon uses 20 years, as Swarm).
    pub fn generate(
        cluster_id: &str,
        validity: Duration,
        now: Timestamp,
    ) -> Result<RootCa, PkiError> {
        check_cluster_id(cluster_id)?;
        let key = new_key()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, CA_COMMON_NAME);
        params
            .distinguished_name
            .push(DnType::OrganizationName, cluster_id);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = ca_key_usages();
        params.not_before = to_datetime(now.sub(BACKDATE), "not before")?;
        params.not_after = to_datetime(now.add(validity), "validity")?;
        params.serial_number = Some(random_serial()?);
        let cert = params.self_signed(&key).map_err(sign_err)?;
        Ok(RootCa {
            cert_pem: cert.pem(),
            key_pem: Some(key.serialize_pem()),
            der: cert.der().clone(),
        })
    }

    /// Loads a root from its certificate and, where this node signs, its key. The certificate
    /// must be one self-signed CA certificate, and the key must be the certificate's.
    pub fn from_pem(cert_pem: &str, key_pem: Option<&str>) -> Result<RootCa, PkiError> {
        const WHAT: &str = "root CA certificate";
        let der = one_cert(cert_pem, WHAT)?;
        let cert = parse_cert(&der, WHAT)?;
        if !cert.is_ca() {
            return Err(cert_err(
                WHAT,
                "is not a CA certificate (basicConstraints CA is unset)",
            ));
        }
        cert.verify_signature(None).map_err(|e| {
            cert_err_from(
                WHAT,
                "is not a self-signed root: its signature does not verify with its own key",
                e,
            )
        })?;
        if let Some(key_pem) = key_pem {
            let key = KeyPair::from_pem(key_pem).map_err(|e| PkiError::Key {
                what: "root CA key",
                why: "not a valid PEM private key".into(),
                source: Some(e.into()),
            })?;
            if key.subject_public_key_info() != cert.public_key().raw {
                return Err(PkiError::Key {
                    what: "root CA key",
                    why: "does not belong to the root CA certificate".into(),
                    source: None,
                });
            }
        }
        Ok(RootCa {
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.map(str::to_owned),
            der,
        })
    }

    /// The root's private key, where this node holds it.
    pub fn key_pem(&self) -> Option<&str> {
        self.key_pem.as_deref()
    }

    /// The root certificate in DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.der
    }

    /// The root's subject and public key (SubjectPublicKeyInfo), both DER-encoded: how Docker's
    /// `TLSInfo` names a certificate issuer (`CertIssuerSubject`, `CertIssuerPublicKey`).
    pub fn subject_and_public_key_der(&self) -> Result<(Vec<u8>, Vec<u8>), PkiError> {
        let cert = parse_cert(&self.der, "root CA certificate")?;
        Ok((
            cert.subject().as_raw().to_vec(),
            cert.public_key().raw.to_vec(),
        ))
    }

    /// The SHA-256 of the root certificate's DER as 50 lowercase base36 digits, zero-padded:
    /// the form Swarm's join tokens carry (`base36DigestLen`). Hashing the DER rather than the
    /// PEM text keeps the digest independent of line endings and headers.
    pub fn digest(&self) -> String {
        let sum = ring::digest::digest(&ring::digest::SHA256, &self.der);
        crate::token::base36_256(sum.as_ref())
    }

    /// Signs `csr_pem` for `node_id` in `role`: CN = node ID, OU = `swarm-manager` |
    /// `swarm-worker`, O = `cluster_id`, DNS SANs = the role name and the node ID, usable for
    /// both server and client auth, valid from an hour before `now` until `now + expiry`.
    /// Returns the certificate in PEM.
    pub fn issue(
        &self,
        csr_pem: &str,
        node_id: &Id,
        role: NodeRole,
        cluster_id: &str,
        expiry: Duration,
        now: Timestamp,
    ) -> Result<String, PkiError> {
        if !Id::is_well_formed(node_id.as_str()) {
            return Err(PkiError::InvalidArgument {
                field: "node id",
                why: format!("{node_id:?} is not a 25-character base36 ID"),
            });
        }
        check_cluster_id(cluster_id)?;
        if expiry.is_zero() {
            return Err(PkiError::InvalidArgument {
                field: "certificate expiry",
                why: "must be longer than zero".into(),
            });
        }
        // from_pem verifies the CSR's signature: the requester holds the key it asks us to certify.
        let csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(PkiError::Csr)?;
        let ou = role_ou(role);
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, node_id.as_str());
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, ou);
        params
            .distinguished_name
            .push(DnType::OrganizationName, cluster_id);
        params.subject_alt_names = vec![
            SanType::DnsName(ou.try_into().map_err(sign_err)?),
            SanType::DnsName(node_id.as_str().try_into().map_err(sign_err)?),
        ];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.not_before = to_datetime(now.sub(BACKDATE), "not before")?;
        params.not_after = to_datetime(now.add(expiry), "certificate expiry")?;
        params.serial_number = Some(random_serial()?);
        params.use_authority_key_identifier_extension = true;
        let key = self.signing_key()?;
        let issuer = self.issuer(key)?;
        let cert = params
            .signed_by(&csr.public_key, &issuer)
            .map_err(sign_err)?;
        Ok(cert.pem())
    }

    /// An intermediate certificate for `next`'s key and subject, signed by this root. A leaf that
    /// `next` issues, presented with this intermediate, chains to this (old) root too, so nodes
    /// that trust only the old root keep accepting new certificates while a rotation runs.
    /// Valid from an hour before `now` until `next` expires; it keeps `next`'s subject key
    /// identifier so either path looks the same to a verifier.
    pub fn cross_sign(&self, next: &RootCa, now: Timestamp) -> Result<String, PkiError> {
        const WHAT: &str = "next root CA certificate";
        let key = self.signing_key()?;
        let cert = parse_cert(&next.der, WHAT)?;
        let spki = SubjectPublicKeyInfo::from_der(cert.public_key().raw)
            .map_err(|e| cert_err_from(WHAT, "unsupported public key", e))?;
        let mut params = CertificateParams::default();
        params.distinguished_name =
            dn_of(cert.subject()).map_err(|why| cert_err(WHAT, format!("subject: {why}")))?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = ca_key_usages();
        params.not_before = to_datetime(now.sub(BACKDATE), "not before")?;
        params.not_after = cert.validity().not_after.to_datetime();
        params.serial_number = Some(random_serial()?);
        params.use_authority_key_identifier_extension = true;
        if let Some(ski) = subject_key_id(&cert) {
            params.key_identifier_method = KeyIdMethod::PreSpecified(ski);
        }
        let issuer = self.issuer(key)?;
        let cert = params.signed_by(&spki, &issuer).map_err(sign_err)?;
        Ok(cert.pem())
    }

    pub(crate) fn signing_key(&self) -> Result<KeyPair, PkiError> {
        let pem = self.key_pem.as_deref().ok_or(PkiError::NoSigningKey)?;
        KeyPair::from_pem(pem).map_err(|e| PkiError::Key {
            what: "root CA key",
            why: "not a valid PEM private key".into(),
            source: Some(e.into()),
        })
    }

    pub(crate) fn issuer(&self, key: KeyPair) -> Result<Issuer<'static, KeyPair>, PkiError> {
        Issuer::from_ca_cert_der(&self.der, key)
            .map_err(|e| cert_err_from("root CA certificate", "cannot sign with it", e))
    }
}

/// A fresh node key (ECDSA P-256, PKCS#8 PEM) and a CSR for it. The CSR carries no subject:
/// the CA decides the node's names.
pub fn new_key_and_csr() -> Result<(String, String), PkiError> {
    let key = new_key()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    let csr = params.serialize_request(&key).map_err(sign_err)?;
    let csr_pem = csr.pem().map_err(sign_err)?;
    Ok((key.serialize_pem(), csr_pem))
}

pub(crate) fn new_key() -> Result<KeyPair, PkiError> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| PkiError::Key {
        what: "new key",
        why: "cannot generate it".into(),
        source: Some(e.into()),
    })
}

fn ca_key_usages() -> Vec<KeyUsagePurpose> {
    vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ]
}

pub(crate) fn check_cluster_id(cluster_id: &str) -> Result<(), PkiError> {
    if cluster_id.is_empty() {
        return Err(PkiError::InvalidArgument {
            field: "cluster id",
            why: "must not be empty".into(),
        });
    }
    Ok(())
}

/// 126 random bits, positive, with a non-zero first byte so the DER integer is always 16 bytes.
/// rcgen's default serial is a hash of the public key, which would repeat when a node's key is
/// certified twice (a role change); serials must be unique per issuer.
pub(crate) fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut b = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| PkiError::Sign(Box::new(RngFailed)))?;
    b[0] = (b[0] & 0x3f) | 0x40;
    Ok(SerialNumber::from_slice(&b))
}

/// X.509 times have whole seconds; the sub-second part is dropped.
pub(crate) fn to_datetime(t: Timestamp, field: &'static str) -> Result<OffsetDateTime, PkiError> {
    let secs = t.unix_nanos().div_euclid(1_000_000_000);
    OffsetDateTime::from_unix_timestamp(secs).map_err(|e| PkiError::InvalidArgument {
        field,
        why: format!("{t} cannot be written in a certificate: {e}"),
    })
}

/// ring's RNG error says nothing; this names what failed.
#[derive(Debug, thiserror::Error)]
#[error("the system RNG failed")]
struct RngFailed;

pub(crate) fn sign_err(e: rcgen::Error) -> PkiError {
    PkiError::Sign(Box::new(e))
}

pub(crate) fn cert_err(what: &'static str, why: impl Into<String>) -> PkiError {
    PkiError::Certificate {
        what,
        why: why.into(),
        source: None,
    }
}

/// A certificate error whose cause is a library's error (kept as the source).
pub(crate) fn cert_err_from(
    what: &'static str,
    why: impl Into<String>,
    source: impl std::error::Error + Send + Sync + 'static,
) -> PkiError {
    PkiError::Certificate {
        what,
        why: why.into(),
        source: Some(Box::new(source)),
    }
}

/// The first certificate of a PEM text, refusing texts that hold none or several.
pub(crate) fn one_cert(pem: &str, what: &'static str) -> Result<CertificateDer<'static>, PkiError> {
    let mut certs = certs_of(pem, what)?;
    match certs.len() {
        1 => Ok(certs.remove(0)),
        0 => Err(cert_err(what, "no CERTIFICATE block in the PEM text")),
        n => Err(cert_err(
            what,
            format!("expected one certificate, found {n}"),
        )),
    }
}

/// Every certificate of a PEM text, in order.
pub(crate) fn certs_of(
    pem: &str,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err_from(what, "not valid PEM", e))
}

pub(crate) fn parse_cert<'a>(
    der: &'a [u8],
    what: &'static str,
) -> Result<X509Certificate<'a>, PkiError> {
    match x509_parser::parse_x509_certificate(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(cert_err(what, "trailing bytes after the certificate")),
        Err(e) => Err(cert_err_from(what, "not a valid X.509 certificate", e)),
    }
}

fn subject_key_id(cert: &X509Certificate<'_>) -> Option<Vec<u8>> {
    cert.iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        })
}

/// The subject of a parsed certificate as rcgen names, keeping each value's string type so the
/// re-encoded name is byte-identical: chain building matches issuer and subject names exactly.
fn dn_of(name: &X509Name<'_>) -> Result<DistinguishedName, String> {
    use x509_parser::der_parser::asn1_rs::Tag;
    let mut dn = DistinguishedName::new();
    for rdn in name.iter() {
        let mut attrs = rdn.iter();
        let (Some(attr), None) = (attrs.next(), attrs.next()) else {
            return Err("multi-valued or empty relative names are not supported".into());
        };
        let oid: Vec<u64> = attr
            .attr_type()
            .iter()
            .ok_or("an attribute type is not a valid OID")?
            .collect();
        let data = attr.attr_value().data;
        let text = || std::str::from_utf8(data).map_err(|_| "an attribute is not UTF-8".to_owned());
        let value = match attr.attr_value().header.tag() {
            Tag::Utf8String => DnValue::Utf8String(text()?.to_owned()),
            Tag::PrintableString => {
                DnValue::PrintableString(text()?.try_into().map_err(|e| format!("{e}"))?)
            }
            Tag::Ia5String => DnValue::Ia5String(text()?.try_into().map_err(|e| format!("{e}"))?),
            t => return Err(format!("attribute string type {t} is not supported")),
        };
        dn.push(DnType::from_oid(&oid), value);
    }
    Ok(dn)
}
