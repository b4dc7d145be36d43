//! The Azure Event Hubs profile: the librdkafka settings Microsoft documents for Event Hubs' Kafka
//! endpoint, applied when any bootstrap host is an Event Hubs namespace
//! (`<ns>.servicebus.windows.net`). Each one is a default only: `KAFKA_PROPS` overrides it.
//!
//! Source: "Apache Kafka client configurations for Azure Event Hubs", section "librdkafka
//! configuration properties", and its Java section for the idle-connection and request-size limits
//! the service enforces: <https://learn.microsoft.com/azure/event-hubs/apache-kafka-configurations>.
//! The login itself (SASL_SSL, PLAIN, username `$ConnectionString`, password the connection
//! string) follows from KAFKA_USERNAME / KAFKA_PASSWORD_FILE: credentials turn on SASL_SSL and PLAIN
//! is the default mechanism (see `src/config/`). Event Hubs takes no compression but gzip; the
//! ingester sets none.

/// Hosts of Event Hubs namespaces (public Azure cloud).
pub const HOST_SUFFIX: &str = ".servicebus.windows.net";

/// The profile, in the order applied.
pub const PROPERTIES: &[(&str, &str)] = &[
    // Azure drops inbound TCP connections idle for more than 240 s; TCP keepalives keep a quiet
    // producer's connections open ("required to prevent idle connection closure").
    ("socket.keepalive.enable", "true"),
    // And where a connection does go idle, close it ourselves first (below 240 s) rather than
    // send on one Azure has already dropped, which shows up as expired batches.
    ("connections.max.idle.ms", "180000"),
    // Refresh metadata inside the same 240 s window (librdkafka's default is 900 s).
    ("metadata.max.age.ms", "180000"),
    // Event Hubs holds requests for at least 20 s internally; Microsoft recommends 60 s (also what
    // the idempotent producer needs), librdkafka's default is 30 s.
    ("request.timeout.ms", "60000"),
    // The service closes the connection on a request above 1,046,528 bytes.
    ("message.max.bytes", "1000000"),
];

/// Whether any host of a `host:port[,host:port...]` list is an Event Hubs namespace.
pub fn applies(bootstrap: &str) -> bool {
    bootstrap.split(',').any(|b| {
        let b = b.trim();
        let host = b.rsplit_once(':').map_or(b, |(h, _)| h);
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        host.len() > HOST_SUFFIX.len() && host.ends_with(HOST_SUFFIX)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_to_event_hubs_namespaces_only() {
        // TC0: the documented form
        assert!(applies("ns.servicebus.windows.net:9093"));
        // TC1: one of several hosts, any case, a trailing dot (fully qualified)
        assert!(applies("kafka-a:9092, My-NS.ServiceBus.Windows.Net.:9093"));
        // TC2: no port
        assert!(applies("ns.servicebus.windows.net"));
        // TC3: not Event Hubs
        assert!(!applies("localhost:9092"));
        assert!(!applies("127.0.0.1:9094,broker.example.com:9093"));
        // TC4: look-alikes
        assert!(!applies("servicebus.windows.net:9093"));
        assert!(!applies(".servicebus.windows.net:9093"));
        assert!(!applies("ns.servicebus.windows.net.evil.example:9093"));
        assert!(!applies("nsservicebus.windows.net:9093"));
    }

    fn effective(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        crate::kafka_client::properties(&crate::config::RawConfig::from_pairs(pairs).validate().unwrap())
    }

    /// What librdkafka itself holds once it has parsed `props` (no client is created, nothing
    /// connects): an unknown property name or a value it rejects fails here.
    fn librdkafka_value(props: &[(String, String)], key: &str) -> String {
        let mut cc = rdkafka::ClientConfig::new();
        for (k, v) in props {
            cc.set(k, v);
        }
        cc.create_native_config().expect("librdkafka accepts every property").get(key).unwrap()
    }

    #[test]
    fn event_hubs_gets_the_documented_settings_and_overrides_win() {
        let p = effective(&[
            ("KAFKA_BROKER", "ns.servicebus.windows.net:9093"),
            ("KAFKA_USERNAME", "$ConnectionString"),
            ("KAFKA_PASSWORD", "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=s"),
            ("KAFKA_PROPS", "request.timeout.ms=45000;linger.ms=2"),
        ]);
        let mut keys: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), p.len(), "each property once: {p:?}");
        for (key, want) in [
            ("socket.keepalive.enable", "true"),
            ("connections.max.idle.ms", "180000"),
            ("metadata.max.age.ms", "180000"),
            ("message.max.bytes", "1000000"),
            // KAFKA_PROPS beats the profile and the ingester's own defaults.
            ("request.timeout.ms", "45000"),
            ("linger.ms", "2"),
            // The login Event Hubs wants follows from the credentials.
            ("security.protocol", "sasl_ssl"),
            ("sasl.mechanisms", "PLAIN"),
            ("enable.idempotence", "true"),
        ] {
            assert_eq!(librdkafka_value(&p, key), want, "{key}");
        }
        let max: u64 = librdkafka_value(&p, "message.max.bytes").parse().unwrap();
        assert!(max <= 1_000_000, "below Event Hubs' 1,046,528-byte request limit");
    }

    #[test]
    fn the_profile_is_off_for_other_brokers_and_each_setting_can_be_overridden() {
        let p = effective(&[("KAFKA_BROKER", "127.0.0.1:9094")]);
        for (key, _) in PROPERTIES {
            assert!(p.iter().all(|(k, _)| k != key), "{key} set for a broker that is not Event Hubs: {p:?}");
        }
        // librdkafka's own defaults then.
        assert_eq!(librdkafka_value(&p, "socket.keepalive.enable"), "false");
        assert_eq!(librdkafka_value(&p, "metadata.max.age.ms"), "900000");

        let overrides: String = PROPERTIES
            .iter()
            .map(|(k, _)| format!("{k}={}", if *k == "socket.keepalive.enable" { "false" } else { "12345" }))
            .collect::<Vec<_>>()
            .join(";");
        let p = effective(&[("KAFKA_BROKER", "ns.servicebus.windows.net:9093"), ("KAFKA_PROPS", &overrides)]);
        for (key, _) in PROPERTIES {
            let want = if *key == "socket.keepalive.enable" { "false" } else { "12345" };
            assert_eq!(librdkafka_value(&p, key), want, "{key} overridden");
        }
    }
}
