//! `tiercelctl`: the purge-service client for CI and operators.
