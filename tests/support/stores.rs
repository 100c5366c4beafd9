//! The two idempotency stores the properties run on: the in-memory one, and DynamoDB on the
//! local emulator (started by the tests, never skipped).
//!
//! The in-memory executor of the properties runs on a paused clock, which moves to the next
//! timer whenever the runtime waits: a DynamoDB request awaited there would let every step's
//! timeout fire while the request is on the wire. So [`Blocking`] runs each request on a
//! runtime of its own, on the real clock, and holds the paused runtime's one thread until the
//! answer is in: for the executor, a request takes no time, as an in-memory one does.

use std::sync::{Arc, OnceLock, mpsc};
use std::time::Duration;

use async_trait::async_trait;
use saga::{
    Claim, IdempotencyError, IdempotencyKey, IdempotencyStore, InMemoryIdempotencyStore, Lease,
    Lock, PayloadHash, StoredOutcome,
};
use saga_aws::dynamodb::DynamoDbIdempotencyStore;
use saga_aws::testing::Emulator;

/// Which store a property runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    InMemory,
    DynamoDb,
}

impl StoreKind {
    pub const ALL: [StoreKind; 2] = [StoreKind::InMemory, StoreKind::DynamoDb];

    /// A store of this kind. DynamoDB's is one table for the whole test binary, on the
    /// shared emulator: callers give each saga an id of its own ([`StoreKind::saga_id`]).
    pub fn store(self) -> Arc<dyn IdempotencyStore> {
        match self {
            StoreKind::InMemory => Arc::new(InMemoryIdempotencyStore::new()),
            StoreKind::DynamoDb => dynamodb().clone(),
        }
    }

    /// A saga id no earlier saga of this store used.
    pub fn saga_id(self) -> String {
        match self {
            StoreKind::InMemory => "saga-1".to_owned(),
            StoreKind::DynamoDb => Emulator::unique("saga"),
        }
    }
}

/// The real clock's runtime that DynamoDB requests run on.
fn aws_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime for the AWS SDK")
    })
}

/// The DynamoDB store on a table created once, blocking.
fn dynamodb() -> &'static Arc<dyn IdempotencyStore> {
    static STORE: OnceLock<Arc<dyn IdempotencyStore>> = OnceLock::new();
    STORE.get_or_init(|| {
        let store = aws_runtime().block_on(async {
            let config = Emulator::shared().config().await;
            let store = DynamoDbIdempotencyStore::new(&config, Emulator::unique("properties"));
            store
                .create_table()
                .await
                .expect("create the idempotency table on the emulator");
            store
        });
        Arc::new(Blocking(Arc::new(store)))
    })
}

/// A store whose requests run on [`aws_runtime`], the caller's thread held meanwhile.
#[derive(Debug)]
pub struct Blocking(Arc<dyn IdempotencyStore>);

impl Blocking {
    fn wait<T: Send + 'static>(&self, request: impl Future<Output = T> + Send + 'static) -> T {
        let (answer, answered) = mpsc::channel();
        aws_runtime().spawn(async move {
            let _ = answer.send(request.await);
        });
        answered
            .recv()
            .expect("the store's request ran to an answer")
    }
}

#[async_trait]
impl IdempotencyStore for Blocking {
    async fn claim(
        &self,
        key: &IdempotencyKey,
        payload: PayloadHash,
        lease: Duration,
    ) -> Result<Claim, IdempotencyError> {
        let (store, key) = (self.0.clone(), key.clone());
        self.wait(async move { store.claim(&key, payload, lease).await })
    }

    async fn complete(
        &self,
        lease: &Lease,
        outcome: StoredOutcome,
    ) -> Result<(), IdempotencyError> {
        let (store, lease) = (self.0.clone(), lease.clone());
        self.wait(async move { store.complete(&lease, outcome).await })
    }

    async fn release(&self, lease: &Lease) -> Result<(), IdempotencyError> {
        let (store, lease) = (self.0.clone(), lease.clone());
        self.wait(async move { store.release(&lease).await })
    }

    async fn lock(&self, key: &IdempotencyKey) -> Result<Lock, IdempotencyError> {
        let (store, key) = (self.0.clone(), key.clone());
        self.wait(async move { store.lock(&key).await })
    }

    async fn forget_failure(&self, key: &IdempotencyKey) -> Result<bool, IdempotencyError> {
        let (store, key) = (self.0.clone(), key.clone());
        self.wait(async move { store.forget_failure(&key).await })
    }
}
