//! The command line's arguments: the subcommands and their options, as clap parses them.

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    about = "Print, draw, price, deploy, run and watch sagas",
    long_about = "Print, draw, price, deploy, run and watch the sagas of this program.\n\n\
                  Without a subcommand, `run` runs the (only) saga in memory (feature `simulate`).",
    after_help = "Examples:\n  order asl\n  order graph --format dot\n  order run --fail charge_payment\n  order deploy --create-queues && order worker & order start o-1 && order watch o-1"
)]
pub(super) struct Cli {
    #[command(subcommand)]
    pub(super) command: Option<Operation>,
}

#[derive(Debug, Args, Default, Clone)]
pub(super) struct Which {
    /// The saga (its name); optional when the program has one.
    #[arg(long, short)]
    pub(super) saga: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub(super) enum GraphFormat {
    /// A Mermaid flowchart.
    #[default]
    Mermaid,
    /// Graphviz DOT.
    Dot,
    /// SVG, drawn by Graphviz's `dot` (which must be installed).
    Svg,
}

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub(super) enum TemplateFormat {
    /// YAML, with comments.
    #[default]
    Yaml,
    /// JSON.
    Json,
}

// What the user asked the command line to do: one subcommand and its options. (A plain
// comment: clap would show a doc comment in the help.)
#[derive(Debug, Subcommand)]
pub(super) enum Operation {
    /// Print the saga's state machine (Amazon States Language).
    #[command(
        after_help = "Examples:\n  order asl\n  order asl --bind InventoryQueueUrl=https://sqs.../inventory --bind ..."
    )]
    Asl {
        #[command(flatten)]
        which: Which,
        /// Fill in a deploy-time substitution, `KEY=VALUE` (all of them, or none).
        #[arg(long = "bind", value_name = "KEY=VALUE")]
        bindings: Vec<String>,
    },
    /// Draw the state machine: Mermaid, DOT, or SVG with Graphviz.
    #[command(after_help = "Examples:\n  order graph\n  order graph --format svg > order.svg")]
    Graph {
        #[command(flatten)]
        which: Which,
        /// The drawing's format.
        #[arg(long, value_enum, default_value_t)]
        format: GraphFormat,
    },
    /// State transitions per path, and the price per million sagas (Standard workflows).
    #[command(after_help = "Example:\n  order cost")]
    Cost {
        #[command(flatten)]
        which: Which,
    },
    /// A CloudFormation template: state machine, queues, bus, table, least-privilege roles.
    #[command(
        after_help = "Examples:\n  order template > order.yaml\n  order template --trigger '{\"source\":[\"shop\"],\"detail-type\":[\"OrderPlaced\"]}'\n  order template --front-door"
    )]
    Template {
        #[command(flatten)]
        which: Which,
        /// YAML (with comments) or JSON.
        #[arg(long, value_enum, default_value_t)]
        format: TemplateFormat,
        /// An EventBridge event pattern (JSON) that starts the saga: adds a trigger rule.
        #[arg(long, value_name = "PATTERN")]
        trigger: Option<String>,
        /// Add a front door: an API Gateway REST API whose `POST /sagas` starts the saga (named
        /// after the `Idempotency-Key` header, the body checked against the input's JSON Schema)
        /// and whose `GET /sagas/{id}` answers its status.
        #[arg(long)]
        front_door: bool,
        /// With --front-door: let anyone who can reach the API call it (by default a caller
        /// needs IAM authorization, a SigV4-signed request).
        #[arg(long, requires = "front_door")]
        no_iam_authorization: bool,
    },
    /// Create or update the state machine (and, with --create-queues, the participants' queues).
    #[command(
        after_help = "Examples:\n  order deploy --create-queues\n  order deploy --bind InventoryQueueUrl=https://sqs.../inventory --role-arn arn:aws:iam::...:role/order"
    )]
    Deploy {
        #[command(flatten)]
        which: Which,
        /// Create a queue (with a dead-letter queue) per queue participant, `<saga>-<participant>`,
        /// and the participants' idempotency table, `<saga>-idempotency`.
        #[arg(long)]
        create_queues: bool,
        /// A substitution, `KEY=VALUE` (queue URLs, function ARNs, `EventBusName`).
        #[arg(long = "bind", value_name = "KEY=VALUE")]
        bindings: Vec<String>,
        /// The IAM role the state machine runs as (default: `SAGA_ROLE_ARN`).
        #[arg(long, env = "SAGA_ROLE_ARN")]
        role_arn: Option<String>,
        /// Deploy even if sagas in flight run a version this program has no handlers for (see
        /// `versions`): their commands go to the dead-letter queues, and their steps time out
        /// (then are retried, compensated or reported stuck, as their policies say).
        #[arg(long)]
        allow_stranded: bool,
    },
    /// List the sagas in flight by the version of the state machine they run, and whether this
    /// program's handlers (its saga and the older versions it keeps) can finish them.
    #[command(
        after_help = "Examples:\n  order versions\n  order deploy --create-queues     # refused while a version in flight has no handlers here"
    )]
    Versions {
        #[command(flatten)]
        which: Which,
    },
    /// Start a saga: an execution named by the saga id (starting it twice starts it once).
    #[command(after_help = "Example:\n  order start o-1 --input '{\"order_id\":\"o-1\", ...}'")]
    Start {
        #[command(flatten)]
        which: Which,
        /// The saga id.
        id: String,
        /// The saga input (a JSON object; default: the program's example input).
        #[arg(long)]
        input: Option<String>,
    },
    /// Follow a saga live: each step as it runs, its attempts and outcome.
    #[command(after_help = "Example:\n  order watch o-1")]
    Watch {
        #[command(flatten)]
        which: Which,
        /// The saga id.
        id: String,
    },
    /// Where a saga stands: its status, what ran, and its outcome.
    #[command(after_help = "Example:\n  order status o-1")]
    Status {
        #[command(flatten)]
        which: Which,
        /// The saga id.
        id: String,
    },
    /// Recover a stuck saga once its cause is fixed: the action that gave up runs again (under
    /// its idempotency key; nothing that succeeded runs twice), and the saga goes on to its end.
    #[command(
        after_help = "Examples:\n  order status o-1     # Stuck: waiting for an operator\n  order recover o-1\n  order recover o-1 --table order-idempotency"
    )]
    Recover {
        #[command(flatten)]
        which: Which,
        /// The saga id.
        id: String,
        /// The participants' DynamoDB idempotency table, where the failure that stopped the saga
        /// is kept (default: `SAGA_IDEMPOTENCY_TABLE`, else `<saga>-idempotency`).
        #[arg(long, env = "SAGA_IDEMPOTENCY_TABLE")]
        table: Option<String>,
    },
    /// Run the participants of the sagas: answer their commands on a queue until SIGINT or SIGTERM.
    #[command(
        after_help = "Examples:\n  order worker                     # every queue participant, queues and table named as by deploy --create-queues\n  order worker --queue https://sqs.../order-inventory --table order-idempotency"
    )]
    Worker {
        #[command(flatten)]
        which: Which,
        /// The queue to read (default: every queue participant's, as `deploy --create-queues` names them).
        #[arg(long)]
        queue: Vec<String>,
        /// Commands handled at once, per queue.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Publish saga events on this EventBridge bus.
        #[arg(long)]
        bus: Option<String>,
        /// The DynamoDB idempotency table (default: `SAGA_IDEMPOTENCY_TABLE`, else
        /// `<saga>-idempotency`, as `deploy --create-queues` creates it).
        #[arg(long, conflicts_with = "in_memory_store")]
        table: Option<String>,
        /// Keep idempotency records in memory (a demo: a restart forgets them, and redelivered
        /// commands run again).
        #[arg(long)]
        in_memory_store: bool,
        /// Seconds a graceful stop (SIGINT or SIGTERM) may take before the commands still
        /// running are released for redelivery; a second signal stops at once.
        #[arg(long, default_value_t = 30, value_name = "SECONDS")]
        drain_timeout: u64,
    },
    /// Run the saga in memory (no AWS), optionally with injected failures.
    #[cfg(feature = "simulate")]
    #[command(
        after_help = "Examples:\n  order run\n  order run --fail charge_payment\n  order run --flaky reserve_stock --timeout ship_order"
    )]
    Run(RunArgs),
}

#[cfg(feature = "simulate")]
#[derive(Debug, Args, Default)]
pub(super) struct RunArgs {
    #[command(flatten)]
    pub(super) which: Which,
    /// The saga input (a JSON object; default: the program's example input).
    #[arg(long)]
    pub(super) input: Option<String>,
    /// Make STEP fail with a terminal error (the compensation runs).
    #[arg(long, value_name = "STEP")]
    pub(super) fail: Vec<String>,
    /// Make STEP fail with a retryable error on its first two attempts (the retries run).
    #[arg(long, value_name = "STEP")]
    pub(super) flaky: Vec<String>,
    /// Make STEP's first attempt get no answer (it times out and is retried).
    #[arg(long, value_name = "STEP")]
    pub(super) timeout: Vec<String>,
}
