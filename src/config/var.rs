//! What one configuration variable is: its names, default, documentation, parser and how
//! `--check-config` shows it, and the words each choice accepts. The variables themselves are
//! the table in `vars.rs`.

use super::build::{Build, Shown};
use super::{CorePin, Endpoint, LogFormat, LoopMode, OrderingMode, SaslMechanism, SinkKind};
use crate::time_unit::TimeUnit;

/// One variable. Also a flag: `--<flag>`, which wins over the variable.
#[derive(Clone, Copy)]
pub struct Var {
    /// The environment variable.
    pub env: &'static str,
    /// The long flag, without `--`: `env` in lower case with `-` for `_` (a test holds every
    /// entry to that rule).
    pub flag: &'static str,
    /// The value's placeholder in `--help`.
    pub value_name: &'static str,
    /// What the variable means when unset (or empty).
    pub unset: Unset,
    /// One line, no final period: `-h`, and the start of `--help`'s text and of README's.
    pub help: &'static str,
    /// Sentences that follow `help` in `--help` and README ("" when the line says it all).
    pub more: &'static str,
    /// The raw text may be a secret: clap never shows its value and `RawConfig`'s `Debug`
    /// masks it (`--check-config` masks through the typed value: [`super::Secret`],
    /// [`super::KafkaProps`]).
    pub secret: bool,
    /// Parses the value (or the default) into the configuration being built, pushing every
    /// problem; checks across variables are in `Build::finish`.
    pub(super) apply: fn(&str, &mut Build<'_>),
    /// Writes the effective value for `--check-config` (nothing when another line shows it).
    pub(super) show: fn(&super::Config, &mut Shown<'_>),
}

/// The meaning of an unset variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unset {
    /// This text, parsed as if it had been given.
    Default(&'static str),
    /// Worked out from other variables (validation does it), as described here.
    Derived(&'static str),
    /// Nothing: the feature is off, or a companion variable supplies the value.
    Empty,
}

impl Var {
    /// The default's text, parsed when the variable is unset.
    pub fn default_text(&self) -> &'static str {
        match self.unset {
            Unset::Default(d) => d,
            Unset::Derived(_) | Unset::Empty => "",
        }
    }
}

/// The names each choice accepts (case-insensitive); the first name of a value is the one
/// `--check-config` shows.
pub(super) type Choices<T> = &'static [(&'static str, T)];

pub(super) const SWITCH: Choices<bool> = &[
    ("on", true),
    ("off", false),
    ("true", true),
    ("false", false),
    ("1", true),
    ("0", false),
    ("yes", true),
    ("no", false),
];
pub(super) const ORDERINGS: Choices<OrderingMode> =
    &[("default", OrderingMode::Default), ("strict", OrderingMode::Strict)];
pub(super) const SINKS: Choices<SinkKind> =
    &[("kafka", SinkKind::Kafka), ("stdout", SinkKind::Stdout), ("null", SinkKind::Null)];
pub(super) const LOG_FORMATS: Choices<LogFormat> = &[("text", LogFormat::Text), ("json", LogFormat::Json)];
pub(super) const LOOP_MODES: Choices<LoopMode> = &[
    ("blocking", LoopMode::Blocking),
    ("busy", LoopMode::BusyPoll),
    ("busy-poll", LoopMode::BusyPoll),
    ("busypoll", LoopMode::BusyPoll),
];
pub(super) const SASL_MECHANISMS: Choices<SaslMechanism> = &[
    ("PLAIN", SaslMechanism::Plain),
    ("SCRAM-SHA-256", SaslMechanism::ScramSha256),
    ("SCRAM-SHA-512", SaslMechanism::ScramSha512),
];
pub(super) const SECURITY_PROTOCOLS: Choices<&str> =
    &[("PLAINTEXT", "PLAINTEXT"), ("SSL", "SSL"), ("SASL_PLAINTEXT", "SASL_PLAINTEXT"), ("SASL_SSL", "SASL_SSL")];

/// The first name of `value` in `choices`.
pub(super) fn name_of<T: PartialEq + Copy>(choices: Choices<T>, value: T) -> &'static str {
    choices.iter().find(|(_, v)| *v == value).map(|(n, _)| *n).unwrap_or("?")
}

pub(super) const TIME_UNITS: Choices<TimeUnit> = &[
    ("ms", TimeUnit::Millis),
    ("us", TimeUnit::Micros),
    ("millisecond", TimeUnit::Millis),
    ("microsecond", TimeUnit::Micros),
];

pub(super) const WS_SCHEMES: (&str, &str) = ("ws", "wss");
pub(super) const REST_SCHEMES: (&str, &str) = ("http", "https");

pub(super) fn url(e: &Endpoint, (plain, tls): (&str, &str)) -> String {
    format!("{}://{}{}", if e.tls { tls } else { plain }, e.authority(), e.path)
}

pub(super) fn core_name(c: CorePin) -> String {
    match c {
        CorePin::Auto => "auto".into(),
        CorePin::None => "none".into(),
        CorePin::Core(n) => n.to_string(),
    }
}
