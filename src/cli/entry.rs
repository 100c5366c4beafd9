//! What the command line knows of each saga: its declaration, its handlers, an example input
//! and its input's schema.

use saga_core::{Saga, SagaDefinition};
use serde_json::Value;

/// A saga the command line knows: its declaration, and its handlers when it can run here.
#[derive(Debug, Clone)]
pub struct Entry {
    pub(super) definition: SagaDefinition,
    pub(super) saga: Option<Saga>,
    pub(super) example_input: Option<Value>,
    pub(super) input_schema: Option<Value>,
    pub(super) older: Vec<Saga>,
}

impl From<Saga> for Entry {
    fn from(saga: Saga) -> Self {
        Self {
            definition: saga.definition().clone(),
            saga: Some(saga),
            example_input: None,
            input_schema: None,
            older: Vec::new(),
        }
    }
}

impl From<SagaDefinition> for Entry {
    fn from(definition: SagaDefinition) -> Self {
        Self {
            definition,
            saga: None,
            example_input: None,
            input_schema: None,
            older: Vec::new(),
        }
    }
}

impl Entry {
    /// The input `run` and `start` use when `--input` is not given.
    pub fn example_input(mut self, input: impl serde::Serialize) -> Self {
        self.example_input = Some(serde_json::to_value(input).expect("inputs serialise to JSON"));
        self
    }

    /// The handlers of an older version of this saga (`#[saga(version = N)]` with a smaller
    /// `N`): `worker` answers its sagas still in flight with them, each command with its own
    /// version's handlers, and `deploy` counts them among the versions this program can finish.
    ///
    /// # Panics
    ///
    /// When `saga` is another saga than this entry's, or the same version.
    pub fn older_version(mut self, saga: Saga) -> Self {
        assert_eq!(
            saga.name(),
            self.definition.name,
            "`older_version` takes an older version of saga `{}`, not saga `{}`",
            self.definition.name,
            saga.name()
        );
        assert_ne!(
            saga.definition().version,
            self.definition.version,
            "`older_version` of saga `{}` takes another version than {}",
            self.definition.name,
            self.definition.version
        );
        self.older.push(saga);
        self
    }

    /// The JSON Schema (draft 4) of the saga's input, which `template --front-door` has API
    /// Gateway validate request bodies with: `saga::schema::input_schema::<Input>()` (feature
    /// `schema`).
    pub fn input_schema(mut self, schema: Value) -> Self {
        self.input_schema = Some(schema);
        self
    }
}
