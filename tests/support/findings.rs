//! Recording every divergence in a fault scenario before failing the test, and the inputs
//! the fuzzers ever failed on.

/// Expectations checked without stopping the scenario, so one run records every divergence
/// between Redis and the exporter; [`Findings::finish`] fails the test if any was recorded.
/// Also keeps a transcript of what Redis and the exporter said at each step (printed with
/// `--nocapture`, and in the failure message).
#[derive(Debug, Default)]
pub struct Findings {
    test: String,
    transcript: Vec<String>,
    failures: Vec<String>,
}

impl Findings {
    /// A fresh record for `test`.
    pub fn new(test: &str) -> Findings {
        Findings {
            test: test.to_owned(),
            ..Findings::default()
        }
    }

    /// Notes a step.
    pub fn note(&mut self, text: impl Into<String>) {
        let text = text.into();
        eprintln!("[{}] {text}", self.test);
        self.transcript.push(text);
    }

    /// Records a divergence unless `ok`.
    pub fn expect(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            let what = what.into();
            eprintln!("[{}] FINDING: {what}", self.test);
            self.failures.push(what);
        }
    }

    /// Panics if any expectation failed, with the transcript.
    pub fn finish(self) {
        if !self.failures.is_empty() {
            panic!(
                "{}: {} expectation(s) failed:\n- {}\n--- transcript ---\n{}",
                self.test,
                self.failures.len(),
                self.failures.join("\n- "),
                self.transcript.join("\n")
            );
        }
    }
}

/// Every input a fuzzer ever failed on: `scripts/fuzz.sh` saves both targets' findings in
/// `tests/fuzz_regressions/` (the `.md` there is its README). Empty when the folder is absent.
pub fn saved_fuzz_findings() -> Vec<Vec<u8>> {
    let dir = format!("{}/tests/fuzz_regressions", env!("CARGO_MANIFEST_DIR"));
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    entries
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.extension().is_none_or(|e| e != "md"))
        .map(|path| std::fs::read(&path).expect("read finding"))
        .collect()
}
