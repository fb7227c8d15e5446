//! The note of a task after which some output it trained or answered is still out of the
//! network's reach: it answers 0 and learned nothing, which the task's state alone would not
//! show.

use hanami_engine::{Unreached, UnreachedOutput};

/// The note for the outputs in `unreached` (as [`hanami_engine::Cluster::unreached_outputs`]
/// lists them), or `None` when there are none. `done` is what the task did ("training",
/// "request"); `growth_refused`: a memory budget refused growth during it, which is then
/// the cause named (the engine's causes assume a network free to grow).
pub(crate) fn note(
    done: &str,
    unreached: &[UnreachedOutput<'_>],
    growth_refused: bool,
) -> Option<String> {
    if growth_refused && !unreached.is_empty() {
        let names: Vec<&str> = unreached.iter().map(|output| output.name).collect();
        let (answer, hexagon) = if names.len() == 1 {
            ("answers", "its hexagon")
        } else {
            ("answer", "their hexagons")
        };
        return Some(format!(
            "after this {done} {} {answer} 0 and learned nothing: the network has not grown \
             into {hexagon}, and the memory budget keeps it from growing further",
            named("output", &names)
        ));
    }
    let mut parts = Vec::new();
    let not_yet: Vec<&str> = unreached
        .iter()
        .filter(|output| output.cause == Unreached::NotYet)
        .map(|output| output.name)
        .collect();
    if !not_yet.is_empty() {
        let (they, answer) = if not_yet.len() == 1 {
            ("it", "answers")
        } else {
            ("they", "answer")
        };
        parts.push(format!(
            "the network has not grown into the hexagon of {} yet (growth is drawn at \
             random), so {they} {answer} 0 and learned nothing; train more, give that hexagon \
             more neighbours in the template, or create the cluster again",
            named("output", &not_yet)
        ));
    }
    // Outputs that wait for the same inputs are named together.
    let mut silent: Vec<(&[&str], Vec<&str>)> = Vec::new();
    for output in unreached {
        if let Unreached::SilentInputs(inputs) = &output.cause {
            match silent
                .iter_mut()
                .find(|(those, _)| *those == inputs.as_slice())
            {
                Some((_, outputs)) => outputs.push(output.name),
                None => silent.push((inputs, vec![output.name])),
            }
        }
    }
    for (inputs, outputs) in silent {
        let answer = if outputs.len() == 1 {
            "answers"
        } else {
            "answer"
        };
        let which = if inputs.len() == 1 {
            "which has not"
        } else {
            "none of which has"
        };
        parts.push(format!(
            "{} {answer} 0 and learned nothing: growth can reach {} only from {}, {which} \
             yet held a value above 0 in a cycle that grows the network (training; requests \
             too unless the template sets request_growth: false)",
            named("output", &outputs),
            if outputs.len() == 1 {
                "its hexagon"
            } else {
                "their hexagons"
            },
            named("input", inputs),
        ));
    }
    (!parts.is_empty()).then(|| format!("after this {done} {}", parts.join("; and ")))
}

/// `output 'a'` or `outputs 'a', 'b'`.
fn named(kind: &str, names: &[&str]) -> String {
    let names: Vec<String> = names.iter().map(|name| format!("'{name}'")).collect();
    let plural = if names.len() == 1 { "" } else { "s" };
    format!("{kind}{plural} {}", names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output<'a>(name: &'a str, cause: Unreached<'a>) -> UnreachedOutput<'a> {
        UnreachedOutput { name, cause }
    }

    #[test]
    fn nothing_to_tell_without_unreached_outputs() {
        assert_eq!(note("training", &[], false), None);
        assert_eq!(note("training", &[], true), None);
    }

    /// Where a memory budget refused growth, that is the cause named, not inputs that
    /// never fired (the inputs had fired; the network could not grow).
    #[test]
    fn refused_growth_is_the_cause_named() {
        let unreached = [
            output("y", Unreached::SilentInputs(vec!["b"])),
            output("x", Unreached::NotYet),
        ];
        assert_eq!(
            note("training", &unreached, true).unwrap(),
            "after this training outputs 'y', 'x' answer 0 and learned nothing: the network \
             has not grown into their hexagons, and the memory budget keeps it from growing \
             further"
        );
    }

    /// Outputs that growth may still reach are told apart from those whose inputs never
    /// fired, and outputs waiting for the same inputs are named together.
    #[test]
    fn each_cause_has_its_words() {
        let unreached = [
            output("x", Unreached::NotYet),
            output("y", Unreached::SilentInputs(vec!["b"])),
            output("z", Unreached::SilentInputs(vec!["b"])),
            output("w", Unreached::SilentInputs(vec!["c", "d"])),
        ];
        assert_eq!(
            note("request", &unreached, false).unwrap(),
            "after this request the network has not grown into the hexagon of output 'x' yet \
             (growth is drawn at random), so it answers 0 and learned nothing; train more, \
             give that hexagon more neighbours in the template, or create the cluster again; \
             and outputs 'y', 'z' answer 0 and learned nothing: growth can reach their \
             hexagons only from input 'b', which has not yet held a value above 0 in a cycle \
             that grows the network (training; requests too unless the template sets \
             request_growth: false); and output 'w' answers 0 and learned nothing: growth can \
             reach its hexagon only from inputs 'c', 'd', none of which has yet held a value \
             above 0 in a cycle that grows the network (training; requests too unless the \
             template sets request_growth: false)"
        );
        let two = [
            output("x", Unreached::NotYet),
            output("v", Unreached::NotYet),
        ];
        assert!(
            note("training", &two, false)
                .unwrap()
                .starts_with("after this training the network has not grown into the hexagon of outputs 'x', 'v' yet (growth is drawn at random), so they answer 0")
        );
    }
}
