use super::parse::edit_distance;
use super::*;
use crate::node::Platform;
use crate::service::ContainerSpec;

fn ctx() -> Context {
    Context {
        service_id: "svc1".into(),
        service_name: "web".into(),
        service_labels: BTreeMap::from([
            ("tier".to_string(), "front".to_string()),
            ("com.example.zone".to_string(), "eu-1".to_string()),
            ("ünï".to_string(), "cödé".to_string()),
        ]),
        node_id: "node1".into(),
        node_hostname: "host-a".into(),
        node_os: "linux".into(),
        node_arch: "x86_64".into(),
        task_id: "task1".into(),
        task_name: "web.3.task1".into(),
        task_slot: "3".into(),
    }
}

fn expand(src: &str) -> String {
    match parse(src) {
        Ok(t) => match t.expand(&ctx()) {
            Ok(s) => s,
            Err(e) => panic!("{src:?} failed to expand: {e}"),
        },
        Err(e) => panic!("{src:?} failed to parse: {e}"),
    }
}

/// The error for `src`, whether parsing or expanding found it.
fn error(src: &str) -> TemplateError {
    match parse(src).and_then(|t| t.expand(&ctx())) {
        Ok(s) => panic!("{src:?} was accepted as {s:?}"),
        Err(e) => e,
    }
}

fn at(src: &str) -> (usize, usize) {
    let e = error(src);
    (e.position.line, e.position.column)
}

#[test]
fn every_swarm_placeholder_expands() {
    for (src, want) in [
        ("{{.Service.ID}}", "svc1"),
        ("{{.Service.Name}}", "web"),
        ("{{.Service.Labels.tier}}", "front"),
        ("{{.Node.ID}}", "node1"),
        ("{{.Node.Hostname}}", "host-a"),
        ("{{.Node.Platform.OS}}", "linux"),
        ("{{.Node.Platform.Architecture}}", "x86_64"),
        ("{{.Task.ID}}", "task1"),
        ("{{.Task.Name}}", "web.3.task1"),
        ("{{.Task.Slot}}", "3"),
    ] {
        assert_eq!(expand(src), want, "{src}");
    }
}

#[test]
fn text_and_actions_mix() {
    assert_eq!(expand(""), "");
    assert_eq!(expand("plain"), "plain");
    assert_eq!(expand("{{.Service.Name}}-{{.Task.Slot}}"), "web-3");
    assert_eq!(
        expand("/data/{{.Service.Name}}/{{.Task.Slot}}/x"),
        "/data/web/3/x"
    );
    assert_eq!(expand("{{ .Service.Name }}"), "web");
    assert_eq!(expand("{{\t.Node.ID\n}}"), "node1");
    // A lone `}}` outside an action is text, as in Go.
    assert_eq!(expand("a}}b{{.Task.Slot}}}}"), "a}}b3}}");
    assert_eq!(expand("{{$.Service.Name}}"), "web");
    assert!(parse("no actions").is_ok_and(|t| t.is_plain()));
    assert!(parse("{{.Task.ID}}").is_ok_and(|t| !t.is_plain()));
}

/// Found by the `template` fuzz target: a template whose only action is a comment is plain, but
/// its expansion is its text without the comment, not its text.
#[test]
fn a_plain_template_with_a_comment_expands_without_it() {
    let t = parse("14ice$$}} {{/* a comment */ }}vi").expect("parses");
    assert!(t.is_plain());
    assert_eq!(expand("14ice$$}} {{/* a comment */ }}vi"), "14ice$$}} vi");
    assert_eq!(expand("a {{- /* c */ -}} b"), "ab");
    assert_eq!(
        t.expand(&Context::default()),
        t.expand(&ctx()),
        "a plain template does not depend on its context"
    );
}

#[test]
fn unicode_text_survives_and_counts_as_characters() {
    assert_eq!(expand("héllo-{{.Service.Name}}-ünï"), "héllo-web-ünï");
    assert_eq!(expand("🚀{{.Task.Slot}}🚀"), "🚀3🚀");
    assert_eq!(expand("{{.Service.Labels.ünï}}"), "cödé");
    // `é` is two bytes but one column: the bad field starts at column 9, not 10.
    assert_eq!(at("héllo-{{.Sèrvice}}"), (1, 9));
    assert_eq!(at("🚀🚀{{.Task.Slöt}}"), (1, 10));
}

#[test]
fn trim_markers_eat_whitespace() {
    assert_eq!(expand("a  {{- .Task.Slot -}}  b"), "a3b");
    assert_eq!(expand("a \n {{- .Task.Slot}} b"), "a3 b");
    assert_eq!(expand("a {{.Task.Slot -}}\n\t b"), "a 3b");
    assert_eq!(expand("{{- .Task.Slot -}}"), "3");
}

#[test]
fn comments_are_dropped() {
    assert_eq!(expand("a{{/* why */}}b"), "ab");
    assert_eq!(expand("a {{- /* why */ -}} b"), "ab");
    assert!(
        error("a{{/* never closed }}")
            .message
            .contains("unclosed comment")
    );
    assert!(error("{{/* c */ .X}}").message.contains("comment must end"));
}

#[test]
fn index_reaches_labels_with_dots_and_missing_ones_are_empty() {
    assert_eq!(
        expand(r#"{{index .Service.Labels "com.example.zone"}}"#),
        "eu-1"
    );
    assert_eq!(
        expand("{{ index .Service.Labels `com.example.zone` }}"),
        "eu-1"
    );
    assert_eq!(expand(r#"[{{index .Service.Labels "absent"}}]"#), "[]");
    assert_eq!(
        expand(r#"{{index .Service.Labels (join "." "com" "example" "zone")}}"#),
        "eu-1"
    );
    assert_eq!(expand(r#"{{index .Service.Labels "ti\"er"}}"#), "");
    assert_eq!(
        expand("{{index .Service.Labels}}"),
        expand("{{.Service.Labels}}")
    );
}

#[test]
fn join_is_swarms_join() {
    assert_eq!(expand(r#"{{join "-" .Service.Name .Task.Slot}}"#), "web-3");
    assert_eq!(expand(r#"{{join "-"}}"#), "");
    assert_eq!(
        expand(r#"{{join "/" "a" (index .Service.Labels "tier") .Node.Hostname}}"#),
        "a/front/host-a"
    );
    assert_eq!(expand(r#"{{join "\t" "a" "b"}}"#), "a\tb");
}

#[test]
fn structs_and_maps_print_as_go_prints_them() {
    assert_eq!(expand("{{.Node.Platform}}"), "{x86_64 linux}");
    assert_eq!(
        expand("{{.Service.Labels}}"),
        "map[com.example.zone:eu-1 tier:front ünï:cödé]"
    );
    assert_eq!(expand("{{.Task}}"), "{task1 web.3.task1 3}");
    assert_eq!(expand("{{.Node}}"), "{node1 host-a {x86_64 linux}}");
    assert!(expand("{{.}}").starts_with("{{svc1 web map["));
    assert!(expand("{{$}}").ends_with("{task1 web.3.task1 3}}"));
}

#[test]
fn unknown_fields_are_refused_where_they_are_misspelt() {
    let e = error("{{.Service.Nmae}}");
    assert_eq!(
        e.to_string(),
        "template: expansion:1:11: unknown field .Service.Nmae (did you mean .Service.Name?)"
    );
    let e = error("x-{{ .Node.hostname }}");
    assert_eq!((e.position.line, e.position.column), (1, 11));
    assert!(e.message.contains("did you mean .Node.Hostname?"), "{e}");
    let e = error("{{.Nodes.ID}}");
    assert_eq!(e.position.column, 3);
    assert!(e.message.contains("did you mean .Node?"), "{e}");
    let e = error("{{.Container.ID}}");
    assert!(
        e.message
            .contains("the fields here are .Service, .Node, .Task"),
        "{e}"
    );
    let e = error("{{.Task.Slot.X}}");
    assert!(e.message.contains(".Task.Slot is text"), "{e}");
    assert_eq!(e.position.column, 13);
    let e = error("{{.Node.Platform.Arch}}");
    assert!(
        e.message
            .contains("the fields here are .Node.Platform.Architecture, .Node.Platform.OS"),
        "{e}"
    );
    let e = error("{{$.Service.Nom}}");
    assert!(e.message.contains("did you mean $.Service.Name?"), "{e}");
    assert_eq!(at("{{.Service.}}"), (1, 11));
}

#[test]
fn labels_named_with_dots_or_dashes_point_to_index() {
    let e = error("{{.Service.Labels.com.example.zone}}");
    assert_eq!(e.position.column, 22);
    assert!(
        e.message
            .contains(r#"write {{index .Service.Labels "com.example.zone"}}"#),
        "{e}"
    );
    let e = error("{{.Service.Labels.my-label}}");
    assert_eq!(e.position.column, 21);
    assert!(
        e.message
            .contains(r#"write {{index .Service.Labels "my-label"}}"#),
        "{e}"
    );
}

#[test]
fn a_missing_label_fails_at_expansion_with_its_position() {
    let t = match parse("a-{{.Service.Labels.nope}}") {
        Ok(t) => t,
        Err(e) => panic!("parses: {e}"),
    };
    let e = t.expand(&ctx()).expect_err("no such label");
    assert_eq!(
        e.to_string(),
        "template: expansion:1:20: the service has no label \"nope\" (for a label that may be \
         absent write {{index .Service.Labels \"nope\"}})"
    );
}

#[test]
fn syntax_errors_say_what_and_where() {
    for (src, pos, what) in [
        ("ab{{.Service.Name", (1, 3), "unclosed action"),
        ("ab{{.Service.Name }", (1, 3), "unclosed action"),
        ("ab{{", (1, 3), "unclosed action"),
        ("x\ny{{ }}", (2, 2), "empty action"),
        ("{{.Service.Name .Task.ID}}", (1, 17), "only a function"),
        ("{{.Service.Name | printf}}", (1, 17), "pipelines"),
        (
            "{{printf \"%s\" .Service.Name}}",
            (1, 3),
            "\"printf\" is not supported",
        ),
        (
            "{{if .Service.Name}}x{{end}}",
            (1, 3),
            "{{if}} actions are not supported",
        ),
        ("{{foo}}", (1, 3), "function \"foo\" not defined"),
        ("{{ $x }}", (1, 4), "variables are not supported"),
        ("{{\"abc}}", (1, 3), "unterminated quoted string"),
        ("{{`abc}}", (1, 3), "unterminated raw quoted string"),
        ("{{\"a\\qb\"}}", (1, 5), "unknown escape \\q"),
        ("{{ 42 }}", (1, 4), "unexpected \"42\""),
        (
            "{{ (index .Service.Labels \"a\" }}",
            (1, 4),
            "unclosed \"(\"",
        ),
        ("{{ .Task.ID) }}", (1, 12), "unexpected \")\""),
        (
            "{{index .Service.Name \"a\"}}",
            (1, 9),
            "only map to index is .Service.Labels",
        ),
        ("{{index}}", (1, 3), "index needs a map and a key"),
        (
            "{{index .Service.Labels \"a\" \"b\"}}",
            (1, 29),
            "cannot be indexed further",
        ),
        ("{{join}}", (1, 3), "join needs a separator"),
        ("{{join \"-\" .Node.Platform}}", (1, 12), "must be text"),
        ("{{join \"-\" index}}", (1, 12), "write (index ...)"),
        (
            "{{index.Service.Labels}}",
            (1, 8),
            "a space must separate index",
        ),
        ("{{.Task.Slot-}}", (1, 13), "unexpected '-'"),
        (
            "line1\nline2 {{.Task.Sloth}}",
            (2, 14),
            "did you mean .Task.Slot?",
        ),
    ] {
        let e = error(src);
        assert_eq!((e.position.line, e.position.column), pos, "{src:?}: {e}");
        assert!(e.message.contains(what), "{src:?}: {e}");
    }
}

#[test]
fn multi_line_actions_and_text() {
    assert_eq!(expand("a\n{{\n.Task.Slot\n}}\nb"), "a\n3\nb");
    assert_eq!(at("a\n{{\n  .Task.Sl0t}}"), (3, 8));
}

#[test]
fn env_entries_template_their_value_only() {
    let e = match parse_env("Env[0]", "HOST_{{x}}={{.Node.Hostname}}") {
        Ok(e) => e,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(e.expand(&ctx()), Ok("HOST_{{x}}=host-a".to_string()));
    let bare = parse_env("Env[1]", "JUST_A_NAME").map(|e| e.expand(&ctx()));
    assert_eq!(bare, Ok(Ok("JUST_A_NAME".to_string())));
    let v = parse_env("Env[2]", "A=x=={{.Task.Slot}}").map(|e| e.expand(&ctx()));
    assert_eq!(v, Ok(Ok("A=x==3".to_string())));
    // Columns count from the start of the entry, as the user typed it.
    let err = parse_env("Env[2]", "WHERE={{.Node.Hostnme}}").expect_err("typo");
    assert_eq!(
        err.to_string(),
        "template: Env[2]:1:14: unknown field .Node.Hostnme (did you mean .Node.Hostname?)"
    );
    let err = parse_env("Env[0]", "É={{.X}}").expect_err("unknown");
    assert_eq!(err.position.column, 5);
}

#[test]
fn container_spec_expands_hostname_and_env() {
    let spec = ContainerSpec {
        image: "host".into(),
        hostname: "{{.Service.Name}}-{{.Task.Slot}}".into(),
        env: vec![
            "NODE={{.Node.Hostname}}".into(),
            "PLAIN=1".into(),
            "BARE".into(),
        ],
        command: vec!["{{.Service.Name}}".into()],
        ..Default::default()
    };
    let out = match expand_container(&spec, &ctx()) {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(out.hostname, "web-3");
    assert_eq!(out.env, vec!["NODE=host-a", "PLAIN=1", "BARE"]);
    // Swarm templates only these fields; the command is passed on as written.
    assert_eq!(out.command, spec.command);

    let mut bad = spec.clone();
    bad.env[1] = "PLAIN={{.Task.Slt}}".into();
    let e = expand_container(&bad, &ctx()).expect_err("typo in env");
    assert_eq!(e.name, "Env[1]");
    assert_eq!(
        e.position,
        Position {
            line: 1,
            column: 14
        }
    );
    let mut bad = spec;
    bad.hostname = "{{.Service.Nmae}}".into();
    let e = expand_container(&bad, &ctx()).expect_err("typo in hostname");
    assert_eq!(e.name, "Hostname");
}

#[test]
fn context_of_a_task_follows_swarm() {
    let node = NodeDescription {
        hostname: "h1".into(),
        platform: Platform {
            os: "linux".into(),
            arch: "aarch64".into(),
        },
        ..Default::default()
    };
    let mut task = Task {
        id: Id::from_raw("t1"),
        service_id: Id::from_raw("s1"),
        service_name: "web".into(),
        service_labels: BTreeMap::from([("a".to_string(), "b".to_string())]),
        slot: 2,
        node_id: Some(Id::from_raw("n1")),
        ..Default::default()
    };
    let c = Context::for_task(&task, &Id::from_raw("agent-node"), &node);
    assert_eq!(
        c,
        Context {
            service_id: "s1".into(),
            service_name: "web".into(),
            service_labels: task.service_labels.clone(),
            node_id: "n1".into(),
            node_hostname: "h1".into(),
            node_os: "linux".into(),
            node_arch: "aarch64".into(),
            task_id: "t1".into(),
            task_name: "web.2.t1".into(),
            task_slot: "2".into(),
        }
    );
    // A global task has no slot: Swarm puts the node's ID there.
    task.slot = 0;
    task.node_id = None;
    let c = Context::for_task(&task, &Id::from_raw("agent-node"), &node);
    assert_eq!(c.task_slot, "agent-node");
    assert_eq!(c.node_id, "agent-node");
}

#[test]
fn edit_distance_counts_characters() {
    assert_eq!(edit_distance("Name", "Nmae"), 2);
    assert_eq!(edit_distance("ID", "ID"), 0);
    assert_eq!(edit_distance("Slot", "Slöt"), 1);
    assert_eq!(edit_distance("", "abc"), 3);
}

proptest::proptest! {
    /// Whatever the text, parsing and expanding return an answer (never a panic), and an error
    /// points inside the text.
    #[test]
    fn any_text_gets_an_answer(parts in proptest::collection::vec(
        proptest::sample::select(vec![
            "{{", "}}", "{{- ", " -}}", ".Service", ".Name", ".Labels", ".tier", ".Node", ".Task",
            ".Slot", ".", "$", " ", "\n", "-", "\"", "`", "\\", "(", ")", "|", "index", "join",
            "é", "🚀", "/*", "*/", "x", "\"a.b\"",
        ]),
        0..24,
    )) {
        let src = parts.concat();
        match parse(&src).and_then(|t| t.expand(&ctx())) {
            Ok(_) => {}
            Err(e) => {
                let lines: Vec<&str> = src.split('\n').collect();
                proptest::prop_assert!(e.position.line >= 1 && e.position.line <= lines.len());
                let width = lines[e.position.line - 1].chars().count();
                proptest::prop_assert!(e.position.column >= 1 && e.position.column <= width + 1,
                    "{src:?}: {e}");
            }
        }
    }

    #[test]
    fn text_without_actions_is_itself(src in "[^{]*") {
        proptest::prop_assert_eq!(expand(&src), src);
    }
}
