use serde_json::json;

use super::*;

fn parse(text: &str) -> Condition {
    Condition::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn error(text: &str) -> ConditionError {
    match Condition::parse(text) {
        Ok(condition) => panic!("`{text}` parsed as {condition:?}"),
        Err(error) => error,
    }
}

#[test]
fn reads_every_form() {
    let path = |p: &str| DocumentPath::new(p.split('.').map(str::to_owned).collect());
    assert_eq!(
        parse("car_wanted"),
        Condition::Equals(path("car_wanted"), Literal::Bool(true))
    );
    assert_eq!(
        parse("steps.flight.price >= 100.5"),
        Condition::Compare(
            path("steps.flight.price"),
            Comparison::GreaterOrEqual,
            Number::from_f64(100.5).unwrap()
        )
    );
    assert_eq!(
        parse(r#"class != "busi\"ness""#),
        Condition::Not(Box::new(Condition::Equals(
            path("class"),
            Literal::String("busi\"ness".into())
        )))
    );
    assert_eq!(parse("present(o.p)"), Condition::Present(path("o.p")));
    assert_eq!(parse("x == null"), Condition::Null(path("x")));
    assert_eq!(
        parse("a || b && !c"),
        Condition::Or(vec![
            parse("a"),
            Condition::And(vec![parse("b"), Condition::Not(Box::new(parse("c")))]),
        ])
    );
    assert_eq!(
        parse("(a || b) && c"),
        Condition::And(vec![parse("a || b"), parse("c")])
    );
    assert_eq!(
        parse("n < -2"),
        Condition::Compare(path("n"), Comparison::Less, (-2).into())
    );
    // A field may be called `present` when it is not called like a function.
    assert_eq!(
        parse("present"),
        Condition::Equals(path("present"), Literal::Bool(true))
    );
}

#[test]
fn prints_what_it_reads() {
    for text in [
        "car_wanted",
        "!car_wanted",
        "nights > 2 && class == \"business\"",
        "present(steps.flight.seat) || vip",
        "(a || b) && c",
        "a && (b && c)",
        "a != 1",
        "x == null",
        "x != null",
        "!(a && b)",
        "!!a",
        "n <= -2.5",
        "a == false",
        "s == \"q\\\"uote\"",
    ] {
        let condition = parse(text);
        assert_eq!(condition.to_string(), text);
        assert_eq!(parse(&condition.to_string()), condition, "{text}");
        let json = serde_json::to_value(&condition).unwrap();
        assert_eq!(json, json!(text));
        assert_eq!(
            serde_json::from_value::<Condition>(json).unwrap(),
            condition
        );
    }
    // Negated comparisons print as `!=`, the one text of each condition.
    assert_eq!(parse("!(a == 1)").to_string(), "a != 1");
    assert_eq!(parse("!(x == null)").to_string(), "x != null");
}

#[test]
fn a_missing_field_or_another_type_is_false_and_present_ignores_the_value() {
    let document = json!({"a": "x", "n": 3, "b": true, "z": null, "o": {"p": 1}});
    let cases = [
        ("a == \"x\"", true),
        ("a == \"y\"", false),
        ("a == 3", false),
        ("n == 3", true),
        ("n == 3.0", true),
        ("n == \"3\"", false),
        ("n > 2", true),
        ("n > 3", false),
        ("n >= 3", true),
        ("n < 3", false),
        ("n <= 3", true),
        ("a > 1", false),
        ("b", true),
        ("b == false", false),
        ("!b", false),
        ("n", false),
        ("missing", false),
        ("!missing", true),
        ("missing != 1", true),
        ("present(z)", true),
        ("z == null", true),
        ("a == null", false),
        ("missing == null", false),
        ("present(o.p)", true),
        ("present(o.q)", false),
        ("present(a.p)", false),
        ("o.p == 1", true),
        ("b && n > 2", true),
        ("missing || a == \"x\"", true),
        ("!(b && missing)", true),
    ];
    for (text, expected) in cases {
        assert_eq!(parse(text).holds(&document), expected, "{text}");
    }
}

#[test]
fn each_comparison_is_guarded_on_step_functions() {
    assert_eq!(
        parse("nights > 2").choice_rule(),
        json!({"And": [
            {"Variable": "$.nights", "IsPresent": true},
            {"Variable": "$.nights", "IsNumeric": true},
            {"Variable": "$.nights", "NumericGreaterThan": 2},
        ]})
    );
    assert_eq!(
        parse("!(steps.car.class == \"suv\")").choice_rule(),
        json!({"Not": {"And": [
            {"Variable": "$.steps.car.class", "IsPresent": true},
            {"Variable": "$.steps.car.class", "IsString": true},
            {"Variable": "$.steps.car.class", "StringEquals": "suv"},
        ]}})
    );
    assert_eq!(
        parse("present(a) || x == null").choice_rule(),
        json!({"Or": [
            {"Variable": "$.a", "IsPresent": true},
            {"And": [
                {"Variable": "$.x", "IsPresent": true},
                {"Variable": "$.x", "IsNull": true},
            ]},
        ]})
    );
    assert_eq!(
        parse("vip").choice_rule()["And"][1],
        json!({"Variable": "$.vip", "IsBoolean": true})
    );
}

#[test]
fn errors_say_where_and_what_to_write() {
    let cases = [
        ("", 0, "cannot be empty"),
        ("nights > two", 9, "`>` compares numbers"),
        ("class == business", 9, "a string is in double quotes"),
        ("a = 1", 2, "compare with `==`"),
        ("a & b", 2, "write `&&`"),
        ("class == 'x'", 9, "double quotes"),
        ("$.nights > 2", 0, "without `$.`"),
        ("(a || b", 7, "expected `)`"),
        ("a)", 1, "closes nothing"),
        ("a b", 2, "expected `&&`, `||` or the end"),
        ("true", 0, "is a literal"),
        ("\"x\" == a", 0, "a literal goes after the field"),
        ("a == \"open", 5, "does not end"),
        ("a.", 2, "expected a field name"),
        ("present(a b)", 10, "takes one field"),
    ];
    for (text, offset, advice) in cases {
        let error = error(text);
        assert!(error.message.contains(advice), "{text}: {error}");
        assert_eq!(error.offset, offset, "{text}: {error}");
    }
}

#[test]
fn paths_name_the_steps_they_read() {
    let condition = parse("steps.flight.price > 2 && vip || present(steps.hotel)");
    let steps: Vec<Option<&str>> = condition.paths().iter().map(|p| p.step()).collect();
    assert_eq!(steps, [Some("flight"), None, Some("hotel")]);
    assert_eq!(condition.paths()[0].json_path(), "$.steps.flight.price");
}

#[test]
fn deep_nesting_is_refused() {
    let mut text = "a".to_owned();
    for _ in 0..8 {
        text = format!("!({text} && b)");
    }
    assert!(
        parse(&text)
            .check_depth()
            .unwrap_err()
            .contains("levels deep")
    );
    assert!(parse("!(a && (b || c > 1))").check_depth().is_ok());
}
