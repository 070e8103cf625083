//! `eventfork rules render|check|lint`: the rule catalogue and template.yaml.

use crate::support::{eventfork, eventfork_in, workspace_root};

/// template.yaml is exactly what the rule catalogue renders (refresh with
/// `cargo run -p cli -- rules render --write template.yaml`).
#[test]
fn committed_template_matches_the_catalogue() {
    let template = workspace_root().join("template.yaml");
    let run = eventfork(&["rules", "check", template.to_str().unwrap()], "");
    assert_eq!(
        run.code, 0,
        "template.yaml drifted from the rule catalogue; run `cargo run -p cli -- rules render --write template.yaml`\n{}{}",
        run.stdout, run.stderr
    );
}

#[test]
fn check_shows_a_diff_on_drift_and_render_repairs_it() {
    let dir = tempfile::tempdir().unwrap();
    let original = std::fs::read_to_string(workspace_root().join("template.yaml")).unwrap();
    let drifted = original.replacen(
        r#""detail":{"marketing_consent":[true]}"#,
        r#""detail":{"marketing_consent":[false]}"#,
        1,
    );
    assert_ne!(
        drifted, original,
        "the mailing-list rule is in the template"
    );
    std::fs::write(dir.path().join("template.yaml"), &drifted).unwrap();

    let run = eventfork_in(dir.path(), &["rules", "check"], "", &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let changed: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with('+') || l.starts_with('-'))
        .filter(|l| !l.starts_with("+++") && !l.starts_with("---"))
        .collect();
    assert_eq!(changed.len(), 2, "{}", run.stdout);
    assert!(
        changed
            .iter()
            .any(|l| l.starts_with('+') && l.contains(r#"[true]"#))
    );
    assert!(
        changed
            .iter()
            .any(|l| l.starts_with('-') && l.contains(r#"[false]"#))
    );
    assert!(
        run.stderr.contains("rules render --write"),
        "{}",
        run.stderr
    );

    let run = eventfork_in(
        dir.path(),
        &["rules", "render", "--write", "template.yaml"],
        "",
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let repaired = std::fs::read_to_string(dir.path().join("template.yaml")).unwrap();
    assert_eq!(repaired, original);
}

#[test]
fn check_without_markers_fails() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.yaml"), "Resources: {}\n").unwrap();
    let run = eventfork_in(dir.path(), &["rules", "check", "t.yaml"], "", &[]);
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        "eventfork: t.yaml: the GENERATED markers are missing\n"
    );
}
