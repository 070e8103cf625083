//! `eventfork rules render|check|lint`: the rule catalogue and the generated part of
//! template.yaml.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use router::{
    catalog::{self, Section, StackSettings},
    lint,
    template::Template,
};

use crate::Outcome;

/// Renders the generated parts (rules, queues, DLQs, policies, alarms, schemas; the
/// queues' outputs).
pub(crate) fn render(write: Option<&Path>) -> Result<Outcome> {
    let rules = catalog::rules();
    let conflicts = catalog::conflicts(&rules);
    if !conflicts.is_empty() {
        bail!(
            "the rule catalogue (router/src/catalog.rs) would render a broken template: {}",
            conflicts.join("; ")
        );
    }
    let settings = StackSettings::default();
    match write {
        None => {
            let mut stdout = crate::output::stdout();
            for section in Section::ALL {
                let generated = section.render(&rules, &settings);
                stdout.write_all(section.with_markers(&generated).as_bytes())?;
            }
        }
        Some(path) => {
            let template = read(path)?;
            markers_once(path, &template)?;
            let mut spliced = template.clone();
            for section in Section::ALL {
                let generated = section.render(&rules, &settings);
                spliced = section.splice(&spliced, &generated).ok_or_else(|| {
                    anyhow::anyhow!(
                        "{}: the GENERATED markers of the {} are missing",
                        path.display(),
                        section.name()
                    )
                })?;
            }
            if spliced != template {
                fs::write(path, spliced)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                stderr!(
                    "eventfork: updated the generated parts of {}",
                    path.display()
                );
            }
        }
    }
    Ok(Outcome::Success)
}

/// Compares the generated parts of `path` with a fresh render; prints a diff on drift.
pub(crate) fn check(path: &Path) -> Result<Outcome> {
    let template = read(path)?;
    markers_once(path, &template)?;
    let rules = catalog::rules();
    let settings = StackSettings::default();
    let mut drifted = false;
    // A reader that stops early (`| head`) still gets exit 1 for a drifted template.
    let mut stdout = crate::output::Closable::new(crate::output::stdout());
    for section in Section::ALL {
        let Some(committed) = section.find(&template) else {
            bail!(
                "{}: the GENERATED markers of the {} are missing",
                path.display(),
                section.name()
            );
        };
        let fresh = section.render(&rules, &settings);
        // A checkout with CRLF line ends holds the same section.
        if committed == fresh || committed.replace("\r\n", "\n") == fresh {
            continue;
        }
        drifted = true;
        // The generated part is a slice of the template: its first line's number in the
        // file.
        let start = committed.as_ptr() as usize - template.as_ptr() as usize;
        let first_line = template[..start].matches('\n').count() + 1;
        writeln!(
            stdout,
            "--- {} (generated {})",
            path.display(),
            section.name()
        )?;
        writeln!(stdout, "+++ rule catalogue (eventfork rules render)")?;
        for line in line_diff(committed, &fresh, first_line) {
            writeln!(stdout, "{line}")?;
        }
    }
    if !drifted {
        stderr!(
            "eventfork: {}: the generated parts match the rule catalogue",
            path.display()
        );
        return Ok(Outcome::Success);
    }
    stderr!(
        "eventfork: {} has drifted from the rule catalogue; run `eventfork rules render --write {}`",
        path.display(),
        path.display()
    );
    Ok(Outcome::No)
}

/// Lints the catalogue, or the rules and queues of a template; exit 1 on errors.
pub(crate) fn lint(template: Option<&Path>) -> Result<Outcome> {
    let limits = lint::Limits::default();
    let findings = match template {
        None => lint::lint(&lint::catalogue_rules(), &limits),
        Some(path) => {
            let text = read(path)?;
            let template = Template::parse(&text)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let rules = lint::template_text_rules(&template, &text)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let mut findings = lint::lint(&rules, &limits);
            findings.extend(lint::lint_template(&template));
            findings
        }
    };
    // The exit status counts every error, whether or not the reader saw it (`| head`).
    let mut stdout = crate::output::Closable::new(crate::output::stdout());
    for finding in &findings {
        writeln!(stdout, "{finding}")?;
    }
    let n_errors = findings
        .iter()
        .filter(|f| f.severity() == lint::Severity::Error)
        .count();
    let n_warnings = findings.len() - n_errors;
    let what = template.map_or("the rule catalogue".to_owned(), |p| p.display().to_string());
    stderr!(
        "eventfork: {what}: {}, {}",
        crate::count(n_errors, "error", "errors"),
        crate::count(n_warnings, "warning", "warnings")
    );
    Ok(if n_errors == 0 {
        Outcome::Success
    } else {
        Outcome::No
    })
}

/// Refuses a template that holds a generated section twice (a merge that kept both
/// sides, say): only the first would be checked or rewritten, and CloudFormation would
/// meet every generated resource twice.
fn markers_once(path: &Path, template: &str) -> Result<()> {
    for section in Section::ALL {
        let n = section.occurrences(template);
        if n > 1 {
            bail!(
                "{}: the GENERATED markers of the {} appear {n} times; keep one section",
                path.display(),
                section.name()
            );
        }
    }
    Ok(())
}

fn read(path: &Path) -> Result<String> {
    crate::input::read_file_text(path).with_context(|| format!("cannot read {}", path.display()))
}

/// A line diff of `old` and `new`: changed lines prefixed `-` / `+` (a hunk's removals
/// first), with `@@ line N` hunk headers numbering `old`'s lines from `first_line`, and no
/// context lines. The lines both share at their start and end are set aside first; when
/// what remains is too large for a table of common subsequences (over 4 million cells),
/// it is shown as one hunk, every old line removed and every new one added.
fn line_diff(old: &str, new: &str, first_line: usize) -> Vec<String> {
    const MAX_CELLS: usize = 4_000_000;
    let old: Vec<&str> = old.lines().collect();
    let new: Vec<&str> = new.lines().collect();
    let prefix = old.iter().zip(&new).take_while(|(a, b)| a == b).count();
    let suffix = old[prefix..]
        .iter()
        .rev()
        .zip(new[prefix..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let (old, new) = (
        &old[prefix..old.len() - suffix],
        &new[prefix..new.len() - suffix],
    );
    let first_line = first_line + prefix;
    let mut out = Vec::new();
    if old.is_empty() && new.is_empty() {
        return out;
    }
    if (old.len() + 1).saturating_mul(new.len() + 1) > MAX_CELLS {
        out.push(format!("@@ line {first_line}"));
        out.extend(old.iter().map(|line| format!("-{line}")));
        out.extend(new.iter().map(|line| format!("+{line}")));
        return out;
    }
    // Longest common subsequence table, from the ends.
    let mut lcs = vec![vec![0u32; new.len() + 1]; old.len() + 1];
    for i in (0..old.len()).rev() {
        for j in (0..new.len()).rev() {
            lcs[i][j] = if old[i] == new[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut in_hunk = false;
    while i < old.len() || j < new.len() {
        if i < old.len() && j < new.len() && old[i] == new[j] {
            i += 1;
            j += 1;
            in_hunk = false;
            continue;
        }
        if !in_hunk {
            out.push(format!("@@ line {}", first_line + i));
            in_hunk = true;
        }
        if i < old.len() && (j == new.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(format!("-{}", old[i]));
            i += 1;
        } else {
            out.push(format!("+{}", new[j]));
            j += 1;
        }
    }
    out
}

/// The default template path, relative to the current folder.
pub(crate) fn default_template() -> PathBuf {
    PathBuf::from("template.yaml")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_shows_changed_lines_only() {
        let diff = line_diff("a\nb\nc\nd\n", "a\nB\nc\nd\ne\n", 10);
        assert_eq!(diff, ["@@ line 11", "-b", "+B", "@@ line 14", "+e"]);
        assert!(line_diff("same\n", "same\n", 1).is_empty());
        // Shared ends are set aside: a change in a long file costs what it changes.
        let long: String = (0..100_000).map(|i| format!("line {i}\n")).collect();
        let changed = long.replacen("line 50000\n", "line fifty thousand\n", 1);
        assert_eq!(
            line_diff(&long, &changed, 1),
            ["@@ line 50001", "-line 50000", "+line fifty thousand"]
        );
        // Past the table's size, one hunk.
        let a: String = (0..3_000).map(|i| format!("a{i}\n")).collect();
        let b: String = (0..3_000).map(|i| format!("b{i}\n")).collect();
        let diff = line_diff(&format!("x\n{a}y\n"), &format!("x\n{b}y\n"), 1);
        assert_eq!(diff.len(), 6_001);
        assert_eq!(diff[0], "@@ line 2");
        assert_eq!(diff[1], "-a0");
        assert_eq!(diff[3_001], "+b0");
    }
}
