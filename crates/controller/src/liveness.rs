//! Heartbeat bookkeeping of the active controller (Kafka's
//! `BrokerHeartbeatManager`), with time passed in.
//!
//! This state is not in the metadata log: it belongs to the active
//! controller only. A newly elected active controller calls
//! [`BrokerLiveness::reset`] so that no broker is fenced for heartbeats it
//! sent to the previous one.

use std::collections::BTreeMap;

use odradek_metadata::MetadataImage;

/// When each broker last heartbeated, in milliseconds of the caller's
/// clock. A broker is alive while `now_ms - last_heartbeat_ms <=
/// session_timeout_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerLiveness {
    session_timeout_ms: i64,
    last_heartbeat_ms: BTreeMap<i32, i64>,
}

impl BrokerLiveness {
    pub fn new(session_timeout_ms: i64) -> Self {
        BrokerLiveness {
            session_timeout_ms,
            last_heartbeat_ms: BTreeMap::new(),
        }
    }

    pub fn session_timeout_ms(&self) -> i64 {
        self.session_timeout_ms
    }

    /// Records a heartbeat (or a registration). Time never goes back: an
    /// older `now_ms` than the last one seen is ignored.
    pub fn heartbeat(&mut self, broker_id: i32, now_ms: i64) {
        let last = self.last_heartbeat_ms.entry(broker_id).or_insert(now_ms);
        *last = (*last).max(now_ms);
    }

    /// Whether the broker heartbeated within the session timeout. A broker
    /// never heard from is not alive.
    pub fn is_alive(&self, broker_id: i32, now_ms: i64) -> bool {
        self.last_heartbeat_ms
            .get(&broker_id)
            .is_some_and(|&last| now_ms.saturating_sub(last) <= self.session_timeout_ms)
    }

    /// A newly elected active controller does not know when brokers last
    /// heartbeated: it forgets everything and gives every registered
    /// broker a full session from `now_ms`.
    pub fn reset(&mut self, brokers: impl IntoIterator<Item = i32>, now_ms: i64) {
        self.last_heartbeat_ms = brokers.into_iter().map(|b| (b, now_ms)).collect();
    }

    /// Unfenced brokers (per the image) whose session expired: to be
    /// fenced. Brokers in controlled shutdown are unfenced and count too.
    /// Sorted by broker id.
    pub fn expired(&self, image: &MetadataImage, now_ms: i64) -> Vec<i32> {
        image
            .brokers()
            .filter(|b| !b.fenced && !self.is_alive(b.broker_id, now_ms))
            .map(|b| b.broker_id)
            .collect()
    }

    pub fn forget(&mut self, broker_id: i32) {
        self.last_heartbeat_ms.remove(&broker_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;

    #[test]
    fn sessions() {
        let mut l = BrokerLiveness::new(100);
        l.heartbeat(1, 1000);
        // (broker, now) -> alive
        let cases = [
            (1, 1000, true),
            (1, 1100, true),
            (1, 1101, false),
            (2, 1000, false),
        ];
        for (b, now, alive) in cases {
            assert_eq!(l.is_alive(b, now), alive, "{b} at {now}");
        }
        l.heartbeat(1, 1050);
        assert!(l.is_alive(1, 1150));
        l.heartbeat(1, 900);
        assert!(
            l.is_alive(1, 1150),
            "an older heartbeat does not shorten the session"
        );
        l.forget(1);
        assert!(!l.is_alive(1, 1000));
    }

    #[test]
    fn expiry_and_reset() {
        let image = cluster(&[(1, Up), (2, Up), (3, Fenced), (4, ShuttingDown)]);
        let mut l = BrokerLiveness::new(100);
        assert_eq!(l.expired(&image, 0), vec![1, 2, 4], "never heard from");
        l.heartbeat(1, 0);
        l.heartbeat(2, 50);
        l.heartbeat(4, 0);
        // now -> expired
        let cases: &[(i64, &[i32])] = &[(100, &[]), (101, &[1, 4]), (151, &[1, 2, 4])];
        for &(now, want) in cases {
            assert_eq!(l.expired(&image, now), want, "at {now}");
        }
        l.reset(image.brokers().map(|b| b.broker_id), 1000);
        assert!(l.expired(&image, 1100).is_empty());
        assert_eq!(l.expired(&image, 1101), vec![1, 2, 4]);
        assert!(l.is_alive(3, 1000), "fenced brokers get a session too");
    }
}
