use super::*;

fn creds() -> Credentials {
    let now = shoal_types::Timestamp::from_unix_nanos(1_700_000_000_000_000_000);
    let ca = shoal_pki::RootCa::generate("cluster-a", std::time::Duration::from_secs(3600), now)
        .expect("ca");
    let (key_pem, csr) = shoal_pki::new_key_and_csr().expect("key");
    let cert_pem = ca
        .issue(
            &csr,
            &shoal_types::Id::from_raw("n1aaaaaaaaaaaaaaaaaaaaaaa"),
            shoal_types::node::NodeRole::Manager,
            "cluster-a",
            std::time::Duration::from_secs(3600),
            now,
        )
        .expect("cert");
    Credentials {
        key_pem,
        cert_pem,
        intermediate_pem: None,
        trust: vec![ca.cert_pem.clone()],
    }
}

fn keys_file(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join(KEYS_FILE)).expect("keys")).expect("json")
}

fn creds_file(dir: &Path) -> String {
    String::from_utf8(std::fs::read(dir.join(CREDENTIALS_FILE)).expect("creds")).expect("utf8")
}

#[test]
fn autolock_seals_the_tls_key_and_keeps_the_kek_nowhere() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = creds();
    let v = Vault::create(dir.path()).expect("create");
    v.save_creds(&c).expect("save");
    assert!(keys_file(dir.path())["kek"].is_string());
    assert!(creds_file(dir.path()).contains("BEGIN PRIVATE KEY"));
    let sealed_before = Sealer::new(&v.lock_state().dek)
        .seal("t", b"k", b"v")
        .expect("seal");

    let key = UnlockKey::generate().expect("key");
    assert!(v.follow(Some(&key), &c).expect("lock"));
    assert!(!v.follow(Some(&key), &c).expect("again"), "a no-op");
    assert!(keys_file(dir.path()).get("kek").is_none());
    let on_disk = creds_file(dir.path());
    assert!(!on_disk.contains("BEGIN PRIVATE KEY"), "{on_disk}");
    let body: String = c
        .key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert!(
        !on_disk.contains(&body[..40]),
        "the key's bytes are on disk"
    );

    // A restart: locked; a wrong key is refused and changes nothing; the right one opens the
    // same DEK and the TLS key.
    let Opened::Locked(locked) = Vault::open(dir.path()).expect("open") else {
        panic!("not locked after autolock");
    };
    let wrong = UnlockKey::generate().expect("key");
    assert!(matches!(locked.unlock(&wrong), Err(VaultError::WrongKey)));
    assert_eq!(
        VaultError::WrongKey.to_string(),
        "swarm could not be unlocked: invalid key provided"
    );
    let v2 = locked.unlock(&key).expect("unlock");
    assert_eq!(
        v2.sealer()
            .open("t", b"k", &sealed_before)
            .expect("same dek"),
        b"v"
    );
    assert_eq!(v2.load_creds().expect("load"), Some(c.clone()));
    assert_eq!(v2.locked_with(), Some(key.clone()));

    // A rotated key: only the new one opens.
    let next = UnlockKey::generate().expect("key");
    assert!(v2.follow(Some(&next), &c).expect("rotate"));
    let Opened::Locked(locked) = Vault::open(dir.path()).expect("open") else {
        panic!("not locked after rotation");
    };
    assert!(matches!(locked.unlock(&key), Err(VaultError::WrongKey)));
    let v3 = locked.unlock(&next).expect("unlock with the new key");
    assert_eq!(v3.load_creds().expect("load"), Some(c.clone()));

    // Autolock off: the KEK is back on disk, the key in plain, the DEK the same.
    assert!(v3.follow(None, &c).expect("unlock for good"));
    let Opened::Ready(v4) = Vault::open(dir.path()).expect("open") else {
        panic!("still locked after autolock was turned off");
    };
    assert!(creds_file(dir.path()).contains("BEGIN PRIVATE KEY"));
    assert_eq!(
        Credentials::load(dir.path()).expect("load"),
        Some(c.clone())
    );
    assert_eq!(
        v4.sealer()
            .open("t", b"k", &sealed_before)
            .expect("same dek"),
        b"v"
    );
}

#[test]
fn a_crash_between_the_two_writes_of_a_lock_leaves_a_node_that_opens() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = creds();
    let v = Vault::create(dir.path()).expect("create");
    v.save_creds(&c).expect("save");
    let key = UnlockKey::generate().expect("key");
    // The first write of a lock only: the TLS key sealed, the KEK still on disk.
    {
        let mut st = v.lock_state();
        st.locked_with = Some(key.clone());
        v.write_creds(&st, &c).expect("seal key");
    }
    let Opened::Ready(after) = Vault::open(dir.path()).expect("open") else {
        panic!("locked before the KEK was dropped");
    };
    assert_eq!(after.load_creds().expect("load"), Some(c));
}

#[test]
fn damaged_key_files_are_named() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join(KEYS_FILE), b"{not json").expect("write");
    let Err(e) = Vault::open(dir.path()) else {
        panic!("a damaged keys file opened");
    };
    assert!(e.to_string().contains(KEYS_FILE), "{e}");
    assert!(matches!(
        Vault::open(&dir.path().join("none")),
        Ok(Opened::Missing)
    ));
}
