//! USD-M diff-depth frames through the pipeline with the venue's chaining rule (the lane sets
//! `Pipeline::set_depth_chain(usdm::rest::API.depth_chain)`): `U` skipping ids while `pu`
//! continues is no gap; a `pu` past the last `u` is one, counting the ids up to `pu`. Spot's rule
//! on the same frames would see a gap at every event.

use marketflow_ingestor::binance::usdm::{rest::API, venue::VENUE};
use marketflow_ingestor::metrics::Metrics;
use marketflow_ingestor::pipeline::{Admission, Outcome, Pipeline};
use marketflow_ingestor::ring;
use marketflow_ingestor::sequence::DepthChain;

fn depth(first: i64, last: i64, pu: i64) -> String {
    format!(
        r#"{{"stream":"btcusdt@depth","data":{{"e":"depthUpdate","E":123456789,"T":123456788,"s":"BTCUSDT","U":{first},"u":{last},"pu":{pu},"b":[["0.0024","10"]],"a":[["0.0026","100"]]}}}}"#
    )
}

fn metric(m: &Metrics, name: &str) -> f64 {
    let series = format!("marketflow_ingestor_{name}{{symbol=\"btcusdt\"}} ");
    let text = m.render();
    text.lines().find_map(|l| l.strip_prefix(&series)).unwrap_or_else(|| panic!("{series}")).parse().unwrap()
}

/// Gaps and missing ids the pipeline counts for frames `(U, u, pu)` under `chain`.
fn gaps(chain: Option<DepthChain>, frames: &[(i64, i64, i64)]) -> (f64, f64) {
    let (w, _r) = ring::ring(1 << 20);
    let metrics = Metrics::new(&["btcusdt".to_string()]);
    let mut p = Pipeline::new(&VENUE, w, metrics.clone(), None);
    if let Some(c) = chain {
        p.set_depth_chain(c);
    }
    for &(first, last, pu) in frames {
        assert_eq!(p.on_text(&depth(first, last, pu), 1, Admission::Normal), Outcome::Record, "{first}..{last}");
    }
    (metric(&metrics, "gaps_total"), metric(&metrics, "gap_ids_missing_total"))
}

#[test]
fn usdm_depth_chains_by_pu_through_the_pipeline() {
    let chained = [(157, 160, 149), (163, 168, 160), (171, 175, 168)];
    assert_eq!(API.depth_chain, DepthChain::PrevFinal);
    assert_eq!(gaps(Some(API.depth_chain), &chained), (0.0, 0.0), "pu continues: no gap");
    assert_eq!(gaps(None, &chained), (2.0, 4.0), "spot's rule: U is not u + 1 twice");
    // pu = 172 after u = 168: ids 169..=172 never arrived.
    let broken = [(157, 160, 149), (163, 168, 160), (175, 180, 172)];
    assert_eq!(gaps(Some(API.depth_chain), &broken), (1.0, 4.0));
}
