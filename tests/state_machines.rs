//! The generated state machines, checked by the real validators (npm `@wmfs/statelint` and
//! `asl-validator`, which this test installs itself), pinned by insta snapshots, and held to the
//! minimum number of state transitions.

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/order/main.rs"]
mod order;
mod support;
#[allow(dead_code, unreachable_pub)]
#[path = "../examples/travel.rs"]
mod travel;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use saga::StepKind;
use saga::analysis::{self, Cost};
use saga::{Condition, GroupBranch, Participant, SagaDefinition, Stage, StepDefinition};

const STATELINT: &str = "@wmfs/statelint@1.30.0";
const ASL_VALIDATOR: &str = "asl-validator@4.0.0";

/// Installs the validators once into the target directory; a missing `npm` is a failure.
fn validators() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("asl-validators");
        let installed = |bin: &str| dir.join("node_modules/.bin").join(bin).exists();
        if !(installed("statelint") && installed("asl-validator")) {
            std::fs::create_dir_all(&dir).unwrap();
            let status = Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
                .arg(&dir)
                .args([STATELINT, ASL_VALIDATOR])
                .status()
                .unwrap_or_else(|e| {
                    panic!("cannot run `npm` to install the ASL validators ({e}); install Node.js 20 and npm")
                });
            assert!(status.success(), "`npm install {STATELINT} {ASL_VALIDATOR}` failed: {status}");
        }
        dir
    })
}

/// Runs both validators over the files; returns (statelint ok, asl-validator ok, output).
fn validate(files: &[PathBuf]) -> (bool, bool, String) {
    let bin = validators().join("node_modules/.bin");
    let statelint = Command::new(bin.join("statelint"))
        .args(files)
        .output()
        .expect("run statelint");
    let mut asl = Command::new(bin.join("asl-validator"));
    for file in files {
        asl.arg("--json-path").arg(file);
    }
    let asl = asl.output().expect("run asl-validator");
    let text = format!(
        "statelint: {}{}\nasl-validator: {}{}",
        String::from_utf8_lossy(&statelint.stdout),
        String::from_utf8_lossy(&statelint.stderr),
        String::from_utf8_lossy(&asl.stdout),
        String::from_utf8_lossy(&asl.stderr),
    );
    (statelint.status.success(), asl.status.success(), text)
}

fn write(dir: &Path, name: &str, definition: &SagaDefinition) -> PathBuf {
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, definition.state_machine().to_json_pretty()).unwrap();
    path
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// 50 sagas from the property tests' generator (1 to 12 steps, every kind and policy), with a
/// fixed seed so a failure names the same shape every run; in every other one, every other step
/// is a directly invoked Lambda function.
fn generated_shapes() -> Vec<SagaDefinition> {
    let mut runner = TestRunner::deterministic();
    let ledger = Arc::new(support::Ledger::default());
    (0..50)
        .map(|i| {
            let shape = support::shape(1, 12)
                .new_tree(&mut runner)
                .unwrap()
                .current();
            let definition = shape
                .build(&format!("generated-{i}"), &ledger)
                .definition()
                .clone();
            if i % 2 == 1 {
                support::with_lambdas(definition)
            } else {
                definition
            }
        })
        .collect()
}

/// Sagas with parallel groups: a compensable group before the pivot (3 branches, one of 2
/// steps, conditional steps) and a retriable one after it; a group as the first stage; a group
/// after a conditional step only (its `steps` guard asks); and with Lambda participants.
fn grouped_shapes() -> Vec<SagaDefinition> {
    use StepKind::{Compensable as C, Pivot as P, Retriable as R};
    let step = |name: &str, kind| StepDefinition::new(name, kind, Participant::queue("svc"));
    let grouped = |name: &str, kind, group: &str, branch: &str| {
        let mut step = step(name, kind);
        step.group = Some(GroupBranch::new(group, branch));
        step
    };
    let when = |mut step: StepDefinition, condition: &str| {
        step.condition = Some(Condition::parse(condition).unwrap());
        step
    };
    let saga = |name: &str, steps| {
        let definition = SagaDefinition {
            name: name.into(),
            version: 1,
            steps,
        };
        definition.validate().expect("a valid grouped saga");
        definition
    };
    let travel = saga(
        "travel",
        vec![
            step("reserve", C),
            grouped("flight", C, "bookings", "air"),
            when(grouped("seat", C, "bookings", "air"), "vip"),
            grouped("hotel", C, "bookings", "hotel"),
            when(grouped("car", C, "bookings", "car"), "car"),
            step("charge", P),
            grouped("mail", R, "notify", "mail"),
            when(grouped("sms", R, "notify", "sms"), "phone"),
            step("archive", R),
        ],
    );
    let first = saga(
        "group-first",
        vec![
            grouped("a", C, "g", "a"),
            grouped("b", C, "g", "b"),
            grouped("b2", C, "g", "b"),
            step("p", P),
        ],
    );
    let after_condition = saga(
        "group-after-condition",
        vec![
            when(step("c", C), "c"),
            grouped("a", C, "g", "a"),
            when(grouped("b", C, "g", "b"), "b"),
            step("p", P),
            grouped("r1", R, "after", "r1"),
            grouped("r2", R, "after", "r2"),
            step("r3", R),
        ],
    );
    let lambdas = support::with_lambdas(travel.clone());
    vec![travel, first, after_condition, lambdas]
}

#[test]
fn validators_accept_every_generated_definition() {
    let dir = scratch("asl-accepted");
    let mut files = vec![
        write(&dir, "order", &order::OrderSaga::definition()),
        write(&dir, "travel-example", &travel::TravelSaga::definition()),
    ];
    for definition in grouped_shapes() {
        files.push(write(&dir, &definition.name.clone(), &definition));
    }
    let shapes = generated_shapes();
    assert!(
        shapes.iter().any(|d| d
            .steps
            .iter()
            .any(|s| matches!(s.participant, Participant::Lambda(_)))),
        "the validators see Lambda tasks too"
    );
    // What the validators see: a `Parallel` for every generated group, a `Choice` for every
    // condition.
    let states = |definition: &SagaDefinition, kind: &str| {
        let text = definition.state_machine().to_json();
        text.matches(&format!("\"Type\":\"{kind}\"")).count()
    };
    let mut parallels = 0;
    for definition in &shapes {
        let groups: std::collections::HashSet<_> = definition
            .steps
            .iter()
            .filter_map(|s| s.group.as_ref())
            .map(|g| &g.group)
            .collect();
        assert_eq!(
            states(definition, "Parallel"),
            groups.len(),
            "{}",
            definition.name
        );
        parallels += groups.len();
        if conditions(&definition.steps) > 0 {
            assert!(states(definition, "Choice") > 0, "{}", definition.name);
        }
    }
    assert!(
        parallels >= 10,
        "the validators see {parallels} generated groups"
    );
    for (i, definition) in shapes.iter().enumerate() {
        files.push(write(&dir, &format!("generated-{i}"), definition));
    }
    assert!(files.len() > 54);
    let (statelint, asl_validator, output) = validate(&files);
    assert!(
        statelint && asl_validator,
        "validators refused a generated definition:\n{output}"
    );
}

#[test]
fn validators_refuse_a_broken_definition() {
    // The control: the validators really run and really check.
    let dir = scratch("asl-refused");
    let mut machine = order::OrderSaga::definition().state_machine();
    machine.start_at = "no_such_state".into();
    let path = dir.join("broken.json");
    std::fs::write(&path, machine.to_json_pretty()).unwrap();
    let (statelint, asl_validator, output) = validate(std::slice::from_ref(&path));
    assert!(
        !statelint && !asl_validator,
        "a broken definition passed:\n{output}"
    );
}

/// How many of `steps` have a condition: each costs one `Choice` where the saga passes it.
fn conditions(steps: &[saga::StepDefinition]) -> u64 {
    steps.iter().filter(|s| s.condition.is_some()).count() as u64
}

/// Transitions on the failure path at step `index`, every condition holding: the steps up to
/// it and their conditions, the compensations that run, the conditions before each but the
/// failed step's own (its Catch goes straight to it), and the end. With every step up to it
/// compensable and unconditional that is 2k+1 (k = index + 1).
fn expected_failure_cost(definition: &SagaDefinition, index: usize) -> u64 {
    let failed = &definition.steps[index].name;
    let compensations: Vec<_> = definition.compensation_order(index).collect();
    let asked = compensations
        .iter()
        .filter(|s| s.condition.is_some() && s.name != *failed)
        .count() as u64;
    index as u64
        + 1
        + conditions(&definition.steps[..=index])
        + compensations.len() as u64
        + asked
        + 1
}

/// Success costs N tasks and one transition per condition (N with none); a skipped step
/// saves its task, and a skipped last step ends in `Saga.completed`. A failure at step k
/// costs [`expected_failure_cost`] (2k+1 without conditions).
fn assert_minimal(definition: &SagaDefinition) {
    let cost = Cost::of(&definition.state_machine());
    let steps = &definition.steps;
    let n = steps.len() as u64;
    assert_eq!(
        cost.success().transitions,
        n + conditions(steps),
        "{}: success costs N plus one per condition",
        definition.name
    );
    for (index, step) in steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.condition.is_some())
    {
        let description = format!("success ({} skipped)", step.name);
        let path = cost
            .paths
            .iter()
            .find(|p| p.description == description)
            .unwrap_or_else(|| panic!("{}: no path `{description}`", definition.name));
        let end = u64::from(index + 1 == steps.len());
        assert_eq!(
            path.transitions,
            n + conditions(steps) - 1 + end,
            "{}: {description}",
            definition.name
        );
    }
    for (index, step) in steps.iter().enumerate() {
        let path = cost
            .failure_at(&step.name)
            .expect("a path per failing step");
        let k = index as u64 + 1;
        if step.kind == StepKind::Retriable {
            // After the pivot: forward to the step, the report of the stuck saga, the end.
            assert_eq!(
                path.transitions,
                k + conditions(&steps[..=index]) + 2,
                "{}: stuck at {}",
                definition.name,
                step.name
            );
            continue;
        }
        assert_eq!(
            path.transitions,
            expected_failure_cost(definition, index),
            "{}: {}",
            definition.name,
            step.name
        );
        if steps[..=index].iter().all(|s| {
            s.kind == StepKind::Compensable && s.compensate_on_failure && s.condition.is_none()
        }) {
            assert_eq!(
                path.transitions,
                2 * k + 1,
                "{}: failure at step {k} costs 2k+1",
                definition.name
            );
        }
    }
}

#[test]
fn transitions_are_the_minimum_for_every_example_and_shape() {
    let order = order::OrderSaga::definition();
    assert_minimal(&order);
    let cost = Cost::of(&order.state_machine());
    assert_eq!(cost.success().transitions, 3);
    assert_eq!(cost.failure_at("reserve_stock").unwrap().transitions, 3); // 2k+1, k = 1
    assert_eq!(cost.failure_at("charge_payment").unwrap().transitions, 4); // the pivot has no compensation
    let shapes = generated_shapes();
    let conditional = shapes.iter().filter(|d| conditions(&d.steps) > 0).count();
    assert!(
        conditional >= 10,
        "only {conditional} of the shapes have conditions"
    );
    let grouped = shapes
        .iter()
        .filter(|d| d.steps.iter().any(|s| s.group.is_some()))
        .count();
    assert!(grouped >= 10, "only {grouped} of the shapes have groups");
    for definition in shapes {
        if definition.steps.iter().any(|s| s.group.is_some()) {
            assert_group_costs(&definition);
        } else {
            assert_minimal(&definition);
        }
        analysis::check(&definition).expect("generated shapes fit the limits");
    }
}

/// Success and each failure, every condition holding, through groups (the formulas of
/// `saga_core::asl`'s parallel docs): success is N steps + their conditions + one `Parallel`
/// per group + the `steps` guard of a group (1 for a first stage: `<group>.steps`; 1 where
/// earlier steps might not have run: `<group>.has_steps`, `steps` being there). A failure at a
/// step of a group: the stages before it, the guard, the `Parallel`, its own branch up to the
/// step and every other branch to its end (the worst case), then, before the pivot, every
/// compensation of [`SagaDefinition::compensation_order`] with one `Choice` per conditional
/// one, and the `Fail` end; after it, the report and the stuck end.
fn assert_group_costs(definition: &SagaDefinition) {
    let cost = Cost::of(&definition.state_machine());
    let steps = &definition.steps;
    let stages = definition.stages();
    let states = |indices: &mut dyn Iterator<Item = usize>| -> u64 {
        indices
            .map(|i| 1 + u64::from(steps[i].condition.is_some()))
            .sum()
    };
    let guard = |position: usize| -> u64 {
        match &stages[position] {
            Stage::Group(_) => u64::from(!stages[..position].iter().any(|s| match s {
                Stage::Group(_) => true,
                Stage::Step(i) => steps[*i].condition.is_none(),
            })),
            Stage::Step(_) => 0,
        }
    };
    let groups = stages
        .iter()
        .filter(|s| matches!(s, Stage::Group(_)))
        .count() as u64;
    let guards: u64 = (0..stages.len()).map(guard).sum();
    let n = steps.len() as u64;
    assert_eq!(
        cost.success().transitions,
        n + conditions(steps) + groups + guards,
        "{}: success",
        definition.name
    );
    let mut before = 0;
    for (position, stage) in stages.iter().enumerate() {
        let here = before + guard(position);
        let failures: Vec<(usize, u64)> = match stage {
            Stage::Step(index) => vec![(*index, here + states(&mut (*index..index + 1)))],
            Stage::Group(group) => group
                .branches
                .iter()
                .enumerate()
                .flat_map(|(b, branch)| {
                    let siblings: u64 = (group.branches.iter().enumerate())
                        .filter(|(o, _)| *o != b)
                        .map(|(_, other)| states(&mut other.steps.iter().copied()))
                        .sum();
                    (0..branch.steps.len()).map(move |j| {
                        let own = states(&mut branch.steps[..=j].iter().copied());
                        (branch.steps[j], here + 1 + siblings + own)
                    })
                })
                .collect(),
        };
        for (index, forward) in failures {
            let step = &steps[index];
            let path = cost
                .failure_at(&step.name)
                .expect("a path per failing step");
            let expected = if step.kind == StepKind::Retriable {
                forward + 2
            } else {
                let in_group = definition.group_of(index).is_some();
                let order: Vec<_> = definition.compensation_order(index).collect();
                let choices = order
                    .iter()
                    .filter(|s| s.condition.is_some() && (in_group || s.name != step.name))
                    .count() as u64;
                forward + order.len() as u64 + choices + 1
            };
            assert_eq!(
                path.transitions, expected,
                "{}: {} fails: {:?}",
                definition.name, step.name, path.states
            );
        }
        before = here
            + match stage {
                Stage::Step(index) => states(&mut (*index..index + 1)),
                Stage::Group(group) => 1 + states(&mut group.steps.clone()),
            };
    }
}

#[test]
fn transitions_through_groups_follow_the_formulas() {
    // The travel example: 5 steps, one group, one condition.
    let example = travel::TravelSaga::definition();
    let cost = Cost::of(&example.state_machine());
    assert_eq!(cost.success().transitions, 5 + 1 + 1 + 1, "{cost}");
    for definition in grouped_shapes().into_iter().chain([example]) {
        assert_group_costs(&definition);
        analysis::check(&definition).expect("grouped shapes fit the limits");
    }
}

#[test]
fn snapshots_of_a_grouped_saga() {
    let travel = grouped_shapes().remove(0);
    let machine = travel.state_machine();
    insta::assert_snapshot!("travel_state_machine", machine.to_json_pretty());
    insta::assert_snapshot!("travel_mermaid", saga::render::mermaid(&machine));
    insta::assert_snapshot!("travel_cost", Cost::of(&machine).to_string());
}

#[test]
fn snapshots_of_the_order_saga() {
    let definition = order::OrderSaga::definition();
    let machine = definition.state_machine();
    insta::assert_snapshot!("order_state_machine", machine.to_json_pretty());
    insta::assert_snapshot!("order_mermaid", saga::render::mermaid(&machine));
    insta::assert_snapshot!("order_cost", Cost::of(&machine).to_string());
}
