//! Parser tests: the spec's example templates, and one test per error case.

use super::*;

use super::DOCUMENTATION_TEMPLATE as SEED_TEMPLATE;

/// A template built from parts, so each test changes one thing.
fn with(settings: &str, hexagons: &str, inputs: &str, outputs: &str) -> String {
    format!(
        "version: 1\nsettings:\n{settings}\nhexagons:\n{hexagons}\ninputs:\n{inputs}\noutputs:\n{outputs}\n"
    )
}

const HEX: &str = "    1,1,1\n    2,1,1\n    3,1,1";
const IN: &str = "    x:\n        target: 1,1,1\n        number_of_inputs: 20";
const OUT: &str = "    y:\n        target: 3,1,1\n        number_of_outputs: 5";
const SET: &str = "    refractory_time: 1";

fn err(text: &str) -> TemplateError {
    Template::parse(text).expect_err("template must be rejected")
}

fn kind(text: &str) -> TemplateErrorKind {
    err(text).kind
}

#[test]
fn seed_template_parses() {
    let t = Template::parse(SEED_TEMPLATE).unwrap();
    assert_eq!(t.settings().neuron_cooldown, 1e7);
    assert_eq!(t.settings().refractory_time, 1);
    assert_eq!(t.settings().max_connection_distance, 1);
    assert!(!t.settings().enable_reduction);
    assert!(t.settings().request_growth);
    assert_eq!(t.hexagons().len(), 3);
    assert_eq!(t.hexagons()[2], Position { x: 3, y: 1, z: 1 });
    assert_eq!(
        t.inputs()[0],
        InterfaceTemplate {
            name: "picture".into(),
            hexagon: 0,
            size: 784,
            line: 13,
            column: 5
        }
    );
    assert_eq!(
        t.outputs()[0],
        InterfaceTemplate {
            name: "label".into(),
            hexagon: 2,
            size: 10,
            line: 18,
            column: 5
        }
    );
    // Where the text names them (equality leaves that out), in every layout.
    let at = |t: &Template| {
        let place = |i: &InterfaceTemplate| (i.line, i.column);
        (place(&t.inputs()[0]), place(&t.outputs()[0]))
    };
    assert_eq!(at(&t), ((13, 5), (18, 5)));
    let crlf = Template::parse(&SEED_TEMPLATE.replace('\n', "\r\n")).unwrap();
    assert_eq!(at(&crlf), ((13, 5), (18, 5)));
    let marked = Template::parse(&format!("\u{feff}{SEED_TEMPLATE}")).unwrap();
    assert_eq!(at(&marked), ((13, 5), (18, 5)));
    // A tab counts as one column.
    let tabbed = Template::parse(&SEED_TEMPLATE.replace("    picture", "\tpicture")).unwrap();
    assert_eq!(at(&tabbed), ((13, 2), (18, 5)));
    let one_line = SEED_TEMPLATE
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let (input, output) = at(&Template::parse(&one_line).unwrap());
    assert_eq!(
        (input.0, output.0, &one_line[input.1 as usize - 1..][..7]),
        (1, 1, "picture")
    );
    assert_eq!(&one_line[output.1 as usize - 1..][..5], "label");
}

#[test]
fn the_shipped_template_file_is_the_documentation_s() {
    // docs/cluster_template, which the READMEs' workflows create their clusters from.
    assert_eq!(
        include_str!("../../../../docs/cluster_template"),
        SEED_TEMPLATE
    );
}

#[test]
fn spec_examples_parse() {
    let docs = with(
        "    neuron_cooldown: 100000000000.0\n    refractory_time: 1\n    max_connection_distance: 1\n    enable_reduction: false",
        HEX,
        "    input_hexagon:\n        target: 1,1,1\n        number_of_inputs: 20",
        "    output_hexagon:\n        target: 3,1,1\n        number_of_outputs: 5",
    );
    assert_eq!(
        Template::parse(&docs).unwrap().settings().neuron_cooldown,
        1e11
    );
    let unit = with(
        "    refractory_time: 2\n    neuron_cooldown: 10000000.0\n    max_connection_distance: 3\n    enable_reduction: true",
        HEX,
        IN,
        OUT,
    );
    let t = Template::parse(&unit).unwrap();
    assert_eq!(t.settings().refractory_time, 2);
    assert_eq!(t.settings().max_connection_distance, 3);
    assert!(t.settings().enable_reduction);
    let table = with(
        "    neuron_cooldown: 100000000000.5",
        HEX,
        "    test_input:\n        target: 1,1,1\n        number_of_inputs: 25",
        "    test_output:\n        target: 3,1,1\n        number_of_outputs: 5",
    );
    assert!(Template::parse(&table).is_ok());
}

#[test]
fn request_growth_is_a_setting_but_not_a_reserved_name() {
    let frozen = with("    request_growth: false", HEX, IN, OUT);
    assert!(!Template::parse(&frozen).unwrap().settings().request_growth);
    let growing = with("    request_growth: True", HEX, IN, OUT);
    assert!(Template::parse(&growing).unwrap().settings().request_growth);
    assert_syntax(&with("    request_growth: 0", HEX, IN, OUT), 3, "`true`");
    // The original's templates may name an interface so.
    let named = with(SET, HEX, &IN.replace("x:", "request_growth:"), OUT);
    let t = Template::parse(&named).unwrap();
    assert_eq!(t.inputs()[0].name, "request_growth");
    assert!(t.settings().request_growth);
}

#[test]
fn words_of_the_language_can_name_interfaces() {
    // As a dataset's columns may be called (`target` is a usual label column).
    let words = [
        "target",
        "settings",
        "inputs",
        "hexagons",
        "number_of_inputs",
        "number_of_outputs",
        "neuron_cooldown",
        "enable_reduction",
        "true",
        "False",
    ];
    for word in words {
        let input = IN.replace("x:", &format!("{word}:"));
        let two_inputs =
            format!("{input}\n    y2:\n        target: 2,1,1\n        number_of_inputs: 1");
        let t = Template::parse(&with(SET, HEX, &two_inputs, OUT)).unwrap();
        assert_eq!(t.inputs()[0].name, word);
        assert_eq!(t.inputs()[1].name, "y2");
        let output = OUT.replace("y:", &format!("{word}:"));
        let t = Template::parse(&with(SET, HEX, IN, &output)).unwrap();
        assert_eq!(t.outputs()[0].name, word);
    }
    // `outputs` can name an output, not an input: there it ends the inputs.
    let t = Template::parse(&with(SET, HEX, IN, &OUT.replace("y:", "outputs:"))).unwrap();
    assert_eq!(t.outputs()[0].name, "outputs");
    assert_syntax(
        &with(SET, HEX, &IN.replace("x:", "outputs:"), OUT),
        9,
        "input name",
    );
    // Named so after another input, it ends the inputs; the error says why.
    let second = "\n    outputs:\n        target: 2,1,1\n        number_of_inputs: 1";
    assert_syntax(
        &with(SET, HEX, &format!("{IN}{second}"), OUT),
        13,
        "an input cannot be named `outputs`",
    );
}

#[test]
fn layout_is_free_form_and_defaults_apply() {
    let one_line = SEED_TEMPLATE
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(
        Template::parse(&one_line).unwrap(),
        Template::parse(SEED_TEMPLATE).unwrap()
    );
    let t = Template::parse(&with("    enable_reduction: True", HEX, IN, OUT)).unwrap();
    assert_eq!(t.settings().neuron_cooldown, 1e9);
    assert!(t.settings().enable_reduction);
    // repeated settings: the last wins; integer cooldown is accepted
    let t = Template::parse(&with(
        "    neuron_cooldown: 5\n    neuron_cooldown: 7",
        HEX,
        IN,
        OUT,
    ))
    .unwrap();
    assert_eq!(t.settings().neuron_cooldown, 7.0);
    // ... but each value given must be valid, as in the original.
    assert!(
        Template::parse(&with(
            "    neuron_cooldown: 0\n    neuron_cooldown: 7",
            HEX,
            IN,
            OUT
        ))
        .is_err()
    );
    // CRLF line endings are accepted (documented extension)
    assert!(Template::parse(&SEED_TEMPLATE.replace('\n', "\r\n")).is_ok());
    // A leading byte-order mark is skipped, and positions count without it.
    let marked = format!("\u{feff}{SEED_TEMPLATE}");
    assert_eq!(Template::parse(&marked), Template::parse(SEED_TEMPLATE));
    let bad = "version: 1\nsettings:\n    refractory_time: x\n";
    let wrong = Template::parse(&format!("\u{feff}{bad}")).unwrap_err();
    assert_eq!(wrong, Template::parse(bad).unwrap_err());
    assert_eq!((wrong.line, wrong.column), (3, 22), "{wrong}");
    // Not elsewhere: a second one is an invisible character inside the template.
    assert!(Template::parse(&format!("\u{feff}\u{feff}{SEED_TEMPLATE}")).is_err());
    // a 254-character name is fine
    let name = "n".repeat(254);
    assert!(Template::parse(&with(SET, HEX, &IN.replace("x:", &format!("{name}:")), OUT)).is_ok());
}

#[test]
fn empty_and_oversized_input() {
    assert_eq!(err(""), TemplateError::new(0, 0, TemplateErrorKind::Empty));
    assert_eq!(
        err("").to_string(),
        "Parsing of cluster-template failed, because the input is empty"
    );
    // Blanks, line breaks and a byte-order mark alone are empty too, not a syntax error at
    // their end.
    for blank in ["   \n\n  ", "\u{feff}", "\u{feff}  \r\n\t\n"] {
        assert_eq!(kind(blank), TemplateErrorKind::Empty, "{blank:?}");
    }
    assert_eq!(kind(" \r "), TemplateErrorKind::InvalidCharacter('\r'));
    let huge = format!("{SEED_TEMPLATE}{}", " ".repeat(limits::MAX_TEMPLATE_BYTES));
    assert_eq!(kind(&huge), TemplateErrorKind::TooLong);
}

#[test]
fn lexer_errors_have_positions() {
    let e = err(&SEED_TEMPLATE.replace("refractory_time: 1", "refractory_time: 1 # comment"));
    assert_eq!(e.kind, TemplateErrorKind::InvalidCharacter('#'));
    assert_eq!((e.line, e.column), (4, 24));
    assert_eq!(e.to_string(), "line 4, column 24: invalid character '#'");
    assert_eq!(
        kind(&SEED_TEMPLATE.replace("\n", "\r")),
        TemplateErrorKind::InvalidCharacter('\r')
    );
    assert_eq!(
        kind(&SEED_TEMPLATE.replace("784", "99999999999999999999")),
        TemplateErrorKind::IntegerOutOfRange
    );
    assert_eq!(
        kind(&SEED_TEMPLATE.replace("picture", "\"picture")),
        TemplateErrorKind::InvalidCharacter('"')
    );
}

fn assert_syntax(text: &str, line: u32, expected_part: &str) {
    let e = err(text);
    match &e.kind {
        TemplateErrorKind::Syntax { expected, .. } => {
            assert!(expected.contains(expected_part), "{e}");
            assert_eq!(e.line, line, "{e}");
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

#[test]
fn grammar_violations() {
    assert_syntax(
        &SEED_TEMPLATE.replace("version: 1", "version:  1"),
        1,
        "version",
    );
    assert_syntax(
        &SEED_TEMPLATE.replace("version: 1", "version: 2"),
        1,
        "version",
    );
    assert_syntax(
        &SEED_TEMPLATE.replace("version: 1", "version: 10"),
        1,
        "version",
    );
    // The message quotes the version asked for.
    for (line, found) in [
        ("version: 7", "`version: 7`"),
        ("  version: 10", "`version: 10`"),
        ("version:0", "`version:0`"),
        ("version: two", "`version: two`"),
    ] {
        let e = err(&SEED_TEMPLATE.replace("version: 1", line));
        assert_eq!(
            e.to_string(),
            format!(
                "line 1, column {}: syntax error: expected `version: 1` (the only version of \
                 the template language), found {found}",
                line.find('v').unwrap() + 1
            )
        );
    }
    // Without a version line, the first token is named.
    let e = err(&SEED_TEMPLATE.replace("version: 1\n", ""));
    assert!(e.to_string().ends_with("found `settings`"), "{e}");
    assert_syntax(&SEED_TEMPLATE.replace("settings:", "settings"), 3, "`:`");
    // the settings block must not be empty
    assert_syntax(&with("", HEX, IN, OUT), 4, "setting");
    assert_syntax(&with("    neuron_cooldown: abc", HEX, IN, OUT), 3, "number");
    assert_syntax(
        &with("    max_connection_distance: 1.5", HEX, IN, OUT),
        3,
        "whole number",
    );
    assert_syntax(
        &with("    refractory_time: 1.0", HEX, IN, OUT),
        3,
        "whole number",
    );
    assert_syntax(&with("    enable_reduction: 1", HEX, IN, OUT), 3, "`true`");
    assert_syntax(
        &with("    enable_reduction: TRUE", HEX, IN, OUT),
        3,
        "`true`",
    );
    assert_syntax(&with("    neuron_cooldown: 1e9", HEX, IN, OUT), 3, "number");
    assert_syntax(
        &with(SET, "    number_of_neurons: 5", IN, OUT),
        5,
        "hexagon position",
    );
    assert_syntax(&with(SET, "    1,1", IN, OUT), 6, "`,`");
    assert_syntax(
        &with(SET, "    1,1,1\n    foo", IN, OUT),
        6,
        "another hexagon position",
    );
    assert_syntax(&with(SET, "", IN, OUT), 6, "hexagon position");
    assert_syntax(&with(SET, HEX, "", OUT), 10, "input name");
    assert_syntax(
        &with(
            SET,
            HEX,
            "    \"x\":\n target: 1,1,1\n number_of_inputs: 2",
            OUT,
        ),
        9,
        "input name",
    );
    assert_syntax(
        &with(
            SET,
            HEX,
            "    x:\n        number_of_inputs: 20\n        target: 1,1,1",
            OUT,
        ),
        10,
        "`target`",
    );
    assert_syntax(
        &with(
            SET,
            HEX,
            IN.replace("number_of_inputs", "number_of_outputs").as_str(),
            OUT,
        ),
        11,
        "number_of_inputs",
    );
    assert_syntax(&with(SET, HEX, IN, ""), 14, "output name");
    assert_syntax(
        &format!("{}\n1,1,1", with(SET, HEX, IN, OUT)),
        17,
        "end of the template",
    );
    assert_syntax(
        &with(
            SET,
            HEX,
            IN,
            "    y:\n        target: 3,1,1\n        number_of_outputs: 1.5",
        ),
        15,
        "whole number",
    );
}

#[test]
fn semantic_checks() {
    use TemplateErrorKind as K;
    assert_eq!(
        kind(&with("    neuron_cooldown: 1.0", HEX, IN, OUT)),
        K::CooldownTooSmall
    );
    assert_eq!(
        kind(&with("    neuron_cooldown: 1", HEX, IN, OUT)),
        K::CooldownTooSmall
    );
    assert_eq!(
        kind(&with("    neuron_cooldown: -5.0", HEX, IN, OUT)),
        K::CooldownTooSmall
    );
    // Checked as stored: this is 1.0 in `f32`; the next `f32` above 1 is accepted.
    assert_eq!(
        kind(&with("    neuron_cooldown: 1.00000001", HEX, IN, OUT)),
        K::CooldownTooSmall
    );
    let t = Template::parse(&with("    neuron_cooldown: 1.0000002", HEX, IN, OUT)).unwrap();
    assert!(t.settings().neuron_cooldown > 1.0);
    assert_eq!(
        kind(&with(
            "    neuron_cooldown: 1000000000000000000000000000000000000000.0",
            HEX,
            IN,
            OUT
        )),
        K::CooldownTooLarge
    );
    assert_eq!(
        kind(&with("    max_connection_distance: 0", HEX, IN, OUT)),
        K::DistanceTooSmall
    );
    assert_eq!(
        kind(&with("    max_connection_distance: 101", HEX, IN, OUT)),
        K::DistanceTooLarge
    );
    assert_eq!(
        kind(&with("    refractory_time: 0", HEX, IN, OUT)),
        K::RefractoryTooSmall
    );
    assert_eq!(
        kind(&with("    refractory_time: 65536", HEX, IN, OUT)),
        K::RefractoryTooLarge
    );
    let e = err(&with(SET, "    1,1,1\n    2,1,1\n    1,1,1", IN, OUT));
    assert_eq!(e.kind, K::DuplicateHexagon(1, 1, 1));
    assert_eq!(
        e.to_string(),
        "line 7, column 5: Hexagon with the position [ 1 , 1 , 1 ] already exist."
    );
    assert_eq!(
        kind(&with(
            SET,
            HEX,
            &IN.replace("target: 1,1,1", "target: 9,1,1"),
            OUT
        )),
        K::UnknownHexagon(9, 1, 1)
    );
    assert_eq!(
        kind(&with(
            SET,
            HEX,
            IN,
            &OUT.replace("target: 3,1,1", "target: 3,2,1")
        )),
        K::UnknownHexagon(3, 2, 1)
    );
    let long = "n".repeat(255);
    assert_eq!(
        kind(&with(SET, HEX, &IN.replace("x:", &format!("{long}:")), OUT)),
        K::NameTooLong(format!("{}…", "n".repeat(60)))
    );
    assert_eq!(kind(&with(SET, "    -1,1,1", IN, OUT)), K::Negative(-1));
    assert_eq!(
        kind(&with(SET, "    1,2147483648,1", IN, OUT)),
        K::CoordinateTooLarge(2_147_483_648)
    );
    assert_eq!(
        kind(&with(SET, HEX, &IN.replace("20", "-5"), OUT)),
        K::Negative(-5)
    );
    assert_eq!(
        kind(&with(SET, HEX, &IN.replace("20", "0"), OUT)),
        K::EmptyInterface("x".into())
    );
    assert_eq!(
        kind(&with(SET, HEX, IN, &OUT.replace(" 5", " 0"))),
        K::EmptyInterface("y".into())
    );
    assert_eq!(
        kind(&with(SET, HEX, &IN.replace("20", "1048577"), OUT)),
        K::TooManyInputs("x".into())
    );
    assert_eq!(
        kind(&with(SET, HEX, IN, &OUT.replace(" 5", " 65537"))),
        K::TooManyOutputs("y".into())
    );
    assert_eq!(
        kind(&with(SET, HEX, IN, &OUT.replace("y:", "x:"))),
        K::DuplicateName("x".into())
    );
    let two_inputs = format!("{IN}\n{}", IN.replace("target: 1,1,1", "target: 2,1,1"));
    assert_eq!(
        kind(&with(SET, HEX, &two_inputs, OUT)),
        K::DuplicateName("x".into())
    );
    let same_hex = format!("{IN}\n{}", IN.replace("x:", "z:"));
    assert_eq!(
        kind(&with(SET, HEX, &same_hex, OUT)),
        K::HexagonAlreadyUsed("z".into())
    );
    assert_eq!(
        kind(&with(
            SET,
            HEX,
            IN,
            &OUT.replace("target: 3,1,1", "target: 1,1,1")
        )),
        K::InputAndOutputOnSameHexagon("y".into(), "input")
    );
    let many: String = (0..=limits::MAX_HEXAGONS)
        .map(|i| format!("{i},0,0\n"))
        .collect();
    assert_eq!(
        kind(&with(
            SET,
            &many,
            IN.replace("1,1,1", "1,0,0").as_str(),
            &OUT.replace("3,1,1", "2,0,0")
        )),
        K::TooManyHexagons
    );
}

/// The network processes hexagons in the listed order and injects an input at its turn: an
/// input listed after another hexagon would reach it a cycle late (the seed's hexagons in
/// reverse order learned nothing, 9.8 % on MNIST).
#[test]
fn input_hexagons_are_listed_first() {
    let reversed = "    3,1,1\n    2,1,1\n    1,1,1";
    let e = err(&with(SET, reversed, IN, OUT));
    assert_eq!((e.line, e.column), (9, 5), "at the input's name: {e}");
    assert_eq!(
        e.kind,
        TemplateErrorKind::InputListedLate {
            name: "x".into(),
            input: Position { x: 1, y: 1, z: 1 },
            after: Position { x: 3, y: 1, z: 1 },
        }
    );
    assert!(
        e.to_string().contains(
            "input 'x' is on hexagon 1,1,1, which the template lists after hexagon 3,1,1"
        ),
        "{e}"
    );
    // A second input after the hidden hexagon is refused too; inputs first in any order
    // are fine.
    let second = format!(
        "{IN}\n{}",
        IN.replace("x:", "x2:").replace("1,1,1", "1,2,1")
    );
    let late = "    1,1,1\n    2,1,1\n    1,2,1\n    3,1,1";
    assert!(matches!(
        kind(&with(SET, late, &second, OUT)),
        TemplateErrorKind::InputListedLate { name, .. } if name == "x2"
    ));
    let first = "    1,2,1\n    1,1,1\n    2,1,1\n    3,1,1";
    Template::parse(&with(SET, first, &second, OUT)).unwrap();
}

#[test]
fn several_inputs_and_outputs() {
    let inputs = format!(
        "{IN}\n{}",
        IN.replace("x:", "x2:").replace("1,1,1", "2,1,1")
    );
    let t = Template::parse(&with(SET, HEX, &inputs, OUT)).unwrap();
    assert_eq!(t.inputs().len(), 2);
    assert_eq!(t.inputs()[1].hexagon, 1);
}

#[test]
fn the_interfaces_together_stay_within_the_limits() {
    use TemplateErrorKind as K;
    let hexagons = "    1,1,1\n    2,1,1\n    3,1,1\n    4,1,1";
    let input = |name: &str, x: u32, n: usize| {
        format!("    {name}:\n        target: {x},1,1\n        number_of_inputs: {n}\n")
    };
    let output = |name: &str, x: u32, n: usize| {
        format!("    {name}:\n        target: {x},1,1\n        number_of_outputs: {n}\n")
    };
    let half_in = limits::MAX_INPUTS / 2;
    let half_out = limits::MAX_OUTPUTS / 2;
    // Exactly at the limits together: accepted.
    let fits = with(
        SET,
        hexagons,
        &(input("a", 1, half_in) + &input("b", 2, half_in)),
        &(output("c", 3, half_out) + &output("d", 4, half_out)),
    );
    Template::parse(&fits).unwrap();
    // One more neuron, on either side: refused at the interface that crosses the limit.
    let e = err(&with(
        SET,
        hexagons,
        &(input("a", 1, half_in) + &input("b", 2, half_in + 1)),
        &output("c", 3, 1),
    ));
    assert_eq!(e.kind, K::TooManyInputsInAll("b".into()));
    assert_eq!(e.line, 15);
    assert_eq!(
        kind(&with(
            SET,
            hexagons,
            &input("a", 1, 1),
            &(output("c", 3, half_out + 1) + &output("d", 4, half_out)),
        )),
        K::TooManyOutputsInAll("d".into())
    );
}

#[test]
fn long_lines_keep_exact_columns_and_errors_quote_briefly() {
    // Many tokens on one line: the column of an error at its end is still exact.
    let line = format!("    {}é", "refractory_time: 1 ".repeat(5000));
    let e = err(&with(&line, HEX, IN, OUT));
    assert_eq!(e.kind, TemplateErrorKind::InvalidCharacter('é'));
    assert_eq!((e.line, e.column), (3, 4 + 19 * 5000 + 1));
    // A column after a multi-byte character counts characters.
    let e = err(&with("    neuron_cooldown: 2.0 é", HEX, IN, OUT));
    assert_eq!((e.line, e.column), (3, 26));
    // A huge name where a keyword belongs is quoted briefly.
    let huge = "h".repeat(100_000);
    let message = err(&with(SET, HEX, IN, OUT).replace("hexagons:", &huge)).to_string();
    assert!(message.len() < 300, "{} bytes", message.len());
    assert!(
        message.contains(&format!("name `{}…`", "h".repeat(60))),
        "{message}"
    );
}
