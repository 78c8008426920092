use super::*;

fn ok(value: &str) -> RefOpt {
    match parse_ref("secret", value) {
        Ok(r) => r,
        Err(e) => panic!("{value}: {e}"),
    }
}

#[test]
fn short_and_long_forms() {
    assert_eq!(
        ok("db"),
        RefOpt {
            source: "db".into(),
            target: "db".into(),
            uid: "0".into(),
            gid: "0".into(),
            mode: 0o444,
            version: None,
        }
    );
    let r = ok("source=db,target=app/db.pass,uid=1000,gid=100,mode=0400,version=3");
    assert_eq!(
        (
            r.source.as_str(),
            r.target.as_str(),
            r.uid.as_str(),
            r.gid.as_str()
        ),
        ("db", "app/db.pass", "1000", "100")
    );
    assert_eq!((r.mode, r.version), (0o400, Some(3)));
    assert_eq!(ok("src=db,MODE=440").mode, 0o440);
    assert_eq!(ok("src=db,mode=0o600").mode, 0o600);
    assert_eq!(ok("src=db,target=/etc/db.pass").target, "/etc/db.pass");
    // docker: an empty target means the name; quotes as Go's csv reads them.
    assert_eq!(ok("source=db,target=").target, "db");
    assert_eq!(ok(r#""source=a,b",target=t"#).source, "a,b");
}

#[test]
fn bad_values_name_the_flag_and_option() {
    for (value, why) in [
        (
            "source=db,mode=abc",
            r#"mode: expected an octal file mode from 0 to 0777 such as 0400, got "abc""#,
        ),
        (
            "source=db,mode=999",
            r#"mode: expected an octal file mode from 0 to 0777 such as 0400, got "999""#,
        ),
        (
            "source=db,mode=01777",
            r#"mode: expected an octal file mode from 0 to 0777 such as 0400, got "01777""#,
        ),
        (
            "source=db,mode=",
            r#"mode: expected an octal file mode from 0 to 0777 such as 0400, got """#,
        ),
        (
            "source=db,mode=+4",
            r#"mode: expected an octal file mode from 0 to 0777 such as 0400, got "+4""#,
        ),
        (
            "source=db,uid=root",
            r#"uid: expected a numeric ID, got "root""#,
        ),
        (
            "source=db,gid=-1",
            r#"gid: expected a numeric ID, got "-1""#,
        ),
        (
            "source=db,version=0",
            r#"version: expected a number >= 1, got "0""#,
        ),
        (
            "source=db,version=latest",
            r#"version: expected a number >= 1, got "latest""#,
        ),
        (
            "source=db,color=red",
            "unknown option 'color' (expected source, target, uid, gid, mode or version)",
        ),
        (
            "source=db,readonly",
            "invalid field 'readonly' must be a key=value pair",
        ),
        ("=db", "invalid field '=db' must be a key=value pair"),
        ("target=x", "source is required"),
        ("", "source is required"),
        (
            "source=db,target=../../etc/shadow",
            r#"target: "../../etc/shadow" must stay inside the task (no '..')"#,
        ),
        ("..", r#"target: ".." must stay inside the task (no '..')"#),
    ] {
        let err = parse_ref("secret", value).err();
        assert_eq!(err.as_ref().map(|e| e.exit_code()), Some(2), "{value}");
        assert_eq!(
            err.map(|e| e.to_string()),
            Some(format!(
                r#"invalid argument "{value}" for "--secret" flag: {why}"#
            )),
        );
    }
    let err = parse_ref("config-add", r#""open"#)
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some(r#"invalid argument ""open" for "--config-add" flag: a quote is not closed"#)
    );
}

#[test]
fn duplicate_targets_are_refused() {
    let flags = CreateRefFlags {
        secret: vec!["a".into(), "source=b,target=a".into()],
        config: vec![],
    };
    assert_eq!(
        flags.parse().err().map(|e| e.to_string()).as_deref(),
        Some(
            r#"invalid argument "source=b,target=a" for "--secret" flag: duplicate secret target "a" (also used by "a")"#
        )
    );
    let flags = CreateRefFlags {
        secret: vec!["a".into()],
        config: vec!["a".into()],
    };
    assert!(
        flags.parse().is_ok(),
        "a secret and a config may share a name"
    );
}

#[test]
fn wire_form_is_dockers_plus_version() {
    assert_eq!(
        ok("db").to_json(Kind::Secret, "sid"),
        serde_json::json!({"File": {"Name": "db", "UID": "0", "GID": "0", "Mode": 292}, "SecretID": "sid", "SecretName": "db", "Version": 0})
    );
    let pinned = parse_ref(
        "config",
        "source=app.conf,target=/etc/app.conf,mode=0440,version=2",
    )
    .expect("valid");
    assert_eq!(
        pinned.to_json(Kind::Config, "cid"),
        serde_json::json!({"File": {"Name": "/etc/app.conf", "UID": "0", "GID": "0", "Mode": 288}, "ConfigID": "cid", "ConfigName": "app.conf", "Version": 2})
    );
}

/// A service as the daemon returns it, with one pinned secret (the pin is shoal's extra field).
const SERVICE: &str = r#"{"ID":"s1","Version":{"Index":7},"Spec":{"Name":"web","TaskTemplate":{"ContainerSpec":{"Image":"bb:latest","Secrets":[{"File":{"Name":"db","UID":"0","GID":"0","Mode":292},"SecretID":"s-db","SecretName":"db","Version":2},{"File":{"Name":"tls.key","UID":"0","GID":"0","Mode":256},"SecretID":"s-tls","SecretName":"tls"}]}},"Mode":{"Replicated":{"Replicas":1}}}}"#;

fn service_spec() -> ServiceSpec {
    let s: bollard_stubs::models::Service = serde_json::from_str(SERVICE).expect("valid");
    s.spec.unwrap_or_default()
}

#[test]
fn pins_survive_a_read_modify_write() {
    let refs = Refs::from_service(SERVICE.as_bytes());
    assert_eq!(refs.secrets.as_ref().map(Vec::len), Some(2));
    assert_eq!(refs.configs, None);
    let body = refs.body(&service_spec()).expect("encodes");
    assert_eq!(
        body["TaskTemplate"]["ContainerSpec"]["Secrets"][0]["Version"],
        2
    );
    assert!(
        body["TaskTemplate"]["ContainerSpec"]
            .get("Configs")
            .is_none()
    );
    // Without refs (a daemon that sent none) the typed spec goes as it is.
    let body = Refs::default().body(&service_spec()).expect("encodes");
    assert!(
        body["TaskTemplate"]["ContainerSpec"]["Secrets"][0]
            .get("Version")
            .is_none()
    );
}

#[test]
fn update_removes_by_name_and_replaces_by_target() {
    let mut refs = Refs::from_service(SERVICE.as_bytes());
    let repin = parse_ref("secret-add", "source=db,version=3").expect("valid");
    refs.update(
        Kind::Secret,
        &["tls".to_string()],
        vec![repin.to_json(Kind::Secret, "s-db")],
    );
    let conf = ok("app.conf");
    refs.update(Kind::Config, &[], vec![conf.to_json(Kind::Config, "c1")]);
    let body = refs.body(&service_spec()).expect("encodes");
    let cs = &body["TaskTemplate"]["ContainerSpec"];
    assert_eq!(
        cs["Secrets"],
        serde_json::json!([{"File": {"Name": "db", "UID": "0", "GID": "0", "Mode": 292}, "SecretID": "s-db", "SecretName": "db", "Version": 3}])
    );
    assert_eq!(cs["Configs"][0]["ConfigName"], "app.conf");
    // Removing the last one leaves the list out, as docker's omitempty does.
    refs.update(Kind::Secret, &["db".to_string()], vec![]);
    let body = refs.body(&service_spec()).expect("encodes");
    assert!(
        body["TaskTemplate"]["ContainerSpec"]
            .get("Secrets")
            .is_none()
    );
    // Nothing asked: nothing touched.
    let mut untouched = Refs::default();
    untouched.update(Kind::Config, &[], vec![]);
    assert_eq!(untouched, Refs::default());
}

#[test]
fn body_creates_the_container_spec_when_missing() {
    let mut refs = Refs::default();
    refs.update(Kind::Secret, &[], vec![ok("db").to_json(Kind::Secret, "x")]);
    let body = refs.body(&ServiceSpec::default()).expect("encodes");
    assert_eq!(
        body["TaskTemplate"]["ContainerSpec"]["Secrets"][0]["SecretID"],
        "x"
    );
}

#[test]
fn exact_names_only() {
    let listed: Vec<Object> = serde_json::from_str(
        r#"[{"ID":"1","Spec":{"Name":"db"}},{"ID":"2","Spec":{"Name":"db-old"}}]"#,
    )
    .expect("valid");
    let ids = ids_by_name(&listed);
    assert_eq!(ids.get("db"), Some(&"1"));
    assert_eq!(ids.get("d"), None);
}

#[test]
fn update_flags_report_changes() {
    assert!(!UpdateRefFlags::default().any());
    let f = UpdateRefFlags {
        config_rm: vec!["x".into()],
        ..Default::default()
    };
    assert!(f.any());
    let w = f.parse().expect("valid");
    assert_eq!(w.config_rm, vec!["x".to_string()]);
}
