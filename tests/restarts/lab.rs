//! A case's saga deployed on the emulator with its queue and table, and worker processes.

use super::*;

/// One case's saga, deployed with its queue and table.
pub(crate) struct Lab {
    pub(crate) config: saga_aws::SdkConfig,
    pub(crate) endpoint: String,
    pub(crate) sfn: StepFunctions,
    pub(crate) machine: String,
    pub(crate) name: String,
    pub(crate) queue: ParticipantQueue,
    pub(crate) ledger: PathBuf,
}

impl Lab {
    pub(crate) async fn new(visibility_seconds: u32) -> Lab {
        let name = Emulator::unique("restarts");
        let lab = Lab::on(Emulator::shared(), name, visibility_seconds).await;
        let _ = std::fs::remove_file(&lab.ledger);
        lab
    }

    /// The saga `name`, its queue and table, deployed on `emulator` (again, after a restart:
    /// the queue's URL is the same).
    pub(crate) async fn on(emulator: &Emulator, name: String, visibility_seconds: u32) -> Lab {
        let config = emulator.config().await;
        let queue = Queues::new(&config)
            .create(
                &format!("{name}-svc"),
                &saga_aws::QueueOptions::default()
                    .visibility_timeout(std::time::Duration::from_secs(visibility_seconds.into())),
            )
            .await
            .expect("queue");
        DynamoDbIdempotencyStore::new(&config, saga_aws::store::default_table_name(&name))
            .create_table()
            .await
            .expect("table");
        let saga = Ledgered {
            ledger: PathBuf::new(),
        }
        .into_saga()
        .renamed(name.clone())
        .unwrap();
        let mut bindings = Bindings::new();
        bindings.insert(
            saga::asl::substitution_key(&saga::Participant::queue("svc")),
            queue.url.clone(),
        );
        let sfn = StepFunctions::new(&config, Emulator::ROLE_ARN);
        let machine = sfn
            .deploy(saga.definition(), &bindings)
            .await
            .expect("deploy")
            .arn;
        let ledger = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.ledger"));
        Lab {
            config,
            endpoint: emulator.endpoint().to_owned(),
            sfn,
            machine,
            name,
            queue,
            ledger,
        }
    }

    pub(crate) fn worker(&self) -> WorkerProcess {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["worker", "--queue", &self.queue.url, "--concurrency", "8"])
            .args(["--drain-timeout", "20"])
            .env(LEDGER_ENV, &self.ledger)
            .env(NAME_ENV, &self.name)
            .env(OWNER_ENV, std::process::id().to_string())
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("RUST_LOG", "warn")
            .env_remove("AWS_PROFILE")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the worker");
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let logs = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                logs.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let (ready, is_ready) = std::sync::mpsc::channel();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("worker on ") {
                    let _ = ready.send(());
                }
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        is_ready
            .recv_timeout(Duration::from_secs(60))
            .expect("the worker names its queue within 60 s");
        WorkerProcess { child, lines }
    }

    pub(crate) async fn start(&self, ids: &[String]) {
        for id in ids {
            self.sfn
                .start(&self.machine, id, &json!({ "id": id }))
                .await
                .expect("start");
        }
    }

    /// Waits until every saga of `ids` has ended, at most `limit`; their statuses.
    pub(crate) async fn wait(&self, ids: &[String], limit: Duration) -> BTreeMap<String, Status> {
        let deadline = Instant::now() + limit;
        let mut ended = BTreeMap::new();
        for id in ids {
            let arn = saga_aws::execution_arn(&self.machine, id);
            let left = deadline.saturating_duration_since(Instant::now());
            let wait = Wait::default().every(Duration::from_millis(250));
            match self.sfn.wait(&arn, wait.at_most(left)).await {
                Ok(state) => ended.insert(id.clone(), state.status),
                Err(e) => panic!(
                    "{} of {} sagas ended within {limit:?}: {e}",
                    ended.len(),
                    ids.len()
                ),
            };
        }
        ended
    }

    /// How often each idempotency key's handler ran.
    pub(crate) fn runs(&self) -> BTreeMap<String, usize> {
        let text = std::fs::read_to_string(&self.ledger).unwrap_or_default();
        let mut runs = BTreeMap::new();
        for line in text.lines() {
            *runs.entry(line.to_owned()).or_default() += 1;
        }
        runs
    }

    /// The keys the table records as COMPLETE now.
    pub(crate) async fn completed_keys(&self) -> BTreeSet<String> {
        let dynamodb = aws_sdk_dynamodb::Client::new(&self.config);
        let table = saga_aws::store::default_table_name(&self.name);
        let mut keys = BTreeSet::new();
        let mut start = None;
        loop {
            let page = dynamodb
                .scan()
                .table_name(&table)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("scan");
            for item in page.items() {
                let field = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
                if field("state").as_deref() == Some("COMPLETE") {
                    keys.extend(field("key"));
                }
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return keys;
            }
        }
    }

    /// Waits until the ledger has at least `lines` lines.
    pub(crate) async fn wait_for_runs(&self, lines: usize) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.runs().values().sum::<usize>() < lines {
            assert!(
                Instant::now() < deadline,
                "fewer than {lines} runs within 120 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A worker process, killed when dropped (however the case ends).
pub(crate) struct WorkerProcess {
    pub(crate) child: Child,
    pub(crate) lines: Arc<Mutex<String>>,
}

impl WorkerProcess {
    pub(crate) fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    /// Sends SIGTERM and waits for the process to end (at most `limit`); its output.
    pub(crate) fn terminate(&mut self, limit: Duration) -> String {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the worker did not stop within {limit:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        // The reader has the rest once the pipe closes.
        std::thread::sleep(Duration::from_millis(200));
        let out = self.lines.lock().unwrap().clone();
        assert!(status.success(), "{status:?}: {out}");
        out
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
