//! The node configuration file (TOML), for every role.

use std::path::Path;

use tiercel_cluster::config::{NodeConfig, Role};

/// Properties: a file is either a configuration or one line of error (naming the key, when
/// one key is at fault); a configuration written back as TOML loads as the same
/// configuration.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz.toml");
    for role in [Role::Edge, Role::Shield] {
        match NodeConfig::from_file_text(role, text, path) {
            Ok(cfg) => {
                let written = cfg.to_toml_with_secrets();
                let again = NodeConfig::from_file_text(role, &written, path)
                    .unwrap_or_else(|e| panic!("written config does not load: {e}\n{written}"));
                assert_eq!(again, cfg, "{written}");
            }
            Err(e) => {
                let line = e.to_string();
                assert!(!line.contains('\n'), "more than one line: {line:?}");
            }
        }
    }
}
