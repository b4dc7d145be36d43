//! The librdkafka client properties the producer (the sink) and the read-back consumers share:
//! connection, security and the Event Hubs profile, in one place so that neither imports the other.
//! Scanning our topics ([`topic_scan`]) lives here too, for recovery and the backfill.

pub mod eventhubs;
pub mod topic_scan;

use crate::config::Config;
use crate::record::RecordType;

/// The slot of `Health::partition_acks` counting acknowledgements on `kind`'s topic: trades in
/// slot 0, aggTrades in slot 1, or in 0 too when both go to one topic (an acknowledgement there
/// shows that topic's partition is written, whichever record it was). Other kinds are not
/// counted: only trades and aggTrades are read back.
pub fn ack_slot(topics: &[String; RecordType::COUNT], kind: RecordType) -> Option<usize> {
    match kind {
        RecordType::Trade => Some(0),
        RecordType::AggTrade if topics[RecordType::AggTrade as usize] == topics[RecordType::Trade as usize] => Some(0),
        RecordType::AggTrade => Some(1),
        _ => None,
    }
}

/// The effective librdkafka properties, each key once: the ingester's settings, then the Event
/// Hubs profile when the broker is Event Hubs, then the user's `KAFKA_PROPS`, a later value
/// replacing an earlier one. Secrets included, so never log this list unmasked.
pub fn properties(cfg: &Config) -> Vec<(String, String)> {
    let mut p: Vec<(String, String)> = vec![
        ("bootstrap.servers".into(), cfg.kafka_broker.clone()),
        ("client.id".into(), "marketflow-ingestor".into()),
        // Exactly once per partition across retries, and in order: the reason this exists.
        ("enable.idempotence".into(), "true".into()),
        ("acks".into(), "all".into()),
        // The producer thread batches (a 0.5 ms window while records flow, none after a quiet
        // spell: src/sink/producer.rs), so librdkafka only joins the records one turn hands over:
        // its default 5 ms would dominate latency at low rates (see tuning.md).
        ("linger.ms".into(), "0.05".into()),
        ("queue.buffering.max.messages".into(), "1000000".into()),
        ("queue.buffering.max.kbytes".into(), "262144".into()),
        ("statistics.interval.ms".into(), "0".into()),
    ];
    if let Some(proto) = &cfg.kafka_security_protocol {
        p.push(("security.protocol".into(), proto.clone()));
    }
    if let Some(user) = &cfg.kafka_username {
        p.push(("sasl.mechanisms".into(), cfg.kafka_sasl_mechanism.as_librdkafka().into()));
        p.push(("sasl.username".into(), user.clone()));
        p.push(("sasl.password".into(), cfg.kafka_password.expose().to_string()));
    }
    if eventhubs::applies(&cfg.kafka_broker) {
        for (k, v) in eventhubs::PROPERTIES {
            set_property(&mut p, k, v);
        }
    }
    for (k, v) in &cfg.kafka_props {
        set_property(&mut p, k, v);
    }
    p
}

fn set_property(p: &mut Vec<(String, String)>, key: &str, value: &str) {
    match p.iter_mut().find(|(k, _)| k == key) {
        Some((_, v)) => *v = value.to_string(),
        None => p.push((key.to_string(), value.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sasl_properties_follow_the_credentials() {
        let c = crate::config::RawConfig::from_pairs(&[
            ("KAFKA_USERNAME", "$ConnectionString"),
            ("KAFKA_PASSWORD", "pw"),
            ("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
            ("KAFKA_PROPS", "acks=1"),
        ])
        .validate()
        .unwrap();
        let p = properties(&c);
        let get = |k: &str| p.iter().rev().find(|(kk, _)| kk == k).map(|(_, v)| v.as_str());
        assert_eq!(get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(get("sasl.mechanisms"), Some("SCRAM-SHA-512"));
        assert_eq!(get("sasl.username"), Some("$ConnectionString"));
        assert_eq!(get("enable.idempotence"), Some("true"));
        // User overrides come last, so they win.
        assert_eq!(get("acks"), Some("1"));
    }

    #[test]
    fn trades_and_agg_trades_share_an_ack_slot_only_when_they_share_a_topic() {
        let one: [String; RecordType::COUNT] = std::array::from_fn(|_| "market".to_string());
        let mut two = one.clone();
        two[RecordType::AggTrade as usize] = "market.agg".into();
        assert_eq!((ack_slot(&one, RecordType::Trade), ack_slot(&one, RecordType::AggTrade)), (Some(0), Some(0)));
        assert_eq!((ack_slot(&two, RecordType::Trade), ack_slot(&two, RecordType::AggTrade)), (Some(0), Some(1)));
        assert_eq!(ack_slot(&two, RecordType::DepthUpdate), None);
        assert!(RecordType::ALL.iter().filter_map(|k| ack_slot(&two, *k)).all(|s| s < crate::health::ACK_SLOTS));
    }
}
