//! The way forward: a step from its start (or its skip) to its success or its failure for
//! good, and a parallel group's branches run at once.
//!
//! When a step fails for good, no branch of its group starts another step, and the group ends
//! at once: the compensation starts while the siblings' invocations are still in flight, as a
//! `Parallel` state's `Catch` does on Step Functions, whose stopped branches do not stop their
//! workers. Those invocations run on detached: their answers are not logged, and a late
//! execute meets the semantic lock of its compensated key.

use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use serde_json::Value;

use super::{Book, Detached, Driver};
use crate::analysis::payload_size;
use crate::definition::Group;
use crate::executor::ExecutorError;
use crate::idempotency::Action;
use crate::log::{Phase, SagaEvent};

/// How a step's run ended for the branch it is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StepEnd {
    /// It succeeded or was skipped: the branch goes on.
    Done,
    /// It failed for good, or the saga stopped going forward (a sibling failed): the branch
    /// starts nothing more.
    Stopped,
}

/// What to do next for a step, decided under the book's lock.
enum Next {
    Invoke(u32, (Arc<Value>, usize)),
    Retry(u32),
}

impl Driver<'_> {
    /// Runs step `index` (in `group`, if any) until it succeeds, is skipped or fails for good;
    /// a resumed step goes on from the attempt its log shows.
    pub(super) async fn run_step(
        &self,
        index: usize,
        group: Option<&Group>,
    ) -> Result<StepEnd, ExecutorError> {
        let step = &self.saga.definition().steps[index];
        loop {
            let next = {
                let mut book = self.book();
                if book.state.phase != Phase::Forward {
                    return Ok(StepEnd::Stopped);
                }
                if book.done[index] {
                    return Ok(StepEnd::Done);
                }
                let running = book
                    .state
                    .running
                    .iter()
                    .find(|r| r.step == step.name)
                    .map(|r| (r.attempt, r.retry_pending));
                match running {
                    None if step
                        .condition
                        .as_ref()
                        .is_some_and(|when| !when.holds(&book.document)) =>
                    {
                        let skipped = SagaEvent::StepSkipped {
                            step: step.name.clone(),
                        };
                        self.append_locked(&mut book, skipped)?;
                        return Ok(StepEnd::Done);
                    }
                    None => {
                        let started = SagaEvent::StepStarted {
                            step: step.name.clone(),
                            attempt: 1,
                        };
                        self.append_locked(&mut book, started)?;
                        continue;
                    }
                    Some((attempt, true)) => Next::Retry(attempt),
                    Some((attempt, false)) => {
                        Next::Invoke(attempt, self.document_for(&book, index, group))
                    }
                }
            };
            match next {
                Next::Retry(attempt) => {
                    tokio::time::sleep(step.retry.jittered_delay(attempt)).await;
                    let mut book = self.book();
                    if book.state.phase != Phase::Forward {
                        return Ok(StepEnd::Stopped);
                    }
                    let started = SagaEvent::StepStarted {
                        step: step.name.clone(),
                        attempt: attempt + 1,
                    };
                    self.append_locked(&mut book, started)?;
                }
                Next::Invoke(attempt, (document, document_bytes)) => {
                    let answer = self
                        .invoke(index, Action::Execute, attempt, &document, document_bytes)
                        .await;
                    // Before the output joins the document, which then need not be copied.
                    drop(document);
                    let mut book = self.book();
                    if book.state.phase != Phase::Forward {
                        // A sibling failed meanwhile: this answer goes nowhere.
                        return Ok(StepEnd::Stopped);
                    }
                    let event = match answer {
                        Ok((output, size)) => {
                            book.measured = Some(size);
                            SagaEvent::StepSucceeded {
                                step: step.name.clone(),
                                attempt,
                                output,
                            }
                        }
                        Err(error) => SagaEvent::StepFailed {
                            step: step.name.clone(),
                            attempt,
                            will_retry: error.kind.is_retried()
                                && step.retry.allows_retry_after(attempt),
                            error,
                        },
                    };
                    let gave_up = matches!(
                        event,
                        SagaEvent::StepFailed {
                            will_retry: false,
                            ..
                        }
                    );
                    self.append_locked(&mut book, event)?;
                    if gave_up {
                        return Ok(StepEnd::Stopped);
                    }
                }
            }
        }
    }

    /// Runs the branches of `group` at once, each step after step. Returns once every branch
    /// has ended, or, as soon as a step has failed for good, with what the other branches still
    /// have in flight.
    pub(super) async fn run_group<'s>(
        &'s self,
        group: &'s Group,
    ) -> Result<Option<Detached<'s>>, ExecutorError> {
        let mut branches: FuturesUnordered<BoxFuture<'s, Result<(), ExecutorError>>> = group
            .branches
            .iter()
            .map(|branch| {
                let run: BoxFuture<'s, _> = Box::pin(async move {
                    for &index in &branch.steps {
                        if self.run_step(index, Some(group)).await? == StepEnd::Stopped {
                            break;
                        }
                    }
                    Ok(())
                });
                run
            })
            .collect();
        while let Some(ended) = branches.next().await {
            if let Err(crashed) = ended {
                // The executor is gone, not the participants: what the other branches have
                // in flight runs to its end (a later delivery finds its stored outcome), and
                // nothing more is logged (every append meets the same crash).
                while branches.next().await.is_some() {}
                return Err(crashed);
            }
            let failed = self.book().state.phase != Phase::Forward;
            if failed {
                let detached: Detached<'s> = branches
                    .into_iter()
                    .map(|branch| {
                        let run: BoxFuture<'s, ()> = Box::pin(async move {
                            let _unlogged = branch.await;
                        });
                        run
                    })
                    .collect();
                return Ok(Some(detached));
            }
        }
        Ok(None)
    }

    /// The document step `index` reads, with its size: the saga's, or, in a group, the
    /// group's input with the outputs of its own branch only (what a `Parallel` branch sees
    /// on Step Functions).
    fn document_for(
        &self,
        book: &Book,
        index: usize,
        group: Option<&Group>,
    ) -> (Arc<Value>, usize) {
        let whole = || (book.document.clone(), book.document_bytes);
        let Some(group) = group else {
            return whole();
        };
        let steps = &self.saga.definition().steps;
        let own = &steps[index].group;
        let siblings: Vec<&str> = group
            .steps
            .clone()
            .filter(|&i| steps[i].group != *own && book.done[i])
            .map(|i| steps[i].name.as_str())
            .collect();
        if siblings.is_empty() {
            return whole();
        }
        let mut document = (*book.document).clone();
        if let Some(Value::Object(outputs)) = document.get_mut(crate::protocol::DOCUMENT_STEPS) {
            for sibling in siblings {
                outputs.remove(sibling);
            }
        }
        let bytes = payload_size(&document);
        (Arc::new(document), bytes)
    }
}
