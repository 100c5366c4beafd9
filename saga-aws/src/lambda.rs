//! Participants as an SQS-triggered Lambda function (being written).
