//! Pictures of a saga: its state machine as Mermaid or Graphviz DOT, with the forward path, the
//! compensation path and the outcomes. Solid edges are successes, dashed edges failures.

use std::fmt::Write;

use crate::asl::{State, StateMachine, Transition};
use crate::protocol::ERROR_COMPENSATED;

struct Edge<'a> {
    from: &'a str,
    to: &'a str,
    failure: bool,
    /// The failure edge's label.
    label: &'static str,
}

fn edges(machine: &StateMachine) -> Vec<Edge<'_>> {
    let mut edges = Vec::new();
    for (name, state) in &machine.states.0 {
        if let State::Task(task) = state {
            let to = match &task.transition {
                Transition::Next { next } => next.as_str(),
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
        };
        let _ = writeln!(out, "    {node}");
    }
    let _ = writeln!(out, "    Completed([Completed])");
    for edge in edges(machine) {
        let arrow = if edge.failure {
            format!("-. {} .->", edge.label)
        } else {
            "-->".to_owned()
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
        } else {
            String::new()
        };
        let _ = writeln!(out, "    \"{}\" -> \"{}\"{style};", edge.from, edge.to);
    }
    out.push_str("}\n");
    out
}
