//! A measuring harness for engine work: restores (or first trains and saves) a network grown on
//! MNIST, then runs only training steps or only requests over a fixed range of images (one
//! `request_step` each, or all through one `request_batch` with `--mode batch`; training steps
//! through one `train_batch` with `--mode train-batch`), and prints the
//! time per sample and a fingerprint of the outputs and the resulting state. Fixed work, so it
//! suits `valgrind --tool=cachegrind` and A/B comparisons; the fingerprint shows whether two
//! builds compute the same bits.
//!
//! ```text
//! cargo run --release -p hanami-engine --example probe -- <MNIST_DIR> \
//!     [--checkpoint PATH] [--train-epochs N] [--mode train|train-batch|request|batch] [--from N] [--count N] \
//!     [--cycle N] [--flush-kb N] [--threads N] [--seed N] [--save PATH] [--portable]
//!     [--walks portable|avx2|avx512]
//! ```
//!
//! Without an existing `--checkpoint` file (default `/tmp/hanami-probe-<seed>.ckpt`), the
//! harness trains `--train-epochs` (default 1) epochs with `--seed` (default 1) and writes it.

use std::error::Error;
use std::path::Path;
use std::time::Instant;

use hanami_engine::{Cluster, ClusterOptions, Template, Walks};

/// Pixels (as `f32`) and labels of one MNIST split.
fn load(dir: &Path, images: &str, labels: &str) -> Result<(Vec<f32>, Vec<u8>), Box<dyn Error>> {
    let images = std::fs::read(dir.join(images))?;
    let labels = std::fs::read(dir.join(labels))?;
    if images.len() < 16 || labels.len() < 8 {
        return Err("not an MNIST IDX file".into());
    }
    Ok((
        images[16..].iter().map(|&p| f32::from(p)).collect(),
        labels[8..].to_vec(),
    ))
}

/// FNV-1a over a byte buffer.
fn fingerprint(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Writes every cache line of `buffer`.
fn touch(buffer: &mut [u64]) -> u64 {
    let mut sum = 0u64;
    for line in buffer.chunks_mut(8) {
        line[0] = line[0].wrapping_add(1);
        sum = sum.wrapping_add(line[0]);
    }
    sum
}

fn one_hot(label: u8) -> [f32; 10] {
    std::array::from_fn(|i| if i == usize::from(label) { 1.0 } else { 0.0 })
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let mut dir = None;
    let mut checkpoint = None;
    let (mut mode, mut from, mut count, mut threads, mut seed, mut epochs) = (
        String::from("request"),
        0usize,
        10_000usize,
        1usize,
        1u64,
        1usize,
    );
    let mut save = None;
    // The fastest walks this CPU runs unless `--portable` or `--walks NAME` says otherwise.
    let mut walks = Walks::supported().next_back().unwrap_or(Walks::Portable);
    // Images `from..from + cycle` are used over and over (a smaller working set).
    let mut cycle = usize::MAX;
    // Touch this many KiB between steps (outside the timing), to start each step with cold
    // caches.
    let mut flush_kb = 0usize;
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--checkpoint" => checkpoint = Some(value()?),
            "--mode" => mode = value()?,
            "--from" => from = value()?.parse()?,
            "--count" => count = value()?.parse()?,
            "--threads" => threads = value()?.parse()?,
            "--portable" => walks = Walks::Portable,
            "--walks" => {
                let name = value()?;
                walks = Walks::supported()
                    .find(|w| format!("{w:?}").eq_ignore_ascii_case(&name))
                    .ok_or(format!("this CPU does not run {name} walks"))?;
            }
            "--seed" => seed = value()?.parse()?,
            "--train-epochs" => epochs = value()?.parse()?,
            "--save" => save = Some(value()?),
            "--cycle" => cycle = value()?.parse()?,
            "--flush-kb" => flush_kb = value()?.parse()?,
            _ if dir.is_none() => dir = Some(arg),
            _ => return Err(format!("unexpected argument {arg}").into()),
        }
    }
    let dir = dir.ok_or("usage: probe <MNIST_DIR> [options]")?;
    let dir = Path::new(&dir);
    let checkpoint =
        checkpoint.unwrap_or_else(|| format!("/tmp/hanami-probe-{seed}-{epochs}.ckpt"));
    let stored = std::fs::read(&checkpoint).ok();
    // Only what the run needs is loaded (less noise under valgrind).
    let (train_x, train_y) = if stored.is_none() || mode.starts_with("train") {
        load(dir, "train-images-idx3-ubyte", "train-labels-idx1-ubyte")?
    } else {
        (Vec::new(), Vec::new())
    };
    let (test_x, test_y) = if mode == "request" || mode == "batch" {
        load(dir, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")?
    } else {
        (Vec::new(), Vec::new())
    };
    let mut cluster = match stored {
        Some(bytes) => Cluster::restore(&bytes)?,
        None => {
            let template = Template::parse(hanami_engine::template::DOCUMENTATION_TEMPLATE)?;
            let options = ClusterOptions {
                seed,
                threads,
                ..ClusterOptions::default()
            };
            let mut cluster = Cluster::new(&template, options)?;
            for _ in 0..epochs {
                for (x, &y) in train_x.chunks(784).zip(&train_y) {
                    cluster.train_step(&[("picture", x)], &[("label", &one_hot(y))])?;
                }
            }
            std::fs::write(&checkpoint, cluster.save())?;
            eprintln!("trained and saved {checkpoint}");
            cluster
        }
    };
    cluster.set_threads(threads)?;
    assert!(cluster.set_walks(walks), "the CPU runs the walks chosen");
    let mut flush = vec![0u64; flush_kb * 128];
    let mut flushed = 0u64;
    let mut elapsed = std::time::Duration::ZERO;
    let mut checksum = 0u64;
    match mode.as_str() {
        "train" => {
            for i in from..from + count {
                let i = (from + (i - from) % cycle) % train_y.len();
                let x = &train_x[i * 784..(i + 1) * 784];
                flushed = flushed.wrapping_add(touch(&mut flush));
                let start = Instant::now();
                cluster.train_step(&[("picture", x)], &[("label", &one_hot(train_y[i]))])?;
                elapsed += start.elapsed();
            }
        }
        "train-batch" => {
            // The train mode's rows through `train_batch`.
            let mut source =
                hanami_engine::RowsFn::new(count, |row: usize, name: &str, values: &mut [f32]| {
                    let i = (from + row % cycle) % train_y.len();
                    if name == "label" {
                        values.copy_from_slice(&one_hot(train_y[i]));
                    } else {
                        values.copy_from_slice(&train_x[i * 784..(i + 1) * 784]);
                    }
                    Ok(())
                });
            let cancel = std::sync::atomic::AtomicBool::new(false);
            let start = Instant::now();
            cluster.train_batch(&mut source, &cancel, &mut |_| {})?;
            elapsed = start.elapsed();
        }
        "request" => {
            for i in from..from + count {
                let i = (from + (i - from) % cycle) % test_y.len();
                flushed = flushed.wrapping_add(touch(&mut flush));
                let start = Instant::now();
                cluster.request_step(&[("picture", &test_x[i * 784..(i + 1) * 784])])?;
                elapsed += start.elapsed();
                let out = cluster.output("label").ok_or("no output")?;
                for v in out {
                    checksum = checksum.rotate_left(5) ^ u64::from(v.to_bits());
                }
            }
        }
        "batch" => {
            // The request mode's rows through `request_batch` (row-parallel chunks).
            let rows = cycle.clamp(1, count.max(1));
            let mut source =
                hanami_engine::RowsFn::new(count, |row: usize, _: &str, values: &mut [f32]| {
                    let i = (from + row % rows) % test_y.len();
                    values.copy_from_slice(&test_x[i * 784..(i + 1) * 784]);
                    Ok(())
                });
            let cancel = std::sync::atomic::AtomicBool::new(false);
            let start = Instant::now();
            cluster.request_batch(&mut source, &cancel, &mut |_| {}, &mut |_, _, out| {
                for v in out {
                    checksum = checksum.rotate_left(5) ^ u64::from(v.to_bits());
                }
            })?;
            elapsed = start.elapsed();
        }
        other => return Err(format!("unknown mode {other}").into()),
    }
    std::hint::black_box(flushed);
    let seconds = elapsed.as_secs_f64();
    let state = cluster.save();
    println!(
        "{{\"mode\":\"{mode}\",\"count\":{count},\"us_per_sample\":{:.3},\"outputs\":\"{checksum:016x}\",\"state\":\"{:016x}\",\"synapses\":{}}}",
        seconds * 1e6 / count as f64,
        fingerprint(&state),
        cluster.size().synapses
    );
    if let Some(path) = save {
        std::fs::write(path, state)?;
    }
    Ok(())
}
