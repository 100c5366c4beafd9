//! How the command line prints what ran: invocations as lines, and a saga followed live.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use saga_aws::{DeployedSaga, Progress, Status, Wait};
use saga_core::{Action, Outcome, Trace};

use super::{Failure, aws, fail, write};

pub(super) fn what(step: &str, action: Action) -> String {
    match action {
        Action::Execute => step.to_owned(),
        Action::Compensate => format!("compensation of {step}"),
    }
}

pub(super) fn trace_lines(trace: &Trace) -> Vec<String> {
    trace.0.iter().map(ToString::to_string).collect()
}

/// Follows a saga until it ends: each finished invocation as a line, and on a terminal the
/// running step on a line of its own that is redrawn in place.
pub(super) async fn watch(
    deployed: &DeployedSaga,
    saga_id: &str,
    out: &mut dyn Write,
) -> Result<Outcome, Failure> {
    let live = std::io::stderr().is_terminal();
    let spinner = ['|', '/', '-', '\\'];
    let mut printed = 0;
    let mut last_running = None;
    let mut tick = 0usize;
    let mut failed = None;
    let wait = Wait::default().every(Duration::from_millis(if live { 200 } else { 500 }));
    let arn = deployed.execution_arn(saga_id);
    let mut seen = |progress: &Progress| {
        let lines = trace_lines(&progress.trace);
        if live && printed < lines.len() {
            eprint!("\r\x1b[2K");
        }
        for line in &lines[printed.min(lines.len())..] {
            if let Err(e) = write(out, line) {
                failed.get_or_insert(e);
            }
        }
        printed = lines.len();
        if let Some((step, action, attempt)) = &progress.running {
            let now = format!("{} (attempt {attempt})", what(step, *action));
            if live {
                tick += 1;
                eprint!("\r\x1b[2K{} running {now}", spinner[tick % spinner.len()]);
            } else if last_running.as_ref() != Some(&now)
                && let Err(e) = write(out, format!(".. running {now}"))
            {
                failed.get_or_insert(e);
            }
            last_running = Some(now);
        }
        if live && progress.state.status != Status::Running {
            eprint!("\r\x1b[2K");
        }
        out.flush().ok();
    };
    let ended = deployed
        .step_functions()
        .watch(&arn, wait, &mut seen)
        .await
        .map_err(aws)?;
    if let Some(e) = failed {
        return Err(e);
    }
    let report = ended.report(&arn).map_err(aws)?;
    write(out, format!("outcome: {}", report.outcome))?;
    Ok(report.outcome)
}

/// The SVG Graphviz's `dot` draws of `dot`.
pub(super) fn svg(dot: &str) -> Result<String, Failure> {
    use std::process::{Command, Stdio};
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            Failure::Error(format!(
                "cannot run Graphviz's `dot` ({e}); install graphviz, or use --format dot"
            ))
        })?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(dot.as_bytes())
        .map_err(|e| Failure::Error(format!("cannot feed `dot`: {e}")))?;
    let output = child
        .wait_with_output()
        .map_err(|e| Failure::Error(format!("`dot` failed: {e}")))?;
    if !output.status.success() {
        return fail(format!(
            "`dot` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
