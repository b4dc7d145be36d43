//! Command-line flags, built from [`VARS`]: every environment variable has a flag of the same
//! meaning, and a flag wins over its variable. Values are taken as plain strings here and
//! validated together by [`RawConfig::validate`].

use std::ffi::OsString;

use clap::{Arg, ArgAction, ArgMatches, Command};

use crate::config::{RawConfig, VARS};

pub const LONG_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("MARKETFLOW_GIT_COMMIT"), ")");

const CHECK_CONFIG: &str = "check-config";
const KAFKA_PROP: &str = "kafka-prop";

/// The parsed command line: `--check-config`, and the settings by variable name.
pub struct Cli {
    pub check_config: bool,
    raw: RawConfig,
}

/// Masked through [`RawConfig`]'s `Debug`: the password and librdkafka properties are never shown.
impl std::fmt::Debug for Cli {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cli").field("check_config", &self.check_config).field("settings", &self.raw).finish()
    }
}

/// The clap command: `--check-config`, one flag per variable (reading the variable when the flag
/// is absent), and `--kafka-prop`.
pub fn command() -> Command {
    let mut cmd = Command::new("marketflow-ingestor")
        .version(LONG_VERSION)
        .about("Streams Binance market data over WebSocket, normalizes it and publishes it to Kafka.")
        .after_help(
            "Every option can also be set by the environment variable shown. A bad configuration lists every \
             problem and exits with code 64. Secrets are never printed.",
        )
        .arg(
            Arg::new(CHECK_CONFIG)
                .long(CHECK_CONFIG)
                .action(ArgAction::SetTrue)
                .help("Validate and print the effective configuration (secrets masked), then exit without connecting"),
        );
    for var in VARS {
        let mut arg = Arg::new(var.env)
            .long(var.flag)
            .env(var.env)
            .value_name(var.value_name)
            .help(var.short_help())
            .hide_env_values(var.secret);
        if !var.more.is_empty() {
            arg = arg.long_help(var.long_help());
        }
        cmd = cmd.arg(arg);
        // Listed beside the variable it adds to.
        if var.env == "KAFKA_PROPS" {
            cmd = cmd.arg(
                Arg::new(KAFKA_PROP)
                    .long(KAFKA_PROP)
                    .value_name("K=V")
                    .action(ArgAction::Append)
                    .help("One librdkafka property `k=v`; repeatable, added to KAFKA_PROPS"),
            );
        }
    }
    cmd
}

impl Cli {
    /// The process's arguments (and environment).
    pub fn try_parse() -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::env::args_os())
    }

    pub fn try_parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        command().try_get_matches_from(args).map(|m| Cli::from_matches(&m))
    }

    fn from_matches(m: &ArgMatches) -> Cli {
        let mut raw = RawConfig::from_lookup(|env| m.get_one::<String>(env).cloned());
        raw.extra_kafka_props = m.get_many::<String>(KAFKA_PROP).into_iter().flatten().cloned().collect();
        Cli { check_config: m.get_flag(CHECK_CONFIG), raw }
    }

    /// The raw settings, flags (or their variables, which clap already consulted) by variable name.
    pub fn to_raw(&self) -> RawConfig {
        self.raw.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variable_has_a_flag() {
        let help = command().render_long_help().to_string();
        for var in VARS {
            assert!(help.contains(&format!("[env: {}", var.env)), "{} missing from --help", var.env);
            assert!(help.contains(&format!("--{} <{}>", var.flag, var.value_name)), "{} missing", var.flag);
        }
    }

    /// Flag names follow one rule, so that nobody has to look one up.
    #[test]
    fn each_flag_is_its_variable_in_lower_case() {
        for var in VARS {
            assert_eq!(var.flag, var.env.to_ascii_lowercase().replace('_', "-"));
        }
    }

    /// A secret's value in the environment never reaches `--help`.
    #[test]
    fn secret_variables_hide_their_values() {
        let cmd = command();
        for var in VARS {
            let arg = cmd.get_arguments().find(|a| a.get_id() == var.env).unwrap();
            assert_eq!(arg.is_hide_env_values_set(), var.secret, "{}", var.env);
        }
        let secrets: Vec<&str> = VARS.iter().filter(|v| v.secret).map(|v| v.env).collect();
        assert_eq!(secrets, ["KAFKA_PASSWORD", "KAFKA_PROPS"]);
    }

    #[test]
    fn clap_accepts_the_command() {
        command().debug_assert();
    }

    #[test]
    fn flags_reach_the_validated_config() {
        let cli = Cli::try_parse_from([
            "x",
            "--symbols=ethusdt",
            "--streams=aggTrade",
            "--kafka-prop",
            "linger.ms=2",
            "--sink=stdout",
        ])
        .unwrap();
        let c = cli.to_raw().validate().unwrap();
        assert_eq!(c.symbols, ["ethusdt"]);
        assert_eq!(*c.kafka_props, [("linger.ms".to_string(), "2".to_string())]);
        assert_eq!(c.sink, crate::config::SinkKind::Stdout);
        assert!(!cli.check_config);
        assert!(Cli::try_parse_from(["x", "--check-config"]).unwrap().check_config);
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let cli = Cli::try_parse_from([
            "x",
            "--kafka-password=hunter2",
            "--kafka-props=sasl.password=hunter2",
            "--kafka-prop",
            "ssl.key.password=hunter2",
            "--symbols=btcusdt",
        ])
        .unwrap();
        let shown = format!("{cli:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("btcusdt") && shown.contains("KAFKA_PASSWORD"), "{shown}");
    }
}
