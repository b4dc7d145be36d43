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

#[test]
fn a_connection_of_liquidation_streams_only_is_judged_by_the_venue_s_pings() {
    // A calm market liquidates nothing for hours; USD-M pings every 3 minutes. Only pings then
    // show the peer alive, so WS_STALE_MS (45 s by default) would replace a healthy connection.
    let names = Symbols::new(&["btcusdt".to_string(), "ethusdt".to_string()]);
    let usdm = &crate::binance::usdm::venue::VENUE;
    let conn = |streams: Vec<(u16, StreamKind)>| Connection::new(0, streams, &names, usdm, "", TimeUnit::Millis);
    let configured = Duration::from_secs(45);
    let quiet = conn(vec![(0, StreamKind::ForceOrder), (1, StreamKind::ForceOrder)]);
    assert_eq!(quiet.silence_allowed(configured), Duration::from_secs(270));
    assert_eq!(quiet.silence_allowed(Duration::from_secs(600)), Duration::from_secs(600), "a longer setting holds");
    let busy = conn(vec![(0, StreamKind::ForceOrder), (0, StreamKind::MarkPrice)]);
    assert_eq!(busy.silence_allowed(configured), configured, "mark prices come every 3 s");
    let spot =
        Connection::new(0, vec![(0, StreamKind::Trade)], &names, &crate::binance::venue::VENUE, "", TimeUnit::Millis);
    assert_eq!(spot.silence_allowed(configured), configured);
}
