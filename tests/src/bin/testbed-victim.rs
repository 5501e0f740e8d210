//! Starts a testbed, prints its run directory, then dies the way it is told (`panic` or `hang`, to be
//! SIGKILLed). The foundation tests use it to prove no cluster process outlives its owner.

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let testbed = runtime
        .block_on(tprotect_testbed::Testbed::start())
        .expect("testbed starts");
    println!("{}", testbed.dir.display());
    let mut pids = testbed.source.pids();
    pids.extend(testbed.destination.pids());
    println!(
        "{}",
        pids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
    );
    use std::io::Write;
    std::io::stdout().flush().expect("flush");
    match mode.as_str() {
        "panic" => panic!("the victim panics with its clusters running"),
        _ => loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        },
    }
}
