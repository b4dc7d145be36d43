//! `KAFKA_PROPS` (`k=v;k=v`) and `--kafka-prop k=v`: parsed strictly, then every property checked
//! by librdkafka itself, so that a typo is a configuration error listed with the others (exit 64)
//! rather than a fatal error at producer creation, and so that no message ever quotes a value that
//! may be a secret.
//!
//! librdkafka checks each property as it is set (`rd_kafka_conf_set`: known name, value of the
//! right type and range, feature built in), which `ClientConfig::create_native_config` does
//! without creating a client or touching the network. Checks across properties (e.g. `acks=1`
//! with idempotence) happen only when the producer is created; that path exits 64 too.

use rdkafka::config::{ClientConfig, NativeClientConfig};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaConfRes;

use super::secret::{is_secret_key, mask_prop, KafkaProps};

/// Longest property name accepted (librdkafka's longest is about 50 characters).
const MAX_KEY_LEN: usize = 128;

/// librdkafka's property names: lower-case letters, digits, `.` and `_`.
fn plausible_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= MAX_KEY_LEN
        && k.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_')
        && k.as_bytes()[0].is_ascii_alphanumeric()
}

/// A native configuration with a default topic configuration, so that `get` answers for topic
/// properties (`acks`, `message.timeout.ms`, ...) as well as global ones.
fn name_oracle() -> Option<NativeClientConfig> {
    ClientConfig::new().set("acks", "all").create_native_config().ok()
}

fn is_property(oracle: &Option<NativeClientConfig>, name: &str) -> bool {
    match oracle {
        Some(o) => !matches!(o.get(name), Err(KafkaError::ClientConfig(RDKafkaConfRes::RD_KAFKA_CONF_UNKNOWN, ..))),
        None => false,
    }
}

/// The first `name=` inside a value, right after a `,` or white space, where `name` is a
/// librdkafka property or dotted like one: `u,sasl.password=x` is two pairs joined with the
/// wrong separator. Values that legitimately hold pairs (`sasl.oauthbearer.config`'s
/// `principal=admin`, `sasl.oauthbearer.extensions`' `a=b,c=d`) use undotted non-property names.
fn embedded_pair<'a>(oracle: &Option<NativeClientConfig>, value: &'a str) -> Option<&'a str> {
    let b = value.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if !(c == b',' || c.is_ascii_whitespace()) {
            continue;
        }
        let start = i + 1;
        let len = b[start..]
            .iter()
            .take_while(|&&x| x.is_ascii_lowercase() || x.is_ascii_digit() || x == b'.' || x == b'_')
            .count();
        let name = &value[start..start + len];
        if len > 0 && b.get(start + len) == Some(&b'=') && (name.contains('.') || is_property(oracle, name)) {
            return Some(name);
        }
    }
    None
}

/// librdkafka's own check of one property, its message masked when the value may be secret.
fn librdkafka_check(src: &str, key: &str, value: &str) -> Result<(), String> {
    match ClientConfig::new().set(key, value).create_native_config() {
        Ok(_) => Ok(()),
        Err(KafkaError::ClientConfig(RDKafkaConfRes::RD_KAFKA_CONF_UNKNOWN, ..)) => {
            // An unknown name may be a misspelt secret (`sasl.passwrd`): its value is never shown.
            Err(format!("{src}: `{key}` is not a librdkafka property (value not shown)"))
        }
        Err(KafkaError::ClientConfig(_, desc, ..)) if !is_secret_key(key) => Err(format!("{src}: {desc}")),
        Err(KafkaError::ClientConfig(..)) => {
            Err(format!("{src}: librdkafka refuses the value of `{key}` (not shown: it is secret)"))
        }
        Err(_) => Err(format!("{src}: the value of `{key}` holds a NUL byte")),
    }
}

/// Parses `listed` (the variable `var`, `KAFKA_PROPS`) then each `--kafka-prop`, pushing one
/// message per problem. Messages name an item by its position when its text may be (part of) a
/// secret.
pub(super) fn parse(var: &str, listed: &str, extra: &[String], errs: &mut Vec<String>) -> KafkaProps {
    let oracle = name_oracle();
    let listed_items = listed.split([';', '\n']).map(|s| s.trim()).filter(|s| !s.is_empty());
    let items = listed_items
        .enumerate()
        .map(|(i, s)| (format!("{var} item {}", i + 1), s))
        .chain(extra.iter().enumerate().map(|(i, s)| (format!("--kafka-prop #{}", i + 1), s.trim())));
    let mut props = Vec::new();
    for (src, item) in items {
        let Some((k, v)) = item.split_once('=') else {
            errs.push(format!(
                "{src} is not key=value (pairs are separated by `;`; not shown: it may be part of a secret)"
            ));
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() {
            errs.push(format!("{src} has an empty key before `=`"));
            continue;
        }
        if !plausible_key(k) {
            errs.push(format!(
                "{src}: the key is not a librdkafka property name (lower-case letters, digits, `.`, `_`; \
                 not shown: it may be part of a secret)"
            ));
            continue;
        }
        if let Some(inner) = embedded_pair(&oracle, v) {
            errs.push(format!(
                "{src}: the value of `{k}` holds another pair `{inner}=…` (separate pairs with `;`; value not shown)"
            ));
            continue;
        }
        match librdkafka_check(&src, k, v) {
            Ok(()) => props.push((k.to_string(), v.to_string())),
            Err(e) => errs.push(e),
        }
    }
    KafkaProps(props)
}

/// For `--check-config`: `kafka[k]` lines, masked.
pub(super) fn render_lines(props: &KafkaProps) -> impl Iterator<Item = (String, String)> + '_ {
    props.iter().map(|(k, v)| (format!("kafka[{k}]"), mask_prop(k, v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(listed: &str, extra: &[&str]) -> (KafkaProps, Vec<String>) {
        let mut errs = Vec::new();
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let p = parse("KAFKA_PROPS", listed, &extra, &mut errs);
        (p, errs)
    }

    #[test]
    fn valid_properties_pass_in_order() {
        let (p, errs) =
            run("linger.ms=5; compression.type=lz4\nacks=all", &["sasl.oauthbearer.config=principal=admin"]);
        assert!(errs.is_empty(), "{errs:?}");
        let keys: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["linger.ms", "compression.type", "acks", "sasl.oauthbearer.config"]);
        let (_, errs) = run("sasl.oauthbearer.config=principal=admin,extension_a=b c=d;sasl.password=abc,def==", &[]);
        assert!(errs.is_empty(), "undotted inner names are values, not pairs: {errs:?}");
    }

    /// The cases: each refused, every problem listed, no secret quoted.
    #[test]
    fn malformed_and_refused_properties_never_echo_a_secret() {
        let (p, errs) = run(
            "sasl.username=u,sasl.password=hunter2;linger.ms=5 acks=1;novalue-hunter2;=x;Bad Key=hunter2;linger.ms=soon",
            &["sasl.passwrd=hunter2", "ssl.key.password=hunter2\0", "compression.type=hunter2", "ssl_key=hunter2"],
        );
        assert!(p.is_empty(), "{p:?}");
        let want = [
            "KAFKA_PROPS item 1: the value of `sasl.username` holds another pair `sasl.password=…`",
            "KAFKA_PROPS item 2: the value of `linger.ms` holds another pair `acks=…`",
            "KAFKA_PROPS item 3 is not key=value",
            "KAFKA_PROPS item 4 has an empty key",
            "KAFKA_PROPS item 5: the key is not a librdkafka property name",
            "KAFKA_PROPS item 6: Invalid value for configuration property \"queue.buffering.max.ms\"",
            "--kafka-prop #1: `sasl.passwrd` is not a librdkafka property (value not shown)",
            "--kafka-prop #2: the value of `ssl.key.password` holds a NUL byte",
            "--kafka-prop #3: Invalid value \"hunter2\" for configuration property \"compression.codec\"",
            "--kafka-prop #4: librdkafka refuses the value of `ssl_key` (not shown: it is secret)",
        ];
        for (got, want) in errs.iter().zip(want) {
            assert!(got.starts_with(want), "got {got:?}, want {want:?}");
        }
        assert_eq!(errs.len(), want.len(), "{errs:#?}");
        // #3 is not a secret key, so librdkafka's text (which quotes the value) is kept.
        assert!(errs.iter().enumerate().all(|(i, e)| i == 8 || !e.contains("hunter2")), "{errs:#?}");
    }
}
