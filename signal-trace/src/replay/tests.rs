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

#[test]
fn the_direct_read_and_the_tagged_read_agree_on_every_fixture_record() {
    let fixtures = [
        include_str!("../../tests/fixtures/explain/grace_exceeded.ndjson"),
        include_str!("../../tests/fixtures/explain/oom_killed.ndjson"),
        include_str!("../../tests/fixtures/explain/coalesced.ndjson"),
        include_str!("../../tests/fixtures/explain/signal_death.ndjson"),
    ];
    let mut n = 0;
    for line in fixtures.iter().flat_map(|f| f.lines()) {
        let tagged: Record = serde_json::from_str(line).unwrap();
        assert_eq!(parse_direct(line).as_ref(), Some(&tagged), "{line}");
        n += 1;
    }
    assert!(n > 30);
    // Another field order still reads, through the tagged path.
    let moved = r#"{"time":"2026-11-26T13:36:54Z","event":"lost","count":1,"events":{"generate":1,"deliver":0,"exit":0,"send_failed":0}}"#;
    assert!(parse_direct(moved).is_none());
    assert!(matches!(parse(moved), Parsed::Record(_)));
}
