//! Safety of the lifecycle commands through the real binary on two real clusters with the stand-in:
//! `--dry-run=client` (and `server`) changes nothing; two concurrent `failback`s: exactly one runs; each bad
//! input exits 1 with a message naming the cluster, namespace and object, and changes nothing; failover works
//! with the source API server stopped.
//!
//! "Changes nothing" is judged on what the plugin could have changed (`tprotect_localenv::observe`): the
//! resourceVersions of the kinds it writes, and the API servers' audit logs, which must show no write of its
//! user agent carried out meanwhile. The stand-in is stopped around every such check: it writes on its own.

use tprotect_e2e::localenv::{Fixtures, Output, Plugin, Setup, assert_unchanged};
use tprotect_e2e::{DESTINATION as DST, LocalEnv, SOURCE as SRC, fast_standin, plugin, plugin_env};

const APP: &str = "shop";
const DST_NS: &str = "shop-dr";

fn base<'a>(context: &'a str, peer: &'a str) -> Vec<&'a str> {
    vec!["--context", context, "--peer-context", peer, "-n", APP]
}

fn with<'a>(mut base: Vec<&'a str>, rest: &[&'a str]) -> Vec<&'a str> {
    base.extend_from_slice(rest);
    base
}

fn setup_args<'a>(name: &'a str, app: &'a str, src_vault: &'a str, dst_vault: &'a str) -> Vec<&'a str> {
    Setup {
        namespace: APP,
        vaults: [src_vault, dst_vault],
        ..Setup::new(name, app, DST_NS)
    }
    .args(&[])
}

/// Runs a dry run (the stand-in stopped) and checks it printed a plan and changed nothing.
async fn dry_run_changes_nothing(
    env: &LocalEnv,
    tp: &Plugin,
    args: &[&str],
    expect_in_plan: &[&str],
) -> anyhow::Result<Output> {
    let before = env.mark().await?;
    let out = tp.run(args).await?;
    out.ok();
    for text in expect_in_plan {
        out.stdout_has(text);
    }
    assert_unchanged(&before, &env.mark().await?, &args.join(" "));
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_runs_concurrency_bad_input_and_a_failover_without_the_source() -> anyhow::Result<()> {
    let mut env = plugin_env(fast_standin(), None).await?;
    let tp = plugin(&env);
    // Timed once the clusters are up (building the binaries and starting the testbed are not counted).
    let started = std::time::Instant::now();
    env.install_fixtures(Fixtures::app(APP)).await?;

    // --dry-run=client of setup: the whole plan, nothing written (the stand-in is stopped so that only the
    // plugin could change anything).
    env.stop_standin().await;
    let mut args = vec!["--dry-run=client"];
    args.extend(setup_args("rel1", APP, "src-vault", "dst-vault"));
    let out = dry_run_changes_nothing(
        &env,
        &tp,
        &args,
        &[
            "Plan for setup rel1",
            "create Schedule shop/appmirror-schedule-rel1",
            "create Secret trident-protect/src-vault-creds",
            "create AppVault trident-protect/src-vault",
            "create Namespace shop-dr",
            "create AppMirrorRelationship shop-dr/rel1",
            "wait until AppMirrorRelationship shop-dr/rel1 has status.state Established",
        ],
    )
    .await?;
    assert!(!out.stdout.contains("do-not-print-me"), "secret data in a plan");
    // -o json of a plan is data.
    let mut args = vec!["--dry-run=client", "-o", "json"];
    args.extend(setup_args("rel1", APP, "src-vault", "dst-vault"));
    let out = dry_run_changes_nothing(&env, &tp, &args, &[]).await?;
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).expect("plan -o json");
    assert_eq!(plan["result"], "dry-run-client", "{plan:#}");
    assert!(
        plan["steps"].as_array().is_some_and(|steps| steps.len() >= 6),
        "{plan:#}"
    );
    // --dry-run=server: every write sent with dryRun=All, still nothing stored.
    let mut args = vec!["--dry-run=server"];
    args.extend(setup_args("rel1", APP, "src-vault", "dst-vault"));
    dry_run_changes_nothing(
        &env,
        &tp,
        &args,
        &["dryRun=All", "create AppMirrorRelationship shop-dr/rel1"],
    )
    .await?;

    // Bad input to setup: exit 1, a message naming cluster, namespace and object, nothing changed.
    let before = env.mark().await?;
    let bad_setups: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            setup_args("rel1", "no-such-app", "src-vault", "dst-vault"),
            vec!["Application", "shop/no-such-app", SRC],
        ),
        (
            setup_args("rel1", APP, "no-such-vault", "dst-vault"),
            vec!["AppVault", "trident-protect/no-such-vault", SRC],
        ),
        (
            setup_args("rel1", APP, "src-vault", "no-such-vault"),
            vec!["AppVault", "trident-protect/no-such-vault", DST],
        ),
    ];
    for (args, expected) in bad_setups {
        let out = tp.run(&args).await?;
        out.show().expect_code(1);
        for text in expected {
            out.stderr_has(text);
        }
    }
    assert_unchanged(&before, &env.mark().await?, "bad setups");

    // Set the relationship up (stand-in running), and fail it over.
    env.restart_standin().await?;
    let before_setup = env.mark().await?;
    tp.run(&setup_args("rel1", APP, "src-vault", "dst-vault"))
        .await?
        .ok();
    // The same judgement sees a command that does write: what the audit logs say the plugin wrote.
    let written = env.mark().await?.changes_since(&before_setup)?;
    assert!(
        written
            .iter()
            .any(|c| c.contains("the plugin wrote: create appmirrorrelationships shop-dr/rel1")),
        "{written:#?}"
    );
    tp.run(&with(base(SRC, DST), &["failover", "rel1"])).await?.ok();
    // Without a terminal, --yes confirms a resync; then fail over again.
    tp.run(&with(base(DST, SRC), &["resync", "rel1", "--yes"]))
        .await?
        .ok();
    assert_eq!(
        env.amr(DST, "rel1").await?.expect("the AMR")["status"]["state"],
        "Established"
    );
    tp.run(&with(base(SRC, DST), &["failover", "rel1"])).await?.ok();

    // --dry-run=client of every other mutating command on this Promoted relationship: plans, no change.
    env.stop_standin().await;
    for (verb, expected) in [
        ("failover", "done: rel1 is failed over"),
        ("resync", "DISCARDS every change"),
        ("reverse-resync", "delete AppMirrorRelationship shop-dr/rel1"),
        ("failback", "create ShutdownSnapshot"),
        ("delete", "delete AppMirrorRelationship shop-dr/rel1"),
    ] {
        dry_run_changes_nothing(
            &env,
            &tp,
            &with(base(DST, SRC), &["--dry-run=client", verb, "rel1"]),
            &[expected],
        )
        .await?;
    }

    // Bad input to commands on the relationship, the stand-in still stopped: its schedules would snapshot
    // the application meanwhile, a change no command made.
    let before_cases = env.mark().await?;
    let unknown = tp
        .run(&with(base(SRC, DST), &["failover", "no-such-rel"]))
        .await?;
    unknown
        .show()
        .expect_code(1)
        .stderr_has("no-such-rel")
        .stderr_has("not found")
        .stderr_has(SRC)
        .stderr_has(DST);
    let wrong_context = tp
        .run(&[
            "--context",
            "no-such-context",
            "--peer-context",
            DST,
            "failover",
            "rel1",
        ])
        .await?;
    wrong_context
        .show()
        .expect_code(1)
        .stderr_has("no-such-context")
        .stderr_has("not in the kubeconfig");
    let same = tp
        .run(&["--context", DST, "--peer-context", DST, "failover", "rel1"])
        .await?;
    same.show().expect_code(2).stderr_has("both name");
    let no_peer = tp.run(&["--context", DST, "failover", "rel1"]).await?;
    no_peer.show().expect_code(2).stderr_has("--peer-context");
    // RBAC denied: `alice` has no permissions.
    let viewer_src = format!("{SRC}-viewer");
    let viewer_dst = format!("{DST}-viewer");
    let denied = tp
        .run(&[
            "--context",
            &viewer_dst,
            "--peer-context",
            &viewer_src,
            "-n",
            DST_NS,
            "resync",
            "rel1",
            "--yes",
        ])
        .await?;
    denied
        .show()
        .expect_code(1)
        .stderr_has("RBAC denied")
        .stderr_has("alice")
        .stderr_has(&viewer_dst);
    // A planned swap of a failed-over relationship is refused with the way out.
    let wrong_state = tp.run(&with(base(DST, SRC), &["reverse", "rel1"])).await?;
    wrong_state
        .show()
        .expect_code(1)
        .stderr_has("failed over")
        .stderr_has("failback rel1")
        .stderr_has(DST_NS);
    assert_unchanged(&before_cases, &env.mark().await?, "bad input on the relationship");
    env.restart_standin().await?;

    // `| head`: a closed stdout is not an error and never a panic.
    for args in [
        with(base(SRC, DST), &["status", "rel1"]),
        with(base(SRC, DST), &["status", "-A", "-o", "yaml"]),
    ] {
        let out = tp.run_with_stdout_closed(&args).await?;
        out.ok();
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    }

    // Two concurrent failbacks: exactly one runs, the other is refused naming the lock holder.
    let args = with(base(SRC, DST), &["failback", "rel1"]);
    let (first, second) = tokio::join!(tp.run(&args), tp.run(&args));
    let (first, second) = (first?, second?);
    let (winner, loser) = if first.code == 0 {
        (&first, &second)
    } else {
        (&second, &first)
    };
    winner.ok();
    loser
        .show()
        .expect_code(1)
        .stderr_has("locked by")
        .stderr_has("/pid ")
        .stderr_has("since");
    let amr = env.amr(DST, "rel1").await?.expect("AMR back on the destination");
    assert_eq!(amr["spec"]["desiredState"], "Established");
    assert_eq!(amr["spec"]["namespaceMapping"][0]["source"], APP);

    // The disaster: the source API server is down. Failover still works, with a warning.
    env.testbed.source.stop_apiserver();
    let out = tp.run(&with(base(DST, SRC), &["failover", "rel1"])).await?;
    assert!(
        !out.stderr.contains("ERROR"),
        "library logs leaked: {}",
        out.stderr
    );
    out.show()
        .ok()
        .stderr_has("warning")
        .stderr_has(SRC)
        .stderr_has("unreachable");
    let amr = env.amr(DST, "rel1").await?.expect("the AMR");
    assert_eq!(amr["spec"]["desiredState"], "Promoted");
    assert_eq!(amr["status"]["state"], "Promoted");
    // What needs the source is refused, naming it, and changes nothing (judged on the cluster that answers,
    // the stand-in stopped).
    env.stop_standin().await;
    let before = env.mark_on(&[DST]).await?;
    let out = tp.run(&with(base(DST, SRC), &["reverse-resync", "rel1"])).await?;
    out.show()
        .expect_code(1)
        .stderr_has(SRC)
        .stderr_has("unreachable");
    assert_unchanged(
        &before,
        &env.mark_on(&[DST]).await?,
        "reverse-resync without the source",
    );
    eprintln!("safety test: {:.0}s", started.elapsed().as_secs_f64());
    Ok(())
}
