//! Every fuzz target on stable: each file of its seed corpus, then arbitrary inputs from
//! proptest (raw bytes, and bytes built from the target's own seeds, which reach deeper than
//! noise does).

use std::path::PathBuf;

use proptest::prelude::*;
use tiercel_fuzz::TARGETS;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display())))
        .collect()
}

fn check(target: &str) -> fn(&[u8]) {
    TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, f)| *f)
        .unwrap_or_else(|| panic!("no target {target}"))
}

#[test]
fn every_target_has_a_seed_corpus_and_passes_it() {
    for (name, check) in TARGETS {
        let seeds = corpus(name);
        assert!(seeds.len() >= 3, "{name}: only {} seeds", seeds.len());
        for seed in seeds {
            check(&seed);
        }
    }
}

/// A seed with a few bytes replaced, inserted or cut: mutations like the fuzzer's own.
fn mutated(target: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let seeds = corpus(target);
    (
        0..seeds.len(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 0..6),
    )
        .prop_map(move |(i, edits)| {
            let mut s = seeds[i].clone();
            for (at, byte, op) in edits {
                let at = at.index(s.len() + 1);
                match op {
                    0 if at < s.len() => s[at] = byte,
                    1 => s.insert(at, byte),
                    _ if at < s.len() => {
                        s.remove(at);
                    }
                    _ => s.push(byte),
                }
            }
            s
        })
}

macro_rules! target_props {
    ($($name:ident),* $(,)?) => {
        mod raw {
            use super::*;
            proptest! {
                #![proptest_config(ProptestConfig::with_cases(256))]
                $(
                    #[test]
                    fn $name(data in prop::collection::vec(any::<u8>(), 0..512)) {
                        check(stringify!($name))(&data);
                    }
                )*
            }
        }
        mod from_seeds {
            use super::*;
            proptest! {
                #![proptest_config(ProptestConfig::with_cases(512))]
                $(
                    #[test]
                    fn $name(data in mutated(stringify!($name))) {
                        check(stringify!($name))(&data);
                    }
                )*
            }
        }
        #[test]
        fn every_target_has_properties_here() {
            let here = [$(stringify!($name)),*];
            for (name, _) in TARGETS {
                assert!(here.contains(name), "{name} has no proptest");
            }
        }
    };
}

target_props!(
    cache_control,
    conditionals,
    config_file,
    http_date,
    origin_response,
    purge_api,
    purge_wire,
    range,
    request_head,
    request_target,
    storage_entry,
    structured_fields,
);

/// A libFuzzer target added without its stable twin in `TARGETS` would only ever run on
/// nightly: each file under `libfuzzer/fuzz_targets/` names a target this suite checks.
#[test]
fn every_libfuzzer_target_is_checked_on_stable() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("libfuzzer/fuzz_targets");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        assert!(
            TARGETS.iter().any(|(t, _)| *t == name),
            "{} has no stable twin in TARGETS",
            path.display()
        );
        seen += 1;
    }
    assert_eq!(
        seen,
        TARGETS.len(),
        "one libFuzzer target per entry of TARGETS"
    );
}
