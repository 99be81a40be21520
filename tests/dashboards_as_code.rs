//! The committed dashboards are exactly what `dashboards/src/build.py` generates.
//!
//! The dashboards are written with Grafana's Foundation SDK; hand edits to the JSON would be
//! lost on the next build, so any difference fails here with the diff and the command to run.

use std::process::Command;

#[test]
fn committed_dashboards_match_the_generator() {
    let root = env!("CARGO_MANIFEST_DIR");
    let install = "python3 -m pip install 'grafana-foundation-sdk==1769699630!11.2.0' \
                   (bash scripts/test.sh does)";
    let sdk = Command::new("python3")
        .args(["-c", "import grafana_foundation_sdk"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3: {e}"));
    assert!(
        sdk.status.success(),
        "the Grafana Foundation SDK is not importable; install it with: {install}\n{}",
        String::from_utf8_lossy(&sdk.stderr)
    );

    let check = Command::new("python3")
        .args(["dashboards/src/build.py", "--check"])
        .current_dir(root)
        .output()
        .unwrap_or_else(|e| panic!("cannot run dashboards/src/build.py: {e}"));
    assert!(
        check.status.success(),
        "dashboards/*.json differ from dashboards/src (run `python3 dashboards/src/build.py`):\n{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}
