//! Runs the ONTAP STAND-IN (tests and demos only, never shipped) until Ctrl-C, for trying
//! `kubectl tprotect snapmirror` by hand:
//!
//! ```text
//! tprotect-ontap-standin [SCENARIO] [CA_PEM_PATH]
//! ```
//!
//! SCENARIO: created (default), accepted-job, job-failure, transfer-failure, relationship-missing, broken-off,
//! unhealthy, unauthorized, slow, lagging, busy, busy-at-post, lost-post-answer, post-never-answered. It prints the `--hostname`, writes its CA to CA_PEM_PATH (default
//! `./ontap-standin-ca.pem`) and prints the stand-in's own test credentials as environment variables.

use std::time::Duration;

use tprotect_ontap_standin::{DESTINATION_PATH, OntapStandin, SOURCE_PATH, Scenario};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "created".into());
    let ca_path = args.next().unwrap_or_else(|| "ontap-standin-ca.pem".into());
    let scenario = match name.as_str() {
        "created" => Scenario::created(),
        "accepted-job" => Scenario::accepted_job(),
        "job-failure" => Scenario::job_failure(),
        "transfer-failure" => Scenario::transfer_failure(),
        "relationship-missing" => Scenario::relationship_missing(),
        "broken-off" => Scenario::broken_off(),
        "unhealthy" => Scenario::unhealthy(),
        "unauthorized" => Scenario::unauthorized(),
        "slow" => Scenario::slow(Duration::from_secs(5)),
        "lagging" => Scenario::lagging(),
        "busy" => Scenario::busy(),
        "busy-at-post" => Scenario::busy_at_post(),
        "lost-post-answer" => Scenario::lost_post_answer(),
        "post-never-answered" => Scenario::post_never_answered(),
        other => return Err(format!("unknown scenario {other:?}").into()),
    };
    let standin = OntapStandin::start(scenario).await?;
    std::fs::write(&ca_path, standin.ca_pem())?;
    println!("ONTAP STAND-IN (not ONTAP; for tests and demos) scenario {name}");
    println!("  --hostname {} --ca-file {ca_path}", standin.hostname());
    println!("  --source {SOURCE_PATH} --destination {DESTINATION_PATH}");
    println!(
        "  export ONTAP_USERNAME={} ONTAP_PASSWORD={}",
        standin.username(),
        standin.password()
    );
    tokio::signal::ctrl_c().await?;
    for request in standin.requests() {
        println!(
            "{} {}{}",
            request.method,
            request.path,
            request.query.map(|q| format!("?{q}")).unwrap_or_default()
        );
    }
    Ok(())
}
