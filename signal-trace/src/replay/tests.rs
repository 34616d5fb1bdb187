use super::*;

#[test]
fn when_is_a_time_or_a_duration_back_from_the_newest_record() {
    let t = When::parse("2026-11-29T08:00:00Z").unwrap();
    let newest = Time(1_800_000_000_000_000_000);
    assert_eq!(
        t.resolve(Some(newest)),
        When::parse("2026-11-29T08:00:00.0Z").unwrap().resolve(None)
    );
    assert_eq!(
        When::parse("30m").unwrap().resolve(Some(newest)),
        Time(newest.0 - 1_800_000_000_000)
    );
    assert_eq!(
        When::parse("1h30m").unwrap(),
        When::Ago(std::time::Duration::from_secs(5400))
    );
    assert!(When::parse("yesterday").is_err());
}

#[test]
fn output_records_are_skipped_and_bad_lines_do_not_quote_themselves() {
    assert!(matches!(parse("  "), Parsed::Skip));
    assert!(matches!(
        parse(r#"{"event":"finding","kind":"x"}"#),
        Parsed::Skip
    ));
    let Parsed::Bad(why) = parse("{\"event\":\"\u{1b}[2J\"}") else {
        panic!("not bad")
    };
    assert!(!why.contains('\u{1b}'), "{why:?}");
}
