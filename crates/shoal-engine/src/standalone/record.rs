//! Standalone containers as the node's disk keeps them: one JSON document per container in
//! the engine's directory (`<data>/engine/containers/<ID>.json`), written whole to a temporary
//! file and renamed over the old one, so a crash leaves either version and never half of one.
//! The runtime keeps the container's process, filesystem and log; this keeps what only the
//! engine knows (its name, what was asked for, its restart bookkeeping).

use std::path::{Path, PathBuf};

use shoal_control::engine::ContainerCreate;
use shoal_types::Timestamp;

/// The format of the documents; a daemon refuses to load a newer one rather than drop what it
/// does not know.
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub version: u32,
    /// 64 hex digits; also the container's task ID with the runtime.
    pub id: String,
    /// Without Docker's leading `/`.
    pub name: String,
    pub created: Timestamp,
    pub create: ContainerCreate,
    /// Restarts by its policy since the user last started it.
    #[serde(default)]
    pub restart_count: u64,
    /// The user stopped it, so its policy does not start it again.
    #[serde(default)]
    pub manually_stopped: bool,
    /// The runtime holds it (prepared), so a start only starts it.
    #[serde(default)]
    pub prepared: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a container record: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: written by a newer shoal (format {found}, this one reads {VERSION})")]
    Newer { path: PathBuf, found: u32 },
}

pub struct Records {
    dir: PathBuf,
}

impl Records {
    pub fn new(dir: PathBuf) -> Self {
        Records { dir }
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Every record, and the files that could not be read (each skipped, never deleted: a
    /// newer daemon or a person may still want them).
    pub fn load(&self) -> (Vec<Record>, Vec<RecordError>) {
        let (mut ok, mut bad) = (Vec::new(), Vec::new());
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (ok, bad),
            Err(source) => {
                bad.push(RecordError::Io {
                    path: self.dir.clone(),
                    source,
                });
                return (ok, bad);
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            match read(&path) {
                Ok(r) => ok.push(r),
                Err(e) => bad.push(e),
            }
        }
        ok.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        (ok, bad)
    }

    pub fn save(&self, r: &Record) -> Result<(), RecordError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RecordError::Io { path, source }
        };
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let dest = self.path(&r.id);
        let tmp = self.dir.join(format!(".{}.json.tmp", r.id));
        let bytes = serde_json::to_vec_pretty(r).map_err(|source| RecordError::Corrupt {
            path: dest.clone(),
            source,
        })?;
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
            f.write_all(&bytes).map_err(io(&tmp))?;
            f.sync_all().map_err(io(&tmp))?;
        }
        std::fs::rename(&tmp, &dest).map_err(io(&dest))
    }

    pub fn delete(&self, id: &str) -> Result<(), RecordError> {
        let path = self.path(id);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(RecordError::Io { path, source }),
        }
    }
}

fn read(path: &Path) -> Result<Record, RecordError> {
    let bytes = std::fs::read(path).map_err(|source| RecordError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    #[derive(serde::Deserialize)]
    struct Head {
        version: u32,
    }
    let corrupt = |source| RecordError::Corrupt {
        path: path.to_path_buf(),
        source,
    };
    let head: Head = serde_json::from_slice(&bytes).map_err(corrupt)?;
    if head.version > VERSION {
        return Err(RecordError::Newer {
            path: path.to_path_buf(),
            found: head.version,
        });
    }
    serde_json::from_slice(&bytes).map_err(corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, created: i64) -> Record {
        let mut create = ContainerCreate::default();
        create.spec.image = "busybox".into();
        create.auto_remove = true;
        Record {
            version: VERSION,
            id: id.into(),
            name: format!("n{created}"),
            created: Timestamp(created),
            create,
            restart_count: 2,
            manually_stopped: true,
            prepared: true,
        }
    }

    #[test]
    fn saved_records_load_back_oldest_first_and_deleted_ones_do_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rs = Records::new(dir.path().join("containers"));
        assert!(rs.load().0.is_empty(), "no directory yet is no records");
        let (a, b) = (record(&"a".repeat(64), 20), record(&"b".repeat(64), 10));
        rs.save(&a).expect("save a");
        rs.save(&b).expect("save b");
        let mut a2 = a.clone();
        a2.name = "renamed".into();
        rs.save(&a2).expect("overwrite a");
        let (loaded, bad) = rs.load();
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(loaded, vec![b.clone(), a2]);
        rs.delete(&a.id).expect("delete");
        rs.delete(&a.id).expect("deleting twice is fine");
        assert_eq!(rs.load().0, vec![b]);
    }

    #[test]
    fn unreadable_and_newer_records_are_reported_and_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rs = Records::new(dir.path().to_path_buf());
        rs.save(&record(&"c".repeat(64), 1)).expect("save");
        std::fs::write(dir.path().join("junk.json"), b"{not json").expect("write");
        let mut newer = serde_json::to_value(record(&"d".repeat(64), 2)).expect("json");
        newer["version"] = serde_json::json!(VERSION + 1);
        std::fs::write(
            dir.path().join(format!("{}.json", "d".repeat(64))),
            serde_json::to_vec(&newer).expect("bytes"),
        )
        .expect("write");
        let (ok, bad) = rs.load();
        assert_eq!(ok.len(), 1);
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert!(
            bad.iter()
                .any(|e| matches!(e, RecordError::Newer { found, .. } if *found == VERSION + 1))
        );
        assert!(bad.iter().any(|e| e.to_string().contains("junk.json")));
        assert!(dir.path().join("junk.json").exists(), "kept, not deleted");
    }
}
