//! What the server reports about the machine it runs on (spec api §3.10): histories of CPU
//! power, speed and temperature sampled once a second, the CPU topology, and which cores the
//! server's threads may run on. Read from Linux's `/proc` and `/sys`; what a machine does
//! not expose (power and temperature in most virtual machines) is reported as 0.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Values of one quantity at four resolutions. Each ring holds the newest values of its
/// resolution; when the seconds have filled their ring, their average goes into the minutes,
/// and so on.
#[derive(Debug, Clone)]
pub struct History {
    seconds: Ring<60>,
    minutes: Ring<60>,
    hours: Ring<24>,
    days: Ring<365>,
}

impl Default for History {
    fn default() -> Self {
        History {
            seconds: Ring::new(),
            minutes: Ring::new(),
            hours: Ring::new(),
            days: Ring::new(),
        }
    }
}

impl History {
    /// Adds the value of the last second.
    pub fn push(&mut self, value: f64) {
        let Some(minute) = self.seconds.push(value) else {
            return;
        };
        let Some(hour) = self.minutes.push(minute) else {
            return;
        };
        if let Some(day) = self.hours.push(hour) {
            self.days.push(day);
        }
    }

    /// The wire form: every ring in full, oldest value first, as floats.
    pub fn to_json(&self) -> Value {
        json!({
            "seconds": self.seconds.oldest_first(),
            "minutes": self.minutes.oldest_first(),
            "hours": self.hours.oldest_first(),
            "days": self.days.oldest_first(),
        })
    }
}

/// `N` values, zeros at first, overwritten oldest first.
#[derive(Debug, Clone)]
struct Ring<const N: usize> {
    values: Box<[f64; N]>,
    /// Where the next value goes; also the oldest value.
    next: usize,
}

impl<const N: usize> Ring<N> {
    fn new() -> Self {
        Ring {
            values: Box::new([0.0; N]),
            next: 0,
        }
    }

    /// Stores `value`; returns the average of the ring each time it has been filled anew.
    fn push(&mut self, value: f64) -> Option<f64> {
        self.values[self.next] = value;
        self.next = (self.next + 1) % N;
        (self.next == 0).then(|| self.values.iter().sum::<f64>() / N as f64)
    }

    fn oldest_first(&self) -> Vec<f64> {
        let (newer, older) = self.values.split_at(self.next);
        older.iter().chain(newer).copied().collect()
    }
}

/// The three sampled quantities.
#[derive(Debug, Default)]
pub struct Measurements {
    state: Mutex<Sampled>,
}

#[derive(Debug, Default)]
struct Sampled {
    /// Watts, summed over the CPU packages.
    power: History,
    /// Average current core frequency in MHz.
    speed: History,
    /// Degrees Celsius, summed over the CPU packages.
    temperature: History,
    /// The energy counters at the previous sample, for the power between two samples.
    energy: Option<(Instant, u64)>,
}

/// Which history [`Measurements::history`] returns.
#[derive(Debug, Clone, Copy)]
pub enum Quantity {
    /// `power_consumption`
    Power,
    /// `speed`
    Speed,
    /// `temperature_production`
    Temperature,
}

impl Measurements {
    fn lock(&self) -> std::sync::MutexGuard<'_, Sampled> {
        crate::sync::lock(&self.state)
    }

    /// Reads the machine once and adds a value to every history (blocking file reads).
    pub fn sample(&self) {
        let speed = average_speed_mhz();
        let temperature = package_temperature();
        let energy = package_energy_uj();
        let now = Instant::now();
        let mut state = self.lock();
        let power = match (state.energy, energy) {
            (Some((then, before)), Some(after)) if after >= before => {
                let seconds = now.duration_since(then).as_secs_f64();
                if seconds > 0.0 {
                    (after - before) as f64 / 1e6 / seconds
                } else {
                    0.0
                }
            }
            _ => 0.0,
        };
        state.energy = energy.map(|e| (now, e));
        state.power.push(power);
        state.speed.push(speed);
        state.temperature.push(temperature);
    }

    /// The history of `quantity` in its wire form.
    pub fn history(&self, quantity: Quantity) -> Value {
        let state = self.lock();
        match quantity {
            Quantity::Power => state.power.to_json(),
            Quantity::Speed => state.speed.to_json(),
            Quantity::Temperature => state.temperature.to_json(),
        }
    }
}

/// Samples `measurements` once a second, for as long as the server runs.
pub async fn sample_every_second(measurements: std::sync::Arc<Measurements>) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let measurements = measurements.clone();
        if tokio::task::spawn_blocking(move || measurements.sample())
            .await
            .is_err()
        {
            return;
        }
    }
}

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

fn read_number(path: &Path) -> Option<u64> {
    read_trimmed(path)?.parse().ok()
}

/// The logical CPUs that are online, ascending.
fn cpus() -> Vec<u32> {
    read_trimmed(Path::new("/sys/devices/system/cpu/online"))
        .map(|list| parse_cpu_list(&list))
        .filter(|cpus| !cpus.is_empty())
        .unwrap_or_else(|| {
            let n = std::thread::available_parallelism().map_or(1, |n| n.get());
            (0..n as u32).collect()
        })
}

/// A kernel CPU list such as `0-3,8,10-11`.
fn parse_cpu_list(list: &str) -> Vec<u32> {
    let mut cpus = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let range = match part.split_once('-') {
            Some((a, b)) => a.parse::<u32>().ok().zip(b.parse::<u32>().ok()),
            None => part.parse::<u32>().ok().map(|a| (a, a)),
        };
        if let Some((first, last)) = range {
            cpus.extend(first..=last.min(first.saturating_add(4095)));
        }
    }
    cpus
}

/// A cpufreq value of one CPU in MHz (the files hold kHz), 0 where there is none.
fn cpu_freq_mhz(cpu: u32, file: &str) -> u64 {
    read_number(&Path::new("/sys/devices/system/cpu").join(format!("cpu{cpu}/cpufreq/{file}")))
        .map_or(0, |khz| khz / 1000)
}

/// The average current frequency of the online CPUs in MHz: cpufreq where the kernel has
/// it, else the `cpu MHz` lines of `/proc/cpuinfo`; 0 if neither says.
fn average_speed_mhz() -> f64 {
    let from_cpufreq: Vec<u64> = cpus()
        .into_iter()
        .map(|cpu| cpu_freq_mhz(cpu, "scaling_cur_freq"))
        .filter(|&mhz| mhz > 0)
        .collect();
    if !from_cpufreq.is_empty() {
        return from_cpufreq.iter().sum::<u64>() as f64 / from_cpufreq.len() as f64;
    }
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let speeds: Vec<f64> = cpuinfo
        .lines()
        .filter(|line| line.starts_with("cpu MHz"))
        .filter_map(|line| line.split(':').nth(1)?.trim().parse().ok())
        .collect();
    if speeds.is_empty() {
        0.0
    } else {
        speeds.iter().sum::<f64>() / speeds.len() as f64
    }
}

/// The energy counters of the CPU packages (RAPL through the powercap interface), summed, in
/// microjoules; `None` where the machine has none or they cannot be read.
fn package_energy_uj() -> Option<u64> {
    let dir = std::fs::read_dir("/sys/class/powercap").ok()?;
    let mut total = None;
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // Packages are `intel-rapl:N`; `intel-rapl:N:M` are their parts.
        if name.starts_with("intel-rapl:")
            && name.matches(':').count() == 1
            && let Some(uj) = read_number(&entry.path().join("energy_uj"))
        {
            *total.get_or_insert(0) += uj;
        }
    }
    total
}

/// The temperature of the CPU packages in degrees Celsius, summed: the kernel's package
/// thermal zones, or the package sensors of AMD and Intel CPUs; 0 if there are none.
fn package_temperature() -> f64 {
    let mut total = 0.0;
    if let Ok(zones) = std::fs::read_dir("/sys/class/thermal") {
        for zone in zones.flatten() {
            let path = zone.path();
            if read_trimmed(&path.join("type")).as_deref() == Some("x86_pkg_temp") {
                total += read_number(&path.join("temp")).unwrap_or(0) as f64 / 1000.0;
            }
        }
    }
    if total > 0.0 {
        return total;
    }
    if let Ok(monitors) = std::fs::read_dir("/sys/class/hwmon") {
        for monitor in monitors.flatten() {
            let path = monitor.path();
            if matches!(read_trimmed(&path.join("name")).as_deref(), Some("k10temp")) {
                total += read_number(&path.join("temp1_input")).unwrap_or(0) as f64 / 1000.0;
            }
        }
    }
    total
}

/// The CPU topology: packages, their cores and the cores' logical CPUs, with the cores'
/// frequency limits in MHz (`GET system_info`).
pub fn system_info() -> Value {
    let topology = Path::new("/sys/devices/system/cpu");
    // package → core → logical CPUs
    let mut packages: BTreeMap<u64, BTreeMap<u64, Vec<u32>>> = BTreeMap::new();
    for cpu in cpus() {
        let dir = topology.join(format!("cpu{cpu}/topology"));
        let package = read_number(&dir.join("physical_package_id")).unwrap_or(0);
        let core = read_number(&dir.join("core_id")).unwrap_or(u64::from(cpu));
        packages
            .entry(package)
            .or_default()
            .entry(core)
            .or_default()
            .push(cpu);
    }
    let has_hyperthreading = packages
        .values()
        .flat_map(BTreeMap::values)
        .any(|threads| threads.len() > 1);
    let packages: Vec<Value> = packages
        .into_iter()
        .map(|(id, cores)| {
            let cores: Vec<Value> = cores
                .into_iter()
                .map(|(id, threads)| {
                    let first = threads[0];
                    json!({
                        "id": id,
                        "minimum_speed": cpu_freq_mhz(first, "cpuinfo_min_freq"),
                        "maximum_speed": cpu_freq_mhz(first, "cpuinfo_max_freq"),
                        "current_minimum_speed": cpu_freq_mhz(first, "scaling_min_freq"),
                        "current_maximum_speed": cpu_freq_mhz(first, "scaling_max_freq"),
                        "current_speed": cpu_freq_mhz(first, "scaling_cur_freq"),
                        "threads": threads.iter().map(|t| json!({"id": t})).collect::<Vec<_>>(),
                    })
                })
                .collect();
            json!({"id": id, "thermal_spec": 0.0, "power": 0.0, "cores": cores})
        })
        .collect();
    let hostname = read_trimmed(Path::new("/proc/sys/kernel/hostname")).unwrap_or_default();
    json!({"info": {
        "hostname": hostname,
        "has_hyperthreading": has_hyperthreading,
        "packages": packages,
    }})
}

/// The server's threads by name, each with the logical CPUs it may run on (threads of one
/// name merged) (`GET threading`). Hanami-rs does not pin threads, so this is normally every
/// CPU for every thread.
pub fn thread_map() -> Value {
    let mut map: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let path = task.path();
            let Some(name) = read_trimmed(&path.join("comm")) else {
                continue;
            };
            let status = std::fs::read_to_string(path.join("status")).unwrap_or_default();
            let allowed = status
                .lines()
                .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
                .map(parse_cpu_list)
                .unwrap_or_default();
            let cores = map.entry(name).or_default();
            cores.extend(allowed);
            cores.sort_unstable();
            cores.dedup();
        }
    }
    json!({ "thread_map": map })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rings_pass_their_average_on_when_full_and_list_oldest_first() {
        let mut history = History::default();
        for second in 0..60 {
            history.push(f64::from(second));
        }
        let json = history.to_json();
        // A full ring of seconds gave one minute, the average 29.5; the seconds wrapped.
        assert_eq!(json["minutes"][59], 29.5);
        assert_eq!(json["minutes"][58], 0.0);
        assert_eq!(json["seconds"][0], 0.0);
        assert_eq!(json["seconds"][59], 59.0);
        history.push(100.0);
        let json = history.to_json();
        assert_eq!(json["seconds"][0], 1.0, "the oldest value comes first");
        assert_eq!(json["seconds"][59], 100.0);
        for (ring, len) in [
            ("seconds", 60),
            ("minutes", 60),
            ("hours", 24),
            ("days", 365),
        ] {
            assert_eq!(json[ring].as_array().unwrap().len(), len, "{ring}");
        }
    }

    #[test]
    fn an_hour_of_minutes_makes_an_hour() {
        let mut history = History::default();
        for _ in 0..3600 {
            history.push(2.0);
        }
        let json = history.to_json();
        assert_eq!(json["hours"][23], 2.0);
        assert_eq!(json["hours"][22], 0.0);
        assert_eq!(json["days"][364], 0.0);
    }

    #[test]
    fn cpu_lists_are_parsed_like_the_kernel_writes_them() {
        assert_eq!(parse_cpu_list("0-3,8,10-11\n"), [0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(parse_cpu_list("1"), [1]);
        assert!(parse_cpu_list("").is_empty());
        assert!(parse_cpu_list("x-y").is_empty());
    }
}
