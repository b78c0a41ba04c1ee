//! The daemon configuration file (TOML) and its validation.
