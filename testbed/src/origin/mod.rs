//! The demo origin.
