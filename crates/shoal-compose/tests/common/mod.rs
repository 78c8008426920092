//! Helpers the integration tests share: load YAML from strings against an in-memory filesystem
//! rooted at /srv/app, and look at specs as JSON.
#![allow(dead_code)]

use std::collections::BTreeMap;

use shoal_compose::{
    Errors, Loaded, MemFiles, Options, SourceFile, Stack, StackService, convert, load,
};

pub const DIR: &str = "/srv/app";

pub fn opts(env: &[(&str, &str)]) -> Options {
    Options {
        working_dir: DIR.into(),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        dotenv: false,
    }
}

pub fn file(name: &str, text: &str) -> SourceFile {
    SourceFile {
        name: name.into(),
        text: text.into(),
    }
}

pub fn load_with(text: &str, env: &[(&str, &str)], fs: &MemFiles) -> Result<Loaded, Errors> {
    load(&[file("docker-compose.yml", text)], &opts(env), fs)
}

pub fn load_ok(text: &str) -> Loaded {
    match load_with(text, &[], &MemFiles::new()) {
        Ok(l) => l,
        Err(e) => panic!("load failed:\n{e}"),
    }
}

/// The errors of a file that must not load, one per line.
pub fn load_err(text: &str) -> String {
    load_err_env(text, &[])
}

pub fn load_err_env(text: &str, env: &[(&str, &str)]) -> String {
    match load_with(text, env, &MemFiles::new()) {
        Ok(l) => panic!("loaded: {:?}", l.project),
        Err(e) => e.to_string(),
    }
}

pub fn stack_with(text: &str, env: &[(&str, &str)], fs: &MemFiles) -> Stack {
    let loaded = match load_with(text, env, fs) {
        Ok(l) => l,
        Err(e) => panic!("load failed:\n{e}"),
    };
    match convert(&loaded.project, "app", fs, &opts(env)) {
        Ok(s) => s,
        Err(e) => panic!("convert failed:\n{e}"),
    }
}

pub fn stack(text: &str) -> Stack {
    stack_with(text, &[], &MemFiles::new())
}

pub fn convert_err(text: &str) -> String {
    let loaded = load_ok(text);
    match convert(&loaded.project, "app", &MemFiles::new(), &opts(&[])) {
        Ok(s) => panic!("converted: {:?}", s.services),
        Err(e) => e.to_string(),
    }
}

pub fn service<'a>(stack: &'a Stack, name: &str) -> &'a StackService {
    stack
        .services
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no service {name}"))
}

/// A service's spec as JSON (what goes on the wire).
pub fn spec_json(text: &str, svc: &str) -> serde_json::Value {
    let s = stack(text);
    serde_json::to_value(&service(&s, &format!("app_{svc}")).spec).expect("a spec is JSON")
}

/// The spec's container spec as JSON.
pub fn container(text: &str, svc: &str) -> serde_json::Value {
    spec_json(text, svc)["TaskTemplate"]["ContainerSpec"].clone()
}
