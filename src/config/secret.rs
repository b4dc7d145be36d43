//! Secrets and the one masking rule every output uses: `--check-config`, the "creating kafka
//! producer" log line, configuration and producer errors, and the `Debug` of anything holding
//! librdkafka properties.

use std::fmt;

/// What a masked value prints as.
pub const MASK: &str = "***";

/// A value that must never reach a log line, a metric or an error message.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The only way to read the secret; grep for `expose` to audit every use.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Words that make a property's value secret wherever they appear in its name (`sasl.password`,
/// `ssl.keystore.password`, `sasl.oauthbearer.client.secret`, `ssl.key.pem`, a misspelt
/// `sasl.passwrd`, ...). Certificates in `*.pem` are public, but one name pattern covers the
/// private key too, and masking a public certificate costs nothing.
const SECRET_WORDS: &[&str] = &[
    "passw",
    "passphrase",
    "pwd",
    "secret",
    "token",
    "jaas",
    "credential",
    "pem",
    "sasl.oauthbearer.config",
    "connectionstring",
    "sharedaccess",
];

/// Last name segments that make a `key` property a reference rather than the key itself:
/// `ssl.key.location` and `...private.key.file` are paths, `key.serializer` a class name.
const KEY_REFERENCE_SEGMENTS: &[&str] = &["location", "file", "path", "serializer", "deserializer"];

/// Whether a librdkafka property (or any `name=value` setting) carries a secret value.
///
/// Secret: a name containing one of `SECRET_WORDS`, or with a segment that is or ends in `key`
/// (`ssl_key`, `apikey`, `SharedAccessKey`) unless its last segment names a path or a class.
/// When in doubt this masks: a masked harmless value costs a look at the file, a printed
/// secret costs a rotation.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.trim().to_ascii_lowercase();
    if SECRET_WORDS.iter().any(|w| k.contains(w)) {
        return true;
    }
    let segments: Vec<&str> = k.split(['.', '_', '-']).collect();
    let last = segments.last().copied().unwrap_or("");
    segments.iter().any(|s| s.ends_with("key")) && !KEY_REFERENCE_SEGMENTS.contains(&last)
}

/// The value as it may be shown: masked when its key names a secret.
pub fn mask_prop(key: &str, value: &str) -> String {
    if is_secret_key(key) {
        MASK.into()
    } else {
        value.to_string()
    }
}

/// `k=v k=*** ...`, for the producer's log line.
pub fn masked_pairs<'a>(props: impl IntoIterator<Item = &'a (String, String)>) -> String {
    props.into_iter().map(|(k, v)| format!("{k}={}", mask_prop(k, v))).collect::<Vec<_>>().join(" ")
}

/// `text` with every secret value of `props` replaced by [`MASK`]: for messages that librdkafka
/// wrote and that may quote a value back.
pub fn scrub(text: &str, props: &[(String, String)]) -> String {
    let mut out = text.to_string();
    for (k, v) in props {
        if is_secret_key(k) && !v.is_empty() {
            out = out.replace(v.as_str(), MASK);
        }
    }
    out
}

/// librdkafka properties given by the operator, in the order they apply. Its `Debug` masks
/// secret values, so neither it nor the [`super::Config`] holding it can print one.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KafkaProps(pub Vec<(String, String)>);

impl std::ops::Deref for KafkaProps {
    type Target = Vec<(String, String)>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<'a> IntoIterator for &'a KafkaProps {
    type Item = &'a (String, String);
    type IntoIter = std::slice::Iter<'a, (String, String)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Debug for KafkaProps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter().map(|(k, v)| format!("{k}={}", mask_prop(k, v)))).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_masking_rule() {
        for k in [
            "sasl.password",
            "SASL.PASSWORD",
            "sasl.passwrd",
            "ssl.key.password",
            "ssl.keystore.password",
            "ssl.key.pem",
            "ssl_key",
            "ssl.certificate.pem",
            "sasl.oauthbearer.client.secret",
            "sasl.oauthbearer.config",
            "sasl.oauthbearer.assertion.private.key.passphrase",
            "sasl.oauthbearer.assertion.private.key.pem",
            "sasl.oauthbearer.token.endpoint.url",
            "sasl.jaas.config",
            "apikey",
            "SharedAccessKey",
            "SharedAccessKeyName",
        ] {
            assert!(is_secret_key(k), "{k} must be masked");
        }
        for k in [
            "sasl.username",
            "ssl.key.location",
            "ssl.keystore.location",
            "sasl.oauthbearer.assertion.private.key.file",
            "sasl.kerberos.keytab",
            "key.serializer",
            "linger.ms",
            "bootstrap.servers",
            "security.protocol",
            "enable.ssl.certificate.verification",
        ] {
            assert!(!is_secret_key(k), "{k} is not a secret");
        }
    }

    #[test]
    fn every_output_masks() {
        let p = KafkaProps(vec![("sasl.password".into(), "hunter2".into()), ("acks".into(), "all".into())]);
        assert_eq!(format!("{p:?}"), r#"["sasl.password=***", "acks=all"]"#);
        assert_eq!(masked_pairs(p.iter()), "sasl.password=*** acks=all");
        assert_eq!(scrub("bad value \"hunter2\" for all", &p), "bad value \"***\" for all");
        assert_eq!(format!("{:?} {}", Secret::new("hunter2"), Secret::new("hunter2")), r#""***" "***""#);
    }
}
