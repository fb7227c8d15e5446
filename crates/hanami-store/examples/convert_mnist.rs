//! Benchmark of the MNIST conversion (and of reading the result back).
//!
//! ```text
//! cargo run --release -p hanami-store --example convert_mnist -- \
//!     /work/.cache/mnist/train-images-idx3-ubyte /work/.cache/mnist/train-labels-idx1-ubyte [RUNS]
//! ```
//!
//! Converts the pair RUNS times (default 9) into a fresh temporary directory — the full
//! conversion including fsync of file and directory — and prints every time and the median,
//! then times a sequential row-by-row read and a whole-dataset load of the last result.
//! Set `TMPDIR` to measure on another file system.

use std::time::{Duration, Instant};

use hanami_store::dataset::{DatasetReader, convert_mnist};

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: convert_mnist IMAGES LABELS [RUNS]");
        std::process::exit(2);
    }
    let runs: usize = args.get(3).map(|r| r.parse()).transpose()?.unwrap_or(9);
    let dir = tempfile::tempdir()?;

    let mut times = Vec::new();
    let mut last = None;
    for run in 0..runs {
        let dest = dir.path().join(format!("mnist-{run}"));
        let start = Instant::now();
        let header = convert_mnist(&args[1], &args[2], "mnist benchmark", &dest, || {})?.header;
        let took = start.elapsed();
        println!(
            "run {run}: {:.1} ms ({} rows × {} columns)",
            took.as_secs_f64() * 1e3,
            header.number_of_rows,
            header.number_of_columns
        );
        times.push(took);
        if let Some(previous) = last.replace(dest) {
            std::fs::remove_file(previous)?;
        }
    }
    let dest = last.expect("at least one run");
    let size = std::fs::metadata(&dest)?.len();
    let m = median(&mut times);
    println!(
        "convert: median {:.1} ms of {runs} runs, {:.0} MB written ({:.2} GB/s)",
        m.as_secs_f64() * 1e3,
        size as f64 / 1e6,
        size as f64 / m.as_secs_f64() / 1e9
    );

    let reader = DatasetReader::open(&dest)?;
    let header = reader.header().clone();
    let picture = header.column_range("picture").expect("MNIST description");
    let label = header.column_range("label").expect("MNIST description");

    let mut times = Vec::new();
    let mut checksum = 0f64;
    for _ in 0..5 {
        let start = Instant::now();
        let mut pictures = reader.rows(picture, 0..header.number_of_rows)?;
        let mut labels = reader.rows(label, 0..header.number_of_rows)?;
        while let (Some(p), Some(l)) = (pictures.next_row()?, labels.next_row()?) {
            checksum += f64::from(p[400]) + f64::from(l[3]);
        }
        times.push(start.elapsed());
    }
    println!(
        "sequential read of picture and label rows: median {:.1} ms (checksum {checksum})",
        median(&mut times).as_secs_f64() * 1e3
    );

    let mut times = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let all = reader.load_f32(picture)?;
        times.push(start.elapsed());
        assert_eq!(all.len() as u64, header.number_of_rows * picture.width());
    }
    println!(
        "load_f32 of all pictures: median {:.1} ms",
        median(&mut times).as_secs_f64() * 1e3
    );
    Ok(())
}
