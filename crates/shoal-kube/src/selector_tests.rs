use super::*;
use proptest::prelude::*;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn label(s: &str) -> LabelSelector {
    LabelSelector::parse(s).unwrap_or_else(|e| panic!("{s:?} does not parse: {e}"))
}

fn label_err(s: &str) -> String {
    match LabelSelector::parse(s) {
        Ok(sel) => panic!("{s:?} parses, to {sel:?}"),
        Err(e) => e.to_string(),
    }
}

fn field(s: &str) -> FieldSelector {
    FieldSelector::parse(s).unwrap_or_else(|e| panic!("{s:?} does not parse: {e}"))
}

fn field_err(s: &str) -> String {
    match FieldSelector::parse(s) {
        Ok(sel) => panic!("{s:?} parses, to {sel:?}"),
        Err(e) => e.to_string(),
    }
}

const NAME_REGEX_ERR: &str = "name part must consist of alphanumeric characters, '-', '_' or \
     '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or \
     'my.name',  or '123-abc', regex used for validation is \
     '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const VALUE_REGEX_ERR: &str = "a valid label must be an empty string or consist of \
     alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric \
     character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is \
     '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const PREFIX_REGEX_ERR: &str = "prefix part a lowercase RFC 1123 subdomain must consist of \
     lower case alphanumeric characters, '-' or '.', and must start and end with an \
     alphanumeric character (e.g. 'example.com', regex used for validation is \
     '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

// ---- label selectors: operators and matching ----

#[test]
fn equality_operators() {
    let web = labels(&[("app", "web")]);
    let db = labels(&[("app", "db")]);
    let none = labels(&[]);
    for s in ["app=web", "app==web"] {
        let sel = label(s);
        assert!(sel.matches(&web), "{s}");
        assert!(!sel.matches(&db), "{s}");
        assert!(!sel.matches(&none), "{s} needs the key");
    }
    assert_eq!(
        label("app=web").requirements()[0].operator(),
        LabelOperator::Equals
    );
    assert_eq!(
        label("app==web").requirements()[0].operator(),
        LabelOperator::DoubleEquals
    );
    let sel = label("app!=web");
    assert!(!sel.matches(&web));
    assert!(sel.matches(&db));
    assert!(sel.matches(&none), "!= holds for an object without the key");
}

#[test]
fn set_operators() {
    let sel = label("tier in (front,back)");
    assert_eq!(sel.requirements()[0].operator(), LabelOperator::In);
    assert_eq!(sel.requirements()[0].values(), ["back", "front"]);
    assert!(sel.matches(&labels(&[("tier", "front")])));
    assert!(sel.matches(&labels(&[("tier", "back")])));
    assert!(!sel.matches(&labels(&[("tier", "cache")])));
    assert!(!sel.matches(&labels(&[])), "in needs the key");

    let sel = label("tier notin (front,back)");
    assert_eq!(sel.requirements()[0].operator(), LabelOperator::NotIn);
    assert!(!sel.matches(&labels(&[("tier", "front")])));
    assert!(sel.matches(&labels(&[("tier", "cache")])));
    assert!(sel.matches(&labels(&[])), "notin holds without the key");
}

#[test]
fn existence_operators() {
    let sel = label("canary");
    assert_eq!(sel.requirements()[0].operator(), LabelOperator::Exists);
    assert!(sel.matches(&labels(&[("canary", "")])));
    assert!(!sel.matches(&labels(&[("other", "x")])));

    let sel = label("!canary");
    assert_eq!(
        sel.requirements()[0].operator(),
        LabelOperator::DoesNotExist
    );
    assert!(!sel.matches(&labels(&[("canary", "")])));
    assert!(sel.matches(&labels(&[("other", "x")])));
}

#[test]
fn integer_operators() {
    let gt = label("replicas>2");
    let lt = label("replicas<2");
    assert_eq!(gt.requirements()[0].operator(), LabelOperator::GreaterThan);
    assert_eq!(lt.requirements()[0].operator(), LabelOperator::LessThan);
    assert!(gt.matches(&labels(&[("replicas", "3")])));
    assert!(!gt.matches(&labels(&[("replicas", "2")])));
    assert!(lt.matches(&labels(&[("replicas", "1")])));
    assert!(lt.matches(&labels(&[("replicas", "-5")])));
    assert!(!lt.matches(&labels(&[("replicas", "2")])));
    assert!(!gt.matches(&labels(&[])), "gt needs the key");
    assert!(!lt.matches(&labels(&[])), "lt needs the key");
    assert!(!gt.matches(&labels(&[("replicas", "many")])));
    assert!(!lt.matches(&labels(&[("replicas", "many")])));
    assert_eq!(
        label_err("replicas>many"),
        "unable to parse requirement: values[0]: Invalid value: \"many\": for 'Gt', 'Lt' \
         operators, the value must be an integer"
    );
}

#[test]
fn several_requirements_all_hold() {
    let sel = label("app=web,tier in (front),!canary,env");
    assert!(sel.matches(&labels(&[("app", "web"), ("tier", "front"), ("env", "p")])));
    assert!(!sel.matches(&labels(&[("app", "web"), ("tier", "front")])));
    assert!(!sel.matches(&labels(&[
        ("app", "web"),
        ("tier", "front"),
        ("env", "p"),
        ("canary", "1"),
    ])));
    let keys: Vec<&str> = sel.requirements().iter().map(|r| r.key()).collect();
    assert_eq!(keys, ["app", "canary", "env", "tier"], "sorted by key");
}

#[test]
fn empty_selects_everything() {
    for s in ["", "   ", " \t\r\n"] {
        let sel = label(s);
        assert!(sel.is_empty());
        assert!(sel.matches(&labels(&[])));
        assert!(sel.matches(&labels(&[("a", "b")])));
        assert_eq!(sel, LabelSelector::default());
    }
    assert!(!label("a").is_empty());
}

#[test]
fn blanks_around_tokens() {
    let compact = label("a=b,c in (x,y),!d,e!=f,g");
    let spaced = label(" a = b ,\tc  in(x , y ) ,\n! d , e != f , g\r\n");
    assert_eq!(compact, spaced);
    assert_eq!(label("a in(x)"), label("a in (x)"));
    assert_eq!(
        label_err("a=b c"),
        "found 'c', expected: ',' or 'end of string'"
    );
}

#[test]
fn empty_values() {
    let sel = label("a=");
    assert_eq!(sel.requirements()[0].values(), [""]);
    assert!(sel.matches(&labels(&[("a", "")])));
    assert!(!sel.matches(&labels(&[])));
    assert_eq!(label("a=,b").requirements()[0].values(), [""]);
    assert_eq!(label("a!=").requirements()[0].values(), [""]);
    assert_eq!(label("a in ()").requirements()[0].values(), [""]);
    assert_eq!(label("a in (,)").requirements()[0].values(), [""]);
    assert_eq!(label("a in (,x)").requirements()[0].values(), ["", "x"]);
    assert_eq!(label("a in (x,)").requirements()[0].values(), ["", "x"]);
    assert_eq!(
        label("a in (x,,y)").requirements()[0].values(),
        ["", "x", "y"]
    );
    assert_eq!(label("a in (y,x,y)").requirements()[0].values(), ["x", "y"]);
    assert!(label("a in (,x)").matches(&labels(&[("a", "")])));
}

#[test]
fn in_and_notin_are_words_outside_the_operator() {
    let sel = label("in in (in,notin),notin=in");
    let r = &sel.requirements()[0];
    assert_eq!((r.key(), r.operator()), ("in", LabelOperator::In));
    assert_eq!(r.values(), ["in", "notin"]);
    let r = &sel.requirements()[1];
    assert_eq!(
        (r.key(), r.operator(), r.values()),
        ("notin", LabelOperator::Equals, &["in".to_owned()][..])
    );
    assert_eq!(
        label("in").requirements()[0].operator(),
        LabelOperator::Exists
    );
}

#[test]
fn prefixed_keys() {
    let sel = label("app.kubernetes.io/name=web");
    assert!(sel.matches(&labels(&[("app.kubernetes.io/name", "web")])));
}

#[test]
fn nul_ends_the_selector_where_a_token_would_start() {
    assert_eq!(label("a \0 ((("), label("a"));
    assert_eq!(label("\0garbage"), LabelSelector::default());
    assert_eq!(
        label_err("a=b\0c"),
        "found 'c', expected: ',' or 'end of string'"
    );
}

// ---- label selectors: errors ----

#[test]
fn syntax_errors() {
    let cases = [
        (
            "a (",
            "unable to parse requirement: found '(', expected: in, notin, =, ==, !=, gt, lt",
        ),
        (
            "a b",
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt",
        ),
        ("a=b,", "found '', expected: identifier after ','"),
        ("a=b,,c", "found ',', expected: identifier after ','"),
        ("a=b c", "found 'c', expected: ',' or 'end of string'"),
        ("!a=b", "found '=', expected: ',' or 'end of string'"),
        (
            "=a",
            "found '=', expected: !, identifier, or 'end of string'",
        ),
        (
            ",",
            "found ',', expected: !, identifier, or 'end of string'",
        ),
        (
            "(",
            "found '(', expected: !, identifier, or 'end of string'",
        ),
        (
            "!",
            "unable to parse requirement: found '', expected: identifier",
        ),
        (
            "!=a",
            "found '!=', expected: !, identifier, or 'end of string'",
        ),
        (
            "!!a",
            "unable to parse requirement: found '!', expected: identifier",
        ),
        (
            "a in",
            "unable to parse requirement: found '' expected: '('",
        ),
        (
            "a in x",
            "unable to parse requirement: found 'x' expected: '('",
        ),
        (
            "a in (x",
            "unable to parse requirement: found '', expected: ',' or ')'",
        ),
        (
            "a in (x y)",
            "unable to parse requirement: found 'y', expected: ',' or ')'",
        ),
        (
            "a in (=",
            "unable to parse requirement: found '=', expected: ',', ')' or identifier",
        ),
        (
            "a in (",
            "unable to parse requirement: found '', expected: ',', ')' or identifier",
        ),
        (
            "a in (x,=)",
            "unable to parse requirement: found '=', expected: ',', or identifier",
        ),
        (
            "a in (x,",
            "unable to parse requirement: found '', expected: ',', or identifier",
        ),
        (
            "a==(",
            "unable to parse requirement: found '(', expected: identifier",
        ),
        (
            "a=!",
            "unable to parse requirement: found '!', expected: identifier",
        ),
        ("a in (x))", "found ')', expected: ',' or 'end of string'"),
    ];
    for (s, want) in cases {
        assert_eq!(label_err(s), want, "{s:?}");
    }
}

#[test]
fn invalid_value_is_reported_with_its_path() {
    assert_eq!(
        label_err("app=-x"),
        format!(
            "unable to parse requirement: values[0][app]: Invalid value: \"-x\": \
             {VALUE_REGEX_ERR}"
        )
    );
    assert_eq!(
        label_err("app in (ok,-x,y-)"),
        format!(
            "unable to parse requirement: [values[0][app]: Invalid value: \"-x\": \
             {VALUE_REGEX_ERR}, values[2][app]: Invalid value: \"y-\": {VALUE_REGEX_ERR}]"
        ),
        "indexes count in the sorted set"
    );
    let long = "v".repeat(64);
    assert_eq!(
        label_err(&format!("app={long}")),
        format!(
            "unable to parse requirement: values[0][app]: Invalid value: \"{long}\": must be \
             no more than 63 characters"
        )
    );
    assert!(LabelSelector::parse(&format!("app={}", "v".repeat(63))).is_ok());
}

#[test]
fn invalid_key_is_reported_against_the_nil_path() {
    assert_eq!(
        label_err("-x"),
        format!("unable to parse requirement: <nil>: Invalid value: \"-x\": {NAME_REGEX_ERR}")
    );
    assert_eq!(
        label_err("a/b/c=d"),
        format!(
            "unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a qualified name \
             {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
            NAME_REGEX_ERR.trim_start_matches("name part ")
        )
    );
    assert_eq!(
        label_err("Example.com/a in (x)"),
        format!(
            "unable to parse requirement: <nil>: Invalid value: \"Example.com/a\": \
             {PREFIX_REGEX_ERR}"
        )
    );
    assert_eq!(
        label_err("/a"),
        "unable to parse requirement: <nil>: Invalid value: \"/a\": prefix part must be \
         non-empty"
    );
    assert_eq!(
        label_err("a\u{1}"),
        format!("unable to parse requirement: <nil>: Invalid value: \"a\\x01\": {NAME_REGEX_ERR}")
    );
}

// ---- key and value validation ----

#[test]
fn label_keys() {
    for ok in [
        "a",
        "app",
        "A-b_c.D9",
        "app.kubernetes.io/name",
        "k8s.io/x",
        "1/2",
        &"k".repeat(63),
        &format!("{}/n", "p".repeat(253)),
    ] {
        assert_eq!(label_key_errors(ok), Vec::<String>::new(), "{ok:?}");
    }
    assert_eq!(
        label_key_errors(""),
        ["name part must be non-empty", NAME_REGEX_ERR]
    );
    assert_eq!(
        label_key_errors(&"k".repeat(64)),
        ["name part must be no more than 63 characters"]
    );
    assert_eq!(
        label_key_errors(&format!("-{}", "k".repeat(63))),
        [
            "name part must be no more than 63 characters",
            NAME_REGEX_ERR
        ]
    );
    assert_eq!(label_key_errors("a_"), [NAME_REGEX_ERR]);
    assert_eq!(label_key_errors("a b"), [NAME_REGEX_ERR]);
    assert_eq!(label_key_errors("é"), [NAME_REGEX_ERR]);
    assert_eq!(
        label_key_errors("/"),
        [
            "prefix part must be non-empty",
            "name part must be non-empty",
            NAME_REGEX_ERR
        ]
    );
    assert_eq!(
        label_key_errors(&format!("{}/n", "p".repeat(254))),
        ["prefix part must be no more than 253 characters"]
    );
    for prefix in ["Upper.io", "a..b", "-a.io", "a-.io", "a_b.io", ".a"] {
        assert_eq!(
            label_key_errors(&format!("{prefix}/n")),
            [PREFIX_REGEX_ERR],
            "{prefix:?}"
        );
    }
    assert_eq!(label_key_errors("a/b/c").len(), 1);
    assert!(label_key_errors("a/b/c")[0].starts_with("a qualified name must consist of"));
}

#[test]
fn label_values() {
    for ok in [
        "",
        "a",
        "MyValue",
        "my_value",
        "12345",
        "a.b-c_d",
        &"v".repeat(63),
    ] {
        assert_eq!(label_value_errors(ok), Vec::<String>::new(), "{ok:?}");
    }
    for bad in ["-x", "x-", "_", ".a", "a b", "a/b", "é"] {
        assert_eq!(label_value_errors(bad), [VALUE_REGEX_ERR], "{bad:?}");
    }
    assert_eq!(
        label_value_errors(&"v".repeat(64)),
        ["must be no more than 63 characters"]
    );
    assert_eq!(
        label_value_errors(&format!("{}-", "v".repeat(63))),
        ["must be no more than 63 characters", VALUE_REGEX_ERR]
    );
}

#[test]
fn go_quoting() {
    assert_eq!(go_quote("plain"), "\"plain\"");
    assert_eq!(go_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
    assert_eq!(
        go_quote("\n\t\r\u{7}\u{8}\u{b}\u{c}"),
        "\"\\n\\t\\r\\a\\b\\v\\f\""
    );
    assert_eq!(go_quote("\0\u{1f}\u{7f}"), "\"\\x00\\x1f\\x7f\"");
    assert_eq!(go_quote("é\u{a0}\u{200b}"), "\"é\\u00a0\\u200b\"");
    assert_eq!(go_quote("\u{10ffff}"), "\"\\U0010ffff\"");
}

// ---- label selectors: display ----

#[test]
fn display_is_kubernetes_string() {
    let sel = label("b notin (y,x), a , !c, d==1, e>3, f<4, g in (), h=, i!=j");
    assert_eq!(
        sel.to_string(),
        "a,b notin (x,y),!c,d==1,e>3,f<4,g in (),h=,i!=j"
    );
    assert_eq!(label(&sel.to_string()), sel);
    assert_eq!(label("a in (,x)").to_string(), "a in (,x)");
}

// ---- typed selectors ----

fn typed(
    match_labels: &[(&str, &str)],
    exprs: &[(&str, &str, Option<&[&str]>)],
) -> meta::LabelSelector {
    meta::LabelSelector {
        match_labels: (!match_labels.is_empty()).then(|| labels(match_labels)),
        match_expressions: (!exprs.is_empty()).then(|| {
            exprs
                .iter()
                .map(|(key, op, values)| meta::LabelSelectorRequirement {
                    key: (*key).to_owned(),
                    operator: (*op).to_owned(),
                    values: values.map(|v| v.iter().map(|s| (*s).to_owned()).collect()),
                })
                .collect()
        }),
    }
}

fn typed_err(sel: &meta::LabelSelector) -> String {
    match LabelSelector::from_label_selector(sel) {
        Ok(s) => panic!("{sel:?} converts, to {s:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn from_typed_selector() {
    let sel = typed(
        &[("app", "web"), ("tier", "front")],
        &[
            ("env", "In", Some(&["prod", "staging", "prod"])),
            ("zone", "NotIn", Some(&["a"])),
            ("ready", "Exists", None),
            ("canary", "DoesNotExist", Some(&[])),
        ],
    );
    let got = LabelSelector::from_label_selector(&sel).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        got,
        label("app=web,tier=front,env in (prod,staging),zone notin (a),ready,!canary")
    );
    assert!(got.matches(&labels(&[
        ("app", "web"),
        ("tier", "front"),
        ("env", "prod"),
        ("ready", "")
    ])));
    assert!(!got.matches(&labels(&[
        ("app", "web"),
        ("tier", "front"),
        ("env", "prod")
    ])));

    let everything = LabelSelector::from_label_selector(&meta::LabelSelector::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(everything.is_empty());
    assert!(everything.matches(&labels(&[("x", "y")])));
}

#[test]
fn typed_selector_errors() {
    assert_eq!(
        typed_err(&typed(&[], &[("a", "Gt", Some(&["1"]))])),
        "\"Gt\" is not a valid label selector operator"
    );
    assert_eq!(
        typed_err(&typed(&[], &[("a", "in", Some(&["1"]))])),
        "\"in\" is not a valid label selector operator"
    );
    assert_eq!(
        typed_err(&typed(&[], &[("a", "In", None)])),
        "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't \
         be empty"
    );
    assert_eq!(
        typed_err(&typed(&[], &[("a", "NotIn", Some(&[]))])),
        "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't \
         be empty"
    );
    assert_eq!(
        typed_err(&typed(&[], &[("a", "Exists", Some(&["x", "y"]))])),
        "values: Invalid value: []string{\"x\", \"y\"}: values set must be empty for exists \
         and does not exist"
    );
    assert_eq!(
        typed_err(&typed(&[("-a", "ok")], &[])),
        format!("key: Invalid value: \"-a\": {NAME_REGEX_ERR}")
    );
    assert_eq!(
        typed_err(&typed(&[("-a", "-v")], &[])),
        format!(
            "[key: Invalid value: \"-a\": {NAME_REGEX_ERR}, values[0][-a]: Invalid value: \
             \"-v\": {VALUE_REGEX_ERR}]"
        )
    );
    assert_eq!(
        typed_err(&typed(&[], &[("a", "In", Some(&["ok", "b c"]))])),
        format!("values[1][a]: Invalid value: \"b c\": {VALUE_REGEX_ERR}")
    );
}

// ---- field selectors ----

const POD_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "status.phase",
];

fn pod(name: &str, node: Option<&str>, phase: &str) -> impl Fn(&str) -> Option<String> {
    let (name, node, phase) = (name.to_owned(), node.map(str::to_owned), phase.to_owned());
    move |path: &str| match path {
        "metadata.name" => Some(name.clone()),
        "metadata.namespace" => Some("default".to_owned()),
        "spec.nodeName" => node.clone(),
        "status.phase" => Some(phase.clone()),
        _ => None,
    }
}

#[test]
fn field_operators() {
    let sel = field("metadata.name=web,status.phase!=Running");
    assert!(sel.check(POD_FIELDS).is_ok());
    assert!(sel.matches(pod("web", None, "Pending")));
    assert!(!sel.matches(pod("web", None, "Running")));
    assert!(!sel.matches(pod("db", None, "Pending")));
    assert_eq!(sel.exact("metadata.name"), Some("web"));
    assert_eq!(sel.exact("status.phase"), None, "!= pins nothing");
    assert_eq!(sel.exact("spec.nodeName"), None);

    let sel = field("metadata.name==web");
    assert_eq!(
        sel.requirements()[0].operator(),
        FieldOperator::DoubleEquals
    );
    assert_eq!(sel.exact("metadata.name"), Some("web"));
    assert!(sel.matches(pod("web", None, "Running")));
    assert_eq!(
        field("metadata.name=web").requirements()[0].operator(),
        FieldOperator::Equals
    );
}

#[test]
fn absent_field_reads_as_empty() {
    let unscheduled = field("spec.nodeName=");
    assert!(unscheduled.matches(pod("web", None, "Pending")));
    assert!(!unscheduled.matches(pod("web", Some("n1"), "Running")));
    let scheduled = field("spec.nodeName!=");
    assert!(!scheduled.matches(pod("web", None, "Pending")));
    assert!(scheduled.matches(pod("web", Some("n1"), "Running")));
    assert!(field("spec.nodeName=n1").matches(pod("web", Some("n1"), "Running")));
}

#[test]
fn empty_field_selectors() {
    for s in ["", ",", ",,", "=", "==,!=", ",="] {
        let sel = field(s);
        assert!(sel.is_empty(), "{s:?}");
        assert!(sel.matches(|_| None));
        assert!(sel.check(&[]).is_ok());
    }
    assert!(!field("=x").is_empty(), "an empty key with a value stays");
    assert_eq!(
        field("=x").check(POD_FIELDS),
        Err(SelectorError::FieldNotSupported(String::new()))
    );
    assert_eq!(field("a=b,,c=d").requirements().len(), 2);
}

#[test]
fn field_check_wording_and_order() {
    let err = field("spec.foo=1").check(POD_FIELDS);
    assert_eq!(
        err.map_err(|e| e.to_string()),
        Err("field label not supported: spec.foo".to_owned())
    );
    // Terms are checked in sorted order, as Kubernetes transforms them.
    assert_eq!(
        field("zeta=1,beta=2").check(POD_FIELDS),
        Err(SelectorError::FieldNotSupported("beta".to_owned()))
    );
    // Nothing is trimmed: the blank belongs to the key.
    assert_eq!(
        field("metadata.name = web").check(POD_FIELDS),
        Err(SelectorError::FieldNotSupported(
            "metadata.name ".to_owned()
        ))
    );
    assert_eq!(
        field("metadata.name= web").exact("metadata.name"),
        Some(" web")
    );
}

#[test]
fn field_syntax_errors() {
    assert_eq!(
        field_err("metadata.name"),
        "invalid selector: 'metadata.name'; can't understand 'metadata.name'"
    );
    assert_eq!(
        field_err("a=b,c"),
        "invalid selector: 'a=b,c'; can't understand 'c'"
    );
    assert_eq!(
        field_err("a<b"),
        "invalid selector: 'a<b'; can't understand 'a<b'"
    );
    assert_eq!(
        field_err("a=b=c"),
        "invalid field selector: unescaped character in value: 61"
    );
    assert_eq!(
        field_err("a!==c"),
        "invalid field selector: unescaped character in value: 61"
    );
    assert_eq!(
        field_err("a=b\\x"),
        "invalid field selector: invalid escape sequence: \\x"
    );
    assert_eq!(
        field_err("a=b\\"),
        "invalid field selector: invalid escape sequence: \\"
    );
}

#[test]
fn field_escapes() {
    let sel = field("a=x\\,y\\=z\\\\,b!=\\,");
    assert_eq!(sel.exact("a"), Some("x,y=z\\"));
    assert_eq!(sel.requirements()[1].value(), ",");
    assert_eq!(sel.to_string(), "a=x\\,y\\=z\\\\,b!=\\,");
    assert_eq!(field(&sel.to_string()), sel);
    // An escaped comma does not split the key either; the key stays as written.
    let sel = field("a\\,b=c");
    assert_eq!(sel.requirements()[0].key(), "a\\,b");
}

#[test]
fn field_operator_split_is_the_first_operator() {
    let sel = field("a!b=c");
    assert_eq!(sel.requirements()[0].key(), "a!b");
    assert_eq!(sel.requirements()[0].operator(), FieldOperator::Equals);
    let sel = field("é!=ü");
    assert_eq!(
        (sel.requirements()[0].key(), sel.requirements()[0].value()),
        ("é", "ü")
    );
}

#[test]
fn field_exact_takes_the_first_pinning_term() {
    let sel = field("metadata.name!=x,metadata.name=b,metadata.name=a");
    assert_eq!(sel.exact("metadata.name"), Some("a"));
}

// ---- properties ----

fn key_strategy() -> impl Strategy<Value = String> {
    "(([a-z0-9]{1,4}\\.)?[a-z]{1,5}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,8}[A-Za-z0-9])?"
}

fn value_strategy() -> impl Strategy<Value = String> {
    "([A-Za-z0-9]([-A-Za-z0-9_.]{0,8}[A-Za-z0-9])?)?"
}

/// Text built from the selector grammar's own pieces, to get past the first token often.
fn selectorish() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("a"),
            Just("b/c"),
            Just("x.io/k"),
            Just("in"),
            Just("notin"),
            Just("="),
            Just("=="),
            Just("!="),
            Just("!"),
            Just("("),
            Just(")"),
            Just(","),
            Just(">"),
            Just("<"),
            Just("7"),
            Just(" "),
            Just("\t"),
            Just("\\"),
            Just("\0"),
            Just("-"),
            Just("é"),
        ],
        0..16,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #[test]
    fn parsers_never_panic(s in any::<String>()) {
        if let Ok(sel) = LabelSelector::parse(&s) {
            let _ = sel.matches(&labels(&[("a", "1")]));
        }
        if let Ok(sel) = FieldSelector::parse(&s) {
            let _ = sel.check(POD_FIELDS);
            let _ = sel.matches(|_| None);
        }
    }

    #[test]
    fn parsed_selectors_print_back(s in selectorish()) {
        if let Ok(sel) = LabelSelector::parse(&s) {
            let again = LabelSelector::parse(&sel.to_string());
            prop_assert_eq!(again, Ok(sel));
        }
        if let Ok(sel) = FieldSelector::parse(&s) {
            let again = FieldSelector::parse(&sel.to_string());
            prop_assert_eq!(again, Ok(sel));
        }
    }

    #[test]
    fn a_map_selects_itself(
        map in proptest::collection::btree_map(key_strategy(), value_strategy(), 0..6),
        spaced in any::<bool>(),
    ) {
        let sep = if spaced { " , " } else { "," };
        let text = map
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(sep);
        let sel = LabelSelector::parse(&text);
        prop_assert!(sel.is_ok(), "{:?}: {:?}", text, sel);
        let sel = sel.unwrap_or_default();
        prop_assert!(sel.matches(&map));
        prop_assert_eq!(sel.is_empty(), map.is_empty());
        prop_assert_eq!(sel.requirements().len(), map.len());
        for (k, v) in &map {
            let mut other = map.clone();
            other.insert(k.clone(), format!("{v}x"));
            prop_assert!(!sel.matches(&other));
            other.remove(k);
            prop_assert!(!sel.matches(&other));
        }
        let typed = meta::LabelSelector { match_labels: Some(map.clone()), match_expressions: None };
        prop_assert_eq!(LabelSelector::from_label_selector(&typed), Ok(sel));
    }

    #[test]
    fn a_field_map_selects_itself(
        map in proptest::collection::btree_map("[a-z]{1,4}(\\.[a-zA-Z]{1,4})?", any::<String>(), 0..5),
    ) {
        let text = map
            .iter()
            .map(|(k, v)| format!("{k}={}", escape_field_value(v)))
            .collect::<Vec<_>>()
            .join(",");
        let sel = FieldSelector::parse(&text);
        prop_assert!(sel.is_ok(), "{:?}: {:?}", text, sel);
        let sel = sel.unwrap_or_default();
        prop_assert!(sel.matches(|k| map.get(k).cloned()));
        for (k, v) in &map {
            prop_assert_eq!(sel.exact(k), Some(v.as_str()));
        }
        let keys: Vec<&str> = map.keys().map(String::as_str).collect();
        prop_assert!(sel.check(&keys).is_ok());
    }
}
