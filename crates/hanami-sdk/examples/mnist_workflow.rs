//! End-to-end benchmark against a running server: uploads real MNIST, then per epoch trains
//! with a train task, requests the test set with a request task and checks the accuracy.
//! Each step is reported on stderr as it ends; at the end a table of all steps goes to
//! stdout (with `--json`: one JSON line per step instead).
//!
//! ```text
//! cargo run --release -p hanami-sdk --example mnist_workflow -- <ADDRESS> <MNIST_DIR> [EPOCHS] [--json]
//! ```
//! Credentials come from `HANAMI_USER` and `HANAMI_PW`; a server with its own certificate
//! needs `HANAMI_CA_CERT` (a PEM file of that certificate or of its CA), as for hanamictl.
//! Everything created is deleted again.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The documentation's template: 784 inputs `picture`, 10 outputs `label`.
const TEMPLATE: &str = hanami_engine::template::DOCUMENTATION_TEMPLATE;

/// What the benchmark measured, in order.
#[derive(Default)]
struct Report {
    json: bool,
    /// `(step, value, unit)`.
    rows: Vec<(String, f64, &'static str)>,
}

impl Report {
    /// Records the time of a step that started at `start`.
    fn step(&mut self, name: &str, start: Instant) {
        self.add(name, start.elapsed().as_secs_f64(), "s");
    }

    fn add(&mut self, name: &str, value: f64, unit: &'static str) {
        eprintln!("{name}: {}", Self::show(value, unit));
        self.rows.push((name.to_owned(), value, unit));
    }

    /// Seconds to the millisecond, percentages to two places.
    fn show(value: f64, unit: &str) -> String {
        if unit == "s" {
            format!("{value:.3} s")
        } else {
            format!("{value:.2} {unit}")
        }
    }

    /// Prints every step: a table, or JSON lines.
    fn print(&self) {
        if self.json {
            for (name, value, unit) in &self.rows {
                let key = if *unit == "s" { "seconds" } else { "percent" };
                println!("{{\"step\":\"{name}\",\"{key}\":{value:.3}}}");
            }
            return;
        }
        println!("| step | result |\n|---|---|");
        for (name, value, unit) in &self.rows {
            println!("| {name} | {} |", Self::show(*value, unit));
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().collect();
    let mut report = Report::default();
    if let Some(i) = args.iter().position(|a| a == "--json") {
        args.remove(i);
        report.json = true;
    }
    if args.len() < 3 {
        eprintln!("usage: mnist_workflow <ADDRESS> <MNIST_DIR> [EPOCHS] [--json]");
        std::process::exit(2);
    }
    let dir = PathBuf::from(&args[2]);
    let epochs: usize = args.get(3).map(|e| e.parse()).transpose()?.unwrap_or(1);
    let options = hanami_sdk::ConnectOptions {
        root_certificate_pem: std::env::var_os("HANAMI_CA_CERT")
            .filter(|path| !path.is_empty())
            .map(|path| {
                std::fs::read(&path).map_err(|e| {
                    format!("cannot read HANAMI_CA_CERT {}: {e}", path.to_string_lossy())
                })
            })
            .transpose()?,
        ..Default::default()
    };
    let client = hanami_sdk::Client::login_with(
        &args[1],
        &std::env::var("HANAMI_USER")?,
        &std::env::var("HANAMI_PW")?,
        &options,
    )
    .await?;
    let wait = Duration::from_secs(3600);

    let t = Instant::now();
    let train = client
        .upload_mnist(
            "workflow_train",
            &dir.join("train-images-idx3-ubyte"),
            &dir.join("train-labels-idx1-ubyte"),
        )
        .await?;
    report.step("upload_train", t);
    let t = Instant::now();
    let test = client
        .upload_mnist(
            "workflow_test",
            &dir.join("t10k-images-idx3-ubyte"),
            &dir.join("t10k-labels-idx1-ubyte"),
        )
        .await?;
    report.step("upload_test", t);
    let cluster = client.create_cluster("workflow_cluster", TEMPLATE).await?;
    for epoch in 1..=epochs {
        let t = Instant::now();
        let task = client
            .train(
                "workflow_train",
                &cluster.uuid,
                &[("picture", &train.uuid)],
                &[("label", &train.uuid)],
            )
            .await?;
        let done = client
            .wait_for_task(&cluster.uuid, &task.uuid, wait)
            .await?;
        report.step(&format!("train_epoch_{epoch}"), t);
        assert_eq!(done.state, hanami_sdk::types::tasks::TaskState::Finished);
        let t = Instant::now();
        let request = client
            .request(
                "workflow_request",
                &cluster.uuid,
                &[("picture", &test.uuid)],
                ("label", "workflow_result"),
            )
            .await?;
        client
            .wait_for_task(&cluster.uuid, &request.uuid, wait)
            .await?;
        report.step(&format!("request_{epoch}"), t);
        let accuracy = client.check_dataset(&test.uuid, &request.uuid).await?;
        report.add(&format!("accuracy_{epoch}"), accuracy, "%");
        client.delete_dataset(&request.uuid).await?;
    }
    client.delete_cluster(&cluster.uuid).await?;
    client.delete_dataset(&train.uuid).await?;
    client.delete_dataset(&test.uuid).await?;
    report.print();
    Ok(())
}
