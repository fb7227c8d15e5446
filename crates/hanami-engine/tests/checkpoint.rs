//! Checkpoints restore bit for bit; damaged files are refused with an error.

mod common;

use common::{cluster, sample, train};
use hanami_engine::{
    CHECKPOINT_HEADER_BYTES, CheckpointError, Cluster, FORMAT_VERSION, check_checkpoint_header,
};
use proptest::prelude::*;

fn trained(seed: u64, cycles: usize, reduction: bool) -> Cluster {
    let mut c = cluster(seed, 1, reduction);
    train(&mut c, 0, cycles);
    c
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Saving, restoring and going on gives exactly what going on without the round trip gives.
    #[test]
    fn round_trip_is_bit_identical(seed in 0u64..1000, cycles in 0usize..400, more in 1usize..60, reduction: bool) {
        let mut original = trained(seed, cycles, reduction);
        let bytes = original.save();
        let mut restored = Cluster::restore(&bytes).expect("restores");
        prop_assert_eq!(&restored.save(), &bytes);
        for i in 0..more {
            let (x, y) = sample(cycles + i);
            if i % 3 == 0 {
                original.request_step(&[("x", &x)]).unwrap();
                restored.request_step(&[("x", &x)]).unwrap();
                prop_assert_eq!(original.output("y").unwrap(), restored.output("y").unwrap());
            } else {
                original.train_step(&[("x", &x)], &[("y", &y)]).unwrap();
                restored.train_step(&[("x", &x)], &[("y", &y)]).unwrap();
            }
        }
        prop_assert_eq!(original.save(), restored.save());
    }

    /// Any single flipped bit is caught.
    #[test]
    fn flipped_bits_are_refused(position in 0usize..1_000_000, bit in 0u8..8) {
        let bytes = trained(1, 200, false).save();
        let mut damaged = bytes.clone();
        let at = position % damaged.len();
        damaged[at] ^= 1 << bit;
        prop_assert!(Cluster::restore(&damaged).is_err());
    }
}

#[test]
fn every_truncation_is_refused() {
    let bytes = trained(2, 300, false).save();
    let step = (bytes.len() / 500).max(1);
    for len in (0..bytes.len())
        .step_by(step)
        .chain(bytes.len() - 8..bytes.len())
    {
        let err = Cluster::restore(&bytes[..len]).expect_err("truncated checkpoint must fail");
        assert!(
            matches!(err, CheckpointError::Truncated | CheckpointError::BadMagic),
            "length {len}: {err}"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(Cluster::restore(&longer).is_err());
}

#[test]
fn future_versions_bad_magic_and_checksums_are_refused() {
    let bytes = trained(3, 100, false).save();
    let mut future = bytes.clone();
    future[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    assert!(matches!(
        Cluster::restore(&future),
        Err(CheckpointError::UnsupportedVersion { found }) if found == FORMAT_VERSION + 1
    ));
    let mut magic = bytes.clone();
    magic[0] = b'X';
    assert!(matches!(
        Cluster::restore(&magic),
        Err(CheckpointError::BadMagic)
    ));
    let mut body = bytes.clone();
    let middle = body.len() / 2;
    body[middle] ^= 0x55;
    assert!(matches!(
        Cluster::restore(&body),
        Err(CheckpointError::ChecksumMismatch)
    ));
    assert!(Cluster::restore(&[]).is_err());
    assert!(Cluster::restore(b"not a checkpoint at all, just text").is_err());
}

/// The header alone tells a file of another kind or version, and one whose length changed,
/// without the rest of the file.
#[test]
fn the_header_alone_finds_other_files_and_changed_lengths() {
    let bytes = trained(4, 100, false).save();
    let head = &bytes[..CHECKPOINT_HEADER_BYTES];
    let total = bytes.len() as u64;
    check_checkpoint_header(head, total).unwrap();
    check_checkpoint_header(&bytes, total).unwrap();
    assert!(matches!(
        check_checkpoint_header(head, total - 1),
        Err(CheckpointError::Truncated)
    ));
    assert!(matches!(
        check_checkpoint_header(head, total + 1),
        Err(CheckpointError::Malformed(_))
    ));
    assert!(matches!(
        check_checkpoint_header(&bytes[..10], 10),
        Err(CheckpointError::Truncated)
    ));
    assert!(matches!(
        check_checkpoint_header(b"{}", 2),
        Err(CheckpointError::BadMagic)
    ));
    assert!(matches!(
        check_checkpoint_header(&[], 0),
        Err(CheckpointError::Truncated)
    ));
    let mut future = head.to_vec();
    future[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    assert!(matches!(
        check_checkpoint_header(&future, total),
        Err(CheckpointError::UnsupportedVersion { .. })
    ));
    // A damaged body passes the header check; restoring finds it.
    let mut body = bytes.clone();
    let middle = body.len() / 2;
    body[middle] ^= 0x55;
    check_checkpoint_header(&body, total).unwrap();
    assert!(Cluster::restore(&body).is_err());
}

/// A checkpoint with a valid checksum but inconsistent content is still refused.
#[test]
fn inconsistent_content_with_valid_checksum_is_refused() {
    let bytes = trained(4, 200, false).save();
    let payload_end = bytes.len() - 4;
    let mut refused = 0;
    for at in (24..payload_end).step_by(97) {
        let mut damaged = bytes[..payload_end].to_vec();
        damaged[at] = damaged[at].wrapping_add(0x80);
        let crc = crc32(&damaged);
        damaged.extend_from_slice(&crc.to_le_bytes());
        // Must never panic; many of these change plain numbers and restore fine.
        if Cluster::restore(&damaged).is_err() {
            refused += 1;
        }
    }
    assert!(refused > 0);
}

/// A restore within a memory limit stops as soon as the network rebuilt so far takes more,
/// and restores one that fits exactly as an unlimited restore does.
#[test]
fn a_restore_within_a_limit_refuses_larger_networks() {
    let original = trained(3, 300, false);
    let bytes = original.save();
    let size = original.size().bytes;
    let restored = Cluster::restore_within(&bytes, size).expect("fits its own size");
    assert_eq!(restored.save(), bytes);
    for limit in [0, 1000, size / 2, size - size / 10] {
        match Cluster::restore_within(&bytes, limit) {
            Err(CheckpointError::TooLarge { limit: said }) => assert_eq!(said, limit),
            other => panic!("limit {limit} of {size}: {other:?}"),
        }
    }
}

#[test]
fn save_to_writer_and_restore_from_reader() {
    let c = trained(5, 150, false);
    let mut out = Vec::new();
    c.save_to(&mut out).unwrap();
    assert_eq!(out, c.save());
    let restored = Cluster::restore_from(&mut out.as_slice()).unwrap();
    assert_eq!(restored.size(), c.size());
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                0xEDB8_8320 ^ (crc >> 1)
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
