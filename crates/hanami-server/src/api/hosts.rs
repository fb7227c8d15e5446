//! Logical hosts: the compute devices clusters run on. Hanami-rs runs every cluster on the
//! CPU with all cores, so there is exactly one host, of type `cpu`, with a uuid chosen at
//! start-up (as in the original, host uuids are not stable across restarts). Also what the
//! server reports about its machine: measurement histories, CPU topology, threads.

use hanami_auth::{Caller, Method};
use hanami_types::list::{HOST_COLUMNS, ListTable};
use serde_json::Value;

use super::{ApiResult, NoInput, Routes};
use crate::host_info::{self, Quantity};
use crate::state::App;

pub(super) fn register(routes: &mut Routes) {
    routes.add("v1.0alpha/host/all", Method::Get, &[], list);
    routes.add("v1.0alpha/power_consumption", Method::Get, &[], power);
    routes.add("v1.0alpha/speed", Method::Get, &[], speed);
    routes.add(
        "v1.0alpha/temperature_production",
        Method::Get,
        &[],
        temperature,
    );
    routes.add("v1.0alpha/system_info", Method::Get, &[], system_info);
    routes.add("v1.0alpha/threading", Method::Get, &[], threading);
}

async fn list(app: App, _: Caller, _: NoInput) -> ApiResult<ListTable> {
    let mut table = ListTable::new(HOST_COLUMNS);
    table.body.push(vec![
        Value::String(app.cpu_host.clone()),
        Value::String("cpu".into()),
    ]);
    Ok(table)
}

/// `{"power": H}`: watts of the CPU packages, 0 where the machine does not say.
async fn power(app: App, _: Caller, _: NoInput) -> ApiResult<Value> {
    Ok(serde_json::json!({ "power": app.measurements.history(Quantity::Power) }))
}

/// `{"current_speed": H}`: the average core frequency in MHz.
async fn speed(app: App, _: Caller, _: NoInput) -> ApiResult<Value> {
    Ok(serde_json::json!({ "current_speed": app.measurements.history(Quantity::Speed) }))
}

/// `{"temperature": H}`: degrees Celsius of the CPU packages, 0 where the machine does not say.
async fn temperature(app: App, _: Caller, _: NoInput) -> ApiResult<Value> {
    Ok(serde_json::json!({ "temperature": app.measurements.history(Quantity::Temperature) }))
}

/// The CPU topology.
async fn system_info(_: App, _: Caller, _: NoInput) -> ApiResult<Value> {
    blocking(host_info::system_info).await
}

/// The server's threads and the cores they may run on.
async fn threading(_: App, _: Caller, _: NoInput) -> ApiResult<Value> {
    blocking(host_info::thread_map).await
}

/// Runs a reader of `/proc` and `/sys` off the async threads.
async fn blocking(read: fn() -> Value) -> ApiResult<Value> {
    Ok(tokio::task::spawn_blocking(read).await?)
}
