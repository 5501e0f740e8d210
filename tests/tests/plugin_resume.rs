//! Resumability of `reverse` and `failback`: for every step k, the binary killed right after its k-th action
//! (`TPROTECT_TEST_KILL_AFTER_STEP=k`, the runner's test-only switch: exit 137 as a SIGKILL would), then run
//! again, ends in the same state as an uninterrupted run — nothing lost, no lock left.
//!
//! One testbed per operation; each k gets its own relationship, application, namespaces and AppVaults (built
//! alike, so every run has the same steps), and their end states are compared with the uninterrupted one's
//! after replacing the relationship's name.

use std::collections::BTreeMap;

use serde_json::Value;
use tprotect_e2e::localenv::{Fixtures, Plugin, Setup};
use tprotect_e2e::{
    DESTINATION as DST, LocalEnv, SOURCE as SRC, WebhookOptions, fast_standin_as, plugin, plugin_env,
};
use tprotect_standin::Profile;

/// The names of case `k`: relationship = application = source namespace `r<k>`.
struct Case {
    name: String,
    destination_namespace: String,
    src_vault: String,
    dst_vault: String,
}

impl Case {
    fn new(k: usize) -> Self {
        let name = format!("r{k:02}");
        Self {
            destination_namespace: format!("{name}-dr"),
            src_vault: format!("{name}-src"),
            dst_vault: format!("{name}-dst"),
            name,
        }
    }

    fn base<'a>(&'a self, context: &'a str, peer: &'a str) -> Vec<&'a str> {
        vec!["--context", context, "--peer-context", peer, "-n", &self.name]
    }

    async fn prepare(&self, env: &LocalEnv, tp: &Plugin, failed_over: bool) -> anyhow::Result<()> {
        env.install_fixtures(Fixtures {
            app: &self.name,
            source_vault: &self.src_vault,
            destination_vault: &self.dst_vault,
        })
        .await?;
        let setup = Setup {
            vaults: [&self.src_vault, &self.dst_vault],
            ..Setup::new(&self.name, &self.name, &self.destination_namespace)
        };
        // Few scheduled snapshots while the cases pile up on the stand-in.
        tp.run(&setup.args(&["--interval", "1h"])).await?.ok();
        if failed_over {
            let mut args = self.base(SRC, DST);
            args.extend(["failover", &self.name]);
            tp.run(&args).await?.ok();
        }
        Ok(())
    }

    /// Runs `operation`, killed after action `kill_after` if given. True when the run was killed.
    async fn run(&self, tp: &Plugin, operation: &str, kill_after: Option<usize>) -> anyhow::Result<bool> {
        let mut args = self.base(DST, SRC);
        args.extend([operation, &self.name]);
        Ok(match kill_after {
            None => {
                tp.run(&args).await?.ok();
                false
            }
            Some(k) => {
                let k = k.to_string();
                let out = tp
                    .run_with_env(&args, &[("TPROTECT_TEST_KILL_AFTER_STEP", &k)])
                    .await?;
                match out.code {
                    137 => true,
                    0 => false,
                    _ => {
                        out.expect_code(137);
                        unreachable!()
                    }
                }
            }
        })
    }

    async fn summary(&self, env: &LocalEnv) -> anyhow::Result<BTreeMap<String, Value>> {
        Ok(env
            .relationship_summary(
                &self.name,
                &[&self.name, &self.destination_namespace],
                &[&self.src_vault, &self.dst_vault],
            )
            .await?)
    }
}

/// The first difference between two summaries, for a readable failure.
fn first_difference(a: &BTreeMap<String, Value>, b: &BTreeMap<String, Value>) -> Option<String> {
    for key in a.keys().chain(b.keys()) {
        if a.get(key) != b.get(key) {
            return Some(format!(
                "{key}:\n  uninterrupted: {}\n  resumed:       {}",
                a.get(key)
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "(absent)".into()),
                b.get(key)
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "(absent)".into())
            ));
        }
    }
    None
}

async fn killed_at_every_step(operation: &str, failed_over: bool, profile: Profile) -> anyhow::Result<()> {
    let env = plugin_env(
        fast_standin_as(profile),
        Some(WebhookOptions::new(tprotect_e2e::webhook_binary())),
    )
    .await?;
    let tp = plugin(&env);
    // Timed once the clusters are up (building the binaries and starting the testbed are not counted).
    let started = std::time::Instant::now();

    let reference = Case::new(0);
    reference.prepare(&env, &tp, failed_over).await?;
    assert!(!reference.run(&tp, operation, None).await?);
    let expected = reference.summary(&env).await?;
    assert!(
        expected.keys().any(|k| k.contains(" amr ")),
        "the uninterrupted {operation} left no AMR: {expected:#?}"
    );

    let mut killed_runs = 0;
    for k in 1.. {
        assert!(k < 60, "{operation} never ran out of steps");
        let case = Case::new(k);
        let clock = std::time::Instant::now();
        case.prepare(&env, &tp, failed_over).await?;
        let prepared = clock.elapsed();
        let killed = case.run(&tp, operation, Some(k)).await?;
        if killed {
            killed_runs += 1;
            // Resume: the same command again.
            assert!(!case.run(&tp, operation, None).await?);
        }
        let ran = clock.elapsed();
        let resumed = case.summary(&env).await?;
        eprintln!(
            "{operation} k={k}: prepared in {:.1}s, killed and resumed in {:.1}s, compared in {:.1}s",
            prepared.as_secs_f64(),
            (ran - prepared).as_secs_f64(),
            (clock.elapsed() - ran).as_secs_f64()
        );
        if let Some(difference) = first_difference(&expected, &resumed) {
            panic!(
                "{operation} killed after step {k} then resumed differs from an uninterrupted run: {difference}"
            );
        }
        if !killed {
            // k is past the last action: every step has been covered.
            break;
        }
    }
    assert!(
        killed_runs >= 5,
        "{operation} has only {killed_runs} steps? ({expected:#?})"
    );
    eprintln!(
        "{operation}: killed after each of {killed_runs} steps and resumed, all equal to the uninterrupted run, in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reverse_killed_after_every_step_then_resumed_ends_like_an_uninterrupted_run() -> anyhow::Result<()> {
    killed_at_every_step("reverse", false, Profile::Documented).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failback_killed_after_every_step_then_resumed_ends_like_an_uninterrupted_run() -> anyhow::Result<()>
{
    killed_at_every_step("failback", true, Profile::Documented).await
}

// The same under the stand-in's other reading of what NetApp leaves undocumented (docs/trident-protect-fields.md).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reverse_killed_after_every_step_under_the_variant_reading() -> anyhow::Result<()> {
    killed_at_every_step("reverse", false, Profile::Variant).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failback_killed_after_every_step_under_the_variant_reading() -> anyhow::Result<()> {
    killed_at_every_step("failback", true, Profile::Variant).await
}
