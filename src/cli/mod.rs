//! The command line for your sagas (feature `cli`): one line in your own binary,
//!
//! ```no_run
//! # use saga::Saga;
//! # fn order_saga() -> Saga { unimplemented!() }
//! fn main() -> std::process::ExitCode {
//!     saga::cli::run([order_saga()])
//! }
//! ```
//!
//! and it prints, draws and prices the sagas, writes their CloudFormation, deploys, starts,
//! watches and inspects them on AWS, runs their participants, and runs them in memory with
//! injected failures. `--help` on each subcommand explains it with an example. Errors are one
//! line on stderr and a non-zero exit: 1 for a failure, 2 for bad usage.
//!
//! AWS subcommands read the usual configuration (`AWS_REGION`, credentials,
//! `AWS_ENDPOINT_URL` for the local emulator), with the timeouts of
//! [`saga_aws::config::from_env`].

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use saga_aws::{Bindings, DeployedSaga};
use saga_core::{Outcome, Saga};
use serde_json::Value;

mod args;
mod entry;
mod operate;
mod print;
#[cfg(feature = "simulate")]
mod simulate;
mod worker;

use print::{svg, watch};

use args::{Cli, GraphFormat, Operation, TemplateFormat, Which};
pub use entry::Entry;

/// Runs the command line over `sagas` with this process's arguments.
pub fn run<E: Into<Entry>>(sagas: impl IntoIterator<Item = E>) -> ExitCode {
    let entries: Vec<Entry> = sagas.into_iter().map(Into::into).collect();
    // Logs (the worker's above all) on stderr; RUST_LOG filters them (default: info).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
    let args: Vec<String> = std::env::args().collect();
    // Not locked for the whole command: handlers print too (a worker runs them).
    let mut stdout = std::io::stdout();
    match execute(&entries, args, &mut stdout) {
        Ok(code) => code,
        Err(Failure::Usage(e)) => {
            // clap prints help and usage errors itself, with their own exit codes.
            let _ = e.print();
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
        }
        Err(Failure::Error(message)) => {
            let _ = stdout.flush();
            // Not eprintln!: a closed stderr is no reason to panic.
            let _ = writeln!(std::io::stderr(), "error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Why a command did not succeed.
#[derive(Debug)]
pub enum Failure {
    /// Bad usage, or `--help` / `--version` (clap's own message and exit code).
    Usage(clap::Error),
    /// The command failed; the message is one line.
    Error(String),
}

impl From<clap::Error> for Failure {
    fn from(e: clap::Error) -> Self {
        Failure::Usage(e)
    }
}

fn fail<T>(message: impl Into<String>) -> Result<T, Failure> {
    Err(Failure::Error(message.into()))
}

tokio::task_local! {
    /// Where the AWS calls of this command go, for errors that got no answer.
    static ENDPOINT: String;
}

/// An AWS error as one line; one that got no answer (or no AWS answer) names the endpoint.
fn aws(e: saga_aws::AwsError) -> Failure {
    match ENDPOINT.try_with(Clone::clone) {
        Ok(endpoint) if e.is_unanswered() => Failure::Error(format!("{e} ({endpoint})")),
        _ => Failure::Error(e.to_string()),
    }
}

/// `endpoint URL` of `config` (or of the environment), else the region's AWS endpoints.
fn endpoint_of(config: Option<&saga_aws::SdkConfig>) -> String {
    let url = match config {
        Some(config) => config.endpoint_url().map(str::to_owned),
        None => std::env::var("AWS_ENDPOINT_URL").ok(),
    };
    let region = match config {
        Some(config) => config.region().map(ToString::to_string),
        None => std::env::var("AWS_REGION")
            .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
            .ok(),
    };
    match (url, region) {
        (Some(url), _) => format!("endpoint {url}"),
        (None, Some(region)) => format!("the AWS endpoints of {region}"),
        (None, None) => "the AWS endpoints; no region is set".to_owned(),
    }
}

/// Runs one command line (`args[0]` is the program) over `sagas`, writing to `out`; the exit
/// code of a command that ran (a `watch` or `run` whose saga did not complete ends with 3).
pub fn execute(
    sagas: &[Entry],
    args: Vec<String>,
    out: &mut dyn Write,
) -> Result<ExitCode, Failure> {
    execute_with(sagas, args, out, None)
}

/// [`execute`] with this AWS configuration instead of the environment's.
pub fn execute_with(
    sagas: &[Entry],
    args: Vec<String>,
    out: &mut dyn Write,
    config: Option<saga_aws::SdkConfig>,
) -> Result<ExitCode, Failure> {
    let cli = Cli::try_parse_from(args)?;
    let command = match cli.command {
        Some(command) => command,
        #[cfg(feature = "simulate")]
        None => Operation::Run(args::RunArgs::default()),
        #[cfg(not(feature = "simulate"))]
        None => {
            use clap::CommandFactory;
            return Err(Failure::Usage(Cli::command().error(
                clap::error::ErrorKind::MissingSubcommand,
                "give a subcommand (`run` needs the feature `simulate`)",
            )));
        }
    };
    let runtime = match command {
        // In memory, on a paused clock: retries and timeouts take no time.
        #[cfg(feature = "simulate")]
        Operation::Run(_) => tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build(),
        _ => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build(),
    }
    .map_err(|e| Failure::Error(format!("cannot start the async runtime: {e}")))?;
    if config.is_none()
        && let Ok(url) = std::env::var("AWS_ENDPOINT_URL")
    {
        let scheme = url.strip_prefix("https://").or(url.strip_prefix("http://"));
        if scheme.is_none_or(|rest| rest.is_empty() || rest.contains(char::is_whitespace)) {
            return fail(format!(
                "AWS_ENDPOINT_URL `{url}` is not a URL: give http://HOST:PORT or https://HOST"
            ));
        }
    }
    let endpoint = endpoint_of(config.as_ref());
    runtime.block_on(ENDPOINT.scope(endpoint, command.execute(sagas, out, config)))
}

fn pick<'a>(sagas: &'a [Entry], which: &Which) -> Result<&'a Entry, Failure> {
    match (&which.saga, sagas) {
        (None, [only]) => Ok(only),
        (None, []) => fail("this program declares no saga"),
        (None, _) => fail(format!(
            "this program has {} sagas ({}); choose one with --saga",
            sagas.len(),
            names(sagas)
        )),
        (Some(name), _) => sagas
            .iter()
            .find(|e| e.definition.name == *name)
            .ok_or_else(|| {
                Failure::Error(format!("no saga `{name}` here; there is {}", names(sagas)))
            }),
    }
}

fn names(sagas: &[Entry]) -> String {
    sagas
        .iter()
        .map(|e| format!("`{}`", e.definition.name))
        .collect::<Vec<_>>()
        .join(", ")
}

fn runnable(entry: &Entry) -> Result<&Saga, Failure> {
    entry.saga.as_ref().ok_or_else(|| {
        Failure::Error(format!(
            "saga `{}` was given as a definition only; give the Saga (with its handlers) to run it",
            entry.definition.name
        ))
    })
}

fn parse_bindings(pairs: &[String]) -> Result<Bindings, Failure> {
    let mut bindings = Bindings::new();
    for pair in pairs {
        let Some((key, value)) = pair.split_once('=') else {
            return fail(format!("--bind takes KEY=VALUE, not `{pair}`"));
        };
        bindings.insert(key.to_owned(), value.to_owned());
    }
    Ok(bindings)
}

fn input(entry: &Entry, given: Option<&str>) -> Result<Value, Failure> {
    match given {
        Some(text) => serde_json::from_str(text)
            .map_err(|e| Failure::Error(format!("--input is not JSON: {e}"))),
        None => entry.example_input.clone().ok_or_else(|| {
            Failure::Error(format!(
                "saga `{}` has no example input; give one with --input",
                entry.definition.name
            ))
        }),
    }
}

fn write(out: &mut dyn Write, text: impl std::fmt::Display) -> Result<(), Failure> {
    writeln!(out, "{text}").map_err(|e| Failure::Error(format!("cannot write the output: {e}")))
}

impl Operation {
    async fn execute(
        self,
        sagas: &[Entry],
        out: &mut dyn Write,
        config: Option<saga_aws::SdkConfig>,
    ) -> Result<ExitCode, Failure> {
        let config = || async {
            match &config {
                Some(config) => config.clone(),
                None => saga_aws::config::from_env().await,
            }
        };
        match self {
            Operation::Asl { which, bindings } => {
                let entry = pick(sagas, &which)?;
                let text = if bindings.is_empty() {
                    entry.definition.state_machine().to_json_pretty()
                } else {
                    let rendered =
                        saga_aws::bound_definition(&entry.definition, &parse_bindings(&bindings)?)
                            .map_err(aws)?;
                    let value: Value = serde_json::from_str(&rendered).expect("rendered JSON");
                    serde_json::to_string_pretty(&value).expect("JSON")
                };
                write(out, text)?;
            }
            Operation::Graph { which, format } => {
                let machine = pick(sagas, &which)?.definition.state_machine();
                let text = match format {
                    GraphFormat::Mermaid => saga_core::render::mermaid(&machine),
                    GraphFormat::Dot => saga_core::render::dot(&machine),
                    GraphFormat::Svg => svg(&saga_core::render::dot(&machine))?,
                };
                write(out, text.trim_end())?;
            }
            Operation::Cost { which } => {
                let machine = pick(sagas, &which)?.definition.state_machine();
                write(out, saga_core::analysis::Cost::of(&machine))?;
            }
            Operation::Template {
                which,
                format,
                trigger,
                front_door,
                no_iam_authorization,
            } => {
                let entry = pick(sagas, &which)?;
                let trigger = match trigger {
                    Some(text) => Some(serde_json::from_str(&text).map_err(|e| {
                        Failure::Error(format!("--trigger is not a JSON event pattern: {e}"))
                    })?),
                    None => None,
                };
                let front_door = match (front_door, &entry.input_schema) {
                    (false, _) => None,
                    (true, Some(schema)) => {
                        let mut door = saga_core::cloudformation::FrontDoor::new(schema.clone());
                        door.iam_authorization = !no_iam_authorization;
                        Some(door)
                    }
                    (true, None) => {
                        return fail(format!(
                            "--front-door needs the JSON Schema of saga `{}`'s input: give it \
                             with `Entry::input_schema(saga::schema::input_schema::<Input>())`",
                            entry.definition.name
                        ));
                    }
                };
                let options = saga_core::cloudformation::TemplateOptions {
                    trigger,
                    front_door,
                };
                let template = saga_core::cloudformation::template(&entry.definition, &options);
                let text = match format {
                    TemplateFormat::Yaml => saga_core::cloudformation::to_yaml(&template),
                    TemplateFormat::Json => saga_core::cloudformation::to_json(&template),
                };
                write(out, text.trim_end())?;
            }
            Operation::Deploy {
                which,
                create_queues,
                bindings,
                role_arn,
                allow_stranded,
            } => {
                let entry = pick(sagas, &which)?;
                let config = config().await;
                let role = role_arn.ok_or_else(|| {
                    Failure::Error(
                        "the state machine needs an IAM role: give --role-arn or set SAGA_ROLE_ARN"
                            .into(),
                    )
                })?;
                let mut deploy = DeployedSaga::builder_for(&config, &entry.definition)
                    .role_arn(role)
                    .bindings(parse_bindings(&bindings)?);
                if !create_queues {
                    deploy = deploy.existing_queues();
                }
                for older in &entry.older {
                    deploy = deploy.older_version(older);
                }
                if allow_stranded {
                    deploy = deploy.allow_stranded();
                }
                let deployed = deploy.deploy().await.map_err(aws)?;
                if create_queues {
                    for (participant, url) in deployed.queues() {
                        write(out, format!("queue {participant}: {url}"))?;
                    }
                }
                if let Some(table) = deployed.table() {
                    write(out, format!("table {table}"))?;
                }
                let change = deployed.change().expect("a deploy changes or keeps");
                write(
                    out,
                    format!("state machine {} ({change:?})", deployed.arn()),
                )?;
                if let Some(version) = deployed.version_arn() {
                    write(out, format!("version {version}"))?;
                }
                write(out, format!("new sagas start on {}", deployed.start_arn()))?;
            }
            Operation::Versions { which } => {
                let entry = pick(sagas, &which)?;
                let config = config().await;
                operate::versions(&config, entry, out).await?;
            }
            Operation::Start {
                which,
                id,
                input: given,
            } => {
                let entry = pick(sagas, &which)?;
                let input = input(entry, given.as_deref())?;
                let config = config().await;
                let mut deployed = DeployedSaga::find(&config, &entry.definition)
                    .await
                    .map_err(aws)?;
                if let Some(saga) = &entry.saga {
                    // The input is checked against the handlers before anything starts.
                    deployed = deployed.with_saga(saga.clone()).map_err(aws)?;
                }
                let execution = deployed.start(&id, &input).await.map_err(aws)?;
                let what = if execution.started {
                    "started"
                } else {
                    "already started"
                };
                write(out, format!("saga {id} {what}: {}", execution.arn))?;
            }
            Operation::Watch { which, id } => {
                let entry = pick(sagas, &which)?;
                let config = config().await;
                let deployed = DeployedSaga::find(&config, &entry.definition)
                    .await
                    .map_err(aws)?;
                let outcome = watch(&deployed, &id, out).await?;
                return Ok(exit_for(&outcome));
            }
            Operation::Status { which, id } => {
                let entry = pick(sagas, &which)?;
                let config = config().await;
                let deployed = DeployedSaga::find(&config, &entry.definition)
                    .await
                    .map_err(aws)?;
                operate::status(&deployed, &id, out).await?;
            }
            Operation::Recover { which, id, table } => {
                let entry = pick(sagas, &which)?;
                let config = config().await;
                let deployed = DeployedSaga::find(&config, &entry.definition)
                    .await
                    .map_err(aws)?;
                let table = table
                    .unwrap_or_else(|| saga_aws::store::default_table_name(&entry.definition.name));
                let outcome = operate::recover(&config, &deployed, &id, &table, out).await?;
                return Ok(exit_for(&outcome));
            }
            Operation::Worker {
                which,
                queue,
                concurrency,
                bus,
                table,
                in_memory_store,
                drain_timeout,
            } => {
                let chosen: Vec<&Entry> = match &which.saga {
                    Some(_) => vec![pick(sagas, &which)?],
                    None => sagas.iter().collect(),
                };
                let config = config().await;
                let urls = if queue.is_empty() {
                    let mut urls = Vec::new();
                    for entry in &chosen {
                        // The queues of the older versions too: their sagas in flight send
                        // there.
                        let older = entry.older.iter().map(Saga::definition);
                        for definition in std::iter::once(&entry.definition).chain(older) {
                            let deployed =
                                DeployedSaga::find(&config, definition).await.map_err(aws)?;
                            urls.extend(deployed.queues().values().cloned());
                        }
                    }
                    urls.sort();
                    urls.dedup();
                    urls
                } else {
                    queue
                };
                if urls.is_empty() {
                    return fail("no queue to read: these sagas have no queue participant");
                }
                let mut sagas = Vec::new();
                for entry in &chosen {
                    sagas.push(runnable(entry)?.clone());
                    sagas.extend(entry.older.iter().cloned());
                }
                let options = worker::WorkerOptions {
                    concurrency,
                    bus,
                    table,
                    in_memory_store,
                    drain_timeout: Duration::from_secs(drain_timeout),
                };
                worker::run(&config, &sagas, urls, options, out).await?;
            }
            #[cfg(feature = "simulate")]
            Operation::Run(args) => {
                let entry = pick(sagas, &args.which)?;
                let saga = runnable(entry)?.clone();
                let input = input(entry, args.input.as_deref())?;
                let plan = simulate::plan(&entry.definition, &args)?;
                let outcome = simulate::run(saga, input, plan, out).await?;
                return Ok(exit_for(&outcome));
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// The exit code for a saga that ended with `outcome`: 3 unless it completed.
fn exit_for(outcome: &Outcome) -> ExitCode {
    match outcome {
        Outcome::Completed => ExitCode::SUCCESS,
        _ => ExitCode::from(3),
    }
}
