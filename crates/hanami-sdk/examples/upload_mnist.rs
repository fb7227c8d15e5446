//! Benchmark: uploads the real MNIST training set (60,000 images) several times and prints
//! the time of each upload (init, websocket transfer, progress, finalisation) and the median.
//!
//! ```text
//! cargo run --release -p hanami-sdk --example upload_mnist -- <ADDRESS> <MNIST_DIR> [RUNS]
//! ```
//! Credentials come from `HANAMI_USER` and `HANAMI_PW`. Each uploaded dataset is deleted again.

use std::path::PathBuf;
use std::time::Instant;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: upload_mnist <ADDRESS> <MNIST_DIR> [RUNS]");
        std::process::exit(2);
    }
    let dir = PathBuf::from(&args[2]);
    let runs: usize = args.get(3).map(|r| r.parse()).transpose()?.unwrap_or(5);
    let user = std::env::var("HANAMI_USER")?;
    let password = std::env::var("HANAMI_PW")?;
    let client = hanami_sdk::Client::login(&args[1], &user, &password).await?;
    let images = dir.join("train-images-idx3-ubyte");
    let labels = dir.join("train-labels-idx1-ubyte");
    let mut times = Vec::with_capacity(runs);
    for run in 1..=runs {
        let start = Instant::now();
        let dataset = client.upload_mnist("bench_mnist", &images, &labels).await?;
        let seconds = start.elapsed().as_secs_f64();
        println!(
            "{{\"run\":{run},\"upload_s\":{seconds:.4},\"rows\":{}}}",
            dataset.number_of_rows
        );
        client.delete_dataset(&dataset.uuid).await?;
        times.push(seconds);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{{\"median_upload_s\":{:.4},\"runs\":{runs}}}",
        times[runs / 2]
    );
    Ok(())
}
