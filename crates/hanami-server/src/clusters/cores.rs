//! The cores that engine threads may use: the budget of spare cores that running tasks
//! share, and the batches that claim from it.

use std::sync::Mutex;

use hanami_engine::Cluster;

use crate::sync::lock;

/// Runs a batch with as many engine threads as the core budget grants (at least one), and
/// gives them back after, however it ends (a panic too, which the worker survives: the
/// spare core was lost for good then).
pub(super) fn with_threads<R>(
    cluster: &mut Cluster,
    cores: &CoreBudget,
    f: impl FnOnce(&mut Cluster) -> Result<R, hanami_engine::EngineError>,
) -> anyhow::Result<R> {
    /// Cores claimed from a budget, given back when dropped.
    struct Claimed<'a> {
        budget: &'a CoreBudget,
        extra: usize,
    }
    impl Drop for Claimed<'_> {
        fn drop(&mut self) {
            self.budget.release(self.extra);
        }
    }
    let claimed = Claimed {
        budget: cores,
        extra: cores.claim(),
    };
    let result = cluster
        .set_threads(1 + claimed.extra)
        .map_err(anyhow::Error::from)
        .and_then(|()| f(cluster).map_err(anyhow::Error::from));
    let reset = cluster.set_threads(1);
    drop(claimed);
    reset?;
    result
}

/// The cores beyond one per running task: a task that starts while another one uses them
/// runs on its own thread only, so that busy-waiting engine threads never outnumber cores.
pub struct CoreBudget {
    spare: Mutex<usize>,
}

impl CoreBudget {
    /// A budget for a machine with `cores` cores (engine tasks use at most two threads).
    pub fn new(cores: usize) -> Self {
        Self {
            spare: Mutex::new(cores.clamp(1, 2) - 1),
        }
    }

    /// Claims the spare cores; returns how many (0 or 1).
    fn claim(&self) -> usize {
        std::mem::take(&mut *lock(&self.spare))
    }

    fn release(&self, cores: usize) {
        *lock(&self.spare) += cores;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spare_core_goes_to_one_task_at_a_time() {
        let budget = CoreBudget::new(16);
        assert_eq!(budget.claim(), 1);
        assert_eq!(budget.claim(), 0);
        budget.release(1);
        assert_eq!(budget.claim(), 1);
        assert_eq!(CoreBudget::new(1).claim(), 0);
    }

    /// A batch that panics (the worker survives it) gives its spare core back.
    #[test]
    fn a_panicking_batch_gives_its_core_back() {
        let budget = CoreBudget::new(2);
        let mut cluster = Cluster::from_template_text(
            "version: 1\nsettings:\n    neuron_cooldown: 10000000.0\nhexagons:\n    1,1,1\n    \
             2,1,1\ninputs:\n    x:\n        \
             target: 1,1,1\n        number_of_inputs: 1\noutputs:\n    y:\n        \
             target: 2,1,1\n        number_of_outputs: 1\n",
            1,
        )
        .unwrap();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            with_threads(&mut cluster, &budget, |_| -> Result<(), _> {
                panic!("an engine bug")
            })
        }));
        assert!(panicked.is_err());
        assert_eq!(budget.claim(), 1);
    }
}
