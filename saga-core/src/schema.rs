//! The JSON Schema of a saga's input, generated from its Rust type with `schemars`, in the draft
//! API Gateway validates request bodies with (draft 4): what the template's front door refuses
//! a malformed request with before anything runs.
//!
//! ```
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! struct Trip {
//!     trip_id: String,
//!     nights: u8,
//! }
//!
//! let schema = saga_core::schema::input_schema::<Trip>();
//! assert_eq!(schema["$schema"], "http://json-schema.org/draft-04/schema#");
//! assert_eq!(schema["properties"]["trip_id"]["type"], "string");
//! assert_eq!(schema["required"], serde_json::json!(["trip_id", "nights"]));
//! ```

pub use schemars::JsonSchema;
use serde_json::Value;

/// The draft-4 JSON Schema of `T`, the type a saga's first step reads its input as.
pub fn input_schema<T: JsonSchema + ?Sized>() -> Value {
    let schema = schemars::generate::SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<T>();
    crate::cloudformation::draft4(schema.to_value())
}
