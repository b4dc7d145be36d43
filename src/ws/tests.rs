use super::*;

#[test]
fn a_replacement_of_a_short_lived_connection_waits_out_its_backoff() {
    let names = Symbols::new(&["btcusdt".to_string()]);
    let venue = &crate::binance::venue::VENUE;
    let mut old = Connection::new(0, vec![(0, StreamKind::Trade)], &names, venue, "", TimeUnit::Millis);
    old.attempt = 3;
    // Our own age limit: the replacement goes at once.
    let mut new = Connection::new(1, old.streams.clone(), &names, venue, "", TimeUnit::Millis);
    new.succeed(&old);
    assert_eq!(new.attempt, 0);
    // The peer's serverShutdown, on a connection that never became stable.
    old.rotate_by_peer = true;
    let before = Instant::now();
    let mut new = Connection::new(1, old.streams.clone(), &names, venue, "", TimeUnit::Millis);
    new.succeed(&old);
    assert_eq!(new.attempt, 4);
    // The backoff of attempt 3: 2 s, jittered down to no less than 1 s.
    let State::Backoff { until } = new.state else { panic!("not in backoff") };
    assert!(until >= before + Duration::from_secs(1) && until <= Instant::now() + Duration::from_secs(2));
}
