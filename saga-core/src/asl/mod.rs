//! Amazon States Language: a typed model of the subset we emit, and the generator that turns a
//! [`SagaDefinition`](crate::SagaDefinition) into a Standard-workflow state machine.

mod generate;
mod model;

pub use generate::{
    COMMAND_VERSION, COMPENSATED_STATE, COMPENSATION_FAILED_EVENT, ERROR_COMPENSATED,
    ERROR_COMPENSATION_FAILED, ERROR_RETRYABLE, ERROR_TERMINAL, ERROR_TIMEOUT, EVENT_BUS_KEY,
    EVENTS_PUT, LAMBDA_CALLBACK, SQS_CALLBACK, TRACEPARENT_ATTRIBUTE, compensate_state,
    compensation_failed_state, generate, report_state, saga_span_id, stuck_state, substitution_key,
    substitutions, successors, trace_id, traceparent,
};
pub use model::{
    Catcher, FailState, ResultPath, Retrier, State, StateMachine, States, TaskState, Transition,
};
