//! Rendering of server answers: bordered tables (the default) and JSON (`-j`).
//!
//! The layouts follow the user documentation of the original `hanamictl`:
//!
//! * a single object is a vertical key/value table without a header row;
//! * a list (`{"header": [...], "body": [[...]]}`) is a horizontal table whose columns are
//!   the command's field list, restricted to the columns the server actually sent;
//! * keys and headers are the field names in upper case with `_` as a space; headers are
//!   centred (the smaller half of the spare room on the left), cells left-aligned.
//!
//! Values are printed like the original's Go `%v`: strings verbatim, `<nil>` for a missing
//! value, arrays as `[a b]`, objects inside arrays as `map[k:v]`, and an object as the value
//! of a single-item row as compact JSON with sorted keys. One deliberate difference: whole
//! numbers are printed in full (`1000000`) instead of Go's `1e+06`.

use serde_json::{Map, Value};
use unicode_width::UnicodeWidthStr;

/// A row name of a table: `total_number_of_cycles` becomes `TOTAL NUMBER OF CYCLES`.
pub fn title(field: &str) -> String {
    field.to_uppercase().replace('_', " ")
}

/// A copy of `value` with the keys of every object sorted and whole floating-point
/// numbers turned into integers (the original's JSON output went through Go's `float64`).
pub fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut sorted = Map::new();
            for key in keys {
                sorted.insert(key.clone(), canonical(&map[key]));
            }
            Value::Object(sorted)
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
            _ => value.clone(),
        },
        other => other.clone(),
    }
}

/// Escapes `<`, `>`, `&`, U+2028 and U+2029 in JSON text as Go's encoder does; in JSON
/// text these characters can only occur inside strings, so the replacement is safe.
fn go_escape(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            other => out.push(other),
        }
    }
    out
}

/// The `-j` output: the whole answer as JSON, indented by four spaces, keys sorted at every
/// level, with a trailing newline.
pub fn json(value: &Value) -> String {
    use serde::Serialize as _;
    let mut buf = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut buf, formatter);
    canonical(value)
        .serialize(&mut serializer)
        .expect("a JSON value always serializes");
    let mut text = go_escape(&String::from_utf8(buf).expect("serde_json writes UTF-8"));
    text.push('\n');
    text
}

/// Compact JSON with sorted keys (the value of an object row in a single-item table).
fn compact_json(value: &Value) -> String {
    go_escape(&canonical(value).to_string())
}

/// Go's `%v` of a decoded JSON value nested in an array or object.
fn go_value(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".to_owned(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(_) => number(value),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(go_value).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{k}:{}", go_value(&map[k])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

fn number(value: &Value) -> String {
    match canonical(value) {
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// The most display columns a table cell takes; longer values (a task's note, a user in
/// thousands of projects) continue on the next lines of their row. Every line of a table is
/// as wide as its widest cells, so one long value would otherwise widen every line.
const MAX_CELL_WIDTH: usize = 100;

/// The text of one cell of a single-item table (objects as compact JSON).
pub fn single_cell(value: Option<&Value>) -> String {
    printable(match value {
        None => "<nil>".to_owned(),
        Some(object @ Value::Object(_)) => compact_json(object),
        Some(other) => go_value(other),
    })
}

/// The text of one cell of a list table (objects as `map[...]`).
pub fn list_cell(value: Option<&Value>) -> String {
    printable(value.map_or_else(|| "<nil>".to_owned(), go_value))
}

/// `text` fit for a table cell on a terminal: line breaks of any kind become `\n` (the cell
/// continues on the next line), a tab four spaces, and other control characters escapes
/// such as `\u{1b}`, so that a value (a name another user chose, say) can neither break the
/// table nor send the terminal commands.
fn printable(text: String) -> String {
    let special = |c: char| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}');
    if !text.chars().any(|c| c != '\n' && special(c)) {
        return text;
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' | '\u{b}' | '\u{c}' | '\u{85}' | '\u{2028}' | '\u{2029}' => out.push('\n'),
            '\t' => out.push_str("    "),
            c if special(c) => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    out
}

/// `text` as lines of at most [`MAX_CELL_WIDTH`] display columns: broken at its own line
/// breaks, and at the last space or comma in the second half of a line (the space is
/// dropped, the comma ends the line: compact JSON has no spaces), else anywhere.
fn wrap(text: &str) -> Vec<&str> {
    text.split('\n').flat_map(wrap_line).collect()
}

/// One line of [`wrap`].
fn wrap_line(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut rest = text;
    loop {
        let mut used = 0;
        // Where the line would end and the next begin, at a space or after a comma.
        let mut gap = None;
        let mut cut = None;
        for (at, c) in rest.char_indices() {
            let w = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
            if used + w > MAX_CELL_WIDTH {
                cut = Some(at);
                if c == ' ' {
                    gap = Some((at, at + 1));
                }
                break;
            }
            if c == ' ' && used >= MAX_CELL_WIDTH / 2 {
                gap = Some((at, at + 1));
            }
            used += w;
            if c == ',' && used >= MAX_CELL_WIDTH / 2 {
                gap = Some((at + 1, at + 1));
            }
        }
        let Some(cut) = cut else {
            lines.push(rest);
            return lines;
        };
        let (line, next) = match gap {
            Some((end, start)) => (&rest[..end], &rest[start..]),
            None => rest.split_at(cut),
        };
        lines.push(line);
        rest = next;
    }
}

/// The display width of a cell's column: its widest line.
fn cell_width(text: &str) -> usize {
    wrap(text).iter().map(|line| width(line)).max().unwrap_or(0)
}

fn width(text: &str) -> usize {
    UnicodeWidthStr::width(text)
}

fn border(widths: &[usize]) -> String {
    let mut line = String::from("+");
    for w in widths {
        line.push_str(&"-".repeat(w + 2));
        line.push('+');
    }
    line.push('\n');
    line
}

fn left(text: &str, w: usize) -> String {
    format!("{text}{}", " ".repeat(w.saturating_sub(width(text))))
}

fn centre(text: &str, w: usize) -> String {
    let spare = w.saturating_sub(width(text));
    let before = spare / 2;
    format!("{}{text}{}", " ".repeat(before), " ".repeat(spare - before))
}

/// One row of a table; a cell wider than [`MAX_CELL_WIDTH`] continues on further lines.
fn row(cells: &[String], widths: &[usize], align: fn(&str, usize) -> String) -> String {
    let wrapped: Vec<Vec<&str>> = cells.iter().map(|cell| wrap(cell)).collect();
    let height = wrapped.iter().map(Vec::len).max().unwrap_or(1);
    let mut out = String::new();
    for i in 0..height {
        out.push('|');
        for (lines, w) in wrapped.iter().zip(widths) {
            out.push(' ');
            out.push_str(&align(lines.get(i).copied().unwrap_or(""), *w));
            out.push_str(" |");
        }
        out.push('\n');
    }
    out
}

/// A vertical key/value table of `fields` of an object; missing fields print `<nil>`, except
/// optional ones (named with a leading `?`), which are left out.
pub fn single_table(value: &Value, fields: &[&str]) -> String {
    let rows: Vec<[String; 2]> = fields
        .iter()
        .filter_map(|f| match f.strip_prefix('?') {
            Some(optional) => value
                .get(optional)
                .map(|v| [title(optional), single_cell(Some(v))]),
            None => Some([title(f), single_cell(value.get(*f))]),
        })
        .collect();
    let widths = [
        rows.iter().map(|r| cell_width(&r[0])).max().unwrap_or(0),
        rows.iter().map(|r| cell_width(&r[1])).max().unwrap_or(0),
    ];
    let mut out = border(&widths);
    for r in &rows {
        out.push_str(&row(r, &widths, left));
    }
    out.push_str(&border(&widths));
    out
}

/// A horizontal table with a centred header row.
pub fn grid(headers: &[String], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| cell_width(c))
                .chain([cell_width(h)])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = border(&widths);
    out.push_str(&row(headers, &widths, centre));
    out.push_str(&border(&widths));
    for r in rows {
        out.push_str(&row(r, &widths, left));
    }
    out.push_str(&border(&widths));
    out
}

/// A list answer (`{"header", "body"}`) as a table of `fields`, in that order, keeping
/// only the fields the server sent.
pub fn list_table(value: &Value, fields: &[&str]) -> String {
    let header: Vec<&str> = value
        .get("header")
        .and_then(Value::as_array)
        .map(|h| h.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let columns: Vec<(&str, usize)> = fields
        .iter()
        .filter_map(|f| header.iter().position(|h| h == f).map(|i| (*f, i)))
        .collect();
    let body = value
        .get("body")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let rows: Vec<Vec<String>> = body
        .iter()
        .map(|r| columns.iter().map(|(_, i)| list_cell(r.get(*i))).collect())
        .collect();
    let headers: Vec<String> = columns.iter().map(|(f, _)| title(f)).collect();
    grid(&headers, &rows)
}

/// An array of objects (e.g. a user's projects) as a table of `fields`.
pub fn objects_table(items: &[Value], fields: &[&str]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| fields.iter().map(|f| list_cell(item.get(*f))).collect())
        .collect();
    let headers: Vec<String> = fields.iter().map(|f| title(f)).collect();
    grid(&headers, &rows)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn single_table_matches_the_documented_layout() {
        let project = json!({"id": "cli_test_project", "name": "cli test project",
                             "creator_id": "asdf", "created_at": "2024-07-12 20:52:21"});
        let text = single_table(&project, &["id", "name", "creator_id", "created_at"]);
        assert_eq!(
            text,
            "+------------+---------------------+\n\
             | ID         | cli_test_project    |\n\
             | NAME       | cli test project    |\n\
             | CREATOR ID | asdf                |\n\
             | CREATED AT | 2024-07-12 20:52:21 |\n\
             +------------+---------------------+\n"
        );
    }

    #[test]
    fn floats_come_out_as_the_server_sent_them() {
        // An accuracy the server sent; without correctly rounded parsing it came out as
        // 90.66999816894533.
        let text = r#"{"accuracy":90.66999816894531}"#;
        let value: Value = serde_json::from_str(text).unwrap();
        assert_eq!(canonical(&value).to_string(), text);
    }

    #[test]
    fn optional_fields_show_only_when_present() {
        let task = json!({"uuid": "u", "note": "stopped"});
        assert_eq!(
            single_table(&task, &["uuid", "?note"]),
            "+------+---------+\n| UUID | u       |\n| NOTE | stopped |\n+------+---------+\n"
        );
        let task = json!({"uuid": "u"});
        assert_eq!(
            single_table(&task, &["uuid", "state", "?note"]),
            "+-------+-------+\n| UUID  | u     |\n| STATE | <nil> |\n+-------+-------+\n"
        );
    }

    #[test]
    fn list_table_centres_headers_and_filters_columns() {
        let list = json!({
            "header": ["created_at", "uuid", "project_id", "owner_id", "visibility", "name"],
            "body": [["2024-07-12 20:46:50", "9303816f-e575-410b-a75d-8444ff3ac303", "admin",
                      "asdf", "private", "cli_test_checkpoint"]]
        });
        let text = list_table(
            &list,
            &[
                "uuid",
                "name",
                "visibility",
                "owner_id",
                "project_id",
                "created_at",
            ],
        );
        assert_eq!(
            text,
            "+--------------------------------------+---------------------+------------+----------+------------+---------------------+\n\
             |                 UUID                 |        NAME         | VISIBILITY | OWNER ID | PROJECT ID |     CREATED AT      |\n\
             +--------------------------------------+---------------------+------------+----------+------------+---------------------+\n\
             | 9303816f-e575-410b-a75d-8444ff3ac303 | cli_test_checkpoint | private    | asdf     | admin      | 2024-07-12 20:46:50 |\n\
             +--------------------------------------+---------------------+------------+----------+------------+---------------------+\n"
        );
        // Only the fields the server sent appear, in the CLI's order.
        let tasks = json!({"header": ["uuid", "state", "percentage"], "body": []});
        assert_eq!(
            list_table(&tasks, &["uuid", "state", "current_cycle"]),
            "+------+-------+\n| UUID | STATE |\n+------+-------+\n+------+-------+\n"
        );
    }

    #[test]
    fn values_print_like_the_original() {
        assert_eq!(single_cell(None), "<nil>");
        assert_eq!(single_cell(Some(&Value::Null)), "<nil>");
        assert_eq!(single_cell(Some(&json!(false))), "false");
        assert_eq!(single_cell(Some(&json!([]))), "[]");
        assert_eq!(single_cell(Some(&json!(60000))), "60000");
        assert_eq!(single_cell(Some(&json!(1000000.0))), "1000000");
        assert_eq!(
            single_cell(Some(&json!(91.22999572753906))),
            "91.22999572753906"
        );
        assert_eq!(
            single_cell(Some(
                &json!({"picture": {"start_column": 0, "end_column": 784},
                                     "label": {"start_column": 784, "end_column": 794}})
            )),
            r#"{"label":{"end_column":794,"start_column":784},"picture":{"end_column":784,"start_column":0}}"#
        );
        assert_eq!(
            list_cell(Some(
                &json!([{"role": "member", "project_id": "p", "is_project_admin": false}, "x"])
            )),
            "[map[is_project_admin:false project_id:p role:member] x]"
        );
    }

    #[test]
    fn json_is_sorted_indented_and_escaped() {
        let value = json!({"header": ["b"], "body": [[1.0, "<&>"]]});
        assert_eq!(
            json(&value),
            "{\n    \"body\": [\n        [\n            1,\n            \"\\u003c\\u0026\\u003e\"\n        ]\n    ],\n    \"header\": [\n        \"b\"\n    ]\n}\n"
        );
        let parsed: Value = serde_json::from_str(&json(&value)).unwrap();
        assert_eq!(parsed["body"][0][1], "<&>");
    }

    #[test]
    fn long_values_continue_on_the_next_lines_of_their_row() {
        let projects: Vec<Value> = (0..3000)
            .map(|i| json!({"project_id": format!("project_{i:04}"), "role": "member"}))
            .collect();
        let long = list_cell(Some(&Value::Array(projects)));
        let table = list_table(
            &json!({"header": ["id", "projects"], "body": [["a", long.clone()], ["b", "[]"]]}),
            &["id", "projects"],
        );
        assert!(
            table.lines().all(|l| width(l) <= MAX_CELL_WIDTH + 9),
            "{table}"
        );
        // The whole value is there, line after line (broken at spaces, which go).
        let cells: Vec<&str> = table
            .lines()
            .filter(|l| l.starts_with('|'))
            .skip(1)
            .map(|l| l.trim_end_matches('|').rsplit('|').next().unwrap().trim())
            .collect();
        let first_b = cells.iter().position(|c| *c == "[]").unwrap();
        assert_eq!(cells[..first_b].join(" "), long);
        // Without spaces the lines break anywhere; wide characters count twice.
        let wide = "漢".repeat(120);
        assert_eq!(
            wrap(&wide),
            ["漢".repeat(50), "漢".repeat(50), "漢".repeat(20)]
        );
        let exact = "x".repeat(MAX_CELL_WIDTH);
        assert_eq!(wrap(&exact), [exact.as_str()]);
        // A value's own line breaks stay line breaks (they used to break the table).
        assert_eq!(
            wrap("ACCESS DENIED!\nUser or password is incorrect."),
            ["ACCESS DENIED!", "User or password is incorrect."]
        );
        assert_eq!(list_cell(Some(&json!("a\r\nb\rc"))), "a\nb\nc");
        assert_eq!(
            list_cell(Some(&json!("x\ty\u{1b}[2Jz\u{7f}"))),
            "x    y\\u{1b}[2Jz\\u{7f}"
        );
        // A space just past the limit is the break, not the next line's start.
        let exact = format!("{} next", "a".repeat(MAX_CELL_WIDTH));
        assert_eq!(wrap(&exact), ["a".repeat(MAX_CELL_WIDTH).as_str(), "next"]);
        let note = format!("{} {}", "a".repeat(70), "b".repeat(70));
        assert_eq!(wrap(&note), ["a".repeat(70), "b".repeat(70)]);
        // Compact JSON (a CSV dataset's description) breaks after a comma, not in a word.
        let description = r#"{"a":{"end_column":1,"start_column":0},"b":{"end_column":2,"start_column":1},"c":{"end_column":3,"start_column":2}}"#;
        assert_eq!(
            wrap(description),
            [
                r#"{"a":{"end_column":1,"start_column":0},"b":{"end_column":2,"start_column":1},"c":{"end_column":3,"#,
                r#""start_column":2}}"#
            ]
        );
        // A comma in the first half is no break (a line of two characters helps nobody).
        let early = format!("ab,{}", "c".repeat(120));
        assert_eq!(
            wrap(&early),
            [format!("ab,{}", "c".repeat(97)), "c".repeat(23)]
        );
        let single = single_table(&json!({"note": note}), &["note"]);
        assert_eq!(
            single,
            format!(
                "+------+{0}+\n| NOTE | {1} |\n|      | {2} |\n+------+{0}+\n",
                "-".repeat(72),
                "a".repeat(70),
                "b".repeat(70)
            )
        );
    }

    #[test]
    fn wide_characters_are_measured_by_display_width() {
        let text = objects_table(
            &[json!({"name": "日本"}), json!({"name": "abcdef"})],
            &["name"],
        );
        assert_eq!(
            text,
            "+--------+\n|  NAME  |\n+--------+\n| 日本   |\n| abcdef |\n+--------+\n"
        );
    }
}
