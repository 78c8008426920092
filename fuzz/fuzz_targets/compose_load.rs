//! Compose files for `stack deploy` (shoal-compose): `load` (YAML with anchors and merge keys,
//! interpolation, typing, merging, depends_on checks), `render` of what loaded and a `load` of
//! that output, and `convert` to API bodies, which must serialize. The input's first line is the
//! environment (`KEY=VAL;KEY2=VAL2`); the rest is the file, loaded once alone and once as an
//! override of itself. A few files exist for env_file, .env and secrets to find.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use shoal_compose::{MemFiles, Options, SourceFile, convert, load, render};

fn files() -> MemFiles {
    MemFiles::new()
        .with("/srv/app/.env", "TAG=1.27\nREPLICAS=2\nQUOTED=\"a b\"\n")
        .with("/srv/app/app.env", "# comment\nA=1\nB\nexport C=2\n")
        .with("/srv/app/secret.txt", "hunter2")
        .with("/srv/app/conf/nginx.conf", "server {}\n")
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (env_line, yaml) = text.split_once('\n').unwrap_or(("", text));
    let env: BTreeMap<String, String> = env_line
        .split(';')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let opts = Options {
        working_dir: "/srv/app".into(),
        env,
        dotenv: true,
    };
    let fs = files();
    let one = [SourceFile {
        name: "docker-compose.yml".into(),
        text: yaml.into(),
    }];
    let Ok(loaded) = load(&one, &opts, &fs) else {
        return;
    };
    let _ = loaded.notices();
    let rendered = render(&loaded.project);
    let again = [SourceFile {
        name: "rendered.yml".into(),
        text: rendered,
    }];
    let _ = load(&again, &opts, &fs);
    let twice = [one[0].clone(), one[0].clone()];
    let _ = load(&twice, &opts, &fs);
    if let Ok(stack) = convert(&loaded.project, "fz", &fs, &opts) {
        for s in &stack.services {
            assert!(
                s.name.starts_with("fz_"),
                "service {} outside the stack",
                s.name
            );
            serde_json::to_vec(&s.spec).expect("a service spec serializes");
        }
        for n in &stack.networks {
            serde_json::to_vec(&n.create).expect("a network serializes");
        }
    }
});
