//! The sagas a participant answers, by name and version: which handlers answer a command, and
//! why none does. A worker given several versions of a saga answers each command with the
//! version that sent it, so a saga finishes on the version it started on; a deploy checks
//! with the same lookup that the participants it ships answer every saga in flight.

use std::collections::BTreeMap;
use std::sync::Arc;

#[cfg(feature = "sqs")]
use saga_core::Action;
#[cfg(feature = "sqs")]
use saga_core::protocol::Sent;
use saga_core::{Saga, SagaDefinition};

/// What declares a saga: its handlers, or its declaration alone.
pub(crate) trait Declared {
    fn declaration(&self) -> &SagaDefinition;
}

impl Declared for Arc<Saga> {
    fn declaration(&self) -> &SagaDefinition {
        self.definition()
    }
}

impl Declared for SagaDefinition {
    fn declaration(&self) -> &SagaDefinition {
        self
    }
}

/// Sagas by name, then by the version of their declaration.
#[derive(Debug, Clone)]
pub(crate) struct Handlers<T>(BTreeMap<String, BTreeMap<u32, T>>);

impl<T> Default for Handlers<T> {
    fn default() -> Self {
        Self(BTreeMap::new())
    }
}

impl<T: Declared> Handlers<T> {
    /// Adds `saga`, replacing the one of the same name and version.
    pub(crate) fn insert(&mut self, saga: T) {
        let declaration = saga.declaration();
        let (name, version) = (declaration.name.clone(), declaration.version);
        self.0.entry(name).or_default().insert(version, saga);
    }

    /// The names of the sagas, once each.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Every saga, each version.
    #[cfg(feature = "sqs")]
    pub(crate) fn all(&self) -> impl Iterator<Item = &T> {
        self.0.values().flat_map(BTreeMap::values)
    }

    /// The saga that answers a command of `saga` sent by `version`'s state machine, with the
    /// index of `step`; else why none does. A command that names no version (from a state
    /// machine generated before commands did) is answered by the only version there is.
    pub(crate) fn route(
        &self,
        saga: &str,
        version: Option<u32>,
        step: &str,
    ) -> Result<(&T, usize), String> {
        let versions = self
            .0
            .get(saga)
            .ok_or_else(|| format!("unknown saga `{saga}`"))?;
        let have = || {
            let list: Vec<String> = versions.keys().map(u32::to_string).collect();
            list.join(", ")
        };
        let handlers = match version {
            Some(version) => versions.get(&version).ok_or_else(|| {
                format!(
                    "no handlers for version {version} of saga `{saga}` here (this participant \
                     has version {}): run a worker built with version {version}'s declaration",
                    have()
                )
            })?,
            None if versions.len() == 1 => versions.values().next().expect("one version"),
            None => {
                return Err(format!(
                    "the command names no version of saga `{saga}`, and this participant has \
                     versions {}",
                    have()
                ));
            }
        };
        let (index, _) = handlers.declaration().step(step).ok_or_else(|| {
            format!(
                "saga `{saga}` version {} has no step `{step}`",
                handlers.declaration().version
            )
        })?;
        Ok((handlers, index))
    }

    /// Why `sent` would find no handler here, if it would not: as [`route`](Self::route)
    /// decides, and a compensation of a step that has none.
    #[cfg(feature = "sqs")]
    pub(crate) fn unanswered(&self, sent: &Sent) -> Option<String> {
        match self.route(&sent.saga, sent.saga_version, &sent.step) {
            Err(reason) => Some(reason),
            Ok((handlers, index)) => {
                let step = &handlers.declaration().steps[index];
                (sent.action == Action::Compensate && !step.is_compensable()).then(|| {
                    format!(
                        "step `{}` of saga `{}` version {} has no compensation",
                        step.name,
                        sent.saga,
                        handlers.declaration().version
                    )
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use saga_core::{Participant, StepDefinition, StepKind};

    use super::*;

    fn saga(version: u32, steps: &[&str]) -> SagaDefinition {
        SagaDefinition {
            name: "order".into(),
            version,
            steps: steps
                .iter()
                .map(|s| StepDefinition::new(*s, StepKind::Compensable, Participant::queue("q")))
                .collect(),
        }
    }

    fn both() -> Handlers<SagaDefinition> {
        let mut handlers = Handlers::default();
        handlers.insert(saga(1, &["reserve"]));
        handlers.insert(saga(2, &["reserve", "ship"]));
        handlers
    }

    #[test]
    fn each_command_finds_the_version_that_sent_it() {
        let handlers = both();
        let (v1, index) = handlers.route("order", Some(1), "reserve").unwrap();
        assert_eq!((v1.version, index), (1, 0));
        let (v2, index) = handlers.route("order", Some(2), "ship").unwrap();
        assert_eq!((v2.version, index), (2, 1));
        assert_eq!(
            handlers.route("order", Some(1), "ship").unwrap_err(),
            "saga `order` version 1 has no step `ship`"
        );
        assert_eq!(handlers.names().collect::<Vec<_>>(), ["order"]);
        assert_eq!(handlers.all().count(), 2);
    }

    #[test]
    fn a_version_it_does_not_have_says_which_it_has() {
        let handlers = both();
        assert_eq!(
            handlers.route("order", Some(3), "reserve").unwrap_err(),
            "no handlers for version 3 of saga `order` here (this participant has version 1, \
             2): run a worker built with version 3's declaration"
        );
        assert_eq!(
            handlers.route("order", None, "reserve").unwrap_err(),
            "the command names no version of saga `order`, and this participant has versions \
             1, 2"
        );
        assert_eq!(
            handlers.route("trip", Some(1), "reserve").unwrap_err(),
            "unknown saga `trip`"
        );
        let mut one = Handlers::default();
        one.insert(saga(4, &["reserve"]));
        assert_eq!(one.route("order", None, "reserve").unwrap().0.version, 4);
    }

    #[test]
    #[cfg(feature = "sqs")]
    fn a_compensation_of_a_step_without_one_is_unanswered() {
        let mut handlers = Handlers::default();
        let mut pivot = saga(1, &["reserve"]);
        pivot.steps[0].kind = StepKind::Pivot;
        handlers.insert(pivot);
        let sent = |action| Sent {
            saga: "order".into(),
            saga_version: Some(1),
            step: "reserve".into(),
            action,
        };
        assert_eq!(handlers.unanswered(&sent(Action::Execute)), None);
        assert_eq!(
            handlers.unanswered(&sent(Action::Compensate)).unwrap(),
            "step `reserve` of saga `order` version 1 has no compensation"
        );
    }
}
