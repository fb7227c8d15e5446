//! Logical hosts: the compute devices clusters run on. Hanami-rs runs every cluster on the
//! CPU with all cores, so there is exactly one host, of type `cpu`, with a uuid chosen at
//! start-up (as in the original, host uuids are not stable across restarts).

use hanami_auth::{Caller, Method};
use hanami_types::list::{HOST_COLUMNS, ListTable};
use serde_json::Value;

use super::{ApiResult, NoInput, Routes};
use crate::state::App;

pub(super) fn register(routes: &mut Routes) {
    routes.add("v1.0alpha/host/all", Method::Get, &[], list);
}

async fn list(app: App, _: Caller, _: NoInput) -> ApiResult<ListTable> {
    let mut table = ListTable::new(HOST_COLUMNS);
    table.body.push(vec![
        Value::String(app.cpu_host.clone()),
        Value::String("cpu".into()),
    ]);
    Ok(table)
}
