//! Analysis of a saga from its definition: what it costs on Step Functions, and whether it fits
//! Step Functions' limits.

mod cost;
mod limits;
pub mod payload;

pub use cost::{Cost, PathCost, PathEnd, STANDARD_PRICE_PER_TRANSITION_USD};
pub use limits::{LimitError, Limits, MAX_DEFINITION_BYTES, MAX_HISTORY_EVENTS, check};
pub use payload::{MAX_PAYLOAD_BYTES, check_payload, payload_size};
