//! Runs a set of transcripts against a target: a plain endpoint, a launcher, or both.
//!
//! Transcripts without `server_flags` run on the endpoint (or, with only a launcher, on
//! one server launched without extra flags and shared by all of them). A transcript with
//! `server_flags` runs on a fresh server launched with those flags and stopped after it;
//! without a launcher it is skipped, and the result says which flags it needs.

use anyhow::{Result, bail};

use crate::launch::{Launched, Launcher};
use crate::runner::{Runner, TranscriptResult};
use crate::transcript::Loaded;

/// Where transcripts run.
#[derive(Debug)]
pub struct Suite {
    endpoint: Option<String>,
    launcher: Option<Launcher>,
    plain: Option<(Runner, Option<Launched>)>,
}

/// The skip reason for a transcript that needs flags.
pub fn needs_flags(flags: &[String]) -> String {
    format!(
        "needs flags {} (replay with --launch BIN to start a server with them)",
        flags.join(" ")
    )
}

impl Suite {
    /// A suite on `endpoint` and/or servers started by `launcher` (at least one).
    pub fn new(endpoint: Option<&str>, launcher: Option<Launcher>) -> Result<Self> {
        if endpoint.is_none() && launcher.is_none() {
            bail!("give --endpoint URL, --launch BIN, or both");
        }
        Ok(Self {
            endpoint: endpoint.map(str::to_owned),
            launcher,
            plain: None,
        })
    }

    async fn plain_runner(&mut self) -> Result<Runner> {
        if let Some((runner, _)) = &self.plain {
            return Ok(runner.clone());
        }
        let (runner, launched) = match (&self.endpoint, &self.launcher) {
            (Some(e), _) => (Runner::new(e)?, None),
            (None, Some(l)) => {
                let l = l.clone();
                let launched = tokio::task::spawn_blocking(move || l.launch(&[])).await??;
                (Runner::new(&launched.endpoint)?, Some(launched))
            }
            (None, None) => bail!("no endpoint and no launcher"),
        };
        runner.ping().await?;
        self.plain = Some((runner.clone(), launched));
        Ok(runner)
    }

    /// Runs one transcript (recording its answers into it with `record`).
    pub async fn run(&mut self, l: &mut Loaded, record: bool) -> TranscriptResult {
        let steps = l.transcript.steps.len();
        let flags = l.transcript.server_flags.clone();
        if flags.is_empty() {
            return match self.plain_runner().await {
                Ok(r) => r.run(&l.name, &l.area, &mut l.transcript, record).await,
                Err(e) => TranscriptResult::not_started(
                    &l.name,
                    &l.area,
                    steps,
                    "(connecting)",
                    format!("{e:#}"),
                ),
            };
        }
        let Some(launcher) = self.launcher.clone() else {
            let mut r = TranscriptResult::new(&l.name, &l.area, steps);
            r.skipped = Some(needs_flags(&flags));
            return r;
        };
        let what = format!("(launching {} {})", launcher.bin.display(), flags.join(" "));
        let launched = match tokio::task::spawn_blocking(move || launcher.launch(&flags)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return TranscriptResult::not_started(
                    &l.name,
                    &l.area,
                    steps,
                    &what,
                    format!("{e:#}"),
                );
            }
            Err(e) => {
                return TranscriptResult::not_started(
                    &l.name,
                    &l.area,
                    steps,
                    &what,
                    e.to_string(),
                );
            }
        };
        let result = match Runner::new(&launched.endpoint) {
            Ok(runner) => {
                runner
                    .run(&l.name, &l.area, &mut l.transcript, record)
                    .await
            }
            Err(e) => {
                TranscriptResult::not_started(&l.name, &l.area, steps, &what, format!("{e:#}"))
            }
        };
        drop(launched);
        result
    }

    /// Runs every transcript in order; `progress` is told each name before it runs.
    pub async fn run_all(
        &mut self,
        all: &mut [Loaded],
        record: bool,
        mut progress: impl FnMut(&str),
    ) -> Vec<TranscriptResult> {
        let mut out = Vec::with_capacity(all.len());
        for l in all {
            progress(&l.name);
            out.push(self.run(l, record).await);
        }
        out
    }
}
