//! Train and request tasks.

use std::collections::BTreeMap;
use std::time::Duration;

use hanami_types::list::ListTable;
use hanami_types::tasks::{RequestTaskRequest, Task, TrainTaskRequest};

use crate::{Client, Error, Result};

/// Interface names to dataset uuids; a name given twice is refused (a map would keep only
/// the last).
fn map(pairs: &[(&str, &str)]) -> Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for (name, uuid) in pairs {
        if map.insert((*name).to_owned(), (*uuid).to_owned()).is_some() {
            return Err(Error::InvalidArgument(format!(
                "the interface '{name}' is given more than once"
            )));
        }
    }
    Ok(map)
}

impl Client {
    /// Queues a train task: `inputs` and `outputs` map interface names to dataset uuids.
    pub async fn train(
        &self,
        name: &str,
        cluster_uuid: &str,
        inputs: &[(&str, &str)],
        outputs: &[(&str, &str)],
    ) -> Result<Task> {
        let body = TrainTaskRequest {
            name: name.to_owned(),
            cluster_uuid: cluster_uuid.to_owned(),
            inputs: map(inputs)?,
            outputs: map(outputs)?,
        };
        self.post("task/train", &body).await
    }

    /// Queues a request task; `result` is `(output name, result dataset name)`. The result
    /// dataset gets the task's uuid.
    pub async fn request(
        &self,
        name: &str,
        cluster_uuid: &str,
        inputs: &[(&str, &str)],
        result: (&str, &str),
    ) -> Result<Task> {
        let body = RequestTaskRequest {
            name: name.to_owned(),
            cluster_uuid: cluster_uuid.to_owned(),
            inputs: map(inputs)?,
            results: map(&[result])?,
        };
        self.post("task/request", &body).await
    }

    /// One task of a cluster.
    pub async fn task(&self, cluster_uuid: &str, uuid: &str) -> Result<Task> {
        self.get("task", &[("uuid", uuid), ("cluster_uuid", cluster_uuid)])
            .await
    }

    /// The tasks of a cluster.
    pub async fn tasks(&self, cluster_uuid: &str) -> Result<ListTable> {
        self.get("task/all", &[("cluster_uuid", cluster_uuid)])
            .await
    }

    /// Deletes a task (stops it if it runs).
    pub async fn delete_task(&self, cluster_uuid: &str, uuid: &str) -> Result<()> {
        self.delete("task", &[("uuid", uuid), ("cluster_uuid", cluster_uuid)])
            .await
    }

    /// Polls a task until it is `finished` or `aborted`, at most `timeout`, and returns it:
    /// an aborted task is `Ok` too, with the reason in its `note` (check `state`). At the
    /// limit the error is [`Error::Timeout`]; the task goes on. The polls follow each
    /// other as [`TaskPolls`] says: closely at first, less often on long waits.
    pub async fn wait_for_task(
        &self,
        cluster_uuid: &str,
        uuid: &str,
        timeout: Duration,
    ) -> Result<Task> {
        let started = tokio::time::Instant::now();
        // `None`: beyond what the clock can count (`Duration::MAX`), so never.
        let deadline = started.checked_add(timeout);
        let mut polls = TaskPolls::default();
        loop {
            let task = self.task(cluster_uuid, uuid).await?;
            if task.state.ended() {
                return Ok(task);
            }
            let now = tokio::time::Instant::now();
            if deadline.is_some_and(|deadline| now > deadline) {
                return Err(Error::Timeout {
                    what: format!("task {uuid} is still {}", task.state),
                    waited: timeout,
                });
            }
            // One last poll at the deadline rather than a sleep beyond it.
            let left = deadline.map_or(Duration::MAX, |deadline| deadline - now);
            tokio::time::sleep(polls.next_pause(now - started).min(left)).await;
        }
    }
}

/// The pauses between the polls of a task's state while waiting for its end, as
/// [`Client::wait_for_task`] and `hanamictl`'s `--wait` take them: from 5 ms, doubling up
/// to 20 ms during the first second (so a short task is seen to end soon after it does),
/// then at most 100 ms, and after 10 s of waiting 1 s (a long training is not asked ten
/// times a second).
#[derive(Debug, Clone)]
pub struct TaskPolls {
    pause: Duration,
}

impl Default for TaskPolls {
    /// The pauses of a wait that begins.
    fn default() -> Self {
        Self {
            pause: FIRST_POLL_INTERVAL,
        }
    }
}

impl TaskPolls {
    /// The pause before the next poll of a wait that has lasted `waited`.
    pub fn next_pause(&mut self, waited: Duration) -> Duration {
        let pause = self.pause;
        self.pause = next_poll_interval(pause, waited);
        pause
    }
}

/// The first interval between polls of [`TaskPolls`].
const FIRST_POLL_INTERVAL: Duration = Duration::from_millis(5);
/// The longest interval between polls of [`TaskPolls`] by how long the wait has lasted: a
/// short task (a request over a test set takes tens of milliseconds) is seen to end within
/// 20 ms of its end, which doubling intervals alone would miss by up to as long as it ran.
const POLL_CAPS: [(Duration, Duration); 3] = [
    (Duration::from_secs(1), Duration::from_millis(20)),
    (Duration::from_secs(10), Duration::from_millis(100)),
    (Duration::MAX, Duration::from_secs(1)),
];

/// The interval after `interval` between polls of a wait that has lasted `waited`.
fn next_poll_interval(interval: Duration, waited: Duration) -> Duration {
    let (_, longest) = POLL_CAPS
        .into_iter()
        .find(|&(until, _)| waited < until)
        .unwrap_or(POLL_CAPS[POLL_CAPS.len() - 1]);
    (interval * 2).min(longest)
}

#[cfg(test)]
mod tests {
    use super::{TaskPolls, map};
    use std::time::Duration;

    #[test]
    fn polls_start_close_and_slow_down_on_long_waits() {
        let ms = Duration::from_millis;
        let mut polls = TaskPolls::default();
        let mut waited = Duration::ZERO;
        let mut seen = Vec::new();
        while waited < Duration::from_secs(20) {
            let pause = polls.next_pause(waited);
            waited += pause;
            seen.push(pause);
        }
        assert_eq!(seen[..5], [ms(5), ms(10), ms(20), ms(20), ms(20)]);
        // Fifty a second in the first second, ten a second up to ten seconds, then one.
        let first = seen.iter().filter(|&&i| i == ms(20)).count();
        assert!((48..=51).contains(&first), "{first}");
        let short = seen.iter().filter(|&&i| i == ms(100)).count();
        assert!((85..=91).contains(&short), "{short}");
        assert_eq!(seen.last(), Some(&Duration::from_secs(1)));
        assert!(seen.len() < 170, "{}", seen.len());
    }

    #[test]
    fn an_interface_given_twice_is_refused() {
        let pairs = map(&[("picture", "a"), ("label", "b")]).unwrap();
        assert_eq!(pairs.len(), 2);
        let error = map(&[("picture", "a"), ("picture", "b")]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid argument: the interface 'picture' is given more than once"
        );
    }
}
