//! What the server reports about its machine (`power_consumption`, `speed`,
//! `temperature_production`, `system_info`, `threading`), through the Rust SDK, for admins
//! and members; the shapes of the original's answers.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{ADMIN, ADMIN_PW, ServerExt, TestServer, member, sdk};
use serde_json::Value;

/// Checks the history object `H`: four rings of floats with their lengths.
fn check_history(history: &Value) {
    let rings = history.as_object().expect("an object");
    let mut names: Vec<&str> = rings.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["days", "hours", "minutes", "seconds"]);
    for (name, len) in [
        ("seconds", 60),
        ("minutes", 60),
        ("hours", 24),
        ("days", 365),
    ] {
        let values = rings[name].as_array().unwrap();
        assert_eq!(values.len(), len, "{name}");
        assert!(values.iter().all(Value::is_f64), "{name}: {values:?}");
    }
}

/// Whether this machine tells its CPU speed (as `/proc/cpuinfo` does on Linux).
fn machine_tells_its_speed() -> bool {
    std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|info| {
        info.lines().any(|line| {
            line.starts_with("cpu MHz")
                && line
                    .split(':')
                    .nth(1)
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .is_some_and(|mhz| mhz > 0.0)
        })
    })
}

#[tokio::test]
async fn the_machine_is_described_to_admins_and_members() {
    let server = TestServer::start();
    let admin = sdk(&server, ADMIN, ADMIN_PW).await;
    let raw_admin = server.admin().await;
    member(
        &server,
        &raw_admin,
        "machine_member",
        "machine_project",
        false,
    )
    .await;
    let member = sdk(&server, "machine_member", "password1").await;

    for client in [&admin, &member] {
        check_history(&client.power_consumption().await.unwrap()["power"]);
        check_history(&client.temperature_production().await.unwrap()["temperature"]);
        check_history(&client.speed().await.unwrap()["current_speed"]);
    }
    // The speed is sampled once a second: the newest value is the machine's speed.
    if machine_tells_its_speed() {
        let started = Instant::now();
        loop {
            let speed = admin.speed().await.unwrap();
            let newest = speed["current_speed"]["seconds"][59].as_f64().unwrap();
            if newest > 0.0 {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(5), "{speed}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    let info = member.system_info().await.unwrap();
    let info = &info["info"];
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    assert_eq!(info["hostname"], hostname.trim());
    let mut cpus = HashSet::new();
    let mut cores = 0;
    for package in info["packages"].as_array().unwrap() {
        assert!(package["power"].is_f64() && package["thermal_spec"].is_f64());
        for core in package["cores"].as_array().unwrap() {
            cores += 1;
            for field in [
                "minimum_speed",
                "maximum_speed",
                "current_minimum_speed",
                "current_maximum_speed",
                "current_speed",
            ] {
                assert!(core[field].is_u64(), "{field}: {core}");
            }
            for thread in core["threads"].as_array().unwrap() {
                assert!(cpus.insert(thread["id"].as_u64().unwrap()), "{info}");
            }
        }
    }
    let usable = std::thread::available_parallelism().unwrap().get();
    assert!(
        cpus.len() >= usable,
        "{} CPUs listed, {usable} usable",
        cpus.len()
    );
    assert_eq!(info["has_hyperthreading"], cpus.len() > cores);

    let threads = admin.thread_map().await.unwrap();
    let threads = threads["thread_map"].as_object().unwrap();
    assert!(!threads.is_empty());
    for (name, allowed) in threads {
        let allowed = allowed.as_array().unwrap();
        assert!(!allowed.is_empty(), "{name}");
        assert!(
            allowed
                .iter()
                .all(|cpu| cpus.contains(&cpu.as_u64().unwrap())),
            "{name}: {allowed:?} not in {cpus:?}"
        );
    }

    // These endpoints take no input.
    for endpoint in [
        "power_consumption",
        "speed",
        "temperature_production",
        "system_info",
        "threading",
    ] {
        let resp = raw_admin.get(&format!("{endpoint}?x=1")).await.expect(400);
        assert!(resp.body.contains("'x'"), "{endpoint}: {}", resp.body);
    }
}
