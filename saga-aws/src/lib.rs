//! The AWS runtime for `saga` (Step Functions, SQS, EventBridge, DynamoDB). Empty until the AWS issue lands.
