//! Participant queues: one SQS queue per participant, each with a dead-letter queue that takes a
//! message after `max_receive_count` receives, so a poison message never blocks the others.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::QueueAttributeName;

use crate::error::AwsError;

/// A participant's queue and its dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantQueue {
    /// The queue's URL (what the state machine sends to).
    pub url: String,
    /// The queue's ARN.
    pub arn: String,
    /// The dead-letter queue's URL.
    pub dlq_url: String,
}

/// The queue a deployed saga's participant reads unless told otherwise:
/// `<saga>-<participant>`.
pub fn queue_name(saga: &str, participant: &str) -> String {
    format!("{saga}-{participant}")
}

/// How participant queues are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueOptions {
    max_receive_count: u32,
    visibility_timeout: Duration,
}

impl Default for QueueOptions {
    /// A message goes to the dead-letter queue after 5 receives; a received message stays
    /// hidden for 60 s (a worker keeps it hidden for as long as its handler runs).
    fn default() -> Self {
        Self {
            max_receive_count: 5,
            visibility_timeout: Duration::from_secs(60),
        }
    }
}

impl QueueOptions {
    /// Moves a message to the dead-letter queue after this many receives (at least 1).
    pub fn max_receive_count(mut self, count: u32) -> Self {
        self.max_receive_count = count.max(1);
        self
    }

    /// Hides a received message for this long (whole seconds, at most SQS's 12 hours).
    pub fn visibility_timeout(mut self, timeout: Duration) -> Self {
        self.visibility_timeout = timeout.min(Duration::from_secs(12 * 60 * 60));
        self
    }
}

/// Creates participant queues.
#[derive(Debug, Clone)]
pub struct Queues {
    client: Client,
}

impl Queues {
    /// A client from an SDK configuration.
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            client: Client::new(config),
        }
    }

    /// Creates (or finds) the queue `name` and its dead-letter queue `name-dlq`, with a redrive
    /// policy and visibility timeout from `options`. Creating the same queues again returns the
    /// same URLs.
    pub async fn create(
        &self,
        name: &str,
        options: &QueueOptions,
    ) -> Result<ParticipantQueue, AwsError> {
        let dlq_url = self
            .create_queue(&format!("{name}-dlq"), Vec::new())
            .await?;
        let dlq_arn = self.arn(&dlq_url).await?;
        let redrive = serde_json::json!({
            "deadLetterTargetArn": dlq_arn,
            "maxReceiveCount": options.max_receive_count.to_string(),
        });
        let url = self
            .create_queue(
                name,
                vec![
                    (QueueAttributeName::RedrivePolicy, redrive.to_string()),
                    (
                        QueueAttributeName::VisibilityTimeout,
                        options.visibility_timeout.as_secs().to_string(),
                    ),
                ],
            )
            .await?;
        let arn = self.arn(&url).await?;
        Ok(ParticipantQueue { url, arn, dlq_url })
    }

    /// The URL of the queue called `name`.
    pub async fn url_of(&self, name: &str) -> Result<String, AwsError> {
        let out = self
            .client
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("GetQueueUrl", e))?;
        out.queue_url.ok_or(AwsError::Unexpected {
            operation: "GetQueueUrl",
            message: "no queue URL".into(),
        })
    }

    async fn create_queue(
        &self,
        name: &str,
        attributes: Vec<(QueueAttributeName, String)>,
    ) -> Result<String, AwsError> {
        let mut request = self.client.create_queue().queue_name(name);
        for (key, value) in attributes {
            request = request.attributes(key, value);
        }
        let out = request
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("CreateQueue", e))?;
        out.queue_url.ok_or(AwsError::Unexpected {
            operation: "CreateQueue",
            message: "no queue URL".into(),
        })
    }

    async fn arn(&self, url: &str) -> Result<String, AwsError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("GetQueueAttributes", e))?;
        out.attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .ok_or(AwsError::Unexpected {
                operation: "GetQueueAttributes",
                message: "no QueueArn".into(),
            })
    }
}
