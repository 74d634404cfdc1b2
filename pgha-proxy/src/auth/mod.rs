//! Client authentication (being written).
