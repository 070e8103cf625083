//! The EventBridge event-pattern engine: parse and validate, compile many patterns into one
//! matcher, match event bytes. It uses only std and serde_json: no AWS crates, no async
//! runtime, no I/O.
