//! Serde helper for `f64` fields that may be `NaN`: `NaN` is written as `null` and `null` is
//! read back as `NaN`, so values survive a JSON round trip (JSON has no NaN).
//!
//! Use it with `#[serde(with = "ds2f_metrics::serde_nan")]` on an `f64` field. Infinities are
//! also written as `null` by JSON serializers and would come back as `NaN`; this crate never
//! produces them.

use serde::{Deserialize, Deserializer, Serializer};

/// Serializes `NaN` as `None` (JSON `null`), any other value as `Some(value)`.
pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    if value.is_nan() {
        serializer.serialize_none()
    } else {
        serializer.serialize_some(value)
    }
}

/// Deserializes `None` (JSON `null`) as `NaN`, `Some(value)` as `value`.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
}
