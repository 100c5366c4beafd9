//! Pictures of a saga: its state machine as Mermaid or Graphviz DOT, with the forward path, the
//! compensation path and the outcomes. Solid edges are successes, dashed edges failures.

use std::fmt::Write;

use crate::asl::{State, StateMachine, Transition};
use crate::protocol::ERROR_COMPENSATED;

struct Edge<'a> {
    from: &'a str,
    to: &'a str,
    failure: bool,
    /// The edge's label: why a failure edge is taken, which way a condition went.
    label: &'static str,
}

fn edges(machine: &StateMachine) -> Vec<Edge<'_>> {
    let mut edges = Vec::new();
    for (name, state) in &machine.states.0 {
        if let State::Choice(choice) = state {
            for rule in &choice.choices {
                edges.push(Edge {
                    from: name,
                    to: end(machine, &rule.next),
                    failure: false,
                    label: "when",
                });
            }
            edges.push(Edge {
                from: name,
                to: end(machine, &choice.default),
                failure: false,
                label: "otherwise",
            });
        }
        if let State::Task(task) = state {
            let to = match &task.transition {
                Transition::Next { next } => end(machine, next),
                Transition::End { .. } => "Completed",
            };
            edges.push(Edge {
                from: name,
                to,
                failure: false,
                label: "",
            });
            for catcher in &task.catch {
                let unread = catcher.error_equals == [crate::protocol::ERROR_INVALID_INPUT];
                edges.push(Edge {
                    from: name,
                    to: &catcher.next,
                    failure: true,
                    label: if unread { "input unreadable" } else { "fails" },
                });
            }
        }
    }
    edges
}

/// The node an edge to `next` ends at: `Completed` for the `Succeed` state, drawn as the end
/// every path that completes reaches.
fn end<'a>(machine: &'a StateMachine, next: &'a str) -> &'a str {
    match machine.state(next) {
        Some(State::Succeed(_)) => "Completed",
        _ => next,
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
    for (name, state) in &machine.states.0 {
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
            // Drawn as `Completed`.
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
        let _ = writeln!(out, "    {} {arrow} {}", id(edge.from), id(edge.to));
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
    for (name, state) in &machine.states.0 {
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
