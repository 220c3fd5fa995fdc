//! The follower's state file: applied index, rule index and services, written atomically.
//!
//! Objects on disk survive a restart, so the purges that invalidated them must too: a node that
//! forgot a purge would serve what it purged. The file is replaced as a whole (write a temporary
//! file, fsync it, rename it over the old one, fsync the directory), so after a crash it holds
//! either the old or the new state, never a mix. JSON keeps it inspectable by operators.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::config::FollowerError;
use super::machine::FollowerState;
use crate::purge::PurgeIndex;
use crate::purge::wire::ServiceRecord;

/// File name inside the state directory.
pub const STATE_FILE: &str = "purge-follower.json";
const FORMAT: u32 = 1;

#[derive(Serialize)]
struct OnDiskRef<'a> {
    format: u32,
    applied: u64,
    services: Vec<&'a ServiceRecord>,
    index: &'a PurgeIndex,
}

#[derive(Deserialize)]
struct OnDisk {
    format: u32,
    applied: u64,
    #[serde(default)]
    services: Vec<ServiceRecord>,
    #[serde(default)]
    index: PurgeIndex,
}

/// The state file's path in `dir`.
pub fn state_path(dir: &Path) -> PathBuf {
    dir.join(STATE_FILE)
}

/// Serialises the state as it is now.
pub fn encode(state: &FollowerState) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&OnDiskRef {
        format: FORMAT,
        applied: state.applied,
        services: state.services.values().collect(),
        index: &state.index,
    })
}

/// Loads the state from `dir`; `None` when there is no state file yet.
pub fn load(dir: &Path) -> Result<Option<FollowerState>, FollowerError> {
    let path = state_path(dir);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(FollowerError::StateRead { path, source }),
    };
    let d: OnDisk =
        serde_json::from_slice(&bytes).map_err(|source| FollowerError::StateCorrupt {
            path: path.clone(),
            source,
        })?;
    if d.format != FORMAT {
        let source = serde::de::Error::custom(format!("unknown format {}", d.format));
        return Err(FollowerError::StateCorrupt { path, source });
    }
    Ok(Some(FollowerState {
        applied: d.applied,
        index: d.index,
        services: d
            .services
            .into_iter()
            .map(|s| (s.name.clone(), s))
            .collect(),
    }))
}

/// Creates the directory if needed and checks that it can be written, so a misconfigured
/// `state_dir` fails at start rather than at the first purge.
pub fn prepare(dir: &Path) -> Result<(), FollowerError> {
    let err = |source| FollowerError::StateWrite {
        path: dir.to_path_buf(),
        source,
    };
    fs::create_dir_all(dir).map_err(err)?;
    let probe = dir.join(".purge-follower.probe");
    fs::write(&probe, b"").map_err(err)?;
    fs::remove_file(&probe).map_err(err)
}

/// Replaces the state file with `bytes` atomically and durably.
pub fn write_atomic(dir: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!("{STATE_FILE}.tmp"));
    {
        // Owner only: the services it holds carry their TLS private keys.
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, state_path(dir))?;
    // The rename is durable only once the directory entry is.
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::purge::{ObjectRef, PurgeRule, PurgeTarget, PurgeVerdict};

    #[test]
    fn round_trips_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_none());
        let mut st = FollowerState {
            applied: 77,
            ..Default::default()
        };
        st.index.apply(&PurgeRule {
            service: None,
            target: PurgeTarget::Prefix("h/a".into()),
            soft: false,
            index: 70,
        });
        let svc = ServiceRecord {
            name: "s".into(),
            version: 3,
            changed: None,
            doc: serde_json::json!({"hosts": ["s.example"]}),
        };
        st.services.insert("s".into(), svc.clone());
        prepare(dir.path()).unwrap();
        write_atomic(dir.path(), &encode(&st).unwrap()).unwrap();
        let back = load(dir.path()).unwrap().unwrap();
        assert_eq!(back.applied, 77);
        assert_eq!(back.services.get("s"), Some(&svc));
        let obj = ObjectRef {
            service: "",
            url: "h/ab",
            host: "h",
            tags: &[],
            stored_index: 69,
        };
        assert_eq!(back.index.check(&obj), PurgeVerdict::HardPurged);
        assert!(!dir.path().join(format!("{STATE_FILE}.tmp")).exists());
    }

    #[test]
    fn corrupt_or_foreign_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_path(dir.path());
        fs::write(&path, b"{\"format\":1,").unwrap();
        let e = load(dir.path()).unwrap_err();
        assert!(matches!(&e, FollowerError::StateCorrupt { path: p, .. } if *p == path));
        assert!(e.to_string().contains(STATE_FILE), "{e}");
        fs::write(&path, br#"{"format":9,"applied":1}"#).unwrap();
        let e = load(dir.path()).unwrap_err();
        assert!(e.to_string().contains("unknown format 9"), "{e}");
    }

    #[test]
    fn prepare_fails_on_a_file_in_the_way() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("f");
        fs::write(&blocker, b"x").unwrap();
        assert!(matches!(
            prepare(&blocker.join("sub")),
            Err(FollowerError::StateWrite { .. })
        ));
    }
}
