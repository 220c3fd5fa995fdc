//! Node configuration: schema, loading (flags > TIERCEL_* env > TOML > defaults), validation.
