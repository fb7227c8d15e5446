//! What the server reports about its machine: measurement histories, CPU topology and its
//! threads' cores. The answers are returned as JSON, in the shapes of the API description.

use serde_json::Value;

use crate::{Client, Result};

impl Client {
    /// `{"power": H}`: watts of the CPU packages, once a second (`H` holds the rings
    /// `seconds`, `minutes`, `hours` and `days`, oldest value first; 0 where unmeasured).
    pub async fn power_consumption(&self) -> Result<Value> {
        self.get("power_consumption", &[]).await
    }

    /// `{"current_speed": H}`: the average core frequency in MHz.
    pub async fn speed(&self) -> Result<Value> {
        self.get("speed", &[]).await
    }

    /// `{"temperature": H}`: degrees Celsius of the CPU packages.
    pub async fn temperature_production(&self) -> Result<Value> {
        self.get("temperature_production", &[]).await
    }

    /// `{"info": {...}}`: host name and the CPU packages, cores and logical CPUs.
    pub async fn system_info(&self) -> Result<Value> {
        self.get("system_info", &[]).await
    }

    /// `{"thread_map": {name: [cpu ids]}}`: the server's threads and the CPUs they may use.
    pub async fn thread_map(&self) -> Result<Value> {
        self.get("threading", &[]).await
    }
}
