//! The lifecycle's guards through the real binary on two real clusters (issue 12): every refusal changes
//! nothing on either cluster (`Mark`: the resourceVersions of what the plugin writes, and the audit logs); a
//! second relationship for an application is refused; `setup` run again with another interval reconciles it and
//! refuses any other difference; `resync` never discards the destination without a running source; an
//! interrupted operation whose precondition then disappears names its way out (`--abandon`, recorded), and
//! `delete` ends it; the resync prompt is on the screen while the plugin waits for the answer; `check` tells an
//! answering webhook from a registered one that does not answer and from none.

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, DeleteParams, ListParams};
use tprotect_api::Application;
use tprotect_e2e::localenv::observe::resource;
use tprotect_e2e::localenv::{Fixtures, Output, Plugin, Setup, assert_unchanged};
use tprotect_e2e::{
    DESTINATION as DST, LocalEnv, SOURCE as SRC, WebhookOptions, fast_standin, plugin, plugin_env,
    webhook_binary,
};

const REL: &str = "rel1";
const APP: &str = "shop";
const DST_NS: &str = "shop-dr";

fn on<'a>(rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--context", DST, "--peer-context", SRC, "-n", DST_NS];
    args.extend_from_slice(rest);
    args
}

fn setup<'a>(name: &'a str, destination_namespace: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    Setup::new(name, APP, destination_namespace).args(extra)
}

/// Runs `args` with the stand-in stopped (it writes on its own) and asserts the run changed nothing the plugin
/// could change, on either cluster, but the relationship's lock taken and released (a refusal that only a write
/// can meet, such as an admission webhook that does not answer, comes after the lock); the stand-in runs again
/// afterwards.
async fn refused_changing_nothing(env: &mut LocalEnv, tp: &Plugin, args: &[&str]) -> anyhow::Result<Output> {
    env.stop_standin().await;
    let before = env.mark().await?;
    let out = tp.run(args).await?;
    out.show().expect_code(1);
    let after = env.mark().await?;
    let lease = format!("leases {DST_NS}/tprotect-{REL} ");
    let changes: Vec<String> = after
        .changes_since(&before)?
        .into_iter()
        .filter(|change| !change.contains(&lease))
        .collect();
    assert!(
        changes.is_empty(),
        "{} changed:\n{}",
        args.join(" "),
        changes.join("\n")
    );
    assert!(
        !after.versions.keys().any(|k| k.contains(" Lease ")),
        "a Lease was left: {:?}",
        after
            .versions
            .keys()
            .filter(|k| k.contains("Lease"))
            .collect::<Vec<_>>()
    );
    env.restart_standin().await?;
    Ok(out)
}

/// The testbed with the fast stand-in (and `webhook`, if given) and the application APP; the plugin on it.
async fn with_app(webhook: Option<WebhookOptions>) -> anyhow::Result<(LocalEnv, Plugin)> {
    let env = plugin_env(fast_standin(), webhook).await?;
    let tp = plugin(&env);
    env.install_fixtures(Fixtures::app(APP)).await?;
    Ok((env, tp))
}

async fn amr_rule(env: &LocalEnv) -> anyhow::Result<String> {
    let amr = env.amr(DST, REL).await?.expect("the AMR");
    Ok(amr["spec"]["recurrenceRule"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_change_nothing_setup_reconciles_and_check_tells_the_webhook_apart() -> anyhow::Result<()> {
    let (mut env, tp) = with_app(Some(WebhookOptions::new(webhook_binary()))).await?;
    tp.run(&setup(REL, DST_NS, &["--interval", "5m"])).await?.ok();

    // One relationship per application, and per destination namespace.
    let out = refused_changing_nothing(&mut env, &tp, &setup("pay2", DST_NS, &[])).await?;
    out.stderr_has("already replicated").stderr_has("\"rel1\"");
    let out = refused_changing_nothing(&mut env, &tp, &setup("pay2", "elsewhere", &[])).await?;
    out.stderr_has("already replicated");

    // setup again with another interval: the AMR and the replication schedule follow it, and it says so.
    let out = tp
        .run(&setup(REL, DST_NS, &["--interval", "15m", "-o", "json"]))
        .await?;
    out.show().ok();
    let report: serde_json::Value = serde_json::from_str(&out.stdout)?;
    let changes: Vec<&str> = report["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["change"].as_str())
        .collect();
    assert_eq!(changes.len(), 2, "{report:#}");
    assert!(
        changes
            .iter()
            .all(|c| c.contains("spec.recurrenceRule") && c.contains("INTERVAL=15")),
        "{changes:?}"
    );
    assert!(amr_rule(&env).await?.ends_with("FREQ=MINUTELY;INTERVAL=15"));
    // ... and with a difference it does not reconcile: refused naming it, nothing changed.
    let mut other_vault = setup(REL, DST_NS, &["--interval", "15m"]);
    let at = other_vault.iter().position(|a| *a == "src-vault").unwrap();
    other_vault[at] = "dst-vault";
    let out = refused_changing_nothing(&mut env, &tp, &other_vault).await?;
    out.stderr_has("--source-vault").stderr_has("\"src-vault\"");

    // check: the webhook answers on both clusters.
    tp.run(&on(&["check", REL]))
        .await?
        .show()
        .ok()
        .stdout_has("answers");
    // Registered but stopped: check fails naming it, and an operation the webhook guards says why it fails.
    env.stop_webhook(DST);
    let out = tp.run(&on(&["check", REL])).await?;
    out.show()
        .expect_code(1)
        .stdout_has(&format!("tprotect webhook on {DST}"))
        .stdout_has("NOT ANSWERING");
    let out = refused_changing_nothing(&mut env, &tp, &on(&["failover", REL])).await?;
    out.stderr_has("does not answer");
    // Not registered at all: a warning, and check passes.
    for context in [SRC, DST] {
        let client = env.client(context)?;
        let validating: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
        let mutating: Api<MutatingWebhookConfiguration> = Api::all(client);
        validating
            .delete("tprotect-webhook", &DeleteParams::default())
            .await?;
        mutating
            .delete("tprotect-webhook", &DeleteParams::default())
            .await?;
    }
    env.stop_webhook(SRC);
    let out = tp.run(&on(&["check", REL])).await?;
    out.show().ok().stdout_has("warning").stdout_has("not installed");

    // resync with the source API server stopped: refused, the destination (the only running copy) kept.
    tp.run(&on(&["failover", REL])).await?.show().ok();
    env.testbed.source.stop_apiserver();
    env.stop_standin().await;
    let before = env.mark_on(&[DST]).await?;
    let out = tp.run(&on(&["resync", REL, "--yes"])).await?;
    out.show()
        .expect_code(1)
        .stderr_has(SRC)
        .stderr_has("unreachable")
        .stderr_has("Nothing was changed");
    assert_unchanged(&before, &env.mark_on(&[DST]).await?, "resync without the source");
    let amr = env.amr(DST, REL).await?.expect("the AMR");
    assert_eq!(amr["spec"]["desiredState"], "Promoted");
    env.testbed.source.start_apiserver().await?;
    Ok(())
}

/// Interrupts `args` right after its `step`-th action (the runner's test-only switch).
async fn interrupted(tp: &Plugin, args: &[&str], step: u32) -> anyhow::Result<()> {
    let out = tp
        .run_with_env(args, &[("TPROTECT_TEST_KILL_AFTER_STEP", &step.to_string())])
        .await?;
    out.show().expect_code(137);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_operation_whose_precondition_went_names_its_way_out() -> anyhow::Result<()> {
    let (env, tp) = with_app(None).await?;
    let promoted: Api<kube::api::DynamicObject> =
        Api::namespaced_with(env.client(DST)?, DST_NS, &resource::<Application>());
    for way_out in ["--abandon", "delete"] {
        tp.run(&setup(REL, DST_NS, &[])).await?.show().ok();
        tp.run(&on(&["failover", REL])).await?.show().ok();
        // reverse-resync: 1 notes the promoted application in the lock, 2 deletes the AMR on the destination.
        interrupted(&tp, &on(&["reverse-resync", REL]), 2).await?;
        assert!(env.amr(DST, REL).await?.is_none() && env.amr(SRC, REL).await?.is_none());
        // The promoted application, the source of the reversed relationship, is deleted meanwhile.
        for app in promoted.list(&ListParams::default()).await? {
            promoted
                .delete(&app.metadata.name.unwrap_or_default(), &DeleteParams::default())
                .await?;
        }
        let out = tp.run(&on(&["reverse-resync", REL])).await?;
        out.show()
            .expect_code(1)
            .stderr_has("Application")
            .stderr_has(&format!("kubectl tprotect reverse-resync {REL} --abandon"));
        // The record shows, and blocks other operations naming the ways out.
        tp.run(&on(&["status", REL]))
            .await?
            .show()
            .ok()
            .stdout_has("reverse-resync (started");
        let out = tp.run(&on(&["failover", REL])).await?;
        out.show()
            .expect_code(1)
            .stderr_has("is in progress")
            .stderr_has("--abandon")
            .stderr_has(&format!("kubectl tprotect delete {REL}"));
        match way_out {
            "--abandon" => {
                // Asked first: refused without a terminal unless --yes.
                let out = tp.run(&on(&["reverse-resync", REL, "--abandon"])).await?;
                out.show().expect_code(1).stderr_has("confirmation failed");
                let out = tp
                    .run(&on(&["reverse-resync", REL, "--abandon", "--yes"]))
                    .await?;
                out.show().ok().stdout_has("gave up the reverse-resync");
                let events: Api<Event> = Api::namespaced(env.client(DST)?, DST_NS);
                let recorded = events
                    .list(&ListParams::default())
                    .await?
                    .items
                    .into_iter()
                    .filter(|e| e.reason.as_deref() == Some("OperationAbandoned"))
                    .count();
                assert_eq!(recorded, 1, "the record is kept in an Event");
            }
            _ => {
                // Delete is never blocked by an operation in progress; it asks first.
                let out = tp.run(&on(&["delete", REL])).await?;
                out.show().expect_code(1).stderr_has("confirmation failed");
                tp.run(&on(&["delete", REL, "--yes"])).await?.show().ok();
            }
        }
        // Either way: no lock, no AMR; the relationship is gone and can be set up again.
        tp.run(&on(&["status", REL]))
            .await?
            .expect_code(1)
            .stderr_has("not found");
        tp.run(&on(&["delete", REL, "--ignore-not-found"])).await?.ok();
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_resync_prompt_is_on_the_screen_while_the_plugin_waits_for_the_answer() -> anyhow::Result<()> {
    let (env, tp) = with_app(None).await?;
    tp.run(&setup(REL, DST_NS, &[])).await?.ok();
    tp.run(&on(&["failover", REL])).await?.ok();

    let prompt = format!("Type the relationship name ({REL}) to confirm:");
    let screen = tp.on_screen(&on(&["resync", REL]))?;
    screen.wait_for(&prompt).await?;
    // A spinner would redraw over the question within a tenth of a second: the question must stay.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let shown = screen.text();
    eprintln!("the screen while the plugin waits:\n{shown}");
    assert!(
        shown.contains(&prompt),
        "the prompt is gone from the screen:\n{shown}"
    );
    assert!(shown.contains("WARNING: DISCARDING every change"), "{shown}");
    // Nothing drawn over or after it: the question is the last thing on the screen, no spinner anywhere.
    let last = shown
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    assert!(
        last.trim_end().ends_with(&prompt),
        "the question is not the last line:\n{shown}"
    );
    assert!(
        !shown.chars().any(|c| ('\u{2800}'..='\u{28ff}').contains(&c)),
        "a spinner is drawn while the plugin asks:\n{shown}"
    );
    assert_eq!(screen.exit_code(), None, "still waiting for the answer:\n{shown}");
    screen.type_line("not-the-name")?;
    assert_eq!(screen.wait_exit().await?, 1);
    screen.wait_for("confirmation failed").await?;
    let amr = env.amr(DST, REL).await?.expect("the AMR");
    assert_eq!(amr["spec"]["desiredState"], "Promoted", "nothing was changed");

    // Answered with the name, it goes ahead.
    let screen = tp.on_screen(&on(&["resync", REL]))?;
    screen.wait_for(&prompt).await?;
    screen.type_line(REL)?;
    assert_eq!(screen.wait_exit().await?, 0, "{}", screen.text());
    let amr = env.amr(DST, REL).await?.expect("the AMR");
    assert_eq!(amr["spec"]["desiredState"], "Established");
    Ok(())
}
