//! What the operator reads about each variable, from [`VARS`]: `-h` and `--help` texts (the
//! flags themselves are built in `cli.rs`), and README's configuration table, which the test
//! below renders and compares with README.md (`UPDATE_README=1` rewrites it).

#[cfg(doc)]
use super::vars::VARS;
use super::vars::{Unset, Var};

impl Var {
    /// `-h`: the one line, and the default.
    pub fn short_help(&self) -> String {
        format!("{}{}", self.help, self.default_note())
    }

    /// `--help`: the line, what follows it, and the default.
    pub fn long_help(&self) -> String {
        format!("{}{}", self.meaning(), self.default_note())
    }

    /// The line and what follows it: README's "Meaning".
    pub fn meaning(&self) -> String {
        match self.more {
            "" => self.help.to_string(),
            more => format!("{}. {more}", self.help),
        }
    }

    fn default_note(&self) -> String {
        match self.unset {
            Unset::Default(d) | Unset::Derived(d) => format!(" [default: {d}]"),
            Unset::Empty => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::super::vars::VARS;
    use super::*;

    /// README's table: one row per variable, as Markdown.
    fn readme_table() -> String {
        // A `|` inside a cell would end it; GitHub's tables take `\|` even inside code spans.
        let cell = |s: &str| s.replace('|', "\\|");
        let mut out = String::from("| Variable | Flag | Default | Meaning |\n|---|---|---|---|\n");
        for v in VARS {
            let default = match v.unset {
                Unset::Default(d) => format!("`{d}`"),
                Unset::Derived(d) => d.to_string(),
                Unset::Empty => String::new(),
            };
            // Writing to a String cannot fail.
            let _ = writeln!(out, "| `{}` | `--{}` | {} | {} |", v.env, v.flag, cell(&default), cell(&v.meaning()));
        }
        out
    }

    /// The lines that open and close the generated table in README.md.
    const README_START: &str = "<!-- config-table:start";
    const README_END: &str = "<!-- config-table:end -->";

    /// README.md with its table replaced by `table`; `None` without both markers in order.
    fn with_table(readme: &str, table: &str) -> Option<String> {
        let start = readme.find(README_START)?;
        let body = start + readme[start..].find('\n')? + 1;
        let end = body + readme[body..].find(README_END)?;
        Some(format!("{}{table}{}", &readme[..body], &readme[end..]))
    }

    /// README.md's table between the markers is the one [`readme_table`] renders. To regenerate
    /// it after changing `vars.rs`: `UPDATE_README=1 cargo test --lib config::docs`.
    #[test]
    fn readme_table_is_generated_from_vars() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
        let readme = std::fs::read_to_string(&path).unwrap();
        let want = readme_table();
        let updated = with_table(&readme, &want)
            .unwrap_or_else(|| panic!("README.md lacks the `{README_START} ...` / `{README_END}` lines"));
        if updated == readme {
            return;
        }
        if std::env::var_os("UPDATE_README").is_some() {
            std::fs::write(&path, updated).unwrap();
            return;
        }
        let start = readme.find(README_START).unwrap();
        let body = &readme[start..];
        let got: Vec<&str> = body.lines().skip(1).take_while(|l| !l.starts_with(README_END)).collect();
        let want_lines: Vec<&str> = want.lines().collect();
        let mut diff = String::new();
        for l in got.iter().filter(|l| !want_lines.contains(l)) {
            let _ = writeln!(diff, "- {l}");
        }
        for l in want_lines.iter().filter(|l| !got.contains(l)) {
            let _ = writeln!(diff, "+ {l}");
        }
        if diff.is_empty() {
            diff.push_str("(the same rows in another order)\n");
        }
        panic!(
            "README.md's configuration table is not the one src/config/vars.rs renders \
             (- README, + vars.rs); regenerate it with `UPDATE_README=1 cargo test --lib config::docs`:\n{diff}"
        );
    }

    #[test]
    fn markers_delimit_the_table() {
        let readme = "a\n<!-- config-table:start: note -->\nold\nrows\n<!-- config-table:end -->\nb\n";
        assert_eq!(
            with_table(readme, "new\n").unwrap(),
            "a\n<!-- config-table:start: note -->\nnew\n<!-- config-table:end -->\nb\n"
        );
        assert_eq!(with_table("a\n<!-- config-table:end -->\n<!-- config-table:start -->\n", "x"), None);
    }

    #[test]
    fn help_and_readme_carry_the_default_once() {
        let v = VARS.iter().find(|v| v.env == "SYMBOLS").unwrap();
        assert_eq!(v.short_help().matches("btcusdt,ethusdt,solusdt").count(), 1);
        assert_eq!(v.long_help().matches("btcusdt,ethusdt,solusdt").count(), 1);
        assert!(v.long_help().starts_with(&v.meaning()) && v.meaning().starts_with(v.help));
        let row = readme_table().lines().find(|l| l.starts_with("| `SYMBOLS`")).unwrap().to_string();
        assert_eq!(row.matches("btcusdt,ethusdt,solusdt").count(), 1, "{row}");
    }
}
