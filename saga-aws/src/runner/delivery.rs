//! Where a command came from: the message (or the Lambda invocation), its trace context, how
//! often and how long ago it was sent.

/// Where a command came from, for its span: the message (or the Lambda invocation) and its
/// trace context.
#[derive(Debug, Clone, Default)]
pub(crate) struct Delivery {
    /// The queue's name; `None` for a command that invoked a Lambda function directly.
    pub(crate) queue: Option<String>,
    /// The SQS message id, or the Lambda request id of a direct invocation.
    pub(crate) id: String,
    /// How often this message was delivered.
    pub(crate) deliveries: u32,
    /// The W3C `traceparent` message attribute, if any.
    pub(crate) traceparent: Option<String>,
    /// The `AWSTraceHeader` system attribute (X-Ray), or a Lambda invocation's X-Ray trace id.
    pub(crate) aws_trace_header: Option<String>,
    /// When the message was sent (the `SentTimestamp` system attribute, epoch milliseconds).
    pub(crate) sent_at_ms: Option<u64>,
}

impl Delivery {
    /// Whether the command's task may have ended before it got here, so its token must be
    /// checked before its handler runs: a message delivered again (its first delivery may have
    /// been answered, or timed out), or one that waited in the queue for half its step's
    /// heartbeat or more (Step Functions' heartbeat clock runs from the moment it sent the
    /// command). A fresh first delivery is live: its task is younger than its heartbeat, and
    /// the answer itself says if it was not, so the normal path costs no extra request.
    ///
    /// A direct Lambda invocation (no queue) may always be dead: Lambda retries a failed
    /// asynchronous invocation after a minute and two, and a throttled one for up to six hours,
    /// and tells the function neither how often nor since when.
    pub(crate) fn may_be_dead(&self, heartbeat_seconds: u32, now_ms: u64) -> bool {
        let half_heartbeat_ms = u64::from(heartbeat_seconds) * 500;
        self.queue.is_none()
            || self.deliveries > 1
            || self
                .sent_at_ms
                .is_some_and(|sent| now_ms.saturating_sub(sent) >= half_heartbeat_ms)
    }

    /// The trace id and the parent span id the command carries: from the message's
    /// `traceparent`, else the one `carried` in the command itself (a direct Lambda
    /// invocation's), both `00-<trace>-<parent>-<flags>`; else from X-Ray's
    /// `Root=1-<8>-<24>;Parent=<16>`.
    pub(crate) fn parent(&self, carried: Option<&str>) -> Option<(String, String)> {
        if let Some(tp) = self.traceparent.as_deref().or(carried) {
            let parts: Vec<&str> = tp.split('-').collect();
            if let [_, trace, parent, _] = parts.as_slice()
                && trace.len() == 32
                && parent.len() == 16
            {
                return Some(((*trace).to_owned(), (*parent).to_owned()));
            }
        }
        let header = self.aws_trace_header.as_deref()?;
        let field = |name: &str| {
            header
                .split(';')
                .find_map(|kv| kv.trim().strip_prefix(name)?.strip_prefix('='))
        };
        let root = field("Root")?.strip_prefix("1-")?.replace('-', "");
        let parent = field("Parent")?;
        (root.len() == 32 && parent.len() == 16).then(|| (root, parent.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parent_comes_from_traceparent_else_from_the_xray_header() {
        let mut delivery = Delivery {
            traceparent: Some("00-ab8e7263ab3ab8220b9ada31fa9c435c-3eeb7e96e59ce40f-01".into()),
            aws_trace_header: Some(
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1".into(),
            ),
            ..Delivery::default()
        };
        assert_eq!(
            delivery.parent(None),
            Some((
                "ab8e7263ab3ab8220b9ada31fa9c435c".into(),
                "3eeb7e96e59ce40f".into()
            ))
        );
        delivery.traceparent = Some("garbage".into());
        assert_eq!(
            delivery.parent(None),
            Some((
                "5759e988bd862e3fe1be46a994272793".into(),
                "53995c3f42cd8ad8".into()
            ))
        );
        delivery.aws_trace_header = Some("Root=1-5759e988;Parent=x".into());
        assert_eq!(delivery.parent(None), None);
    }

    #[test]
    fn only_a_redelivered_or_aged_message_or_a_direct_invocation_may_be_dead() {
        let sent = 1_000_000;
        let direct = Delivery {
            deliveries: 1,
            ..Delivery::default()
        };
        assert!(direct.may_be_dead(10, 0), "a direct invocation has no age");
        let fresh = Delivery {
            queue: Some("orders".into()),
            deliveries: 1,
            sent_at_ms: Some(sent),
            ..Delivery::default()
        };
        assert!(!fresh.may_be_dead(10, sent + 4_999));
        assert!(
            fresh.may_be_dead(10, sent + 5_000),
            "half the heartbeat gone"
        );
        let again = Delivery {
            deliveries: 2,
            ..fresh.clone()
        };
        assert!(again.may_be_dead(10, sent));
        let unknown_age = Delivery {
            sent_at_ms: None,
            ..fresh
        };
        assert!(!unknown_age.may_be_dead(10, u64::MAX));
    }
}
