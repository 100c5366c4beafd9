//! Pictures of a saga: its state machine as Mermaid or Graphviz DOT, with the forward path, the
//! compensation path and the outcomes. Solid edges are successes, dashed edges failures; a
//! parallel group is a fork (its `Parallel` state) into its branches and a join after them.

use std::fmt::Write;

use crate::asl::{State, StateMachine, Transition};
use crate::protocol::ERROR_COMPENSATED;

struct Edge {
    from: String,
    to: String,
    failure: bool,
    /// The edge's label: why a failure edge is taken, which way a condition went.
    label: &'static str,
}

fn edges(machine: &StateMachine) -> Vec<Edge> {
    let mut edges = Vec::new();
    frame_edges(machine, "Completed", &mut edges);
    edges
}

/// The join node drawn after a `Parallel` state's branches (the fork is the state itself).
fn join(parallel: &str) -> String {
    format!("{parallel}.join")
}

/// The edges of the states of `frame` (the machine, or a `Parallel` state's branch), where an
/// end (`End`, a `Succeed` state) goes to `finish`: `Completed`, drawn as the end every path
/// that completes reaches, for the machine; the join of its `Parallel` for a branch.
fn frame_edges(frame: &StateMachine, finish: &str, edges: &mut Vec<Edge>) {
    let end = |next: &str| match frame.state(next) {
        Some(State::Succeed(_)) => finish.to_owned(),
        _ => next.to_owned(),
    };
    let after = |transition: &Transition| match transition {
        Transition::Next { next } => end(next),
        Transition::End { .. } => finish.to_owned(),
    };
    let mut push = |from: &str, to: String, failure: bool, label: &'static str| {
        edges.push(Edge {
            from: from.to_owned(),
            to,
            failure,
            label,
        });
    };
    for (name, state) in &frame.states.0 {
        match state {
            State::Choice(choice) => {
                for rule in &choice.choices {
                    push(name, end(&rule.next), false, "when");
                }
                push(name, end(&choice.default), false, "otherwise");
            }
            State::Task(task) => {
                push(name, after(&task.transition), false, "");
                for catcher in &task.catch {
                    let unread = catcher.error_equals == [crate::protocol::ERROR_INVALID_INPUT];
                    let label = if unread { "input unreadable" } else { "fails" };
                    push(name, catcher.next.clone(), true, label);
                }
            }
            State::Pass(pass) => push(name, after(&pass.transition), false, ""),
            State::Parallel(parallel) => {
                // Fork into every branch, join, go on; a branch that fails fails the group.
                let joined = join(name);
                let mut inner = Vec::new();
                for branch in &parallel.branches {
                    let start = match branch.state(&branch.start_at) {
                        Some(State::Succeed(_)) => joined.clone(),
                        _ => branch.start_at.clone(),
                    };
                    push(name, start, false, "");
                    frame_edges(branch, &joined, &mut inner);
                }
                for edge in inner {
                    push(&edge.from, edge.to, edge.failure, edge.label);
                }
                push(&joined, after(&parallel.transition), false, "");
                for catcher in &parallel.catch {
                    push(name, catcher.next.clone(), true, "a branch fails");
                }
            }
            State::Fail(_) | State::Succeed(_) => {}
        }
    }
}

/// A `Choice` state's node label: its name and the condition it decides (from its
/// `Comment`), with double quotes made single, which neither Mermaid nor DOT labels take.
fn choice_label(name: &str, choice: &crate::asl::ChoiceState) -> String {
    let label = match &choice.comment {
        Some(comment) => format!("{name}: {comment}"),
        None => name.to_owned(),
    };
    label.replace('"', "'")
}

/// Node ids: states are named `a.b`, which neither Mermaid nor DOT takes bare.
fn id(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// The state machine as a Mermaid flowchart.
pub fn mermaid(machine: &StateMachine) -> String {
    let mut out = String::from("flowchart TD\n");
    let _ = writeln!(out, "    start([start]) --> {}", id(&machine.start_at));
    for (name, state) in machine.all_states() {
        let node = match state {
            State::Task(_) if name.ends_with(".compensate") => {
                format!("{}[/\"{}\"/]", id(name), name)
            }
            State::Task(_) => format!("{}[\"{}\"]", id(name), name),
            State::Fail(fail) if fail.error == ERROR_COMPENSATED => {
                format!("{}([\"{}: Compensated\"])", id(name), name)
            }
            State::Fail(_) => format!("{}{{{{\"{}: CompensationFailed\"}}}}", id(name), name),
            State::Choice(choice) => {
                format!("{}{{\"{}\"}}", id(name), choice_label(name, choice))
            }
            State::Pass(_) => format!("{}[\"{}\"]", id(name), name),
            State::Parallel(_) => {
                let _ = writeln!(out, "    {}[[\"{name}: fork\"]]", id(name));
                format!("{}[[\"{name}: join\"]]", id(&join(name)))
            }
            // Drawn as `Completed`, or as its branch's join.
            State::Succeed(_) => continue,
        };
        let _ = writeln!(out, "    {node}");
    }
    let _ = writeln!(out, "    Completed([Completed])");
    for edge in edges(machine) {
        let arrow = if edge.failure {
            format!("-. {} .->", edge.label)
        } else if edge.label.is_empty() {
            "-->".to_owned()
        } else {
            format!("-- {} -->", edge.label)
        };
        let _ = writeln!(out, "    {} {arrow} {}", id(&edge.from), id(&edge.to));
    }
    out
}

/// The state machine as a Graphviz DOT digraph.
pub fn dot(machine: &StateMachine) -> String {
    let mut out =
        String::from("digraph saga {\n    rankdir=TB;\n    node [fontname=\"Helvetica\"];\n");
    let _ = writeln!(
        out,
        "    start [shape=circle, label=\"\", width=0.2, style=filled, fillcolor=black];"
    );
    for (name, state) in machine.all_states() {
        let attrs = match state {
            State::Task(_) if name.ends_with(".compensate") => {
                "shape=box, style=\"rounded,dashed\""
            }
            State::Task(_) => "shape=box, style=rounded",
            State::Fail(fail) if fail.error == ERROR_COMPENSATED => {
                "shape=doubleoctagon, color=orange"
            }
            State::Fail(_) => "shape=doubleoctagon, color=red",
            State::Choice(choice) => {
                let label = choice_label(name, choice);
                let _ = writeln!(out, "    \"{name}\" [shape=diamond, label=\"{label}\"];");
                continue;
            }
            State::Pass(_) => "shape=box",
            State::Parallel(_) => {
                let _ = writeln!(
                    out,
                    "    \"{name}\" [shape=invtrapezium, label=\"{name}: fork\"];"
                );
                let joined = join(name);
                let _ = writeln!(
                    out,
                    "    \"{joined}\" [shape=trapezium, label=\"{name}: join\"];"
                );
                continue;
            }
            State::Succeed(_) => continue,
        };
        let _ = writeln!(out, "    \"{name}\" [{attrs}];");
    }
    let _ = writeln!(
        out,
        "    \"Completed\" [shape=doublecircle, color=darkgreen];"
    );
    let _ = writeln!(out, "    start -> \"{}\";", machine.start_at);
    for edge in edges(machine) {
        let style = if edge.failure {
            format!(" [style=dashed, color=red, label=\"{}\"]", edge.label)
        } else if edge.label.is_empty() {
            String::new()
        } else {
            format!(" [label=\"{}\"]", edge.label)
        };
        let _ = writeln!(out, "    \"{}\" -> \"{}\"{style};", edge.from, edge.to);
    }
    out.push_str("}\n");
    out
}
