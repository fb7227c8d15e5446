//! Templates come from clients: whatever the text, parsing and building a cluster either
//! succeed or return an error — never a panic, and never an unbounded allocation.

mod common;

use hanami_engine::{Cluster, ClusterOptions, Template};
use proptest::prelude::*;

/// Parses and, if that succeeds, builds and runs one request on the cluster.
fn exercise(text: &str) {
    let Ok(template) = Template::parse(text) else {
        return;
    };
    let options = ClusterOptions {
        seed: 1,
        threads: 1,
        ..ClusterOptions::default()
    };
    if let Ok(mut cluster) = Cluster::new(&template, options) {
        let inputs: Vec<(String, Vec<f32>)> = cluster
            .inputs()
            .map(|i| (i.name.to_owned(), vec![1.0; i.size]))
            .collect();
        let named: Vec<(&str, &[f32])> = inputs
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect();
        let _ = cluster.request_step(&named);
    }
}

/// Pieces templates are made of, to build near-valid texts.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("version: 1\n".to_owned()),
        Just("settings:\n".to_owned()),
        Just("    neuron_cooldown: 10000000.0\n".to_owned()),
        Just("    refractory_time: 3\n".to_owned()),
        Just("    max_connection_distance: 2\n".to_owned()),
        Just("    enable_reduction: true\n".to_owned()),
        Just("    request_growth: false\n".to_owned()),
        Just("hexagons:\n".to_owned()),
        (0u32..6, 0u32..4, 0u32..3).prop_map(|(x, y, z)| format!("    {x},{y},{z}\n")),
        Just("inputs:\n".to_owned()),
        Just("outputs:\n".to_owned()),
        "[a-z_]{1,8}".prop_map(|n| format!("    {n}:\n")),
        (0u32..6, 0u32..4, 0u32..3).prop_map(|(x, y, z)| format!("        target: {x},{y},{z}\n")),
        (0u64..5000).prop_map(|n| format!("        number_of_inputs: {n}\n")),
        (0u64..5000).prop_map(|n| format!("        number_of_outputs: {n}\n")),
        Just("-1".to_owned()),
        Just("99999999999999999999999".to_owned()),
        Just(":".to_owned()),
        Just(",".to_owned()),
        Just("\r\n".to_owned()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        exercise(&text);
    }

    #[test]
    fn near_valid_templates_never_panic(tokens in prop::collection::vec(token(), 0..40)) {
        exercise(&tokens.concat());
    }

    #[test]
    fn mutated_seed_templates_never_panic(
        cut in 0usize..400,
        insert in "[ -~\n]{0,12}",
    ) {
        let seed = common::template(false);
        let at = seed.char_indices().map(|(i, _)| i).nth(cut % seed.len()).unwrap_or(0);
        let text = format!("{}{}{}", &seed[..at], insert, &seed[at..]);
        exercise(&text);
    }
}
