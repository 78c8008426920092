//! [`load`]: files to a [`Project`]. Each file is parsed, checked for a supported version,
//! interpolated and read on its own (as docker does, so one file's env files resolve in that
//! file), then the files are merged in order and the services' dependencies checked. Errors are
//! collected across all files rather than stopping at the first.

use std::collections::BTreeMap;

use crate::error::{Diag, Error, Errors, Location, Pos};
use crate::model::Project;
use crate::{Files, Options, SourceFile, interp, merge, service, top, validate, yaml};

/// A loaded project, with what Swarm ignores in it and the warnings to show.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub project: Project,
    pub ignored: Vec<Ignored>,
    pub warnings: Vec<String>,
}

/// A key a stack ignores: docker's "unsupported" (warned about, not used; `restart` is used
/// anyway, as a fallback restart policy) or "deprecated" list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    /// `services.web.build`.
    pub key: String,
    pub at: Location,
    pub kind: IgnoredKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IgnoredKind {
    Unsupported,
    /// With docker's explanation.
    Deprecated(String),
}

impl Ignored {
    /// The option's own name (`build`).
    pub fn property(&self) -> &str {
        self.key.rsplit('.').next().unwrap_or(&self.key)
    }
}

impl Loaded {
    /// The unsupported options used, sorted and without repeats (`build`, `restart`).
    pub fn unsupported(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .ignored
            .iter()
            .filter(|i| i.kind == IgnoredKind::Unsupported)
            .map(|i| i.property().to_string())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// The deprecated options used, with their explanations.
    pub fn deprecated(&self) -> BTreeMap<String, String> {
        self.ignored
            .iter()
            .filter_map(|i| match &i.kind {
                IgnoredKind::Deprecated(why) => Some((i.property().to_string(), why.clone())),
                IgnoredKind::Unsupported => None,
            })
            .collect()
    }

    /// Exactly what `docker stack deploy` writes to stderr about them (possibly nothing):
    /// `Ignoring unsupported options: build, restart\n\n` and
    /// `Ignoring deprecated options:\n\ncontainer_name: Setting the container name is not
    /// supported.\n\n`.
    pub fn notices(&self) -> String {
        let mut out = String::new();
        let unsupported = self.unsupported();
        if !unsupported.is_empty() {
            out.push_str(&format!(
                "Ignoring unsupported options: {}\n\n",
                unsupported.join(", ")
            ));
        }
        let deprecated = self.deprecated();
        if !deprecated.is_empty() {
            let lines: Vec<String> = deprecated
                .iter()
                .map(|(k, why)| format!("{k}: {why}"))
                .collect();
            out.push_str(&format!(
                "Ignoring deprecated options:\n\n{}\n\n",
                lines.join("\n\n")
            ));
        }
        out
    }
}

/// What reading one file needs.
pub(crate) struct Ctx<'a> {
    pub diag: Diag<'a>,
    pub working_dir: String,
    pub fs: &'a dyn Files,
    /// The process environment, then `.env`: interpolation and `KEY`-only entries.
    pub lookup: &'a dyn Fn(&str) -> Option<String>,
    /// The process environment alone: docker reads `KEY`-only lines of env files from it.
    pub process_env: &'a BTreeMap<String, String>,
    pub version: Option<String>,
    pub ignored: Vec<Ignored>,
}

impl Ctx<'_> {
    pub fn ignore(&mut self, key: &str, pos: Pos, kind: IgnoredKind) {
        let at = self.diag.loc(pos);
        self.ignored.push(Ignored {
            key: key.to_string(),
            at,
            kind,
        });
    }
}

/// The version docker assumes for a file without one.
const DEFAULT_VERSION: &str = "3.13";

/// Loads, interpolates, validates and merges `files` (in order; later files override).
pub fn load(files: &[SourceFile], opts: &Options, fs: &dyn Files) -> Result<Loaded, Errors> {
    if files.is_empty() {
        return Err(Error::new(None, "", "no files specified").into());
    }
    let names: Vec<String> = files.iter().map(|f| f.name.clone()).collect();
    let working_dir = opts.working_dir.to_string_lossy().into_owned();
    let mut diag = Diag::new(&names);
    let dotenv = read_dotenv(opts, fs, &working_dir, &mut diag);
    let lookup = |k: &str| opts.env.get(k).or_else(|| dotenv.get(k)).cloned();
    let mut cx = Ctx {
        diag,
        working_dir,
        fs,
        lookup: &lookup,
        process_env: &opts.env,
        version: None,
        ignored: Vec::new(),
    };
    let mut project: Option<Project> = None;
    let mut first_version: Option<(String, Option<String>)> = None;
    for (i, file) in files.iter().enumerate() {
        let index = u32::try_from(i).unwrap_or(u32::MAX);
        let Some(p) = load_file(&mut cx, file, index, &mut first_version) else {
            continue;
        };
        match &mut project {
            None => project = Some(p),
            Some(base) => merge::merge(base, p),
        }
    }
    let mut project = project.unwrap_or_default();
    project.version = first_version.and_then(|(_, written)| written);
    if cx.diag.errors.is_empty() {
        validate::depends_on(&mut cx, &mut project);
    }
    if !cx.diag.errors.is_empty() {
        return Err(Errors(cx.diag.errors));
    }
    Ok(Loaded {
        project,
        ignored: cx.ignored,
        warnings: cx.diag.warnings,
    })
}

fn read_dotenv(
    opts: &Options,
    fs: &dyn Files,
    working_dir: &str,
    diag: &mut Diag<'_>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if !opts.dotenv {
        return out;
    }
    let path = crate::syntax::abs_path(working_dir, ".env");
    let Ok(bytes) = fs.read(std::path::Path::new(&path)) else {
        return out;
    };
    for item in dotenvy::from_read_iter(&bytes[..]) {
        match item {
            Ok((k, v)) => {
                out.insert(k, v);
            }
            Err(e) => {
                diag.errors.push(Error::new(
                    Some(Location {
                        file: path.clone(),
                        line: 0,
                        column: 0,
                    }),
                    "",
                    format!("invalid .env file: {e}"),
                ));
                break;
            }
        }
    }
    out
}

/// One file to a project; `None` when it could not be read at all.
fn load_file(
    cx: &mut Ctx<'_>,
    file: &SourceFile,
    index: u32,
    first_version: &mut Option<(String, Option<String>)>,
) -> Option<Project> {
    let start = Pos {
        file: index,
        line: 1,
        col: 1,
    };
    let mut root = match yaml::parse(&file.text, index) {
        Ok(Some(root)) => root,
        Ok(None) => {
            cx.diag.err(
                start,
                "",
                "top-level object must be a mapping, got an empty file",
            );
            return None;
        }
        Err(e) => {
            cx.diag.err(e.pos, "", format!("yaml: {}", e.message));
            return None;
        }
    };
    let yaml::Kind::Map(entries) = &root.kind else {
        let got = root.describe();
        cx.diag.err(
            root.pos,
            "",
            format!("top-level object must be a mapping, got {got}"),
        );
        return None;
    };
    // The version is read before interpolation, as docker does.
    let mut written = None;
    let mut version_pos = start;
    if let Some(e) = entries.iter().find(|e| e.key == "version") {
        version_pos = e.value.pos;
        written = Some(cx.diag.string(&e.value, "version")?);
    }
    let version = match written.as_deref() {
        None | Some("") | Some("3") => DEFAULT_VERSION.to_string(),
        Some(v) => v.to_string(),
    };
    if !supported(&version) {
        cx.diag.err(
            version_pos,
            "version",
            format!(
                "unsupported Compose file version: {version} (stack deploy reads version 3.x files, or Compose Specification files without a version)"
            ),
        );
        return None;
    }
    match first_version {
        None => *first_version = Some((version.clone(), written.clone())),
        Some((first, _)) if *first != version => {
            let msg =
                format!("version mismatched between two composefiles : {first} and {version}");
            cx.diag.err(version_pos, "version", msg);
            return None;
        }
        Some(_) => {}
    }
    cx.version = Some(version);
    let lookup = cx.lookup;
    let before = cx.diag.errors.len();
    interp::interpolate(&mut root, "", lookup, &mut cx.diag);
    if cx.diag.errors.len() > before {
        // The values that failed would only repeat the error as type errors.
        return None;
    }
    let yaml::Kind::Map(entries) = &root.kind else {
        return None;
    };
    let mut p = Project::default();
    for e in entries {
        match e.key.as_str() {
            "version" => {}
            "services" => {
                for s in cx
                    .diag
                    .mapping_or_null(&e.value, "services")
                    .unwrap_or_default()
                {
                    if !valid_name(&s.key) {
                        cx.diag.err(
                            s.key_pos,
                            "services",
                            format!(
                                "invalid service name {:?}: use letters, digits, '.', '_' and '-'",
                                s.key
                            ),
                        );
                        continue;
                    }
                    let at = cx.diag.loc(s.key_pos);
                    let svc = service::service(cx, &s.key, &s.value, at);
                    p.services.insert(s.key.clone(), svc);
                }
            }
            "networks" => p.networks = top::networks(cx, &e.value),
            "volumes" => p.volumes = top::volumes(cx, &e.value),
            "secrets" => p.secrets = top::file_objects(cx, &e.value, "secret"),
            "configs" => p.configs = top::file_objects(cx, &e.value, "config"),
            k if k.starts_with("x-") => {}
            _ => cx.diag.unknown(e, ""),
        }
    }
    Some(p)
}

/// docker's schemas: 3.0 to 3.13.
fn supported(version: &str) -> bool {
    let Some(minor) = version.strip_prefix("3.") else {
        return false;
    };
    minor.parse::<u32>().is_ok_and(|m| m <= 13) && !minor.starts_with('+')
}

/// docker's schema pattern for service names: `^[a-zA-Z0-9._-]+$`.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}
