//! The PKI through its public API: issuing and reading identities, join tokens, digests,
//! credentials on disk and cross-signing, checked with rustls' own certificate verifiers at
//! fixed instants (no wall clock).

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use shoal_pki::{
    Credentials, JoinToken, NodeRole, PkiError, RootCa, crypto_provider, identity_of_der,
    identity_of_pem, new_key_and_csr,
};
use shoal_types::{Id, IdGen, Timestamp};

const DAY: Duration = Duration::from_secs(86_400);
const YEAR: Duration = Duration::from_secs(365 * 86_400);
/// 2025-01-01T00:00:00Z: tests issue and verify at fixed instants.
const NOW: Timestamp = Timestamp(1_735_689_600_000_000_000);

fn at(t: Timestamp) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_nanos(t.unix_nanos() as u64))
}

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).expect("test PEM")
}

fn roots(pems: &[&str]) -> Arc<RootCertStore> {
    let mut store = RootCertStore::empty();
    for p in pems {
        store.add(der(p)).expect("root");
    }
    Arc::new(store)
}

fn issue(ca: &RootCa, id: &Id, role: NodeRole, expiry: Duration, now: Timestamp) -> String {
    let (_key, csr) = new_key_and_csr().expect("csr");
    ca.issue(&csr, id, role, "cluster-a", expiry, now)
        .expect("issue")
}

#[test]
fn issued_certificates_carry_the_identity() {
    let mut ids = IdGen::seeded(1);
    let ca = RootCa::generate("cluster-a", 20 * YEAR, NOW).expect("ca");
    for role in [NodeRole::Worker, NodeRole::Manager] {
        let id = ids.next_id();
        let pem = issue(&ca, &id, role, 90 * DAY, NOW);
        let identity = identity_of_pem(&pem).expect("identity");
        assert_eq!(identity.node_id, id);
        assert_eq!(identity.role, role);
        assert_eq!(identity.cluster_id, "cluster-a");
        assert_eq!(identity.not_after, NOW.add(90 * DAY));
        assert_eq!(identity_of_der(&der(&pem)).expect("der"), identity);

        // The layout Swarm uses: OU is the role, SANs name the role and the node.
        let d = der(&pem);
        let (_, cert) = x509_parser::parse_x509_certificate(&d).expect("x509");
        let ou = cert
            .subject()
            .iter_organizational_unit()
            .next()
            .expect("ou");
        let want_ou = match role {
            NodeRole::Manager => "swarm-manager",
            NodeRole::Worker => "swarm-worker",
        };
        assert_eq!(ou.as_str().expect("ou str"), want_ou);
        let sans = cert
            .subject_alternative_name()
            .expect("san ext")
            .expect("sans present");
        let names: Vec<String> = sans
            .value
            .general_names
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(
            names,
            [format!("DNSName({want_ou})"), format!("DNSName({id})")]
        );
        assert_eq!(
            cert.validity().not_before.timestamp(),
            NOW.sub(Duration::from_secs(3600)).unix_nanos() / 1_000_000_000,
            "backdated an hour for clock skew"
        );
    }
}

#[test]
fn issue_refuses_what_it_must() {
    let mut ids = IdGen::seeded(2);
    let ca = RootCa::generate("cluster-a", YEAR, NOW).expect("ca");
    let (_k, csr) = new_key_and_csr().expect("csr");
    let id = ids.next_id();

    let trusted_only = RootCa::from_pem(&ca.cert_pem, None).expect("trust only");
    assert!(matches!(
        trusted_only.issue(&csr, &id, NodeRole::Worker, "c", DAY, NOW),
        Err(PkiError::NoSigningKey)
    ));

    let err = ca
        .issue(
            &csr,
            &Id::from_raw("Not An Id"),
            NodeRole::Worker,
            "c",
            DAY,
            NOW,
        )
        .expect_err("bad id");
    assert!(err.to_string().starts_with("node id:"), "{err}");

    let err = ca
        .issue("garbage", &id, NodeRole::Worker, "c", DAY, NOW)
        .expect_err("bad csr");
    assert!(
        err.to_string().starts_with("certificate signing request"),
        "{err}"
    );

    // A CSR whose signature does not match its content (one bit of the key flipped).
    let mut csr_der =
        rustls_pki_types::CertificateSigningRequestDer::from_pem_slice(csr.as_bytes())
            .expect("csr der")
            .as_ref()
            .to_vec();
    let n = csr_der.len();
    csr_der[n / 2] ^= 0x01;
    let tampered = pem_encode("CERTIFICATE REQUEST", &csr_der);
    assert!(matches!(
        ca.issue(&tampered, &id, NodeRole::Worker, "c", DAY, NOW),
        Err(PkiError::Csr(_))
    ));
}

#[test]
fn roots_load_from_pem_and_check_their_key() {
    let a = RootCa::generate("cluster-a", YEAR, NOW).expect("a");
    let b = RootCa::generate("cluster-b", YEAR, NOW).expect("b");
    let again = RootCa::from_pem(&a.cert_pem, a.key_pem()).expect("reload");
    assert_eq!(again.digest(), a.digest());
    assert_eq!(again.key_pem(), a.key_pem());

    let err = RootCa::from_pem(&a.cert_pem, b.key_pem()).expect_err("mismatch");
    assert!(err.to_string().contains("does not belong"), "{err}");

    let mut ids = IdGen::seeded(3);
    let leaf = issue(&a, &ids.next_id(), NodeRole::Manager, DAY, NOW);
    let err = RootCa::from_pem(&leaf, None).expect_err("leaf is no root");
    assert!(err.to_string().contains("not a CA"), "{err}");
    let err = RootCa::from_pem("nope", None).expect_err("no pem");
    assert!(err.to_string().contains("no CERTIFICATE"), "{err}");
}

/// A parser's error is kept as the cause, under a message that says what was being read; the
/// chain prints each once.
#[test]
fn unreadable_pem_keeps_the_parser_error_as_its_source() {
    use shoal_types::error::chain;
    use std::error::Error;

    // Not base64 inside the block: the PEM reader refuses it.
    let bad_pem = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
    let err = RootCa::from_pem(bad_pem, None).expect_err("bad base64");
    let source = err.source().expect("the PEM reader's error is the source");
    assert_eq!(
        chain(&err),
        format!("root CA certificate: not valid PEM: {source}")
    );
    assert!(
        !err.to_string().contains(&source.to_string()),
        "the message does not paste its cause: {err}"
    );

    // Valid PEM around bytes that are not a certificate: the X.509 parser refuses them.
    let not_der = "-----BEGIN CERTIFICATE-----\nAAECAwQF\n-----END CERTIFICATE-----\n";
    let err = RootCa::from_pem(not_der, None).expect_err("not X.509");
    let source = err
        .source()
        .expect("the X.509 parser's error is the source");
    assert_eq!(
        chain(&err),
        format!("root CA certificate: not a valid X.509 certificate: {source}")
    );

    // A node key that is not a key.
    let ca = RootCa::generate("cluster-a", YEAR, NOW).expect("ca");
    let creds = Credentials {
        key_pem: "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n".into(),
        cert_pem: ca.cert_pem.clone(),
        intermediate_pem: None,
        trust: vec![ca.cert_pem.clone()],
    };
    let err = creds.private_key().expect_err("bad key");
    assert!(matches!(err, PkiError::Key { .. }), "{err:?}");
    let source = err.source().expect("the key reader's error is the source");
    assert_eq!(
        chain(&err),
        format!("node key: not a valid PEM private key: {source}")
    );
}

#[test]
fn digest_is_stable_and_differs_between_roots() {
    let a = RootCa::generate("cluster-a", YEAR, NOW).expect("a");
    let b = RootCa::generate("cluster-a", YEAR, NOW).expect("b");
    assert_eq!(a.digest().len(), 50);
    assert!(
        a.digest()
            .bytes()
            .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
    );
    assert_eq!(a.digest(), a.digest());
    // Same certificate, different PEM text: same digest.
    let crlf = a.cert_pem.replace('\n', "\r\n");
    assert_eq!(
        RootCa::from_pem(&crlf, None).expect("crlf").digest(),
        a.digest()
    );
    assert_ne!(a.digest(), b.digest());
}

#[test]
fn join_tokens_format_and_parse() {
    let ca = RootCa::generate("cluster-a", YEAR, NOW).expect("ca");
    let mut ids = IdGen::seeded(4);
    let token = JoinToken::generate(&ca, &mut ids);
    let text = token.to_string();
    assert!(text.starts_with("SWMTKN-1-"), "{text}");
    assert_eq!(text.len(), "SWMTKN-1-".len() + 50 + 1 + 25);
    let parsed = JoinToken::parse(&text).expect("parse");
    assert_eq!(parsed, token);
    assert_eq!(parsed.ca_digest, ca.digest());
    assert!(parsed.same_secret(&token));
    assert!(
        !format!("{token:?}").contains(&token.secret),
        "Debug redacts the secret"
    );

    let secret = token.secret.clone();
    let digest = token.ca_digest.clone();
    let cases = [
        (format!("SWMTKX-1-{digest}-{secret}"), "must start with"),
        (format!("swmtkn-1-{digest}-{secret}"), "must start with"),
        (
            format!("SWMTKN-2-{digest}-{secret}"),
            "version 2 is not supported",
        ),
        (
            format!("SWMTKN-{secret}"),
            "version part is missing or malformed",
        ),
        (
            format!("SWMTKN-1-{}-{secret}", &digest[1..]),
            "CA digest has 49 characters",
        ),
        (
            format!("SWMTKN-1-{}X-{secret}", &digest[1..]),
            "lowercase base36",
        ),
        (format!("SWMTKN-1-{digest}-"), "secret is empty"),
        (
            format!("SWMTKN-1-{digest}-{}", &secret[2..]),
            "secret has 23 characters",
        ),
        (format!("SWMTKN-1-{digest}"), "found 3 dash-separated parts"),
        (
            format!("SWMTKN-1-{digest}-{secret}-x"),
            "found 5 dash-separated parts",
        ),
    ];
    for (bad, want) in cases {
        let err = JoinToken::parse(&bad).expect_err(&bad).to_string();
        assert!(err.contains(want), "{bad:?}: {err:?} should say {want:?}");
        assert!(err.starts_with("invalid join token: "), "{err}");
        assert!(!err.contains(&secret), "error text leaks the secret: {err}");
        assert!(
            !err.contains(&secret[2..]),
            "error text leaks the secret: {err}"
        );
    }
}

#[test]
fn credentials_save_and_load() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("certificates");
    assert!(Credentials::load(&path).expect("missing is fine").is_none());

    let mut ids = IdGen::seeded(5);
    let ca = RootCa::generate("cluster-a", YEAR, NOW).expect("ca");
    let (key, csr) = new_key_and_csr().expect("csr");
    let id = ids.next_id();
    let cert = ca
        .issue(&csr, &id, NodeRole::Worker, "cluster-a", DAY, NOW)
        .expect("cert");
    let creds = Credentials {
        key_pem: key,
        cert_pem: cert,
        intermediate_pem: None,
        trust: vec![ca.cert_pem.clone()],
    };
    creds.save(&path).expect("save");
    let loaded = Credentials::load(&path).expect("load").expect("present");
    assert!(loaded == creds);
    assert_eq!(loaded.identity().expect("identity").node_id, id);
    assert!(
        !format!("{loaded:?}").contains("PRIVATE KEY"),
        "Debug hides the key"
    );

    let file = path.join(shoal_pki::CREDENTIALS_FILE);
    let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "key file mode {mode:o}");

    // Saving again replaces the file whole; no temporary file is left behind.
    let mut renewed = creds.clone();
    renewed.trust.push(ca.cert_pem.clone());
    renewed.save(&path).expect("save again");
    assert_eq!(
        Credentials::load(&path)
            .expect("load")
            .expect("present")
            .trust
            .len(),
        2
    );
    let names: Vec<_> = std::fs::read_dir(&path)
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, [shoal_pki::CREDENTIALS_FILE]);

    // A damaged file is refused with its path, not taken as "no credentials".
    std::fs::write(&file, b"{\"key_pem\": \"x\"").expect("write");
    let err = Credentials::load(&path).expect_err("damaged");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert!(
        err.to_string().contains(shoal_pki::CREDENTIALS_FILE),
        "{err}"
    );
    // The JSON parser's error stays reachable: the chain goes on to it.
    let chain = shoal_types::error::chain(&err);
    assert!(chain.contains("EOF while parsing"), "{chain}");
}

#[test]
fn cross_signed_intermediate_bridges_a_root_rotation() {
    let mut ids = IdGen::seeded(6);
    let old = RootCa::generate("cluster-a", 20 * YEAR, NOW).expect("old");
    let later = NOW.add(30 * DAY);
    let new = RootCa::generate("cluster-a", 20 * YEAR, later).expect("new");
    let bridge = old.cross_sign(&new, later).expect("cross-sign");
    let leaf = issue(&new, &ids.next_id(), NodeRole::Manager, 90 * DAY, later);
    let verify_at = at(later.add(Duration::from_secs(60)));
    let provider = crypto_provider();

    // A client verifier that trusts only the old root.
    let old_only =
        WebPkiClientVerifier::builder_with_provider(roots(&[&old.cert_pem]), provider.clone())
            .build()
            .expect("verifier");
    old_only
        .verify_client_cert(&der(&leaf), &[der(&bridge)], verify_at)
        .expect("old root accepts the new leaf through the bridge");
    assert!(
        old_only
            .verify_client_cert(&der(&leaf), &[], verify_at)
            .is_err(),
        "without the bridge the old root must refuse the new leaf"
    );

    // A server verifier (what a client checks) trusting only the old root, too.
    let server_verifier =
        WebPkiServerVerifier::builder_with_provider(roots(&[&old.cert_pem]), provider.clone())
            .build()
            .expect("verifier");
    let name = ServerName::try_from("swarm-manager").expect("name");
    server_verifier
        .verify_server_cert(&der(&leaf), &[der(&bridge)], &name, &[], verify_at)
        .expect("server chain through the bridge");

    // Nodes that already trust the new root accept the leaf with or without the bridge.
    let new_only = WebPkiClientVerifier::builder_with_provider(roots(&[&new.cert_pem]), provider)
        .build()
        .expect("verifier");
    new_only
        .verify_client_cert(&der(&leaf), &[der(&bridge)], verify_at)
        .expect("new root, with bridge");
    new_only
        .verify_client_cert(&der(&leaf), &[], verify_at)
        .expect("new root, no bridge");

    // Cross-signing needs the old root's key.
    let trusted_only = RootCa::from_pem(&old.cert_pem, None).expect("trust only");
    assert!(matches!(
        trusted_only.cross_sign(&new, later),
        Err(PkiError::NoSigningKey)
    ));
}

#[test]
fn verifiers_refuse_expired_and_foreign_certificates() {
    let mut ids = IdGen::seeded(7);
    let ca = RootCa::generate("cluster-a", 20 * YEAR, NOW).expect("ca");
    let other = RootCa::generate("cluster-b", 20 * YEAR, NOW).expect("other");
    let verifier =
        WebPkiClientVerifier::builder_with_provider(roots(&[&ca.cert_pem]), crypto_provider())
            .build()
            .expect("verifier");
    let leaf = issue(&ca, &ids.next_id(), NodeRole::Worker, DAY, NOW);
    verifier
        .verify_client_cert(&der(&leaf), &[], at(NOW))
        .expect("valid now");
    let err = verifier
        .verify_client_cert(&der(&leaf), &[], at(NOW.add(2 * DAY)))
        .expect_err("expired");
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(CertificateError::ExpiredContext { .. })
                | rustls::Error::InvalidCertificate(CertificateError::Expired)
        ),
        "{err:?}"
    );
    let foreign = issue(&other, &ids.next_id(), NodeRole::Worker, DAY, NOW);
    assert!(
        verifier
            .verify_client_cert(&der(&foreign), &[], at(NOW))
            .is_err()
    );
}

#[test]
fn tls_configs_build_from_credentials() {
    let mut ids = IdGen::seeded(8);
    let ca = RootCa::generate("cluster-a", YEAR, NOW).expect("ca");
    let (key, csr) = new_key_and_csr().expect("csr");
    let cert = ca
        .issue(
            &csr,
            &ids.next_id(),
            NodeRole::Manager,
            "cluster-a",
            DAY,
            NOW,
        )
        .expect("cert");
    let creds = Credentials {
        key_pem: key,
        cert_pem: cert,
        intermediate_pem: None,
        trust: vec![ca.cert_pem.clone()],
    };
    let server = shoal_pki::server_config(&creds).expect("server");
    assert_eq!(
        server.alpn_protocols,
        [b"h2".to_vec(), b"http/1.1".to_vec()]
    );
    let client = shoal_pki::client_config(Some(&creds), &creds.trust).expect("client");
    assert_eq!(client.alpn_protocols, [b"h2".to_vec()]);
    shoal_pki::client_config(None, &creds.trust).expect("anonymous client");
    let err = shoal_pki::client_config(None, &[]).expect_err("no trust");
    assert!(err.to_string().contains("no trusted root"), "{err}");

    // A key that is not the certificate's is refused when building, not at the handshake.
    let (other_key, _) = new_key_and_csr().expect("csr");
    let wrong = Credentials {
        key_pem: other_key,
        ..creds
    };
    assert!(shoal_pki::server_config(&wrong).is_err());
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("ascii"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
