//! The free-disk reserve (`min_free_disk_mib`) with several writes under way at once. A test
//! binary of its own: it sets the reserve from the disk's free space, which the writes of
//! other tests running beside it would move.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{ADMIN, ADMIN_PW, sdk};

/// Rows of the dataset the request tasks answer.
const ROWS: u64 = 1_500;
/// Outputs of the clusters: a result of `ROWS` rows takes about 57 MiB.
const OUTPUTS: u64 = 10_000;

/// The bytes an unprivileged process may still write to the file system holding `dir`, as
/// `df` reports them.
fn free_space(dir: &Path) -> u64 {
    let out = std::process::Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(dir)
        .output()
        .expect("df runs");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .nth(1)
        .and_then(|line| line.trim().parse().ok())
        .unwrap_or_else(|| panic!("unexpected df output {text:?}"))
}

/// Request tasks running at once share the room above the reserve: each result holds its
/// disk space from its start, counted once (not again as its file grows), so where the room
/// holds two and a half results, two of three tasks finish and the third is refused with
/// the figures, whichever order they run in.
#[tokio::test]
async fn request_results_running_at_once_share_the_room_above_the_reserve() {
    let tmp = tempfile::tempdir().unwrap();
    let (launched, config) = common::launch_with_config(tmp.path(), "max_running_tasks = 3\n");
    let mut first = launched.start();
    let client = sdk(&first, ADMIN, ADMIN_PW).await;
    let template = format!(
        "version: 1\nsettings:\n    neuron_cooldown: 10000000.0\nhexagons:\n    1,1,1\n    \
         2,1,1\n    3,1,1\ninputs:\n    a:\n        target: 1,1,1\n        number_of_inputs: \
         1\noutputs:\n    b:\n        target: 3,1,1\n        number_of_outputs: {OUTPUTS}\n"
    );
    let mut clusters = Vec::new();
    for i in 0..3 {
        let name = format!("wide{i}");
        clusters.push(client.create_cluster(&name, &template).await.unwrap().uuid);
    }
    let csv = tmp.path().join("rows.csv");
    let rows: String = (0..ROWS)
        .map(|i| format!("{},{}\n", i % 7, i % 2))
        .collect();
    std::fs::write(&csv, format!("a,b\n{rows}")).unwrap();
    let data = client.upload_csv("rows", &csv).await.unwrap().uuid;
    assert!(first.stop());

    let result = ROWS * OUTPUTS * 4;
    let free = free_space(tmp.path());
    let keep = free.checked_sub(result * 5 / 2).unwrap_or_else(|| {
        panic!(
            "this test needs about 150 MiB free beside the reserve; {} MiB are free",
            free >> 20
        )
    });
    std::fs::write(
        &config,
        format!(
            "max_running_tasks = 3\nmin_free_disk_mib = {}\n",
            keep >> 20
        ),
    )
    .unwrap();
    let server = common::launch()
        .args(&["--config", config.to_str().unwrap()])
        .data_dir(&first.data_dir)
        .start();
    let client = sdk(&server, ADMIN, ADMIN_PW).await;
    let mut tasks = Vec::new();
    for (i, cluster) in clusters.iter().enumerate() {
        let name = format!("answer{i}");
        let task = client
            .request(&name, cluster, &[("a", &data)], ("b", &name))
            .await
            .unwrap();
        tasks.push((cluster, task.uuid));
    }
    let mut finished = 0;
    let mut refusals = Vec::new();
    for (cluster, task) in &tasks {
        let done = client
            .wait_for_task(cluster, task, Duration::from_secs(120))
            .await
            .unwrap();
        match done.state.as_str() {
            "finished" => finished += 1,
            "aborted" => refusals.push(done.note.unwrap_or_default()),
            other => panic!("task {task} ended {other}"),
        }
    }
    assert_eq!(finished, 2, "{refusals:?}");
    assert!(
        refusals[0].starts_with("not enough disk space for the result dataset: it takes 58 MiB")
            && refusals[0].contains("min_free_disk_mib"),
        "{refusals:?}"
    );
    // The input and the two results, whole; nothing else is left in the datasets' folder.
    let datasets = client.datasets().await.unwrap().body;
    assert_eq!(datasets.len(), 3, "{datasets:?}");
    let mut sizes: Vec<u64> = std::fs::read_dir(server.data_dir.join("datasets"))
        .unwrap()
        .map(|entry| entry.unwrap().metadata().unwrap().len())
        .collect();
    sizes.sort_unstable();
    assert_eq!(sizes.len(), 3, "{sizes:?}");
    assert!(
        sizes[0] < 1 << 20 && sizes[1] > result && sizes[1] == sizes[2],
        "{sizes:?}"
    );
}

/// The start warns where the disk has less free than uploads keep (twice the reserve), and
/// says that only uploads are refused where it has more than the reserve itself.
#[test]
fn the_start_warns_of_a_reserve_beyond_the_free_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let free_mib = free_space(tmp.path()) >> 20;
    // Between once and twice the reserve, with a third of it for the disk to move.
    let reserve = free_mib * 2 / 3;
    let (launched, _) =
        common::launch_with_config(tmp.path(), &format!("min_free_disk_mib = {reserve}\n"));
    let server = launched.start();
    server.wait_until_logged(&[&format!(
        "MiB free, less than twice the {reserve} MiB that min_free_disk_mib keeps free: \
         uploads will be refused"
    )]);
}
