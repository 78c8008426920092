//! The commands against a scripted daemon: the requests and bodies they send (what the server
//! side must accept), name resolution, and pins surviving `service update` and `scale`.

use crate::client::server_tests::{Fake, scripted};

/// A service using two secrets, one pinned to version 2 (shoal's extra `Version` field).
const WEB: &str = r#"{"ID":"s1","Version":{"Index":7},"Spec":{"Name":"web","TaskTemplate":{"ContainerSpec":{"Image":"bb:latest","Secrets":[{"File":{"Name":"db","UID":"0","GID":"0","Mode":292},"SecretID":"s-db","SecretName":"db","Version":2},{"File":{"Name":"tls.key","UID":"0","GID":"0","Mode":256},"SecretID":"s-tls","SecretName":"tls"}]}},"Mode":{"Replicated":{"Replicas":1}}}}"#;

async fn shoal(f: &Fake, argv: &[&str]) -> i32 {
    use clap::Parser;
    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: crate::ClientCommand,
    }
    let cli = Cli::try_parse_from(std::iter::once("shoal").chain(argv.iter().copied()))
        .expect("flags parse");
    let opts = crate::GlobalOpts {
        host: f.host.clone(),
        tls: None,
    };
    crate::execute(&opts, cli.cmd).await
}

/// The JSON body of the first request whose line starts with `prefix`.
fn body_of(f: &Fake, prefix: &str) -> serde_json::Value {
    let body = f
        .requests()
        .into_iter()
        .find(|(line, _)| line.starts_with(prefix))
        .map(|(_, b)| b)
        .unwrap_or_else(|| panic!("no {prefix} in {:?}", f.lines()));
    serde_json::from_str(&body).expect("json body")
}

#[tokio::test]
async fn update_adds_removes_and_keeps_pins() {
    let f = scripted(vec![
        ("GET /v1.50/services/web", 200, WEB.into()),
        (
            "GET /v1.50/configs?",
            200,
            r#"[{"ID":"c-app","Spec":{"Name":"app.conf"}}]"#.into(),
        ),
        ("POST /v1.50/services/s1/update", 200, "{}".into()),
    ])
    .await;
    let code = shoal(
        &f,
        &[
            "service",
            "update",
            "-d",
            "--secret-rm",
            "tls",
            "--config-add",
            "source=app.conf,target=/etc/app.conf,version=4",
            "web",
        ],
    )
    .await;
    assert_eq!(code, 0, "{:?}", f.lines());
    assert!(
        f.lines().iter().any(|l| l.starts_with(
            "GET /v1.50/configs?filters=%7B%22name%22%3A%7B%22app.conf%22%3Atrue%7D%7D "
        )),
        "{:?}",
        f.lines()
    );
    let body = body_of(
        &f,
        "POST /v1.50/services/s1/update?registryAuthFrom=spec&version=7",
    );
    let cs = &body["TaskTemplate"]["ContainerSpec"];
    assert_eq!(
        cs["Secrets"],
        serde_json::json!([{"File":{"Name":"db","UID":"0","GID":"0","Mode":292},"SecretID":"s-db","SecretName":"db","Version":2}])
    );
    assert_eq!(
        cs["Configs"],
        serde_json::json!([{"File":{"Name":"/etc/app.conf","UID":"0","GID":"0","Mode":292},"ConfigID":"c-app","ConfigName":"app.conf","Version":4}])
    );
}

#[tokio::test]
async fn scale_keeps_pins() {
    let f = scripted(vec![
        ("GET /v1.50/services/web", 200, WEB.into()),
        ("POST /v1.50/services/s1/update", 200, "{}".into()),
    ])
    .await;
    assert_eq!(shoal(&f, &["service", "scale", "-d", "web=3"]).await, 0);
    let body = body_of(&f, "POST /v1.50/services/s1/update");
    assert_eq!(body["Mode"]["Replicated"]["Replicas"], 3);
    assert_eq!(
        body["TaskTemplate"]["ContainerSpec"]["Secrets"][0]["Version"],
        2
    );
}

#[tokio::test]
async fn create_resolves_names_or_names_the_missing_one() {
    let f = scripted(vec![
        (
            "GET /v1.50/secrets?",
            200,
            r#"[{"ID":"s-db","Spec":{"Name":"db"}},{"ID":"s-db2","Spec":{"Name":"db2"}}]"#.into(),
        ),
        ("POST /v1.50/services/create", 201, r#"{"ID":"new"}"#.into()),
    ])
    .await;
    let argv = [
        "service",
        "create",
        "-d",
        "--no-resolve-image",
        "--secret",
        "db",
        "bb",
    ];
    assert_eq!(shoal(&f, &argv).await, 0, "{:?}", f.lines());
    let body = body_of(&f, "POST /v1.50/services/create");
    assert_eq!(
        body["TaskTemplate"]["ContainerSpec"]["Secrets"],
        serde_json::json!([{"File":{"Name":"db","UID":"0","GID":"0","Mode":292},"SecretID":"s-db","SecretName":"db","Version":0}])
    );

    let argv = [
        "service",
        "create",
        "-d",
        "--no-resolve-image",
        "--secret",
        "d",
        "bb",
    ];
    let f = scripted(vec![(
        "GET /v1.50/secrets?",
        200,
        r#"[{"ID":"s-db","Spec":{"Name":"db"}}]"#.into(),
    )])
    .await;
    assert_eq!(shoal(&f, &argv).await, 1);
    assert!(
        !f.lines().iter().any(|l| l.starts_with("POST")),
        "nothing created: {:?}",
        f.lines()
    );
}

#[tokio::test]
async fn create_rotate_and_rm_send_the_documented_bodies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("pass.txt");
    std::fs::write(&file, "hunter2").expect("write");
    let path = file.to_string_lossy().to_string();
    let f = scripted(vec![
        (
            "POST /v1.50/secrets/create",
            201,
            r#"{"ID":"s-new"}"#.into(),
        ),
        (
            "POST /v1.50/configs/app.conf/rotate",
            200,
            r#"{"Version":2,"Services":[]}"#.into(),
        ),
        (
            "DELETE /v1.50/secrets/db",
            400,
            r#"{"message":"secret 'db' is in use by the following services: web, api"}"#.into(),
        ),
        ("DELETE /v1.50/secrets/old", 204, String::new()),
    ])
    .await;
    let argv = ["secret", "create", "-l", "env=prod", "db", path.as_str()];
    assert_eq!(shoal(&f, &argv).await, 0);
    assert_eq!(
        body_of(&f, "POST /v1.50/secrets/create"),
        serde_json::json!({"Name":"db","Labels":{"env":"prod"},"Data":"aHVudGVyMg=="})
    );
    let argv = ["config", "rotate", "app.conf", path.as_str()];
    assert_eq!(shoal(&f, &argv).await, 0);
    assert_eq!(
        body_of(&f, "POST /v1.50/configs/app.conf/rotate"),
        serde_json::json!({"Data":"aHVudGVyMg=="})
    );
    // One in use, one removed: the removed one is printed, the refusal fails the command.
    assert_eq!(shoal(&f, &["secret", "rm", "db", "old"]).await, 1);
    assert!(
        f.lines()
            .iter()
            .any(|l| l.starts_with("DELETE /v1.50/secrets/old ")),
        "{:?}",
        f.lines()
    );
}

#[tokio::test]
async fn rotate_follows_the_rolled_services() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("v2");
    std::fs::write(&file, "v2").expect("write");
    let path = file.to_string_lossy().to_string();
    let f = scripted(vec![
        (
            "POST /v1.50/secrets/db/rotate",
            200,
            r#"{"ID":"s-db","Version":2,"Services":["svc"]}"#.into(),
        ),
        (
            "GET /v1.50/services/svc",
            200,
            r#"{"ID":"svc","Spec":{"Name":"web","Mode":{"Replicated":{"Replicas":1}},"UpdateConfig":{"Monitor":1}}}"#.into(),
        ),
        (
            "GET /v1.50/tasks?",
            200,
            r#"[{"ID":"t1","Slot":1,"NodeID":"n1","DesiredState":"running","Status":{"State":"running"}}]"#.into(),
        ),
        (
            "GET /v1.50/nodes",
            200,
            r#"[{"ID":"n1","Status":{"State":"ready"}}]"#.into(),
        ),
    ])
    .await;
    assert_eq!(
        shoal(&f, &["secret", "rotate", "-q", "db", path.as_str()]).await,
        0
    );
    let lines = f.lines();
    assert!(
        lines.iter().any(|l| l.starts_with("GET /v1.50/tasks?")),
        "the wait polled the service's tasks: {lines:?}"
    );
    // Detached: no wait at all.
    let f2 = scripted(vec![(
        "POST /v1.50/secrets/db/rotate",
        200,
        r#"{"Version":3,"Services":["svc"]}"#.into(),
    )])
    .await;
    assert_eq!(
        shoal(&f2, &["secret", "rotate", "-d", "db", path.as_str()]).await,
        0
    );
    assert_eq!(
        f2.lines()
            .iter()
            .filter(|l| l.starts_with("GET /v1.50/services"))
            .count(),
        0
    );
}
