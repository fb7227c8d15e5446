//! End-to-end benchmark against a running server: uploads real MNIST, trains one epoch with a
//! train task, requests the test set with a request task, checks the accuracy, and prints
//! one JSON line per step with its time.
//!
//! ```text
//! cargo run --release -p hanami-sdk --example mnist_workflow -- <ADDRESS> <MNIST_DIR> [EPOCHS]
//! ```
//! Credentials come from `HANAMI_USER` and `HANAMI_PW`. Everything created is deleted again.

use std::path::PathBuf;
use std::time::{Duration, Instant};

const TEMPLATE: &str = "version: 1\nsettings:\n    neuron_cooldown: 10000000.0\n    \
    refractory_time: 1\n    max_connection_distance: 1\n    enable_reduction: false\nhexagons:\n    \
    1,1,1\n    2,1,1\n    3,1,1\ninputs:\n    picture:\n        target: 1,1,1\n        \
    number_of_inputs: 784\noutputs:\n    label:\n        target: 3,1,1\n        \
    number_of_outputs: 10\n";

fn step(name: &str, start: Instant) {
    println!(
        "{{\"step\":\"{name}\",\"seconds\":{:.3}}}",
        start.elapsed().as_secs_f64()
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: mnist_workflow <ADDRESS> <MNIST_DIR> [EPOCHS]");
        std::process::exit(2);
    }
    let dir = PathBuf::from(&args[2]);
    let epochs: usize = args.get(3).map(|e| e.parse()).transpose()?.unwrap_or(1);
    let client = hanami_sdk::Client::login(
        &args[1],
        &std::env::var("HANAMI_USER")?,
        &std::env::var("HANAMI_PW")?,
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
    step("upload_train", t);
    let t = Instant::now();
    let test = client
        .upload_mnist(
            "workflow_test",
            &dir.join("t10k-images-idx3-ubyte"),
            &dir.join("t10k-labels-idx1-ubyte"),
        )
        .await?;
    step("upload_test", t);
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
        step(&format!("train_epoch_{epoch}"), t);
        assert_eq!(done.state, "finished");
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
        step(&format!("request_{epoch}"), t);
        let accuracy = client.check_dataset(&test.uuid, &request.uuid).await?;
        println!("{{\"epoch\":{epoch},\"accuracy\":{accuracy:.2}}}");
        client.delete_dataset(&request.uuid).await?;
    }
    client.delete_cluster(&cluster.uuid).await?;
    client.delete_dataset(&train.uuid).await?;
    client.delete_dataset(&test.uuid).await?;
    Ok(())
}
