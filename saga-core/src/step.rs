//! Steps in plain Rust: the [`Step`] and [`Compensable`] traits, the context a handler gets,
//! and the type-erased [`StepHandler`] that the engines call.

use std::future::Future;
use std::pin::Pin;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{StepError, StepFailure};
use crate::idempotency::{Action, IdempotencyKey};

/// A boxed, `Send` future, as returned by [`StepHandler`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One step of a saga: an action on some service that commits locally.
///
/// # The contract
///
/// - **Input.** `Input` is deserialised from the *saga document*: the saga's input object with
///   a `steps` object added, which holds the output of every step that has succeeded so far,
///   under the step's name. A step that needs an earlier output declares it as a field:
///
///   ```
///   # use serde::Deserialize;
///   #[derive(Deserialize)]
///   struct ShipInput {
///       order_id: String,            // from the saga input
///       steps: ShipNeeds,            // earlier outputs
///   }
///   #[derive(Deserialize)]
///   struct ShipNeeds {
///       reserve_stock: Reservation,  // the output of the step named `reserve_stock`
///   }
///   # #[derive(Deserialize)] struct Reservation { warehouse: String }
///   ```
///
///   Unknown fields are ignored, so most steps simply take the saga's input type. This is
///   exactly the JSON that Step Functions hands the participant (`ResultPath: $.steps.<name>`),
///   so a step behaves the same on both engines.
/// - **Output.** What `execute` returns is stored under `steps.<name>` and handed to later
///   steps and to this step's compensation.
/// - **Idempotency.** An invocation may be delivered more than once (redelivery, retry after
///   a timeout, executor crash). The engines put an [`IdempotencyStore`](crate::IdempotencyStore)
///   in front of every handler, keyed by [`StepContext::idempotency_key`], so a completed
///   invocation is not run again; but a handler that timed out or crashed half-way *is* run
///   again, so effects on other systems should carry the key (as a request id, a conditional
///   write) where they can.
/// - **Errors.** Return [`StepError::retryable`] for transient faults (retried per the step's
///   policy) and [`StepError::terminal`] for business rejections (compensation starts). A panic
///   counts as a retryable failure of that invocation.
///
/// # Example
///
/// ```
/// use saga_core::{Step, StepContext, StepError};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Deserialize)]
/// struct Order { order_id: String, amount_cents: u64 }
///
/// #[derive(Serialize, Deserialize)]
/// struct Charge { charge_id: String }
///
/// struct ChargePayment;
///
/// impl Step for ChargePayment {
///     type Input = Order;
///     type Output = Charge;
///
///     async fn execute(&self, cx: &StepContext<'_>, order: Order) -> Result<Charge, StepError> {
///         if order.amount_cents > 100_000 {
///             return Err(StepError::terminal("PaymentDeclined", "over the card limit"));
///         }
///         // Use the idempotency key as the payment provider's request id.
///         Ok(Charge { charge_id: format!("ch-{}", cx.idempotency_key()) })
///     }
/// }
/// ```
pub trait Step: Send + Sync + 'static {
    /// What the step reads from the saga document.
    type Input: DeserializeOwned + Send;
    /// What the step produces; later steps and the compensation can read it.
    type Output: Serialize + DeserializeOwned + Send;

    /// Runs the step's action.
    fn execute(
        &self,
        cx: &StepContext<'_>,
        input: Self::Input,
    ) -> impl Future<Output = Result<Self::Output, StepError>> + Send;
}

/// A step that can be undone: every step before the pivot.
///
/// # The contract
///
/// `compensate` semantically undoes `execute`. It is called:
///
/// - for every step that succeeded, in reverse order, when a later step fails for good;
/// - for the failed step itself, first, because a failure or a timeout does not prove that
///   nothing happened. `output` is then `None`, and [`StepContext::error`] says why the step
///   failed.
///
/// So a compensation must be **idempotent** and a **no-op when there is nothing to undo**, and
/// should look the effect up by the step's idempotency key ([`StepContext::execute_key`], the
/// request id the forward action gave its service), not only by its `output`: a step that
/// timed out after applying its effect has no output. It is retried on its own long policy; if
/// it still fails, the saga ends as `CompensationFailed` and needs an operator. Once a
/// compensation has started, no execute of its step runs again (the semantic lock), so what
/// it undid stays undone.
///
/// ```
/// use saga_core::{Compensable, Step, StepContext, StepError};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Deserialize)] struct Order { sku: String }
/// # #[derive(Serialize, Deserialize)] struct Reservation { id: String }
/// struct ReserveStock;
/// # impl Step for ReserveStock {
/// #     type Input = Order; type Output = Reservation;
/// #     async fn execute(&self, _: &StepContext<'_>, o: Order) -> Result<Reservation, StepError> {
/// #         Ok(Reservation { id: o.sku })
/// #     }
/// # }
/// impl Compensable for ReserveStock {
///     async fn compensate(
///         &self,
///         _cx: &StepContext<'_>,
///         _order: Order,
///         reservation: Option<Reservation>,
///     ) -> Result<(), StepError> {
///         if let Some(reservation) = reservation {
///             // release reservation.id; releasing twice is harmless
/// #           let _ = reservation.id;
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait Compensable: Step {
    /// Undoes the step's effect, if there is any.
    fn compensate(
        &self,
        cx: &StepContext<'_>,
        input: Self::Input,
        output: Option<Self::Output>,
    ) -> impl Future<Output = Result<(), StepError>> + Send;
}

/// Everything an invocation knows about itself besides its input.
#[derive(Debug, Clone, Copy)]
pub struct StepContext<'a> {
    saga: &'a str,
    saga_id: &'a str,
    step: &'a str,
    action: Action,
    attempt: u32,
    key: &'a IdempotencyKey,
    error: Option<&'a StepFailure>,
    document: &'a Value,
    /// For a compensation: the output its step's execute stored, from the idempotency store.
    executed: Option<&'a Value>,
}

impl<'a> StepContext<'a> {
    /// A context for one invocation (engines build these; tests may too).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        saga: &'a str,
        saga_id: &'a str,
        step: &'a str,
        action: Action,
        attempt: u32,
        key: &'a IdempotencyKey,
        error: Option<&'a StepFailure>,
        document: &'a Value,
    ) -> Self {
        Self {
            saga,
            saga_id,
            step,
            action,
            attempt,
            key,
            error,
            document,
            executed: None,
        }
    }

    /// For a compensation: the output its step's execute stored when it succeeded (the
    /// idempotency store keeps it), which [`output`](Self::output) of the step itself answers
    /// when the saga document lacks it (an answer lost on the step's last attempt).
    pub fn with_executed(mut self, executed: Option<&'a Value>) -> Self {
        self.executed = executed;
        self
    }

    /// The saga's name.
    pub fn saga(&self) -> &'a str {
        self.saga
    }

    /// This saga instance's id.
    pub fn saga_id(&self) -> &'a str {
        self.saga_id
    }

    /// The step's name.
    pub fn step(&self) -> &'a str {
        self.step
    }

    /// Execute or compensate.
    pub fn action(&self) -> Action {
        self.action
    }

    /// 1 for the first attempt, 2 for the first retry, ...
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// `{saga_id}/{step}/{action}`: the same for every retry and redelivery.
    pub fn idempotency_key(&self) -> &'a IdempotencyKey {
        self.key
    }

    /// The key of this step's forward action, `{saga_id}/{step}/execute`: in a compensation,
    /// what to undo by. A step that failed or timed out may have applied its effect without
    /// returning an output, so a compensation that looks its effect up by this key (the key
    /// the forward action gave the service as its request id) undoes it all the same.
    pub fn execute_key(&self) -> IdempotencyKey {
        IdempotencyKey::new(self.saga_id, self.step, Action::Execute)
    }

    /// For a compensation: the failure that made the saga compensate.
    pub fn error(&self) -> Option<&'a StepFailure> {
        self.error
    }

    /// The whole saga document (input plus `steps`), for handlers that want raw JSON.
    pub fn document(&self) -> &'a Value {
        self.document
    }

    /// The output of the earlier step `step`, deserialised.
    pub fn output<T: DeserializeOwned>(&self, step: &str) -> Result<T, StepError> {
        let value = self.raw_output(step).ok_or_else(|| {
            StepError::terminal("MissingOutput", format!("step `{step}` has no output yet"))
        })?;
        T::deserialize(value).map_err(StepError::from)
    }

    fn raw_output(&self, step: &str) -> Option<&'a Value> {
        let documented = self
            .document
            .get(crate::protocol::DOCUMENT_STEPS)
            .and_then(|steps| steps.get(step));
        documented.or(self.executed.filter(|_| step == self.step))
    }
}

/// A step with its types erased: what the engines call. Built from a [`Step`] or
/// [`Compensable`] by the saga builder; implement it directly only to bypass serde.
pub trait StepHandler: Send + Sync + std::fmt::Debug {
    /// Runs the action on the document in `cx` and returns the output as JSON.
    fn execute<'a>(&'a self, cx: &'a StepContext<'a>) -> BoxFuture<'a, Result<Value, StepError>>;

    /// Runs the compensation on the document in `cx` (whose `steps.<name>`, or else the
    /// output the idempotency store kept, is the step's own output, if it had one).
    fn compensate<'a>(&'a self, cx: &'a StepContext<'a>) -> BoxFuture<'a, Result<(), StepError>>;

    /// Whether the action can read its input from `document`, without running it: what
    /// [`Saga::check_input`](crate::Saga::check_input) asks the first step before a saga
    /// starts. The typed handlers try to decode their input; the default accepts anything.
    fn check_input(&self, document: &Value) -> Result<(), StepError> {
        let _ = document;
        Ok(())
    }
}

fn decode<T: DeserializeOwned>(value: &Value, what: &str) -> Result<T, StepError> {
    T::deserialize(value).map_err(|e| {
        StepError::terminal(
            crate::protocol::INVALID_INPUT_CODE,
            format!("cannot read the {what}: {e}"),
        )
    })
}

async fn execute_typed<S: Step>(step: &S, cx: &StepContext<'_>) -> Result<Value, StepError> {
    let input = decode(cx.document(), "step input")?;
    let output = step.execute(cx, input).await?;
    serde_json::to_value(output).map_err(|e| {
        StepError::terminal(
            "InvalidOutput",
            format!("cannot serialise the step output: {e}"),
        )
    })
}

/// A pivot or retriable step: no compensation.
pub(crate) struct ForwardOnly<S>(pub(crate) S);

/// A compensable step.
pub(crate) struct WithCompensation<S>(pub(crate) S);

impl<S> std::fmt::Debug for ForwardOnly<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ForwardOnly<{}>", std::any::type_name::<S>())
    }
}

impl<S> std::fmt::Debug for WithCompensation<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WithCompensation<{}>", std::any::type_name::<S>())
    }
}

impl<S: Step> StepHandler for ForwardOnly<S> {
    fn execute<'a>(&'a self, cx: &'a StepContext<'a>) -> BoxFuture<'a, Result<Value, StepError>> {
        Box::pin(execute_typed(&self.0, cx))
    }

    fn check_input(&self, document: &Value) -> Result<(), StepError> {
        decode::<S::Input>(document, "step input").map(drop)
    }

    fn compensate<'a>(&'a self, cx: &'a StepContext<'a>) -> BoxFuture<'a, Result<(), StepError>> {
        let step = cx.step();
        Box::pin(async move {
            Err(StepError::terminal(
                "NoCompensation",
                format!("step `{step}` is not compensable"),
            ))
        })
    }
}

impl<S: Compensable> StepHandler for WithCompensation<S> {
    fn execute<'a>(&'a self, cx: &'a StepContext<'a>) -> BoxFuture<'a, Result<Value, StepError>> {
        Box::pin(execute_typed(&self.0, cx))
    }

    fn check_input(&self, document: &Value) -> Result<(), StepError> {
        decode::<S::Input>(document, "step input").map(drop)
    }

    fn compensate<'a>(&'a self, cx: &'a StepContext<'a>) -> BoxFuture<'a, Result<(), StepError>> {
        Box::pin(async move {
            let input = decode(cx.document(), "compensation input")?;
            let output = match cx.raw_output(cx.step()) {
                Some(value) => Some(decode(value, "step's own output")?),
                None => None,
            };
            self.0.compensate(cx, input, output).await
        })
    }
}

/// The handler the engines call for a pivot or retriable step (no compensation). The builder
/// and the `#[saga]` macro wrap steps with this.
pub fn forward_handler<S: Step>(step: S) -> std::sync::Arc<dyn StepHandler> {
    std::sync::Arc::new(ForwardOnly(step))
}

/// The handler the engines call for a compensable step.
pub fn compensable_handler<S: Compensable>(step: S) -> std::sync::Arc<dyn StepHandler> {
    std::sync::Arc::new(WithCompensation(step))
}
