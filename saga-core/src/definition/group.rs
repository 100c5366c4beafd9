//! Parallel groups: a saga is a sequence of stages, each a single step or a group of two or more
//! branches that run at the same time, each branch an ordered list of steps.
//!
//! The steps stay one flat list in declaration order (every index, key, handler and log entry is
//! still per step); a step names its group and branch, and the steps of a group, and of each of
//! its branches, are adjacent. [`SagaDefinition::stages`] reads the stages off that list.

use std::collections::HashSet;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::names::check_step_name;
use super::{DefinitionError, SagaDefinition, StepKind};

/// Where a step stands in a parallel group: the group's name and its branch's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GroupBranch {
    /// The group (becomes the `Parallel` state's name).
    pub group: String,
    /// The branch within the group.
    pub branch: String,
}

impl GroupBranch {
    /// Step in branch `branch` of group `group`.
    pub fn new(group: impl Into<String>, branch: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            branch: branch.into(),
        }
    }
}

/// One stage of a saga: what runs after the stage before it has ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// A single step (its index).
    Step(usize),
    /// A parallel group.
    Group(Group),
}

impl Stage {
    /// The indices of the stage's steps, in declaration order.
    pub fn steps(&self) -> Range<usize> {
        match self {
            Stage::Step(index) => *index..index + 1,
            Stage::Group(group) => group.steps.clone(),
        }
    }
}

/// A parallel group as the stages see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Its name.
    pub name: String,
    /// The indices of its steps (adjacent in declaration order).
    pub steps: Range<usize>,
    /// Its branches, in declaration order.
    pub branches: Vec<Branch>,
}

/// One branch of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Branch {
    /// Its name.
    pub name: String,
    /// The indices of its steps, in the order they run.
    pub steps: Vec<usize>,
}

impl SagaDefinition {
    /// The saga's stages in order: each run of adjacent steps of one group is a group, every
    /// other step a stage of its own.
    pub fn stages(&self) -> Vec<Stage> {
        let mut stages = Vec::new();
        let mut index = 0;
        while index < self.steps.len() {
            let Some(at) = &self.steps[index].group else {
                stages.push(Stage::Step(index));
                index += 1;
                continue;
            };
            let start = index;
            let mut branches: Vec<Branch> = Vec::new();
            while let Some(member) = self.steps.get(index).and_then(|s| s.group.as_ref())
                && member.group == at.group
            {
                match branches.iter_mut().find(|b| b.name == member.branch) {
                    Some(branch) => branch.steps.push(index),
                    None => branches.push(Branch {
                        name: member.branch.clone(),
                        steps: vec![index],
                    }),
                }
                index += 1;
            }
            stages.push(Stage::Group(Group {
                name: at.group.clone(),
                steps: start..index,
                branches,
            }));
        }
        stages
    }

    /// The group step `index` belongs to, if any.
    pub fn group_of(&self, index: usize) -> Option<Group> {
        self.steps.get(index)?.group.as_ref()?;
        self.stages().into_iter().find_map(|stage| match stage {
            Stage::Group(group) if group.steps.contains(&index) => Some(group),
            _ => None,
        })
    }

    /// The rules of groups, each violation with the index of the step at fault.
    pub(super) fn group_violations(&self) -> Vec<(Option<usize>, DefinitionError)> {
        let mut errors = Vec::new();
        let step_names: HashSet<&str> = self.steps.iter().map(|s| s.name.as_str()).collect();
        let mut seen_groups = HashSet::new();
        for stage in self.stages() {
            let Stage::Group(group) = stage else { continue };
            let first = group.steps.start;
            let name = &group.name;
            // A group's steps are adjacent: a second run of the same group is an error on its
            // first step.
            if !seen_groups.insert(name.clone()) {
                errors.push((
                    Some(first),
                    DefinitionError::GroupNotContiguous {
                        group: name.clone(),
                        step: self.steps[first].name.clone(),
                    },
                ));
                continue;
            }
            if let Err(reason) = check_step_name(name) {
                errors.push((
                    Some(first),
                    DefinitionError::InvalidGroupName {
                        group: name.clone(),
                        reason,
                    },
                ));
            } else if step_names.contains(name.as_str()) {
                errors.push((
                    Some(first),
                    DefinitionError::GroupNameTaken {
                        group: name.clone(),
                    },
                ));
            }
            if group.branches.len() > crate::asl::MAX_GROUP_BRANCHES {
                // On the first step of the first branch too many.
                let at = group.branches[crate::asl::MAX_GROUP_BRANCHES].steps[0];
                errors.push((
                    Some(at),
                    DefinitionError::GroupTooLarge {
                        group: name.clone(),
                        branches: group.branches.len(),
                        max: crate::asl::MAX_GROUP_BRANCHES,
                    },
                ));
            }
            if group.branches.len() < 2 {
                errors.push((
                    Some(first),
                    DefinitionError::GroupTooSmall {
                        group: name.clone(),
                        branches: group.branches.len(),
                    },
                ));
            }
            for branch in &group.branches {
                let at = branch.steps[0];
                if let Err(reason) = check_step_name(&branch.name) {
                    errors.push((
                        Some(at),
                        DefinitionError::InvalidBranchName {
                            group: name.clone(),
                            branch: branch.name.clone(),
                            reason,
                        },
                    ));
                }
                if let Some(gap) = branch.steps.windows(2).find(|w| w[1] != w[0] + 1) {
                    errors.push((
                        Some(gap[1]),
                        DefinitionError::BranchNotContiguous {
                            group: name.clone(),
                            branch: branch.name.clone(),
                            step: self.steps[gap[1]].name.clone(),
                        },
                    ));
                }
            }
            // The step after a group that always runs is the one whose answer tells the
            // saga's end (its `SagaCompleted`); a branch cannot, not knowing its siblings'.
            if !self.steps[group.steps.end..]
                .iter()
                .any(|s| s.condition.is_none())
            {
                errors.push((
                    Some(first),
                    DefinitionError::GroupEndsTheSaga {
                        group: name.clone(),
                    },
                ));
            }
            let kind = self.steps[first].kind;
            for index in group.steps.clone() {
                let step = &self.steps[index];
                if step.kind == StepKind::Pivot {
                    errors.push((
                        Some(index),
                        DefinitionError::PivotInGroup {
                            step: step.name.clone(),
                            group: name.clone(),
                        },
                    ));
                } else if kind != StepKind::Pivot && step.kind != kind {
                    errors.push((
                        Some(index),
                        DefinitionError::GroupMixesKinds {
                            step: step.name.clone(),
                            kind: step.kind,
                            group: name.clone(),
                            group_kind: kind,
                        },
                    ));
                }
                if step.is_compensable() && !step.compensate_on_failure {
                    errors.push((
                        Some(index),
                        DefinitionError::CompensationOptOutInGroup {
                            step: step.name.clone(),
                            group: name.clone(),
                        },
                    ));
                }
                let own = |read: &str| group.steps.clone().any(|i| self.steps[i].name == read);
                if let Some(condition) = &step.condition
                    && let Some(path) = condition
                        .paths()
                        .into_iter()
                        .find(|p| p.step().is_some_and(own))
                {
                    errors.push((
                        Some(index),
                        DefinitionError::ConditionReadsOwnGroup {
                            step: step.name.clone(),
                            reads: path.to_string(),
                            group: name.clone(),
                        },
                    ));
                }
            }
        }
        errors
    }
}
