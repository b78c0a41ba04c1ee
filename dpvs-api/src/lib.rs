//! Control protocol types.
